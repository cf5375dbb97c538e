//! The audit chain in SQLite (WAL, `synchronous=FULL`): each append is one immediate
//! transaction that reads each chain's head, links the new events to it and commits, so
//! several processes sharing the file extend the same chains without gaps or forks. A
//! connection keeps the heads it committed and reads them again only when the file's
//! `data_version` shows another connection's commit since.
//! Appends nobody waits for commit with `synchronous=NORMAL` (no fsync; the next synced
//! commit flushes the WAL and them with it). The pragma is set only when the level
//! changes, so a run of unsynced appends costs no extra statement each.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use gatehouse_audit::{
    Anchor, AuditError, AuditEvent, AuditStore, Checkpoint, Durability, GENESIS, Link, link_hash,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use checkpointer::Checkpointer;

mod checkpointer;

/// SQLite-backed [`AuditStore`].
pub struct SqliteAudit {
    conn: Arc<Mutex<Conn>>,
    /// Moves the log into the database file off the commit path (`None`: SQLite's
    /// automatic checkpoint does, inside commits).
    _checkpointer: Option<Checkpointer>,
}

/// The connection and the `synchronous` level it is at.
struct Conn {
    db: Connection,
    /// `synchronous=NORMAL` (no fsync per commit) is set; FULL otherwise.
    normal: bool,
    /// Each chain's head as this connection last committed it, valid while the file's
    /// `data_version` is `version` (no other connection committed since).
    heads: Heads,
}

/// Chain heads this connection wrote: an append reads a head from the table only when
/// another connection (a process sharing the file, pruning) committed since.
#[derive(Default)]
struct Heads {
    version: Option<i64>,
    by_chain: std::collections::HashMap<String, (u64, String)>,
}

/// Chains whose heads are kept, at most (a chain is a tenant).
const MAX_CACHED_HEADS: usize = 4096;

impl Conn {
    /// The connection, its `synchronous` level set for `d` (one PRAGMA, only on change),
    /// for every write but an append (pruning, sink cursors, checkpoints): the cached
    /// heads are dropped, as such a write may move them. Appends set the level alone
    /// ([`Conn::level`]) and keep them; only [`Durability::Written`] appends run at NORMAL.
    fn at(&mut self, d: Durability) -> Result<&mut Connection, AuditError> {
        self.heads = Heads::default();
        self.level(d)?;
        Ok(&mut self.db)
    }

    /// Sets `synchronous` for `d` when it differs from the current level.
    fn level(&mut self, d: Durability) -> Result<(), AuditError> {
        let normal = d == Durability::Written;
        if self.normal != normal {
            let level = if normal { "NORMAL" } else { "FULL" };
            self.db
                .pragma_update(None, "synchronous", level)
                .map_err(unavailable)?;
            self.normal = normal;
        }
        Ok(())
    }
}

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.db
    }
}

/// How long a write waits for another process's write to the same file.
const BUSY: std::time::Duration = std::time::Duration::from_secs(5);

fn unavailable(e: rusqlite::Error) -> AuditError {
    AuditError::Unavailable(e.to_string())
}

impl SqliteAudit {
    /// The store, for reading and occasional writes (queries, pruning, the CLI): commits
    /// checkpoint the log as SQLite does by default.
    pub fn open(path: &Path) -> Result<SqliteAudit, AuditError> {
        Self::open_with(path, None)
    }

    /// The store for the gateway's audit writer, whose commits requests wait for: the log
    /// is checkpointed by a thread of its own (`checkpointer.rs`), never inside a commit.
    pub fn open_writer(path: &Path) -> Result<SqliteAudit, AuditError> {
        Self::open_with(path, Some(checkpointer::DEFAULT))
    }

