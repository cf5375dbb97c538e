//! Any body a client sends: decoding never panics, respects its limits, and what decodes
//! serializes back to JSON that decodes to the same message.
#![no_main]

use gatehouse_protocol::{Decoded, Limits, decode_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_depth: 32,
        max_batch: 8,
    };
    match decode_body(data, &limits) {
        Ok(Decoded::Single(Ok(m))) => {
            let again = decode_body(&m.to_bytes(), &limits);
            assert!(matches!(again, Ok(Decoded::Single(Ok(ref n))) if *n == m));
        }
        Ok(Decoded::Batch(items)) => assert!(!items.is_empty() && items.len() <= 8),
        _ => {}
    }
});
