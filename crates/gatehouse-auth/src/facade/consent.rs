//! Per-user upstream OAuth: an upstream that must act with each user's own account (a SaaS
//! MCP server) gets that user's token, obtained once through a consent flow and then
//! refreshed. The flow starts from a one-use link the gateway hands the user's client (a
//! URL elicitation); the person who opens it must sign in at the enterprise provider as the
//! same principal before being sent to the upstream's authorization server, so a link that
//! leaks cannot bind someone else's account. Tokens are stored sealed with AES-256-GCM,
//! bound to the user and the upstream.

use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_store::PendingLogin;
use serde_json::{Value, json};

use super::{
    AuthorizationServer, FacadeEvent, LOGIN_TTL, Params, Step, client_redirect, digest,
    random_token, s256,
};
use crate::issuer::Authenticator;
use crate::principal::{AuthMethod, Principal};
use crate::upstream::SecretRef;
use crate::wire::{form_encode, now, read_limited};

/// How an upstream's own authorization server is reached, for users' tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOAuth {
    /// The upstream's name in `upstreams`.
    pub upstream: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// `None`: a public client (PKCE only).
    pub client_secret: Option<SecretRef>,
    pub scopes: Vec<String>,
    /// The RFC 8707 resource asked for (the upstream's URL by default).
    pub resource: String,
}

/// What a call to a per-user upstream goes out with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamCredential {
    /// The user's access token for the upstream.
    Token(String),
    /// The user must connect their account first: a one-use link (10 minutes).
    Consent { url: String, id: String },
    /// The caller cannot consent (not a person signed in through the login provider).
    NotEligible,
}

/// A refresh earlier than expiry by this much, so a call never leaves with a dying token.
const REFRESH_MARGIN: u64 = 30;

/// The sealing key: 32 bytes, base64.
pub(crate) fn sealing_key(
    r: &SecretRef,
    secrets: Option<&crate::LocalSecrets>,
) -> Result<LessSafeKey, String> {
    let text = r.resolve(secrets)?;
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| "the upstream token key is not base64".to_owned())?;
    if bytes.len() != 32 {
        return Err("the upstream token key must be 32 bytes (AES-256)".into());
    }
    UnboundKey::new(&AES_256_GCM, &bytes)
        .map(LessSafeKey::new)
        .map_err(|_| "unusable upstream token key".into())
}

fn aad(principal: &str, upstream: &str) -> Vec<u8> {
    format!("gatehouse/upstream-token/v1\0{principal}\0{upstream}").into_bytes()
}