    /// `open`, and with `bounds` the log checkpointed off the commit path within them.
    fn open_with(
        path: &Path,
        bounds: Option<checkpointer::Bounds>,
    ) -> Result<SqliteAudit, AuditError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        // Committed means on disk: a power cut after `append` returns loses nothing.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.busy_timeout(BUSY).map_err(unavailable)?;
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
        if bounds.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(unavailable)?;
        }
        let conn = Arc::new(Mutex::new(Conn {
            db: conn,
            normal: false,
            heads: Heads::default(),
        }));
        let checkpointer = bounds.and_then(|b| Checkpointer::start(path, b, &conn));
        if bounds.is_some() && checkpointer.is_none() {
            // No thread of its own: commits checkpoint, as SQLite does by default.
            conn.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .db
                .pragma_update(None, "wal_autocheckpoint", 1000)
                .map_err(unavailable)?;
        }
        Ok(SqliteAudit {
            conn,
            _checkpointer: checkpointer,
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
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
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
/// Appends in one transaction. Without `wait`, a file another connection is writing is
/// not waited for: `None`, nothing written.
fn append_in(
    conn: &mut Conn,
    durability: Durability,
    events: &[AuditEvent],
    wait: bool,
) -> Option<Result<gatehouse_audit::NewHeads, AuditError>> {
    if let Err(e) = conn.level(durability) {
        return Some(Err(e));
    }
    let Conn { db, heads, .. } = conn;
    // Statements prepared once: a transaction's BEGIN and COMMIT parsed per append
    // cost more than the insert.
    let begin = |db: &Connection| {
        db.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
    };
    let begun = if wait {
        begin(db)
    } else {
        // SQLite's busy handler is what waits: off for this one statement.
        if let Err(e) = db.busy_timeout(std::time::Duration::ZERO) {
            return Some(Err(unavailable(e)));
        }
        let begun = begin(db);
        if let Err(e) = db.busy_timeout(BUSY) {
            if begun.is_ok() {
                let _ = db.execute_batch("ROLLBACK");
            }
            return Some(Err(unavailable(e)));
        }
        if let Err(rusqlite::Error::SqliteFailure(f, _)) = &begun
            && matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        {
            return None;
        }
        begun
    };
    if let Err(e) = begun {
        return Some(Err(unavailable(e)));
    }
    let result = append_locked(db, heads, events).and_then(|new| {
        db.prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(unavailable)?;
        Ok(new)
    });
    match result {
        Ok((version, new)) => {
            if heads.by_chain.len() + new.len() > MAX_CACHED_HEADS {
                heads.by_chain.clear();
            }
            heads.version = Some(version);
            heads
                .by_chain
                .extend(new.iter().map(|(c, s, h)| (c.clone(), (*s, h.clone()))));
            Some(Ok(new))
        }
        Err(e) => {
            *heads = Heads::default();
            if !db.is_autocommit() {
                let _ = db.execute_batch("ROLLBACK");
            }
            Some(Err(e))
        }
    }
}

/// Each appended chain's new head: (chain, seq, hash).
type NewHeads = Vec<(String, u64, String)>;

/// Inside the write transaction: links `events` to their chains' heads and inserts them;
/// the file's `data_version` and the new heads.
fn append_locked(
    db: &Connection,
    cached: &Heads,
    events: &[AuditEvent],
) -> Result<(i64, NewHeads), AuditError> {
    // Another connection's commit since ours changes the version: the cache is stale.
    let version: i64 = db
        .prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(unavailable)?;
    let valid = cached.version == Some(version);
    let mut heads: std::collections::HashMap<String, (u64, String)> =
        std::collections::HashMap::new();
    let mut head_q = db
        .prepare_cached(
            "SELECT seq, hash FROM audit_events WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .map_err(unavailable)?;
    let mut insert = db
        .prepare_cached(
            "INSERT INTO audit_events (chain, seq, prev, hash, time_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(unavailable)?;
    for e in events {
        let chain = e.chain();
        let (seq, prev) = match heads
            .get(chain)
            .or_else(|| valid.then(|| cached.by_chain.get(chain)).flatten())
        {
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
        let hash = link_hash(chain, seq, &prev, &body);
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
        heads.insert(chain.to_owned(), (seq, hash));
    }
    Ok((
        version,
        heads.into_iter().map(|(c, (s, h))| (c, s, h)).collect(),
    ))
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
        append_in(&mut conn, durability, events, true)
            .unwrap_or_else(|| Err(AuditError::Unavailable("the audit store is busy".into())))
    }

    /// Not while this store's connection is in use (the writer's commit, the log
    /// checkpointer's rewind) or another connection holds the file's write lock.
    fn try_append(
        &self,
        events: &[AuditEvent],
        durability: Durability,
    ) -> Option<Result<gatehouse_audit::NewHeads, AuditError>> {
        if events.is_empty() {
            return Some(Ok(Vec::new()));
        }
        let mut conn = match self.conn.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        append_in(&mut conn, durability, events, false)
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
mod tests;
