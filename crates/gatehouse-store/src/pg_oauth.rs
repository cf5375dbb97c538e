//! The authorization-server façade's state in PostgreSQL, so replicas share registered
//! clients, sign-ins in progress, codes, refresh-token families and users' sealed upstream
//! tokens: a refresh token rotated on one host and replayed on another is caught, and a
//! sign-in revoked anywhere is revoked everywhere. Same guarantees as [`crate::SqliteOAuth`].

use postgres::{Client, GenericClient};

use crate::StoreError;
use crate::oauth::{CodeGrant, OAuthClient, OAuthStore, PendingLogin, Redeem, RefreshRecord};
use crate::pg_audit::PgAudit;
use crate::rows::{int as i, uint as u};

/// PostgreSQL-backed [`OAuthStore`].
pub struct PgOAuth {
    db: PgAudit,
}

impl std::fmt::Debug for PgOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgOAuth")
    }
}

impl PgOAuth {
    /// Does not connect: the first call does (and migrates).
    pub fn new(url: &str) -> PgOAuth {
        PgOAuth {
            db: PgAudit::new(url),
        }
    }

    /// Runs `f` on a thread of its own: the synchronous client must never run on an async
    /// worker, and the façade's handlers call the store from one.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        self.db.on_own_thread("oauth store", f)
    }
}

fn revoke_family_in(
    tx: &mut impl GenericClient,
    family: &str,
    at: i64,
) -> Result<usize, postgres::Error> {
    let live = tx.execute(
        "UPDATE gatehouse_oauth_refresh SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL AND used_at IS NULL",
        &[&family, &at],
    )?;
    tx.execute(
        "UPDATE gatehouse_oauth_refresh SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
        &[&family, &at],
    )?;
    tx.execute(
        "INSERT INTO gatehouse_oauth_revoked_families (family, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&family, &at],
    )?;
    Ok(usize::try_from(live).unwrap_or(0))
}

