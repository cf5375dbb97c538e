//! Stage: upstream call, with the gateway's own connection (the client's credential and
//! envelope never travel further), then the response's own stages: error hygiene and
//! inspection. Requests the gateway answers itself are answered here too.

use std::sync::Arc;
use std::time::Instant;

use gatehouse_protocol::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, Message, Request, RpcError,
    method,
};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::authorize::digest;
use crate::client::ClientCtx;
use crate::config::Config;
use crate::context::Call;
use crate::context::Target;
use crate::context::View;
use crate::gateway::Gateway;
use crate::hygiene;
use crate::trace::Trace;
use gatehouse_transport::correlation::CorrelationId;
use gatehouse_transport::metrics as m;
use gatehouse_transport::refusal::{self, unavailable};
use gatehouse_transport::upstream::{CallRoute, UpstreamError, UserToken};

/// Stage: the call itself, and what comes back.
pub(super) async fn call(c: &mut Call<'_>) -> Result<Value, RpcError> {
    let (gw, cfg, ctx, correlation) = (c.gw, c.cfg, c.ctx, c.correlation);
    let target = std::mem::replace(&mut c.target, Target::Local);
    let result = match target {
        Target::Local => gw.answer_locally(cfg, &c.req, c.view, c.gate.as_ref()),
        // A tool held for review is unknown to the catalog; its caller is told why.
        Target::UnknownTool(name) if gw.pins.held(&name) => Ok(json!({
            "content": [{"type": "text", "text": format!("Tool {name} is held for review by the gateway's administrators: its definition is new, changed or flagged")}],
            "isError": true
        })),
        Target::UnknownTool(name) => Ok(json!({
            "content": [{"type": "text", "text": format!("Unknown tool: {name}")}],
            "isError": true
        })),
        Target::Logging => {
            gw.fan_out_logging(&c.req, c.view).await;
            Ok(json!({}))
        }
        Target::Upstream {
            upstream,
            mut params,
            guard,
            ..
        } => {
            if let (Some(args), Some(p)) = (
                c.outgoing_args.take(),
                params.as_mut().and_then(Value::as_object_mut),
            ) {
                p.insert("arguments".into(), args);
            }
            // Parameters the gateway fixes (config `fixed`): the caller could not send them.
            if c.req.method == method::TOOLS_CALL
                && let Some(fixed) = crate::validate::fixed_params(cfg, &guard.target)
                && let Some(p) = params.as_mut().and_then(Value::as_object_mut)
            {
                let args = p
                    .entry("arguments")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !args.is_object() {
                    *args = Value::Object(serde_json::Map::new());
                }
                if let Some(a) = args.as_object_mut() {
                    for (k, v) in fixed {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
            let mut forwarded = Request {
                id: c.req.id.clone(),
                method: c.req.method.clone(),
                params,
            };
            strip_envelope(&mut forwarded);
            let trace = &mut *c.trace;
            let mut result = gw
                .call_upstream(
                    ctx,
                    &upstream,
                    forwarded,
                    c.events.take(),
                    trace,
                    correlation,
                )
                .await
                .map_err(|e| {
                    if trace.upstream_error.is_some() || trace.own_answer {
                        e // the gateway's own answer: already generic
                    } else {
                        hygiene::upstream_error(cfg, e, correlation, trace)
                    }
                })?;
            hygiene::tool_error(cfg, &mut result, correlation, trace);
            // Stage: inspect response (size cap, DLP, byte budgets, size anomaly, prompt
            // injection, content inspection).
            gw.inspect(cfg, ctx, &guard.target, &mut result, trace, correlation)
                .await?;
            Ok(result)
        }
    }?;
    if c.trace.args_digest.is_some() {
        c.trace.result_digest = Some(digest(&result));
    }
    Ok(result)
}

impl Gateway {
    async fn fan_out_logging(self: &Arc<Self>, req: &Request, view: View<'_>) {
        let timeout = self.config().limits.request_timeout;
        for up in self.upstreams().values() {
            let wants = up
                .info()
                .is_some_and(|i| i.capabilities.get("logging").is_some());
            if wants && view.allows(up.name(), None) {
                let mut r = req.clone();
                strip_envelope(&mut r);
                if let Err(e) = up
                    .call(
                        r,
                        None,
                        timeout,
                        gatehouse_transport::upstream::Caller::default(),
                    )
                    .await
                {
                    tracing::warn!(upstream = up.name(), error = %e, "logging/setLevel not delivered");
                }
            }
        }
    }

    async fn call_upstream(
        self: &Arc<Self>,
        ctx: &ClientCtx,
        name: &str,
        mut req: Request,
        events: Option<mpsc::Sender<Message>>,
        trace: &mut Trace,
        correlation: CorrelationId,
    ) -> Result<Value, RpcError> {
        let up = self
            .upstream(name)
            .ok_or_else(|| unavailable(correlation))?;
        // An upstream called with each user's own account gets that user's token, or the
        // user is asked to connect it (a URL elicitation); never another credential.
        trace.own_answer = true;
        let cfg = self.config();
        let per_user = self.per_user_upstream(&cfg, name, correlation)?;
        let user = match &per_user {
            Some(s) => Some(self.user_upstream_token(s, ctx, name, correlation).await?),
            None => ctx.user_token.clone(),
        };
        // An upstream that acts for users gets an exchanged user token or no call: falling
        // back to the gateway's own token would lend its rights to whoever asked.
        if up.exchanges_tokens() && ctx.user_token.is_none() {
            tracing::warn!(target: "gatehouse::audit", upstream = name, principal = %ctx.principal.id, "call refused: the upstream needs a user token to exchange");
            return Err(refusal::invalid_request_at(
                "This server acts on behalf of users: sign in with an OAuth token",
                correlation,
            ));
        }
        trace.own_answer = false;
        let route = events.map(|events| CallRoute {
            events,
            progress_token: req.meta().and_then(|m| m.get("progressToken")).cloned(),
            owner: ctx.key().to_owned(),
            caps: ctx.session.as_ref().map(|s| s.caps).unwrap_or_default(),
        });
        let timeout = cfg.limits.request_timeout;
        let key = (ctx.key().to_owned(), req.id.clone());
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let cancellable = ctx.session.is_some();
        if cancellable {
            self.cancellable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key.clone(), cancel_tx);
        }
        let subscribe = (
            req.method == method::RESOURCES_SUBSCRIBE,
            req.method == method::RESOURCES_UNSUBSCRIBE,
        );
        let uri = req.param_str("uri").map(str::to_owned);
        let client_span = trace.spans.as_ref().map(|s| start_client_span(s, &mut req));
        // The client headers this upstream is configured to receive, and nothing else.
        let headers: Vec<(http::HeaderName, http::HeaderValue)> = match cfg
            .upstreams
            .iter()
            .find(|u| u.name == name)
            .map(|u| &u.forward_headers)
        {
            Some(names) if !names.is_empty() => ctx
                .forwarded
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k.as_str()))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let caller = gatehouse_transport::upstream::Caller {
            user: user.as_ref(),
            headers: &headers,
        };
        let started = Instant::now();
        let outcome = tokio::select! {
            r = up.call(req, route, timeout, caller) => Some(r),
            // The client sent notifications/cancelled: dropping the call tells the upstream.
            _ = cancel_rx => None,
        };
        if cancellable {
            self.cancellable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
        }
        up.latency.record(started.elapsed().as_secs_f64());
        if let (Some(span), Some(spans)) = (client_span, trace.spans.as_mut()) {
            // Kinds and codes only: an upstream's own error words (stack traces, SQL, paths)
            // reach no client and no collector unscrubbed.
            let error = match &outcome {
                None => Some("cancelled by the client".to_owned()),
                Some(Err(e)) => Some(format!("upstream {}", e.kind())),
                Some(Ok(r)) => r
                    .outcome
                    .as_ref()
                    .err()
                    .map(|e| format!("JSON-RPC error {}", e.code)),
            };
            span.finish(spans, name, error);
        }
        match outcome {
            None => Err(refusal::cancelled()),
            Some(Ok(resp)) => {
                if resp.outcome.is_ok()
                    && let (Some(sess), Some(uri)) = (&ctx.session, &uri)
                {
                    match subscribe {
                        (true, _) => self.hub.subscribe(&sess.sid, uri),
                        (_, true) => self.hub.unsubscribe(&sess.sid, uri),
                        _ => {}
                    }
                }
                resp.outcome
            }
            Some(Err(UpstreamError::Http(401))) if per_user.is_some() => {
                // The upstream no longer accepts the user's token (revoked there): forget it
                // and ask the user to connect again.
                let s = per_user.as_ref().expect("checked");
                tracing::warn!(target: "gatehouse::audit", upstream = name, principal = %ctx.principal.id, "the upstream refused the user's token: consent again");
                s.forget_upstream(&ctx.principal.id, name);
                trace.own_answer = true;
                Err(self
                    .user_upstream_token(s, ctx, name, correlation)
                    .await
                    .err()
                    .unwrap_or_else(|| unavailable(correlation)))
            }
            Some(Err(e)) => {
                let kind = e.kind();
                metrics::counter!(m::UPSTREAM_ERRORS, "upstream" => name.to_owned(), "kind" => kind).increment(1);
                tracing::warn!(upstream = name, %correlation, error = %e, "upstream call failed");
                trace.upstream_error = Some(e.clone());
                Err(match e {
                    UpstreamError::Timeout => refusal::upstream_timeout(correlation),
                    _ => unavailable(correlation),
                })
            }
        }
    }

    /// The authorization server when `name` is called with users' own tokens; an error when
    /// it is configured so but the server is not running (fail closed).
    fn per_user_upstream(
        &self,
        cfg: &Config,
        name: &str,
        correlation: CorrelationId,
    ) -> Result<Option<Arc<gatehouse_auth::AuthorizationServer>>, RpcError> {
        let configured = cfg
            .auth
            .as_ref()
            .and_then(|a| a.facade.as_ref())
            .is_some_and(|f| f.upstreams.iter().any(|u| u.upstream == name));
        if !configured {
            return Ok(None);
        }
        match self.oauth() {
            Some(s) if s.connects(name) => Ok(Some(s)),
            _ => Err(unavailable(correlation)),
        }
    }

    /// The caller's own token for upstream `name`, or the error that asks them to connect
    /// their account (`URL_ELICITATION_REQUIRED` with the consent link).
    async fn user_upstream_token(
        &self,
        s: &gatehouse_auth::AuthorizationServer,
        ctx: &ClientCtx,
        name: &str,
        correlation: CorrelationId,
    ) -> Result<UserToken, RpcError> {
        use gatehouse_auth::UpstreamCredential as C;
        match s.upstream_credential(&ctx.principal, name).await {
            Ok(C::Token(t)) => UserToken::for_upstream(&t).ok_or_else(|| unavailable(correlation)),
            Ok(C::Consent { url, id }) => {
                tracing::info!(target: "gatehouse::audit", upstream = name, principal = %ctx.principal.id, %correlation, "the user must connect an account: consent link issued");
                let message =
                    format!("Connect your account at {name} to use this tool, then call it again.");
                Err(refusal::connect_account(message, &id, &url, correlation))
            }
            Ok(C::NotEligible) => Err(refusal::invalid_request_at(
                "This server acts with each user's own account: sign in through the gateway",
                correlation,
            )),
            Err(e) => {
                tracing::warn!(upstream = name, %correlation, error = %e, "user's upstream token unavailable");
                Err(unavailable(correlation))
            }
        }
    }
}

/// The 2026-07-28 envelope describes the client's leg; the upstream leg has its own.
fn strip_envelope(req: &mut Request) {
    if let Some(meta) = req.meta_mut() {
        for k in [
            META_PROTOCOL_VERSION,
            META_CLIENT_CAPABILITIES,
            META_CLIENT_INFO,
        ] {
            meta.remove(k);
        }
    }
    if let Some(p) = req.params.as_mut().and_then(Value::as_object_mut)
        && p.get("_meta")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        p.remove("_meta");
    }
}

