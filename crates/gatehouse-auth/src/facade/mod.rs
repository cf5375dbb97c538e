//! The authorization-server façade, for MCP clients that expect the server side to run
//! login: RFC 8414 metadata, RFC 7591 dynamic registration against an allowlist of redirect
//! URIs, authorization code with PKCE (S256 only), the user's sign-in delegated to the
//! enterprise identity provider, and the gateway's own short-lived access tokens (ES256 JWTs)
//! with rotating refresh tokens. A replayed refresh token or code revokes its whole family.
//! Clients may instead be named by the URL of their metadata document (`cimd`).
//! Clients only ever hold gateway tokens; the provider's token never leaves the gateway.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_store::{CodeGrant, OAuthClient, OAuthStore, PendingLogin, StoreError};
use serde_json::{Value, json};

use crate::issuer::Authenticator;
use crate::principal::AuthMethod;
use crate::secrets::LocalSecrets;
use crate::upstream::SecretRef;
use crate::wire::{form_encode, now, read_limited, sha256};

mod cimd;
pub(crate) mod consent;
mod console;
mod keys;
mod register;
pub use cimd::ClientMetadataConfig;
pub use register::{redirect_allowed, valid_allow_entry};
impl Authenticator {
    /// Accepts the tokens the gateway's authorization server issues.
    pub fn with_own_tokens(self, server: &AuthorizationServer) -> Self {
        self.accepting_own(server.own_tokens())
    }
}

#[cfg(test)]
mod tests;
mod token;

pub(crate) use keys::OwnTokens;
use keys::{Signer, principal_claims};

/// Where users sign in: one of the trusted issuers, with the gateway registered there as a
/// confidential client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// The provider's `iss`; it must also be a trusted issuer, whose tokens become principals.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// Scopes asked of the provider.
    pub scopes: Vec<String>,
    /// The RFC 8707 resource asked of the provider (its token must be one the gateway accepts).
    pub resource: String,
    /// Override the endpoints from the provider's discovery document.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

/// The façade, validated from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacadeConfig {
    /// This gateway as an issuer: an origin (`https://mcp.example.com`), no path.
    pub issuer: String,
    /// The audience of gateway tokens (`auth.resource`).
    pub audience: String,
    /// Resources a client may ask for (RFC 8707); all map to `audience`.
    pub resources: Vec<String>,
    pub login: LoginConfig,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Redirect URIs a client may register: exact, or a prefix ending in `*` after a path.
    /// A loopback entry without a port matches any port (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    pub max_clients: usize,
    pub scopes: Vec<String>,
    /// PKCS#8 PEM of the P-256 signing key; created on first start when missing. Replicas
    /// share it (a mounted secret). `None`: beside the store file.
    pub signing_key: Option<PathBuf>,
    /// AES-256-GCM key (32 bytes, base64) sealing users' upstream tokens.
    pub token_key: Option<SecretRef>,
    /// Upstreams called with each user's own token, obtained through consent.
    pub upstreams: Vec<consent::UpstreamOAuth>,
    /// PostgreSQL for the façade's state (shared by replicas); `None`: the store file.
    pub postgres: Option<String>,
    /// Client ids that are URLs of metadata documents; `None`: registration only.
    pub client_metadata: Option<ClientMetadataConfig>,
    /// Dynamic registrations one address may make per hour.
    pub registrations_per_hour: u32,
    /// Issuers (`iss`) whose identity assertion authorization grants (ID-JAG) the token
    /// endpoint accepts; empty: none.
    pub id_jag_issuers: Vec<String>,
}

/// RFC 7523's grant type, which carries an ID-JAG.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a login may take at the provider, and how long a code lives.
pub(crate) const LOGIN_TTL: u64 = 600;
const CODE_TTL: u64 = 60;
const MAX_REDIRECT_URIS: usize = 10;
const MAX_PARAM: usize = 2048;
/// How long a family found live is believed live before the store is asked again.
const FAMILY_RECHECK: Duration = Duration::from_secs(5);

/// An OAuth error answer (RFC 6749 §5.2, RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            code,
            description: description.into(),
        }
    }

    fn bad(code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError::new(400, code, description)
    }

    fn store(e: StoreError) -> OAuthError {
        tracing::error!(error = %e, "oauth store");
        OAuthError::new(503, "temporarily_unavailable", "try again later")
    }

    pub fn body(&self) -> Value {
        json!({"error": self.code, "error_description": self.description})
    }
}

