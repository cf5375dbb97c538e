//! Gatehouse's durable state, behind traits whose docs state their guarantees, with an
//! in-memory implementation for tests, SQLite (the embedded default) for real use, and
//! PostgreSQL for a cluster's shared state; [`Backend`] is the one place that picks.

mod approvals;
mod audit;
mod directory;
mod factory;
mod keys;
mod oauth;
mod pg_approvals;
mod pg_audit;
mod pg_directory;
mod pg_keys;
mod pg_oauth;
mod pg_pins;
mod pg_tls;
pub use pg_tls::ping as ping_postgres;
mod pins;

pub use approvals::{
    ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore, DecideError, SqliteApprovals,
};
pub use audit::{AuditQuery, Pending, SqliteAudit};
pub use directory::{
    DirectoryGroup, DirectoryStore, DirectoryUser, MemoryDirectory, SqliteDirectory,
};
pub use factory::Backend;
pub use keys::{ApiKeyRecord, ApiKeyStore, MemoryKeyStore, SqliteKeyStore, StoreError};
pub use oauth::{
    CodeGrant, OAuthClient, OAuthStore, PendingLogin, Redeem, RefreshRecord, SqliteOAuth,
};
pub use pg_approvals::PgApprovals;
pub use pg_audit::PgAudit;
pub use pg_directory::PgDirectory;
pub use pg_keys::PgKeyStore;
pub use pg_oauth::PgOAuth;
pub use pg_pins::PgPins;
pub use pins::{
    Observed, PinDecideError, PinDecision, PinRecord, PinStatus, PinStore, Sighting, SqlitePins,
};

/// The audit store a config names: SQLite (the default) or PostgreSQL.
pub enum AnyAudit {
    Sqlite(SqliteAudit),
    Postgres(Box<PgAudit>),
}

impl std::fmt::Debug for AnyAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyAudit::Sqlite(_) => "AnyAudit(SQLite)",
            AnyAudit::Postgres(_) => "AnyAudit(PostgreSQL)",
        })
    }
}

impl AnyAudit {
    /// PostgreSQL when `postgres` is set (connecting on first use), else the SQLite file.
    pub fn open(
        sqlite: &std::path::Path,
        postgres: Option<&str>,
    ) -> Result<AnyAudit, gatehouse_audit::AuditError> {
        Ok(match postgres {
            Some(url) => AnyAudit::Postgres(Box::new(PgAudit::new(url))),
            None => AnyAudit::Sqlite(SqliteAudit::open(sqlite)?),
        })
    }

    pub fn query(
        &self,
        q: &AuditQuery,
    ) -> Result<Vec<(String, u64, String)>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.query(q),
            AnyAudit::Postgres(p) => p.query(q),
        }
    }

    /// The events after a sink's cursors (the store is each sink's queue).
    pub fn pending_for(
        &self,
        sink: &str,
        limit: usize,
    ) -> Result<Vec<Pending>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.pending_for(sink, limit),
            AnyAudit::Postgres(p) => p.pending_for(sink, limit),
        }
    }

    pub fn advance(
        &self,
        sink: &str,
        delivered: &[Pending],
    ) -> Result<(), gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.advance(sink, delivered),
            AnyAudit::Postgres(p) => p.advance(sink, delivered),
        }
    }

    /// Retention to signed checkpoints (see `SqliteAudit::prune`).
    pub fn prune(
        &self,
        cutoff_ms: u64,
        sinks: &[String],
    ) -> Result<Vec<(String, u64)>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.prune(cutoff_ms, sinks),
            AnyAudit::Postgres(p) => p.prune(cutoff_ms, sinks),
        }
    }
}

impl gatehouse_audit::AuditStore for AnyAudit {
    fn append(
        &self,
        events: &[gatehouse_audit::AuditEvent],
        durability: gatehouse_audit::Durability,
    ) -> Result<Vec<(String, u64, String)>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.append(events, durability),
            AnyAudit::Postgres(p) => p.append(events, durability),
        }
    }
    fn checkpoint(
        &self,
        checkpoints: &[gatehouse_audit::Checkpoint],
    ) -> Result<(), gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.checkpoint(checkpoints),
            AnyAudit::Postgres(p) => p.checkpoint(checkpoints),
        }
    }
    fn checkpoints(
        &self,
        chain: &str,
    ) -> Result<Vec<gatehouse_audit::Checkpoint>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.checkpoints(chain),
            AnyAudit::Postgres(p) => p.checkpoints(chain),
        }
    }
    fn links(
        &self,
        chain: &str,
    ) -> Result<Vec<gatehouse_audit::Link>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.links(chain),
            AnyAudit::Postgres(p) => p.links(chain),
        }
    }
    fn chains(&self) -> Result<Vec<String>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.chains(),
            AnyAudit::Postgres(p) => p.chains(),
        }
    }
    fn anchor(
        &self,
        chain: &str,
    ) -> Result<Option<gatehouse_audit::Anchor>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.anchor(chain),
            AnyAudit::Postgres(p) => p.anchor(chain),
        }
    }
}
