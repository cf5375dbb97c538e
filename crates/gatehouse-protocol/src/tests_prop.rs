//! Property tests: the decoders never panic on any input, respect their limits, and what
//! they accept round-trips.

use proptest::prelude::*;

use crate::{Decoded, Limits, SseDecoder, decode_body, encode_sse_event, json_depth};

fn limits() -> Limits {
    Limits {
        max_body_bytes: 2048,
        max_depth: 8,
        max_batch: 4,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_and_respects_limits(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        match decode_body(&bytes, &limits()) {
            Ok(Decoded::Batch(items)) => prop_assert!(!items.is_empty() && items.len() <= 4),
            Ok(Decoded::Single(_)) => prop_assert!(bytes.len() <= 2048),
            Err(_) => {}
        }
    }

    #[test]
    fn json_shaped_input_never_panics(s in r#"[\[\]{}",:0-9a-z\\ ]{0,400}"#) {
        let _ = decode_body(s.as_bytes(), &limits());
        if let Some(d) = json_depth(s.as_bytes(), 8) {
            prop_assert!(d <= 8);
        }
    }

    #[test]
    fn messages_round_trip(id in 0u64..1_000_000, method in "[a-z/_]{1,30}", text in ".{0,200}") {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"t": text}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let Ok(Decoded::Single(Ok(m))) = decode_body(&bytes, &Limits::default()) else {
            return Err(TestCaseError::fail("valid message refused"));
        };
        let back: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        prop_assert_eq!(back, body);
    }

    #[test]
    fn sse_chunking_does_not_change_events(datas in proptest::collection::vec("[^\r\n]{0,50}", 1..5), cut in 1usize..40) {
        let mut wire = Vec::new();
        for (i, d) in datas.iter().enumerate() {
            wire.extend_from_slice(&encode_sse_event(Some(&i.to_string()), None, d));
        }
        let mut whole = SseDecoder::new(4096);
        let all = whole.feed(&wire).unwrap();
        let mut pieces = SseDecoder::new(4096);
        let mut split = Vec::new();
        for chunk in wire.chunks(cut) {
            split.extend(pieces.feed(chunk).unwrap());
        }
        prop_assert_eq!(&all, &split);
        prop_assert_eq!(all.len(), datas.len());
        for (ev, d) in all.iter().zip(&datas) {
            prop_assert_eq!(&ev.data, d);
        }
    }

    #[test]
    fn sse_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut d = SseDecoder::new(256);
        let _ = d.feed(&bytes);
    }
}

/// The depth scan as first written (a test per byte).
fn reference_json_depth(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return None;
                }
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(max)
}

/// Bytes made mostly of what the depth scan looks at: quotes, backslashes, brackets.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'"'),
            Just(b'\\'),
            Just(b'{'),
            Just(b'}'),
            Just(b'['),
            Just(b']'),
            Just(b'a'),
            Just(b':'),
            any::<u8>(),
        ],
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_depth_scan_matches_the_reference(bytes in json_ish(), limit in 0usize..6) {
        prop_assert_eq!(json_depth(&bytes, limit), reference_json_depth(&bytes, limit));
    }
}
