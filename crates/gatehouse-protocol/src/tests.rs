use serde_json::json;

use crate::{
    Decoded, HeaderMismatch, Id, Limits, Message, ProtocolVersion, Request, SseDecoder, code,
    decode_body, decode_header_value, encode_sse_event, json_depth, stateless_envelope_check,
};

fn limits() -> Limits {
    Limits {
        max_body_bytes: 1024,
        max_depth: 8,
        max_batch: 3,
    }
}

#[test]
fn decodes_request_notification_response() {
    let body = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":"a","result":{"x":1}}]"#;
    let Ok(Decoded::Batch(items)) = decode_body(body, &limits()) else {
        panic!("not a batch")
    };
    assert!(
        matches!(&items[0], Ok(Message::Request(r)) if r.method == "ping" && r.id == Id::from(1))
    );
    assert!(
        matches!(&items[1], Ok(Message::Notification(n)) if n.method == "notifications/initialized")
    );
    assert!(matches!(&items[2], Ok(Message::Response(r)) if r.outcome == Ok(json!({"x":1}))));
}

#[test]
fn rejects_wrong_shapes_with_their_id() {
    let cases: &[(&[u8], Id)] = &[
        (br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#, Id::from(7)),
        (br#"{"jsonrpc":"2.0","id":7,"method":3}"#, Id::from(7)),
        (
            br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
            Id::Null,
        ),
        (br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, Id::Null),
        (
            br#"{"jsonrpc":"2.0","id":7,"method":"ping","params":"x"}"#,
            Id::from(7),
        ),
        (
            br#"{"jsonrpc":"2.0","id":7,"result":1,"error":{"code":1,"message":"m"}}"#,
            Id::from(7),
        ),
        (br#"{"jsonrpc":"2.0"}"#, Id::Null),
        (br#"42"#, Id::Null),
    ];
    for (body, want_id) in cases {
        match decode_body(body, &limits()) {
            Ok(Decoded::Single(Err((id, e)))) => {
                assert_eq!(&id, want_id, "{}", String::from_utf8_lossy(body));
                assert_eq!(e.code, code::INVALID_REQUEST);
            }
            other => panic!("{} decoded as {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn enforces_size_depth_and_batch_limits() {
    let big = vec![b' '; 2048];
    assert!(matches!(
        decode_body(&big, &limits()),
        Err(crate::DecodeError::TooLarge { .. })
    ));
    let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
    assert!(matches!(
        decode_body(deep.as_bytes(), &limits()),
        Err(crate::DecodeError::TooDeep { .. })
    ));
    let batch = br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"a"}]"#;
    assert!(matches!(
        decode_body(batch, &limits()),
        Err(crate::DecodeError::BatchTooLarge { .. })
    ));
    assert!(matches!(
        decode_body(b"[]", &limits()),
        Err(crate::DecodeError::EmptyBatch)
    ));
    assert!(matches!(
        decode_body(b"{\"jsonrpc\":", &limits()),
        Err(crate::DecodeError::NotJson)
    ));
}

#[test]
fn depth_ignores_brackets_in_strings() {
    assert_eq!(json_depth(br#"{"a":"[[[[[[[[[[[[\"{{{{"}"#, 3), Some(1));
    assert_eq!(json_depth(br#"[[["x"]]]"#, 2), None);
}

#[test]
fn message_round_trips_unknown_fields() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","x-extra":{"k":[1,2]}}}"#;
    let Ok(Decoded::Single(Ok(m))) = decode_body(body, &limits()) else {
        panic!()
    };
    let back: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    assert_eq!(
        back,
        serde_json::from_slice::<serde_json::Value>(body).unwrap()
    );
}

fn stateless_req(name: &str) -> Request {
    Request::new(
        1,
        "tools/call",
        Some(json!({"name": name, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        }})),
    )
}

#[test]
fn stateless_headers_must_match_body() {
    let r = stateless_req("db__read");
    let ok = stateless_envelope_check(&r, Some("2026-07-28"), Some("tools/call"), Some("db__read"));
    assert_eq!(ok, Ok(ProtocolVersion::V2026_07_28));
    let name =
        stateless_envelope_check(&r, Some("2026-07-28"), Some("tools/call"), Some("db__drop"));
    assert_eq!(name, Err(HeaderMismatch::Name("name")));
    let method =
        stateless_envelope_check(&r, Some("2026-07-28"), Some("tools/list"), Some("db__read"));
    assert_eq!(method, Err(HeaderMismatch::Method));
    let version =
        stateless_envelope_check(&r, Some("2025-11-25"), Some("tools/call"), Some("db__read"));
    assert_eq!(version, Err(HeaderMismatch::Version));
    let missing = stateless_envelope_check(&r, None, Some("tools/call"), Some("db__read"));
    assert_eq!(missing, Err(HeaderMismatch::Version));
    let no_meta = Request::new(1, "tools/call", Some(json!({"name": "x"})));
    assert_eq!(
        stateless_envelope_check(&no_meta, Some("2026-07-28"), Some("tools/call"), Some("x")),
        Err(HeaderMismatch::MissingEnvelope)
    );
}

#[test]
fn header_values_encode_and_decode_round_trip() {
    for v in ["db__read", "élè", " padded ", "=?base64?x?=", "line\nbreak"] {
        let enc = crate::encode_header_value(v);
        assert!(enc.bytes().all(|b| (0x20..0x7f).contains(&b)), "{enc}");
        assert_eq!(decode_header_value(&enc).as_deref(), Some(v));
    }
    assert_eq!(crate::encode_header_value("db__read"), "db__read");
}

#[test]
fn base64_header_values_decode_only_canonically() {
    assert_eq!(
        decode_header_value("=?base64?w6lsw6g=?=").as_deref(),
        Some("élè")
    );
    assert_eq!(decode_header_value("plain").as_deref(), Some("plain"));
    assert_eq!(decode_header_value("=?base64?w6lsw6h=?="), None);
    assert_eq!(decode_header_value("=?base64?***?="), None);
}

#[test]
fn sse_decoder_handles_split_chunks_priming_and_crlf() {
    let mut d = SseDecoder::new(1024);
    let mut events = d.feed(b"id: p1\ndata: \n\n: comment\nev").unwrap();
    events.extend(
        d.feed(b"ent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n")
            .unwrap(),
    );
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id.as_deref(), Some("p1"));
    assert_eq!(events[0].data, "");
    assert_eq!(events[1].data, "{\"a\":\n1}");
    assert_eq!(events[1].event.as_deref(), Some("message"));
    assert_eq!(d.last_event_id(), Some("p1"));
}

#[test]
fn sse_decoder_bounds_event_size() {
    let mut d = SseDecoder::new(16);
    assert!(d.feed(&[b'a'; 64]).is_err());
}

#[test]
fn sse_encoder_output_decodes() {
    let bytes = encode_sse_event(Some("7"), None, "{\"x\":1}");
    let mut d = SseDecoder::new(1024);
    let ev = d.feed(&bytes).unwrap();
    assert_eq!(ev[0].data, "{\"x\":1}");
    assert_eq!(ev[0].id.as_deref(), Some("7"));
}
