//! Every error the gateway itself sends a client, built here and nowhere else, and the HTTP
//! status each is sent with. Stages and transports name the refusal; this module decides
//! its JSON-RPC code, the words the client sees (never internal detail) and the data it
//! carries (the correlation id an operator can find the audit record by).

use std::time::Duration;

use gatehouse_protocol::{RpcError, code};
use http::StatusCode;
use serde_json::{Value, json};

use crate::correlation::CorrelationId;

fn cid(c: CorrelationId) -> Value {
    json!({"correlationId": c.to_string()})
}

/// Malformed or unusable parameters (JSON-RPC -32602).
pub fn invalid_params(message: impl Into<String>) -> RpcError {
    RpcError::new(code::INVALID_PARAMS, message)
}

/// A request that is not valid here (-32600).
pub fn invalid_request(message: impl Into<String>) -> RpcError {
    RpcError::new(code::INVALID_REQUEST, message)
}

/// A request the caller may not make now, with the id of its audit record (-32600).
pub fn invalid_request_at(message: impl Into<String>, c: CorrelationId) -> RpcError {
    invalid_request(message).with_data(cid(c))
}

/// No such method (-32601).
pub fn method_not_found(message: impl Into<String>) -> RpcError {
    RpcError::new(code::METHOD_NOT_FOUND, message)
}

/// A `params.{what}` the method needs is missing.
pub fn missing_param(what: &str) -> RpcError {
    invalid_params(format!("missing params.{what}"))
}

/// A prompt nothing in scope exposes.
pub fn unknown_prompt(name: &str) -> RpcError {
    invalid_params(format!("Unknown prompt: {name}"))
}

/// A resource nothing in scope serves (-32002).
pub fn resource_not_found(uri: Option<&str>) -> RpcError {
    let e = RpcError::new(code::RESOURCE_NOT_FOUND, "Resource not found");
    match uri {
        Some(u) => e.with_data(json!({"uri": u})),
        None => e,
    }
}

/// Refused by a control (policy, DLP, content inspection, a withheld result).
pub fn forbidden(message: impl Into<String>, c: CorrelationId) -> RpcError {
    RpcError::new(code::FORBIDDEN, message).with_data(cid(c))
}

/// Refused with data of the control's own (a step-up requirement), which must carry
/// `correlationId`.
pub fn forbidden_with(message: impl Into<String>, data: Value) -> RpcError {
    RpcError::new(code::FORBIDDEN, message).with_data(data)
}

/// The upstream failed in a way the client is not shown (its words scrubbed); `code` is a
/// standard JSON-RPC code saying what kind of failure it was.
pub fn upstream_failed(code: i64, c: CorrelationId) -> RpcError {
    RpcError::new(code, "The upstream server could not complete this request").with_data(cid(c))
}

/// The upstream cannot be reached (or must not be, for this caller) (-32000).
pub fn unavailable(c: CorrelationId) -> RpcError {
    RpcError::new(code::CONNECTION_CLOSED, "Upstream unavailable").with_data(cid(c))
}

/// The upstream a route names is gone (a reload removed it).
pub fn upstream_gone() -> RpcError {
    RpcError::new(code::CONNECTION_CLOSED, "Upstream unavailable")
}

/// The upstream did not answer in time (-32001).
pub fn upstream_timeout(c: CorrelationId) -> RpcError {
    RpcError::new(code::REQUEST_TIMEOUT, "Upstream timed out").with_data(cid(c))
}

/// The client cancelled its call (-32001).
pub fn cancelled() -> RpcError {
    RpcError::new(code::REQUEST_TIMEOUT, "Request cancelled")
}

/// A rate limit or byte budget is spent (-32029): `wait` until the next call may pass.
pub fn rate_limited(
    message: impl Into<String>,
    limit: &str,
    wait: Duration,
    c: CorrelationId,
) -> RpcError {
    let ms = wait.as_millis().max(1) as u64;
    RpcError::new(code::RATE_LIMITED, message)
        .with_data(json!({"retryAfterMs": ms, "limit": limit, "correlationId": c.to_string()}))
}

