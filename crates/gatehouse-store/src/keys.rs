//! API key records. The store never sees a key, only its keyed hash.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::rows::Columns;
use crate::rows::{self, int as i, list_to_sql};
use rusqlite::{Connection, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("a key with id {0} already exists")]
    Duplicate(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// One API key as stored: the public id, the keyed hash of the whole key, and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public part of the key (`ghk_{id}_…`), the lookup handle.
    pub id: String,
    /// HMAC-SHA256 of the whole key under the server pepper, hex.
    pub hash: String,
    /// The service principal the key acts as.
    pub principal: String,
    /// The one application allowed to use it.
    pub app: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    /// Upstreams it may reach; empty means all.
    pub servers: Vec<String>,
    /// Exposed tool names it may call; empty means all (within `servers`).
    pub tools: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub revoked_at: Option<u64>,
    pub last_used_at: Option<u64>,
    /// The key this one replaced, when made by rotation.
    pub rotated_from: Option<String>,
}

/// API key storage.
///
/// Guarantees: every write is durable when it returns (committed); a read after a write
/// returns it, also from another process sharing the store, so a revocation takes effect
/// on the next request.
pub trait ApiKeyStore: Send + Sync {
    fn insert(&self, rec: &ApiKeyRecord) -> Result<(), StoreError>;
    fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Marks a key revoked at `at`; false if there was no such key.
    fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError>;
    /// Shortens (or sets) a key's expiry; false if there was no such key.
    fn expire_at(&self, id: &str, at: u64) -> Result<bool, StoreError>;
    /// Records a use. Best effort for callers: a failure here never refuses a request.
    fn touch(&self, id: &str, at: u64) -> Result<(), StoreError>;
}

/// In memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<BTreeMap<String, ApiKeyRecord>>,
}

impl ApiKeyStore for MemoryKeyStore {
    fn insert(&self, rec: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.contains_key(&rec.id) {
            return Err(StoreError::Duplicate(rec.id.clone()));
        }
        keys.insert(rec.id.clone(), rec.clone());
        Ok(())
    }
    fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }
    fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect())
    }
    fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .get_mut(id)
            .map(|k| k.revoked_at = Some(k.revoked_at.unwrap_or(at)))
            .is_some())
    }
    fn expire_at(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .get_mut(id)
            .map(|k| k.expires_at = Some(k.expires_at.map_or(at, |e| e.min(at))))
            .is_some())
    }
    fn touch(&self, id: &str, at: u64) -> Result<(), StoreError> {
        if let Some(k) = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(id)
        {
            k.last_used_at = Some(at);
        }
        Ok(())
    }
}

/// SQLite, the embedded default. WAL mode, so the CLI and the gateway share the file.
///
/// Lookups read an in-memory copy of the keys already seen, checked against a version
/// counter (bumped by triggers on every change that decides something, whoever writes) at
/// most once a [`RECHECK`]: a revocation by another process (the CLI, another gateway on
/// the same file) takes effect within a second, one through this handle (the admin API,
/// the console) at once. A read of the file per call cost two `fcntl` locks, a page read
/// and a statement: about 5% of a worker's time under load.
pub struct SqliteKeyStore {
    /// Writes.
    conn: Mutex<Connection>,
    /// Lookups on the request path.
    reader: Mutex<Connection>,
    memo: RwLock<Memo>,
    recheck: Duration,
}

/// How stale the in-memory copy may be before the version counter is read again.
const RECHECK: Duration = Duration::from_secs(1);
/// Most keys kept in memory; past it the copy starts again empty.
const MAX_MEMO: usize = 65_536;

/// The keys looked up since the version last moved. Unknown ids are not kept: a caller
/// spraying made-up ids reads the file, as before, and fills nothing.
#[derive(Default)]
struct Memo {
    version: i64,
    checked: Option<Instant>,
    keys: HashMap<String, ApiKeyRecord>,
    /// Moved by every change through this handle: a lookup that read the file before the
    /// change keeps nothing (its record may predate the change).
    epoch: u64,
}

