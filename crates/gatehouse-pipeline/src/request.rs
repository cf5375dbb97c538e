//! `handle_request`: one client request through the chain, then its audit record, metrics,
//! log line and trace. Every transport calls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gatehouse_policy::{Classification, Verb};
use gatehouse_protocol::{Message, Request, Response, RpcError, method};
use gatehouse_transport::metrics as m;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::chain;
use crate::client::ClientCtx;
use crate::gateway::Gateway;
use crate::trace::{self, Trace};

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
        let _flight = InFlight::enter(&self.in_flight);
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
        let mut call =
            crate::context::Call::new(self, &cfg, ctx, req, events, &mut trace, correlation);
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
            let recorded = if self.in_flight.load(Ordering::Relaxed) == 1 {
                writer.record_alone(event, durable).await
            } else {
                writer.record(event, durable).await
            };
            if let Err(e) = recorded
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

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> InFlight<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