impl OAuthStore for PgOAuth {
    fn register(&self, c: &OAuthClient, max: usize) -> Result<bool, StoreError> {
        let uris = serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into());
        let out = self.with(|db| {
            let mut tx = db.transaction()?;
            // Registrations are serialised so the cap holds across replicas.
            tx.execute("LOCK TABLE gatehouse_oauth_clients IN EXCLUSIVE MODE", &[])?;
            let n: i64 = tx
                .query_one("SELECT count(*) FROM gatehouse_oauth_clients", &[])?
                .get(0);
            if u(n) >= max as u64 {
                return Ok(Some(false));
            }
            let added = tx.execute(
                "INSERT INTO gatehouse_oauth_clients (client_id, name, redirect_uris, auth_method, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&c.client_id, &c.name, &uris, &c.auth_method, &c.secret_hash, &i(c.created_at)],
            )?;
            if added == 0 {
                return Ok(None);
            }
            tx.commit()?;
            Ok(Some(true))
        })?;
        out.ok_or_else(|| StoreError::Duplicate(c.client_id.clone()))
    }

    fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        self.with(|db| {
            Ok(db
                .query_opt(
                    "SELECT client_id, name, redirect_uris, auth_method, secret_hash, created_at FROM gatehouse_oauth_clients WHERE client_id = $1",
                    &[&client_id],
                )?
                .map(|r| OAuthClient {
                    client_id: r.get(0),
                    name: r.get(1),
                    redirect_uris: serde_json::from_str(&r.get::<_, String>(2))
                        .unwrap_or_default(),
                    auth_method: r.get(3),
                    secret_hash: r.get(4),
                    created_at: u(r.get(5)),
                }))
        })
    }

    fn put_login(&self, key: &str, p: &PendingLogin) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO gatehouse_oauth_logins (key, client_id, redirect_uri, code_challenge, client_state, scope, resource, idp_verifier, connect, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[&key, &p.client_id, &p.redirect_uri, &p.code_challenge, &p.client_state, &p.scope, &p.resource, &p.idp_verifier, &p.connect, &i(p.created_at)],
            )
            .map(|_| ())
        })
    }

    fn take_login(&self, key: &str, since: u64) -> Result<Option<PendingLogin>, StoreError> {
        let found = self.with(|db| {
            Ok(db
                .query_opt(
                    "DELETE FROM gatehouse_oauth_logins WHERE key = $1 RETURNING client_id, redirect_uri, code_challenge, client_state, scope, resource, idp_verifier, connect, created_at",
                    &[&key],
                )?
                .map(|r| PendingLogin {
                    client_id: r.get(0),
                    redirect_uri: r.get(1),
                    code_challenge: r.get(2),
                    client_state: r.get(3),
                    scope: r.get(4),
                    resource: r.get(5),
                    idp_verifier: r.get(6),
                    connect: r.get(7),
                    created_at: u(r.get(8)),
                }))
        })?;
        Ok(found.filter(|p| p.created_at >= since))
    }

    fn put_code(&self, key: &str, g: &CodeGrant) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO gatehouse_oauth_codes (key, client_id, redirect_uri, code_challenge, claims, scope, resource, family, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&key, &g.client_id, &g.redirect_uri, &g.code_challenge, &g.claims, &g.scope, &g.resource, &g.family, &i(g.created_at)],
            )
            .map(|_| ())
        })
    }

    fn redeem_code(&self, key: &str, since: u64, at: u64) -> Result<Redeem<CodeGrant>, StoreError> {
        self.with(|db| {
            let mut tx = db.transaction()?;
            let row = tx.query_opt(
                "SELECT client_id, redirect_uri, code_challenge, claims, scope, resource, family, created_at, used_at FROM gatehouse_oauth_codes WHERE key = $1 FOR UPDATE",
                &[&key],
            )?;
            let out = match row {
                None => Redeem::Unknown,
                Some(r) => {
                    let g = CodeGrant {
                        client_id: r.get(0),
                        redirect_uri: r.get(1),
                        code_challenge: r.get(2),
                        claims: r.get(3),
                        scope: r.get(4),
                        resource: r.get(5),
                        family: r.get(6),
                        created_at: u(r.get(7)),
                    };
                    match r.get::<_, Option<i64>>(8) {
                        Some(_) => Redeem::Replayed(g),
                        None if g.created_at < since => Redeem::Unknown,
                        None => {
                            tx.execute(
                                "UPDATE gatehouse_oauth_codes SET used_at = $2 WHERE key = $1",
                                &[&key, &i(at)],
                            )?;
                            Redeem::Fresh(g)
                        }
                    }
                }
            };
            tx.commit()?;
            Ok(out)
        })
    }

    fn put_refresh(&self, r: &RefreshRecord) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO gatehouse_oauth_refresh (hash, family, client_id, claims, scope, resource, issued_at, expires_at, used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[&r.hash, &r.family, &r.client_id, &r.claims, &r.scope, &r.resource, &i(r.issued_at), &i(r.expires_at), &r.used_at.map(i), &r.revoked_at.map(i)],
            )
            .map(|_| ())
        })
    }

    fn redeem_refresh(&self, hash: &str, at: u64) -> Result<Redeem<RefreshRecord>, StoreError> {
        self.with(|db| {
            let mut tx = db.transaction()?;
            // The row lock makes two replicas racing for one token see it once.
            let row = tx.query_opt(
                "SELECT hash, family, client_id, claims, scope, resource, issued_at, expires_at, used_at, revoked_at FROM gatehouse_oauth_refresh WHERE hash = $1 FOR UPDATE",
                &[&hash],
            )?;
            let out = match row.as_ref().map(crate::oauth::refresh_row).transpose()? {
                None => Redeem::Unknown,
                Some(r) if r.used_at.is_some() || r.revoked_at.is_some() => Redeem::Replayed(r),
                Some(r) if r.expires_at <= at => Redeem::Unknown,
                Some(mut r) => {
                    tx.execute(
                        "UPDATE gatehouse_oauth_refresh SET used_at = $2 WHERE hash = $1",
                        &[&hash, &i(at)],
                    )?;
                    r.used_at = Some(at);
                    Redeem::Fresh(r)
                }
            };
            tx.commit()?;
            Ok(out)
        })
    }

    fn revoke_family(&self, family: &str, at: u64) -> Result<usize, StoreError> {
        self.with(|db| {
            let mut tx = db.transaction()?;
            let n = revoke_family_in(&mut tx, family, i(at))?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn family_revoked(&self, family: &str) -> Result<bool, StoreError> {
        self.with(|db| {
            Ok(db
                .query_opt(
                    "SELECT 1 FROM gatehouse_oauth_revoked_families WHERE family = $1",
                    &[&family],
                )?
                .is_some())
        })
    }

    fn purge(&self, logins_before: u64, codes_before: u64, now: u64) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "DELETE FROM gatehouse_oauth_logins WHERE created_at < $1",
                &[&i(logins_before)],
            )?;
            db.execute(
                "DELETE FROM gatehouse_oauth_codes WHERE created_at < $1",
                &[&i(codes_before)],
            )?;
            db.execute(
                "DELETE FROM gatehouse_oauth_refresh WHERE expires_at < $1",
                &[&i(now)],
            )?;
            db.execute(
                "DELETE FROM gatehouse_oauth_revoked_families f WHERE NOT EXISTS (SELECT 1 FROM gatehouse_oauth_refresh r WHERE r.family = f.family) AND revoked_at < $1",
                &[&i(now.saturating_sub(86_400))],
            )?;
            Ok(())
        })
    }

    fn put_upstream_token(
        &self,
        principal: &str,
        upstream: &str,
        sealed: &[u8],
        at: u64,
    ) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO gatehouse_oauth_upstream_tokens (principal, upstream, sealed, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (principal, upstream) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                &[&principal, &upstream, &sealed, &i(at)],
            )
            .map(|_| ())
        })
    }

    fn upstream_token(
        &self,
        principal: &str,
        upstream: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|db| {
            Ok(db
                .query_opt(
                    "SELECT sealed FROM gatehouse_oauth_upstream_tokens WHERE principal = $1 AND upstream = $2",
                    &[&principal, &upstream],
                )?
                .map(|r| r.get(0)))
        })
    }

    fn delete_upstream_token(&self, principal: &str, upstream: &str) -> Result<bool, StoreError> {
        self.with(|db| {
            Ok(db.execute(
                "DELETE FROM gatehouse_oauth_upstream_tokens WHERE principal = $1 AND upstream = $2",
                &[&principal, &upstream],
            )? > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg_audit::tests::fresh_db;

    #[test]
    fn replicas_share_clients_codes_and_one_use_refresh_tokens() {
        let url = fresh_db("oauth");
        let (a, b) = (PgOAuth::new(&url), PgOAuth::new(&url));
        let client = OAuthClient {
            client_id: "c1".into(),
            name: None,
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            auth_method: "none".into(),
            secret_hash: None,
            created_at: 1,
        };
        assert!(a.register(&client, 1).expect("register"));
        assert!(
            !b.register(
                &OAuthClient {
                    client_id: "c2".into(),
                    ..client.clone()
                },
                1
            )
            .expect("cap")
        );
        assert_eq!(b.client("c1").expect("get"), Some(client));

        let login = PendingLogin {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "ch".into(),
            client_state: None,
            scope: String::new(),
            resource: "r".into(),
            idp_verifier: "v".into(),
            connect: Some("{}".into()),
            created_at: 100,
        };
        a.put_login("k", &login).expect("login");
        assert_eq!(b.take_login("k", 0).expect("take"), Some(login));
        assert_eq!(a.take_login("k", 0).expect("again"), None);

        let rec = RefreshRecord {
            hash: "h1".into(),
            family: "f1".into(),
            client_id: "c1".into(),
            claims: "{}".into(),
            scope: String::new(),
            resource: "r".into(),
            issued_at: 100,
            expires_at: 1000,
            used_at: None,
            revoked_at: None,
        };
        a.put_refresh(&rec).expect("put");
        assert!(matches!(
            b.redeem_refresh("h1", 200).expect("b"),
            Redeem::Fresh(_)
        ));
        assert!(
            matches!(a.redeem_refresh("h1", 201).expect("a"), Redeem::Replayed(_)),
            "spent on another replica"
        );
        a.put_refresh(&RefreshRecord {
            hash: "h2".into(),
            ..rec
        })
        .expect("rotated");
        assert_eq!(b.revoke_family("f1", 300).expect("revoke"), 1);
        assert!(a.family_revoked("f1").expect("seen by a"));

        a.put_upstream_token("idp/carol", "saas", b"sealed", 1)
            .expect("token");
        assert_eq!(
            b.upstream_token("idp/carol", "saas").expect("get"),
            Some(b"sealed".to_vec())
        );
        assert!(
            b.delete_upstream_token("idp/carol", "saas")
                .expect("delete")
        );
        assert_eq!(a.upstream_token("idp/carol", "saas").expect("gone"), None);
    }
}
