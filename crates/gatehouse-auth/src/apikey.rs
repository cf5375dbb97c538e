//! API keys for service-to-service use: `ghk_{id}_{secret}`. Shown once at creation; stored
//! only as HMAC-SHA256 under a server pepper (so a stolen database cannot be used to log
//! in, and checking a key costs one HMAC, not a password hash). Each key acts as one
//! service principal, for one named application, within optional server and tool limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_store::{ApiKeyRecord, ApiKeyStore, StoreError};

use crate::error::AuthError;
use crate::principal::{AuthMethod, KeyLimits, Principal, PrincipalKind};
use crate::wire::lock;

pub const KEY_PREFIX: &str = "ghk_";
const ID_HEX: usize = 12;
/// How often a key's last-use time is written (at most).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What a new key grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySpec {
    pub principal: String,
    pub app: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub servers: Vec<String>,
    pub tools: Vec<String>,
    pub expires_in: Option<Duration>,
}

/// A freshly made key: `key` is shown to the operator once and never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

pub struct ApiKeys {
    pepper: hmac::Key,
    store: Arc<dyn ApiKeyStore>,
    touched: Mutex<HashMap<String, Instant>>,
    /// Last-use writes go to a thread of their own: a write may wait for the store's
    /// lock (behind an audit commit's fsync), and a request worker must never wait.
    toucher: Option<std::sync::mpsc::Sender<(String, u64)>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeys")
    }
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| StoreError::Unavailable("no randomness".into()))?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// Exactly two hex digits per byte (no sign): one encoding per stored digest.
fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Splits a presented key into its id; `None` if it is not of our form.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == ID_HEX
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(id)
}

impl ApiKeys {
    /// `pepper` must be at least 32 bytes (config validation checks).
    pub fn new(pepper: &[u8], store: Arc<dyn ApiKeyStore>) -> ApiKeys {
        let (tx, rx) = std::sync::mpsc::channel::<(String, u64)>();
        let writer = store.clone();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-keys".into())
            .spawn(move || {
                // Ends when the `ApiKeys` (the sender) goes.
                for (id, at) in rx {
                    if let Err(e) = writer.touch(&id, at) {
                        tracing::warn!(key = %id, error = %e, "could not record API key use");
                    }
                }
            });
        ApiKeys {
            pepper: hmac::Key::new(hmac::HMAC_SHA256, pepper),
            store,
            touched: Mutex::new(HashMap::new()),
            // Without the thread, last use is simply not recorded (it decides nothing).
            toucher: spawned.ok().map(|_| tx),
        }
    }

    pub fn store(&self) -> &dyn ApiKeyStore {
        self.store.as_ref()
    }

    fn hash(&self, key: &str) -> String {
        hex(hmac::sign(&self.pepper, key.as_bytes()).as_ref())
    }

    /// Makes and stores a key. The record is committed before this returns.
    pub fn create(
        &self,
        spec: &KeySpec,
        now: u64,
        rotated_from: Option<&str>,
    ) -> Result<NewKey, StoreError> {
        let id = hex(&random::<{ ID_HEX / 2 }>()?);
        let key = format!(
            "{KEY_PREFIX}{id}_{}",
            URL_SAFE_NO_PAD.encode(random::<32>()?)
        );
        let record = ApiKeyRecord {
            id,
            hash: self.hash(&key),
            principal: spec.principal.clone(),
            app: spec.app.clone(),
            tenant: spec.tenant.clone(),
            roles: spec.roles.clone(),
            servers: spec.servers.clone(),
            tools: spec.tools.clone(),
            created_at: now,
            expires_at: spec.expires_in.map(|d| now + d.as_secs()),
            revoked_at: None,
            last_used_at: None,
            rotated_from: rotated_from.map(str::to_owned),
        };
        self.store.insert(&record)?;
        Ok(NewKey { key, record })
    }

    /// Replaces a key: the new one grants the same; the old one keeps working for `overlap`
    /// (so deployments can switch) and then expires.
    pub fn rotate(
        &self,
        id: &str,
        overlap: Duration,
        new_ttl: Option<Duration>,
        now: u64,
    ) -> Result<Option<NewKey>, StoreError> {
        let Some(old) = self.store.get(id)? else {
            return Ok(None);
        };
        if old.revoked_at.is_some() {
            return Ok(None);
        }
        let spec = KeySpec {
            principal: old.principal.clone(),
            app: old.app.clone(),
            tenant: old.tenant.clone(),
            roles: old.roles.clone(),
            servers: old.servers.clone(),
            tools: old.tools.clone(),
            expires_in: new_ttl,
        };
        let new = self.create(&spec, now, Some(id))?;
        self.store.expire_at(id, now + overlap.as_secs())?;
        Ok(Some(new))
    }

