//! DLP cost: `cargo bench -p gatehouse-detect --bench dlp`. Prints the added latency of the
//! `standard` profile on a 10 KB tool result (p50/p99 over many runs), with and without
//! personal data in it, and scanning throughput on clean and on PII-dense text.

use std::time::{Duration, Instant};

use gatehouse_detect::{Profile, Recognizers, Tokenizer, walk};
use serde_json::{Value, json};

/// A tool result of about 10 KB: rows as text and as structured content; with `pii`, each
/// row has an email, a phone number and a card.
fn result_10k(pii: bool) -> Value {
    let rows: Vec<Value> = (0..24)
        .map(|i| {
            if pii {
                json!({
                    "id": i,
                    "name": format!("Customer {i}"),
                    "email": format!("customer{i}@example.com"),
                    "phone": "+44 20 7946 0958",
                    "card": "4111 1111 1111 1111",
                    "note": "Renewal discussed on the last call; send the updated quote next week.",
                })
            } else {
                json!({
                    "id": i,
                    "name": format!("Customer {i}"),
                    "region": "EMEA",
                    "tier": "gold",
                    "orders": 42,
                    "note": "Renewal discussed on the last call; send the updated quote next week, then the plan.",
                })
            }
        })
        .collect();
    let text = serde_json::to_string(&rows).unwrap_or_default();
    json!({"content": [{"type": "text", "text": text}], "structuredContent": {"rows": rows}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let r = Recognizers::new(&[]).unwrap_or_else(|e| panic!("{e}"));
    let profile = Profile::standard();
    let tokens = Tokenizer::new(b"bench");
    for pii in [true, false] {
        let sample = result_10k(pii);
        let size = serde_json::to_vec(&sample).map(|v| v.len()).unwrap_or(0);
        let mut times = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let mut v = sample.clone();
            let t = Instant::now();
            let report = walk(&r, &profile, &tokens, &mut v);
            times.push(t.elapsed());
            assert_eq!(report.redacted > 0, pii);
        }
        times.sort();
        println!(
            "standard profile on a {size}-byte result ({}): p50 {:?}  p99 {:?}",
            if pii { "PII in every row" } else { "no PII" },
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }

    let clean =
        "The quick brown fox jumps over the lazy dog; release 2.14.3 shipped with 1,204 commits. "
            .repeat(12_000);
    let dense = "Reach customer42@example.com or +44 20 7946 0958, card 4111 1111 1111 1111. "
        .repeat(12_000);
    for (label, text) in [("clean text", clean), ("PII-dense text", dense)] {
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..5 {
            n += r.scan(&text).len();
        }
        let secs = t.elapsed().as_secs_f64();
        let mb = (text.len() * 5) as f64 / 1e6;
        println!("scan {label}: {:.0} MB/s ({} findings)", mb / secs, n / 5);
    }
}
