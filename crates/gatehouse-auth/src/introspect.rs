//! RFC 7662 token introspection for opaque tokens, with a short cache keyed by the token's
//! SHA-256 (the token itself is never stored), so each token costs one round trip per TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::AuthError;
use crate::issuer::{Claims, IssuerTrust, lock, now};

const CACHE_CAP: usize = 10_000;
const MAX_BODY: usize = 64 * 1024;

/// An introspection answer and until when it may be reused.
type Cached = (Result<Claims, AuthError>, Instant);

pub(crate) struct Introspector {
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Introspector {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn check(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        trust: &IssuerTrust,
        token: &str,
    ) -> Result<Claims, AuthError> {
        let key = crate::issuer::sha256(token);
        if let Some((r, until)) = lock(&self.cache).get(&key)
            && Instant::now() < *until
        {
            return r.clone();
        }
        let result = self.ask(client, endpoint, trust, token).await;
        if matches!(result, Err(AuthError::Unavailable(_))) {
            return result; // never cache an outage
        }
        // Cache no longer than the token lives.
        let ttl = match &result {
            Ok(c) => c
                .get("exp")
                .and_then(Value::as_u64)
                .map(|exp| Duration::from_secs(exp.saturating_sub(now())).min(self.ttl))
                .unwrap_or(self.ttl),
            Err(_) => self.ttl,
        };
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_CAP {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
        }
        cache.insert(key, (result.clone(), Instant::now() + ttl));
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
            .basic_auth(&trust.client_id, Some(&trust.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "token={}&token_type_hint=access_token",
                crate::issuer::form_encode(token)
            ))
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("introspection HTTP {}", resp.status())));
        }
        let body = crate::issuer::read_limited(resp, MAX_BODY).await?;
        let claims: Claims = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("introspection unreadable: {e}")))?;
        if claims.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(AuthError::Inactive);
        }
        Ok(claims)
    }
}
