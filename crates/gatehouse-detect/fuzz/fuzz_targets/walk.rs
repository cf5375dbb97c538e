//! Fuzzes the DLP walker with arbitrary JSON: it must never panic, must keep the JSON's
//! shape, and must leave nothing a masking profile would find again.
//! Run: `cargo fuzz run -s none walk` from crates/gatehouse-detect (stable toolchain).
#![no_main]

use std::sync::OnceLock;

use gatehouse_detect::{Profile, Recognizers, Tokenizer, walk};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn recognizers() -> &'static Recognizers {
    static R: OnceLock<Recognizers> = OnceLock::new();
    R.get_or_init(|| Recognizers::new(&[]).expect("built-ins compile"))
}

fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(_), Value::String(_)) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_shape(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        // Not JSON: scan it as text instead.
        if let Ok(s) = std::str::from_utf8(data) {
            for f in recognizers().scan(s) {
                assert!(f.start < f.end && f.end <= s.len());
                assert!(s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
            }
        }
        return;
    };
    let tokens = Tokenizer::new(b"fuzz");
    let profile = Profile::default();
    let mut once = value.clone();
    walk(recognizers(), &profile, &tokens, &mut once);
    assert!(same_shape(&value, &once));
    let mut twice = once.clone();
    let again = walk(recognizers(), &profile, &tokens, &mut twice);
    assert!(again.is_clean(), "left behind: {once}");
});
