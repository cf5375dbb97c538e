//! The client-facing HTTP listener: Streamable HTTP at `/mcp` (sessions for 2024-11-05 …
//! 2025-11-25, stateless 2026-07-28), legacy HTTP+SSE at `/sse`, the same under
//! `/s/{name}/…` for virtual servers, and `/healthz`, `/readyz`, `/metrics`.
//! HTTP status and JSON-RPC error mapping for the edge lives here, in one place.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::BoxStream;
use gatehouse_protocol::{
    DecodeError, Decoded, HEADER_MCP_METHOD, HEADER_MCP_NAME, HEADER_PROTOCOL_VERSION,
    HEADER_SESSION_ID, Id, META_CLIENT_INFO, META_PROTOCOL_VERSION, Message, Notification,
    ProtocolVersion, Request, Response as RpcResponse, RpcError, code, method,
    stateless_envelope_check,
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

use crate::config::Config;
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_pipeline::{ClientCtx, Principal};
use gatehouse_transport::hub::{EventId, STANDALONE};
use gatehouse_transport::metrics as m;

use crate::edge::{AuthFailure, check_app};
use crate::tls::PeerIdentity;
use gatehouse_auth::AuthError;
use gatehouse_transport::session::ClientCaps;

mod admission;
pub use admission::{BodyError, read_bounded};
mod answer;
mod legacy;

use admission::{Admitted, Transport, admit, bind, edge, open_session};

use answer::{respond, session_stream};
use legacy::{legacy_message, legacy_sse};

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) gw: Arc<Gateway>,
    prometheus: Option<PrometheusHandle>,
}

/// Builds the router. Served by `crate::serve`, or driven directly in tests.
pub fn router(gw: Arc<Gateway>, prometheus: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .route(
            "/s/{name}/mcp",
            post(post_mcp).get(get_mcp).delete(delete_mcp),
        )
        .route("/sse", get(legacy_sse))
        .route("/s/{name}/sse", get(legacy_sse))
        .route("/message", post(legacy_message))
        .route("/s/{name}/message", post(legacy_message))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/s/{name}/mcp",
            get(resource_metadata),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState { gw, prometheus })
}

// ---- edge errors ---------------------------------------------------------------------

pub(super) fn json_body(status: StatusCode, msg: &Message) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        msg.to_bytes(),
    )
        .into_response()
}

pub(super) fn rpc_error(status: StatusCode, id: Id, err: RpcError) -> Response {
    json_body(status, &RpcResponse::err(id, err).into())
}

pub(super) fn reject(
    status: StatusCode,
    reason: &'static str,
    code: i64,
    message: &str,
) -> Response {
    metrics::counter!(m::REJECTED, "reason" => reason).increment(1);
    // Refusals before the pipeline are audited too: bad input is evidence.
    tracing::info!(
        target: "gatehouse::audit",
        reason,
        status = status.as_u16(),
        "request rejected at the edge"
    );
    rpc_error(
        status,
        Id::Null,
        gatehouse_transport::refusal::edge(code, message),
    )
}

pub(super) fn decode_error(e: &DecodeError) -> Response {
    match e {
        DecodeError::TooLarge { .. } => reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            code::INVALID_REQUEST,
            "request body too large",
        ),
        DecodeError::TooDeep { .. } => reject(
            StatusCode::BAD_REQUEST,
            "too_deep",
            code::PARSE_ERROR,
            "JSON nesting too deep",
        ),
        DecodeError::NotJson => reject(
            StatusCode::BAD_REQUEST,
            "parse",
            code::PARSE_ERROR,
            "Parse error",
        ),
        DecodeError::EmptyBatch => reject(
            StatusCode::BAD_REQUEST,
            "empty_batch",
            code::INVALID_REQUEST,
            "empty batch",
        ),
        DecodeError::BatchTooLarge { .. } => reject(
            StatusCode::BAD_REQUEST,
            "batch_too_large",
            code::INVALID_REQUEST,
            "batch too large",
        ),
    }
}

// ---- edge checks ---------------------------------------------------------------------

