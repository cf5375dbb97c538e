//! `gatehouse bench detect`: what the detection cascade costs per text of about 512 tokens
//! (2 KB), stage by stage, and how much benign traffic reaches the costlier stages: the
//! sentence-level second pass inside stage 2 (chunks that score at least `medium`) and
//! stage 3 (chunks in the arbiter's band, from `arbiter.low` up to `high`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Documentation that ships with Gatehouse: benign prose, tables, code and orders to the
/// reader, used when no `--texts` file is given.
const BUILTIN: &[&str] = &[
    include_str!("../../../README.md"),
    include_str!("../../../docs/configuration.md"),
    include_str!("../../../docs/deployment.md"),
    include_str!("../../../docs/identity.md"),
    include_str!("../../../docs/authorization.md"),
    include_str!("../../../docs/audit.md"),
];

/// Pieces of about 2 KB (≈512 tokens), cut on line boundaries.
fn pieces(text: &str, out: &mut Vec<String>) {
    let mut cur = String::new();
    for line in text.split_inclusive('\n') {
        cur.push_str(line);
        if cur.len() >= 2048 {
            out.push(std::mem::take(&mut cur));
        }
    }
    if cur.len() > 256 {
        out.push(cur);
    }
}

fn texts(file: Option<&PathBuf>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match file {
        None => BUILTIN.iter().for_each(|t| pieces(t, &mut out)),
        Some(path) => {
            let body = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value =
                    serde_json::from_str(line).context("a --texts line is not JSON")?;
                if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
                    pieces(t, &mut out);
                }
            }
        }
    }
    Ok(out)
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len().saturating_sub(1)) as f64 * q) as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub(crate) fn run(file: Option<PathBuf>, config: Option<PathBuf>) -> Result<()> {
    let cfg = match &config {
        Some(p) => gatehouse_proxy::Config::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => gatehouse_proxy::Config::from_yaml("dev_mode: true\n", &|_| None)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let d = cfg
        .detection
        .clone()
        .context("detection is disabled in this config")?;
    let c = &d.cascade;
    let low = d.arbiter.as_ref().map_or(0.5, |a| a.low);
    let texts = texts(file.as_ref())?;
    anyhow::ensure!(!texts.is_empty(), "no texts to measure");
    // Warm up (lazy tables, caches).
    for t in texts.iter().take(8) {
        let _ = c.scan(t);
    }
    let (mut s1, mut s2, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut second_pass, mut arbiter, mut acted) = (0usize, 0usize, 0usize);
    // Several rounds so each percentile rests on enough samples.
    let rounds = (2000 / texts.len()).clamp(1, 50);
    for round in 0..rounds {
        for t in &texts {
            let a = Instant::now();
            let p = c.patterns.scan(t);
            let b = Instant::now();
            let scores = c.classifier.as_ref().map(|m| m.scan(t)).unwrap_or_default();
            let e = Instant::now();
            let whole = Instant::now();
            let found = c.scan(t);
            all.push(whole.elapsed());
            s1.push(b - a);
            s2.push(e - b);
            if round == 0 {
                if scores.iter().any(|(_, _, s)| *s >= c.medium) {
                    second_pass += 1;
                }
                if scores.iter().any(|(_, _, s)| *s >= low && *s < c.high) {
                    arbiter += 1;
                }
                let worst = found.iter().chain(p.iter()).map(|s| s.severity).max();
                if worst >= Some(gatehouse_detect::Severity::High) {
                    acted += 1;
                }
            }
        }
    }
    for v in [&mut s1, &mut s2, &mut all] {
        v.sort_unstable();
    }
    let n = texts.len();
    let avg = texts.iter().map(String::len).sum::<usize>() / n;
    println!(
        "detection cost per text: {n} texts of {avg} bytes on average (about 512 tokens), {rounds} rounds, one core"
    );
    println!("  {:<34} {:>9} {:>9}", "stage", "p50 ms", "p99 ms");
    for (name, v) in [
        ("1: patterns", &s1),
        ("2: classifier (every chunk)", &s2),
        ("1 + 2 as the gateway runs them", &all),
    ] {
        println!("  {name:<34} {:>9.3} {:>9.3}", pct(v, 0.5), pct(v, 0.99));
    }
    let share = |k: usize| 100.0 * k as f64 / n as f64;
    println!(
        "share of these texts with a chunk at medium or above (sentence second pass): {:.1}% ({second_pass}/{n})",
        share(second_pass)
    );
    println!(
        "share that would reach stage 3 (a chunk from {low} up to {}): {:.1}% ({arbiter}/{n}){}",
        c.high,
        share(arbiter),
        if d.arbiter.is_none() {
            "; no arbiter is configured"
        } else {
            ""
        }
    );
    println!(
        "share acted on (a high or critical finding): {:.1}% ({acted}/{n}){}",
        share(acted),
        if file.is_none() {
            "; the built-in texts are Gatehouse's own documentation, all benign"
        } else {
            ""
        }
    );
    Ok(())
}
