//! People, services and groups provisioned by the organisation's directory (SCIM), and who
//! has been deprovisioned or revoked. Both are asked on every request, from memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use crate::keys::StoreError;
use crate::rows::Columns;
use crate::rows::{self, int as i};

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

/// A provisioned group; `members` are user ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

/// The directory as the gateway knows it.
///
/// Guarantees: writes are committed when they return; `is_deprovisioned` reflects every
/// write made through this store (the SCIM endpoint of this process) at once, and costs
/// no I/O: it is asked on every request. Re-provisioning a user as active clears an
/// earlier deprovisioning of their names.
pub trait DirectoryStore: Send + Sync {
    /// Creates or replaces a user. A name (user name or external id) that an inactive user
    /// gives up stays deprovisioned: renaming someone does not unblock their old name.
    fn put(&self, user: &DirectoryUser) -> Result<(), StoreError>;
    fn get(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError>;
    fn find_by_user_name(&self, user_name: &str) -> Result<Option<DirectoryUser>, StoreError>;
    /// Removes a user and remembers its names as deprovisioned.
    fn delete(&self, id: &str, at: u64) -> Result<bool, StoreError>;
    /// Whether a subject (a user name or external id) has been deprovisioned or revoked.
    fn is_deprovisioned(&self, subject: &str) -> Result<bool, StoreError>;
    /// An administrator's revocation of any subject, provisioned or not.
    fn revoke(&self, subject: &str, at: u64) -> Result<(), StoreError>;
    /// Lifts a revocation (or a deletion's block); false when none was recorded. A user
    /// set inactive stays inactive until the directory reactivates them.
    fn reinstate(&self, subject: &str) -> Result<bool, StoreError>;
    /// Creates or replaces a group with its members (unknown user ids are dropped).
    fn put_group(&self, group: &DirectoryGroup) -> Result<(), StoreError>;
    fn get_group(&self, id: &str) -> Result<Option<DirectoryGroup>, StoreError>;
    fn find_group_by_name(&self, name: &str) -> Result<Option<DirectoryGroup>, StoreError>;
    fn delete_group(&self, id: &str) -> Result<bool, StoreError>;
    /// The display names of the groups of a provisioned subject (user name or external
    /// id), sorted; `None` when the directory does not know the subject. No I/O, and no
    /// copy: it is asked on every request.
    fn groups_of(&self, subject: &str) -> Result<Option<Arc<[String]>>, StoreError>;
    /// Picks up writes other processes made to a shared store; true when there were any.
    fn refresh(&self) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[derive(Debug, Default)]
pub struct MemoryDirectory {
    users: Mutex<BTreeMap<String, DirectoryUser>>,
    gone: Mutex<BTreeMap<String, u64>>,
    groups: Mutex<BTreeMap<String, DirectoryGroup>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DirectoryStore for MemoryDirectory {
    fn put(&self, user: &DirectoryUser) -> Result<(), StoreError> {
        if let Some(old) = lock(&self.users).get(&user.id) {
            let mut gone = lock(&self.gone);
            for n in abandoned_names(old, user) {
                gone.insert(n.clone(), user.updated_at);
            }
        }
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
        let Some(u) = lock(&self.users).remove(id) else {
            return Ok(false);
        };
        for g in lock(&self.groups).values_mut() {
            g.members.retain(|m| m != id);
        }
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
    fn revoke(&self, subject: &str, at: u64) -> Result<(), StoreError> {
        lock(&self.gone).insert(subject.to_owned(), at);
        Ok(())
    }
    fn reinstate(&self, subject: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.gone).remove(subject).is_some())
    }
    fn put_group(&self, g: &DirectoryGroup) -> Result<(), StoreError> {
        let users = lock(&self.users);
        let mut g = g.clone();
        g.members.retain(|m| users.contains_key(m));
        g.members.sort();
        g.members.dedup();
        lock(&self.groups).insert(g.id.clone(), g);
        Ok(())
    }
    fn get_group(&self, id: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        Ok(lock(&self.groups).get(id).cloned())
    }
    fn find_group_by_name(&self, name: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        Ok(lock(&self.groups)
            .values()
            .find(|g| g.display_name == name)
            .cloned())
    }
    fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.groups).remove(id).is_some())
    }
    fn groups_of(&self, subject: &str) -> Result<Option<Arc<[String]>>, StoreError> {
        let Some(user) = lock(&self.users)
            .values()
            .find(|u| u.user_name == subject || u.external_id.as_deref() == Some(subject))
            .map(|u| u.id.clone())
        else {
            return Ok(None);
        };
        let mut names: Vec<String> = lock(&self.groups)
            .values()
            .filter(|g| g.members.contains(&user))
            .map(|g| g.display_name.clone())
            .collect();
        names.sort();
        Ok(Some(names.into()))
    }
}

