//! The OTLP trace export request in protobuf (opentelemetry-proto, `trace/v1` and
//! `collector/trace/v1`), written by hand: the dozen fields Gatehouse sends do not need a
//! code generator or a protobuf runtime in the build.

use super::{Attr, Kind, Span};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A nested message: `body` writes it, then it is framed with its length.
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    bytes(out, field, &inner);
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string_value = 1; bool_value =
/// 2; int_value = 3 }`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Attr) {
    message(out, field, |kv| {
        bytes(kv, 1, key.as_bytes());
        message(kv, 2, |any| match value {
            Attr::Str(s) => bytes(any, 1, s.as_bytes()),
            Attr::Bool(b) => {
                tag(any, 2, VARINT);
                varint(any, u64::from(*b));
            }
            Attr::Int(i) => {
                tag(any, 3, VARINT);
                varint(any, *i as u64);
            }
        });
    });
}

/// `Span` (trace/v1): ids, name, kind, times, attributes, status.
fn span(out: &mut Vec<u8>, s: &Span) {
    message(out, 2, |m| {
        bytes(m, 1, &s.trace_id);
        bytes(m, 2, &s.span_id);
        if let Some(p) = &s.parent {
            bytes(m, 4, p);
        }
        bytes(m, 5, s.name.as_bytes());
        tag(m, 6, VARINT);
        varint(
            m,
            match s.kind {
                Kind::Internal => 1,
                Kind::Server => 2,
                Kind::Client => 3,
            },
        );
        fixed64(m, 7, s.start_ns);
        fixed64(m, 8, s.end_ns);
        for (k, v) in &s.attrs {
            key_value(m, 9, k, v);
        }
        // Status { message = 2; code = 3 (1 ok, 2 error) }: only errors are marked.
        if let Some(e) = &s.error {
            message(m, 15, |st| {
                bytes(st, 2, e.as_bytes());
                tag(st, 3, VARINT);
                varint(st, 2);
            });
        }
    });
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }` with one
/// resource (this gateway) and one instrumentation scope.
pub(super) fn export_request(resource: &[(&str, Attr)], spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    message(&mut out, 1, |rs| {
        message(rs, 1, |r| {
            for (k, v) in resource {
                key_value(r, 1, k, v);
            }
        });
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"gatehouse");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                span(ss, s);
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_encoded_as_protobuf_does() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        // Field 5, length-delimited "ab": tag 0x2a.
        bytes(&mut out, 5, b"ab");
        assert_eq!(out, [0x2a, 2, b'a', b'b']);
        out.clear();
        fixed64(&mut out, 7, 1);
        assert_eq!(out, [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
        out.clear();
        // A negative int64 takes ten bytes, as protobuf writes it.
        key_value(&mut out, 9, "k", &Attr::Int(-1));
        assert_eq!(out.len(), 2 + 3 + 2 + 11);
    }
}
