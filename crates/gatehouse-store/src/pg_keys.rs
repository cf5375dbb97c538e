//! API keys in PostgreSQL, so a key created, rotated or revoked on one host (or by the CLI
//! anywhere) holds on every replica. Lookups read an in-memory copy that is checked against
//! a version counter at most once a second: a revocation reaches the other replicas within
//! a second, and the writing handle at once. A store that cannot be read refuses keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use postgres::{Client, GenericClient};

use crate::StoreError;
use crate::keys::{ApiKeyRecord, ApiKeyStore};
use crate::pg_audit::PgAudit;
use crate::rows::{int as i, list_to_sql};

/// How stale the in-memory copy may be before the version counter is asked again.
const RECHECK: Duration = Duration::from_secs(1);
/// Last-use times are written at most this often per key (they decide nothing).
const TOUCH_EVERY: u64 = 60;

struct Memo {
    keys: BTreeMap<String, ApiKeyRecord>,
    version: i64,
    checked: Instant,
}

/// PostgreSQL-backed [`ApiKeyStore`].
pub struct PgKeyStore {
    db: PgAudit,
    memo: RwLock<Option<Memo>>,
    touched: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgKeyStore")
    }
}

const COLUMNS: &str = "id, hash, principal, app, tenant, roles, servers, tools, created_at, expires_at, revoked_at, last_used_at, rotated_from";

/// Marks a change that decides something (insert, revoke, expiry), in the writer's
/// transaction.
fn bump(tx: &mut impl GenericClient) -> Result<(), postgres::Error> {
    tx.execute(
        "UPDATE gatehouse_api_keys_version SET version = version + 1 WHERE id = 1",
        &[],
    )
    .map(|_| ())
}

impl PgKeyStore {
    /// Does not connect: the first call does (and migrates).
    pub fn new(url: &str) -> PgKeyStore {
        PgKeyStore {
            db: PgAudit::new(url),
            memo: RwLock::new(None),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on a thread of its own: the synchronous client must never run on an async
    /// worker, and keys are looked up from one.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        self.db.on_own_thread("key store", f)
    }

    /// One change that decides something (`sql` with `$1` the key id, `$2` a time), with
    /// the version bumped in the same transaction; false if there was no such key.
    fn update(&self, sql: &'static str, id: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.with(|db| {
            let mut tx = db.transaction()?;
            let n = tx.execute(sql, &[&id, &i(at)])?;
            bump(&mut tx)?;
            tx.commit()?;
            Ok(n)
        })?;
        self.invalidate();
        Ok(n > 0)
    }

    /// The in-memory copy is stale: the next lookup reloads.
    fn invalidate(&self) {
        *self.memo.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Brings the copy up to date when it is older than [`RECHECK`]: one small query, and a
    /// reload only when the version moved.
    fn fresh(&self) -> Result<(), StoreError> {
        let seen = {
            let memo = self.memo.read().unwrap_or_else(PoisonError::into_inner);
            match memo.as_ref() {
                Some(m) if m.checked.elapsed() < RECHECK => return Ok(()),
                Some(m) => Some(m.version),
                None => None,
            }
        };
        let loaded = self.with(move |db| {
            let version: i64 = db
                .query_one(
                    "SELECT version FROM gatehouse_api_keys_version WHERE id = 1",
                    &[],
                )?
                .get(0);
            if seen == Some(version) {
                return Ok((version, None));
            }
            let keys = db
                .query(&format!("SELECT {COLUMNS} FROM gatehouse_api_keys"), &[])?
                .iter()
                .map(|r| crate::keys::api_key_row(r).map(|k| (k.id.clone(), k)))
                .collect::<Result<BTreeMap<_, _>, _>>()?;
            Ok((version, Some(keys)))
        })?;
        let mut memo = self.memo.write().unwrap_or_else(PoisonError::into_inner);
        match (loaded, memo.as_mut()) {
            ((version, Some(keys)), _) => {
                *memo = Some(Memo {
                    keys,
                    version,
                    checked: Instant::now(),
                });
            }
            ((_, None), Some(m)) => m.checked = Instant::now(),
            ((_, None), None) => {}
        }
        Ok(())
    }
}

impl ApiKeyStore for PgKeyStore {
    fn insert(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let k2 = k.clone();
        let added = self.with(move |db| {
            let mut tx = db.transaction()?;
            let n = tx.execute(
                &format!("INSERT INTO gatehouse_api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"),
                &[
                    &k2.id,
                    &k2.hash,
                    &k2.principal,
                    &k2.app,
                    &k2.tenant,
                    &list_to_sql(&k2.roles),
                    &list_to_sql(&k2.servers),
                    &list_to_sql(&k2.tools),
                    &i(k2.created_at),
                    &k2.expires_at.map(i),
                    &k2.revoked_at.map(i),
                    &k2.last_used_at.map(i),
                    &k2.rotated_from,
                ],
            )?;
            bump(&mut tx)?;
            tx.commit()?;
            Ok(n)
        })?;
        self.invalidate();
        if added == 0 {
            return Err(StoreError::Duplicate(k.id.clone()));
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        // Twice at most: a write on this handle may drop the copy between the check and
        // the read; the second round reloads it whole.
        for _ in 0..2 {
            self.fresh()?;
            let memo = self.memo.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(m) = memo.as_ref() {
                return Ok(m.keys.get(id).cloned());
            }
        }
        Err(StoreError::Unavailable("API keys not loaded".into()))
    }

    fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.with(|db| {
            db.query(
                &format!("SELECT {COLUMNS} FROM gatehouse_api_keys ORDER BY created_at, id"),
                &[],
            )?
            .iter()
            .map(crate::keys::api_key_row)
            .collect()
        })
    }

    fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        self.update(
            "UPDATE gatehouse_api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            id,
            at,
        )
    }

    fn expire_at(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        self.update(
            "UPDATE gatehouse_api_keys SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $2 THEN $2 ELSE expires_at END WHERE id = $1",
            id,
            at,
        )
    }

    fn touch(&self, id: &str, at: u64) -> Result<(), StoreError> {
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched.get(id).is_some_and(|last| at < last + TOUCH_EVERY) {
                return Ok(());
            }
            if touched.len() > 100_000 {
                touched.clear();
            }
            touched.insert(id.to_owned(), at);
        }
        self.with(|db| {
            db.execute(
                "UPDATE gatehouse_api_keys SET last_used_at = $2 WHERE id = $1",
                &[&id, &i(at)],
            )
            .map(|_| ())
        })?;
        // The local copy shows it too (last use decides nothing, so no version bump).
        if let Some(m) = self
            .memo
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            && let Some(k) = m.keys.get_mut(id)
        {
            k.last_used_at = Some(at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{exercise, rec};
    use crate::pg_audit::tests::fresh_db;

    #[test]
    fn contract_and_a_revocation_reaching_another_replica_within_a_second() {
        let url = fresh_db("keys");
        let a = PgKeyStore::new(&url);
        exercise(&a);
        let b = PgKeyStore::new(&url);
        a.insert(&rec("k2")).expect("insert");
        assert!(
            b.get("k2").expect("get").is_some(),
            "seen by another replica"
        );
        a.revoke("k2", 5).expect("revoke");
        assert_eq!(
            a.get("k2").expect("get").and_then(|k| k.revoked_at),
            Some(5),
            "at once on the writer"
        );
        let deadline = Instant::now() + Duration::from_millis(2500);
        while b
            .get("k2")
            .expect("get")
            .and_then(|k| k.revoked_at)
            .is_none()
        {
            assert!(Instant::now() < deadline, "the revocation never reached b");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