pub struct SqliteDirectory {
    conn: Mutex<Connection>,
    /// What requests ask, rebuilt from the database after each write.
    memo: std::sync::RwLock<Memo>,
    /// `PRAGMA data_version` when the memo was last rebuilt: it changes when another
    /// connection (another gateway process on this host) commits.
    seen_version: std::sync::atomic::AtomicI64,
}

#[derive(Default)]
pub(crate) struct Memo {
    /// Every deprovisioned or revoked subject.
    pub(crate) blocked: HashSet<String>,
    /// Group names by user name and by external id, for every provisioned user.
    pub(crate) groups: HashMap<String, Arc<[String]>>,
}

impl Memo {
    /// From the blocked subjects and (user name, external id, group name) rows, one per
    /// membership (a user in no group: one row without a group).
    pub(crate) fn build(
        blocked: impl IntoIterator<Item = String>,
        rows: impl IntoIterator<Item = (String, Option<String>, Option<String>)>,
    ) -> Memo {
        let mut lists: HashMap<String, Vec<String>> = HashMap::new();
        for (name, external, group) in rows {
            for subject in std::iter::once(name).chain(external) {
                lists.entry(subject).or_default().extend(group.clone());
            }
        }
        Memo {
            blocked: blocked.into_iter().collect(),
            groups: lists.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    }
}

/// The names `old` gives up in becoming `new`, when either side is inactive.
pub(crate) fn abandoned_names<'a>(old: &'a DirectoryUser, new: &DirectoryUser) -> Vec<&'a String> {
    if old.active && new.active {
        return Vec::new();
    }
    let kept = |n: &String| *n == new.user_name || new.external_id.as_ref() == Some(n);
    std::iter::once(&old.user_name)
        .chain(old.external_id.as_ref())
        .filter(|n| !kept(n))
        .collect()
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
);
CREATE TABLE IF NOT EXISTS directory_groups (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL UNIQUE,
  external_id TEXT
);
CREATE TABLE IF NOT EXISTS directory_members (
  group_id TEXT NOT NULL REFERENCES directory_groups(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES directory_users(id) ON DELETE CASCADE,
  PRIMARY KEY (group_id, user_id)
);";

impl SqliteDirectory {
    pub fn open(path: &Path) -> Result<SqliteDirectory, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let d = SqliteDirectory {
            conn: Mutex::new(conn),
            memo: Default::default(),
            seen_version: std::sync::atomic::AtomicI64::new(-1),
        };
        d.reload()?;
        Ok(d)
    }

    /// Rebuilds what requests ask from the database.
    fn reload(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        let version: i64 = conn.pragma_query_value(None, "data_version", |r| r.get(0))?;
        self.seen_version
            .store(version, std::sync::atomic::Ordering::Relaxed);
        let mut stmt = conn.prepare(
            "SELECT subject FROM deprovisioned
             UNION SELECT user_name FROM directory_users WHERE active = 0
             UNION SELECT external_id FROM directory_users WHERE active = 0 AND external_id IS NOT NULL",
        )?;
        let blocked: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT u.user_name, u.external_id, g.display_name FROM directory_users u
             LEFT JOIN directory_members m ON m.user_id = u.id
             LEFT JOIN directory_groups g ON g.id = m.group_id
             ORDER BY g.display_name",
        )?;
        let rows: Vec<(String, Option<String>, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        *self.memo.write().unwrap_or_else(PoisonError::into_inner) = Memo::build(blocked, rows);
        Ok(())
    }

    fn read_group(conn: &Connection, id: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        let Some((display_name, external_id)) = conn
            .query_row(
                "SELECT display_name, external_id FROM directory_groups WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let mut stmt = conn.prepare(
            "SELECT user_id FROM directory_members WHERE group_id = ?1 ORDER BY user_id",
        )?;
        let members = stmt
            .query_map([id], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(DirectoryGroup {
            id: id.to_owned(),
            display_name,
            external_id,
            members,
        }))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DirectoryStore for SqliteDirectory {
    fn put(&self, u: &DirectoryUser) -> Result<(), StoreError> {
        let mut conn = self.conn();
        // Immediate: a read-then-write transaction must hold the write lock from its start,
        // or a concurrent writer (the audit) makes its upgrade fail at once, busy timeout or not.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let old = tx
            .query_row("SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE id = ?1", [&u.id], |r| directory_user_row(r))
            .optional()?;
        for name in old.iter().flat_map(|o| abandoned_names(o, u)) {
            tx.execute(
                "INSERT OR REPLACE INTO deprovisioned (subject, at) VALUES (?1, ?2)",
                params![name, i(u.updated_at)],
            )?;
        }
        tx.execute(
            "INSERT INTO directory_users (id, user_name, external_id, active, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET user_name = ?2, external_id = ?3, active = ?4, updated_at = ?5",
            params![u.id, u.user_name, u.external_id, i64::from(u.active), i(u.updated_at)],
        )?;
        if u.active {
            tx.execute(
                "DELETE FROM deprovisioned WHERE subject = ?1 OR subject = ?2",
                params![u.user_name, u.external_id],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.reload()
    }

    fn get(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE id = ?1", [id], |r| directory_user_row(r))
            .optional()?)
    }

    fn find_by_user_name(&self, user_name: &str) -> Result<Option<DirectoryUser>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE user_name = ?1",
                [user_name],
                |r| directory_user_row(r),
            )
            .optional()?)
    }

    fn delete(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        // Immediate, as in `put`.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let user = tx
            .query_row("SELECT id, user_name, external_id, active, updated_at FROM directory_users WHERE id = ?1", [id], |r| directory_user_row(r))
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
            .memo
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .blocked
            .contains(subject))
    }

    fn revoke(&self, subject: &str, at: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO deprovisioned (subject, at) VALUES (?1, ?2)",
            params![subject, i(at)],
        )?;
        self.reload()
    }

    fn reinstate(&self, subject: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM deprovisioned WHERE subject = ?1", [subject])?;
        self.reload()?;
        Ok(n > 0)
    }

    fn put_group(&self, g: &DirectoryGroup) -> Result<(), StoreError> {
        let mut conn = self.conn();
        // Immediate, as in `put`.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO directory_groups (id, display_name, external_id) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET display_name = ?2, external_id = ?3",
            params![g.id, g.display_name, g.external_id],
        )?;
        tx.execute("DELETE FROM directory_members WHERE group_id = ?1", [&g.id])?;
        for m in &g.members {
            tx.execute(
                "INSERT OR IGNORE INTO directory_members (group_id, user_id)
                 SELECT ?1, id FROM directory_users WHERE id = ?2",
                params![g.id, m],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.reload()
    }

    fn get_group(&self, id: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        Self::read_group(&self.conn(), id)
    }

    fn find_group_by_name(&self, name: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        let conn = self.conn();
        let id: Option<String> = conn
            .query_row(
                "SELECT id FROM directory_groups WHERE display_name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Self::read_group(&conn, &id),
            None => Ok(None),
        }
    }

    fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM directory_groups WHERE id = ?1", [id])?;
        self.reload()?;
        Ok(n > 0)
    }

    fn refresh(&self) -> Result<bool, StoreError> {
        let version: i64 = self
            .conn()
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        if version == self.seen_version.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    fn groups_of(&self, subject: &str) -> Result<Option<Arc<[String]>>, StoreError> {
        Ok(self
            .memo
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .groups
            .get(subject)
            .cloned())
    }
}

