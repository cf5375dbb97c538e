//! Stage 2 of the detection cascade: a trained prompt-injection classifier, in process and
//! pure Rust. A small neural network: hashed features of the normalised text (word unigrams
//! and bigrams, character trigrams) are summed into a dense embedding (an embedding bag, with
//! 8-bit weights), then one ReLU hidden layer and a logistic output. Texts are scored in
//! sentence chunks, so one injected sentence in a long benign result still stands out.
//! The weights are produced by `scripts/train-classifier` from labelled data shipped
//! inside PyPI packages; the trainer shares [`features`] with inference, so they agree.

use crate::unicode;

/// The model Gatehouse ships (`scripts/train-classifier` rebuilds it).
pub const BUILTIN: &[u8] = include_bytes!("../../models/stage2.bin");

const MAGIC: &[u8; 4] = b"GHC2";

/// Bytes before the embedding table: magic, bits, hidden width, embedding scale.
const HEADER: usize = 16;

/// Widest hidden layer a model file may ask for.
const MAX_HIDDEN: usize = 256;

/// A model that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("classifier model: {0}")]
pub struct ModelError(pub String);

/// A loaded model.
pub struct Classifier {
    bits: u32,
    /// Embedding rows: `1 << bits` rows of `hidden` signed bytes (stored as their bit
    /// patterns), times `scale`. The built-in model's table is read in place from the
    /// binary, not copied to the heap.
    embedding: std::borrow::Cow<'static, [u8]>,
    scale: f32,
    hidden_bias: Vec<f32>,
    output: Vec<f32>,
    output_bias: f32,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("bits", &self.bits)
            .field("hidden", &self.output.len())
            .finish()
    }
}

