//! The client side of one request, as the edge hands it to the pipeline: who, through
//! which session and virtual server, with which token and trace context.

use std::sync::Arc;

use gatehouse_auth::{AuthMethod, Principal};
use gatehouse_protocol::ProtocolVersion;
use gatehouse_transport::session::SessionClaims;
use gatehouse_transport::upstream::UserToken;

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