/// The gateway's own capacity is reached (-32603, retry shortly).
pub fn at_capacity() -> RpcError {
    RpcError::new(
        code::INTERNAL_ERROR,
        "gateway is at capacity; retry shortly",
    )
    .with_data(json!({"retryAfterMs": 1000}))
}

/// Something the gateway needs failed (a store, a content inspector): the call fails
/// closed (-32603).
pub fn internal(message: impl Into<String>, c: CorrelationId) -> RpcError {
    RpcError::new(code::INTERNAL_ERROR, message).with_data(cid(c))
}

/// An internal failure with no call to name (a stream ended, no client can answer).
pub fn internal_bare(message: impl Into<String>) -> RpcError {
    RpcError::new(code::INTERNAL_ERROR, message)
}

/// The user must connect an account first: a URL elicitation (-32042).
pub fn connect_account(message: String, id: &str, url: &str, c: CorrelationId) -> RpcError {
    RpcError::new(code::URL_ELICITATION_REQUIRED, message.clone()).with_data(json!({
        "elicitations": [{"mode": "url", "elicitationId": id, "url": url, "message": message}],
        "correlationId": c.to_string(),
    }))
}

/// Refused at the edge, before any message was read, with the code the edge chose.
pub fn edge(code: i64, message: impl Into<String>) -> RpcError {
    RpcError::new(code, message)
}

/// The stateless envelope's headers disagree with the body.
pub fn envelope(m: &gatehouse_protocol::HeaderMismatch) -> RpcError {
    use gatehouse_protocol::{HeaderMismatch, ProtocolVersion};
    match m {
        HeaderMismatch::MissingEnvelope => invalid_params(m.to_string()),
        HeaderMismatch::UnsupportedVersion { requested } => {
            RpcError::new(code::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
                .with_data(json!({"supported": [ProtocolVersion::LATEST_STATELESS.as_str()], "requested": requested}))
        }
        _ => RpcError::new(code::HEADER_MISMATCH, m.to_string()),
    }
}

/// The HTTP status a JSON-RPC error is sent with. Sessions (2025 and older) answer every
/// JSON-RPC error with 200; the stateless protocol maps malformed requests to 400 and
/// unknown methods to 404. Whatever the version, a spent rate limit is 429.
pub fn http_status(e: &RpcError, stateless: bool) -> StatusCode {
    if e.code == code::RATE_LIMITED && retry_after_secs(e).is_some() {
        return StatusCode::TOO_MANY_REQUESTS;
    }
    if !stateless {
        return StatusCode::OK;
    }
    match e.code {
        code::PARSE_ERROR
        | code::INVALID_REQUEST
        | code::INVALID_PARAMS
        | code::HEADER_MISMATCH
        | code::MISSING_REQUIRED_CLIENT_CAPABILITY
        | code::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// `Retry-After` (whole seconds, rounded up) for a rate-limit refusal.
pub fn retry_after_secs(e: &RpcError) -> Option<u64> {
    if e.code != code::RATE_LIMITED {
        return None;
    }
    e.data
        .as_ref()
        .and_then(|d| d.get("retryAfterMs"))
        .and_then(Value::as_u64)
        .map(|ms| ms.div_ceil(1000).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_protocol_version_and_rate_limits_are_429_everywhere() {
        let c = CorrelationId::default();
        let bad = invalid_params("x");
        assert_eq!(http_status(&bad, false), StatusCode::OK);
        assert_eq!(http_status(&bad, true), StatusCode::BAD_REQUEST);
        let unknown = method_not_found("x");
        assert_eq!(http_status(&unknown, true), StatusCode::NOT_FOUND);
        assert_eq!(http_status(&forbidden("x", c), true), StatusCode::OK);
        let limited = rate_limited("x", "calls", Duration::from_millis(1500), c);
        assert_eq!(http_status(&limited, false), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_status(&limited, true), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after_secs(&limited), Some(2));
        // Every refusal that concerns a call names its audit record.
        for e in [
            forbidden("x", c),
            unavailable(c),
            upstream_timeout(c),
            internal("x", c),
        ] {
            assert!(
                e.data
                    .as_ref()
                    .is_some_and(|d| d.get("correlationId").is_some()),
                "{e:?}"
            );
        }
    }
}
