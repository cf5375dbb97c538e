//! Gatehouse's state in PostgreSQL, for clusters (the schema and its migrations, the
//! connection) and the audit chain there: the same records, hashes and guarantees as
//! SQLite. Each append is one transaction holding a per-chain advisory lock, so any number
//! of gateways extend the same chains without gaps or forks. The schema is versioned and
//! migrated on open. The client is synchronous and connects on first use, from the calling
//! (blocking) thread.

use std::sync::{Mutex, PoisonError};

use gatehouse_audit::{
    Anchor, AuditError, AuditEvent, AuditStore, Checkpoint, Durability, GENESIS, Link, link_hash,
};
use postgres::{Client, NoTls};

use crate::audit::{AuditQuery, Dialect, QueryParam};

/// Schema migrations, applied in order once each.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS gatehouse_audit_events (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX IF NOT EXISTS gatehouse_audit_events_time ON gatehouse_audit_events (time_ms);
CREATE TABLE IF NOT EXISTS gatehouse_audit_checkpoints (
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS gatehouse_audit_anchors (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    time_ms BIGINT NOT NULL
);
",
    "
CREATE TABLE IF NOT EXISTS gatehouse_audit_sink_cursors (
    sink TEXT NOT NULL,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (sink, chain)
);
",
    "
CREATE TABLE IF NOT EXISTS gatehouse_approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_digest TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gatehouse_approvals_call ON gatehouse_approvals (principal, tenant, tool, args_digest);
CREATE INDEX IF NOT EXISTS gatehouse_approvals_status ON gatehouse_approvals (status, created_ms);
",
    "
CREATE TABLE IF NOT EXISTS gatehouse_directory_users (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL UNIQUE,
    external_id TEXT,
    active BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_directory_revoked (
    subject TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_directory_groups (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL UNIQUE,
    external_id TEXT
);
CREATE TABLE IF NOT EXISTS gatehouse_directory_members (
    group_id TEXT NOT NULL REFERENCES gatehouse_directory_groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES gatehouse_directory_users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE TABLE IF NOT EXISTS gatehouse_directory_version (
    id INT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO gatehouse_directory_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;
",
    // v5: the authorization-server façade (see pg_oauth.rs).
    "
CREATE TABLE IF NOT EXISTS gatehouse_oauth_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT,
    redirect_uris TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    secret_hash TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_oauth_logins (
    key TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    client_state TEXT,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    idp_verifier TEXT NOT NULL,
    connect TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_oauth_codes (
    key TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    claims TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    family TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE IF NOT EXISTS gatehouse_oauth_refresh (
    hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    client_id TEXT NOT NULL,
    claims TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS gatehouse_oauth_refresh_family ON gatehouse_oauth_refresh (family);
CREATE TABLE IF NOT EXISTS gatehouse_oauth_revoked_families (
    family TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_oauth_upstream_tokens (
    principal TEXT NOT NULL,
    upstream TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (principal, upstream)
);
",
    // v6: API keys shared by replicas (see pg_keys.rs).
    "
CREATE TABLE IF NOT EXISTS gatehouse_api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    principal TEXT NOT NULL,
    app TEXT NOT NULL,
    tenant TEXT,
    roles TEXT NOT NULL,
    servers TEXT NOT NULL,
    tools TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    rotated_from TEXT
);
CREATE TABLE IF NOT EXISTS gatehouse_api_keys_version (
    id INT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO gatehouse_api_keys_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;
",
    // v7: tool and prompt pins shared by replicas (see pg_pins.rs).
    "
CREATE TABLE IF NOT EXISTS gatehouse_pins (
    upstream TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    proposed_hash TEXT NOT NULL,
    proposed TEXT NOT NULL,
    findings TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    decided_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (upstream, kind, name)
);
",
    // v8: the console's audit explorer: filters and newest-first pages stay indexed.
    "
CREATE INDEX IF NOT EXISTS gatehouse_audit_events_page ON gatehouse_audit_events (time_ms, chain, seq);
CREATE INDEX IF NOT EXISTS gatehouse_audit_events_principal
    ON gatehouse_audit_events ((body::jsonb ->> 'principal'), time_ms);
CREATE INDEX IF NOT EXISTS gatehouse_audit_events_target
    ON gatehouse_audit_events ((body::jsonb ->> 'target'), time_ms);
CREATE INDEX IF NOT EXISTS gatehouse_audit_events_status
    ON gatehouse_audit_events ((body::jsonb ->> 'status'), time_ms);
",
];

/// PostgreSQL-backed [`AuditStore`], and the connection pool every PostgreSQL store uses:
/// up to [`POOL_SIZE`] connections (TLS when the connection string asks for it, see
/// `pg_tls`), each checked out by one call at a time; a broken one is dropped and the next
/// call connects anew.
pub struct PgAudit {
    target: Result<crate::pg_tls::Target, String>,
    idle: Mutex<Vec<Client>>,
    /// Connections open (idle or checked out), and a wake-up for callers waiting for one.
    open: Mutex<usize>,
    freed: std::sync::Condvar,
}

/// Most connections one store holds.
pub(crate) const POOL_SIZE: usize = 8;
/// How long a call waits for a free connection before the store reports itself unavailable.
const CHECKOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for PgAudit {
    /// The synchronous client cannot be dropped on an async worker (it shuts down a runtime
    /// of its own), and a store's last owner may be one (a gateway dropped by its last
    /// connection task): idle connections are closed on a thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("gatehouse-pg-close".into())
                .spawn(move || drop(idle));
        }
    }
}

impl std::fmt::Debug for PgAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgAudit")
    }
}

fn unavailable(e: impl std::fmt::Display) -> AuditError {
    AuditError::Unavailable(e.to_string())
}

/// PostgreSQL's own message, not just "db error".
fn pg(e: postgres::Error) -> AuditError {
    match e.as_db_error() {
        Some(d) => {
            AuditError::Unavailable(format!("PostgreSQL: {} ({})", d.message(), d.code().code()))
        }
        None => AuditError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

impl PgAudit {
    /// Does not connect: the first call does, on its own thread (never an async one).
    pub fn new(url: &str) -> PgAudit {
        PgAudit {
            target: crate::pg_tls::target(url),
            idle: Mutex::new(Vec::new()),
            open: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        }
    }

    /// A connected, migrated client: an idle one, a new one while fewer than
    /// [`POOL_SIZE`] are open, or the first one freed within [`CHECKOUT_WAIT`].
    fn checkout(&self) -> Result<Client, AuditError> {
        loop {
            if let Some(c) = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
            {
                if !c.is_closed() {
                    return Ok(c);
                }
                self.release_slot();
                continue;
            }
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if *open < POOL_SIZE {
                *open += 1;
                drop(open);
                return self.connect().inspect_err(|_| self.release_slot());
            }
            let (guard, waited) = self
                .freed
                .wait_timeout(open, CHECKOUT_WAIT)
                .unwrap_or_else(PoisonError::into_inner);
            drop(guard);
            if waited.timed_out() {
                return Err(unavailable("PostgreSQL: every pooled connection is busy"));
            }
        }
    }

    fn connect(&self) -> Result<Client, AuditError> {
        let target = self.target.as_ref().map_err(unavailable)?;
        let mut c = match &target.tls {
            Some(tls) => target.config.connect(tls.clone()),
            None => target.config.connect(NoTls),
        }
        .map_err(pg)?;
        migrate(&mut c).map_err(pg)?;
        Ok(c)
    }

    fn release_slot(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open = open.saturating_sub(1);
        self.freed.notify_one();
    }

    /// Runs `f` with a pooled, connected, migrated client; a broken connection is dropped
    /// so a later call connects anew.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, AuditError> {
        let mut client = self.checkout()?;
        let out = f(&mut client);
        if client.is_closed() {
            drop(client);
            self.release_slot();
        } else {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(client);
            self.freed.notify_one();
        }
        out.map_err(pg)
    }

    /// Runs `f` as [`PgAudit::with`] does, on a thread of its own, for stores called from
    /// async workers (the synchronous client must never run on one). `what` names the store
    /// in the error when the thread itself fails.
    pub(crate) fn on_own_thread<T: Send>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, crate::StoreError> {
        std::thread::scope(|s| {
            s.spawn(|| self.with(f))
                .join()
                .unwrap_or_else(|_| Err(unavailable(format!("{what} thread failed"))))
        })
        .map_err(|e| {
            let AuditError::Unavailable(m) = e;
            crate::StoreError::Unavailable(m)
        })
    }

    /// Records matching `q`, oldest first: `(chain, seq, body)` (as `SqliteAudit::query`).
    pub fn query(&self, q: &AuditQuery) -> Result<Vec<(String, u64, String)>, AuditError> {
        let (sql, params) = q.sql("gatehouse_audit_events", Dialect::Postgres);
        self.with(|c| {
            let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                .into_iter()
                .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                    match p {
                        QueryParam::Text(t) => Box::new(t),
                        QueryParam::Int(i) => Box::new(i),
                    }
                })
                .collect();
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                values.iter().map(|v| v.as_ref()).collect();
            let rows = c.query(&sql, &refs)?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64, r.get(2)))
                .collect())
        })
    }
}

