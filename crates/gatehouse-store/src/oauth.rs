//! The authorization-server façade's state: registered clients, logins waiting for the
//! identity provider, authorization codes and refresh-token families. Secrets (states, codes,
//! refresh tokens) are stored only as the SHA-256 the caller computed, never in clear.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use crate::keys::StoreError;
use crate::rows::Columns;
use crate::rows::{self, int as i, uint as u};

/// A client registered by RFC 7591 dynamic registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// `none` (a public client, PKCE only), `client_secret_basic` or `client_secret_post`.
    pub auth_method: String,
    /// SHA-256 of the client secret, hex; `None` for public clients.
    pub secret_hash: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// What the client asked at `/authorize`, kept while the user signs in at the identity
/// provider. Found again by the state the gateway sent there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub client_id: String,
    pub redirect_uri: String,
    /// The client's PKCE S256 challenge.
    pub code_challenge: String,
    /// The client's `state`, echoed back to it unchanged.
    pub client_state: Option<String>,
    pub scope: String,
    pub resource: String,
    /// The gateway's own PKCE verifier toward the identity provider.
    pub idp_verifier: String,
    /// Set when this is a step of connecting a user's account at an upstream (JSON: who,
    /// which upstream, which step), not a client's sign-in.
    pub connect: Option<String>,
    pub created_at: u64,
}

/// What an authorization code stands for, until it is redeemed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    /// The principal the identity provider vouched for, as token claims (JSON).
    pub claims: String,
    pub scope: String,
    pub resource: String,
    /// The refresh-token family this code starts; a replayed code revokes it.
    pub family: String,
    pub created_at: u64,
}

/// One refresh token of a family (a login and every rotation after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub family: String,
    pub client_id: String,
    pub claims: String,
    pub scope: String,
    pub resource: String,
    pub issued_at: u64,
    pub expires_at: u64,
    pub used_at: Option<u64>,
    pub revoked_at: Option<u64>,
}

/// Redeeming a code or a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeem<T> {
    /// First use: it is now spent.
    Fresh(T),
    /// Already spent (or its family revoked): a replay. Carries the record so the caller can
    /// revoke its family.
    Replayed(T),
    Unknown,
}

