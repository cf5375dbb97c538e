//! The operator console at `/console`: a page and its script built into the binary (no
//! CDN, works offline), a strict Content-Security-Policy, sign-in (single sign-on through
//! the façade's identity provider, the admin token, an API key bound to the console, or a
//! one-time link), a signed HttpOnly SameSite=Strict session cookie, a CSRF token on every
//! change, and console roles (viewer, approver, admin). The pages' data comes from
//! `api.rs`, which calls the same code as the admin and approvals APIs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use aws_lc_rs::hmac;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_auth::{AuthMethod, Principal, PrincipalKind};
use gatehouse_pipeline::gateway::Gateway;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The signed-in operator with at least a role, or the refusal returned from the handler.
macro_rules! signed_in {
    ($gw:expr, $headers:expr, $role:expr, $write:expr) => {
        match operator(&$gw, &$headers, $role, $write) {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

mod api;
mod explorer;
mod policy;

/// The application an API key must be bound to for console sign-in.
pub const CONSOLE_APP: &str = "gatehouse-console";
/// The CSRF header every change carries.
pub(crate) const CSRF_HEADER: &str = "x-gatehouse-csrf";
/// How long a one-time sign-in link stays valid.
const TICKET_TTL_SECS: u64 = 3600;
/// How long a single sign-on round trip may take.
const SSO_TTL_SECS: u64 = 600;
/// Roles and groups a session cookie keeps at most.
const MAX_ROLES: usize = 32;
/// Largest sign-in body.
const MAX_LOGIN_BODY: usize = 8 * 1024;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Nothing but the console's own files; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What an operator may do in the console, each including the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Approver,
    Admin,
}

/// A signed-in operator, as the session cookie carries them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub sub: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub acr: Option<String>,
    pub auth_time: Option<u64>,
    /// How they signed in: `sso`, `admin_token`, `api_key`, `link`.
    pub via: String,
    pub role: Role,
    pub exp: u64,
    pub csrf: String,
}

impl Session {
    /// The operator as a principal, for the checks the APIs share (separation of duties,
    /// tenant, step-up).
    pub(crate) fn principal(&self) -> Principal {
        let mut p = Principal::anonymous();
        p.id = self.sub.clone();
        p.kind = PrincipalKind::User;
        p.tenant = self.tenant.clone();
        p.roles = self.roles.clone();
        p.groups = self.groups.clone();
        p.acr = self.acr.clone();
        p.authenticated_at = self.auth_time;
        p.method = AuthMethod::Gateway {
            idp: format!("console:{}", self.via),
        };
        p
    }
}

fn now() -> u64 {
    gatehouse_transport::session::now_secs()
}

/// The cookie-signing key: derived from `session.key` (shared by replicas), else made at
/// start (sign-ins then end with the process). `None` when no key could be made: nobody
/// signs in (never a guessable key).
fn signing_key(gw: &Gateway) -> Option<hmac::Key> {
    static RANDOM: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    let cfg = gw.config();
    let base: [u8; 32] = match cfg.session_key {
        Some(k) => k,
        None => {
            (*RANDOM.get_or_init(|| {
                let mut b = [0u8; 32];
                aws_lc_rs::rand::fill(&mut b).ok().map(|()| b)
            }))?
        }
    };
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &base),
        b"gatehouse console session v1",
    );
    Some(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
}

fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

fn sha256_b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        s.as_bytes(),
    ))
}

/// The session cookie's name: `__Host-` (Secure, no Domain, Path=/) when the gateway
/// serves TLS.
fn cookie_name(gw: &Gateway) -> &'static str {
    if gw.config().tls.is_some() {
        "__Host-gatehouse-console"
    } else {
        "gatehouse-console"
    }
}

fn cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    // Secure: browsers keep it on https and on loopback http only.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("gatehouse-console=; Max-Age=0"))
}

fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn seal(gw: &Gateway, s: &Session) -> Option<String> {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).ok()?);
    let tag = hmac::sign(&signing_key(gw)?, body.as_bytes());
    Some(format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
}

fn open(gw: &Gateway, value: &str) -> Option<Session> {
    let (body, tag) = value.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    hmac::verify(&signing_key(gw)?, body.as_bytes(), &tag).ok()?;
    let s: Session = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    (s.exp > now()).then_some(s)
}

/// The console role an operator's roles (with what they inherit) and groups give.
pub(crate) fn role_of(gw: &Gateway, p: &Principal) -> Option<Role> {
    let cfg = gw.config();
    let mut held = crate::approvals::roles(cfg.authorization.as_deref(), p);
    held.extend(p.groups.iter().cloned());
    let c = &cfg.console;
    let has = |names: &[String]| names.iter().any(|n| held.contains(n));
    if has(&c.admins) {
        Some(Role::Admin)
    } else if has(&c.approvers) {
        Some(Role::Approver)
    } else if has(&c.viewers) {
        Some(Role::Viewer)
    } else {
        None
    }
}

