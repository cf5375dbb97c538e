//! HTTP endpoints of the authorization-server façade (`/.well-known/oauth-authorization-server`,
//! `/oauth/*`): bounded bodies, strict parameter parsing, OAuth error answers, and an audit
//! record of every registration, sign-in, token issue, rotation, replay and revocation. The
//! protocol logic lives in `gatehouse_auth::AuthorizationServer`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_auth::{AuthorizationServer, FacadeEvent, OAuthError, Params, Step};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use gatehouse_pipeline::gateway::Gateway;

/// Largest registration or token request body.
const MAX_BODY: usize = 16 * 1024;

pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    // What a browser-based client calls from its own origin: metadata, keys, registration,
    // token and revocation. None of them rides on cookies or ambient credentials, so any
    // origin may read the answers. The sign-in pages (authorize, callbacks, consent) are
    // navigations, not cross-origin reads: no CORS there.
    let cors = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata).options(preflight),
        )
        .route("/oauth/jwks", get(jwks).options(preflight))
        .route("/oauth/register", post(register).options(preflight))
        .route("/oauth/token", post(token).options(preflight))
        .route("/oauth/revoke", post(revoke).options(preflight))
        .layer(axum::middleware::map_response(allow_any_origin));
    axum::Router::new()
        .merge(cors)
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/callback", get(callback))
        .route("/oauth/connect", get(connect))
        .route("/oauth/upstream/callback", get(upstream_callback))
        .with_state(gw)
}

/// CORS for the façade's machine endpoints: any origin, no credentials.
async fn allow_any_origin(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate"),
    );
    r
}

/// A CORS preflight: the methods and headers a browser client needs, cached for a day.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, mcp-protocol-version",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

/// The façade, or the answer when there is none: 404 when not configured, 503 when
/// configured but unable to run.
#[allow(clippy::result_large_err)]
fn server(gw: &Gateway) -> Result<Arc<AuthorizationServer>, Response> {
    if let Some(s) = gw.oauth() {
        return Ok(s);
    }
    let configured = gw
        .config()
        .auth
        .as_ref()
        .is_some_and(|a| a.facade.is_some());
    Err(if configured {
        oauth_error(&OAuthError {
            status: 503,
            code: "temporarily_unavailable",
            description: "the authorization server is unavailable".into(),
        })
    } else {
        StatusCode::NOT_FOUND.into_response()
    })
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn oauth_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = json_response(status, &e.body());
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gatehouse\""),
        );
    }
    r
}

fn bad_request(msg: &str) -> Response {
    oauth_error(&OAuthError {
        status: 400,
        code: "invalid_request",
        description: msg.into(),
    })
}

/// URL-encoded parameters; a repeated parameter is refused (RFC 6749 §3.1).
fn params(raw: &[u8]) -> Result<Params, &'static str> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|_| "parameters are not URL-encoded")?;
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if out.insert(k, v).is_some() {
            return Err("a parameter is repeated");
        }
    }
    Ok(out)
}