impl PgAudit {
    /// As `SqliteAudit::pending_for`: the events after a sink's cursors, `limit` in all.
    pub fn pending_for(&self, sink: &str, limit: usize) -> Result<Vec<crate::Pending>, AuditError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT e.chain, e.seq, e.hash, e.body FROM gatehouse_audit_events e
                 LEFT JOIN gatehouse_audit_sink_cursors s ON s.sink = $1 AND s.chain = e.chain
                 WHERE e.seq > coalesce(s.seq, 0)
                 ORDER BY e.chain, e.seq LIMIT $2",
                &[&sink, &(limit as i64)],
            )?;
            Ok(rows
                .iter()
                .map(|r| crate::Pending {
                    chain: r.get(0),
                    seq: r.get::<_, i64>(1) as u64,
                    hash: r.get(2),
                    body: r.get(3),
                })
                .collect())
        })
    }

    /// As `SqliteAudit::advance`.
    pub fn advance(&self, sink: &str, delivered: &[crate::Pending]) -> Result<(), AuditError> {
        let mut heads: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for p in delivered {
            let h = heads.entry(&p.chain).or_default();
            *h = (*h).max(p.seq as i64);
        }
        self.with(|c| {
            let mut tx = c.transaction()?;
            for (chain, seq) in &heads {
                tx.execute(
                    "INSERT INTO gatehouse_audit_sink_cursors (sink, chain, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (sink, chain) DO UPDATE SET seq = greatest(gatehouse_audit_sink_cursors.seq, excluded.seq)",
                    &[&sink, chain, seq],
                )?;
            }
            tx.commit()
        })
    }

    /// As `SqliteAudit::prune`: to each chain's newest signed checkpoint older than the
    /// cutoff, never past a sink's cursor nor the chain's last record.
    pub fn prune(
        &self,
        cutoff_ms: u64,
        sinks: &[String],
    ) -> Result<Vec<(String, u64)>, AuditError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let chains: Vec<String> = tx
                .query("SELECT DISTINCT chain FROM gatehouse_audit_events", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut pruned = Vec::new();
            for chain in chains {
                tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7272))", &[&chain])?;
                let mut bound: Option<i64> = tx
                    .query_one(
                        "SELECT max(c.seq) FROM gatehouse_audit_checkpoints c JOIN gatehouse_audit_events e
                           ON e.chain = c.chain AND e.seq = c.seq
                         WHERE c.chain = $1 AND e.time_ms < $2
                           AND c.seq < (SELECT max(seq) FROM gatehouse_audit_events WHERE chain = $1)",
                        &[&chain, &(cutoff_ms as i64)],
                    )?
                    .get(0);
                for sink in sinks {
                    let shipped: i64 = tx
                        .query_opt(
                            "SELECT seq FROM gatehouse_audit_sink_cursors WHERE sink = $1 AND chain = $2",
                            &[sink, &chain],
                        )?
                        .map_or(0, |r| r.get(0));
                    bound = bound.map(|b| b.min(shipped));
                }
                let Some(bound) = bound else { continue };
                let upto: Option<i64> = tx
                    .query_one(
                        "SELECT max(seq) FROM gatehouse_audit_checkpoints WHERE chain = $1 AND seq <= $2",
                        &[&chain, &bound],
                    )?
                    .get(0);
                let Some(upto) = upto.filter(|u| *u > 0) else { continue };
                let head = tx.query_one(
                    "SELECT hash, time_ms FROM gatehouse_audit_events WHERE chain = $1 AND seq = $2",
                    &[&chain, &upto],
                )?;
                let (hash, time_ms): (String, i64) = (head.get(0), head.get(1));
                tx.execute(
                    "INSERT INTO gatehouse_audit_anchors (chain, seq, hash, time_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, time_ms = excluded.time_ms",
                    &[&chain, &upto, &hash, &time_ms],
                )?;
                tx.execute(
                    "DELETE FROM gatehouse_audit_events WHERE chain = $1 AND seq <= $2",
                    &[&chain, &upto],
                )?;
                pruned.push((chain, upto as u64));
            }
            tx.commit()?;
            Ok(pruned)
        })
    }
}

