//! Gatehouse's durable state, behind traits whose docs state their guarantees, with an
//! in-memory implementation for tests, SQLite (the embedded default) for real use, and
//! PostgreSQL for a cluster's shared state; [`Backend`] is the one place that picks.

mod approvals;
mod audit;
mod directory;
mod factory;
mod keys;
mod oauth;
#[cfg(feature = "postgres")]
mod pg_approvals;
#[cfg(feature = "postgres")]
mod pg_audit;
#[cfg(feature = "postgres")]
mod pg_directory;
#[cfg(feature = "postgres")]
mod pg_keys;
#[cfg(feature = "postgres")]
mod pg_oauth;
#[cfg(feature = "postgres")]
mod pg_pins;
#[cfg(feature = "postgres")]
mod pg_tls;
#[cfg(feature = "postgres")]
pub use pg_tls::ping as ping_postgres;

/// Whether PostgreSQL at `url` answers (readiness). A build without PostgreSQL support
/// answers that it has none.
#[cfg(not(feature = "postgres"))]
pub fn ping_postgres(_url: &str, _timeout: std::time::Duration) -> Result<(), String> {
    Err(factory::NO_POSTGRES.into())
}
mod pins;
mod rows;

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
#[cfg(feature = "postgres")]
pub use pg_approvals::PgApprovals;
#[cfg(feature = "postgres")]
pub use pg_audit::PgAudit;
#[cfg(feature = "postgres")]
pub use pg_directory::PgDirectory;
#[cfg(feature = "postgres")]
pub use pg_keys::PgKeyStore;
#[cfg(feature = "postgres")]
pub use pg_oauth::PgOAuth;
#[cfg(feature = "postgres")]
pub use pg_pins::PgPins;
pub use pins::{
    Observed, PinDecideError, PinDecision, PinRecord, PinStatus, PinStore, Sighting, SqlitePins,
};

/// The audit store a config names: SQLite (the default) or PostgreSQL.
pub enum AnyAudit {
    Sqlite(SqliteAudit),
    #[cfg(feature = "postgres")]
    Postgres(Box<PgAudit>),
}

impl std::fmt::Debug for AnyAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyAudit::Sqlite(_) => "AnyAudit(SQLite)",
            #[cfg(feature = "postgres")]
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
        Self::open_as(sqlite, postgres, false)
    }

    /// `open` for the gateway's audit writer: in SQLite, its log is checkpointed off the
    /// commit path ([`SqliteAudit::open_writer`]).
    pub fn open_writer(
        sqlite: &std::path::Path,
        postgres: Option<&str>,
    ) -> Result<AnyAudit, gatehouse_audit::AuditError> {
        Self::open_as(sqlite, postgres, true)
    }

    fn open_as(
        sqlite: &std::path::Path,
        postgres: Option<&str>,
        writer: bool,
    ) -> Result<AnyAudit, gatehouse_audit::AuditError> {
        Ok(match postgres {
            #[cfg(feature = "postgres")]
            Some(url) => AnyAudit::Postgres(Box::new(PgAudit::new(url))),
            #[cfg(not(feature = "postgres"))]
            Some(_) => {
                return Err(gatehouse_audit::AuditError::Unavailable(
                    factory::NO_POSTGRES.into(),
                ));
            }
            None if writer => AnyAudit::Sqlite(SqliteAudit::open_writer(sqlite)?),
            None => AnyAudit::Sqlite(SqliteAudit::open(sqlite)?),
        })
    }

    pub fn query(
        &self,
        q: &AuditQuery,
    ) -> Result<Vec<(String, u64, String)>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.query(q),
            #[cfg(feature = "postgres")]
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
            #[cfg(feature = "postgres")]
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
            #[cfg(feature = "postgres")]
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
            #[cfg(feature = "postgres")]
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
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.append(events, durability),
        }
    }
    fn try_append(
        &self,
        events: &[gatehouse_audit::AuditEvent],
        durability: gatehouse_audit::Durability,
    ) -> Option<Result<gatehouse_audit::NewHeads, gatehouse_audit::AuditError>> {
        match self {
            AnyAudit::Sqlite(s) => s.try_append(events, durability),
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.try_append(events, durability),
        }
    }
    fn checkpoint(
        &self,
        checkpoints: &[gatehouse_audit::Checkpoint],
    ) -> Result<(), gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.checkpoint(checkpoints),
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.checkpoint(checkpoints),
        }
    }
    fn checkpoints(
        &self,
        chain: &str,
    ) -> Result<Vec<gatehouse_audit::Checkpoint>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.checkpoints(chain),
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.checkpoints(chain),
        }
    }
    fn links(
        &self,
        chain: &str,
    ) -> Result<Vec<gatehouse_audit::Link>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.links(chain),
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.links(chain),
        }
    }
    fn chains(&self) -> Result<Vec<String>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.chains(),
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.chains(),
        }
    }
    fn anchor(
        &self,
        chain: &str,
    ) -> Result<Option<gatehouse_audit::Anchor>, gatehouse_audit::AuditError> {
        match self {
            AnyAudit::Sqlite(s) => s.anchor(chain),
            #[cfg(feature = "postgres")]
            AnyAudit::Postgres(p) => p.anchor(chain),
        }
    }
}
