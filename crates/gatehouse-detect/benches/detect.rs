//! Detection quality and cost: `cargo bench -p gatehouse-detect --bench detect`.
//!
//! Prints, for stage 1 (patterns):
//! - precision, recall and false-positive rate on the project's labelled dev set
//!   (`data/dev.jsonl`: injections in documents, web pages, emails, results and tool
//!   descriptions, and look-alike benign texts);
//! - the false-positive rate on real tool outputs found on this machine: READMEs and
//!   package manifests of the pinned npm test peers, and Python standard-library source,
//!   cut into 2 KB pieces (files, records, docs and code);
//! - latency p50/p99 per 512-token (about 2 KB) text, and throughput on one core.
//!
//! A text counts as flagged when a finding of severity medium or above fires.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatehouse_detect::{Cascade, Classifier, Patterns, Severity};

fn flagged(p: &Patterns, text: &str) -> bool {
    p.worst(text).is_some_and(|s| s >= Severity::Medium)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q) as usize]
}

fn files_under(dir: &Path, name_ok: &dyn Fn(&str) -> bool, limit: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if out.len() >= limit {
            return;
        }
        if p.is_dir() {
            files_under(&p, name_ok, limit, out);
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(name_ok) {
            out.push(p);
        }
    }
}

/// Real tool outputs on this machine, cut into pieces of about 2 KB on line boundaries.
fn real_outputs() -> Vec<(&'static str, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/peers/node_modules");
    let mut sets: Vec<(&'static str, Vec<PathBuf>)> = Vec::new();
    let mut docs = Vec::new();
    files_under(
        &root,
        &|n| n.eq_ignore_ascii_case("readme.md"),
        300,
        &mut docs,
    );
    sets.push(("docs (npm READMEs)", docs));
    let mut records = Vec::new();
    files_under(&root, &|n| n == "package.json", 300, &mut records);
    sets.push(("records (package.json)", records));
    let mut code = Vec::new();
    files_under(
        Path::new("/usr/lib/python3.11"),
        &|n| n.ends_with(".py"),
        300,
        &mut code,
    );
    sets.push(("code (Python stdlib)", code));
    let mut out = Vec::new();
    for (label, files) in sets {
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            let mut piece = String::new();
            for line in text.lines() {
                piece.push_str(line);
                piece.push('\n');
                if piece.len() >= 2048 {
                    out.push((label, std::mem::take(&mut piece)));
                }
            }
            if !piece.trim().is_empty() {
                out.push((label, piece));
            }
        }
    }
    out
}

/// A detector under evaluation: does it flag a text?
type Flags<'a> = dyn Fn(&str) -> bool + 'a;

/// Stage 2 alone: the highest chunk score of a text.
fn stage2(c: &Classifier, text: &str) -> f32 {
    c.scan(text).first().map_or(0.0, |x| x.2)
}

