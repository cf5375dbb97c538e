//! Gatehouse's durable state, behind traits whose docs state their guarantees, with an
//! in-memory implementation for tests and SQLite (the embedded default) for real use.

mod audit;
mod directory;
mod keys;

pub use audit::{AuditQuery, SqliteAudit};
pub use directory::{
    DirectoryGroup, DirectoryStore, DirectoryUser, MemoryDirectory, SqliteDirectory,
};
pub use keys::{ApiKeyRecord, ApiKeyStore, MemoryKeyStore, SqliteKeyStore, StoreError};
