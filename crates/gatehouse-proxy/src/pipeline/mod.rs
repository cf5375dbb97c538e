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
use std::time::{Duration, Instant};

use gatehouse_protocol::{
    Id, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, Message,
    ProtocolVersion, Request, Response, RpcError, code, method,
};
use serde_json::{Map, Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::approval;
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

mod detect;
mod hygiene;
mod inspect;
mod local;
mod route;
mod validate;

pub(crate) use validate::Schemas;

/// Every string in a JSON value, scanned by the pattern stage (with JSON pointers).
pub use detect::scan as scan_strings;
pub use detect::{Place, judge};
pub(crate) use detect::{stage_label, to_audit as detection_record};
use local::is_filtered_list;

/// A stage's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    Deny(Denial),
    /// Allowed only once a person approves this exact call (the rule that asks).
    RequireApproval(&'static str),
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
    /// The gateway answered for the upstream (a consent link, a refused caller): its own
    /// words, not an upstream's, so error hygiene leaves them alone.
    own_answer: bool,
    /// The policies that decided (allow or deny).
    policies: Vec<String>,
    classification: Option<Classification>,
    /// The routed target's verb class (prompts and resources read).
    verb: Option<Verb>,
    /// Enhanced audit: SHA-256 of the arguments and of the result.
    args_digest: Option<String>,
    result_digest: Option<String>,
    /// The approval the call waited for or used.
    approval: Option<String>,
    /// Answered "approval pending" instead of running.
    pending: bool,
    /// DLP findings on arguments and result: kind → count, and the kinds that blocked.
    findings: std::collections::BTreeMap<String, usize>,
    dlp_blocked: Vec<String>,
    /// An upstream error's detail the client was not shown (bounded, secrets masked).
    scrubbed: Option<String>,
    /// Alerts that did not refuse the call: a truncated result, a size anomaly.
    alerts: Vec<String>,
    /// Keyed digests of personal identifiers in the arguments or the result.
    subjects: std::collections::BTreeSet<String>,
    /// Prompt-injection findings and what was done about them.
    detections: Vec<gatehouse_audit::Detection>,
    /// Masked copies the classification keeps (`audit_bodies`).
    arguments: Option<Value>,
    result: Option<Value>,
}

impl Trace {
    fn note(&mut self, report: &gatehouse_detect::Report) {
        for (k, n) in &report.found {
            *self.findings.entry(k.clone()).or_default() += n;
        }
        self.dlp_blocked.extend(report.blocked.iter().cloned());
        self.subjects.extend(report.subjects.iter().cloned());
    }

    /// `kind=count,…;blocked=kind,…` for the audit line.
    fn findings_line(&self) -> String {
        let mut s: Vec<String> = self
            .findings
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if !self.dlp_blocked.is_empty() {
            s.push(format!("blocked={}", self.dlp_blocked.join("+")));
        }
        s.extend(self.alerts.iter().cloned());
        s.join(",")
    }
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
            Ok(_) if trace.pending => "approval_pending",
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
                approval: trace.approval.clone().unwrap_or_default(),
                findings: trace.findings_line(),
                detections: std::mem::take(&mut trace.detections),
                subjects: trace.subjects.iter().cloned().collect(),
                arguments: trace.arguments.take(),
                result: trace.result.take(),
                latency_us,
                detail: trace.scrubbed.clone().unwrap_or_default(),
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
            approval = trace.approval.as_deref().unwrap_or(""),
            findings = %trace.findings_line(),
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
            if let Some(args) = req.params.as_ref().and_then(|p| p.get("arguments")) {
                let keep = inspect::controls(&cfg, &guard.target).audit_bodies;
                trace.arguments = inspect::audit_copy(&cfg, keep, args);
            }
            trace.classification = Some(guard.target.classification());
            trace.verb = Some(match &guard.target {
                gatehouse_policy::Target::Tool { verb, .. } => *verb,
                _ => Verb::Read,
            });
        }
        // Policies that allow the call only with a person's approval.
        let mut approval_policies: Option<Vec<String>> = None;
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
            if gate.authz().engine.requires_approval(outcome.policies()) {
                approval_policies = Some(outcome.policies().to_vec());
            }
        }

        // Stage: validate. Arguments are checked before anything leaves the gateway.
        let mut flagged = None;
        let mut url_hosts = Vec::new();
        let (schema_check, argument_checks) = match &target {
            Target::Upstream { guard, .. } if req.method == method::TOOLS_CALL => {
                let args = req.params.as_ref().and_then(|p| p.get("arguments"));
                let empty = Value::Object(Map::new());
                let catalog = self.catalog();
                (
                    // The tool's own input schema first, then the gateway's checks.
                    self.schemas.check(
                        catalog.tool(&guard.name).map(|e| &e.def),
                        args.filter(|a| !a.is_null()).unwrap_or(&empty),
                    ),
                    validate::arguments(
                        &cfg,
                        &guard.target,
                        args.and_then(Value::as_object),
                        &ctx.principal.roles,
                        &mut url_hosts,
                    ),
                )
            }
            _ => (Verdict::Allow, Verdict::Allow),
        };
        for verdict in [validate(&req), schema_check, argument_checks] {
            match verdict {
                Verdict::Deny(d) => {
                    tracing::info!(rule = d.rule, reason = %d.reason, "request denied");
                    trace.denied_by = Some(d.rule);
                    return Err(d.error);
                }
                Verdict::RequireApproval(rule) => flagged = Some(rule),
                Verdict::Allow => {}
            }
        }
        // Stage: detect. Injection patterns over what the tool would receive; after the
        // cheap checks, because it may ask a model.
        if let Target::Upstream { guard, .. } = &target
            && req.method == method::TOOLS_CALL
        {
            let args = req.params.as_ref().and_then(|p| p.get("arguments"));
            let classification = guard.target.classification();
            match detect::arguments(&cfg, classification, &guard.name, args, trace).await {
                Verdict::Deny(d) => {
                    tracing::info!(rule = d.rule, reason = %d.reason, "request denied");
                    trace.denied_by = Some(d.rule);
                    return Err(d.error);
                }
                Verdict::RequireApproval(rule) => flagged = Some(rule),
                Verdict::Allow => {}
            }
        }
        // URL arguments naming a host: what the name resolves to.
        if let Target::Upstream { guard, .. } = &target
            && !url_hosts.is_empty()
            && let Verdict::Deny(d) = validate::resolved_hosts(&guard.target, url_hosts).await
        {
            tracing::info!(rule = d.rule, reason = %d.reason, "request denied");
            trace.denied_by = Some(d.rule);
            return Err(d.error);
        }

        // Outgoing arguments: a secret an agent pastes into a call is caught before it
        // leaves (the default profile blocks secrets and records the rest). A masking
        // profile rewrites what is forwarded.
        let mut outgoing_args: Option<Value> = None;
        if req.method == method::TOOLS_CALL
            && let Some(profile) = &cfg.dlp.arguments
            && let Some(args) = req.params.as_ref().and_then(|p| p.get("arguments"))
        {
            let mut copy = args.clone();
            let report = gatehouse_detect::walk_indexed(
                &cfg.dlp.recognizers,
                profile,
                &self.dlp_tokens(&ctx.principal.id, ctx.key()),
                self.subjects.as_ref(),
                &mut copy,
            );
            trace.note(&report);
            if !report.blocked.is_empty() {
                trace.denied_by = Some("dlp.arguments");
                tracing::warn!(target: "gatehouse::audit", %correlation, kinds = %report.blocked.join(","), "call refused: its arguments carry data that may not be sent");
                return Err(RpcError::new(
                    code::FORBIDDEN,
                    format!(
                        "Forbidden: the arguments carry data that may not be sent ({})",
                        report.blocked.join(", ")
                    ),
                )
                .with_data(json!({"correlationId": correlation.to_string()})));
            }
            if report.redacted > 0 {
                outgoing_args = Some(copy);
            }
        }
        // The enterprise DLP sees the arguments too (REQMOD), when configured.
        if req.method == method::TOOLS_CALL
            && let Some(icap) = cfg.icap.as_ref().filter(|i| i.reqmod)
            && let Target::Upstream { guard, .. } = &target
            && icap.covers(guard.target.classification())
        {
            let args = outgoing_args
                .clone()
                .or_else(|| {
                    req.params
                        .as_ref()
                        .and_then(|p| p.get("arguments"))
                        .cloned()
                })
                .unwrap_or_else(|| json!({}));
            let body = serde_json::to_vec(&args).unwrap_or_default();
            let refuse = |trace: &mut Trace, rule: &'static str, msg: &str, c: i64| {
                trace.denied_by = Some(rule);
                Err(RpcError::new(c, msg)
                    .with_data(json!({"correlationId": correlation.to_string()})))
            };
            match icap.service.reqmod(&body).await {
                Ok(crate::icap::Verdict::Unmodified) => {}
                Ok(crate::icap::Verdict::Modified(new)) => {
                    match serde_json::from_slice::<Value>(&new) {
                        Ok(v) if v.is_object() => outgoing_args = Some(v),
                        _ => {
                            return refuse(
                                trace,
                                "icap.unreadable",
                                "Forbidden: content inspection returned arguments that cannot be used",
                                code::FORBIDDEN,
                            );
                        }
                    }
                }
                Ok(crate::icap::Verdict::Blocked { .. }) => {
                    tracing::warn!(target: "gatehouse::audit", %correlation, "call refused by content inspection (ICAP)");
                    return refuse(
                        trace,
                        "icap.block",
                        "Forbidden: content inspection blocked these arguments",
                        code::FORBIDDEN,
                    );
                }
                Err(e) if icap.fail_closed => {
                    tracing::error!(target: "gatehouse::audit", %correlation, error = %e, "content inspection unavailable: call refused");
                    return refuse(
                        trace,
                        "icap.unavailable",
                        "Content inspection is unavailable; the call is refused",
                        code::INTERNAL_ERROR,
                    );
                }
                Err(e) => {
                    tracing::error!(%correlation, error = %e, "content inspection unavailable: call passed (fail open)")
                }
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

        // Per-caller limits: GCRA rules (per principal, tool, server, tenant, API key; in
        // process or global through Redis) and this principal's calls in flight.
        let _in_flight = self.rate_limit(&cfg, ctx, &req, trace, correlation).await?;

        // Stage: approval. Calls that change things on sensitive data, and whatever a
        // policy or detection flags, wait for a person; only an approval of these exact
        // arguments, used once, lets the call through.
        if let Target::Upstream {
            upstream, guard, ..
        } = &target
            && req.method == method::TOOLS_CALL
        {
            let need = approval::needed(
                &cfg,
                route::data_policy(&cfg, upstream),
                &guard.target,
                approval_policies.as_deref(),
            )
            .or_else(|| {
                flagged.map(|rule| approval::Need {
                    reason: format!("detection:{rule}"),
                    approvers: cfg.approvals.approvers.clone(),
                    count: cfg.approvals.count,
                    timeout: cfg.approvals.timeout,
                })
            });
            if let Some(need) = need {
                let call = approval::Call {
                    upstream,
                    tool: &guard.name,
                    classification: guard.target.classification(),
                    arguments: req.params.as_ref().and_then(|p| p.get("arguments")),
                    progress_token: req.meta().and_then(|m| m.get("progressToken")).cloned(),
                };
                match self
                    .approval_gate(ctx, need, call, events.as_ref(), correlation)
                    .await
                {
                    approval::Gate::Proceed(id) => trace.approval = Some(id),
                    approval::Gate::Answer(answer, rule, id) => {
                        trace.approval = Some(id).filter(|i| !i.is_empty());
                        if answer.is_ok() {
                            trace.pending = true;
                        } else {
                            trace.denied_by = Some(rule);
                        }
                        return answer;
                    }
                }
            }
        }

        // Stage: upstream call, with the gateway's own connection; the client's credential
        // and envelope never travel further.
        let result = match target {
            Target::Local => self.answer_locally(&cfg, &req, view, gate.as_ref()),
            // A tool held for review is unknown to the catalog; its caller is told why.
            Target::UnknownTool(name) if self.pins.held(&name) => Ok(json!({
                "content": [{"type": "text", "text": format!("Tool {name} is held for review by the gateway's administrators: its definition is new, changed or flagged")}],
                "isError": true
            })),
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
                let mut params = params;
                if let (Some(args), Some(p)) = (
                    outgoing_args,
                    params.as_mut().and_then(Value::as_object_mut),
                ) {
                    p.insert("arguments".into(), args);
                }
                let mut forwarded = Request {
                    id: req.id.clone(),
                    method: req.method.clone(),
                    params,
                };
                strip_envelope(&mut forwarded);
                let mut result = self
                    .call_upstream(ctx, &upstream, forwarded, events, trace, correlation)
                    .await
                    .map_err(|e| {
                        if trace.upstream_error.is_some() || trace.own_answer {
                            e // the gateway's own answer: already generic
                        } else {
                            hygiene::upstream_error(&cfg, e, correlation, trace)
                        }
                    })?;
                hygiene::tool_error(&cfg, &mut result, correlation, trace);
                // Stage: inspect response (size cap, DLP, byte budgets, size anomaly;
                // pins and poisoning join here).
                self.inspect(&cfg, ctx, &guard.target, &mut result, trace, correlation)
                    .await?;
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
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "This server acts on behalf of users: sign in with an OAuth token",
            )
            .with_data(json!({"correlationId": correlation.to_string()})));
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
        let started = Instant::now();
        let outcome = tokio::select! {
            r = up.call(req, route, timeout, user.as_ref()) => Some(r),
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
                Err(RpcError::new(code::URL_ELICITATION_REQUIRED, message.clone()).with_data(json!({
                    "elicitations": [{"mode": "url", "elicitationId": id, "url": url, "message": message}],
                    "correlationId": correlation.to_string(),
                })))
            }
            Ok(C::NotEligible) => Err(RpcError::new(
                code::INVALID_REQUEST,
                "This server acts with each user's own account: sign in through the gateway",
            )
            .with_data(json!({"correlationId": correlation.to_string()}))),
            Err(e) => {
                tracing::warn!(upstream = name, %correlation, error = %e, "user's upstream token unavailable");
                Err(unavailable(correlation))
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

impl Gateway {
    async fn rate_limit(
        &self,
        cfg: &Config,
        ctx: &ClientCtx,
        req: &Request,
        trace: &mut Trace,
        correlation: CorrelationId,
    ) -> Result<Option<OwnedSemaphorePermit>, RpcError> {
        use crate::ratelimit::Refusal;
        let limits = &cfg.rate_limits;
        let refused = |trace: &mut Trace, rule: &'static str, name: &str, wait: Duration| {
            trace.denied_by = Some(rule);
            tracing::info!(target: "gatehouse::audit", %correlation, rule, limit = name, "request refused by a rate limit");
            let ms = wait.as_millis().max(1) as u64;
            RpcError::new(
                code::RATE_LIMITED,
                format!("Rate limit exceeded; retry in {ms} ms"),
            )
            .with_data(json!({"retryAfterMs": ms, "limit": name, "correlationId": correlation.to_string()}))
        };
        if !limits.rules.is_empty() {
            let facts = crate::ratelimit::Facts {
                method: &req.method,
                principal: &ctx.principal.id,
                tenant: ctx.principal.tenant.as_deref(),
                api_key: match &ctx.principal.method {
                    AuthMethod::ApiKey { key_id, .. } => Some(key_id.as_str()),
                    _ => None,
                },
                tool: trace.tool.as_deref(),
                server: trace.upstream.as_deref(),
                restricted: trace.classification == Some(Classification::Restricted),
            };
            match self.limiter.check(limits, &facts).await {
                Ok(()) => {}
                Err(Refusal::Limited { rule, retry_after }) => {
                    return Err(refused(trace, "rate_limit", &rule, retry_after));
                }
                Err(Refusal::Unavailable { rule }) => {
                    return Err(refused(
                        trace,
                        "rate_limit.unavailable",
                        &rule,
                        Duration::from_secs(1),
                    ));
                }
                Err(Refusal::InFlight) => {}
            }
        }
        // A byte budget already spent refuses the call before it runs.
        if !cfg.exfiltration.budgets.is_empty()
            && let Some(tool) = trace.tool.clone()
            && let Err(over) = self.exfil.before(
                &cfg.exfiltration,
                &crate::exfil::Call {
                    principal: &ctx.principal.id,
                    tool: &tool,
                },
            )
        {
            return Err(refused(
                trace,
                "exfiltration.budget",
                &over.budget,
                over.retry_after,
            ));
        }
        self.limiter.enter(limits, &ctx.principal.id).map_err(|_| {
            refused(
                trace,
                "rate_limit.in_flight",
                "max_in_flight_per_principal",
                Duration::from_secs(1),
            )
        })
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
