//! Client sessions for the handshake-era protocol. A session id is the session's own state,
//! sealed with AES-256-GCM under a key all replicas share, so any replica can serve it and no
//! session store is needed. Only revocations (DELETE) are remembered, locally.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_protocol::ProtocolVersion;
use serde::{Deserialize, Serialize};

const AAD: &[u8] = b"gatehouse-session-v1";

/// What a session id carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    /// Random id, for logs, revocation and stream routing.
    pub sid: String,
    pub version: ProtocolVersion,
    /// Virtual server the session was opened on; empty for `/mcp`.
    pub scope: String,
    /// Unix seconds.
    pub issued: u64,
    /// Client capabilities declared at `initialize`.
    pub caps: ClientCaps,
    /// The principal that opened the session; nobody else may use it.
    pub principal: String,
    /// `clientInfo.name` at `initialize` (at most 128 characters), for policies and audit.
    pub client: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientCaps {
    #[serde(default, rename = "s")]
    pub sampling: bool,
    #[serde(default, rename = "e")]
    pub elicitation: bool,
    #[serde(default, rename = "r")]
    pub roots: bool,
}

impl ClientCaps {
    pub fn from_capabilities(caps: Option<&serde_json::Value>) -> Self {
        let has = |k: &str| caps.and_then(|c| c.get(k)).is_some_and(|v| !v.is_null());
        Self {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    s: String,
    v: String,
    p: String,
    i: u64,
    c: ClientCaps,
    u: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    n: String,
}

/// Why a session id was refused. All are answered 404 so the client re-initializes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session id is malformed or was not issued by this gateway")]
    Invalid,
    #[error("session expired")]
    Expired,
    #[error("session was terminated")]
    Revoked,
    #[error("session belongs to another principal")]
    OtherPrincipal,
}

pub struct SessionCodec {
    key: LessSafeKey,
    ttl: Duration,
    revoked: Mutex<HashMap<String, u64>>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Random bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The CSPRNG failing means the OS cannot give randomness; nothing secure can continue.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut b).expect("system random generator failed");
    b
}

impl SessionCodec {
    pub fn new(key: [u8; 32], ttl: Duration) -> Self {
        #[allow(clippy::expect_used)]
        let unbound =
            UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte key is valid for AES-256");
        Self {
            key: LessSafeKey::new(unbound),
            ttl,
            revoked: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a new session.
    pub fn issue(
        &self,
        version: ProtocolVersion,
        scope: &str,
        caps: ClientCaps,
        principal: &str,
    ) -> (String, SessionClaims) {
        self.issue_for(version, scope, caps, principal, "")
    }

    /// Like [`SessionCodec::issue`], recording the client's `clientInfo.name`.
    pub fn issue_for(
        &self,
        version: ProtocolVersion,
        scope: &str,
        caps: ClientCaps,
        principal: &str,
        client: &str,
    ) -> (String, SessionClaims) {
        let sid = hex::encode(random_bytes::<16>());
        let claims = SessionClaims {
            sid,
            version,
            scope: scope.to_owned(),
            issued: now_secs(),
            caps,
            principal: principal.to_owned(),
            client: client.chars().take(128).collect(),
        };
        (self.seal(&claims), claims)
    }

    fn seal(&self, c: &SessionClaims) -> String {
        let wire = Wire {
            s: c.sid.clone(),
            v: c.version.as_str().to_owned(),
            p: c.scope.clone(),
            i: c.issued,
            c: c.caps,
            u: c.principal.clone(),
            n: c.client.clone(),
        };
        let mut buf = serde_json::to_vec(&wire).unwrap_or_default();
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        #[allow(clippy::expect_used)]
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(AAD), &mut buf)
            .expect("sealing a short buffer succeeds");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a session id, checking integrity, expiry and revocation.
    pub fn open(&self, token: &str) -> Result<SessionClaims, SessionError> {
        if token.len() > 1024 {
            return Err(SessionError::Invalid);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SessionError::Invalid)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SessionError::Invalid);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SessionError::Invalid)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut sealed)
            .map_err(|_| SessionError::Invalid)?;
        let w: Wire = serde_json::from_slice(plain).map_err(|_| SessionError::Invalid)?;
        let version = ProtocolVersion::parse(&w.v).ok_or(SessionError::Invalid)?;
        if now_secs().saturating_sub(w.i) > self.ttl.as_secs() {
            return Err(SessionError::Expired);
        }
        if self
            .revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&w.s)
        {
            return Err(SessionError::Revoked);
        }
        Ok(SessionClaims {
            sid: w.s,
            version,
            scope: w.p,
            issued: w.i,
            caps: w.c,
            principal: w.u,
            client: w.n,
        })
    }

    /// Terminates a session (client DELETE). Remembered until it would have expired anyway.
    pub fn revoke(&self, claims: &SessionClaims) {
        self.revoke_id(&claims.sid, claims.issued);
    }

    /// Terminates session `sid` issued at `issued` (another replica saw the DELETE).
    pub fn revoke_id(&self, sid: &str, issued: u64) {
        let mut map = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_secs();
        let ttl = self.ttl.as_secs();
        map.retain(|_, issued| now.saturating_sub(*issued) <= ttl);
        if now.saturating_sub(issued) <= ttl {
            map.insert(sid.to_owned(), issued);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> SessionCodec {
        SessionCodec::new([7u8; 32], Duration::from_secs(60))
    }

    #[test]
    fn round_trip_and_another_replica_with_the_same_key_accepts() {
        let (tok, claims) = codec().issue(
            ProtocolVersion::V2025_06_18,
            "analytics",
            ClientCaps::default(),
            "staff/alice",
        );
        assert_eq!(codec().open(&tok), Ok(claims));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let c = codec();
        let (tok, _) = c.issue(
            ProtocolVersion::V2025_11_25,
            "",
            ClientCaps::default(),
            "staff/alice",
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&tok).unwrap();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        assert_eq!(
            c.open(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(SessionError::Invalid)
        );
        let other = SessionCodec::new([8u8; 32], Duration::from_secs(60));
        assert_eq!(other.open(&tok), Err(SessionError::Invalid));
        assert_eq!(c.open("not-a-token"), Err(SessionError::Invalid));
        assert_eq!(c.open(&"A".repeat(5000)), Err(SessionError::Invalid));
    }

    #[test]
    fn revoked_and_expired_sessions_are_refused() {
        let c = codec();
        let (tok, claims) = c.issue(
            ProtocolVersion::V2025_11_25,
            "",
            ClientCaps::default(),
            "staff/alice",
        );
        c.revoke(&claims);
        assert_eq!(c.open(&tok), Err(SessionError::Revoked));
        let short = SessionCodec::new([7u8; 32], Duration::from_secs(0));
        let old = SessionClaims {
            issued: now_secs() - 5,
            ..claims
        };
        assert_eq!(short.open(&short.seal(&old)), Err(SessionError::Expired));
    }
}
