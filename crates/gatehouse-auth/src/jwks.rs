//! An issuer's signing keys: fetched from its JWKS URI, cached, and refetched when a token
//! names a key we do not have — at most once per `min_refetch`, one fetch at a time, so a
//! flood of tokens with made-up `kid`s cannot hammer the identity provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::AuthError;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Option<String>,
    family: &'static str,
    key: DecodingKey,
}

pub(crate) struct Jwks {
    keys: RwLock<Vec<Key>>,
    last_fetch: Mutex<Option<Instant>>,
    single_flight: tokio::sync::Mutex<()>,
    min_refetch: Duration,
    fetches: AtomicU64,
}

/// The key family an algorithm needs (`kty`).
fn family(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => "RSA",
        Algorithm::ES256 | Algorithm::ES384 => "EC",
        Algorithm::EdDSA => "OKP",
        _ => "oct",
    }
}

impl Jwks {
    pub(crate) fn new(min_refetch: Duration) -> Self {
        Self {
            keys: RwLock::new(Vec::new()),
            last_fetch: Mutex::new(None),
            single_flight: tokio::sync::Mutex::new(()),
            min_refetch,
            fetches: AtomicU64::new(0),
        }
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let fam = family(alg);
        let alg_name = format!("{alg:?}");
        let fits = |k: &&Key| k.family == fam && k.alg.as_deref().is_none_or(|a| a == alg_name);
        match kid {
            Some(kid) => keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| k.key.clone()),
            // No kid: only unambiguous.
            None => {
                let mut it = keys.iter().filter(fits);
                match (it.next(), it.next()) {
                    (Some(k), None) => Some(k.key.clone()),
                    _ => None,
                }
            }
        }
    }

    /// The key for a token's header, fetching the set if needed (rate-limited).
    pub(crate) async fn key(
        &self,
        client: &reqwest::Client,
        uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        if let Some(k) = self.lookup(kid, alg) {
            return Ok(k);
        }
        let _one = self.single_flight.lock().await;
        // Someone else may have fetched while we waited.
        if let Some(k) = self.lookup(kid, alg) {
            return Ok(k);
        }
        let recent = self
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < self.min_refetch);
        if !recent {
            self.fetch(client, uri).await?;
        }
        self.lookup(kid, alg)
            .ok_or_else(|| AuthError::UnknownKey(kid.map(str::to_owned)))
    }

    async fn fetch(&self, client: &reqwest::Client, uri: &str) -> Result<(), AuthError> {
        *self
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let body = crate::wire::get_bounded(client, uri, MAX_JWKS_BYTES).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| AuthError::Unavailable(format!("JWKS unreadable: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            // Keys for other uses (encryption) never verify tokens.
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| !matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
            {
                continue;
            }
            let fam = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => "RSA",
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => "EC",
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => "OKP",
                // Symmetric keys in a public JWKS are never used: that is the HMAC confusion.
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => continue,
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    alg: jwk.common.key_algorithm.map(|a| format!("{a:?}")),
                    family: fam,
                    key,
                }),
                Err(e) => tracing::warn!(kid = ?jwk.common.key_id, error = %e, "JWKS key skipped"),
            }
        }
        tracing::info!(uri, keys = keys.len(), "JWKS fetched");
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(())
    }
}