/// Something the audit record should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacadeEvent {
    /// `auth.client_registered`, `auth.login`, `auth.token_issued`, `auth.token_refreshed`,
    /// `auth.refresh_replayed`, `auth.code_replayed`, `auth.refresh_refused`,
    /// `auth.token_revoked`, `auth.login_failed`.
    pub what: &'static str,
    pub principal: String,
    pub tenant: Option<String>,
    pub client_id: String,
    pub ok: bool,
    pub detail: String,
}

/// What `/authorize` and the provider's callback lead to.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// 302 to this URL (the provider's login, or the client's redirect URI).
    Redirect(String),
    /// No redirect is safe (unknown client, redirect URI not registered, unknown state):
    /// an error page with this status and text.
    Page(u16, String),
    /// A console sign-in completed: the operator, and the digest of the nonce the browser
    /// that started it must still hold.
    Console {
        principal: Arc<crate::Principal>,
        binding: String,
    },
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ProviderMeta {
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

pub(crate) fn digest(s: &str) -> String {
    hex(&sha256(s))
}

/// 32 random bytes, base64url: states, codes, refresh tokens, client ids.
pub(crate) fn random_token() -> String {
    // Fail closed: a generator that fails issues nothing. The request that needed the
    // token ends (its task unwinds, the gateway keeps serving) rather than receiving a
    // predictable credential.
    token_from(|b| aws_lc_rs::rand::SystemRandom::new().fill(b).is_ok()).unwrap_or_else(|| {
        tracing::error!("the system random generator failed: no token issued");
        panic!("the system random generator failed: no token issued")
    })
}

/// 32 random bytes, URL-safe base64, from `fill`; `None` when `fill` fails.
fn token_from(fill: impl FnOnce(&mut [u8]) -> bool) -> Option<String> {
    let mut b = [0u8; 32];
    fill(&mut b).then(|| URL_SAFE_NO_PAD.encode(b))
}

pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier))
}

/// RFC 7636: 43–128 characters of `[A-Za-z0-9-._~]`.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Constant-time equality for secrets' digests (the vetted comparison).
fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The authorization server.
pub struct AuthorizationServer {
    pub(crate) cfg: FacadeConfig,
    signer: Signer,
    pub(crate) store: Arc<dyn OAuthStore>,
    own: Arc<OwnTokens>,
    pub(crate) secrets: Option<Arc<LocalSecrets>>,
    pub(crate) http: reqwest::Client,
    /// Seals users' upstream tokens (AES-256-GCM); set when a key is configured.
    pub(crate) sealer: Option<aws_lc_rs::aead::LessSafeKey>,
    /// One refresh of a user's upstream token at a time.
    pub(crate) refreshing: tokio::sync::Mutex<()>,
    provider: tokio::sync::Mutex<Option<(ProviderMeta, Instant)>>,
    /// Metadata documents fetched lately.
    documents: Mutex<cimd::DocumentCache>,
    /// Registrations per address in the current hour.
    registrations: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl std::fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("issuer", &self.cfg.issuer)
            .finish()
    }
}

/// A request's parameters (query or form).
pub type Params = HashMap<String, String>;

/// Whether a principal id was cut off (deprovisioned or revoked) since it signed in.
pub type CutOff<'a> = dyn Fn(&str) -> Result<bool, String> + Send + Sync + 'a;