/// DNS-rebinding defence: a browser-sent `Origin` must be loopback or explicitly allowed.
fn origin_allowed(cfg: &Config, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if cfg
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split_once(']').map(|(h, _)| &h[1..]).unwrap_or("")
    } else {
        rest.split(':').next().unwrap_or("")
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    match header_str(headers, header::ACCEPT.as_str()) {
        None => true,
        Some(a) => a.split(',').any(|p| {
            let p = p.split(';').next().unwrap_or("").trim();
            p == mime || p == "*/*" || (p.ends_with("/*") && mime.starts_with(&p[..p.len() - 1]))
        }),
    }
}

/// The RFC 9470 challenge for a refusal that asks for a stronger or fresher sign-in:
/// `Bearer error="insufficient_user_authentication", acr_values="…", max_age=…`.
fn step_up_challenge(e: &RpcError, metadata: Option<&str>) -> Option<HeaderValue> {
    let step = e.data.as_ref()?.get("stepUp")?;
    let mut parts = vec![
        "error=\"insufficient_user_authentication\"".to_owned(),
        "error_description=\"A stronger or more recent authentication is required\"".to_owned(),
    ];
    let acr: Vec<&str> = step
        .get("acr_values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|a| {
            a.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        })
        .collect();
    if !acr.is_empty() {
        parts.push(format!("acr_values=\"{}\"", acr.join(" ")));
    }
    if let Some(age) = step.get("max_age").and_then(Value::as_u64) {
        parts.push(format!("max_age={age}"));
    }
    if let Some(url) = metadata {
        parts.push(format!("resource_metadata=\"{url}\""));
    }
    HeaderValue::from_str(&format!("Bearer {}", parts.join(", "))).ok()
}

/// The RFC 9728 metadata URL for an endpoint: the well-known path inserted before the
/// resource's path.
fn metadata_url(cfg: &Config, scope: Option<&str>) -> Option<String> {
    let auth = cfg.auth.as_ref()?;
    let url = reqwest::Url::parse(&auth.resource).ok()?;
    let origin = url.origin().ascii_serialization();
    let path = match scope {
        Some(name) => format!("/s/{name}/mcp"),
        None => url.path().to_owned(),
    };
    Some(format!(
        "{origin}/.well-known/oauth-protected-resource{}",
        if path == "/" { "" } else { &path }
    ))
}