pub(crate) fn seal(
    key: &LessSafeKey,
    principal: &str,
    upstream: &str,
    plain: &[u8],
) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "no randomness".to_owned())?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(principal, upstream)),
        &mut buf,
    )
    .map_err(|_| "sealing failed".to_owned())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens what [`seal`] made for this principal and upstream; anything else (tampered,
/// moved to another user's row, another key) is `None`.
pub(crate) fn open(
    key: &LessSafeKey,
    principal: &str,
    upstream: &str,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (n, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
    let mut buf = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad(principal, upstream)), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

fn step_of(connect: &str) -> (String, String, String) {
    let v: Value = serde_json::from_str(connect).unwrap_or(Value::Null);
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (s("principal"), s("upstream"), s("step"))
}

/// A step of connecting `principal`'s account at `upstream`, kept under its state (or
/// ticket) until taken once: `ticket` (the link), `idp` (signing in at the login provider),
/// `upstream` (at the upstream's authorization server, `verifier` its PKCE verifier).
fn connect_step(principal: &str, upstream: &str, step: &str, verifier: String) -> PendingLogin {
    PendingLogin {
        client_id: String::new(),
        redirect_uri: String::new(),
        code_challenge: String::new(),
        client_state: None,
        scope: String::new(),
        resource: String::new(),
        idp_verifier: verifier,
        connect: Some(
            json!({"principal": principal, "upstream": upstream, "step": step}).to_string(),
        ),
        created_at: now(),
    }
}

fn event(
    what: &'static str,
    principal: &str,
    upstream: &str,
    ok: bool,
    detail: String,
) -> FacadeEvent {
    FacadeEvent {
        what,
        principal: principal.to_owned(),
        tenant: None,
        client_id: format!("upstream:{upstream}"),
        ok,
        detail,
    }
}

/// A token endpoint's refusal: its HTTP status (400 means the grant is dead).
struct TokenFailure {
    status: u16,
    detail: String,
}

impl AuthorizationServer {
    fn upstream_cfg(&self, upstream: &str) -> Option<&UpstreamOAuth> {
        self.cfg.upstreams.iter().find(|u| u.upstream == upstream)
    }

    /// Whether calls to `upstream` go out with each user's own token.
    pub fn connects(&self, upstream: &str) -> bool {
        self.upstream_cfg(upstream).is_some()
    }

    /// Principals that can prove, at the login provider, that they are who the link was for.
    fn eligible(&self, p: &Principal) -> bool {
        if p.kind != crate::principal::PrincipalKind::User {
            return false;
        }
        match &p.method {
            AuthMethod::Gateway { .. } => true,
            AuthMethod::Jwt { issuer } | AuthMethod::Introspection { issuer } => {
                *issuer == self.cfg.login.issuer
            }
            _ => false,
        }
    }

    /// The credential for a call by `principal` to `upstream`: its token (refreshed when
    /// close to expiry), or a consent link. An error means the store or the upstream's
    /// authorization server could not answer (the call fails; no other credential is used).
    pub async fn upstream_credential(
        &self,
        principal: &Principal,
        upstream: &str,
    ) -> Result<UpstreamCredential, String> {
        let (Some(up), Some(key)) = (self.upstream_cfg(upstream), self.sealer.as_ref()) else {
            return Err(format!("{upstream} has no per-user OAuth"));
        };
        if !self.eligible(principal) {
            return Ok(UpstreamCredential::NotEligible);
        }
        let who = principal.id.as_str();
        let sealed = self
            .store
            .upstream_token(who, upstream)
            .map_err(|e| e.to_string())?;
        let record = sealed
            .and_then(|s| open(key, who, upstream, &s))
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok());
        let Some(record) = record else {
            return self
                .consent_link(who, upstream)
                .map(|(url, id)| UpstreamCredential::Consent { url, id });
        };
        let access = record["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let fresh = record["expires_at"]
            .as_u64()
            .is_none_or(|e| e > now() + REFRESH_MARGIN);
        if fresh && !access.is_empty() {
            return Ok(UpstreamCredential::Token(access));
        }
        let Some(refresh) = record["refresh_token"].as_str().map(str::to_owned) else {
            self.forget_upstream(who, upstream);
            return self
                .consent_link(who, upstream)
                .map(|(url, id)| UpstreamCredential::Consent { url, id });
        };
        // One refresh at a time: two calls racing would spend a rotating refresh token twice.
        let _guard = self.refreshing.lock().await;
        // Another call may have refreshed while this one waited.
        if let Some(again) = self
            .store
            .upstream_token(who, upstream)
            .map_err(|e| e.to_string())?
            .and_then(|s| open(key, who, upstream, &s))
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            && again["refresh_token"].as_str() != Some(refresh.as_str())
            && let Some(t) = again["access_token"].as_str()
        {
            return Ok(UpstreamCredential::Token(t.to_owned()));
        }
        let body = format!(
            "grant_type=refresh_token&refresh_token={}&resource={}",
            form_encode(&refresh),
            form_encode(&up.resource)
        );
        match self.upstream_token_request(up, body).await {
            Ok(v) => {
                let mut next = self.token_record(&v)?;
                if next.get("refresh_token").is_none_or(Value::is_null) {
                    next["refresh_token"] = json!(refresh);
                }
                self.keep(key, who, upstream, &next)?;
                tracing::info!(target: "gatehouse::audit", principal = who, upstream, "user's upstream token refreshed");
                Ok(UpstreamCredential::Token(
                    next["access_token"].as_str().unwrap_or_default().to_owned(),
                ))
            }
            Err(f) if f.status == 400 || f.status == 401 => {
                tracing::warn!(target: "gatehouse::audit", principal = who, upstream, detail = %f.detail, "user's upstream grant is gone: consent again");
                self.forget_upstream(who, upstream);
                self.consent_link(who, upstream)
                    .map(|(url, id)| UpstreamCredential::Consent { url, id })
            }
            Err(f) => Err(format!("refresh at {upstream}: {}", f.detail)),
        }
    }

    /// Forgets a user's token for an upstream (the upstream refused it).
    pub fn forget_upstream(&self, principal: &str, upstream: &str) {
        if let Err(e) = self.store.delete_upstream_token(principal, upstream) {
            tracing::error!(error = %e, "oauth store");
        }
    }

    /// A one-use consent link for `principal` and `upstream`.
    pub fn consent_link(
        &self,
        principal: &str,
        upstream: &str,
    ) -> Result<(String, String), String> {
        let ticket = random_token();
        let pending = connect_step(principal, upstream, "ticket", String::new());
        self.store
            .put_login(&digest(&ticket), &pending)
            .map_err(|e| e.to_string())?;
        let url = client_redirect(&self.url("/oauth/connect"), &[("ticket", Some(&ticket))]);
        Ok((url, random_token()[..16].to_owned()))
    }

    fn keep(
        &self,
        key: &LessSafeKey,
        who: &str,
        upstream: &str,
        record: &Value,
    ) -> Result<(), String> {
        let sealed = seal(key, who, upstream, record.to_string().as_bytes())?;
        self.store
            .put_upstream_token(who, upstream, &sealed, now())
            .map_err(|e| e.to_string())
    }

    fn token_record(&self, v: &Value) -> Result<Value, String> {
        let access = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("no access_token")?;
        Ok(json!({
            "access_token": access,
            "refresh_token": v["refresh_token"],
            "expires_at": v["expires_in"].as_u64().map(|s| now() + s),
        }))
    }

    async fn upstream_token_request(
        &self,
        up: &UpstreamOAuth,
        body: String,
    ) -> Result<Value, TokenFailure> {
        let fail = |status: u16, detail: String| TokenFailure { status, detail };
        let mut rb = self
            .http
            .post(&up.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded");
        let body = match &up.client_secret {
            Some(s) => {
                let secret = s.resolve(self.secrets.as_deref()).map_err(|e| fail(0, e))?;
                rb = rb.header(
                    http::header::AUTHORIZATION,
                    crate::wire::client_basic(&up.client_id, &secret),
                );
                body
            }
            None => format!("{body}&client_id={}", form_encode(&up.client_id)),
        };
        let resp = tokio::time::timeout(Duration::from_secs(15), rb.body(body).send())
            .await
            .map_err(|_| fail(0, "timed out".into()))?
            .map_err(|e| fail(0, e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let bytes = read_limited(resp, 64 * 1024)
            .await
            .map_err(|e| fail(status, e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(fail(status, format!("HTTP {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| fail(status, e.to_string()))
    }

    /// `/oauth/connect?ticket=…`: the link from a consent elicitation. The ticket is spent;
    /// whoever opened it signs in at the login provider first.
    pub async fn connect(&self, q: &Params) -> (Step, FacadeEvent) {
        let none = event("auth.consent_refused", "", "", false, String::new());
        let Some(ticket) = q.get("ticket").filter(|t| !t.is_empty() && t.len() <= 256) else {
            return (Step::Page(400, "The link has no ticket.".into()), none);
        };
        let found = self
            .store
            .take_login(&digest(ticket), now().saturating_sub(LOGIN_TTL));
        let (who, upstream) = match found {
            Ok(Some(PendingLogin {
                connect: Some(c), ..
            })) => {
                let (who, upstream, step) = step_of(&c);
                if step != "ticket" {
                    return (Step::Page(400, "This link is not valid.".into()), none);
                }
                (who, upstream)
            }
            Ok(_) => {
                return (
                    Step::Page(
                        400,
                        "This link is unknown, used or expired. Call the tool again for a new one."
                            .into(),
                    ),
                    none,
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "oauth store");
                return (Step::Page(503, "Try again later.".into()), none);
            }
        };
        let verifier = random_token();
        let state = random_token();
        let pending = connect_step(&who, &upstream, "idp", verifier.clone());
        let ev = event(
            "auth.consent_started",
            &who,
            &upstream,
            true,
            format!("connecting an account at {upstream}"),
        );
        if let Err(e) = self.store.put_login(&digest(&state), &pending) {
            tracing::error!(error = %e, "oauth store");
            return (Step::Page(503, "Try again later.".into()), ev);
        }
        match self.provider_redirect(&state, &verifier).await {
            Ok(url) => (Step::Redirect(url), ev),
            Err(e) => {
                tracing::warn!(error = %e, "identity provider discovery failed");
                (
                    Step::Page(503, "The identity provider is unavailable.".into()),
                    ev,
                )
            }
        }
    }

    /// The provider's callback for a connect flow: the person who signed in must be the one
    /// the link was made for; then on to the upstream's authorization server.
    pub(crate) async fn connect_signed_in(
        &self,
        q: &Params,
        login: PendingLogin,
        authn: &Authenticator,
    ) -> (Step, FacadeEvent) {
        let (who, upstream, step) = step_of(login.connect.as_deref().unwrap_or_default());
        let refuse = |status: u16, text: &str, detail: String| {
            (
                Step::Page(status, text.to_owned()),
                event("auth.consent_refused", &who, &upstream, false, detail),
            )
        };
        if step != "idp" {
            return refuse(
                400,
                "This sign-in is not valid.",
                "a connect step out of order".into(),
            );
        }
        let Some(up) = self.upstream_cfg(&upstream) else {
            return refuse(
                400,
                "This server no longer connects accounts.",
                format!("{upstream} has no per-user OAuth"),
            );
        };
        if q.contains_key("error") {
            return refuse(
                403,
                "The sign-in was refused.",
                "the identity provider refused the sign-in".into(),
            );
        }
        let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
            return refuse(400, "No code from the identity provider.", "no code".into());
        };
        let token = match self.exchange(code, &login.idp_verifier).await {
            Ok(t) => t,
            Err(e) => {
                return refuse(
                    503,
                    "The identity provider did not complete the sign-in.",
                    e,
                );
            }
        };
        let signed_in = match authn.authenticate(&token).await {
            Ok(p) => p,
            Err(e) => {
                return refuse(
                    403,
                    "Your sign-in was refused.",
                    format!("token refused: {}", e.label()),
                );
            }
        };
        if signed_in.id != who {
            // Someone else opened the link: binding their upstream account to this user (or
            // the reverse) is exactly what the check is for.
            return refuse(
                403,
                "This link was made for someone else. Call the tool again from your own application.",
                format!("{} opened a consent link made for {who}", signed_in.id),
            );
        }
        let verifier = random_token();
        let state = random_token();
        let pending = connect_step(&who, &upstream, "upstream", verifier.clone());
        if let Err(e) = self.store.put_login(&digest(&state), &pending) {
            tracing::error!(error = %e, "oauth store");
            return refuse(503, "Try again later.", "store unavailable".into());
        }
        let url = client_redirect(
            &up.authorization_endpoint,
            &[
                ("response_type", Some("code")),
                ("client_id", Some(&up.client_id)),
                ("redirect_uri", Some(&self.url("/oauth/upstream/callback"))),
                ("scope", Some(&up.scopes.join(" "))),
                ("state", Some(&state)),
                ("code_challenge", Some(&s256(&verifier))),
                ("code_challenge_method", Some("S256")),
                ("resource", Some(&up.resource)),
            ],
        );
        (
            Step::Redirect(url),
            event(
                "auth.consent_identified",
                &who,
                &upstream,
                true,
                format!("identity confirmed for {upstream}"),
            ),
        )
    }

    /// `/oauth/upstream/callback`: the upstream's authorization server sends the user back;
    /// its code becomes the user's sealed tokens.
    pub async fn upstream_callback(&self, q: &Params) -> (Step, FacadeEvent) {
        let none = event("auth.consent_refused", "", "", false, String::new());
        let Some(state) = q.get("state").filter(|s| !s.is_empty() && s.len() <= 256) else {
            return (Step::Page(400, "No state.".into()), none);
        };
        let login = match self
            .store
            .take_login(&digest(state), now().saturating_sub(LOGIN_TTL))
        {
            Ok(Some(l)) => l,
            Ok(None) => {
                return (
                    Step::Page(400, "This step is unknown, used or expired.".into()),
                    none,
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "oauth store");
                return (Step::Page(503, "Try again later.".into()), none);
            }
        };
        let (who, upstream, step) = step_of(login.connect.as_deref().unwrap_or_default());
        let refuse = |status: u16, text: &str, detail: String| {
            (
                Step::Page(status, text.to_owned()),
                event("auth.consent_refused", &who, &upstream, false, detail),
            )
        };
        if step != "upstream" {
            return refuse(
                400,
                "This step is not valid.",
                "a connect step out of order".into(),
            );
        }
        let (Some(up), Some(key)) = (self.upstream_cfg(&upstream), self.sealer.as_ref()) else {
            return refuse(
                400,
                "This server no longer connects accounts.",
                format!("{upstream} has no per-user OAuth"),
            );
        };
        if q.contains_key("error") {
            return refuse(
                403,
                "You did not allow access.",
                "the upstream's authorization server refused".into(),
            );
        }
        let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
            return refuse(400, "No code.", "no code".into());
        };
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}&resource={}",
            form_encode(code),
            form_encode(&self.url("/oauth/upstream/callback")),
            form_encode(&login.idp_verifier),
            form_encode(&up.resource)
        );
        let v = match self.upstream_token_request(up, body).await {
            Ok(v) => v,
            Err(f) => return refuse(502, "The server's sign-in did not complete.", f.detail),
        };
        let stored = self
            .token_record(&v)
            .and_then(|record| self.keep(key, &who, &upstream, &record));
        if let Err(e) = stored {
            return refuse(503, "Your account could not be kept. Try again later.", e);
        }
        (
            Step::Page(
                200,
                format!(
                    "Your account at {upstream} is connected. You can return to your application."
                ),
            ),
            event(
                "auth.upstream_connected",
                &who,
                &upstream,
                true,
                format!("account connected at {upstream}"),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_for_their_user_and_upstream() {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
        let other = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[8u8; 32]).expect("key"));
        let sealed = seal(&key, "idp/carol", "saas", b"{\"access_token\":\"t\"}").expect("seal");
        assert!(
            !sealed.windows(15).any(|w| w == b"\"access_token\""),
            "ciphertext only"
        );
        assert_eq!(
            open(&key, "idp/carol", "saas", &sealed).as_deref(),
            Some(&b"{\"access_token\":\"t\"}"[..])
        );
        assert_eq!(
            open(&key, "idp/mallory", "saas", &sealed),
            None,
            "moved to another user"
        );
        assert_eq!(
            open(&key, "idp/carol", "other", &sealed),
            None,
            "another upstream"
        );
        assert_eq!(
            open(&other, "idp/carol", "saas", &sealed),
            None,
            "another key"
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&key, "idp/carol", "saas", &flipped), None, "tampered");
        assert_eq!(
            open(&key, "idp/carol", "saas", &sealed[..10]),
            None,
            "truncated"
        );
    }
}
