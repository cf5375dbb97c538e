//! The audit chain in SQLite (WAL, `synchronous=FULL`): each append is one immediate
//! transaction that reads each chain's head, links the new events to it and commits, so
//! several processes sharing the file extend the same chains without gaps or forks.
//! Appends nobody waits for commit with `synchronous=NORMAL` (no fsync; the next synced
//! commit flushes the WAL and them with it). The pragma is set only when the level
//! changes, so a run of unsynced appends costs no extra statement each.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use gatehouse_audit::{
    Anchor, AuditError, AuditEvent, AuditStore, Checkpoint, Durability, GENESIS, Link, link_hash,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// SQLite-backed [`AuditStore`].
pub struct SqliteAudit {
    conn: Mutex<Conn>,
}

/// The connection and the `synchronous` level it is at.
struct Conn {
    db: Connection,
    /// `synchronous=NORMAL` (no fsync per commit) is set; FULL otherwise.
    normal: bool,
}

impl Conn {
    /// The connection, its `synchronous` level set for `d` (one PRAGMA, only on change).
    /// Every write goes through here: only [`Durability::Written`] appends run at NORMAL.
    fn at(&mut self, d: Durability) -> Result<&mut Connection, AuditError> {
        let normal = d == Durability::Written;
        if self.normal != normal {
            let level = if normal { "NORMAL" } else { "FULL" };
            self.db
                .pragma_update(None, "synchronous", level)
                .map_err(unavailable)?;
            self.normal = normal;
        }
        Ok(&mut self.db)
    }
}

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.db
    }
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
            -- The explorer's filters and pages (newest first) stay indexed at a million rows.
            CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time_ms, chain, seq);
            CREATE INDEX IF NOT EXISTS audit_events_principal
                ON audit_events (json_extract(body, '$.principal'), time_ms);
            CREATE INDEX IF NOT EXISTS audit_events_target
                ON audit_events (json_extract(body, '$.target'), time_ms);
            CREATE INDEX IF NOT EXISTS audit_events_status
                ON audit_events (json_extract(body, '$.status'), time_ms);
            CREATE TABLE IF NOT EXISTS audit_anchors (
                chain TEXT PRIMARY KEY,
                seq INTEGER NOT NULL,
                hash TEXT NOT NULL,
                time_ms INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS audit_sink_cursors (
                sink TEXT NOT NULL,
                chain TEXT NOT NULL,
                seq INTEGER NOT NULL,
                PRIMARY KEY (sink, chain)
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
            conn: Mutex::new(Conn {
                db: conn,
                normal: false,
            }),
        })
    }
}

/// A stored event not yet delivered to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub chain: String,
    pub seq: u64,
    pub hash: String,
    pub body: String,
}

impl SqliteAudit {
    /// The store is each sink's queue: the events of every chain after the sink's cursor,
    /// oldest first per chain, `limit` in all.
    pub fn pending_for(&self, sink: &str, limit: usize) -> Result<Vec<Pending>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next_chain = conn
            .prepare_cached(
                "SELECT chain FROM audit_events WHERE chain > ?1 ORDER BY chain LIMIT 1",
            )
            .map_err(unavailable)?;
        let mut cursor = conn
            .prepare_cached("SELECT seq FROM audit_sink_cursors WHERE sink = ?1 AND chain = ?2")
            .map_err(unavailable)?;
        let mut after = conn
            .prepare_cached(
                "SELECT seq, hash, body FROM audit_events WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let mut chain = String::new();
        // Each chain found by an index jump, not a scan.
        while out.len() < limit {
            let Some(c) = next_chain
                .query_row(params![chain], |r| r.get::<_, String>(0))
                .optional()
                .map_err(unavailable)?
            else {
                break;
            };
            chain = c;
            let from: i64 = cursor
                .query_row(params![sink, chain], |r| r.get(0))
                .optional()
                .map_err(unavailable)?
                .unwrap_or(0);
            let rows = after
                .query_map(params![chain, from, (limit - out.len()) as i64], |r| {
                    Ok(Pending {
                        chain: chain.clone(),
                        seq: r.get::<_, i64>(0)? as u64,
                        hash: r.get(1)?,
                        body: r.get(2)?,
                    })
                })
                .map_err(unavailable)?;
            for row in rows {
                out.push(row.map_err(unavailable)?);
            }
        }
        Ok(out)
    }