impl AuthorizationServer {
    /// Loads (or creates) the signing key. The [`Authenticator`] must be told of the
    /// server with [`Authenticator::with_own_tokens`] so gateway tokens are accepted.
    /// `default_key` is the signing key's file when the config names none.
    pub fn new(
        cfg: FacadeConfig,
        default_key: &Path,
        store: Arc<dyn OAuthStore>,
        secrets: Option<Arc<LocalSecrets>>,
    ) -> Result<AuthorizationServer, String> {
        let signer = Signer::load_or_create(cfg.signing_key.as_deref().unwrap_or(default_key))?;
        let sealer = match (&cfg.token_key, cfg.upstreams.is_empty()) {
            (Some(k), _) => Some(consent::sealing_key(k, secrets.as_deref())?),
            (None, true) => None,
            (None, false) => return Err("per-user upstream OAuth needs token_key".into()),
        };
        let own = Arc::new(OwnTokens {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            decoding: signer.decoding.clone(),
            kid: signer.kid.clone(),
            store: store.clone(),
            families: Mutex::new(HashMap::new()),
        });
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Ok(AuthorizationServer {
            cfg,
            signer,
            store,
            own,
            secrets,
            http,
            sealer,
            refreshing: tokio::sync::Mutex::new(()),
            provider: tokio::sync::Mutex::new(None),
            documents: Mutex::new(cimd::DocumentCache::default()),
            registrations: Mutex::new(HashMap::new()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.cfg.issuer
    }

    /// Issuers whose ID-JAGs the token endpoint accepts.
    pub fn id_jag_issuers(&self) -> &[String] {
        &self.cfg.id_jag_issuers
    }

    pub(crate) fn own_tokens(&self) -> Arc<OwnTokens> {
        self.own.clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.issuer)
    }

    /// RFC 8414 metadata.
    pub fn metadata(&self) -> Value {
        json!({
            "issuer": self.cfg.issuer,
            "authorization_endpoint": self.url("/oauth/authorize"),
            "token_endpoint": self.url("/oauth/token"),
            "registration_endpoint": self.url("/oauth/register"),
            "revocation_endpoint": self.url("/oauth/revoke"),
            "jwks_uri": self.url("/oauth/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": if self.cfg.id_jag_issuers.is_empty() {
                json!(["authorization_code", "refresh_token"])
            } else {
                json!(["authorization_code", "refresh_token", JWT_BEARER])
            },
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "scopes_supported": self.cfg.scopes,
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": self.cfg.client_metadata.is_some(),
        })
    }

    /// Whether `ip` may register another client this hour (dynamic registration is open to
    /// anyone: one address cannot fill the client table).
    pub fn registration_allowed(&self, ip: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        let limit = self.cfg.registrations_per_hour;
        if limit == 0 {
            return true;
        }
        let mut m = self
            .registrations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hour = Duration::from_secs(3600);
        if m.len() > 10_000 {
            m.retain(|_, (_, since)| since.elapsed() < hour);
        }
        let e = m.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= hour {
            *e = (0, Instant::now());
        }
        if e.0 >= limit {
            return false;
        }
        e.0 += 1;
        true
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.signer.jwk]})
    }