/// Storage for the authorization-server façade.
///
/// Guarantees: every write is committed when it returns; `take_*` and `redeem_*` are atomic
/// across processes sharing the store, so a code or refresh token is honoured once even when
/// two replicas race for it.
pub trait OAuthStore: Send + Sync {
    /// Registers a client unless `max` clients exist already (false then).
    fn register(&self, c: &OAuthClient, max: usize) -> Result<bool, StoreError>;
    fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError>;
    fn put_login(&self, key: &str, p: &PendingLogin) -> Result<(), StoreError>;
    /// The login under `key`, removed; `None` if unknown or older than `since`.
    fn take_login(&self, key: &str, since: u64) -> Result<Option<PendingLogin>, StoreError>;
    fn put_code(&self, key: &str, g: &CodeGrant) -> Result<(), StoreError>;
    /// Spends a code issued at or after `since`.
    fn redeem_code(&self, key: &str, since: u64, at: u64) -> Result<Redeem<CodeGrant>, StoreError>;
    fn put_refresh(&self, r: &RefreshRecord) -> Result<(), StoreError>;
    /// Spends a refresh token; an expired one is `Unknown`.
    fn redeem_refresh(&self, hash: &str, at: u64) -> Result<Redeem<RefreshRecord>, StoreError>;
    /// Revokes every refresh token of a family; how many were still live.
    fn revoke_family(&self, family: &str, at: u64) -> Result<usize, StoreError>;
    fn family_revoked(&self, family: &str) -> Result<bool, StoreError>;
    /// Drops expired logins, codes and refresh tokens.
    fn purge(&self, logins_before: u64, codes_before: u64, now: u64) -> Result<(), StoreError>;
    /// A user's sealed (encrypted) tokens for an upstream, replacing any before.
    fn put_upstream_token(
        &self,
        principal: &str,
        upstream: &str,
        sealed: &[u8],
        at: u64,
    ) -> Result<(), StoreError>;
    fn upstream_token(
        &self,
        principal: &str,
        upstream: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Forgets a user's tokens for an upstream (refused upstream, failed refresh); true if
    /// there were any.
    fn delete_upstream_token(&self, principal: &str, upstream: &str) -> Result<bool, StoreError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS oauth_clients (
  client_id TEXT PRIMARY KEY,
  name TEXT,
  redirect_uris TEXT NOT NULL,
  auth_method TEXT NOT NULL,
  secret_hash TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_logins (
  key TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  client_state TEXT,
  scope TEXT NOT NULL,
  resource TEXT NOT NULL,
  idp_verifier TEXT NOT NULL,
  connect TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_codes (
  key TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  claims TEXT NOT NULL,
  scope TEXT NOT NULL,
  resource TEXT NOT NULL,
  family TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE TABLE IF NOT EXISTS oauth_refresh (
  hash TEXT PRIMARY KEY,
  family TEXT NOT NULL,
  client_id TEXT NOT NULL,
  claims TEXT NOT NULL,
  scope TEXT NOT NULL,
  resource TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS oauth_refresh_family ON oauth_refresh(family);
CREATE TABLE IF NOT EXISTS oauth_upstream_tokens (
  principal TEXT NOT NULL,
  upstream TEXT NOT NULL,
  sealed BLOB NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (principal, upstream)
);
CREATE TABLE IF NOT EXISTS oauth_revoked_families (
  family TEXT PRIMARY KEY,
  revoked_at INTEGER NOT NULL
);";

/// SQLite, the embedded default (WAL; shared with the CLI and other processes on the host).
pub struct SqliteOAuth {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteOAuth")
    }
}

impl SqliteOAuth {
    pub fn open(path: &Path) -> Result<SqliteOAuth, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteOAuth {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OAuthStore for SqliteOAuth {
    fn register(&self, c: &OAuthClient, max: usize) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM oauth_clients", [], |r| r.get(0))?;
        if u(n) >= max as u64 {
            return Ok(false);
        }
        let uris = serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into());
        let added = tx.execute(
            "INSERT OR IGNORE INTO oauth_clients (client_id, name, redirect_uris, auth_method, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![c.client_id, c.name, uris, c.auth_method, c.secret_hash, i(c.created_at)],
        )?;
        if added == 0 {
            return Err(StoreError::Duplicate(c.client_id.clone()));
        }
        tx.commit()?;
        Ok(true)
    }

    fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT client_id, name, redirect_uris, auth_method, secret_hash, created_at FROM oauth_clients WHERE client_id = ?1",
                params![client_id],
                |r| {
                    Ok(OAuthClient {
                        client_id: r.get(0)?,
                        name: r.get(1)?,
                        redirect_uris: serde_json::from_str(&r.get::<_, String>(2)?)
                            .unwrap_or_default(),
                        auth_method: r.get(3)?,
                        secret_hash: r.get(4)?,
                        created_at: u(r.get(5)?),
                    })
                },
            )
            .optional()?)
    }

    fn put_login(&self, key: &str, p: &PendingLogin) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO oauth_logins (key, client_id, redirect_uri, code_challenge, client_state, scope, resource, idp_verifier, connect, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                key,
                p.client_id,
                p.redirect_uri,
                p.code_challenge,
                p.client_state,
                p.scope,
                p.resource,
                p.idp_verifier,
                p.connect,
                i(p.created_at)
            ],
        )?;
        Ok(())
    }

    fn take_login(&self, key: &str, since: u64) -> Result<Option<PendingLogin>, StoreError> {
        let conn = self.conn();
        let found = conn
            .query_row(
                "DELETE FROM oauth_logins WHERE key = ?1 RETURNING client_id, redirect_uri, code_challenge, client_state, scope, resource, idp_verifier, connect, created_at",
                params![key],
                |r| {
                    Ok(PendingLogin {
                        client_id: r.get(0)?,
                        redirect_uri: r.get(1)?,
                        code_challenge: r.get(2)?,
                        client_state: r.get(3)?,
                        scope: r.get(4)?,
                        resource: r.get(5)?,
                        idp_verifier: r.get(6)?,
                        connect: r.get(7)?,
                        created_at: u(r.get(8)?),
                    })
                },
            )
            .optional()?;
        Ok(found.filter(|p| p.created_at >= since))
    }