fn main() {
    let p = Patterns::new(&[], &[]).unwrap_or_else(|e| panic!("{e}"));
    let classifier = Classifier::builtin().unwrap_or_else(|e| panic!("{e}"));

    // Labelled dev set.
    let dev = include_str!("../data/dev.jsonl");
    let (mut tp, mut fp, mut tn, mut fneg) = (0u32, 0u32, 0u32, 0u32);
    let mut missed = Vec::new();
    for line in dev.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        let text = v["text"].as_str().unwrap_or_default();
        let injection = v["label"] == "injection";
        match (injection, flagged(&p, text)) {
            (true, true) => tp += 1,
            (true, false) => {
                fneg += 1;
                missed.push(text.chars().take(70).collect::<String>());
            }
            (false, true) => {
                fp += 1;
                missed.push(format!("FP: {}", text.chars().take(66).collect::<String>()));
            }
            (false, false) => tn += 1,
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fneg).max(1));
    let fpr = f64::from(fp) / f64::from((fp + tn).max(1));
    println!(
        "stage 1 dev set ({} texts): precision {:.3}  recall {:.3}  false-positive rate {:.3}",
        tp + fp + tn + fneg,
        precision,
        recall,
        fpr
    );
    for m in &missed {
        println!("  wrong: {m}");
    }

    // Real benign outputs.
    let real = real_outputs();
    if real.is_empty() {
        println!("real tool outputs: none found (run scripts/test once to install the test peers)");
    }
    let mut labels: Vec<&str> = real.iter().map(|(l, _)| *l).collect();
    labels.dedup();
    for label in labels {
        let pieces: Vec<&String> = real
            .iter()
            .filter(|(l, _)| *l == label)
            .map(|(_, t)| t)
            .collect();
        let hits: Vec<&&String> = pieces.iter().filter(|t| flagged(&p, t)).collect();
        println!(
            "stage 1 benign {label}: {} pieces, false-positive rate {:.4}",
            pieces.len(),
            hits.len() as f64 / pieces.len().max(1) as f64
        );
        for h in hits.iter().take(3) {
            let s = p.scan(h);
            let w = s
                .iter()
                .filter(|x| x.severity >= Severity::Medium)
                .map(|x| format!("{} {:?}", x.rule, &h[x.start..x.end.min(x.start + 60)]))
                .collect::<Vec<_>>();
            println!("  flagged: {w:?}");
        }
    }

    // Stage 2 alone, by threshold; then the default cascade.
    let labelled: Vec<(bool, String)> = dev
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["label"] == "injection",
                v["text"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let dev_scores: Vec<(bool, f32)> = labelled
        .iter()
        .map(|(y, t)| (*y, stage2(&classifier, t)))
        .collect();
    let real_scores: Vec<f32> = real.iter().map(|(_, t)| stage2(&classifier, t)).collect();
    for t in [0.5f32, 0.8, 0.9, 0.95, 0.99, 0.995] {
        let tp = dev_scores.iter().filter(|(y, s)| *y && *s >= t).count();
        let fp = dev_scores.iter().filter(|(y, s)| !*y && *s >= t).count();
        let pos = dev_scores.iter().filter(|(y, _)| *y).count();
        let neg = dev_scores.len() - pos;
        let real_fp = real_scores.iter().filter(|s| **s >= t).count();
        println!(
            "stage 2 at {t:.3}: dev precision {:.3} recall {:.3} false-positive rate {:.3}; real outputs false-positive rate {:.4}",
            tp as f64 / (tp + fp).max(1) as f64,
            tp as f64 / pos.max(1) as f64,
            fp as f64 / neg.max(1) as f64,
            real_fp as f64 / real_scores.len().max(1) as f64
        );
    }
    let cascade = Cascade {
        patterns: Patterns::new(&[], &[]).unwrap_or_else(|e| panic!("{e}")),
        classifier: Some(Classifier::builtin().unwrap_or_else(|e| panic!("{e}"))),
        medium: gatehouse_detect::classifier::DEFAULT_MEDIUM,
        high: gatehouse_detect::classifier::DEFAULT_HIGH,
    };
    let flagged_c = |t: &str| cascade.worst(t).is_some_and(|s| s >= Severity::Medium);
    let tp = labelled.iter().filter(|(y, t)| *y && flagged_c(t)).count();
    let fp = labelled.iter().filter(|(y, t)| !*y && flagged_c(t)).count();
    let pos = labelled.iter().filter(|(y, _)| *y).count();
    let real_fp = real.iter().filter(|(_, t)| flagged_c(t)).count();
    let real_high = real
        .iter()
        .filter(|(_, t)| cascade.worst(t).is_some_and(|s| s >= Severity::High))
        .count();
    println!(
        "cascade (stages 1+2, defaults): dev precision {:.3} recall {:.3} false-positive rate {:.3}; real outputs flagged {:.4}, redacted or withheld (high+) {:.4}",
        tp as f64 / (tp + fp).max(1) as f64,
        tp as f64 / pos.max(1) as f64,
        fp as f64 / (labelled.len() - pos).max(1) as f64,
        real_fp as f64 / real.len().max(1) as f64,
        real_high as f64 / real.len().max(1) as f64
    );
    for (label, t) in real
        .iter()
        .filter(|(_, t)| cascade.worst(t).is_some_and(|s| s >= Severity::High))
        .take(3)
    {
        let s: Vec<String> = cascade
            .scan(t)
            .iter()
            .filter(|x| x.severity >= Severity::High)
            .map(|x| {
                format!(
                    "{} {:.2} {:?}",
                    x.rule,
                    x.score,
                    t[x.start..x.end].chars().take(80).collect::<String>()
                )
            })
            .collect();
        println!("  high on {label}: {s:?}");
    }

    // AgentDojo (scripts/eval-agentdojo builds the set): evaluation only.
    if let Ok(path) = std::env::var("GATEHOUSE_AGENTDOJO") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let rows: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let stages: [(&str, &Flags<'_>); 3] = [
            ("stage 1", &|t: &str| flagged(&p, t)),
            ("stage 2", &|t: &str| {
                stage2(&classifier, t) >= gatehouse_detect::classifier::DEFAULT_MEDIUM
            }),
            ("cascade", &|t: &str| flagged_c(t)),
        ];
        for (name, f) in stages {
            let mut by_attack: std::collections::BTreeMap<String, (usize, usize)> =
                Default::default();
            let (mut fp, mut benign) = (0, 0);
            for r in &rows {
                let t = r["text"].as_str().unwrap_or("");
                if r["label"] == "injection" {
                    let e = by_attack
                        .entry(r["attack"].as_str().unwrap_or("").to_owned())
                        .or_default();
                    e.1 += 1;
                    if f(t) {
                        e.0 += 1;
                    }
                } else {
                    benign += 1;
                    if f(t) {
                        fp += 1;
                    }
                }
            }
            let (hit, all) = by_attack
                .values()
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            let per: Vec<String> = by_attack
                .iter()
                .map(|(k, (h, n))| format!("{k} {:.2}", *h as f64 / (*n).max(1) as f64))
                .collect();
            println!(
                "AgentDojo {name}: recall {:.3} ({hit}/{all}; {}), false-positive rate on its environment data {:.3} ({fp}/{benign})",
                hit as f64 / all.max(1) as f64,
                per.join(", "),
                fp as f64 / benign.max(1) as f64
            );
        }
    }

    // Latency per 2 KB text and throughput.
    let sample: String = real
        .iter()
        .map(|(_, t)| t.as_str())
        .chain(dev.lines())
        .collect::<Vec<_>>()
        .concat();
    let sample = if sample.len() < 1 << 20 {
        sample.repeat((1 << 20) / sample.len().max(1) + 1)
    } else {
        sample
    };
    let pieces: Vec<&str> = sample
        .as_bytes()
        .chunks(2048)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .take(4000)
        .collect();
    let mut times = Vec::with_capacity(pieces.len());
    for t in &pieces {
        let s = Instant::now();
        std::hint::black_box(p.scan(t));
        times.push(s.elapsed());
    }
    times.sort();
    println!(
        "stage 1 latency per 2 KB text ({} texts): p50 {:?}  p99 {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    for (name, f) in [
        (
            "stage 2",
            &(|t: &str| {
                std::hint::black_box(classifier.scan(t));
            }) as &dyn Fn(&str),
        ),
        (
            "cascade",
            &(|t: &str| {
                std::hint::black_box(cascade.scan(t));
            }) as &dyn Fn(&str),
        ),
    ] {
        let mut times = Vec::with_capacity(pieces.len());
        for t in &pieces {
            let s = Instant::now();
            f(t);
            times.push(s.elapsed());
        }
        times.sort();
        println!(
            "{name} latency per 2 KB text (about 512 tokens): p50 {:?}  p99 {:?}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    let mut big_cut = sample.len().min(8 << 20);
    while !sample.is_char_boundary(big_cut) {
        big_cut -= 1;
    }
    let big = &sample[..big_cut];
    let s = Instant::now();
    let mut rounds = 0;
    while s.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(p.scan(big));
        rounds += 1;
    }
    let mbs = (big.len() * rounds) as f64 / s.elapsed().as_secs_f64() / 1e6;
    println!("stage 1 throughput, one core, mixed real text: {mbs:.0} MB/s");
    let ascii =
        "The quarterly report lists revenue by region and the notes from each account review. "
            .repeat(100_000);
    let s = Instant::now();
    let mut rounds = 0;
    while s.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(p.scan(&ascii));
        rounds += 1;
    }
    let mbs = (ascii.len() * rounds) as f64 / s.elapsed().as_secs_f64() / 1e6;
    println!("stage 1 throughput, one core, plain prose: {mbs:.0} MB/s");
}
