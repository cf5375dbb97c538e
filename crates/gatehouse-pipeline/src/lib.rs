//! Gatehouse's request pipeline: the gateway's runtime state ([`gateway::Gateway`]), the
//! request context, the verdict type, one file per stage and the chain that orders them,
//! and the controls' own state (approvals, pins, rate limits, exfiltration baselines, the
//! audit writer). Every transport hands a decoded, authenticated message to
//! [`gateway::Gateway::handle_request`].
//!
//! The request path, in order (DESIGN.md §2). Two halves:
//!
//! ```text
//! edge (every transport; `gatehouse_proxy::edge`):  decode ─► authenticate ─► bind session
//! chain (`chain.rs`, one line per stage):
//!   scope ─► route ─► authorize ─► validate (envelope, schema, rules) ─► detect
//!   ─► resolve URL hosts ─► DLP / ICAP on arguments ─► rate limit ─► approval
//!   ─► upstream call ─► hygiene ─► inspect response
//! then audit (`handle_request`, `trace.rs`)
//! ```
//!
//! Each stage takes the [`chain::Call`] and returns a [`Verdict`]. A stage that cannot
//! decide denies.

use std::sync::Arc;
use std::time::Instant;

use gatehouse_protocol::{Message, ProtocolVersion, Request, Response, RpcError, method};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::authorize::Named;
use crate::catalog::in_scope;
use crate::config::VirtualServer;
use crate::gateway::Gateway;
use gatehouse_auth::{AuthMethod, KeyLimits};
use gatehouse_policy::{Action, Classification, Verb};
use gatehouse_transport::metrics as m;
use gatehouse_transport::session::SessionClaims;
use gatehouse_transport::upstream::UserToken;

pub use gatehouse_auth::Principal;

pub mod approval;
pub mod arbiter;
pub mod audit;
pub mod authorize;
pub mod catalog;
/// The configuration, validated (its own crate: plain data, no clients).
pub use gatehouse_config as config;
pub mod exfil;
pub mod fleet;
pub mod gateway;
pub mod icap;
pub mod pins;
pub mod ratelimit;

mod chain;
mod detect;
mod forward;
mod hold;
mod hygiene;
mod inspect;
mod limits;
mod local;
mod outbound;
mod policy;
mod route;
mod search;
#[cfg(test)]
mod tests;
mod trace;
mod validate;

pub(crate) use validate::Schemas;

/// Every string in a JSON value, scanned by the pattern stage (with JSON pointers).
pub use detect::scan as scan_strings;
pub use detect::{Place, judge};
pub(crate) use detect::{stage_label, to_audit as detection_record};
use trace::Trace;

/// A stage's decision: go on, refuse, hold for a person, or answer now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    Deny(Denial),
    /// Allowed only once a person approves this exact call (the rule that asks).
    RequireApproval(&'static str),
    /// The request ends here with this answer (a local answer, a pending approval, a
    /// refusal already recorded by the stage that made it).
    Answer(Result<Value, RpcError>),
}

/// A refusal: the rule that refused, the reason for the log and audit, and the error the
/// client sees (which never carries internal detail).
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub rule: &'static str,
    pub reason: String,
    pub error: RpcError,
}

impl Denial {
    fn new(rule: &'static str, reason: impl Into<String>, error: RpcError) -> Self {
        Self {
            rule,
            reason: reason.into(),
            error,
        }
    }
}

/// Everything the pipeline knows about the client side of one request.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    pub principal: Arc<Principal>,
    pub version: ProtocolVersion,
    pub session: Option<SessionClaims>,
    /// Virtual server name; `None` for the full endpoint.
    pub scope: Option<String>,
    /// `clientInfo.name`, from `initialize` or the stateless envelope.
    pub client: Option<String>,
    /// The caller's address as the listener saw it.
    pub source: Option<std::net::IpAddr>,
    /// The caller's bearer token when it is an OAuth token (JWT or introspected), only for
    /// upstreams that exchange it (RFC 8693); never forwarded as is.
    pub user_token: Option<UserToken>,
    /// The client's W3C trace context (`traceparent` header), when it sent a valid one.
    pub traceparent: Option<gatehouse_transport::otel::Parent>,
    /// The client's headers some upstream is configured to receive (`forward_headers`);
    /// empty when none is.
    pub forwarded: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// The client's headers that some upstream's `forward_headers` names and that may ever be
