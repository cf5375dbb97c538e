//! Shared by the `sql`, `shell` and `url` targets: runs one detector on the fuzzer's input
//! and on that input repeated up to 64 KiB (where quadratic behaviour shows), and panics
//! when any run is slower than 10 ms per KiB (plus 5 ms of slack for a noisy machine).

use std::time::{Duration, Instant};

use gatehouse_detect::inject::{ArgKind, check};

/// Largest input built by repetition: the SQL cap, so the SQL detector analyses it all.
const MAX: usize = 64 * 1024;

pub fn run(kind: ArgKind, data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let roots = ["/srv/data".to_owned()];
    timed(kind, s, &roots);
    if !s.is_empty() && s.len() < MAX {
        let big = s.repeat(MAX / s.len());
        timed(kind, &big, &roots);
    }
}

fn timed(kind: ArgKind, s: &str, roots: &[String]) {
    let start = Instant::now();
    let _ = check(kind, s, true, roots);
    let _ = check(kind, s, false, &[]);
    let took = start.elapsed();
    let budget = Duration::from_millis(5) + Duration::from_micros(10 * (s.len() as u64 + 1023) / 1024 * 1000);
    assert!(
        took <= budget,
        "{kind:?}: {} bytes took {took:?} (budget {budget:?})",
        s.len()
    );
}