/// `id, user_name, external_id, active, updated_at`.
pub(crate) fn directory_user_row<R: Columns>(r: &R) -> Result<DirectoryUser, R::Error> {
    Ok(DirectoryUser {
        id: r.text(0)?,
        user_name: r.text(1)?,
        external_id: r.opt_text(2)?,
        active: r.flag(3)?,
        updated_at: rows::uint(r.int(4)?),
    })
}

#[cfg(test)]
pub(crate) mod tests {
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

    pub(crate) fn exercise(d: &dyn DirectoryStore) {
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

        // Renamed while deprovisioned: the old names stay blocked.
        d.put(&user("9", "mallet", false)).unwrap();
        d.put(&DirectoryUser {
            user_name: "mallet2".into(),
            external_id: None,
            ..user("9", "mallet", false)
        })
        .unwrap();
        assert!(d.is_deprovisioned("mallet").unwrap() && d.is_deprovisioned("ext-mallet").unwrap());
        assert!(d.is_deprovisioned("mallet2").unwrap());
        // Renamed while active: nothing is blocked.
        d.put(&user("8", "oscar", true)).unwrap();
        d.put(&user("8", "oscar.w", true)).unwrap();
        assert!(!d.is_deprovisioned("oscar").unwrap());

        // An administrator's revocation, of a provisioned subject or any other, and its lifting.
        d.revoke("alice", 7).unwrap();
        d.revoke("svc-unknown", 7).unwrap();
        assert!(d.is_deprovisioned("alice").unwrap() && d.is_deprovisioned("svc-unknown").unwrap());
        assert!(d.reinstate("alice").unwrap());
        assert!(!d.is_deprovisioned("alice").unwrap() && !d.reinstate("alice").unwrap());

        // Groups: membership by user id, read by user name or external id; unknown members
        // dropped; a deleted user leaves their groups; an unknown subject has no answer.
        d.put(&user("3", "bob", true)).unwrap();
        let eng = DirectoryGroup {
            id: "g1".into(),
            display_name: "eng".into(),
            external_id: None,
            members: vec!["2".into(), "3".into(), "nobody".into()],
        };
        d.put_group(&eng).unwrap();
        d.put_group(&DirectoryGroup {
            id: "g2".into(),
            display_name: "admins".into(),
            external_id: None,
            members: vec!["2".into()],
        })
        .unwrap();
        assert_eq!(d.get_group("g1").unwrap().unwrap().members, ["2", "3"]);
        assert_eq!(d.find_group_by_name("admins").unwrap().unwrap().id, "g2");
        assert_eq!(*d.groups_of("alice").unwrap().unwrap(), ["admins", "eng"]);
        assert_eq!(*d.groups_of("ext-bob").unwrap().unwrap(), ["eng"]);
        assert_eq!(d.groups_of("carol").unwrap(), None);
        d.put_group(&DirectoryGroup {
            members: vec!["3".into()],
            ..eng
        })
        .unwrap();
        assert_eq!(
            *d.groups_of("alice").unwrap().unwrap(),
            ["admins"],
            "removed from eng"
        );
        assert!(d.delete_group("g2").unwrap() && !d.delete_group("g2").unwrap());
        assert!(d.groups_of("alice").unwrap().unwrap().is_empty());
        assert!(d.delete("3", 8).unwrap());
        assert!(d.get_group("g1").unwrap().unwrap().members.is_empty());
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
        // Two handles on one file, as two gateway processes on one host: a write through one
        // reaches the other at its next refresh.
        let (a, b) = (
            SqliteDirectory::open(&path).unwrap(),
            SqliteDirectory::open(&path).unwrap(),
        );
        assert!(!b.refresh().unwrap(), "nothing new");
        a.revoke("eve", 9).unwrap();
        assert!(!b.is_deprovisioned("eve").unwrap());
        assert!(b.refresh().unwrap() && b.is_deprovisioned("eve").unwrap());
        assert!(!a.refresh().unwrap(), "its own write is already known");
        a.reinstate("eve").unwrap();
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
