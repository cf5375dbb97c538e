//! Any request body with any routing headers: the 2026-07-28 envelope check never panics,
//! and accepts only when the headers agree with the body.
#![no_main]

use gatehouse_protocol::{
    Decoded, Limits, Message, decode_body, decode_header_value, name_param,
    stateless_envelope_check,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str, &str, &str)| {
    let (body, version, method, name) = input;
    let Ok(Decoded::Single(Ok(Message::Request(req)))) = decode_body(body, &Limits::default())
    else {
        return;
    };
    if stateless_envelope_check(&req, Some(version), Some(method), Some(name)).is_ok() {
        assert_eq!(method, req.method);
        if let Some(key) = name_param(&req.method) {
            if let Some(v) = req.param_str(key) {
                assert_eq!(decode_header_value(name).as_deref(), Some(v));
            }
        }
    }
});