    /// Checks a presented key. Every refusal looks the same to the caller.
    pub fn authenticate(&self, key: &str, now: u64) -> Result<Principal, AuthError> {
        let id = key_id(key).ok_or(AuthError::Malformed)?;
        let rec = self
            .store
            .get(id)
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::Invalid("unknown API key".into()))?;
        let expected =
            unhex(&rec.hash).ok_or_else(|| AuthError::Invalid("stored hash unreadable".into()))?;
        hmac::verify(&self.pepper, key.as_bytes(), &expected)
            .map_err(|_| AuthError::Invalid("API key does not match".into()))?;
        if rec.revoked_at.is_some() {
            return Err(AuthError::Inactive);
        }
        if rec.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Expired);
        }
        self.touch(&rec.id, now);
        Ok(Principal {
            id: format!("apikey/{}", rec.principal),
            kind: PrincipalKind::Service,
            tenant: rec.tenant.clone(),
            roles: rec.roles.clone(),
            groups: Vec::new(),
            scopes: Vec::new(),
            acr: None,
            amr: Vec::new(),
            authenticated_at: Some(rec.created_at),
            method: AuthMethod::ApiKey {
                key_id: rec.id.clone(),
                app: rec.app.clone(),
            },
            attributes: Default::default(),
            limits: Some(KeyLimits {
                servers: rec.servers.clone(),
                tools: rec.tools.clone(),
            }),
        })
    }

    /// Records last use, at most once a minute per key; failures only logged.
    fn touch(&self, id: &str, now: u64) {
        let due = {
            let mut t = lock(&self.touched);
            let due = t.get(id).is_none_or(|at| at.elapsed() >= TOUCH_EVERY);
            if due {
                t.insert(id.to_owned(), Instant::now());
            }
            due
        };
        if due && let Some(tx) = &self.toucher {
            let _ = tx.send((id.to_owned(), now));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use gatehouse_store::MemoryKeyStore;

    use super::{ApiKeys, KeySpec, key_id};
    use crate::error::AuthError;
    use crate::principal::AuthMethod;

    fn keys() -> ApiKeys {
        ApiKeys::new(&[9u8; 32], Arc::new(MemoryKeyStore::default()))
    }

    fn spec() -> KeySpec {
        KeySpec {
            principal: "svc-reporting".into(),
            app: "reporting".into(),
            roles: vec!["analyst".into()],
            servers: vec!["db".into()],
            expires_in: Some(Duration::from_secs(100)),
            ..KeySpec::default()
        }
    }

    #[test]
    fn a_created_key_authenticates_and_is_stored_only_as_a_hash() {
        let k = keys();
        let new = k.create(&spec(), 1000, None).unwrap();
        assert!(new.key.starts_with("ghk_") && !new.record.hash.contains(&new.key));
        let p = k.authenticate(&new.key, 1001).unwrap();
        assert_eq!(p.id, "apikey/svc-reporting");
        assert_eq!(
            p.method,
            AuthMethod::ApiKey {
                key_id: new.record.id.clone(),
                app: "reporting".into()
            }
        );
        assert_eq!(p.limits.unwrap().servers, ["db"]);
        // Last use is written by the key thread, shortly after.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while k
            .store()
            .get(&new.record.id)
            .unwrap()
            .unwrap()
            .last_used_at
            .is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            k.store().get(&new.record.id).unwrap().unwrap().last_used_at,
            Some(1001)
        );
    }

    #[test]
    fn forged_expired_and_revoked_keys_are_refused() {
        let k = keys();
        let new = k.create(&spec(), 1000, None).unwrap();
        // Same id, other secret.
        let forged = format!("{}{}", &new.key[..new.key.len() - 4], "AAAA");
        assert!(matches!(
            k.authenticate(&forged, 1001),
            Err(AuthError::Invalid(_))
        ));
        // A key made with another pepper (another deployment) does not verify here.
        let other = ApiKeys::new(&[1u8; 32], Arc::new(MemoryKeyStore::default()));
        let foreign = other.create(&spec(), 1000, None).unwrap();
        assert!(k.authenticate(&foreign.key, 1001).is_err());
        assert_eq!(
            k.authenticate(&new.key, 1100).unwrap_err(),
            AuthError::Expired
        );
        k.store().revoke(&new.record.id, 1002).unwrap();
        assert_eq!(
            k.authenticate(&new.key, 1003).unwrap_err(),
            AuthError::Inactive
        );
        for junk in [
            "",
            "ghk_",
            "ghk_zz_x",
            "Bearer ghk_abc",
            &new.key.to_uppercase(),
        ] {
            assert!(k.authenticate(junk, 1001).is_err(), "{junk}");
        }
    }

    #[test]
    fn rotation_keeps_the_old_key_for_the_overlap_only() {
        let k = keys();
        let old = k.create(&spec(), 1000, None).unwrap();
        let new = k
            .rotate(&old.record.id, Duration::from_secs(10), None, 1005)
            .unwrap()
            .unwrap();
        assert_eq!(
            new.record.rotated_from.as_deref(),
            Some(old.record.id.as_str())
        );
        assert_eq!(new.record.servers, old.record.servers);
        assert!(k.authenticate(&old.key, 1010).is_ok());
        assert_eq!(
            k.authenticate(&old.key, 1015).unwrap_err(),
            AuthError::Expired
        );
        assert!(
            k.authenticate(&new.key, 5000).is_ok(),
            "the new key has no expiry here"
        );
    }

    #[test]
    fn key_ids_parse_only_our_form() {
        assert_eq!(
            key_id("ghk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Some("0123456789ab")
        );
        assert_eq!(
            key_id("ghk_0123456789AB_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None
        );
        assert_eq!(key_id("ghk_0123456789ab_short"), None);
    }
}