/// Signs `p` in with `role`: the cookie, and the audit record naming the operator.
async fn sign_in(
    gw: &Gateway,
    p: &Principal,
    role: Role,
    via: &str,
) -> Result<HeaderValue, Response> {
    let Some(csrf) = random_token() else {
        return Err(fail(StatusCode::SERVICE_UNAVAILABLE, "no randomness"));
    };
    let ttl = gw.config().console.session_ttl.as_secs();
    let s = Session {
        sub: p.id.clone(),
        tenant: p.tenant.clone(),
        // The cookie stays under browsers' 4 KB; the console role is decided now.
        roles: p.roles.iter().take(MAX_ROLES).cloned().collect(),
        groups: p.groups.iter().take(MAX_ROLES).cloned().collect(),
        acr: p.acr.clone(),
        auth_time: p.authenticated_at,
        via: via.to_owned(),
        role,
        exp: now() + ttl,
        csrf,
    };
    let Some(sealed) = seal(gw, &s) else {
        return Err(fail(StatusCode::SERVICE_UNAVAILABLE, "no signing key"));
    };
    if !audit(
        gw,
        &s,
        "console.signed_in",
        "",
        json!({"via": via, "role": role}),
    )
    .await
    {
        return Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the sign-in could not be recorded",
        ));
    }
    Ok(cookie(cookie_name(gw), &sealed, ttl))
}

/// Records a console action with the operator's identity (committed before the answer).
/// Whether the record is committed (or no audit record is configured): a sign-in or a read
/// of the audit trail that cannot be recorded does not happen.
pub(crate) async fn audit(
    gw: &Gateway,
    s: &Session,
    what: &str,
    target: &str,
    detail: Value,
) -> bool {
    tracing::warn!(target: "gatehouse::audit", operator = %s.sub, action = what, target, "console");
    let Some(w) = &gw.audit else { return true };
    let event = gatehouse_audit::AuditEvent {
        v: gatehouse_audit::SCHEMA_VERSION,
        kind: Some(gatehouse_audit::EventKind::Config),
        time_ms: gatehouse_pipeline::audit::now_ms(),
        principal: s.sub.clone(),
        tenant: s.tenant.clone().unwrap_or_default(),
        auth_method: format!("console:{}", s.via),
        client: CONSOLE_APP.into(),
        method: what.to_owned(),
        target: target.to_owned(),
        status: "ok".into(),
        detail: detail.to_string(),
        ..Default::default()
    };
    match w.record(event, true).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(target: "gatehouse::audit", error = %e, action = what, "console audit record not committed");
            false
        }
    }
}

pub(crate) fn reply(status: StatusCode, v: Value) -> Response {
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

pub(crate) fn fail(status: StatusCode, message: &str) -> Response {
    reply(status, json!({"error": message, "status": status.as_u16()}))
}

/// Whether a request comes from the console's own origin: browsers send `Sec-Fetch-Site`
/// and `Origin` on every cross-site request, so a forged one is refused even before its
/// CSRF token is looked at.
fn same_origin(headers: &HeaderMap) -> bool {
    let site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none");
    let origin_ok = match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (None, _) => true,
        (Some(o), Some(host)) => o
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    };
    site_ok && origin_ok
}

/// The signed-in operator holding at least `need`; for a change (`write`) also the CSRF
/// token and the same origin. The subject's revocation ends their console session too.
#[allow(clippy::result_large_err)]
pub(crate) fn operator(
    gw: &Gateway,
    headers: &HeaderMap,
    need: Role,
    write: bool,
) -> Result<Session, Response> {
    if !gw.config().console.enabled {
        return Err(StatusCode::NOT_FOUND.into_response());
    }
    let Some(s) = read_cookie(headers, cookie_name(gw)).and_then(|v| open(gw, v)) else {
        return Err(fail(StatusCode::UNAUTHORIZED, "sign in to the console"));
    };
    if write {
        let token = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = same_origin(headers)
            && !token.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                token.as_bytes(),
                s.csrf.as_bytes(),
            )
            .is_ok();
        if !ok {
            tracing::warn!(target: "gatehouse::audit", operator = %s.sub, "console change without a valid CSRF token refused");
            return Err(fail(StatusCode::FORBIDDEN, "missing or wrong CSRF token"));
        }
    }
    if s.role < need {
        return Err(fail(
            StatusCode::FORBIDDEN,
            &format!("this needs the console's {need:?} role").to_lowercase(),
        ));
    }
    // Fail closed when the directory cannot say, except for the admin token: the way in
    // while the directory is down.
    if s.via != "admin_token" {
        let subject = s.sub.rsplit('/').next().unwrap_or(&s.sub);
        match gw.directory() {
            Ok(None) => {}
            Ok(Some(dir)) => match dir.is_deprovisioned(subject) {
                Ok(false) => {}
                Ok(true) => {
                    return Err(fail(StatusCode::UNAUTHORIZED, "this operator was revoked"));
                }
                Err(_) => {
                    return Err(fail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "directory unavailable",
                    ));
                }
            },
            Err(_) => {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "directory unavailable",
                ));
            }
        }
    }
    Ok(s)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Every console answer carries the policy headers.