/// The upstream call's span while it runs: its id, when it started, what it calls.
struct ClientSpan {
    id: [u8; 8],
    started: u64,
    method: String,
    tool: Option<String>,
}

/// Starts the upstream call's span and hands its context on in `params._meta.traceparent`
/// (an HTTP upstream also gets it as the `traceparent` header).
fn start_client_span(spans: &gatehouse_transport::otel::Spans, req: &mut Request) -> ClientSpan {
    let id = spans.new_id();
    let tp = gatehouse_transport::otel::traceparent(&spans.trace_id, &id);
    if let Some(p) = req
        .params
        .get_or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        && let Some(meta) = p
            .entry("_meta")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
    {
        meta.insert("traceparent".into(), Value::String(tp));
    }
    ClientSpan {
        id,
        started: gatehouse_transport::otel::now_ns(),
        method: req.method.clone(),
        tool: req.param_str("name").map(str::to_owned),
    }
}

impl ClientSpan {
    fn finish(
        self,
        spans: &mut gatehouse_transport::otel::Spans,
        upstream: &str,
        error: Option<String>,
    ) {
        use gatehouse_transport::otel::Attr;
        let mut attrs = vec![
            ("mcp.method.name", Attr::from(self.method.as_str())),
            ("gatehouse.upstream", Attr::from(upstream)),
        ];
        let name = match &self.tool {
            Some(t) if self.method == "tools/call" => {
                attrs.push(("gen_ai.operation.name", "execute_tool".into()));
                attrs.push(("gen_ai.tool.name", t.as_str().into()));
                format!("{} {t}", self.method)
            }
            _ => self.method.clone(),
        };
        spans.child(
            name,
            gatehouse_transport::otel::Kind::Client,
            self.started,
            self.id,
            attrs,
            error,
        );
    }
}