impl std::fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteKeyStore")
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  principal TEXT NOT NULL,
  app TEXT NOT NULL,
  tenant TEXT,
  roles TEXT NOT NULL,
  servers TEXT NOT NULL,
  tools TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  last_used_at INTEGER,
  rotated_from TEXT
);
CREATE TABLE IF NOT EXISTS api_keys_version (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT OR IGNORE INTO api_keys_version (id, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS api_keys_inserted AFTER INSERT ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS api_keys_changed
AFTER UPDATE OF id, hash, principal, app, tenant, roles, servers, tools, created_at,
  expires_at, revoked_at, rotated_from ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS api_keys_deleted AFTER DELETE ON api_keys
BEGIN UPDATE api_keys_version SET version = version + 1 WHERE id = 1; END;";

impl SqliteKeyStore {
    pub fn open(path: &Path) -> Result<SqliteKeyStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Reads (every authenticated request) on a connection of their own: in WAL mode
        // they never wait for a writer, and a write waiting for the lock (behind an audit
        // commit in the same file) holds only the writing connection.
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteKeyStore {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            memo: RwLock::new(Memo::default()),
            recheck: RECHECK,
        })
    }

    /// The kept copy of `id` when the version was read less than [`RECHECK`] ago, else
    /// the epoch to read the file under.
    fn remembered(&self, id: &str) -> Result<ApiKeyRecord, u64> {
        let memo = self.memo.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = memo.checked.is_some_and(|c| c.elapsed() < self.recheck);
        match memo.keys.get(id) {
            Some(k) if fresh => Ok(k.clone()),
            _ => Err(memo.epoch),
        }
    }

    /// Forgets every kept key: a change through this handle acts on the next lookup, and
    /// a lookup under way when it came keeps nothing.
    fn forget(&self) {
        let mut memo = self.memo.write().unwrap_or_else(PoisonError::into_inner);
        memo.keys.clear();
        memo.checked = None;
        memo.epoch += 1;
    }

    /// Keeps what a lookup read under `epoch` (`rec` at `version`), unless this handle
    /// changed a key since.
    fn keep(&self, id: &str, rec: Option<&ApiKeyRecord>, version: i64, epoch: u64) {
        let mut memo = self.memo.write().unwrap_or_else(PoisonError::into_inner);
        // A version only grows: an older one read here lost a race with a newer read.
        if memo.epoch != epoch || version < memo.version {
            return;
        }
        if version != memo.version || memo.keys.len() >= MAX_MEMO {
            memo.keys.clear();
            memo.version = version;
        }
        memo.checked = Some(Instant::now());
        if let Some(r) = rec {
            memo.keys.insert(id.to_owned(), r.clone());
        }
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const COLUMNS: &str = "id, hash, principal, app, tenant, roles, servers, tools, created_at, expires_at, revoked_at, last_used_at, rotated_from";
/// The key and the version in one statement, so one snapshot: a record is never kept under
/// a version that does not include it.
const GET_KEY: &str = "SELECT k.id, k.hash, k.principal, k.app, k.tenant, k.roles, k.servers, k.tools, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.rotated_from, v.version FROM api_keys_version v LEFT JOIN api_keys k ON k.id = ?1 WHERE v.id = 1";

impl ApiKeyStore for SqliteKeyStore {
    fn insert(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let res = self.conn().execute(
            &format!("INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            params![
                k.id,
                k.hash,
                k.principal,
                k.app,
                k.tenant,
                list_to_sql(&k.roles),
                list_to_sql(&k.servers),
                list_to_sql(&k.tools),
                i(k.created_at),
                k.expires_at.map(i),
                k.revoked_at.map(i),
                k.last_used_at.map(i),
                k.rotated_from
            ],
        );
        self.forget();
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Duplicate(k.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn get(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let epoch = match self.remembered(id) {
            Ok(rec) => return Ok(Some(rec)),
            Err(epoch) => epoch,
        };
        let (rec, version) = {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(GET_KEY)?;
            stmt.query_row([id], |r| {
                let version: i64 = r.get(13)?;
                let found = r.get::<_, Option<String>>(0)?.is_some();
                Ok((found.then(|| api_key_row(r)).transpose()?, version))
            })?
        };
        self.keep(id, rec.as_ref(), version, epoch);
        Ok(rec)
    }

    fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))?;
        let rows = stmt
            .query_map([], |r| api_key_row(r))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, i(at)],
        )?;
        self.forget();
        Ok(n > 0)
    }

    fn expire_at(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > ?2 THEN ?2 ELSE expires_at END WHERE id = ?1",
            params![id, i(at)],
        )?;
        self.forget();
        Ok(n > 0)
    }

    fn touch(&self, id: &str, at: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            params![id, i(at)],
        )?;
        // Last use decides nothing and moves no version; the kept copy follows it.
        let mut memo = self.memo.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = memo.keys.get_mut(id) {
            k.last_used_at = Some(at);
        }
        Ok(())
    }
}

