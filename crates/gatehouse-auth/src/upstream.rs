//! The gateway's credentials for upstreams — never the client's token: OAuth 2.0 client
//! credentials (RFC 6749 §4.4, with an RFC 8707 resource) for its own traffic, and RFC 8693
//! token exchange for calls made on a user's behalf (a token for that upstream alone, naming
//! the user, the gateway as actor). Tokens are cached until shortly before they expire;
//! secrets are given by reference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::AuthError;
pub use crate::secret_ref::SecretRef;
use crate::secrets::LocalSecrets;

/// Client-credentials settings for one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentialsConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    pub scope: Option<String>,
    /// RFC 8707 resource: the upstream the token is for.
    pub resource: Option<String>,
    /// Calls made for a user carry a token exchanged for theirs (RFC 8693), not the
    /// gateway's own.
    pub token_exchange: bool,
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Exchanged tokens kept at most; beyond it expired ones go, then all (users re-exchange).
const MAX_EXCHANGED: u64 = 10_000;

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token source for one upstream.
pub struct ClientCredentials {
    cfg: ClientCredentialsConfig,
    secrets: Option<Arc<LocalSecrets>>,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
    /// Exchanged tokens by SHA-256 of the user's token.
    exchanged: moka::sync::Cache<[u8; 32], (String, Instant)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.cfg.client_id)
            .finish()
    }
}

impl ClientCredentials {
    pub fn new(
        cfg: ClientCredentialsConfig,
        secrets: Option<Arc<LocalSecrets>>,
    ) -> ClientCredentials {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        ClientCredentials {
            cfg,
            secrets,
            http,
            cached: tokio::sync::Mutex::new(None),
            exchanged: moka::sync::Cache::builder()
                .max_capacity(MAX_EXCHANGED)
                .time_to_idle(std::time::Duration::from_secs(3600))
                .build(),
        }
    }

    /// Whether calls for a user go out with an exchanged token.
    pub fn exchanges(&self) -> bool {
        self.cfg.token_exchange
    }

    /// A valid access token, from the cache or freshly fetched.
    pub async fn token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let body = format!(
            "grant_type=client_credentials&client_id={}",
            crate::wire::form_encode(&self.cfg.client_id)
        );
        let (token, until) = self.fetch(body).await?;
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    /// A token for this upstream naming the user whose token is `subject` (RFC 8693). The
    /// issuer decides what the user may be given; a refusal is an error, never a fallback
    /// to the gateway's own token.
    pub async fn exchange(&self, subject: &str) -> Result<String, AuthError> {
        let key = crate::wire::sha256(subject);
        let now = Instant::now();
        if let Some((t, until)) = self.exchanged.get(&key)
            && now < until
        {
            return Ok(t);
        }
        let body = format!(
            "grant_type={}&subject_token={}&subject_token_type={}",
            crate::wire::form_encode(TOKEN_EXCHANGE),
            crate::wire::form_encode(subject),
            crate::wire::form_encode(ACCESS_TOKEN_TYPE),
        );
        let (token, until) = self.fetch(body).await?;
        self.exchanged.insert(key, (token.clone(), until));
        Ok(token)
    }

    /// Forgets the token exchanged for `subject` (the upstream refused it).
    pub fn forget_exchanged(&self, subject: &str) {
        self.exchanged.invalidate(&crate::wire::sha256(subject));
    }

    /// POSTs a grant (with this client's scope and resource) to the token endpoint.
    async fn fetch(&self, mut body: String) -> Result<(String, Instant), AuthError> {
        let secret = self
            .cfg
            .client_secret
            .resolve(self.secrets.as_deref())
            .map_err(AuthError::Unavailable)?;
        if let Some(s) = &self.cfg.scope {
            body.push_str(&format!("&scope={}", crate::wire::form_encode(s)));
        }
        if let Some(r) = &self.cfg.resource {
            body.push_str(&format!("&resource={}", crate::wire::form_encode(r)));
        }
        let unavailable = |e: String| AuthError::Unavailable(e);
        let resp = self
            .http
            .post(&self.cfg.token_url)
            .header(
                http::header::AUTHORIZATION,
                crate::wire::client_basic(&self.cfg.client_id, &secret),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!(
                "token endpoint answered HTTP {}",
                resp.status()
            )));
        }
        let bytes = crate::wire::read_limited(resp, 64 * 1024).await?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("token answer unreadable: {e}")))?;
        // Renew a little before expiry: at most 30 s early, never more than half the lifetime.
        let life = answer.expires_in.unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(life.saturating_sub((life / 2).min(30)));
        Ok((answer.access_token, until))
    }

    /// Forgets the cached token (the upstream refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::SecretRef;

    #[test]
    fn secrets_are_references_only() {
        assert_eq!(
            SecretRef::parse("env:DB_TOKEN"),
            Ok(SecretRef::Env("DB_TOKEN".into()))
        );
        assert!(matches!(
            SecretRef::parse("file:/run/secrets/x"),
            Ok(SecretRef::File(_))
        ));
        assert_eq!(
            SecretRef::parse("secret:db"),
            Ok(SecretRef::Store("db".into()))
        );
        for literal in ["hunter2", "env:", "file:", "secret:", "Bearer abc"] {
            assert!(SecretRef::parse(literal).is_err(), "{literal}");
        }
    }

    #[test]
    fn file_secrets_are_read_at_use_and_errors_hide_values() {
        let path = std::env::temp_dir().join(format!("gatehouse-secret-{}", std::process::id()));
        std::fs::write(&path, "first\n").unwrap();
        let r = SecretRef::File(path.clone());
        assert_eq!(r.resolve(None).unwrap(), "first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(
            r.resolve(None).unwrap(),
            "second",
            "rotation needs no restart"
        );
        std::fs::remove_file(&path).unwrap();
        let err = r.resolve(None).unwrap_err();
        assert!(!err.contains("second"));
        let missing = SecretRef::Env("GATEHOUSE_TEST_SURELY_UNSET".into())
            .resolve(None)
            .unwrap_err();
        assert!(missing.contains("GATEHOUSE_TEST_SURELY_UNSET"));
    }
}