/// 401 with an RFC 6750 challenge naming the protected-resource metadata (RFC 9728); 403
/// `insufficient_scope` naming the scopes needed; 503 when the identity provider cannot
/// be reached. The client sees the OAuth error code, never the detail.
fn unauthenticated(cfg: &Config, scope: Option<&str>, e: &AuthFailure) -> Response {
    let (status, challenge, reason) = match e {
        AuthFailure::NotConfigured => (
            StatusCode::UNAUTHORIZED,
            "Bearer".to_owned(),
            "not_configured",
        ),
        AuthFailure::Refused(err) => {
            let status = match err {
                AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                other if other.status() == 403 => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut c = String::from("Bearer");
            let mut parts = Vec::new();
            if let Some(url) = metadata_url(cfg, scope) {
                parts.push(format!("resource_metadata=\"{url}\""));
            }
            if !err.oauth_error().is_empty() {
                parts.push(format!("error=\"{}\"", err.oauth_error()));
            }
            if let AuthError::InsufficientScope(missing) = err {
                parts.push(format!("scope=\"{}\"", missing.join(" ")));
            }
            if !parts.is_empty() {
                c.push(' ');
                c.push_str(&parts.join(", "));
            }
            (status, c, err.label())
        }
    };
    tracing::warn!(target: "gatehouse::audit", reason, error = %e, "authentication failed");
    metrics::counter!(m::REJECTED, "reason" => reason).increment(1);
    let message = match status {
        StatusCode::FORBIDDEN => "Forbidden: insufficient scope",
        StatusCode::SERVICE_UNAVAILABLE => "Identity provider unavailable",
        _ => "Unauthorized",
    };
    let mut r = rpc_error(
        status,
        Id::Null,
        gatehouse_transport::refusal::invalid_request(message),
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

/// 403 for an API key used by an application it is not bound to.
pub(super) fn app_refused() -> Response {
    metrics::counter!(m::REJECTED, "reason" => "api_key_app").increment(1);
    rpc_error(
        StatusCode::FORBIDDEN,
        Id::Null,
        gatehouse_transport::refusal::invalid_request(
            "Forbidden: this API key belongs to another application",
        ),
    )
}

/// RFC 9728 protected-resource metadata, for the full endpoint and each virtual server.
async fn resource_metadata(State(st): State<AppState>, path: Option<Path<String>>) -> Response {
    let cfg = st.gw.config();
    let (Some(auth), Some(authn)) = (cfg.auth.as_ref(), st.gw.authenticator()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let resource = match path.as_ref().map(|p| p.0.as_str()) {
        None => auth.resource.clone(),
        Some(name) if cfg.virtual_servers.contains_key(name) => {
            let url = reqwest::Url::parse(&auth.resource).ok();
            match url {
                Some(u) => format!("{}/s/{name}/mcp", u.origin().ascii_serialization()),
                None => return StatusCode::NOT_FOUND.into_response(),
            }
        }
        Some(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let body = serde_json::json!({
        "resource": resource,
        "authorization_servers": authn.issuer_urls(),
        "scopes_supported": authn.required_scopes(),
        "bearer_methods_supported": ["header"],
        "resource_name": "Gatehouse MCP gateway",
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---- Streamable HTTP -----------------------------------------------------------------

async fn post_mcp(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIdentity>>,
    remote: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    path: Option<Path<String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let scope = path.map(|p| p.0);
    let peer = peer.as_ref().map(|p| &p.0);
    let Admitted {
        cfg,
        principal,
        decoded,
    } = match admit(
        &st,
        scope.as_deref(),
        &headers,
        peer,
        body,
        Transport::Streamable,
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let sse_ok = accepts(&headers, "text/event-stream");

    // initialize opens a session; it is never part of a batch.
    if let Decoded::Single(Ok(Message::Request(req))) = &decoded
        && req.method == method::INITIALIZE
        && header_str(&headers, HEADER_SESSION_ID).is_none()
    {
        return initialize(&st.gw, &cfg, scope.as_deref(), &principal, req);
    }

    let user_token =
        gatehouse_pipeline::user_token(&principal, headers.get(http::header::AUTHORIZATION));
    let traceparent =
        header_str(&headers, "traceparent").and_then(gatehouse_transport::otel::Parent::parse);
    let ctx = match header_str(&headers, HEADER_SESSION_ID) {
        Some(token) => match bind(&st.gw, token, scope.as_deref(), &principal) {
            Ok(claims) => {
                // Any handshake-era version is accepted on a session (clients and the
                // conformance suite send older ones); an unknown version is refused.
                if header_str(&headers, HEADER_PROTOCOL_VERSION).is_some_and(|v| {
                    ProtocolVersion::parse(v).is_none_or(ProtocolVersion::is_stateless)
                }) {
                    return reject(
                        StatusCode::BAD_REQUEST,
                        "version",
                        code::INVALID_REQUEST,
                        "Unsupported MCP-Protocol-Version",
                    );
                }
                ClientCtx {
                    user_token,
                    principal,
                    version: claims.version,
                    client: (!claims.client.is_empty()).then(|| claims.client.clone()),
                    session: Some(claims),
                    scope,
                    source: remote.map(|r| r.0.0.ip()),
                    traceparent,
                    forwarded: gatehouse_pipeline::forwardable(&cfg, &headers),
                }
            }
            Err(r) => return r,
        },
        None => {
            let stateless = header_str(&headers, HEADER_PROTOCOL_VERSION)
                .and_then(ProtocolVersion::parse)
                .is_some_and(ProtocolVersion::is_stateless)
                || matches!(&decoded, Decoded::Single(Ok(Message::Request(r))) if r.meta().is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION)));
            if !stateless {
                return reject(
                    StatusCode::BAD_REQUEST,
                    "no_session",
                    code::INVALID_REQUEST,
                    "Bad Request: Mcp-Session-Id header is required",
                );
            }
            let client = match &decoded {
                Decoded::Single(Ok(Message::Request(r))) => r
                    .meta()
                    .and_then(|m| m.get(META_CLIENT_INFO))
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    .map(|n| n.chars().take(128).collect()),
                _ => None,
            };
            ClientCtx {
                user_token,
                principal,
                version: ProtocolVersion::LATEST_STATELESS,
                session: None,
                scope,
                client,
                source: remote.map(|r| r.0.0.ip()),
                traceparent,
                forwarded: gatehouse_pipeline::forwardable(&cfg, &headers),
            }
        }
    };

    match decoded {
        Decoded::Single(Err((id, e))) => rpc_error(
            if ctx.session.is_none() {
                gatehouse_transport::refusal::http_status(&e, true)
            } else {
                StatusCode::BAD_REQUEST
            },
            id,
            e,
        ),
        Decoded::Single(Ok(Message::Request(req))) => {
            if ctx.session.is_none() {
                let client_name = req
                    .meta()
                    .and_then(|m| m.get(META_CLIENT_INFO))
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str);
                if check_app(&ctx.principal, client_name).is_err() {
                    return app_refused();
                }
                let checked = stateless_envelope_check(
                    &req,
                    header_str(&headers, HEADER_PROTOCOL_VERSION),
                    header_str(&headers, HEADER_MCP_METHOD),
                    header_str(&headers, HEADER_MCP_NAME),
                );
                if let Err(mismatch) = checked {
                    let err = gatehouse_transport::refusal::envelope(&mismatch);
                    metrics::counter!(m::REJECTED, "reason" => "envelope").increment(1);
                    tracing::info!(target: "gatehouse::audit", reason = %mismatch, "stateless request refused");
                    return rpc_error(
                        gatehouse_transport::refusal::http_status(&err, true),
                        req.id,
                        err,
                    );
                }
            }
            respond(st.gw.clone(), ctx, req, sse_ok).await
        }
        Decoded::Single(Ok(other)) => {
            on_client_message(&st.gw, &ctx, other);
            StatusCode::ACCEPTED.into_response()
        }
        Decoded::Batch(items) => {
            if !ctx.version.allows_batch() {
                return reject(
                    StatusCode::BAD_REQUEST,
                    "batch",
                    code::INVALID_REQUEST,
                    "JSON-RPC batches are not supported in this protocol version",
                );
            }
            let mut futures = Vec::new();
            let mut answers = Vec::new();
            for item in items {
                match item {
                    Ok(Message::Request(req)) => {
                        let gw = st.gw.clone();
                        let ctx = ctx.clone();
                        futures.push(async move { gw.handle_request(&ctx, req, None).await });
                    }
                    Ok(other) => on_client_message(&st.gw, &ctx, other),
                    Err((id, e)) => answers.push(Message::Response(RpcResponse::err(id, e))),
                }
            }
            answers.extend(
                futures_util::future::join_all(futures)
                    .await
                    .into_iter()
                    .map(Message::Response),
            );
            if answers.is_empty() {
                return StatusCode::ACCEPTED.into_response();
            }
            let body = serde_json::to_vec(&answers).unwrap_or_default();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

fn initialize(
    gw: &Arc<Gateway>,
    cfg: &Config,
    scope: Option<&str>,
    principal: &Principal,
    req: &Request,
) -> Response {
    let client_name = req
        .params
        .as_ref()
        .and_then(|p| p.pointer("/clientInfo/name"))
        .and_then(Value::as_str);
    if check_app(principal, client_name).is_err() {
        return app_refused();
    }
    let vs = scope.and_then(|s| cfg.virtual_servers.get(s));
    let (version, result) = gw.initialize_result(req.param_str("protocolVersion"), vs);
    let caps =
        ClientCaps::from_capabilities(req.params.as_ref().and_then(|p| p.get("capabilities")));
    let client = client_name.unwrap_or("");
    let (token, _) = open_session(gw, version, scope, caps, principal, client, "streamable");
    metrics::counter!(m::REQUESTS, "method" => method::INITIALIZE, "outcome" => "ok").increment(1);
    let mut resp = json_body(
        StatusCode::OK,
        &RpcResponse::ok(req.id.clone(), result).into(),
    );
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert(HEADER_SESSION_ID, v);
    }
    resp
}

pub(super) fn sse_response(body: BoxStream<'static, Result<Bytes, Infallible>>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A notification or a response from the client.
pub(super) fn on_client_message(gw: &Arc<Gateway>, ctx: &ClientCtx, msg: Message) {
    match msg {
        Message::Notification(n) => match n.method.as_str() {
            method::CANCELLED => {
                if let Some(id) = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(Id::from_value)
                    && !ctx.key().is_empty()
                {
                    gw.cancel_anywhere(ctx.key(), &id);
                }
            }
            method::ROOTS_LIST_CHANGED => {
                for up in gw.upstreams().values() {
                    let up = up.clone();
                    let n = Notification::new(method::ROOTS_LIST_CHANGED, None);
                    tokio::spawn(async move { up.send(n.into()).await });
                }
            }
            _ => tracing::debug!(method = %n.method, "client notification consumed"),
        },
        Message::Response(resp) => gw.client_answered(ctx.key(), resp),
        Message::Request(_) => {}
    }
}

async fn get_mcp(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIdentity>>,
    path: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let scope = path.map(|p| p.0);
    let principal = match edge(&st, scope.as_deref(), &headers, peer.as_ref().map(|p| &p.0)).await {
        Ok((_, p)) => p,
        Err(r) => return r,
    };
    if !accepts(&headers, "text/event-stream") {
        return reject(
            StatusCode::NOT_ACCEPTABLE,
            "accept",
            code::INVALID_REQUEST,
            "Accept must allow text/event-stream",
        );
    }
    let Some(token) = header_str(&headers, HEADER_SESSION_ID) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let claims = match bind(&st.gw, token, scope.as_deref(), &principal) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // A reconnecting client names the last event it saw: that stream (the standalone one
    // or a POST answer cut short) continues from there, with what was missed replayed.
    let last = header_str(&headers, "last-event-id").and_then(EventId::parse);
    let hub = &st.gw.hub;
    let (replay, rx) = match last {
        Some(id) if id.stream != STANDALONE => match hub.resume(&claims.sid, id) {
            Some((replay, rx, finished)) => (replay, (!finished).then_some(rx)),
            None => {
                return reject(
                    StatusCode::NOT_FOUND,
                    "resume",
                    code::INVALID_REQUEST,
                    "Stream not found",
                );
            }
        },
        Some(id) => {
            let (replay, rx) = hub.open_standalone(&claims.sid, Some(id.seq));
            (replay, Some(rx))
        }
        None => {
            let (replay, rx) = hub.open_standalone(&claims.sid, None);
            (replay, Some(rx))
        }
    };
    sse_response(session_stream(replay, rx, None))
}

async fn delete_mcp(
    State(st): State<AppState>,
    peer: Option<axum::Extension<PeerIdentity>>,
    path: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let scope = path.map(|p| p.0);
    let principal = match edge(&st, scope.as_deref(), &headers, peer.as_ref().map(|p| &p.0)).await {
        Ok((_, p)) => p,
        Err(r) => return r,
    };
    let Some(token) = header_str(&headers, HEADER_SESSION_ID) else {
        return reject(
            StatusCode::BAD_REQUEST,
            "no_session",
            code::INVALID_REQUEST,
            "Mcp-Session-Id header is required",
        );
    };
    match bind(&st.gw, token, scope.as_deref(), &principal) {
        Ok(claims) => {
            st.gw.end_session(&claims);
            tracing::info!(target: "gatehouse::audit", session = %claims.sid, "session terminated by client");
            StatusCode::OK.into_response()
        }
        Err(r) => r,
    }
}

// ---- operations ----------------------------------------------------------------------

async fn readyz(State(st): State<AppState>) -> Response {
    let waiting = st.gw.not_ready();
    let unavailable = st.gw.dependencies_down().await;
    let ready = waiting.is_empty() && unavailable.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"ready": ready, "waiting": waiting, "unavailable": unavailable}).to_string(),
    )
        .into_response()
}

async fn metrics_handler(State(st): State<AppState>) -> Response {
    metrics::gauge!("gatehouse_open_streams").set(st.gw.hub.open_streams() as f64);
    if let Some(c) = gatehouse_alloc::counts() {
        use gatehouse_transport::metrics as m;
        metrics::counter!(m::ALLOCATIONS).absolute(c.allocations);
        metrics::counter!(m::ALLOCATED_BYTES).absolute(c.allocated_bytes);
        metrics::gauge!(m::HEAP_LIVE_BYTES).set(c.live_bytes as f64);
    }
    match &st.prometheus {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
