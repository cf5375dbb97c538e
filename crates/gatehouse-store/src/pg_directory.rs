//! The SCIM directory and revocations in PostgreSQL, so a deprovisioning or an
//! administrator's revoke on one host reaches every replica: the same records and answers
//! as the SQLite store. Requests read an in-memory copy; every write bumps a version
//! counter, and [`DirectoryStore::refresh`] (polled each second) reloads when it moved.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{PoisonError, RwLock};

use postgres::{Client, GenericClient};

use crate::StoreError;
use crate::directory::{DirectoryGroup, DirectoryStore, DirectoryUser, Memo, abandoned_names};
use crate::pg_audit::PgAudit;
use crate::rows::int as i;

/// PostgreSQL-backed [`DirectoryStore`].
pub struct PgDirectory {
    db: PgAudit,
    memo: RwLock<Memo>,
    seen_version: AtomicI64,
}

impl std::fmt::Debug for PgDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgDirectory")
    }
}

const USER: &str =
    "SELECT id, user_name, external_id, active, updated_at FROM gatehouse_directory_users";

/// Marks a write, in the writer's transaction.
fn bump(tx: &mut impl GenericClient) -> Result<(), postgres::Error> {
    tx.execute(
        "UPDATE gatehouse_directory_version SET version = version + 1 WHERE id = 1",
        &[],
    )
    .map(|_| ())
}

fn revoke_in(tx: &mut impl GenericClient, subject: &str, at: i64) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO gatehouse_directory_revoked (subject, at) VALUES ($1, $2)
         ON CONFLICT (subject) DO UPDATE SET at = $2",
        &[&subject, &at],
    )
    .map(|_| ())
}

fn read_group(
    c: &mut impl GenericClient,
    id: &str,
) -> Result<Option<DirectoryGroup>, postgres::Error> {
    let Some(g) = c.query_opt(
        "SELECT display_name, external_id FROM gatehouse_directory_groups WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let members = c
        .query(
            "SELECT user_id FROM gatehouse_directory_members WHERE group_id = $1 ORDER BY user_id",
            &[&id],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(DirectoryGroup {
        id: id.to_owned(),
        display_name: g.get(0),
        external_id: g.get(1),
        members,
    }))
}

impl PgDirectory {
    /// Connects and reads the directory (a directory that cannot be read refuses callers).
    pub fn open(url: &str) -> Result<PgDirectory, StoreError> {
        let d = PgDirectory {
            db: PgAudit::new(url),
            memo: Default::default(),
            seen_version: AtomicI64::new(-1),
        };
        d.reload()?;
        Ok(d)
    }

    /// Runs `f` on a thread of its own: the synchronous client must never run on an async
    /// worker, and SCIM and admin handlers call the directory from one (writes are rare).
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        self.db.on_own_thread("directory", f)
    }

    /// One write: `f` in a transaction that also bumps the version, then this replica's
    /// copy rebuilt (the others rebuild at their next refresh).
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        let out = self.with(|c| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx)?;
            bump(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })?;
        self.reload()?;
        Ok(out)
    }

    /// Rebuilds what requests ask from the database, in one snapshot.
    fn reload(&self) -> Result<(), StoreError> {
        let (version, blocked, rows) = self.with(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let version: i64 = tx
                .query_one("SELECT version FROM gatehouse_directory_version WHERE id = 1", &[])?
                .get(0);
            let blocked: Vec<String> = tx
                .query(
                    "SELECT subject FROM gatehouse_directory_revoked
                     UNION SELECT user_name FROM gatehouse_directory_users WHERE NOT active
                     UNION SELECT external_id FROM gatehouse_directory_users WHERE NOT active AND external_id IS NOT NULL",
                    &[],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let rows: Vec<(String, Option<String>, Option<String>)> = tx
                .query(
                    "SELECT u.user_name, u.external_id, g.display_name FROM gatehouse_directory_users u
                     LEFT JOIN gatehouse_directory_members m ON m.user_id = u.id
                     LEFT JOIN gatehouse_directory_groups g ON g.id = m.group_id
                     ORDER BY g.display_name",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            tx.commit()?;
            Ok((version, blocked, rows))
        })?;
        *self.memo.write().unwrap_or_else(PoisonError::into_inner) = Memo::build(blocked, rows);
        self.seen_version.store(version, Ordering::Relaxed);
        Ok(())
    }
}

impl DirectoryStore for PgDirectory {
    fn put(&self, u: &DirectoryUser) -> Result<(), StoreError> {
        self.write(|tx| {
            let old = tx
                .query_opt(&format!("{USER} WHERE id = $1 FOR UPDATE"), &[&u.id])?
                .map(|r| crate::directory::directory_user_row(&r))
                .transpose()?;
            for name in old.iter().flat_map(|o| abandoned_names(o, u)) {
                revoke_in(tx, name, i(u.updated_at))?;
            }
            tx.execute(
                "INSERT INTO gatehouse_directory_users (id, user_name, external_id, active, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET user_name = $2, external_id = $3, active = $4, updated_at = $5",
                &[&u.id, &u.user_name, &u.external_id, &u.active, &i(u.updated_at)],
            )?;
            if u.active {
                tx.execute(
                    "DELETE FROM gatehouse_directory_revoked WHERE subject = $1 OR subject = $2",
                    &[&u.user_name, &u.external_id],
                )?;
            }
            Ok(())
        })
    }