    async fn provider(&self) -> Result<ProviderMeta, String> {
        let l = &self.cfg.login;
        if let (Some(a), Some(t)) = (&l.authorization_endpoint, &l.token_endpoint) {
            return Ok(ProviderMeta {
                authorization_endpoint: Some(a.clone()),
                token_endpoint: Some(t.clone()),
            });
        }
        let mut slot = self.provider.lock().await;
        if let Some((m, at)) = slot.as_ref()
            && at.elapsed() < Duration::from_secs(3600)
        {
            return Ok(m.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            l.issuer.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("discovery: HTTP {}", resp.status()));
        }
        let body = read_limited(resp, 256 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        let mut m: ProviderMeta =
            serde_json::from_slice(&body).map_err(|e| format!("discovery: {e}"))?;
        if l.authorization_endpoint.is_some() {
            m.authorization_endpoint = l.authorization_endpoint.clone();
        }
        if l.token_endpoint.is_some() {
            m.token_endpoint = l.token_endpoint.clone();
        }
        *slot = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// `/authorize`: checks the client's request and sends the user to the provider.
    pub async fn authorize(&self, q: &Params) -> Step {
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if q.values().any(|v| v.len() > MAX_PARAM) {
            return Step::Page(400, "A parameter is too long.".into());
        }
        let Some(client_id) = get("client_id") else {
            return Step::Page(400, "client_id is required.".into());
        };
        let client = if cimd::is_document_id(client_id) {
            // A client named by its metadata document: fetched, fenced and checked.
            match self.document_client(client_id).await {
                Ok(c) => c,
                Err(why) => {
                    tracing::warn!(target: "gatehouse::audit", client_id = %client_id.chars().take(256).collect::<String>(), reason = %why, "client metadata document refused");
                    return Step::Page(
                        400,
                        format!("The client's metadata document was refused: {why}."),
                    );
                }
            }
        } else {
            match self.store.client(client_id) {
                Ok(Some(c)) => c,
                Ok(None) => return Step::Page(400, "Unknown client.".into()),
                Err(e) => {
                    tracing::error!(error = %e, "oauth store");
                    return Step::Page(503, "Try again later.".into());
                }
            }
        };
        // The redirect URI is checked before anything is sent to it: never an open redirect.
        let redirect_uri = match get("redirect_uri") {
            Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.to_owned(),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            _ => {
                return Step::Page(
                    400,
                    "redirect_uri is not one this client registered.".into(),
                );
            }
        };
        let client_state = get("state").map(str::to_owned);
        let to_client = |code: &str, desc: &str| {
            Step::Redirect(client_redirect(
                &redirect_uri,
                &[
                    ("error", Some(code)),
                    ("error_description", Some(desc)),
                    ("state", client_state.as_deref()),
                    ("iss", Some(&self.cfg.issuer)),
                ],
            ))
        };
        if get("response_type") != Some("code") {
            return to_client(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        let Some(challenge) = get("code_challenge") else {
            return to_client("invalid_request", "PKCE code_challenge is required");
        };
        if get("code_challenge_method") != Some("S256") {
            return to_client("invalid_request", "code_challenge_method must be S256");
        }
        if challenge.len() != 43
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return to_client("invalid_request", "code_challenge is not an S256 challenge");
        }
        let resource = match get("resource") {
            None => self.cfg.audience.clone(),
            Some(r) if self.cfg.resources.iter().any(|x| x == r) => r.to_owned(),
            Some(_) => return to_client("invalid_target", "resource is not this gateway"),
        };
        let scope = match get("scope") {
            None => self.cfg.scopes.join(" "),
            Some(s) => {
                if let Some(bad) = s
                    .split_whitespace()
                    .find(|x| !self.cfg.scopes.iter().any(|y| y == x))
                {
                    return to_client("invalid_scope", &format!("scope `{bad}` is not offered"));
                }
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        let provider = match self.provider().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "identity provider discovery failed");
                return to_client(
                    "temporarily_unavailable",
                    "the identity provider is unavailable",
                );
            }
        };
        let Some(endpoint) = provider.authorization_endpoint else {
            return to_client(
                "server_error",
                "the identity provider has no authorization endpoint",
            );
        };
        let state = random_token();
        let verifier = random_token();
        let login = PendingLogin {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            code_challenge: challenge.to_owned(),
            client_state: client_state.clone(),
            scope,
            resource,
            idp_verifier: verifier.clone(),
            connect: None,
            created_at: now(),
        };
        if let Err(e) = self.store.put_login(&digest(&state), &login) {
            tracing::error!(error = %e, "oauth store");
            return to_client("temporarily_unavailable", "try again later");
        }
        Step::Redirect(self.login_url(&endpoint, &state, &verifier))
    }

    /// The provider's authorization URL for a sign-in with this state and PKCE verifier.
    fn login_url(&self, endpoint: &str, state: &str, verifier: &str) -> String {
        let l = &self.cfg.login;
        client_redirect(
            endpoint,
            &[
                ("response_type", Some("code")),
                ("client_id", Some(&l.client_id)),
                ("redirect_uri", Some(&self.url("/oauth/callback"))),
                ("scope", Some(&l.scopes.join(" "))),
                ("state", Some(state)),
                ("code_challenge", Some(&s256(verifier))),
                ("code_challenge_method", Some("S256")),
                ("resource", Some(&l.resource)),
            ],
        )
    }

    /// Where to send a person to sign in at the provider (discovery on first use).
    pub(crate) async fn provider_redirect(
        &self,
        state: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let endpoint = self
            .provider()
            .await?
            .authorization_endpoint
            .ok_or("the identity provider has no authorization endpoint")?;
        Ok(self.login_url(&endpoint, state, verifier))
    }

    /// The provider's redirect back: the provider's code is exchanged (the gateway's client
    /// secret and PKCE), its token verified as any other through `authn`, and the client gets
    /// a one-use gateway code bound to its PKCE challenge.
    pub async fn callback(&self, q: &Params, authn: &Authenticator) -> (Step, FacadeEvent) {
        let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let mut event = FacadeEvent {
            what: "auth.login_failed",
            principal: String::new(),
            tenant: None,
            client_id: String::new(),
            ok: false,
            detail: String::new(),
        };
        let page = |event: &mut FacadeEvent, status: u16, text: &str| {
            event.detail = text.to_owned();
            Step::Page(status, text.to_owned())
        };
        let Some(state) = get("state").filter(|s| s.len() <= MAX_PARAM) else {
            let s = page(&mut event, 400, "The sign-in has no state.");
            return (s, event);
        };
        let login = match self
            .store
            .take_login(&digest(state), now().saturating_sub(LOGIN_TTL))
        {
            Ok(Some(l)) => l,
            Ok(None) => {
                let s = page(
                    &mut event,
                    400,
                    "This sign-in is unknown, used or expired. Start again from your application.",
                );
                return (s, event);
            }
            Err(e) => {
                tracing::error!(error = %e, "oauth store");
                let s = page(&mut event, 503, "Try again later.");
                return (s, event);
            }
        };
        if console::is_console(&login) {
            return self.console_signed_in(q, login, authn).await;
        }
        if login.connect.is_some() {
            return self.connect_signed_in(q, login, authn).await;
        }
        event.client_id = login.client_id.clone();
        let to_client = |event: &mut FacadeEvent, code: &str, desc: &str| {
            event.detail = format!("{code}: {desc}");
            Step::Redirect(client_redirect(
                &login.redirect_uri,
                &[
                    ("error", Some(code)),
                    ("error_description", Some(desc)),
                    ("state", login.client_state.as_deref()),
                    ("iss", Some(&self.cfg.issuer)),
                ],
            ))
        };
        if let Some(err) = get("error") {
            tracing::info!(error = %err, "the identity provider refused the sign-in");
            let s = to_client(&mut event, "access_denied", "the sign-in was refused");
            return (s, event);
        }
        let Some(code) = get("code") else {
            let s = to_client(
                &mut event,
                "access_denied",
                "no code from the identity provider",
            );
            return (s, event);
        };
        let token = match self.exchange(code, &login.idp_verifier).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "code exchange at the identity provider failed");
                let s = to_client(
                    &mut event,
                    "temporarily_unavailable",
                    "the identity provider did not complete the sign-in",
                );
                return (s, event);
            }
        };
        let principal = match authn.authenticate(&token).await {
            Ok(p) => p,
            Err(e) => {
                let s = to_client(
                    &mut event,
                    "access_denied",
                    &format!("the identity provider's token was refused ({})", e.label()),
                );
                return (s, event);
            }
        };
        let from_login = matches!(&principal.method,
            AuthMethod::Jwt { issuer } | AuthMethod::Introspection { issuer } if *issuer == self.cfg.login.issuer);
        if !from_login {
            let s = to_client(
                &mut event,
                "access_denied",
                "the token is not from the sign-in provider",
            );
            return (s, event);
        }
        event.principal = principal.id.clone();
        event.tenant = principal.tenant.clone();
        // The gateway grants what was asked, within what the provider granted.
        let scope: Vec<&str> = login
            .scope
            .split_whitespace()
            .filter(|s| principal.scopes.iter().any(|p| p == s))
            .collect();
        let mut claims = principal_claims(&principal);
        claims["scope"] = json!(scope.join(" "));
        let code = random_token();
        let grant = CodeGrant {
            client_id: login.client_id.clone(),
            redirect_uri: login.redirect_uri.clone(),
            code_challenge: login.code_challenge.clone(),
            claims: claims.to_string(),
            scope: scope.join(" "),
            resource: login.resource.clone(),
            family: random_token(),
            created_at: now(),
        };
        if let Err(e) = self.store.put_code(&digest(&code), &grant) {
            tracing::error!(error = %e, "oauth store");
            let s = to_client(&mut event, "temporarily_unavailable", "try again later");
            return (s, event);
        }
        event.what = "auth.login";
        event.ok = true;
        event.detail = format!("signed in through {}", self.cfg.login.issuer);
        let s = Step::Redirect(client_redirect(
            &login.redirect_uri,
            &[
                ("code", Some(&code)),
                ("state", login.client_state.as_deref()),
                ("iss", Some(&self.cfg.issuer)),
            ],
        ));
        (s, event)
    }

    pub(crate) async fn exchange(&self, code: &str, verifier: &str) -> Result<String, String> {
        let l = &self.cfg.login;
        let endpoint = self
            .provider()
            .await?
            .token_endpoint
            .ok_or("no token endpoint")?;
        let secret = l.client_secret.resolve(self.secrets.as_deref())?;
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}&resource={}",
            form_encode(code),
            form_encode(&self.url("/oauth/callback")),
            form_encode(verifier),
            form_encode(&l.resource)
        );
        let resp = self
            .http
            .post(&endpoint)
            .header(
                http::header::AUTHORIZATION,
                crate::wire::client_basic(&l.client_id, &secret),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        let body = read_limited(resp, 64 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "no access_token".into())
    }
}

/// `base?k=v&…` (or `&` when `base` has a query), skipping `None` values.
pub(crate) fn client_redirect(base: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut out = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        if let Some(v) = v {
            out.push(sep);
            out.push_str(k);
            out.push('=');
            out.push_str(&form_encode(v));
            sep = '&';
        }
    }
    out
}
