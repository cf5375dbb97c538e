//! The request path, in order. This file is the one place the order of the controls is
//! written down (DESIGN.md §2); every transport calls into it.
//!
//! ```text
//! decode ─► authenticate ─► bind session            (edge: `authenticate`, `bind_session`)
//!   ─► route ─► authorize ─► validate ─► detect ─► rate limit ─► approval
//!   ─► upstream call ─► inspect response ─► audit    (`Gateway::handle_request`)
//! ```
//!
//! Each stage returns a [`Verdict`]. A stage that cannot decide denies.

use std::sync::Arc;
use std::time::Instant;

use gatehouse_protocol::{
    Id, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, Message,
    ProtocolVersion, Request, Response, RpcError, code, method,
};
use serde_json::{Map, Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::authorize::{Gate, Named, digest, refusal};
use crate::catalog::in_scope;
use crate::config::{Config, VirtualServer};
use crate::gateway::{CorrelationId, Gateway};
use crate::metrics as m;
use crate::session::{SessionClaims, SessionError};
use crate::tls::PeerIdentity;
use crate::upstream::{CallRoute, UpstreamError, UserToken};
use gatehouse_audit::{AuditEvent, EventKind};
use gatehouse_auth::{AuthError, AuthMethod, KEY_PREFIX, KeyLimits};
use gatehouse_policy::{Action, Classification, Outcome, Verb};

pub use gatehouse_auth::Principal;

mod local;
mod route;

use local::is_filtered_list;

/// A stage's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    Deny(Denial),
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

/// Why the edge refused a caller before any message was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no identity provider is configured and development mode is off")]
    NotConfigured,
    #[error(transparent)]
    Refused(#[from] AuthError),
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub(crate) fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

/// Stage: authenticate. Runs first because every later decision is about *who* asks; an
/// unknown caller learns nothing, not even which tools exist. The client's credential
/// stops here: nothing downstream ever forwards it.
pub async fn authenticate(
    gw: &Gateway,
    cfg: &Config,
    authorization: Option<&str>,
    peer: Option<&PeerIdentity>,
) -> Result<Arc<Principal>, AuthFailure> {
    // Development mode: a caller without a credential is anonymous; one that presents an
    // API key is that key's principal (the quickstart's demo roles).
    if cfg.dev_mode && (authorization.is_none() || cfg.api_key_pepper.is_none()) {
        return Ok(gw.anonymous());
    }
    let principal = identify(gw, cfg, authorization, peer).await?;
    // A person or service the directory deprovisioned is refused whatever they present:
    // token, open session, API key or certificate.
    let subject = principal
        .id
        .split_once('/')
        .map_or(principal.id.as_str(), |(_, s)| s);
    let mut groups = None;
    match gw.directory() {
        Ok(None) => {}
        Ok(Some(dir)) => {
            let unavailable =
                |e: gatehouse_store::StoreError| AuthError::Unavailable(e.to_string());
            if dir.is_deprovisioned(subject).map_err(unavailable)? {
                tracing::warn!(target: "gatehouse::audit", principal = %principal.id, "deprovisioned principal refused");
                return Err(AuthError::Inactive.into());
            }
            // For the people it provisions the directory is the truth about groups: someone
            // removed from a group loses it at once, though their token still lists it.
            groups = dir
                .groups_of(subject)
                .map_err(unavailable)?
                .filter(|g| **g != *principal.groups);
        }
        Err(e) => return Err(AuthError::Unavailable(e).into()),
    }
    Ok(with_groups(principal, groups, &cfg.group_roles))
}

/// The principal with its final groups, and the roles those groups grant added to the ones
/// its credential carries. Unchanged (no copy) when nothing applies.
fn with_groups(
    principal: Arc<Principal>,
    groups: Option<Arc<[String]>>,
    group_roles: &std::collections::BTreeMap<String, Vec<String>>,
) -> Arc<Principal> {
    let final_groups: &[String] = groups.as_deref().unwrap_or(&principal.groups);
    let granted: Vec<&String> = final_groups
        .iter()
        .filter_map(|g| group_roles.get(g))
        .flatten()
        .filter(|r| !principal.roles.contains(r))
        .collect();
    if groups.is_none() && granted.is_empty() {
        return principal;
    }
    let mut p = (*principal).clone();
    for r in granted {
        if !p.roles.contains(r) {
            p.roles.push(r.clone());
        }
    }
    if let Some(g) = groups {
        p.groups = g.to_vec();
    }
    Arc::new(p)
}

async fn identify(
    gw: &Gateway,
    cfg: &Config,
    authorization: Option<&str>,
    peer: Option<&PeerIdentity>,
) -> Result<Arc<Principal>, AuthFailure> {
    // A verified client certificate that a rule maps stands for the caller when no token
    // is presented; a presented token always decides.
    if authorization.is_none()
        && let Some(p) = peer.and_then(|p| p.0.clone())
    {
        return Ok(p);
    }
    // A broken key store refuses API keys (503), not every other kind of caller.
    let keys = gw.api_keys();
    let jwt = gw.authenticator();
    let certs = cfg.tls.as_ref().is_some_and(|t| !t.rules.is_empty());
    if matches!(keys, Ok(None)) && jwt.is_none() && !certs {
        return Err(AuthFailure::NotConfigured);
    }
    let token = bearer(authorization)?;
    if token.starts_with(KEY_PREFIX) {
        let keys = keys
            .map_err(AuthError::Unavailable)?
            .ok_or(AuthError::UnknownIssuer)?;
        return Ok(Arc::new(
            keys.authenticate(token, crate::session::now_secs())?,
        ));
    }
    let jwt = jwt.ok_or(AuthError::UnknownIssuer)?;
    Ok(Arc::new(jwt.authenticate(token).await?))
}

/// Stage: bind session. A session id is honoured only on the endpoint that issued it, and
/// only for the principal that opened it: a stolen id is useless to anyone else.
pub fn bind_session(
    gw: &Gateway,
    token: &str,
    scope: Option<&str>,
    principal: &Principal,
) -> Result<SessionClaims, SessionError> {
    let claims = gw.sessions.open(token)?;
    if claims.scope != scope.unwrap_or("") {
        return Err(SessionError::Invalid);
    }
    if claims.principal != principal.id {
        tracing::warn!(
            target: "gatehouse::audit",
            session = %claims.sid,
            owner = %claims.principal,
            principal = %principal.id,
            "session used by another principal: refused"
        );
        return Err(SessionError::OtherPrincipal);
    }
    Ok(claims)
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

/// An API key belongs to one application: the client must say it is that application
/// (`clientInfo.name` at `initialize`, or in a stateless request's envelope). A key used by
/// another application is refused and audited, so sharing a key is never silent.
pub fn check_app(principal: &Principal, client_name: Option<&str>) -> Result<(), AuthError> {
    let AuthMethod::ApiKey { app, key_id } = &principal.method else {
        return Ok(());
    };
    if client_name == Some(app.as_str()) {
        return Ok(());
    }
    tracing::warn!(
        target: "gatehouse::audit",
        principal = %principal.id,
        key = %key_id,
        bound_to = %app,
        client = client_name.unwrap_or("(none)"),
        "API key used by another application: refused"
    );
    Err(AuthError::InsufficientScope(vec![format!("app:{app}")]))
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

/// What an audit record says about a request beyond its method and outcome.
#[derive(Debug, Default)]
struct Trace {
    upstream: Option<String>,
    tool: Option<String>,
    denied_by: Option<&'static str>,
    unknown_tool: bool,
    upstream_error: Option<UpstreamError>,
    /// The policies that decided (allow or deny).
    policies: Vec<String>,
    classification: Option<Classification>,
    /// The routed target's verb class (prompts and resources read).
    verb: Option<Verb>,
    /// Enhanced audit: SHA-256 of the arguments and of the result.
    args_digest: Option<String>,
    result_digest: Option<String>,
}

impl Gateway {
    /// Runs one client request through the pipeline and returns its response. Messages the
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
        let mut outcome = self.run(ctx, req, events, &mut trace, correlation).await;
        let status = match &outcome {
            _ if trace.denied_by.is_some() => "denied",
            Ok(_) if trace.unknown_tool => "unknown_tool",
            Ok(_) => "ok",
            Err(_) => "error",
        };
        // Stage: audit. Last, so it records the final outcome of every request, allowed or
        // not: a log line for operators, and the hash-chained record in the store. Denied
        // calls, calls that change something and calls on confidential or restricted data
        // are answered only once their record is committed; if it cannot be, they fail.
        let latency_us = started.elapsed().as_micros() as u64;
        if let Some(writer) = &self.audit {
            let durable = self.config().audit.as_ref().is_some_and(|a| a.durable_all)
                || status == "denied"
                || trace.verb.is_some_and(|v| v != Verb::Read)
                || trace
                    .classification
                    .is_some_and(|c| c >= Classification::Confidential);
            let event = AuditEvent {
                v: gatehouse_audit::SCHEMA_VERSION,
                kind: Some(EventKind::Request),
                time_ms: crate::audit::now_ms(),
                correlation: correlation.to_string(),
                tenant: ctx.principal.tenant.clone().unwrap_or_default(),
                principal: ctx.principal.id.clone(),
                auth_method: ctx.principal.method_label().to_owned(),
                client: ctx.client.clone().unwrap_or_default(),
                source_ip: ctx.source.map(|s| s.to_string()).unwrap_or_default(),
                session: ctx.key().to_owned(),
                virtual_server: ctx.scope.clone().unwrap_or_default(),
                method: method_label.to_owned(),
                target: trace.tool.clone().unwrap_or_default(),
                upstream: trace.upstream.clone().unwrap_or_default(),
                status: status.to_owned(),
                rule: trace.denied_by.unwrap_or("").to_owned(),
                policies: trace.policies.clone(),
                classification: trace
                    .classification
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
                verb: trace
                    .verb
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
                args_digest: trace.args_digest.clone().unwrap_or_default(),
                result_digest: trace.result_digest.clone().unwrap_or_default(),
                error_class: trace
                    .upstream_error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                latency_us,
                detail: String::new(),
            };
            if let Err(e) = writer.record(event, durable).await
                && durable
            {
                tracing::error!(target: "gatehouse::audit", %correlation, error = %e, "audit record not committed: answer withheld");
                outcome = Err(RpcError::new(
                    code::INTERNAL_ERROR,
                    "The audit record of this call could not be written; its result is withheld",
                )
                .with_data(json!({"correlationId": correlation.to_string()})));
            }
        }
        tracing::info!(
            target: "gatehouse::audit",
            correlation = %correlation,
            principal = %ctx.principal.id,
            tenant = ctx.principal.tenant.as_deref().unwrap_or(""),
            session = ctx.key(),
            scope = ctx.scope.as_deref().unwrap_or(""),
            version = %ctx.version,
            method = method_label,
            tool = trace.tool.as_deref().unwrap_or(""),
            upstream = trace.upstream.as_deref().unwrap_or(""),
            status,
            rule = trace.denied_by.unwrap_or(""),
            policies = %trace.policies.join(","),
            classification = trace.classification.map(|c| c.as_str()).unwrap_or(""),
            args_digest = trace.args_digest.as_deref().unwrap_or(""),
            result_digest = trace.result_digest.as_deref().unwrap_or(""),
            upstream_error = trace.upstream_error.as_ref().map(ToString::to_string).unwrap_or_default(),
            latency_us,
            "request"
        );
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

    async fn run(
        self: &Arc<Self>,
        ctx: &ClientCtx,
        req: Request,
        events: Option<mpsc::Sender<Message>>,
        trace: &mut Trace,
        correlation: CorrelationId,
    ) -> Result<Value, RpcError> {
        let cfg = self.config();
        let scope = match &ctx.scope {
            Some(name) => Some(cfg.virtual_servers.get(name).ok_or_else(|| {
                RpcError::new(
                    code::INVALID_REQUEST,
                    "this virtual server no longer exists",
                )
            })?),
            None => None,
        };

        let view = View {
            scope,
            limits: ctx.principal.limits.as_ref(),
        };

        // Stage: route. Resolve the exposed name to its upstream first: every later stage
        // decides about a concrete tool on a concrete server, not a client-chosen string.
        let target = match self.route(&cfg, &req, view) {
            Ok(t) => t,
            Err(e) => return Err(e),
        };
        match &target {
            Target::Upstream { upstream, tool, .. } => {
                trace.upstream = Some(upstream.clone());
                trace.tool.clone_from(tool);
            }
            Target::UnknownTool(name) => {
                trace.tool = Some(name.clone());
                trace.unknown_tool = true;
            }
            Target::Local | Target::Logging => {}
        }

        // Stage: authorize. Least privilege per tool, resource and prompt: routing confined
        // the target to the caller's scope; the policy engine decides, default deny, then
        // the classification's step-up requirement. Refusals are audited with the policies.
        // Built only for what it decides: routed calls and the lists it filters.
        let decides = matches!(target, Target::Upstream { .. }) || is_filtered_list(&req.method);
        let gate = cfg
            .authorization
            .as_deref()
            .filter(|_| decides)
            .map(|a| Gate::new(a, ctx));
        if let Target::Upstream { guard, .. } = &target {
            trace.classification = Some(guard.target.classification());
            trace.verb = Some(match &guard.target {
                gatehouse_policy::Target::Tool { verb, .. } => *verb,
                _ => Verb::Read,
            });
        }
        if let (Some(gate), Target::Upstream { guard, .. }) = (&gate, &target) {
            let args = req
                .params
                .as_ref()
                .and_then(|p| p.get("arguments"))
                .and_then(Value::as_object);
            let outcome = gate.decide(guard.action, &guard.target, args, false);
            trace.policies = outcome.policies().to_vec();
            if gate
                .authz()
                .controls(guard.target.classification())
                .enhanced_audit
            {
                let raw = req.params.as_ref().and_then(|p| p.get("arguments"));
                trace.args_digest = Some(digest(raw.unwrap_or(&Value::Null)));
            }
            if !matches!(outcome, Outcome::Allow { .. }) {
                trace.denied_by = Some(match &outcome {
                    Outcome::StepUp { .. } => "authorize.step_up",
                    Outcome::Deny {
                        cause: gatehouse_policy::DenyCause::Error,
                        ..
                    } => "authorize.error",
                    Outcome::Deny {
                        cause: gatehouse_policy::DenyCause::Forbidden,
                        ..
                    } => "authorize.forbid",
                    _ => "authorize.default_deny",
                });
                tracing::info!(rule = trace.denied_by, policies = %trace.policies.join(","), "request denied");
                return refusal(
                    &outcome,
                    gate.authz().denied_as,
                    guard.named,
                    &guard.name,
                    correlation,
                );
            }
        }

        // Stage: validate. Arguments are checked before anything leaves the gateway.
        // Stage: detect. Injection and poisoning patterns over what the tool would receive.
        for verdict in [validate(&req), detect(&req)] {
            if let Verdict::Deny(d) = verdict {
                tracing::info!(rule = d.rule, reason = %d.reason, "request denied");
                trace.denied_by = Some(d.rule);
                return Err(d.error);
            }
        }

        // Stage: rate limit. Bounded work in flight: overload is refused, not queued.
        let _permit: OwnedSemaphorePermit = match self.concurrency.load_full().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                trace.denied_by = Some("limits.max_concurrent_requests");
                return Err(RpcError::new(
                    code::INTERNAL_ERROR,
                    "gateway is at capacity; retry shortly",
                )
                .with_data(json!({"retryAfterMs": 1000})));
            }
        };

        // Stage: approval. Destructive calls wait for a person (nothing requires it yet).

        // Stage: upstream call, with the gateway's own connection; the client's credential
        // and envelope never travel further.
        let result = match target {
            Target::Local => self.answer_locally(&cfg, &req, view, gate.as_ref()),
            Target::UnknownTool(name) => Ok(json!({
                "content": [{"type": "text", "text": format!("Unknown tool: {name}")}],
                "isError": true
            })),
            Target::Logging => {
                self.fan_out_logging(&req, view).await;
                Ok(json!({}))
            }
            Target::Upstream {
                upstream,
                params,
                guard,
                ..
            } => {
                let cap = gate.as_ref().and_then(|g| {
                    g.authz()
                        .controls(guard.target.classification())
                        .max_result_bytes
                });
                let mut forwarded = Request {
                    id: req.id.clone(),
                    method: req.method.clone(),
                    params,
                };
                strip_envelope(&mut forwarded);
                let result = self
                    .call_upstream(ctx, &upstream, forwarded, events, trace, correlation)
                    .await?;
                // Stage: inspect response. The classification's size cap first; pins,
                // poisoning and DLP join here.
                if let Some(cap) = cap {
                    let size = serde_json::to_vec(&result).map_or(usize::MAX, |v| v.len());
                    if size as u64 > cap {
                        trace.denied_by = Some("classification.max_result_bytes");
                        tracing::warn!(target: "gatehouse::audit", %correlation, size, cap, "result over the classification's size cap: withheld");
                        return Err(RpcError::new(
                            code::FORBIDDEN,
                            "Forbidden: the result is larger than this data's classification allows",
                        )
                        .with_data(json!({"correlationId": correlation.to_string()})));
                    }
                }
                Ok(result)
            }
        }?;
        if trace.args_digest.is_some() {
            trace.result_digest = Some(digest(&result));
        }
        Ok(result)
    }

    async fn fan_out_logging(self: &Arc<Self>, req: &Request, view: View<'_>) {
        let timeout = self.config().limits.request_timeout;
        for up in self.upstreams().values() {
            let wants = up
                .info()
                .is_some_and(|i| i.capabilities.get("logging").is_some());
            if wants && view.allows(up.name(), None) {
                let mut r = req.clone();
                strip_envelope(&mut r);
                if let Err(e) = up.call(r, None, timeout, None).await {
                    tracing::warn!(upstream = up.name(), error = %e, "logging/setLevel not delivered");
                }
            }
        }
    }

    async fn call_upstream(
        self: &Arc<Self>,
        ctx: &ClientCtx,
        name: &str,
        req: Request,
        events: Option<mpsc::Sender<Message>>,
        trace: &mut Trace,
        correlation: CorrelationId,
    ) -> Result<Value, RpcError> {
        let up = self
            .upstream(name)
            .ok_or_else(|| unavailable(correlation))?;
        // An upstream that acts for users gets an exchanged user token or no call: falling
        // back to the gateway's own token would lend its rights to whoever asked.
        if up.exchanges_tokens() && ctx.user_token.is_none() {
            tracing::warn!(target: "gatehouse::audit", upstream = name, principal = %ctx.principal.id, "call refused: the upstream needs a user token to exchange");
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "This server acts on behalf of users: sign in with an OAuth token",
            )
            .with_data(json!({"correlationId": correlation.to_string()})));
        }
        let route = events.map(|events| CallRoute {
            events,
            progress_token: req.meta().and_then(|m| m.get("progressToken")).cloned(),
            owner: ctx.key().to_owned(),
            caps: ctx.session.as_ref().map(|s| s.caps).unwrap_or_default(),
        });
        let timeout = self.config().limits.request_timeout;
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
        let started = Instant::now();
        let outcome = tokio::select! {
            r = up.call(req, route, timeout, ctx.user_token.as_ref()) => Some(r),
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
        match outcome {
            None => Err(RpcError::new(code::REQUEST_TIMEOUT, "Request cancelled")),
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
            Some(Err(e)) => {
                let kind = match &e {
                    UpstreamError::Timeout => "timeout",
                    UpstreamError::Unavailable | UpstreamError::Closed => "unavailable",
                    _ => "transport",
                };
                metrics::counter!(m::UPSTREAM_ERRORS, "upstream" => name.to_owned(), "kind" => kind).increment(1);
                tracing::warn!(upstream = name, %correlation, error = %e, "upstream call failed");
                trace.upstream_error = Some(e.clone());
                Err(match e {
                    UpstreamError::Timeout => {
                        RpcError::new(code::REQUEST_TIMEOUT, "Upstream timed out")
                            .with_data(json!({"correlationId": correlation.to_string()}))
                    }
                    _ => unavailable(correlation),
                })
            }
        }
    }

    /// A client cancelled one of its calls.
    pub fn cancel(&self, ctx: &ClientCtx, request_id: &Id) {
        let key = (ctx.key().to_owned(), request_id.clone());
        if let Some(tx) = self
            .cancellable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key)
        {
            let _ = tx.send(());
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

fn unavailable(correlation: CorrelationId) -> RpcError {
    RpcError::new(code::CONNECTION_CLOSED, "Upstream unavailable")
        .with_data(json!({"correlationId": correlation.to_string()}))
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

/// Stage: validate. Shape checks every tool call must pass before it is forwarded.
fn validate(req: &Request) -> Verdict {
    if req.method == method::TOOLS_CALL {
        let args = req.params.as_ref().and_then(|p| p.get("arguments"));
        if args.is_some_and(|a| !a.is_object() && !a.is_null()) {
            return Verdict::Deny(Denial::new(
                "validate.arguments_object",
                "tools/call arguments is not an object",
                RpcError::new(code::INVALID_PARAMS, "params.arguments must be an object"),
            ));
        }
    }
    Verdict::Allow
}

/// Stage: detect. Pattern, classifier and arbitration stages plug in here.
fn detect(_req: &Request) -> Verdict {
    Verdict::Allow
}