    /// Retention: removes each chain's records older than `cutoff_ms`, up to its newest
    /// signed checkpoint among them, and never past what a sink in `sinks` has not shipped
    /// nor the chain's last record. The pruned head becomes the chain's anchor, so the rest
    /// still verifies (against the checkpoint, with the public key). Returns what was
    /// pruned per chain: `(chain, up to seq)`.
    pub fn prune(
        &self,
        cutoff_ms: u64,
        sinks: &[String],
    ) -> Result<Vec<(String, u64)>, AuditError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .at(Durability::Synced)?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let chains: Vec<String> = {
            let mut q = tx
                .prepare("SELECT DISTINCT chain FROM audit_events")
                .map_err(unavailable)?;
            let rows = q.query_map([], |r| r.get(0)).map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        };
        let mut pruned = Vec::new();
        for chain in chains {
            // The newest checkpointed record older than the cutoff, not the chain's head.
            let mut limit: Option<i64> = tx
                .query_row(
                    "SELECT max(c.seq) FROM audit_checkpoints c JOIN audit_events e
                       ON e.chain = c.chain AND e.seq = c.seq
                     WHERE c.chain = ?1 AND e.time_ms < ?2
                       AND c.seq < (SELECT max(seq) FROM audit_events WHERE chain = ?1)",
                    params![chain, cutoff_ms as i64],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            for sink in sinks {
                let shipped: i64 = tx
                    .query_row(
                        "SELECT seq FROM audit_sink_cursors WHERE sink = ?1 AND chain = ?2",
                        params![sink, chain],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(unavailable)?
                    .unwrap_or(0);
                limit = limit.map(|l| l.min(shipped));
            }
            // Sinks may hold it below the checkpoint: fall back to the checkpoint below.
            let Some(bound) = limit else { continue };
            let upto: Option<i64> = tx
                .query_row(
                    "SELECT max(seq) FROM audit_checkpoints WHERE chain = ?1 AND seq <= ?2",
                    params![chain, bound],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            let Some(upto) = upto.filter(|u| *u > 0) else {
                continue;
            };
            let (hash, time_ms): (String, i64) = tx
                .query_row(
                    "SELECT hash, time_ms FROM audit_events WHERE chain = ?1 AND seq = ?2",
                    params![chain, upto],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(unavailable)?;
            tx.execute(
                "INSERT OR REPLACE INTO audit_anchors (chain, seq, hash, time_ms) VALUES (?1, ?2, ?3, ?4)",
                params![chain, upto, hash, time_ms],
            )
            .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM audit_events WHERE chain = ?1 AND seq <= ?2",
                params![chain, upto],
            )
            .map_err(unavailable)?;
            // Checkpoints of pruned records stay: the anchor's is needed, the others are
            // small and show what existed.
            pruned.push((chain, upto as u64));
        }
        tx.commit().map_err(unavailable)?;
        Ok(pruned)
    }

    /// Moves a sink's cursors past what it delivered (committed before it returns).
    pub fn advance(&self, sink: &str, delivered: &[Pending]) -> Result<(), AuditError> {
        let mut heads: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for p in delivered {
            let h = heads.entry(&p.chain).or_default();
            *h = (*h).max(p.seq);
        }
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .at(Durability::Synced)?
            .transaction()
            .map_err(unavailable)?;
        for (chain, seq) in heads {
            tx.execute(
                "INSERT INTO audit_sink_cursors (sink, chain, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sink, chain) DO UPDATE SET seq = max(seq, excluded.seq)",
                params![sink, chain, seq as i64],
            )
            .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
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
    /// A subject digest: only events whose arguments or result involved that person.
    pub subject: Option<String>,
    /// Newest first instead of oldest first (the console's explorer pages backwards).
    pub newest_first: bool,
    /// Keyset cursor: only records strictly before (newest first) or after (oldest first)
    /// this `(time_ms, chain, seq)`, so a page costs the same at the millionth record.
    pub cursor: Option<(u64, String, u64)>,
}

/// One bound value of a built query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryParam {
    Text(String),
    Int(i64),
}

/// The SQL dialect a query is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl AuditQuery {
    /// `SELECT chain, seq, body, time_ms …` with only the filters set, so each one can use
    /// its index (a `?1 IS NULL OR …` filter never does), and the parameters in order.
    pub(crate) fn sql(&self, table: &str, d: Dialect) -> (String, Vec<QueryParam>) {
        let mut params = Vec::new();
        let mut clauses: Vec<String> = Vec::new();
        let bind = |p: QueryParam, params: &mut Vec<QueryParam>| -> String {
            params.push(p);
            match d {
                Dialect::Sqlite => format!("?{}", params.len()),
                Dialect::Postgres => format!("${}", params.len()),
            }
        };
        let field = |name: &str| match d {
            Dialect::Sqlite => format!("json_extract(body, '$.{name}')"),
            Dialect::Postgres => format!("(body::jsonb ->> '{name}')"),
        };
        if let Some(t) = &self.tenant {
            clauses.push(format!(
                "chain = {}",
                bind(QueryParam::Text(t.clone()), &mut params)
            ));
        }
        for (name, v) in [
            ("principal", &self.principal),
            ("target", &self.target),
            ("status", &self.status),
        ] {
            if let Some(v) = v {
                let b = bind(QueryParam::Text(v.clone()), &mut params);
                clauses.push(format!("{} = {b}", field(name)));
            }
        }
        if let Some(t) = self.since_ms {
            clauses.push(format!(
                "time_ms >= {}",
                bind(QueryParam::Int(t as i64), &mut params)
            ));
        }
        if let Some(t) = self.until_ms {
            clauses.push(format!(
                "time_ms <= {}",
                bind(QueryParam::Int(t as i64), &mut params)
            ));
        }
        if let Some(s) = &self.subject {
            let b = bind(QueryParam::Text(s.clone()), &mut params);
            clauses.push(match d {
                Dialect::Sqlite => format!(
                    "EXISTS (SELECT 1 FROM json_each(body, '$.subjects') WHERE json_each.value = {b})"
                ),
                Dialect::Postgres => format!("(body::jsonb -> 'subjects') ? {b}"),
            });
        }
        if let Some((t, chain, seq)) = &self.cursor {
            let t = bind(QueryParam::Int(*t as i64), &mut params);
            let c = bind(QueryParam::Text(chain.clone()), &mut params);
            let s = bind(QueryParam::Int(*seq as i64), &mut params);
            let op = if self.newest_first { "<" } else { ">" };
            clauses.push(format!("(time_ms, chain, seq) {op} ({t}, {c}, {s})"));
        }
        let order = if self.newest_first {
            "time_ms DESC, chain DESC, seq DESC"
        } else {
            "time_ms, chain, seq"
        };
        let limit = bind(
            QueryParam::Int(self.limit.min(i64::MAX as u64) as i64),
            &mut params,
        );
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (
            format!("SELECT chain, seq, body FROM {table}{filter} ORDER BY {order} LIMIT {limit}"),
            params,
        )
    }
}

impl SqliteAudit {
    /// Records matching `q`, oldest first: `(chain, seq, body)`.
    pub fn query(&self, q: &AuditQuery) -> Result<Vec<(String, u64, String)>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let (sql, params) = q.sql("audit_events", Dialect::Sqlite);
        let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                QueryParam::Text(t) => rusqlite::types::Value::Text(t),
                QueryParam::Int(i) => rusqlite::types::Value::Integer(i),
            })
            .collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values.iter()), |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
            })
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
    }
}

