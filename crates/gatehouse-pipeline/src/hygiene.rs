//! Error hygiene: an upstream's failure reaches the client as a generic message and the
//! correlation id; the detail goes to the log and, with secrets masked, to the audit.

use std::sync::OnceLock;

use gatehouse_protocol::{RpcError, code};
use serde_json::{Value, json};

use crate::config::{Config, RawErrorMode};
use crate::trace::Trace;
use gatehouse_transport::correlation::CorrelationId;

/// Longest upstream detail kept in the audit record.
const MAX_DETAIL: usize = 2000;

fn hygiene() -> &'static gatehouse_detect::Hygiene {
    static H: OnceLock<gatehouse_detect::Hygiene> = OnceLock::new();
    H.get_or_init(gatehouse_detect::Hygiene::new)
}

/// The detail as the audit may keep it: bounded, secrets and personal data masked.
fn detail(cfg: &Config, text: &str) -> String {
    let mut end = text.len().min(MAX_DETAIL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut report = gatehouse_detect::Report::default();
    let tokens = gatehouse_detect::Tokenizer::new(b"audit");
    gatehouse_detect::redact::apply(
        &cfg.dlp.recognizers,
        &gatehouse_detect::Profile::default(),
        &tokens,
        &text[..end],
        &mut report,
    )
    .unwrap_or_else(|| text[..end].to_owned())
}

/// Whether this message may reach the client as it is, and the internals it shows.
fn verdict(cfg: &Config, message: &str) -> (bool, Vec<&'static str>) {
    if cfg.errors.passes(message) {
        return (true, Vec::new());
    }
    let leaks = hygiene().leaks(message);
    let fine = cfg.errors.mode != RawErrorMode::Strict && leaks.is_empty();
    (fine, leaks)
}

/// A JSON-RPC error an upstream answered.
pub(super) fn upstream_error(
    cfg: &Config,
    e: RpcError,
    correlation: CorrelationId,
    trace: &mut Trace,
) -> RpcError {
    if cfg.errors.pass_codes.contains(&e.code) {
        return e;
    }
    let (fine, leaks) = verdict(cfg, &e.message);
    // `data` passes when it shows no internals either (protocol errors carry what clients
    // need there, e.g. the URL elicitations of -32042).
    let data_fine = e.data.as_ref().is_none_or(|d| {
        cfg.errors.passes(&e.message) || hygiene().leaks(&d.to_string()).is_empty()
    });
    if fine && data_fine {
        return e;
    }
    tracing::warn!(target: "gatehouse::audit", %correlation, code = e.code, leaks = ?leaks, message = %e.message, "upstream error scrubbed");
    trace.scrubbed = Some(detail(cfg, &e.message));
    // Standard codes say what kind of failure it was without saying how.
    let code = if (-32700..=-32000).contains(&e.code) {
        e.code
    } else {
        code::INTERNAL_ERROR
    };
    gatehouse_transport::refusal::upstream_failed(code, correlation)
}

/// A tool result with `isError: true` whose text shows internals: replaced whole.
pub(super) fn tool_error(
    cfg: &Config,
    result: &mut Value,
    correlation: CorrelationId,
    trace: &mut Trace,
) {
    if result.get("isError") != Some(&Value::Bool(true)) {
        return;
    }
    let text: String = result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    // Structured content of a failed call can carry the same internals.
    let text = match result.get("structuredContent") {
        Some(sc) => format!("{text}\n{sc}"),
        None => text,
    };
    let (fine, leaks) = verdict(cfg, &text);
    if fine {
        return;
    }
    tracing::warn!(target: "gatehouse::audit", %correlation, leaks = ?leaks, "tool error scrubbed");
    trace.scrubbed = Some(detail(cfg, &text));
    *result = json!({
        "content": [{"type": "text", "text": format!(
            "The tool failed. Give this reference to an administrator: {correlation}"
        )}],
        "isError": true,
        "_meta": {"gatehouse/correlationId": correlation.to_string()},
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(errors: &str) -> Config {
        Config::from_yaml(errors, &|_| None).unwrap()
    }

    #[test]
    fn internals_are_scrubbed_unless_allowlisted() {
        let leaky = || {
            RpcError::new(
                -32603,
                "relation \"payroll\" does not exist at /srv/app/db.py",
            )
        };
        let c = CorrelationId::default();
        let mut trace = Trace::default();
        // Default: scrubbed, detail kept for the audit.
        let e = upstream_error(&cfg("{}"), leaky(), c, &mut trace);
        assert_eq!(e.code, -32603);
        assert!(!e.message.contains("payroll"), "{}", e.message);
        assert!(
            trace
                .scrubbed
                .as_deref()
                .is_some_and(|d| d.contains("payroll"))
        );
        // A clean message passes as it is.
        let clean = RpcError::new(-32602, "value must be between 1 and 10");
        assert_eq!(
            upstream_error(&cfg("{}"), clean.clone(), c, &mut trace),
            clean
        );
        // Strict: nothing passes.
        let e = upstream_error(&cfg("errors: {mode: strict}"), clean.clone(), c, &mut trace);
        assert_ne!(e.message, clean.message);
        // Allowlisted by message or by code.
        let by_message = cfg("errors: {pass: ['^relation']}");
        assert_eq!(
            upstream_error(&by_message, leaky(), c, &mut trace).message,
            leaky().message
        );
        let by_code = cfg("errors: {mode: strict, pass_codes: [-32602]}");
        assert_eq!(
            upstream_error(&by_code, clean.clone(), c, &mut trace),
            clean
        );
        // A failed tool result leaking only in its structured content is replaced too.
        let mut r = json!({"content": [{"type": "text", "text": "failed"}], "isError": true,
            "structuredContent": {"error": "connect to db-7.prod.internal:5432 refused"}});
        tool_error(&cfg("{}"), &mut r, c, &mut trace);
        assert!(!r.to_string().contains("prod.internal"), "{r}");
        // A non-standard code becomes -32603.
        let odd = RpcError::new(42, "Traceback (most recent call last):");
        assert_eq!(upstream_error(&cfg("{}"), odd, c, &mut trace).code, -32603);
    }
}
