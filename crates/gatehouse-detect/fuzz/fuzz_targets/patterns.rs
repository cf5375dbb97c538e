//! Fuzzes the pattern stage (normaliser, Aho-Corasick and regex windows, the decoders of
//! base64, hex and URL-encoded blobs) and the classifier's chunker: never panics, spans
//! stay inside the input on character boundaries.
//! Run: `cargo fuzz run -s none patterns` from crates/gatehouse-detect (stable toolchain).
#![no_main]

use std::sync::OnceLock;

use gatehouse_detect::Patterns;
use gatehouse_detect::classifier::{Classifier, chunks};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static (Patterns, Classifier) {
    static E: OnceLock<(Patterns, Classifier)> = OnceLock::new();
    E.get_or_init(|| {
        (
            Patterns::new(&[], &[]).expect("rules"),
            Classifier::builtin().expect("model"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (p, c) = engine();
    for f in p.scan(s) {
        assert!(f.start <= f.end && f.end <= s.len());
        assert!(s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
    }
    for (a, b) in chunks(s) {
        assert!(a < b && b <= s.len() && s.is_char_boundary(a) && s.is_char_boundary(b));
    }
    let score = c.score(s);
    assert!((0.0..=1.0).contains(&score));
});