fn migrate(c: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    // One migrator at a time across gateways starting together (concurrent `CREATE TABLE
    // IF NOT EXISTS` can still collide in PostgreSQL).
    tx.execute("SELECT pg_advisory_xact_lock(727247001)", &[])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS gatehouse_schema_migrations (version INT PRIMARY KEY)",
    )?;
    let done: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM gatehouse_schema_migrations",
            &[],
        )?
        .get(0);
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version > done {
            tx.batch_execute(m)?;
            tx.execute(
                "INSERT INTO gatehouse_schema_migrations (version) VALUES ($1)",
                &[&version],
            )?;
        }
    }
    tx.commit()
}

impl AuditStore for PgAudit {
    fn append(
        &self,
        events: &[AuditEvent],
        durability: Durability,
    ) -> Result<Vec<(String, u64, String)>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| {
            let mut tx = c.transaction()?;
            if durability == Durability::Written {
                // This transaction only: the server acknowledges before its WAL flush.
                tx.batch_execute("SET LOCAL synchronous_commit TO OFF")?;
            }
            let mut heads: std::collections::HashMap<String, (u64, String)> =
                std::collections::HashMap::new();
            // Lock chains in one order: two gateways appending to the same chains never
            // deadlock.
            let mut chains: Vec<&str> = events.iter().map(AuditEvent::chain).collect();
            chains.sort_unstable();
            chains.dedup();
            for chain in chains {
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 7272))",
                    &[&chain],
                )?;
                let head = tx.query_opt(
                    "SELECT seq, hash FROM gatehouse_audit_events WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
                    &[&chain],
                )?;
                let head = match head {
                    Some(r) => (r.get::<_, i64>(0) as u64, r.get::<_, String>(1)),
                    None => {
                        // A chain pruned to its anchor continues from it.
                        match tx.query_opt(
                            "SELECT seq, hash FROM gatehouse_audit_anchors WHERE chain = $1",
                            &[&chain],
                        )? {
                            Some(a) => (a.get::<_, i64>(0) as u64, a.get::<_, String>(1)),
                            None => (0, GENESIS.to_owned()),
                        }
                    }
                };
                heads.insert(chain.to_owned(), head);
            }
            // One statement for the whole group: a round trip per group, not per event.
            let n = events.len();
            let (mut chains, mut seqs, mut prevs, mut hashes, mut times, mut bodies) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in events {
                let chain = e.chain();
                let Some((seq, prev)) = heads.get(chain).cloned() else {
                    continue;
                };
                let seq = seq + 1;
                let body = e.body();
                let hash = link_hash(chain, seq, &prev, &body);
                heads.insert(chain.to_owned(), (seq, hash.clone()));
                chains.push(chain.to_owned());
                seqs.push(seq as i64);
                prevs.push(prev);
                hashes.push(hash);
                times.push(e.time_ms as i64);
                bodies.push(body);
            }
            tx.execute(
                "INSERT INTO gatehouse_audit_events (chain, seq, prev, hash, time_ms, body)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])",
                &[&chains, &seqs, &prevs, &hashes, &times, &bodies],
            )?;
            tx.commit()?;
            Ok(heads.into_iter().map(|(c, (s, h))| (c, s, h)).collect())
        })
    }

    fn checkpoint(&self, checkpoints: &[Checkpoint]) -> Result<(), AuditError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            for cp in checkpoints {
                tx.execute(
                    "INSERT INTO gatehouse_audit_checkpoints (chain, seq, hash, time_ms, signature) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (chain, seq) DO UPDATE SET hash = excluded.hash, time_ms = excluded.time_ms, signature = excluded.signature",
                    &[&cp.chain, &(cp.seq as i64), &cp.hash, &(cp.time_ms as i64), &cp.signature],
                )?;
            }
            tx.commit()
        })
    }

    fn checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, AuditError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT chain, seq, hash, time_ms, signature FROM gatehouse_audit_checkpoints WHERE chain = $1 ORDER BY seq",
                &[&chain],
            )?;
            Ok(rows
                .iter()
                .map(|r| Checkpoint {
                    chain: r.get(0),
                    seq: r.get::<_, i64>(1) as u64,
                    hash: r.get(2),
                    time_ms: r.get::<_, i64>(3) as u64,
                    signature: r.get(4),
                })
                .collect())
        })
    }

    fn links(&self, chain: &str) -> Result<Vec<Link>, AuditError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT chain, seq, prev, hash, body FROM gatehouse_audit_events WHERE chain = $1 ORDER BY seq",
                &[&chain],
            )?;
            Ok(rows
                .iter()
                .map(|r| Link {
                    chain: r.get(0),
                    seq: r.get::<_, i64>(1) as u64,
                    prev: r.get(2),
                    hash: r.get(3),
                    body: r.get(4),
                })
                .collect())
        })
    }

    fn chains(&self) -> Result<Vec<String>, AuditError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT DISTINCT chain FROM gatehouse_audit_events ORDER BY chain",
                &[],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn anchor(&self, chain: &str) -> Result<Option<Anchor>, AuditError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT seq, hash FROM gatehouse_audit_anchors WHERE chain = $1",
                &[&chain],
            )?
            .map(|r| Anchor {
                seq: r.get::<_, i64>(0) as u64,
                hash: r.get(1),
            }))
        })
    }
}

/// Against the PostgreSQL on this machine (127.0.0.1:5432, trust; `scripts/test` starts
/// one when missing), in a database of their own.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests;