/// One append's transaction: links each event to its chain's head and commits.
fn append_in(
    conn: &mut Connection,
    events: &[AuditEvent],
) -> Result<Vec<(String, u64, String)>, AuditError> {
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

impl AuditStore for SqliteAudit {
    fn append(
        &self,
        events: &[AuditEvent],
        durability: Durability,
    ) -> Result<Vec<(String, u64, String)>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        append_in(conn.at(durability)?, events)
    }

    fn checkpoint(&self, checkpoints: &[Checkpoint]) -> Result<(), AuditError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .at(Durability::Synced)?
            .transaction()
            .map_err(unavailable)?;
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

    fn anchor(&self, chain: &str) -> Result<Option<Anchor>, AuditError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row(
            "SELECT seq, hash FROM audit_anchors WHERE chain = ?1",
            params![chain],
            |r| {
                Ok(Anchor {
                    seq: r.get::<_, i64>(0)? as u64,
                    hash: r.get(1)?,
                })
            },
        )
        .optional()
        .map_err(unavailable)
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
    use gatehouse_audit::{AuditEvent, AuditStore, Durability, Tamper, verify_chain};

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
    fn retention_prunes_to_a_signed_checkpoint_and_the_rest_still_verifies() {
        use gatehouse_audit::{
            Anchor, CheckpointError, Signer, verify_chain_from, verify_checkpoints_from,
        };
        let path = std::env::temp_dir().join(format!("gatehouse-prune-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = SqliteAudit::open(&path).expect("open");
        let (seed, public) = Signer::generate().expect("key");
        let signer = Signer::from_seed(&seed).expect("signer");
        // Ten records at times 1..=10; checkpoints at 4 and 8.
        for n in 1..=10 {
            let heads = s
                .append(&[event("", n)], Durability::Synced)
                .expect("append");
            if n == 4 || n == 8 {
                let (c, seq, h) = &heads[0];
                s.checkpoint(&[signer.sign(c, *seq, h, n)])
                    .expect("checkpoint");
            }
        }
        // A sink that shipped only up to 6 holds retention at the checkpoint below it.
        s.advance("soc", &s.pending_for("soc", 6).expect("pending"))
            .expect("advance");
        let pruned = s.prune(9, &["soc".to_owned()]).expect("prune");
        assert_eq!(pruned, [("default".to_owned(), 4)]);
        let anchor = s.anchor("default").expect("anchor").expect("anchored");
        assert_eq!(anchor.seq, 4);
        let links = s.links("default").expect("links");
        assert_eq!(links.first().map(|l| l.seq), Some(5));
        assert_eq!(
            verify_chain_from(&links, Some(&anchor)).map(|(n, _)| n),
            Ok(10)
        );
        let cps = s.checkpoints("default").expect("checkpoints");
        assert_eq!(
            verify_checkpoints_from(&links, &cps, &public, Some(&anchor)),
            Ok(2)
        );
        // Without the anchor the remainder does not verify; a forged anchor is caught.
        assert!(verify_chain_from(&links, None).is_err());
        let forged = Anchor {
            seq: 4,
            hash: "0".repeat(64),
        };
        assert!(verify_chain_from(&links, Some(&forged)).is_err());
        let moved = Anchor {
            seq: 5,
            hash: links[0].hash.clone(),
        };
        assert_eq!(
            verify_checkpoints_from(&links[1..], &cps, &public, Some(&moved)),
            Err(CheckpointError::UnsignedAnchor { seq: 5 })
        );
        // With every sink caught up, retention reaches the newer checkpoint; never the head.
        s.advance("soc", &s.pending_for("soc", 100).expect("pending"))
            .expect("advance");
        assert_eq!(
            s.prune(100, &["soc".to_owned()]).expect("prune"),
            [("default".to_owned(), 8)]
        );
        assert_eq!(s.links("default").expect("links").len(), 2);
        assert!(
            s.prune(100, &[]).expect("prune").is_empty(),
            "no newer checkpoint below the head"
        );
    }

    #[test]
    fn pages_newest_first_by_cursor_and_filters_use_their_index() {
        let path = std::env::temp_dir().join(format!("gatehouse-page-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = SqliteAudit::open(&path).expect("open");
        for n in 1..=25 {
            let mut e = event("", n);
            e.principal = if n % 5 == 0 { "corp/alice" } else { "corp/bob" }.into();
            s.append(&[e], Durability::Written).expect("append");
        }
        let mut q = super::AuditQuery {
            limit: 10,
            newest_first: true,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = s.query(&q).expect("query");
            let Some(last) = page.last() else { break };
            let body: serde_json::Value = serde_json::from_str(&last.2).expect("json");
            q.cursor = Some((
                body["time_ms"].as_u64().expect("time"),
                last.0.clone(),
                last.1,
            ));
            seen.extend(page.iter().map(|r| r.1));
        }
        // Three pages, every record once, newest first.
        assert_eq!(seen, (1..=25).rev().collect::<Vec<u64>>());
        q = super::AuditQuery {
            principal: Some("corp/alice".into()),
            limit: 100,
            ..Default::default()
        };
        let alice: Vec<u64> = s.query(&q).expect("query").iter().map(|r| r.1).collect();
        assert_eq!(alice, [5, 10, 15, 20, 25]);
        // The filter reaches its expression index rather than scanning every record.
        let (sql, params) = q.sql("audit_events", super::Dialect::Sqlite);
        let conn = s.conn.lock().expect("lock");
        let plan: Vec<String> = conn
            .db
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan")
            .query_map(
                rusqlite::params_from_iter(params.iter().map(|p| match p {
                    super::QueryParam::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    super::QueryParam::Int(i) => rusqlite::types::Value::Integer(*i),
                })),
                |r| r.get::<_, String>(3),
            )
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter().any(|l| l.contains("audit_events_principal")),
            "{plan:?}"
        );
        drop(conn);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn only_unsynced_appends_run_without_fsync_and_the_level_is_set_on_change_only() {
        let path = std::env::temp_dir().join(format!("gatehouse-sync-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = SqliteAudit::open(&path).unwrap();
        let level = |s: &SqliteAudit| -> i64 {
            let c = s.conn.lock().unwrap();
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(level(&s), 2, "FULL at open");
        s.append(&[event("", 1)], Durability::Written).unwrap();
        assert_eq!(level(&s), 1, "NORMAL for an unsynced append");
        s.append(&[event("", 2)], Durability::Written).unwrap();
        assert_eq!(level(&s), 1);
        // Every other write is synced, whatever ran before it.
        s.checkpoint(&[]).unwrap();
        assert_eq!(level(&s), 2, "FULL again for a checkpoint");
        s.append(&[event("", 3)], Durability::Written).unwrap();
        s.advance("siem", &[]).unwrap();
        assert_eq!(level(&s), 2, "FULL for a sink cursor");
        s.append(&[event("", 4)], Durability::Written).unwrap();
        s.append(&[event("", 5)], Durability::Synced).unwrap();
        assert_eq!(level(&s), 2);
        let chains = s.chains().unwrap();
        let stored: usize = chains.iter().map(|c| s.links(c).unwrap().len()).sum();
        assert_eq!(stored, 5);
        drop(s);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn sinks_read_their_own_cursor_per_chain() {
        let path = std::env::temp_dir().join(format!("gatehouse-sinkq-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = SqliteAudit::open(&path).expect("open");
        s.append(
            &[
                event("", 1),
                event("acme", 2),
                event("", 3),
                event("beta", 4),
            ],
            Durability::Written,
        )
        .expect("append");
        let all = s.pending_for("syslog", 100).expect("pending");
        assert_eq!(all.len(), 4);
        let first = s.pending_for("syslog", 2).expect("pending");
        assert_eq!(first.len(), 2);
        s.advance("syslog", &first).expect("advance");
        let rest = s.pending_for("syslog", 100).expect("pending");
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|p| !first.contains(p)));
        // Another sink has its own cursor; advancing backwards does nothing.
        assert_eq!(s.pending_for("webhook", 100).expect("pending").len(), 4);
        s.advance("syslog", &rest).expect("advance");
        s.advance("syslog", &first).expect("advance");
        assert!(s.pending_for("syslog", 100).expect("pending").is_empty());
        // New events appear after the cursor.
        s.append(&[event("acme", 5)], Durability::Synced)
            .expect("append");
        let next = s.pending_for("syslog", 100).expect("pending");
        assert_eq!(
            next.iter()
                .map(|p| (p.chain.as_str(), p.seq))
                .collect::<Vec<_>>(),
            [("acme", 2)]
        );
    }

    #[test]
    fn chains_per_tenant_survive_reopening_and_show_tampering() {
        let dir = std::env::temp_dir().join(format!("gatehouse-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("audit.db");
        let _ = std::fs::remove_file(&path);
        {
            let s = SqliteAudit::open(&path).expect("open");
            s.append(
                &[event("", 1), event("acme", 2), event("", 3)],
                Durability::Written,
            )
            .expect("append");
        }
        let s = SqliteAudit::open(&path).expect("reopen");
        s.append(&[event("", 4)], Durability::Synced)
            .expect("append");
        assert_eq!(s.chains().expect("chains"), ["acme", "default"]);
        let links = s.links("default").expect("links");
        assert_eq!(links.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(verify_chain(&links).expect("intact").0, 3);
        // A second process sharing the file continues the same chain.
        let other = SqliteAudit::open(&path).expect("second handle");
        other
            .append(&[event("", 5)], Durability::Written)
            .expect("append");
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