const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a, 32 bits, seeded per feature kind.
fn fnv(seed: u32, parts: &[&[u8]]) -> u32 {
    let mut h: u32 = fnv_start(seed);
    for p in parts {
        for &b in *p {
            h ^= u32::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        h ^= 0xff;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A trigram's hash after its first byte, for every first byte (a trigram is hashed per
/// byte of every text the classifier reads: the hottest loop of detection).
const TRIGRAM_FIRST: [u32; 256] = {
    let h0 = fnv_start(3);
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (h0 ^ i as u32).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    t
};

/// The words of an ASCII text: what the general split yields (for ASCII, alphanumeric
/// is `[a-z0-9]` after lowercasing), without decoding it character by character.
fn ascii_words(lower: &str) -> Vec<&str> {
    // A word and its separator take two bytes at least: one allocation, never a regrowth.
    let mut words = Vec::with_capacity(lower.len() / 2 + 1);
    let mut start = None;
    for (i, &c) in lower.as_bytes().iter().enumerate() {
        let inside = c.is_ascii_alphanumeric() || c == b'\'';
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push(&lower[s..i]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(&lower[s..]);
    }
    words
}

/// FNV-1a's state for feature kind `seed` before its first byte.
const fn fnv_start(seed: u32) -> u32 {
    0x811c_9dc5 ^ seed.wrapping_mul(FNV_PRIME)
}

/// The hashed features of a text: bucket indexes, each once, in no particular order (the
/// score sums rows; the trainer sorts them).
pub fn features(text: &str, bits: u32, out: &mut Vec<u32>) {
    out.clear();
    let n = unicode::normalize(text);
    let lower = n.text.to_lowercase();
    let mask = (1u32 << bits) - 1;
    let ascii = lower.is_ascii();
    let words = if ascii {
        ascii_words(&lower)
    } else {
        lower
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .collect()
    };
    // Character trigrams over the words joined by single spaces (spelling games and
    // other languages still share them).
    let joined = words.join(" ");
    // A text has about one feature per byte.
    out.reserve(joined.len() + 2 * words.len() + 16);
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let slots = (1usize << bits).div_ceil(64);
        if seen.len() < slots {
            seen.resize(slots, 0);
        }
        // Each feature is kept at its first appearance: one bit per bucket, cleared below.
        // The closure owns a slice and a reborrow, so the mask and the slice's pointer and
        // length stay in registers in the per-byte loops below.
        let (bitset, kept) = (&mut seen[..slots], &mut *out);
        let mut add = move |h: u32| {
            let f = h & mask;
            let (w, b) = ((f >> 6) as usize, 1u64 << (f & 63));
            if bitset[w] & b == 0 {
                bitset[w] |= b;
                kept.push(f);
            }
        };
        for cue in cues(&lower, &words) {
            add(fnv(5, &[cue.as_bytes()]));
        }
        // Each word's unigram (`fnv(1, [w])`) and its bigram with the word before
        // (`fnv(2, [prev, w])`) in one pass over its bytes; that pass also starts the
        // bigram with the next word. Three independent hashes per byte, not one after
        // another.
        let mut pair: Option<u32> = None;
        for w in &words {
            let (mut one, mut next, mut two) =
                (fnv_start(1), fnv_start(2), pair.unwrap_or_default());
            for &b in w.as_bytes() {
                let b = u32::from(b);
                one = (one ^ b).wrapping_mul(FNV_PRIME);
                next = (next ^ b).wrapping_mul(FNV_PRIME);
                two = (two ^ b).wrapping_mul(FNV_PRIME);
            }
            add((one ^ 0xff).wrapping_mul(FNV_PRIME));
            if pair.is_some() {
                add((two ^ 0xff).wrapping_mul(FNV_PRIME));
            }
            pair = Some((next ^ 0xff).wrapping_mul(FNV_PRIME));
        }
        for t in joined.as_bytes().windows(3) {
            // `fnv(3, &[t])`, its first step from a table.
            let mut h = TRIGRAM_FIRST[usize::from(t[0])];
            h = (h ^ u32::from(t[1])).wrapping_mul(FNV_PRIME);
            h = (h ^ u32::from(t[2])).wrapping_mul(FNV_PRIME);
            add((h ^ 0xff).wrapping_mul(FNV_PRIME));
        }
        // Character bigrams of scripts written without spaces (Chinese, Japanese): there a
        // "word" is a whole clause.
        if !ascii {
            let wide: Vec<char> = joined.chars().filter(|c| !c.is_ascii()).collect();
            let mut buf = [0u8; 8];
            for p in wide.windows(2) {
                let a = p[0].encode_utf8(&mut buf[..4]).len();
                let z = p[1].encode_utf8(&mut buf[a..]).len();
                add(fnv(6, &[&buf[..a + z]]));
            }
        }
        for &f in out.iter() {
            seen[(f >> 6) as usize] = 0;
        }
    });
}

thread_local! {
    /// One bit per feature, all clear between calls: duplicates are dropped as they come
    /// (sorting a 1 KB text's thousand features cost more than hashing them).
    static SEEN: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Adds the embedding rows `f` (of `H` signed bytes each) to `acc`. The rows are summed in
/// 16-bit lanes held in registers (`H` known here), and moved to the 32-bit sums every
/// `FLUSH` rows: |sum| <= 128 * FLUSH fits an i16, so the result is exactly the 32-bit sum,
/// at a fraction of the instructions of widening every byte to 32 bits in memory (this
/// loop was a third of the classifier's time on prose).
fn sum_rows<const H: usize>(embedding: &[u8], f: &[u32], acc: &mut [i32]) {
    const FLUSH: usize = 256;
    for block in f.chunks(FLUSH) {
        let mut part = [0i16; H];
        for &i in block {
            let Some(row) = embedding.get(i as usize * H..(i as usize + 1) * H) else {
                continue; // out of the table: the caller's mask prevents it
            };
            for (p, &w) in part.iter_mut().zip(row) {
                *p += i16::from(w.cast_signed());
            }
        }
        for (a, &p) in acc.iter_mut().zip(&part) {
            *a += i32::from(p);
        }
    }
}

/// Shortest and longest chunk scored on its own.
const MIN_CHUNK: usize = 40;
const MAX_CHUNK: usize = 600;

/// Sentence chunks of a text: (start, end) byte spans. A chunk ends after a line break, or
/// after `.`, `!` or `?` followed by white space or the end, once it is `MIN_CHUNK` bytes
/// long; one that reaches `MAX_CHUNK` bytes without such an end is cut at the next
/// character boundary.
pub fn chunks(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let ends_at = |i: usize| {
        b[i] == b'\n'
            || (matches!(b[i], b'.' | b'!' | b'?')
                && b.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()))
    };
    let mut out = Vec::new();
    let mut start = 0;
    while start < b.len() {
        let limit = (start + MAX_CHUNK).min(b.len());
        // The first sentence end in reach that makes the chunk long enough. Candidates
        // are found with memchr (a text without them costs a fraction of an instruction
        // per byte): the next line break once, then each `.`, `!` or `?` before it.
        let end = {
            let mut at = (start + MIN_CHUNK - 1).min(limit);
            let newline = memchr::memchr(b'\n', &b[at..limit]).map_or(limit, |k| at + k);
            let mut found = None;
            while at < newline {
                let stop =
                    memchr::memchr3(b'.', b'!', b'?', &b[at..newline]).map_or(newline, |k| at + k);
                if stop == newline || ends_at(stop) {
                    found = (stop < limit).then_some(stop + 1);
                    break;
                }
                at = stop + 1;
            }
            if at == newline && newline < limit {
                found.get_or_insert(newline + 1);
            }
            found
        };
        let e = match end {
            Some(e) => e,
            None if limit == b.len() => break,
            // Too long: cut at the first character boundary from the limit on.
            None => (limit..b.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(b.len()),
        };
        out.push((start, e));
        start = e;
    }
    if start < b.len() {
        // A short tail joins the chunk before it.
        match out.last_mut() {
            Some(last) if b.len() - start < MIN_CHUNK => last.1 = b.len(),
            _ => out.push((start, b.len())),
        }
    }
    out.retain(|(s, e)| !text[*s..*e].trim().is_empty());
    out
}

impl Classifier {
    pub fn builtin() -> Result<Classifier, ModelError> {
        Classifier::parse(BUILTIN, std::borrow::Cow::Borrowed)
    }

    pub fn load(path: &std::path::Path) -> Result<Classifier, ModelError> {
        let b = std::fs::read(path).map_err(|e| ModelError(format!("{}: {e}", path.display())))?;
        Classifier::from_bytes(&b)
    }

    /// A model file: `GHC2`, bits, hidden width `h`, embedding scale (little-endian u32,
    /// u32, f32), then `h` hidden biases, `h` output weights and the output bias (f32), then
    /// the embedding table, one signed byte per weight, row by row.
    pub fn from_bytes(b: &[u8]) -> Result<Classifier, ModelError> {
        Classifier::parse(b, |t| std::borrow::Cow::Owned(t.to_vec()))
    }

    /// Reads a model file; `table` keeps the embedding table (borrowed or copied).
    fn parse<'a>(
        b: &'a [u8],
        table: impl FnOnce(&'a [u8]) -> std::borrow::Cow<'static, [u8]>,
    ) -> Result<Classifier, ModelError> {
        if b.len() < HEADER || &b[..4] != MAGIC {
            return Err(ModelError("not a Gatehouse classifier (GHC2)".into()));
        }
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let bits = u32::from_le_bytes(word(4));
        if !(10..=24).contains(&bits) {
            return Err(ModelError(format!("unsupported size 2^{bits}")));
        }
        let hidden = u32::from_le_bytes(word(8)) as usize;
        if hidden == 0 || hidden > MAX_HIDDEN {
            return Err(ModelError(format!("unsupported hidden width {hidden}")));
        }
        let scale = f32::from_le_bytes(word(12));
        let dense = (2 * hidden + 1) * 4;
        let rows = 1usize << bits;
        if b.len() != HEADER + dense + rows * hidden {
            return Err(ModelError("truncated or corrupt".into()));
        }
        let floats: Vec<f32> = b[HEADER..HEADER + dense]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if !scale.is_finite() || floats.iter().any(|f| !f.is_finite()) {
            return Err(ModelError("truncated or corrupt".into()));
        }
        Ok(Classifier {
            bits,
            embedding: table(&b[HEADER + dense..]),
            scale,
            hidden_bias: floats[..hidden].to_vec(),
            output: floats[hidden..2 * hidden].to_vec(),
            output_bias: floats[2 * hidden],
        })
    }

    /// The model's score for one text: the probability that it is an injection.
    pub fn score(&self, text: &str) -> f32 {
        let mut f = Vec::new();
        features(text, self.bits, &mut f);
        self.score_features(&f, &mut Vec::new())
    }

    fn score_features(&self, f: &[u32], acc: &mut Vec<i32>) -> f32 {
        let h = self.output.len();
        acc.clear();
        acc.resize(h, 0);
        match h {
            16 => sum_rows::<16>(&self.embedding, f, acc),
            24 => sum_rows::<24>(&self.embedding, f, acc),
            32 => sum_rows::<32>(&self.embedding, f, acc),
            64 => sum_rows::<64>(&self.embedding, f, acc),
            _ => {
                for &i in f {
                    let row = &self.embedding[i as usize * h..(i as usize + 1) * h];
                    for (a, &w) in acc.iter_mut().zip(row) {
                        *a += i32::from(w.cast_signed());
                    }
                }
            }
        }
        // Averaged by the square root of the count, as in training: long and short texts
        // land in the same range.
        let norm = self.scale / (f.len().max(1) as f32).sqrt();
        let z: f32 = acc
            .iter()
            .zip(&self.hidden_bias)
            .zip(&self.output)
            .map(|((&a, &b), &w)| (a as f32 * norm + b).max(0.0) * w)
            .sum();
        sigmoid(z + self.output_bias)
    }

    /// Every chunk of `text` with its score, highest first.
    pub fn scan(&self, text: &str) -> Vec<(usize, usize, f32)> {
        let mut f = Vec::new();
        let mut acc = Vec::new();
        let mut out: Vec<(usize, usize, f32)> = chunks(text)
            .into_iter()
            .map(|(s, e)| {
                features(&text[s..e], self.bits, &mut f);
                (s, e, self.score_features(&f, &mut acc))
            })
            .collect();
        out.sort_by(|a, b| b.2.total_cmp(&a.2));
        out
    }
}

/// The cascade's first two stages over one text: patterns, then the classifier on each
/// sentence chunk. Chunks scoring at least `medium` become findings (`model.prompt_injection`,
/// stage 2), high from `high` up.
#[derive(Debug)]
pub struct Cascade {
    pub patterns: crate::Patterns,
    pub classifier: Option<Classifier>,
    pub medium: f32,
    pub high: f32,
}

/// Default thresholds, set by `scripts/train-classifier`'s calibration tenth (texts of its
/// corpus, training-side READMEs and 2 KB documents of the training packages' files, all
/// kept apart from fitting; never the evaluation sets): at 0.594 (the 5% false-positive
/// point there) a chunk is recorded (medium); at 0.984 (the 0.1% point) it is high: a
/// result's sentence removed. The 0.1% point rather than 1%: a text is many chunks, and
/// texts unlike the corpus score higher than its benign tenth.
pub const DEFAULT_MEDIUM: f32 = 0.594;
pub const DEFAULT_HIGH: f32 = 0.984;

/// Texts shorter than this are left to the patterns (identifiers, numbers, names).
const MIN_CLASSIFIED: usize = 24;

impl Cascade {
    pub fn scan(&self, text: &str) -> Vec<crate::Signal> {
        let classified = self
            .classifier
            .as_ref()
            .filter(|_| text.len() >= MIN_CLASSIFIED);
        // One pass over the encoded runs serves the patterns and the classifier.
        let (mut out, blobs) = match classified {
            Some(_) => self.patterns.scan_and_decode(text),
            None => (self.patterns.scan(text), Vec::new()),
        };
        if let Some(c) = classified {
            for (start, end, score) in c.scan(text) {
                if score < self.medium {
                    break; // highest first
                }
                let severity = if score >= self.high {
                    crate::Severity::High
                } else {
                    crate::Severity::Medium
                };
                // A chunk joins short sentences; a high finding keeps only those that
                // carry it, so a redaction takes the injected sentence and not its
                // neighbours. A medium one keeps its chunk: by default it is only
                // recorded, and narrowing scores every sentence again, a cost benign text
                // would pay (a place set to redact at medium redacts the whole chunk).
                let (start, end) = if severity == crate::Severity::High {
                    narrow(c, text, start, end, self.medium)
                } else {
                    (start, end)
                };
                out.push(crate::Signal {
                    rule: "model.prompt_injection".to_owned(),
                    category: "model".to_owned(),
                    severity,
                    stage: 2,
                    score,
                    start,
                    end,
                });
            }
            self.scan_decoded(c, blobs, &mut out);
        }
        out
    }

    /// What base64 or hex blobs decode to, read by the classifier: an encoded text that
    /// scores at least `medium` is high (`encoded.base64:model.prompt_injection`), since
    /// nothing benign hides its words from the reader.
    fn scan_decoded(
        &self,
        c: &Classifier,
        blobs: Vec<crate::patterns::Blob>,
        out: &mut Vec<crate::Signal>,
    ) {
        for (start, end, decoded) in blobs {
            if decoded.trim().len() < MIN_CLASSIFIED {
                continue;
            }
            let score = c.scan(&decoded).first().map_or(0.0, |x| x.2);
            if score >= self.medium {
                out.push(crate::Signal {
                    rule: "encoded.base64:model.prompt_injection".to_owned(),
                    category: "model".to_owned(),
                    severity: crate::Severity::High,
                    stage: 2,
                    score,
                    start,
                    end,
                });
            }
        }
    }

    pub fn worst(&self, text: &str) -> Option<crate::Severity> {
        self.scan(text).iter().map(|s| s.severity).max()
    }

    /// Chunks the classifier is unsure about: scored from `low` up to (not including) the
    /// high threshold; stage 3 asks about these.
    pub fn uncertain(&self, text: &str, low: f32) -> Vec<(usize, usize, f32)> {
        match &self.classifier {
            Some(c) if text.len() >= MIN_CLASSIFIED => c
                .scan(text)
                .into_iter()
                .filter(|(_, _, s)| *s >= low && *s < self.high)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The part of the chunk `start..end` made of the sentences that score at least `from`
/// on their own; the whole chunk when none does (the injection is the combination).
fn narrow(c: &Classifier, text: &str, start: usize, end: usize, from: f32) -> (usize, usize) {
    let b = text.as_bytes();
    let mut pieces = Vec::new();
    let mut a = start;
    for i in start..end {
        let ends = b[i] == b'\n'
            || (matches!(b[i], b'.' | b'!' | b'?')
                && b.get(i + 1).is_none_or(|x| x.is_ascii_whitespace()));
        if ends && text.is_char_boundary(i + 1) {
            pieces.push((a, i + 1));
            a = i + 1;
        }
    }
    if a < end {
        pieces.push((a, end));
    }
    if pieces.len() < 2 {
        return (start, end);
    }
    let hot: Vec<(usize, usize)> = pieces
        .into_iter()
        .filter(|(x, y)| {
            let t = text[*x..*y].trim();
            !t.is_empty() && c.score(t) >= from
        })
        .collect();
    match (hot.first(), hot.last()) {
        (Some(f), Some(l)) => {
            // Leading whitespace stays with the text before it.
            let s = f.0 + text[f.0..f.1].len() - text[f.0..f.1].trim_start().len();
            // The end stops before the sentence's own full stop, so widening to the
            // sentence (as a redaction does) ends there and not at the next one.
            let e = if l.1 > s && matches!(b[l.1 - 1], b'.' | b'!' | b'?' | b'\n') {
                l.1 - 1
            } else {
                l.1
            };
            (s, e)
        }
        _ => (start, end),
    }
}

mod cues;
pub mod train;

use cues::cues;
pub use cues::has_cue;
#[cfg(test)]
use cues::{AI_WORDS, Cues, IMPERATIVES, cue_flags, twelve_digits};

#[cfg(test)]
mod tests;
