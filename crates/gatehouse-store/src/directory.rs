//! People and services provisioned by the organisation's directory (SCIM), and who has
//! been deprovisioned. Deprovisioning is checked on every request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use crate::keys::StoreError;

/// A provisioned user as SCIM describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

/// The directory as the gateway knows it.
///
/// Guarantees: writes are committed when they return; `is_deprovisioned` reflects every
/// write made through this store (the SCIM endpoint of this process) at once, and costs
/// no I/O: it is asked on every request. Re-provisioning a user as active clears an
/// earlier deprovisioning of their names.
pub trait DirectoryStore: Send + Sync {
    /// Creates or replaces a user.
    fn put(&self, user: &DirectoryUser) -> Result<(), StoreError>;
    fn get(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError>;
    fn find_by_user_name(&self, user_name: &str) -> Result<Option<DirectoryUser>, StoreError>;
    /// Removes a user and remembers its names as deprovisioned.
    fn delete(&self, id: &str, at: u64) -> Result<bool, StoreError>;
    /// Whether a subject (a user name or external id) has been deprovisioned.
    fn is_deprovisioned(&self, subject: &str) -> Result<bool, StoreError>;
}

#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: Mutex<BTreeMap<String, DirectoryUser>>,
    gone: Mutex<BTreeMap<String, u64>>,
}

impl DirectoryStore for MemoryDirectory {
    fn put(&self, user: &DirectoryUser) -> Result<(), StoreError> {
        if user.active {
            let mut gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
            gone.remove(&user.user_name);
            if let Some(e) = &user.external_id {
                gone.remove(e);
            }
        }
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user.id.clone(), user.clone());
        Ok(())
    }
    fn get(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError> {
        Ok(self
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }
    fn find_by_user_name(&self, user_name: &str) -> Result<Option<DirectoryUser>, StoreError> {
        Ok(self
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|u| u.user_name == user_name)
            .cloned())
    }
    fn delete(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let Some(u) = self
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
        else {
            return Ok(false);
        };
        let mut gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
        gone.insert(u.user_name, at);
        if let Some(e) = u.external_id {
            gone.insert(e, at);
        }
        Ok(true)
    }
    fn is_deprovisioned(&self, subject: &str) -> Result<bool, StoreError> {
        let inactive = self
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .any(|u| {
                !u.active && (u.user_name == subject || u.external_id.as_deref() == Some(subject))
            });
        Ok(inactive
            || self
                .gone
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(subject))
    }
}

pub struct SqliteDirectory {
    conn: Mutex<Connection>,
    /// Every deprovisioned subject, rebuilt from the database after each write.
    blocked: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for SqliteDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteDirectory")
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS directory_users (
  id TEXT PRIMARY KEY,
  user_name TEXT NOT NULL UNIQUE,
  external_id TEXT,
  active INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deprovisioned (
  subject TEXT PRIMARY KEY,
  at INTEGER NOT NULL
);";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DirectoryUser> {
    Ok(DirectoryUser {
        id: r.get(0)?,
        user_name: r.get(1)?,
        external_id: r.get(2)?,
        active: r.get::<_, i64>(3)? != 0,
        updated_at: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
    })
}

impl SqliteDirectory {
    pub fn open(path: &Path) -> Result<SqliteDirectory, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let d = SqliteDirectory {
            conn: Mutex::new(conn),
            blocked: Default::default(),
        };
        d.reload()?;
        Ok(d)
    }

    /// Rebuilds the in-memory set of deprovisioned subjects.
    fn reload(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT subject FROM deprovisioned
             UNION SELECT user_name FROM directory_users WHERE active = 0
             UNION SELECT external_id FROM directory_users WHERE active = 0 AND external_id IS NOT NULL",
        )?;
        let set = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        *self.blocked.write().unwrap_or_else(PoisonError::into_inner) = set;
        Ok(())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl DirectoryStore for SqliteDirectory {
    fn put(&self, u: &DirectoryUser) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO directory_users (id, user_name, external_id, active, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET user_name = ?2, external_id = ?3, active = ?4, updated_at = ?5",
            params![u.id, u.user_name, u.external_id, i64::from(u.active), i(u.updated_at)],
        )?;
        if u.active {
            self.conn().execute(
                "DELETE FROM deprovisioned WHERE subject = ?1 OR subject = ?2",
                params![u.user_name, u.external_id],
            )?;
        }
        self.reload()
    }

    fn get(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE id = ?1", [id], row)
            .optional()?)
    }

    fn find_by_user_name(&self, user_name: &str) -> Result<Option<DirectoryUser>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE user_name = ?1",
                [user_name],
                row,
            )
            .optional()?)
    }

    fn delete(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let user = tx
            .query_row("SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE id = ?1", [id], row)
            .optional()?;
        let Some(u) = user else { return Ok(false) };
        for subject in std::iter::once(&u.user_name).chain(u.external_id.as_ref()) {
            tx.execute(
                "INSERT OR REPLACE INTO deprovisioned (subject, at) VALUES (?1, ?2)",
                params![subject, i(at)],
            )?;
        }
        tx.execute("DELETE FROM directory_users WHERE id = ?1", [id])?;
        tx.commit()?;
        drop(conn);
        self.reload()?;
        Ok(true)
    }

    fn is_deprovisioned(&self, subject: &str) -> Result<bool, StoreError> {
        Ok(self
            .blocked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str, active: bool) -> DirectoryUser {
        DirectoryUser {
            id: id.into(),
            user_name: name.into(),
            external_id: Some(format!("ext-{name}")),
            active,
            updated_at: 1,
        }
    }

    fn exercise(d: &dyn DirectoryStore) {
        d.put(&user("1", "alice", true)).unwrap();
        assert!(!d.is_deprovisioned("alice").unwrap());
        d.put(&user("1", "alice", false)).unwrap();
        assert!(d.is_deprovisioned("alice").unwrap());
        assert!(
            d.is_deprovisioned("ext-alice").unwrap(),
            "by external id too"
        );
        d.put(&user("1", "alice", true)).unwrap();
        assert!(!d.is_deprovisioned("alice").unwrap(), "reactivation");
        assert_eq!(d.find_by_user_name("alice").unwrap().unwrap().id, "1");
        assert!(d.delete("1", 5).unwrap());
        assert!(d.is_deprovisioned("alice").unwrap() && d.is_deprovisioned("ext-alice").unwrap());
        assert!(d.get("1").unwrap().is_none());
        assert!(!d.delete("1", 6).unwrap());
        assert!(!d.is_deprovisioned("bob").unwrap());
        // Provisioned again as active (say, rehired): no longer blocked.
        d.put(&user("2", "alice", true)).unwrap();
        assert!(!d.is_deprovisioned("alice").unwrap() && !d.is_deprovisioned("ext-alice").unwrap());
    }

    #[test]
    fn memory_directory_contract() {
        exercise(&MemoryDirectory::default());
    }

    #[test]
    fn sqlite_directory_contract() {
        let dir = std::env::temp_dir().join(format!("gatehouse-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.db");
        let _ = std::fs::remove_file(&path);
        exercise(&SqliteDirectory::open(&path).unwrap());
        // The blocked set is rebuilt from the file when opened again.
        let d = SqliteDirectory::open(&path).unwrap();
        d.put(&user("3", "mallory", false)).unwrap();
        drop(d);
        assert!(
            SqliteDirectory::open(&path)
                .unwrap()
                .is_deprovisioned("mallory")
                .unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
