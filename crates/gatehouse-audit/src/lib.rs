//! Gatehouse's audit record: one versioned event type for every request and decision, the
//! hash chain that links each tenant's events, and its verification. Storage lives in
//! `gatehouse-store`; this crate only says what a record is and when a chain is intact.

mod chain;
mod event;

pub use chain::{
    Anchor, Checkpoint, CheckpointError, GENESIS, Link, Signer, Tamper, checkpoint_message,
    link_hash, verify_chain, verify_chain_from, verify_checkpoints, verify_checkpoints_from,
};
pub use event::{AuditEvent, Detection, EventKind, SCHEMA_VERSION};

/// Why an event could not be committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
}

/// How far an append must have reached when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On the storage medium (fsync or the database's WAL flush): survives `kill -9` and
    /// power loss. For events someone waits for before answering.
    Synced,
    /// Committed and handed to the operating system or database server: survives the
    /// gateway being killed, not a power cut until the next `Synced` append (the log is
    /// sequential, so that append makes everything before it durable too). For events
    /// nobody waits for, which a crash before their group commit would lose anyway.
    Written,
}

/// Each chain an append touched, with its new head: `(chain, seq, hash)`.
pub type NewHeads = Vec<(String, u64, String)>;

/// Durable storage of audit events.
///
/// Guarantee: when `append` returns `Ok`, every event passed is committed as far as its
/// [`Durability`] says, has its place in its tenant's chain, and no later event of that
/// chain precedes it. Events of one call to `append` are committed together or not at
/// all.
pub trait AuditStore: Send + Sync {
    /// Appends and commits; returns each touched chain's new head `(chain, seq, hash)`.
    fn append(
        &self,
        events: &[AuditEvent],
        durability: Durability,
    ) -> Result<Vec<(String, u64, String)>, AuditError>;
    /// `append`, but only if that needs no waiting on a lock: nobody else is writing (another
    /// commit, a log checkpoint, another process sharing the store). `None` when it would
    /// have waited, or when the store cannot tell: nothing was written, and the caller hands
    /// the events to whoever holds the store instead. Stores that cannot tell never try.
    fn try_append(
        &self,
        _events: &[AuditEvent],
        _durability: Durability,
    ) -> Option<Result<NewHeads, AuditError>> {
        None
    }
    /// Stores signed checkpoints (committed before returning).
    fn checkpoint(&self, checkpoints: &[Checkpoint]) -> Result<(), AuditError>;
    /// A chain's checkpoints, in sequence order.
    fn checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, AuditError>;
    /// Every stored link of one chain, in sequence order (for verification and export).
    fn links(&self, chain: &str) -> Result<Vec<Link>, AuditError>;
    /// The chains present.
    fn chains(&self) -> Result<Vec<String>, AuditError>;
    /// Where a chain starts when retention pruned its oldest records.
    fn anchor(&self, _chain: &str) -> Result<Option<Anchor>, AuditError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