/// passed on; nothing is copied when no upstream forwards any.
pub fn forwardable(
    cfg: &crate::config::Config,
    headers: &http::HeaderMap,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    if cfg.upstreams.iter().all(|u| u.forward_headers.is_empty()) {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|(k, _)| {
            cfg.upstreams
                .iter()
                .any(|u| u.forward_headers.iter().any(|f| f == k.as_str()))
                && !gatehouse_config::never_forwarded(k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The token to keep for exchange: an OAuth access token the caller authenticated with.
/// API keys, certificates and development mode have none.
pub fn user_token(
    principal: &Principal,
    authorization: Option<&http::HeaderValue>,
) -> Option<UserToken> {
    match principal.method {
        AuthMethod::Jwt { .. } | AuthMethod::Introspection { .. } => {
            authorization.and_then(UserToken::from_authorization)
        }
        _ => None,
    }
}

impl ClientCtx {
    /// The session id, or empty for stateless requests.
    pub fn key(&self) -> &str {
        self.session.as_ref().map(|s| s.sid.as_str()).unwrap_or("")
    }
}

/// What a caller can see and reach: the virtual server's scope and, for an API key, the
/// key's server and tool limits. Routing and list filtering both ask it, so a caller never
/// sees what it cannot call.
#[derive(Debug, Clone, Copy)]
struct View<'a> {
    scope: Option<&'a VirtualServer>,
    limits: Option<&'a KeyLimits>,
}

impl View<'_> {
    fn allows(&self, upstream: &str, tool: Option<&str>) -> bool {
        in_scope(self.scope, upstream, tool) && self.limits.is_none_or(|l| l.allows(upstream, tool))
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// Answered by the gateway itself.
    Local,
    /// One upstream, with the params rewritten for it.
    Upstream {
        upstream: String,
        params: Option<Value>,
        tool: Option<String>,
        /// What authorization decides on.
        guard: Box<Guard>,
    },
    /// Every upstream in scope that supports logging.
    Logging,
    /// A tool name nothing in scope exposes. Answered as a tool error, as MCP servers do,
    /// and never forwarded: only listed tools can be called.
    UnknownTool(String),
}

/// A routed request as authorization sees it: the action, the target's facts, and the
/// name a "not found" answer would use.
#[derive(Debug, Clone, PartialEq)]
struct Guard {
    action: Action,
    target: gatehouse_policy::Target,
    named: Named,
    name: String,
}

impl Gateway {
    /// Runs one client request through the chain and returns its response. Messages the
    /// upstream sends during the call (progress, logs, server requests) go to `events`.
    pub async fn handle_request(
        self: &Arc<Self>,
        ctx: &ClientCtx,
        req: Request,
        events: Option<mpsc::Sender<Message>>,
    ) -> Response {
        let started = Instant::now();
        let correlation = self.correlation_id();
        let method_label = m::method_label(&req.method);
        let id = req.id.clone();
        let mut trace = Trace::default();
        // Traced: the request's span, under the client's trace context (header or `_meta`).
        let mut named = None;
        if let Some(t) = &self.tracer {
            let parent = ctx.traceparent.or_else(|| {
                req.meta()
                    .and_then(|m| m.get("traceparent"))
                    .and_then(Value::as_str)
                    .and_then(gatehouse_transport::otel::Parent::parse)
            });
            trace.spans = t.start(parent);
            if trace.spans.is_some() {
                // The client's words, bounded: a span is no place for a megabyte of name.
                let bounded = |s: &str, n: usize| s.chars().take(n).collect::<String>();
                named = Some((
                    bounded(&req.method, 64),
                    req.param_str("name").map(|n| bounded(n, 128)),
                ));
            }
        }
        let cfg = self.config();
        let mut call = chain::Call::new(self, &cfg, ctx, req, events, &mut trace, correlation);
        let mut outcome = chain::chain(&mut call).await;
        drop(call);
        let status = match &outcome {
            _ if trace.denied_by.is_some() => "denied",
            Ok(_) if trace.pending => "approval_pending",
            Ok(_) if trace.unknown_tool => "unknown_tool",
            Ok(_) => "ok",
            Err(_) => "error",
        };
        // Stage: audit. Last, so it records the final outcome of every request, allowed or
        // not: a log line for operators, and the hash-chained record in the store. Denied
        // calls, calls that change something and calls on confidential or restricted data
        // are answered only once their record is committed; if it cannot be, they fail.
        let finished = trace::Finished {
            ctx,
            correlation,
            method: method_label,
            status,
            latency_us: started.elapsed().as_micros() as u64,
        };
        let unremarkable = trace.unremarkable(self.audit.is_some());
        if let Some(writer) = &self.audit {
            let durable = cfg.audit.as_ref().is_some_and(|a| a.durable_all)
                || status == "denied"
                || trace.verb.is_some_and(|v| v != Verb::Read)
                || trace
                    .classification
                    .is_some_and(|c| c >= Classification::Confidential);
            let event = trace.event(&finished);
            if let Err(e) = writer.record(event, durable).await
                && durable
            {
                tracing::error!(target: "gatehouse::audit", %correlation, error = %e, "audit record not committed: answer withheld");
                outcome = Err(gatehouse_transport::refusal::internal(
                    "The audit record of this call could not be written; its result is withheld",
                    correlation,
                ));
            }
        }
        trace.log(&finished, unremarkable);
        if let (Some(t), Some(spans), Some((method, name))) =
            (&self.tracer, trace.spans.take(), named)
        {
            let (span_name, attrs, error) =
                server_span(ctx, &id, &method, name, &trace, &finished, &outcome);
            t.finish(spans, span_name, attrs, error);
        }
        metrics::counter!(m::REQUESTS, "method" => method_label, "outcome" => status).increment(1);
        match outcome {
            Ok(mut result) => {
                if ctx.version.is_stateless()
                    && let Some(o) = result.as_object_mut()
                {
                    o.entry("resultType").or_insert_with(|| json!("complete"));
                    if cacheable(method_label) {
                        // Lists are filtered per caller: never shareable across callers.
                        o.insert("cacheScope".into(), json!("private"));
                        o.entry("ttlMs").or_insert_with(|| json!(0));
                    }
                }
                Response::ok(id, result)
            }
            Err(e) => Response::err(id, e),
        }
    }
}

/// 2026-07-28 results that carry caching hints.
fn cacheable(m: &str) -> bool {
    matches!(
        m,
        method::TOOLS_LIST
            | method::PROMPTS_LIST
            | method::RESOURCES_LIST
            | method::RESOURCES_TEMPLATES_LIST
            | method::RESOURCES_READ
            | method::DISCOVER
    )
}

/// The request's own span: its name and attributes (OpenTelemetry's MCP and GenAI
/// semantic conventions, and Gatehouse's own), and its error when it failed.
fn server_span(
    ctx: &ClientCtx,
    id: &gatehouse_protocol::Id,
    method: &str,
    name: Option<String>,
    trace: &Trace,
    finished: &trace::Finished<'_>,
    outcome: &Result<Value, RpcError>,
) -> (
    String,
    Vec<(&'static str, gatehouse_transport::otel::Attr)>,
    Option<String>,
) {
    use gatehouse_transport::otel::Attr;
    let mut attrs: Vec<(&'static str, Attr)> = vec![
        ("mcp.method.name", method.into()),
        ("mcp.protocol.version", ctx.version.as_str().into()),
        ("jsonrpc.protocol.version", "2.0".into()),
        ("network.protocol.name", "http".into()),
        (
            "gatehouse.correlation_id",
            finished.correlation.to_string().into(),
        ),
        ("gatehouse.outcome", finished.status.into()),
    ];
    match id {
        gatehouse_protocol::Id::Num(n) => attrs.push(("jsonrpc.request.id", n.to_string().into())),
        gatehouse_protocol::Id::Str(s) => attrs.push(("jsonrpc.request.id", s.as_str().into())),
        gatehouse_protocol::Id::Null => {}
    }
    let span_name = match (&name, method) {
        (Some(tool), "tools/call") => {
            attrs.push(("gen_ai.operation.name", "execute_tool".into()));
            attrs.push(("gen_ai.tool.name", tool.as_str().into()));
            format!("{method} {tool}")
        }
        (Some(n), "prompts/get") => {
            attrs.push(("gen_ai.prompt.name", n.as_str().into()));
            format!("{method} {n}")
        }
        _ => method.to_owned(),
    };
    if let Some(up) = &trace.upstream {
        attrs.push(("gatehouse.upstream", up.as_str().into()));
    }
    if let Some(rule) = trace.denied_by {
        attrs.push(("gatehouse.rule", rule.into()));
    }
    let error = match outcome {
        Ok(_) if finished.status == "denied" => {
            Some(format!("denied: {}", trace.denied_by.unwrap_or("")))
        }
        Ok(_) => None,
        Err(e) => {
            attrs.push(("rpc.jsonrpc.error_code", Attr::Int(e.code)));
            attrs.push(("error.type", e.code.to_string().into()));
            Some(e.message.chars().take(200).collect())
        }
    };
    (span_name, attrs, error)
}
