//! Fuzzes the Unicode normaliser: never panics, and every span it reports or maps back
//! lies inside the input on character boundaries.
//! Run: `cargo fuzz run -s none unicode` from crates/gatehouse-detect (stable toolchain).
#![no_main]

use gatehouse_detect::unicode::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let n = normalize(s);
    for o in &n.oddities {
        assert!(o.start <= o.end && o.end <= s.len());
        assert!(s.is_char_boundary(o.start) && s.is_char_boundary(o.end));
    }
    let len = n.text.len();
    for (a, b) in [(0, len), (0, len / 2), (len / 3, len)] {
        let (x, y) = n.original_span(a, b);
        assert!(x <= y && y <= s.len(), "{a}..{b} -> {x}..{y}");
    }
});
