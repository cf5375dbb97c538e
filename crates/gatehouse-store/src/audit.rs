//! The audit chain in SQLite (WAL, `synchronous=FULL`): each append is one immediate
//! transaction that reads each chain's head, links the new events to it and commits, so
//! several processes sharing the file extend the same chains without gaps or forks.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use gatehouse_audit::{AuditError, AuditEvent, AuditStore, Checkpoint, GENESIS, Link, link_hash};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// SQLite-backed [`AuditStore`].
pub struct SqliteAudit {
    conn: Mutex<Connection>,
}

fn unavailable(e: rusqlite::Error) -> AuditError {
    AuditError::Unavailable(e.to_string())
}

impl SqliteAudit {
    pub fn open(path: &Path) -> Result<SqliteAudit, AuditError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        // Committed means on disk: a power cut after `append` returns loses nothing.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS audit_events (
                chain TEXT NOT NULL,
                seq INTEGER NOT NULL,
                prev TEXT NOT NULL,
                hash TEXT NOT NULL,
                time_ms INTEGER NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (chain, seq)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS audit_checkpoints (
                chain TEXT NOT NULL,
                seq INTEGER NOT NULL,
                hash TEXT NOT NULL,
                time_ms INTEGER NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (chain, seq)
            ) WITHOUT ROWID;",
        )
        .map_err(unavailable)?;
        Ok(SqliteAudit {
            conn: Mutex::new(conn),
        })
    }
}

/// Which records a query returns; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub principal: Option<String>,
    pub target: Option<String>,
    pub status: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub limit: u64,
}

impl SqliteAudit {
    /// Records matching `q`, oldest first: `(chain, seq, body)`.
    pub fn query(&self, q: &AuditQuery) -> Result<Vec<(String, u64, String)>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn
            .prepare(
                "SELECT chain, seq, body FROM audit_events
                 WHERE (?1 IS NULL OR chain = ?1)
                   AND (?2 IS NULL OR json_extract(body, '$.principal') = ?2)
                   AND (?3 IS NULL OR json_extract(body, '$.target') = ?3)
                   AND (?4 IS NULL OR json_extract(body, '$.status') = ?4)
                   AND (?5 IS NULL OR time_ms >= ?5)
                   AND (?6 IS NULL OR time_ms <= ?6)
                 ORDER BY time_ms, chain, seq LIMIT ?7",
            )
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(
                params![
                    q.tenant,
                    q.principal,
                    q.target,
                    q.status,
                    q.since_ms.map(|t| t as i64),
                    q.until_ms.map(|t| t as i64),
                    q.limit as i64
                ],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)),
            )
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
    }
}

impl AuditStore for SqliteAudit {
    fn append(&self, events: &[AuditEvent]) -> Result<Vec<(String, u64, String)>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let mut heads: std::collections::HashMap<String, (u64, String)> =
            std::collections::HashMap::new();
        {
            let mut head_q = tx
                .prepare_cached(
                    "SELECT seq, hash FROM audit_events WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
                )
                .map_err(unavailable)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO audit_events (chain, seq, prev, hash, time_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(unavailable)?;
            for e in events {
                let chain = e.chain().to_owned();
                let (seq, prev) = match heads.get(&chain) {
                    Some(h) => h.clone(),
                    None => head_q
                        .query_row(params![chain], |r| {
                            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                        })
                        .optional()
                        .map_err(unavailable)?
                        .unwrap_or((0, GENESIS.to_owned())),
                };
                let seq = seq + 1;
                let body = e.body();
                let hash = link_hash(&chain, seq, &prev, &body);
                insert
                    .execute(params![
                        chain,
                        seq as i64,
                        prev,
                        hash,
                        e.time_ms as i64,
                        body
                    ])
                    .map_err(unavailable)?;
                heads.insert(chain, (seq, hash));
            }
        }
        tx.commit().map_err(unavailable)?;
        Ok(heads.into_iter().map(|(c, (s, h))| (c, s, h)).collect())
    }

    fn checkpoint(&self, checkpoints: &[Checkpoint]) -> Result<(), AuditError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction().map_err(unavailable)?;
        for c in checkpoints {
            tx.execute(
                "INSERT OR REPLACE INTO audit_checkpoints (chain, seq, hash, time_ms, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.chain, c.seq as i64, c.hash, c.time_ms as i64, c.signature],
            )
            .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }

    fn checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut q = conn
            .prepare("SELECT chain, seq, hash, time_ms, signature FROM audit_checkpoints WHERE chain = ?1 ORDER BY seq")
            .map_err(unavailable)?;
        let rows = q
            .query_map(params![chain], |r| {
                Ok(Checkpoint {
                    chain: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    hash: r.get(2)?,
                    time_ms: r.get::<_, i64>(3)? as u64,
                    signature: r.get(4)?,
                })
            })
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
    }

    fn links(&self, chain: &str) -> Result<Vec<Link>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut q = conn
            .prepare("SELECT chain, seq, prev, hash, body FROM audit_events WHERE chain = ?1 ORDER BY seq")
            .map_err(unavailable)?;
        let rows = q
            .query_map(params![chain], |r| {
                Ok(Link {
                    chain: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    prev: r.get(2)?,
                    hash: r.get(3)?,
                    body: r.get(4)?,
                })
            })
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
    }

    fn chains(&self) -> Result<Vec<String>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut q = conn
            .prepare("SELECT DISTINCT chain FROM audit_events ORDER BY chain")
            .map_err(unavailable)?;
        let rows = q.query_map([], |r| r.get(0)).map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_audit::{AuditEvent, AuditStore, Tamper, verify_chain};

    use super::SqliteAudit;

    fn event(tenant: &str, n: u64) -> AuditEvent {
        AuditEvent {
            v: 1,
            tenant: tenant.into(),
            method: format!("call {n}"),
            time_ms: n,
            ..AuditEvent::default()
        }
    }

    #[test]
    fn chains_per_tenant_survive_reopening_and_show_tampering() {
        let dir = std::env::temp_dir().join(format!("gatehouse-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("audit.db");
        let _ = std::fs::remove_file(&path);
        {
            let s = SqliteAudit::open(&path).expect("open");
            s.append(&[event("", 1), event("acme", 2), event("", 3)])
                .expect("append");
        }
        let s = SqliteAudit::open(&path).expect("reopen");
        s.append(&[event("", 4)]).expect("append");
        assert_eq!(s.chains().expect("chains"), ["acme", "default"]);
        let links = s.links("default").expect("links");
        assert_eq!(links.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(verify_chain(&links).expect("intact").0, 3);
        // A second process sharing the file continues the same chain.
        let other = SqliteAudit::open(&path).expect("second handle");
        other.append(&[event("", 5)]).expect("append");
        assert_eq!(
            verify_chain(&s.links("default").expect("links"))
                .expect("intact")
                .0,
            4
        );

        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute("UPDATE audit_events SET body = replace(body, 'call 3', 'call 9') WHERE chain = 'default' AND seq = 2", [])
            .expect("tamper");
        assert_eq!(
            verify_chain(&s.links("default").expect("links")),
            Err(Tamper::Altered { seq: 2 })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