async fn harden(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

async fn index(State(gw): State<Arc<Gateway>>) -> Response {
    static_file(&gw, "text/html; charset=utf-8", INDEX)
}

/// One of the console's files, when the console is on.
fn static_file(gw: &Gateway, content_type: &'static str, body: &'static str) -> Response {
    if !gw.config().console.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    asset(content_type, body)
}

/// `POST /console/api/login {"token": "…"}`: the admin token (an administrator), or an
/// API key bound to the `gatehouse-console` application or a JWT (the operator's roles
/// decide the console role).
async fn login(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    if !gw.config().console.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    // Login CSRF: a cross-site form cannot sign a browser in as someone else.
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !same_origin(&headers) || !json_body {
        return fail(StatusCode::FORBIDDEN, "sign in from the console's own page");
    }
    let v = match crate::body::json(&gw, &headers, body, MAX_LOGIN_BODY).await {
        Ok(v) => v,
        Err(f) => return fail(f.status(), f.message()),
    };
    let token = v.get("token").and_then(Value::as_str).unwrap_or("").trim();
    if token.is_empty() {
        return fail(StatusCode::BAD_REQUEST, "a token is required");
    }
    let (p, role, via) = if crate::token::verify(&gw, token, |c| c.admin_token.as_ref()).is_ok() {
        let mut p = Principal::anonymous();
        p.id = "admin".into();
        (p, Role::Admin, "admin_token")
    } else {
        let cfg = gw.config();
        let p = match gatehouse_proxy::edge::authenticate(
            &gw,
            &cfg,
            Some(&format!("Bearer {token}")),
            None,
        )
        .await
        {
            Ok(p) if !matches!(p.method, AuthMethod::DevMode) => p,
            _ => return refused(&gw, "a console sign-in with a wrong token").await,
        };
        if gatehouse_proxy::edge::check_app(&p, Some(CONSOLE_APP)).is_err() {
            return refused(&gw, "an API key of another application").await;
        }
        let Some(role) = role_of(&gw, &p) else {
            return refused(&gw, "an operator without a console role").await;
        };
        let via = if matches!(p.method, AuthMethod::ApiKey { .. }) {
            "api_key"
        } else {
            "token"
        };
        ((*p).clone(), role, via)
    };
    match sign_in(&gw, &p, role, via).await {
        Ok(c) => {
            let mut r = reply(StatusCode::OK, json!({"operator": p.id, "role": role}));
            r.headers_mut().insert(header::SET_COOKIE, c);
            r
        }
        Err(r) => r,
    }
}

async fn refused(gw: &Gateway, why: &str) -> Response {
    gw.audit_auth_failure(&format!("console: {why}"), None);
    fail(StatusCode::UNAUTHORIZED, "sign-in refused")
}

/// One-time sign-in links (`serve --demo` prints one per demo role): the digest of the
/// ticket → the operator and the link's expiry. Per process.
fn tickets() -> &'static Mutex<HashMap<String, (Principal, u64)>> {
    static T: OnceLock<Mutex<HashMap<String, (Principal, u64)>>> = OnceLock::new();
    T.get_or_init(Mutex::default)
}

/// Makes a one-time sign-in link's ticket for `p` (valid an hour, usable once).
pub fn issue_ticket(p: Principal) -> Option<String> {
    let t = random_token()?;
    let mut map = tickets().lock().unwrap_or_else(PoisonError::into_inner);
    let now = now();
    map.retain(|_, (_, exp)| *exp > now);
    map.insert(sha256_b64(&t), (p, now + TICKET_TTL_SECS));
    Some(t)
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    ticket: Option<String>,
}

/// `GET /console/login?ticket=…`: a one-time link; then `/console`.
async fn link(State(gw): State<Arc<Gateway>>, Query(q): Query<LinkQuery>) -> Response {
    if !gw.config().console.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let taken = q.ticket.and_then(|t| {
        tickets()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&sha256_b64(&t))
    });
    let Some((p, exp)) = taken.filter(|(_, exp)| *exp > now()) else {
        gw.audit_auth_failure("console: an unknown, used or expired sign-in link", None);
        return page(
            StatusCode::UNAUTHORIZED,
            "This sign-in link is unknown, used or expired.",
        );
    };
    let _ = exp;
    let Some(role) = role_of(&gw, &p) else {
        return page(StatusCode::FORBIDDEN, "This operator has no console role.");
    };
    match sign_in(&gw, &p, role, "link").await {
        Ok(c) => see_console(c),
        Err(r) => r,
    }
}

