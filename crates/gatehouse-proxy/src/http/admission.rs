//! Admission: what every request passes at the edge before its messages reach the chain,
//! written once for Streamable HTTP and legacy HTTP+SSE: origin, virtual server and
//! authentication; the body read within its limits and decoded; the session bound to its
//! endpoint and principal; a session opened and audited.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use gatehouse_protocol::{Decoded, ProtocolVersion, code, decode_body};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{AppState, accepts, decode_error, header_str, origin_allowed, reject, unauthenticated};
use crate::config::Config;
use gatehouse_pipeline::Principal;
use gatehouse_pipeline::gateway::Gateway;

use crate::edge::{authenticate, bind_session};
use crate::tls::PeerIdentity;
use gatehouse_transport::session::{ClientCaps, SessionClaims};

/// Which transport a message-carrying request came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// `POST /mcp`: JSON in, JSON or an event stream out.
    Streamable,
    /// `POST /message?sessionId=` of the legacy HTTP+SSE transport.
    Legacy,
}

/// A request admitted: the configuration it is judged under, its caller and its messages.
pub(super) struct Admitted {
    pub cfg: Arc<Config>,
    pub principal: Arc<Principal>,
    pub decoded: Decoded,
}

/// Admits a message-carrying request (POST), or answers why not. Refused before the body
/// was read, the connection closes after the answer and says so, so a client never sends
/// its retry down a connection the server is about to drop (the OAuth client's 401 → sign
/// in → retry).
#[allow(clippy::result_large_err)]
pub(super) async fn admit(
    st: &AppState,
    scope: Option<&str>,
    headers: &HeaderMap,
    peer: Option<&PeerIdentity>,
    body: Body,
    transport: Transport,
) -> Result<Admitted, Response> {
    let (cfg, principal) = edge(st, scope, headers, peer).await.map_err(|mut r| {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    })?;
    if transport == Transport::Streamable {
        let ctype = header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or("");
        if !ctype.to_ascii_lowercase().starts_with("application/json") {
            return Err(reject(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type",
                code::INVALID_REQUEST,
                "Content-Type must be application/json",
            ));
        }
        if !accepts(headers, "application/json") && !accepts(headers, "text/event-stream") {
            return Err(reject(
                StatusCode::NOT_ACCEPTABLE,
                "accept",
                code::INVALID_REQUEST,
                "Accept must allow application/json or text/event-stream",
            ));
        }
    }
    let decoded = read_messages(&cfg, headers, body).await?;
    Ok(Admitted {
        cfg,
        principal,
        decoded,
    })
}

/// The session a token names, if it was issued on this endpoint to this principal; a
/// "not found" answer otherwise (a stolen or foreign id learns nothing more).
#[allow(clippy::result_large_err)]
pub(super) fn bind(
    gw: &Gateway,
    token: &str,
    scope: Option<&str>,
    principal: &Principal,
) -> Result<SessionClaims, Response> {
    bind_session(gw, token, scope, principal).map_err(|e| {
        tracing::info!(target: "gatehouse::audit", error = %e, "session refused");
        reject(
            StatusCode::NOT_FOUND,
            "session",
            code::INVALID_REQUEST,
            "Session not found",
        )
    })
}

/// Opens a session for `principal` on this endpoint: its token, its claims, and the
/// chained audit record that it was opened.
pub(super) fn open_session(
    gw: &Gateway,
    version: ProtocolVersion,
    scope: Option<&str>,
    caps: ClientCaps,
    principal: &Principal,
    client: &str,
    transport: &'static str,
) -> (String, SessionClaims) {
    let (token, claims) =
        gw.sessions
            .issue_for(version, scope.unwrap_or(""), caps, &principal.id, client);
    tracing::info!(target: "gatehouse::audit", session = %claims.sid, principal = %principal.id, method = principal.method_label(), version = %version, transport, client = %client.chars().take(128).collect::<String>(), "session opened");
    gw.audit_session_opened(principal, &claims.sid, client);
    (token, claims)
}

/// Origin, scope and authentication: what every route checks before reading a body.
#[allow(clippy::result_large_err)]
pub(super) async fn edge(
    st: &AppState,
    scope: Option<&str>,
    headers: &HeaderMap,
    peer: Option<&PeerIdentity>,
) -> Result<(Arc<Config>, Arc<Principal>), Response> {
    let cfg = st.gw.config();
    if !origin_allowed(&cfg, headers) {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "origin",
            code::INVALID_REQUEST,
            "Origin not allowed",
        ));
    }
    if let Some(name) = scope
        && !cfg.virtual_servers.contains_key(name)
    {
        return Err(reject(
            StatusCode::NOT_FOUND,
            "no_such_server",
            code::INVALID_REQUEST,
            "no such server",
        ));
    }
    match authenticate(
        &st.gw,
        &cfg,
        header_str(headers, header::AUTHORIZATION.as_str()),
        peer,
    )
    .await
    {
        Ok(p) => {
            // A tenant's virtual server serves that tenant's principals only.
            let owner = scope
                .and_then(|name| cfg.virtual_servers.get(name))
                .and_then(|vs| vs.tenant.as_deref());
            if let Some(t) = owner
                && p.tenant.as_deref() != Some(t)
            {
                tracing::warn!(target: "gatehouse::audit", principal = %p.id, tenant = p.tenant.as_deref().unwrap_or(""), server_tenant = t, scope = scope.unwrap_or(""), "virtual server of another tenant: refused");
                return Err(reject(
                    StatusCode::FORBIDDEN,
                    "tenant",
                    code::FORBIDDEN,
                    "Forbidden: this server belongs to another tenant",
                ));
            }
            Ok((cfg, p))
        }
        Err(e) => {
            // Not waited for: a flood of bad credentials must not become a flood of fsyncs.
            st.gw.audit_auth_failure(&e.to_string(), scope);
            Err(unauthenticated(&cfg, scope, &e))
        }
    }
}

/// Reads a request body within the limits and decodes it; the error is the answer.
#[allow(clippy::result_large_err)]
async fn read_messages(cfg: &Config, headers: &HeaderMap, body: Body) -> Result<Decoded, Response> {
    let bytes = read_body(cfg, headers, body).await?;
    decode_body(&bytes, &cfg.limits.decode).map_err(|e| decode_error(&e))
}

#[allow(clippy::result_large_err)]
async fn read_body(cfg: &Config, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let limit = cfg.limits.decode.max_body_bytes;
    read_bounded(headers, body, limit, cfg.limits.body_timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                code::INVALID_REQUEST,
                "request body too large",
            ),
            BodyError::TooSlow => reject(
                StatusCode::REQUEST_TIMEOUT,
                "slow_body",
                code::INVALID_REQUEST,
                "request body too slow",
            ),
        })
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit (said by `Content-Length`, or found while reading).
    TooLarge,
    /// Not all there within the time allowed (a slow sender holding a connection).
    TooSlow,
}

/// Reads a request body within `limit` bytes and `timeout`: the one body reader of every
/// route, the MCP edge's and the control surfaces' alike (each answers in its own shape).
pub async fn read_bounded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, BodyError> {
    if header_str(headers, header::CONTENT_LENGTH.as_str())
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::TooSlow),
    }
}