/// `id, hash, principal, app, tenant, roles, servers, tools, created_at, expires_at,
/// revoked_at, last_used_at, rotated_from`.
pub(crate) fn api_key_row<R: Columns>(r: &R) -> Result<ApiKeyRecord, R::Error> {
    Ok(ApiKeyRecord {
        id: r.text(0)?,
        hash: r.text(1)?,
        principal: r.text(2)?,
        app: r.text(3)?,
        tenant: r.opt_text(4)?,
        roles: rows::list_from_sql(&r.text(5)?),
        servers: rows::list_from_sql(&r.text(6)?),
        tools: rows::list_from_sql(&r.text(7)?),
        created_at: r.opt_int(8)?.map_or(0, rows::uint),
        expires_at: r.opt_int(9)?.map(rows::uint),
        revoked_at: r.opt_int(10)?.map(rows::uint),
        last_used_at: r.opt_int(11)?.map(rows::uint),
        rotated_from: r.opt_text(12)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_cached_lookup_reads_every_column() {
        let prefixed: Vec<String> = COLUMNS.split(", ").map(|c| format!("k.{c}")).collect();
        assert!(GET_KEY.contains(&prefixed.join(", ")));
    }

    pub(crate) fn rec(id: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            hash: "ab".into(),
            principal: "svc-reporting".into(),
            app: "reporting".into(),
            tenant: Some("acme".into()),
            roles: vec!["analyst".into()],
            servers: vec!["db".into()],
            tools: vec![],
            created_at: 10,
            expires_at: Some(100),
            revoked_at: None,
            last_used_at: None,
            rotated_from: None,
        }
    }

    pub(crate) fn exercise(s: &dyn ApiKeyStore) {
        s.insert(&rec("a1")).unwrap();
        assert!(matches!(
            s.insert(&rec("a1")),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(s.get("a1").unwrap(), Some(rec("a1")));
        assert_eq!(s.get("nope").unwrap(), None);
        assert!(s.expire_at("a1", 50).unwrap());
        assert!(s.expire_at("a1", 80).unwrap(), "never lengthens");
        assert_eq!(s.get("a1").unwrap().unwrap().expires_at, Some(50));
        assert!(s.revoke("a1", 60).unwrap());
        assert!(s.revoke("a1", 70).unwrap());
        assert_eq!(
            s.get("a1").unwrap().unwrap().revoked_at,
            Some(60),
            "first revocation time kept"
        );
        assert!(!s.revoke("nope", 1).unwrap());
        s.touch("a1", 65).unwrap();
        assert_eq!(s.get("a1").unwrap().unwrap().last_used_at, Some(65));
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn memory_store_contract() {
        exercise(&MemoryKeyStore::default());
    }

    /// A test's own directory and an empty `keys.db` path in it.
    fn fresh_db(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-store-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.db");
        let _ = std::fs::remove_file(&path);
        (dir, path)
    }

    #[test]
    fn a_lookup_that_read_before_a_change_through_the_handle_keeps_nothing() {
        let (dir, path) = fresh_db("race");
        let a = SqliteKeyStore::open(&path).unwrap();
        a.insert(&rec("r1")).unwrap();
        // A lookup reads the key (not revoked yet) and its version...
        let Err(epoch) = a.remembered("r1") else {
            panic!("nothing kept yet")
        };
        let stale = a.get("r1").unwrap().unwrap();
        let version: i64 = a
            .reader()
            .query_row("SELECT version FROM api_keys_version", [], |r| r.get(0))
            .unwrap();
        // ...the console revokes it through the same handle before the lookup keeps it...
        assert!(a.revoke("r1", 3).unwrap());
        a.keep("r1", Some(&stale), version, epoch);
        // ...and the next lookup sees the revocation, not the copy read before it.
        assert_eq!(a.get("r1").unwrap().unwrap().revoked_at, Some(3));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sqlite_store_contract_and_sharing_between_handles() {
        let (dir, path) = fresh_db("contract");
        let mut a = SqliteKeyStore::open(&path).unwrap();
        exercise(&a);
        // Another handle (as the CLI would be): a key it adds is found at once (unknown ids
        // are never kept), its revocation reaches a kept copy at the next version check.
        a.recheck = Duration::from_millis(300);
        let b = SqliteKeyStore::open(&path).unwrap();
        b.insert(&rec("b2")).unwrap();
        assert!(a.get("b2").unwrap().is_some());
        b.revoke("b2", 5).unwrap();
        assert_eq!(
            a.get("b2").unwrap().unwrap().revoked_at,
            None,
            "kept until the next check"
        );
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(a.get("b2").unwrap().unwrap().revoked_at, Some(5));
        // A change on the kept handle acts on its next lookup, whatever the interval.
        b.insert(&rec("c3")).unwrap();
        assert!(a.get("c3").unwrap().is_some());
        a.expire_at("c3", 7).unwrap();
        assert_eq!(a.get("c3").unwrap().unwrap().expires_at, Some(7));
        // Last use moves no version (it decides nothing) and is not a change to the key.
        let before: i64 = a
            .reader()
            .query_row("SELECT version FROM api_keys_version", [], |r| r.get(0))
            .unwrap();
        b.touch("c3", 9).unwrap();
        let after: i64 = a
            .reader()
            .query_row("SELECT version FROM api_keys_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(before, after);
        b.revoke("c3", 8).unwrap();
        let revoked: i64 = a
            .reader()
            .query_row("SELECT version FROM api_keys_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            revoked,
            after + 1,
            "a revocation by any writer moves the version"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