    fn put_code(&self, key: &str, g: &CodeGrant) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO oauth_codes (key, client_id, redirect_uri, code_challenge, claims, scope, resource, family, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                key,
                g.client_id,
                g.redirect_uri,
                g.code_challenge,
                g.claims,
                g.scope,
                g.resource,
                g.family,
                i(g.created_at)
            ],
        )?;
        Ok(())
    }

    fn redeem_code(&self, key: &str, since: u64, at: u64) -> Result<Redeem<CodeGrant>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                "SELECT client_id, redirect_uri, code_challenge, claims, scope, resource, family, created_at, used_at FROM oauth_codes WHERE key = ?1",
                params![key],
                |r| {
                    Ok((
                        CodeGrant {
                            client_id: r.get(0)?,
                            redirect_uri: r.get(1)?,
                            code_challenge: r.get(2)?,
                            claims: r.get(3)?,
                            scope: r.get(4)?,
                            resource: r.get(5)?,
                            family: r.get(6)?,
                            created_at: u(r.get(7)?),
                        },
                        r.get::<_, Option<i64>>(8)?,
                    ))
                },
            )
            .optional()?;
        let out = match row {
            None => Redeem::Unknown,
            Some((g, Some(_))) => Redeem::Replayed(g),
            Some((g, None)) if g.created_at < since => Redeem::Unknown,
            Some((g, None)) => {
                tx.execute(
                    "UPDATE oauth_codes SET used_at = ?2 WHERE key = ?1",
                    params![key, i(at)],
                )?;
                Redeem::Fresh(g)
            }
        };
        tx.commit()?;
        Ok(out)
    }

    fn put_refresh(&self, r: &RefreshRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO oauth_refresh (hash, family, client_id, claims, scope, resource, issued_at, expires_at, used_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                r.hash,
                r.family,
                r.client_id,
                r.claims,
                r.scope,
                r.resource,
                i(r.issued_at),
                i(r.expires_at),
                r.used_at.map(i),
                r.revoked_at.map(i)
            ],
        )?;
        Ok(())
    }

    fn redeem_refresh(&self, hash: &str, at: u64) -> Result<Redeem<RefreshRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                "SELECT hash, family, client_id, claims, scope, resource, issued_at, expires_at, used_at, revoked_at FROM oauth_refresh WHERE hash = ?1",
                params![hash],
                |r| refresh_row(r),
            )
            .optional()?;
        let out = match row {
            None => Redeem::Unknown,
            Some(r) if r.used_at.is_some() || r.revoked_at.is_some() => Redeem::Replayed(r),
            Some(r) if r.expires_at <= at => Redeem::Unknown,
            Some(mut r) => {
                tx.execute(
                    "UPDATE oauth_refresh SET used_at = ?2 WHERE hash = ?1",
                    params![hash, i(at)],
                )?;
                r.used_at = Some(at);
                Redeem::Fresh(r)
            }
        };
        tx.commit()?;
        Ok(out)
    }

    fn revoke_family(&self, family: &str, at: u64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE oauth_refresh SET revoked_at = ?2 WHERE family = ?1 AND revoked_at IS NULL AND used_at IS NULL",
            params![family, i(at)],
        )?;
        tx.execute(
            "UPDATE oauth_refresh SET revoked_at = ?2 WHERE family = ?1 AND revoked_at IS NULL",
            params![family, i(at)],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO oauth_revoked_families (family, revoked_at) VALUES (?1, ?2)",
            params![family, i(at)],
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn family_revoked(&self, family: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM oauth_revoked_families WHERE family = ?1",
                params![family],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn purge(&self, logins_before: u64, codes_before: u64, now: u64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM oauth_logins WHERE created_at < ?1",
            params![i(logins_before)],
        )?;
        conn.execute(
            "DELETE FROM oauth_codes WHERE created_at < ?1",
            params![i(codes_before)],
        )?;
        // A family's record outlives its tokens only as long as the longest token could.
        conn.execute(
            "DELETE FROM oauth_refresh WHERE expires_at < ?1",
            params![i(now)],
        )?;
        conn.execute(
            "DELETE FROM oauth_revoked_families WHERE family NOT IN (SELECT family FROM oauth_refresh) AND revoked_at < ?1",
            params![i(now.saturating_sub(86_400))],
        )?;
        Ok(())
    }

    fn put_upstream_token(
        &self,
        principal: &str,
        upstream: &str,
        sealed: &[u8],
        at: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO oauth_upstream_tokens (principal, upstream, sealed, updated_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (principal, upstream) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            params![principal, upstream, sealed, i(at)],
        )?;
        Ok(())
    }

    fn upstream_token(
        &self,
        principal: &str,
        upstream: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT sealed FROM oauth_upstream_tokens WHERE principal = ?1 AND upstream = ?2",
                params![principal, upstream],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn delete_upstream_token(&self, principal: &str, upstream: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM oauth_upstream_tokens WHERE principal = ?1 AND upstream = ?2",
            params![principal, upstream],
        )? > 0)
    }
}

