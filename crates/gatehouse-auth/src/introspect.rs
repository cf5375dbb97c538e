//! RFC 7662 token introspection for opaque tokens, with a short cache keyed by the token's
//! SHA-256 (the token itself is never stored), so each token costs one round trip per TTL.
//! Active and refused tokens are cached apart, each bounded with TinyLFU admission: junk
//! tokens fill only the small refusal cache and never evict a valid token's answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::AuthError;
use crate::wire::now;

/// An issuer's opaque tokens are checked at the issuer's introspection endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerTrust {
    pub client_id: String,
    pub client_secret: String,
    /// Overrides the endpoint from discovery.
    pub endpoint: Option<String>,
    pub cache_ttl: Duration,
}

/// A cached check result: the claims the endpoint returned.
pub(crate) type Claims = serde_json::Map<String, Value>;

/// Active tokens remembered.
const ACTIVE_CAP: u64 = 10_000;
/// Refused (inactive, unknown) tokens remembered, so repeating one costs no round trip.
const REFUSED_CAP: u64 = 2_000;
const MAX_BODY: usize = 64 * 1024;

pub(crate) struct Introspector {
    ttl: Duration,
    /// Active tokens' claims, and until when they may be reused (never past `exp`).
    active: moka::sync::Cache<[u8; 32], (Claims, Instant)>,
    refused: moka::sync::Cache<[u8; 32], AuthError>,
}

impl Introspector {
    pub(crate) fn new(ttl: Duration) -> Self {
        let ttl = ttl.max(Duration::from_millis(1));
        Self {
            ttl,
            active: moka::sync::Cache::builder()
                .max_capacity(ACTIVE_CAP)
                .time_to_live(ttl)
                .build(),
            refused: moka::sync::Cache::builder()
                .max_capacity(REFUSED_CAP)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub(crate) async fn check(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        trust: &IssuerTrust,
        token: &str,
    ) -> Result<Claims, AuthError> {
        let key = crate::wire::sha256(token);
        if let Some((claims, until)) = self.active.get(&key)
            && Instant::now() < until
        {
            return Ok(claims);
        }
        if let Some(e) = self.refused.get(&key) {
            return Err(e);
        }
        let result = self.ask(client, endpoint, trust, token).await;
        match &result {
            // Never cache an outage.
            Err(AuthError::Unavailable(_)) => {}
            Err(e) => self.refused.insert(key, e.clone()),
            Ok(c) => {
                // Cache no longer than the token lives.
                let ttl = c
                    .get("exp")
                    .and_then(Value::as_u64)
                    .map(|exp| Duration::from_secs(exp.saturating_sub(now())).min(self.ttl))
                    .unwrap_or(self.ttl);
                self.active.insert(key, (c.clone(), Instant::now() + ttl));
            }
        }
        result
    }

    async fn ask(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        trust: &IssuerTrust,
        token: &str,
    ) -> Result<Claims, AuthError> {
        let unavailable = |e: String| AuthError::Unavailable(e);
        let resp = client
            .post(endpoint)
            .header(
                http::header::AUTHORIZATION,
                crate::wire::client_basic(&trust.client_id, &trust.client_secret),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "token={}&token_type_hint=access_token",
                crate::wire::form_encode(token)
            ))
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("introspection HTTP {}", resp.status())));
        }
        let body = crate::wire::read_limited(resp, MAX_BODY).await?;
        let claims: Claims = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("introspection unreadable: {e}")))?;
        if claims.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(AuthError::Inactive);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// An introspection endpoint (a unit-test fixture: the real IdP is exercised by the
    /// integration tests) that counts requests: `good` is active, anything else is not.
    async fn endpoint(asked: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/introspect", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/introspect",
            axum::routing::post(move |body: String| {
                let asked = asked.clone();
                async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    if body.starts_with("token=good&") {
                        r#"{"active": true, "sub": "svc", "scope": "mcp:tools"}"#
                    } else {
                        r#"{"active": false}"#
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// Junk tokens used to fill one shared cache that was cleared when full, so a flood of
    /// them made every valid token go back to the IdP. Refusals are cached apart now.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_junk_tokens_does_not_evict_a_valid_one() {
        let asked = Arc::new(AtomicUsize::new(0));
        let url = endpoint(asked.clone()).await;
        let trust = IssuerTrust {
            client_id: "gw".into(),
            client_secret: "s".into(),
            endpoint: Some(url.clone()),
            cache_ttl: Duration::from_secs(600),
        };
        let client = reqwest::Client::new();
        let i = Introspector::new(trust.cache_ttl);
        assert!(i.check(&client, &url, &trust, "good").await.is_ok());
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        let junk = (ACTIVE_CAP + REFUSED_CAP + 100) as usize;
        for n in 0..junk {
            let r = i.check(&client, &url, &trust, &format!("junk-{n}")).await;
            assert!(matches!(r, Err(AuthError::Inactive)), "{r:?}");
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1 + junk);
        // The valid token is still answered from the cache: no new round trip.
        assert!(i.check(&client, &url, &trust, "good").await.is_ok());
        assert_eq!(asked.load(Ordering::SeqCst), 1 + junk);
    }
}
