//! Training of the stage-2 network (used by `examples/train_classifier.rs`): plain SGD on a
//! class-weighted log loss with L2, sparse updates of the embedding rows a text touches,
//! deterministic for a seed; the embedding is quantised to 8 bits at the end.

use super::{HEADER, MAGIC, features, sigmoid};

/// Trained float weights before quantisation.
#[derive(Debug)]
pub struct Model {
    pub bits: u32,
    pub hidden: usize,
    /// `1 << bits` rows of `hidden` weights.
    pub embedding: Vec<f32>,
    pub hidden_bias: Vec<f32>,
    pub output: Vec<f32>,
    pub output_bias: f32,
}

/// A small deterministic generator for initial weights and shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-a, a).
    fn uniform(&mut self, a: f32) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * u - 1.0) * a
    }
}

/// Forward pass over one text's features: hidden activations (after ReLU) and the logit.
fn forward(m: &Model, f: &[u32], pre: &mut [f32], act: &mut [f32]) -> f32 {
    let h = m.hidden;
    let norm = 1.0 / (f.len().max(1) as f32).sqrt();
    pre.copy_from_slice(&m.hidden_bias);
    let mut sums = vec![0f32; h];
    for &k in f {
        let row = &m.embedding[k as usize * h..(k as usize + 1) * h];
        for (s, &w) in sums.iter_mut().zip(row) {
            *s += w;
        }
    }
    for j in 0..h {
        pre[j] += sums[j] * norm;
        act[j] = pre[j].max(0.0);
    }
    act.iter().zip(&m.output).map(|(a, w)| a * w).sum::<f32>() + m.output_bias
}

/// Fits the network to `samples` (text, is an injection).
pub fn fit(samples: &[(String, bool)], bits: u32, hidden: usize, epochs: u32, seed: u64) -> Model {
    let rows = 1usize << bits;
    let mut rng = Rng(seed.max(1));
    let mut m = Model {
        bits,
        hidden,
        embedding: (0..rows * hidden).map(|_| rng.uniform(0.05)).collect(),
        hidden_bias: vec![0.1; hidden],
        output: (0..hidden)
            .map(|_| rng.uniform(1.0 / (hidden as f32).sqrt()))
            .collect(),
        output_bias: 0.0,
    };
    let feats: Vec<Vec<u32>> = samples
        .iter()
        .map(|(t, _)| {
            let mut f = Vec::new();
            features(t, bits, &mut f);
            // In a fixed order, so a training run is reproducible to the bit.
            f.sort_unstable();
            f
        })
        .collect();
    let pos = samples.iter().filter(|s| s.1).count().max(1) as f32;
    let neg = (samples.len() as f32 - pos).max(1.0);
    // Each class weighs half of the total.
    let (wp, wn) = (
        samples.len() as f32 / (2.0 * pos),
        samples.len() as f32 / (2.0 * neg),
    );
    let l2 = 1e-6f32;
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let (mut pre, mut act, mut grad) = (vec![0f32; hidden], vec![0f32; hidden], vec![0f32; hidden]);
    let mut step = 0u64;
    for _ in 0..epochs {
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &i in &order {
            let f = &feats[i];
            if f.is_empty() {
                continue;
            }
            step += 1;
            let lr = 0.05 / (1.0 + step as f32 / 50_000.0);
            let z = forward(&m, f, &mut pre, &mut act);
            let y = samples[i].1;
            let g = (sigmoid(z) - if y { 1.0 } else { 0.0 }) * if y { wp } else { wn };
            let norm = 1.0 / (f.len() as f32).sqrt();
            for j in 0..hidden {
                grad[j] = if pre[j] > 0.0 { g * m.output[j] } else { 0.0 };
                m.output[j] -= lr * (g * act[j] + l2 * m.output[j]);
                m.hidden_bias[j] -= lr * grad[j];
            }
            m.output_bias -= lr * g;
            for &k in f {
                let row = &mut m.embedding[k as usize * hidden..(k as usize + 1) * hidden];
                for (w, &d) in row.iter_mut().zip(&grad) {
                    *w -= lr * (d * norm + l2 * *w);
                }
            }
        }
    }
    m
}

/// The model file [`super::Classifier::from_bytes`] reads. The embedding's scale is set by
/// its largest weight.
pub fn to_bytes(m: &Model) -> Vec<u8> {
    let max = m
        .embedding
        .iter()
        .fold(0f32, |a, w| a.max(w.abs()))
        .max(1e-9);
    let scale = max / 127.0;
    let mut out = Vec::with_capacity(HEADER + (2 * m.hidden + 1) * 4 + m.embedding.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&m.bits.to_le_bytes());
    out.extend_from_slice(&(m.hidden as u32).to_le_bytes());
    out.extend_from_slice(&scale.to_le_bytes());
    for f in m.hidden_bias.iter().chain(&m.output) {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out.extend_from_slice(&m.output_bias.to_le_bytes());
    out.extend(
        m.embedding
            .iter()
            .map(|w| (w / scale).round().clamp(-127.0, 127.0) as i8 as u8),
    );
    out
}