/// `hash, family, client_id, claims, scope, resource, issued_at, expires_at, used_at,
/// revoked_at`.
pub(crate) fn refresh_row<R: Columns>(r: &R) -> Result<RefreshRecord, R::Error> {
    Ok(RefreshRecord {
        hash: r.text(0)?,
        family: r.text(1)?,
        client_id: r.text(2)?,
        claims: r.text(3)?,
        scope: r.text(4)?,
        resource: r.text(5)?,
        issued_at: rows::uint(r.int(6)?),
        expires_at: rows::uint(r.int(7)?),
        used_at: r.opt_int(8)?.map(rows::uint),
        revoked_at: r.opt_int(9)?.map(rows::uint),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SqliteOAuth {
        SqliteOAuth::open(Path::new(":memory:")).expect("open")
    }

    fn refresh(hash: &str, family: &str, expires_at: u64) -> RefreshRecord {
        RefreshRecord {
            hash: hash.into(),
            family: family.into(),
            client_id: "c1".into(),
            claims: "{}".into(),
            scope: "mcp:tools".into(),
            resource: "https://gw/mcp".into(),
            issued_at: 100,
            expires_at,
            used_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn clients_are_capped_and_unique() {
        let s = store();
        let c = |id: &str| OAuthClient {
            client_id: id.into(),
            name: Some("app".into()),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            auth_method: "none".into(),
            secret_hash: None,
            created_at: 1,
        };
        assert!(s.register(&c("a"), 2).expect("a"));
        assert!(matches!(
            s.register(&c("a"), 2),
            Err(StoreError::Duplicate(_))
        ));
        assert!(s.register(&c("b"), 2).expect("b"));
        assert!(!s.register(&c("c"), 2).expect("c refused at the cap"));
        assert_eq!(s.client("a").expect("get"), Some(c("a")));
        assert_eq!(s.client("c").expect("get"), None);
    }

    #[test]
    fn logins_and_codes_are_one_use_and_expire() {
        let s = store();
        let login = PendingLogin {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "ch".into(),
            client_state: Some("xyz".into()),
            scope: "mcp:tools".into(),
            resource: "https://gw/mcp".into(),
            idp_verifier: "v".into(),
            connect: None,
            created_at: 100,
        };
        s.put_login("k1", &login).expect("put");
        assert_eq!(s.take_login("k1", 200).expect("take"), None, "too old");
        s.put_login("k2", &login).expect("put");
        assert_eq!(s.take_login("k2", 50).expect("take"), Some(login));
        assert_eq!(s.take_login("k2", 50).expect("again"), None);

        let grant = CodeGrant {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "ch".into(),
            claims: "{}".into(),
            scope: "mcp:tools".into(),
            resource: "https://gw/mcp".into(),
            family: "f1".into(),
            created_at: 100,
        };
        s.put_code("c", &grant).expect("code");
        assert_eq!(s.redeem_code("nope", 0, 101).expect("r"), Redeem::Unknown);
        assert_eq!(
            s.redeem_code("c", 0, 101).expect("r"),
            Redeem::Fresh(grant.clone())
        );
        assert_eq!(
            s.redeem_code("c", 0, 102).expect("r"),
            Redeem::Replayed(grant)
        );
    }

    #[test]
    fn upstream_tokens_are_kept_per_user_and_upstream() {
        let s = store();
        s.put_upstream_token("idp/carol", "saas", b"sealed-1", 1)
            .expect("put");
        s.put_upstream_token("idp/carol", "saas", b"sealed-2", 2)
            .expect("replace");
        s.put_upstream_token("idp/dave", "saas", b"sealed-d", 2)
            .expect("other user");
        assert_eq!(
            s.upstream_token("idp/carol", "saas").expect("get"),
            Some(b"sealed-2".to_vec())
        );
        assert_eq!(s.upstream_token("idp/carol", "other").expect("get"), None);
        assert!(
            s.delete_upstream_token("idp/carol", "saas")
                .expect("delete")
        );
        assert!(!s.delete_upstream_token("idp/carol", "saas").expect("again"));
        assert_eq!(
            s.upstream_token("idp/dave", "saas").expect("get"),
            Some(b"sealed-d".to_vec())
        );
    }

    #[test]
    fn a_replayed_refresh_token_is_reported_and_its_family_revoked() {
        let s = store();
        s.put_refresh(&refresh("h1", "f1", 1000)).expect("put");
        let Redeem::Fresh(first) = s.redeem_refresh("h1", 200).expect("use") else {
            panic!("first use is fresh");
        };
        assert_eq!(first.used_at, Some(200));
        s.put_refresh(&refresh("h2", "f1", 1000)).expect("rotated");
        assert!(matches!(
            s.redeem_refresh("h1", 300).expect("replay"),
            Redeem::Replayed(_)
        ));
        assert!(!s.family_revoked("f1").expect("not yet"));
        assert_eq!(
            s.revoke_family("f1", 300).expect("revoke"),
            1,
            "h2 was live"
        );
        assert!(s.family_revoked("f1").expect("revoked"));
        assert!(
            matches!(
                s.redeem_refresh("h2", 301).expect("h2"),
                Redeem::Replayed(_)
            ),
            "the live token of a revoked family is dead too"
        );
        s.put_refresh(&refresh("h3", "f2", 250)).expect("short");
        assert_eq!(
            s.redeem_refresh("h3", 260).expect("expired"),
            Redeem::Unknown
        );
        s.purge(0, 0, 2000).expect("purge");
        assert_eq!(s.redeem_refresh("h2", 2001).expect("gone"), Redeem::Unknown);
    }
}