async fn read_body(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Response> {
    match crate::body::bytes(gw, headers, body, MAX_BODY).await {
        Ok(b) => Ok(b.to_vec()),
        Err(crate::body::Failure::TooSlow) => Err(bad_request("the body did not arrive in time")),
        Err(_) => Err(oauth_error(&OAuthError {
            status: 413,
            code: "invalid_request",
            description: "the body is too large".into(),
        })),
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: form-encoded parts).
#[allow(clippy::result_large_err)]
fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, Response> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refused = || {
        oauth_error(&OAuthError {
            status: 401,
            code: "invalid_client",
            description: "client authentication failed".into(),
        })
    };
    let v = v.to_str().map_err(|_| refused())?;
    gatehouse_auth::client_basic_decode(v)
        .map(Some)
        .ok_or_else(refused)
}

async fn record(gw: &Gateway, e: &FacadeEvent) {
    gw.audit_oauth(e).await;
    let m = gatehouse_transport::metrics::OAUTH_EVENTS;
    metrics::counter!(m, "event" => e.what).increment(1);
}

async fn metadata(State(gw): State<Arc<Gateway>>) -> Response {
    match server(&gw) {
        Ok(s) => json_response(StatusCode::OK, &s.metadata()),
        Err(r) => r,
    }
}

async fn jwks(State(gw): State<Arc<Gateway>>) -> Response {
    match server(&gw) {
        Ok(s) => json_response(StatusCode::OK, &s.jwks()),
        Err(r) => r,
    }
}

async fn register(
    State(gw): State<Arc<Gateway>>,
    remote: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let s = match server(&gw) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let source = remote.map(|r| r.0.0.ip());
    if !s.registration_allowed(source) {
        tracing::warn!(target: "gatehouse::audit", source = ?source, "client registration refused: too many from this address");
        let mut r = oauth_error(&OAuthError {
            status: 429,
            code: "invalid_request",
            description: "too many registrations from this address; try again later".into(),
        });
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
        return r;
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_type {
        return bad_request("the body must be application/json");
    }
    let raw = match read_body(&gw, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(v) = serde_json::from_slice::<Value>(&raw) else {
        return oauth_error(&OAuthError {
            status: 400,
            code: "invalid_client_metadata",
            description: "the body is not JSON".into(),
        });
    };
    let outcome = tokio::task::spawn_blocking(move || s.register(&v)).await;
    match outcome {
        Ok(Ok((v, event))) => {
            record(&gw, &event).await;
            json_response(StatusCode::CREATED, &v)
        }
        Ok(Err(e)) => {
            tracing::info!(error = e.code, detail = %e.description, "client registration refused");
            oauth_error(&e)
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn step(s: Step) -> Response {
    match s {
        Step::Redirect(url) => match HeaderValue::from_str(&url) {
            Ok(v) => (
                StatusCode::FOUND,
                [
                    (header::LOCATION, v),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response(),
            Err(_) => page(400, "The redirect is not valid."),
        },
        Step::Page(status, text) => page(status, &text),
        // Only the callback completes a console sign-in, and it handles it itself.
        Step::Console { .. } => page(400, "This sign-in is not valid."),
    }
}

/// A plain-text page: an outcome, or an error no client redirect may carry. Never HTML, so
/// nothing reflected can run.
fn page(status: u16, text: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = if status.is_success() {
        format!("{text}\n")
    } else {
        format!("Sign-in failed: {text}\n")
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn authorize(State(gw): State<Arc<Gateway>>, RawQuery(q): RawQuery) -> Response {
    match browser_step(&gw, q) {
        Ok((s, q)) => step(s.authorize(&q).await),
        Err(r) => r,
    }
}

async fn callback(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (s, q) = match browser_step(&gw, q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(authn) = gw.authenticator() else {
        return page(503, "No identity provider is configured.");
    };
    let (next, event) = s.callback(&q, &authn).await;
    record(&gw, &event).await;
    match next {
        Step::Console { principal, binding } => {
            crate::console::finish_sso(&gw, &headers, principal, &binding).await
        }
        other => step(other),
    }
}

/// A consent link: the user signs in at the login provider, then at the upstream.
async fn connect(State(gw): State<Arc<Gateway>>, RawQuery(q): RawQuery) -> Response {
    let (s, q) = match browser_step(&gw, q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (next, event) = s.connect(&q).await;
    record(&gw, &event).await;
    step(next)
}

async fn upstream_callback(State(gw): State<Arc<Gateway>>, RawQuery(q): RawQuery) -> Response {
    let (s, q) = match browser_step(&gw, q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (next, event) = s.upstream_callback(&q).await;
    record(&gw, &event).await;
    step(next)
}

/// The server and the query of a step a browser makes (authorize, callbacks, consent).
#[allow(clippy::result_large_err)]
fn browser_step(
    gw: &Gateway,
    q: Option<String>,
) -> Result<(Arc<AuthorizationServer>, Params), Response> {
    let s = server(gw)?;
    let q = params(q.unwrap_or_default().as_bytes()).map_err(|e| page(400, e))?;
    Ok((s, q))
}

/// Reads a form body and the client's Basic credentials.
async fn form(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Params, Option<(String, String)>), Response> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(bad_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let creds = basic(headers)?;
    let raw = read_body(gw, headers, body).await?;
    let p = params(&raw).map_err(bad_request)?;
    Ok((p, creds))
}

async fn token(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let s = match server(&gw) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (p, creds) = match form(&gw, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // A principal the directory deprovisioned (or an administrator revoked) gets no new
    // token: its sign-in is revoked at its next refresh.
    let dir = gw.directory();
    let cut_off = move |principal: &str| -> Result<bool, String> {
        let subject = principal.split_once('/').map_or(principal, |(_, s)| s);
        match &dir {
            Ok(None) => Ok(false),
            Ok(Some(d)) => d.is_deprovisioned(subject).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        }
    };
    let outcome = if p.get("grant_type").map(String::as_str) == Some(gatehouse_auth::JWT_BEARER) {
        // An ID-JAG: its signature and claims are checked first (the issuer's keys may have
        // to be fetched), then the grant itself on a blocking thread (it touches the store).
        let (Some(authn), false) = (gw.authenticator(), s.id_jag_issuers().is_empty()) else {
            return oauth_error(&OAuthError {
                status: 400,
                code: "unsupported_grant_type",
                description: "authorization_code or refresh_token".into(),
            });
        };
        let Some(assertion) = p.get("assertion").cloned() else {
            return bad_request("assertion is required");
        };
        let verified = authn
            .verify_id_jag(&assertion, s.issuer(), s.id_jag_issuers())
            .await;
        tokio::task::spawn_blocking(move || s.assertion_grant(&p, creds, verified, &cut_off)).await
    } else {
        tokio::task::spawn_blocking(move || s.token(&p, creds, &cut_off)).await
    };
    let Ok((outcome, event)) = outcome else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(e) = &event {
        record(&gw, e).await;
    }
    match outcome {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => {
            tracing::info!(error = e.code, detail = %e.description, "token request refused");
            oauth_error(&e)
        }
    }
}

async fn revoke(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let s = match server(&gw) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (p, creds) = match form(&gw, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok((outcome, event)) = tokio::task::spawn_blocking(move || s.revoke(&p, creds)).await
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(e) = &event {
        record(&gw, e).await;
    }
    match outcome {
        Ok(()) => json_response(StatusCode::OK, &json!({})),
        Err(e) => oauth_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_once_and_never_repeated() {
        let p = params(b"a=1&b=x%20y&c=").expect("parse");
        assert_eq!(p["b"], "x y");
        assert_eq!(p["c"], "");
        assert!(params(b"a=1&a=2").is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret+x"));
        h.insert(header::AUTHORIZATION, v.parse().expect("header"));
        let (id, secret) = basic(&h).ok().flatten().expect("creds");
        assert_eq!(id, "my id");
        assert_eq!(secret, "s:cret x");
        h.insert(header::AUTHORIZATION, "Bearer x".parse().expect("header"));
        assert!(basic(&h).is_err());
        // What Gatehouse sends as a client reads back the same, special characters and all.
        let sent = gatehouse_auth::client_basic("app:1 &x", "p%ss+w:rd");
        h.insert(header::AUTHORIZATION, sent.parse().expect("header"));
        let (id, secret) = basic(&h).ok().flatten().expect("creds");
        assert_eq!((id.as_str(), secret.as_str()), ("app:1 &x", "p%ss+w:rd"));
        for bad in ["Basic %%%", "Basic Og", "Basic bXk6JXp6"] {
            h.insert(header::AUTHORIZATION, bad.parse().expect("header"));
            assert!(basic(&h).is_err(), "{bad}");
        }
    }
}