    fn get(&self, id: &str) -> Result<Option<DirectoryUser>, StoreError> {
        self.with(|c| {
            c.query_opt(&format!("{USER} WHERE id = $1"), &[&id])?
                .map(|r| crate::directory::directory_user_row(&r))
                .transpose()
        })
    }

    fn find_by_user_name(&self, user_name: &str) -> Result<Option<DirectoryUser>, StoreError> {
        self.with(|c| {
            c.query_opt(&format!("{USER} WHERE user_name = $1"), &[&user_name])?
                .map(|r| crate::directory::directory_user_row(&r))
                .transpose()
        })
    }

    fn delete(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(u) = tx
                .query_opt(&format!("{USER} WHERE id = $1 FOR UPDATE"), &[&id])?
                .map(|r| crate::directory::directory_user_row(&r))
                .transpose()?
            else {
                return Ok(false);
            };
            for subject in std::iter::once(&u.user_name).chain(u.external_id.as_ref()) {
                revoke_in(tx, subject, i(at))?;
            }
            tx.execute(
                "DELETE FROM gatehouse_directory_users WHERE id = $1",
                &[&id],
            )?;
            Ok(true)
        })
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
        self.write(|tx| revoke_in(tx, subject, i(at)))
    }

    fn reinstate(&self, subject: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM gatehouse_directory_revoked WHERE subject = $1",
                &[&subject],
            )
        })
        .map(|n| n > 0)
    }

    fn put_group(&self, g: &DirectoryGroup) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO gatehouse_directory_groups (id, display_name, external_id) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET display_name = $2, external_id = $3",
                &[&g.id, &g.display_name, &g.external_id],
            )?;
            tx.execute(
                "DELETE FROM gatehouse_directory_members WHERE group_id = $1",
                &[&g.id],
            )?;
            for m in &g.members {
                tx.execute(
                    "INSERT INTO gatehouse_directory_members (group_id, user_id)
                     SELECT $1, id FROM gatehouse_directory_users WHERE id = $2
                     ON CONFLICT DO NOTHING",
                    &[&g.id, m],
                )?;
            }
            Ok(())
        })
    }

    fn get_group(&self, id: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        self.with(|c| read_group(c, id))
    }

    fn find_group_by_name(&self, name: &str) -> Result<Option<DirectoryGroup>, StoreError> {
        self.with(|c| {
            let id: Option<String> = c
                .query_opt(
                    "SELECT id FROM gatehouse_directory_groups WHERE display_name = $1",
                    &[&name],
                )?
                .map(|r| r.get(0));
            match id {
                Some(id) => read_group(c, &id),
                None => Ok(None),
            }
        })
    }

    fn delete_group(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM gatehouse_directory_groups WHERE id = $1",
                &[&id],
            )
        })
        .map(|n| n > 0)
    }

    fn groups_of(&self, subject: &str) -> Result<Option<std::sync::Arc<[String]>>, StoreError> {
        Ok(self
            .memo
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .groups
            .get(subject)
            .cloned())
    }

    fn refresh(&self) -> Result<bool, StoreError> {
        let version: i64 = self.with(|c| {
            Ok(c.query_one(
                "SELECT version FROM gatehouse_directory_version WHERE id = 1",
                &[],
            )?
            .get(0))
        })?;
        if version == self.seen_version.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn directory_contract_and_replicas_on_postgres() {
        let url = crate::pg_audit::tests::fresh_db("directory");
        crate::directory::tests::exercise(&PgDirectory::open(&url).unwrap());
        // Two replicas on one database: a write through one reaches the other at its next
        // refresh, as a revoke on one host reaches every other.
        let (a, b) = (
            PgDirectory::open(&url).unwrap(),
            PgDirectory::open(&url).unwrap(),
        );
        assert!(!b.refresh().unwrap(), "nothing new");
        a.revoke("eve", 9).unwrap();
        assert!(!b.is_deprovisioned("eve").unwrap());
        assert!(b.refresh().unwrap() && b.is_deprovisioned("eve").unwrap());
        assert!(!a.refresh().unwrap(), "its own write is already known");
        assert!(b.reinstate("eve").unwrap());
        assert!(a.refresh().unwrap() && !a.is_deprovisioned("eve").unwrap());
        // A dead database is an error, never an answer.
        assert!(
            PgDirectory::open("host=127.0.0.1 port=9 user=postgres connect_timeout=2").is_err()
        );
    }
}