fn see_console(c: HeaderValue) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/console")]).into_response();
    r.headers_mut().insert(header::SET_COOKIE, c);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

const SSO_COOKIE: &str = "gatehouse-console-sso";

/// `GET /console/login/sso`: single sign-on at the façade's identity provider
/// (authorization code + PKCE), bound to this browser by a short-lived nonce cookie.
async fn sso(State(gw): State<Arc<Gateway>>) -> Response {
    if !gw.config().console.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(server) = gw.oauth() else {
        return page(StatusCode::NOT_FOUND, "Single sign-on needs auth.facade.");
    };
    let Some(nonce) = random_token() else {
        return page(StatusCode::SERVICE_UNAVAILABLE, "Try again later.");
    };
    match server.console_login(&sha256_b64(&nonce)).await {
        Ok(url) => match HeaderValue::from_str(&url) {
            Ok(loc) => {
                let mut r = (StatusCode::FOUND, [(header::LOCATION, loc)]).into_response();
                // Lax: the provider's redirect back is a top-level cross-site navigation.
                if let Ok(c) = HeaderValue::from_str(&format!(
                    "{SSO_COOKIE}={nonce}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={SSO_TTL_SECS}"
                )) {
                    r.headers_mut().insert(header::SET_COOKIE, c);
                }
                r
            }
            Err(_) => page(
                StatusCode::BAD_GATEWAY,
                "The identity provider's address is not valid.",
            ),
        },
        Err(e) => {
            tracing::warn!(error = %e, "console sign-on could not start");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity provider is unavailable.",
            )
        }
    }
}

/// The end of a single sign-on (`/oauth/callback` hands it over): the browser must hold
/// the nonce the sign-in started with.
pub(crate) async fn finish_sso(
    gw: &Gateway,
    headers: &HeaderMap,
    p: Arc<Principal>,
    binding: &str,
) -> Response {
    let held = read_cookie(headers, SSO_COOKIE).map(sha256_b64);
    let bound = held.as_deref().is_some_and(|h| {
        !binding.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(h.as_bytes(), binding.as_bytes())
                .is_ok()
    });
    if !bound {
        gw.audit_auth_failure("console: a sign-on that another browser started", None);
        return page(
            StatusCode::FORBIDDEN,
            "This sign-in was started in another browser. Start again from the console.",
        );
    }
    let Some(role) = role_of(gw, &p) else {
        gw.audit_auth_failure("console: an operator without a console role", None);
        return page(StatusCode::FORBIDDEN, "You have no console role.");
    };
    match sign_in(gw, &p, role, "sso").await {
        Ok(c) => {
            let mut r = see_console(c);
            if let Ok(clear) = HeaderValue::from_str(&format!(
                "{SSO_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
            )) {
                r.headers_mut().append(header::SET_COOKIE, clear);
            }
            r
        }
        Err(r) => r,
    }
}

/// `POST /console/api/logout`.
async fn logout(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let s = match operator(&gw, &headers, Role::Viewer, true) {
        Ok(s) => s,
        Err(r) => return r,
    };
    audit(&gw, &s, "console.signed_out", "", json!({})).await;
    let mut r = reply(StatusCode::OK, json!({"signed_out": true}));
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(cookie_name(&gw), "", 0));
    r
}

/// `GET /console/api/me`: who is signed in, their console role and the CSRF token.
async fn me(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !gw.config().console.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    match operator(&gw, &headers, Role::Viewer, false) {
        Ok(s) => reply(
            StatusCode::OK,
            json!({
                "operator": s.sub,
                "tenant": s.tenant,
                "role": s.role,
                "via": s.via,
                "csrf": s.csrf,
                "expires": s.exp,
                "sso": gw.oauth().is_some(),
            }),
        ),
        Err(_) => reply(
            StatusCode::OK,
            json!({"operator": null, "sso": gw.oauth().is_some()}),
        ),
    }
}

/// The console's routes.
pub(crate) fn router(gw: Arc<Gateway>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route(
            "/console/app.js",
            get(|State(gw): State<Arc<Gateway>>| async move {
                static_file(&gw, "text/javascript; charset=utf-8", SCRIPT)
            }),
        )
        .route(
            "/console/app.css",
            get(|State(gw): State<Arc<Gateway>>| async move {
                static_file(&gw, "text/css; charset=utf-8", STYLE)
            }),
        )
        .route("/console/login", get(link))
        .route("/console/login/sso", get(sso))
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
        .route("/console/api/me", get(me))
        .merge(api::router())
        .layer(axum::middleware::from_fn(harden))
        .with_state(gw)
}
