//! The one place that picks each store's backend: PostgreSQL when a connection string is
//! given (the state a cluster's replicas share), otherwise the SQLite file (the embedded
//! default). Every caller opens its stores through a [`Backend`].

use std::path::Path;
use std::sync::Arc;

use crate::{
    AnyAudit, ApiKeyStore, ApprovalStore, DirectoryStore, OAuthStore, PinStore, SqliteApprovals,
    SqliteDirectory, SqliteKeyStore, SqliteOAuth, SqlitePins, StoreError,
};
#[cfg(feature = "postgres")]
use crate::{PgApprovals, PgDirectory, PgKeyStore, PgOAuth, PgPins};

/// What a store configured for PostgreSQL answers in a build without it.
#[cfg(not(feature = "postgres"))]
pub(crate) const NO_POSTGRES: &str =
    "this build of Gatehouse has no PostgreSQL support (cargo feature `postgres`)";

/// Where one store lives.
#[derive(Debug, Clone, Copy)]
pub struct Backend<'a> {
    /// The SQLite file, used when `postgres` is `None`.
    pub sqlite: &'a Path,
    /// A PostgreSQL connection string; the stores connect on first use.
    pub postgres: Option<&'a str>,
}

impl<'a> Backend<'a> {
    pub fn new(sqlite: &'a Path, postgres: Option<&'a str>) -> Backend<'a> {
        Backend { sqlite, postgres }
    }

    /// `postgres` or `sqlite`, for logs and errors.
    pub fn kind(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub fn api_keys(&self) -> Result<Arc<dyn ApiKeyStore>, StoreError> {
        Ok(match self.postgres {
            #[cfg(feature = "postgres")]
            Some(url) => Arc::new(PgKeyStore::new(url)),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(StoreError::Unavailable(NO_POSTGRES.into())),
            None => Arc::new(SqliteKeyStore::open(self.sqlite)?),
        })
    }

    pub fn directory(&self) -> Result<Arc<dyn DirectoryStore>, StoreError> {
        Ok(match self.postgres {
            #[cfg(feature = "postgres")]
            Some(url) => Arc::new(PgDirectory::open(url)?),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(StoreError::Unavailable(NO_POSTGRES.into())),
            None => Arc::new(SqliteDirectory::open(self.sqlite)?),
        })
    }

    pub fn approvals(&self) -> Result<Arc<dyn ApprovalStore>, StoreError> {
        Ok(match self.postgres {
            #[cfg(feature = "postgres")]
            Some(url) => Arc::new(PgApprovals::new(url)),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(StoreError::Unavailable(NO_POSTGRES.into())),
            None => Arc::new(SqliteApprovals::open(self.sqlite)?),
        })
    }

    pub fn oauth(&self) -> Result<Arc<dyn OAuthStore>, StoreError> {
        Ok(match self.postgres {
            #[cfg(feature = "postgres")]
            Some(url) => Arc::new(PgOAuth::new(url)),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(StoreError::Unavailable(NO_POSTGRES.into())),
            None => Arc::new(SqliteOAuth::open(self.sqlite)?),
        })
    }

    pub fn pins(&self) -> Result<Arc<dyn PinStore>, StoreError> {
        Ok(match self.postgres {
            #[cfg(feature = "postgres")]
            Some(url) => Arc::new(PgPins::new(url)),
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(StoreError::Unavailable(NO_POSTGRES.into())),
            None => Arc::new(SqlitePins::open(self.sqlite)?),
        })
    }

    pub fn audit(&self) -> Result<AnyAudit, gatehouse_audit::AuditError> {
        AnyAudit::open(self.sqlite, self.postgres)
    }

    /// The audit store the gateway's writer commits to (see [`AnyAudit::open_writer`]).
    pub fn audit_writer(&self) -> Result<AnyAudit, gatehouse_audit::AuditError> {
        AnyAudit::open_writer(self.sqlite, self.postgres)
    }
}
