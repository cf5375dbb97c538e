//! The audit writer: one thread that commits events in groups (group commit), so many
//! concurrent requests share one fsync. A request whose event must be durable waits for
//! its group's commit; others are queued and never wait.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use gatehouse_audit::{AuditError, AuditEvent, AuditStore, Durability};
use tokio::sync::oneshot;

/// Events waiting for the writer, at most. A full queue makes durable requests fail
/// closed and drops (and counts) events that did not need to be durable.
const QUEUE: usize = 65_536;
/// Events committed in one transaction, at most.
const GROUP: usize = 4096;
/// How long a group that nobody waits for may wait for more events before it commits.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

type Ack = oneshot::Sender<Result<(), AuditError>>;

/// One queued event. Boxed: the channel allocates all of its slots up front, and an
/// unboxed event in each of 65,536 slots would cost some 64 MB of memory at start.
type Queued = (Box<AuditEvent>, Option<Ack>);

/// Handle to the writer thread; cloning shares it.
#[derive(Clone)]
pub struct AuditWriter {
    tx: SyncSender<Queued>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl AuditWriter {
    /// Starts the writer thread over `store`; with `checkpoints`, chain heads are signed
    /// every `every` events and after a quiet minute.
    pub fn start(store: Arc<dyn AuditStore>, checkpoints: Option<Checkpoints>) -> AuditWriter {
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_loop(&*store, &rx, checkpoints));
        if let Err(e) = spawned {
            // Without the thread every durable request fails closed (its ack is dropped).
            tracing::error!(error = %e, "audit writer did not start");
        }
        AuditWriter { tx }
    }

    /// Queues an event for the next group commit; never waits.
    pub fn queue(&self, event: AuditEvent) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send((Box::new(event), None)) {
            metrics::counter!(crate::metrics::AUDIT_DROPPED).increment(1);
        }
    }

    /// Records an event. With `durable`, returns once it is committed (or the store
    /// failed); otherwise returns at once.
    pub async fn record(&self, event: AuditEvent, durable: bool) -> Result<(), AuditError> {
        if !durable {
            self.queue(event);
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .try_send((Box::new(event), Some(ack)))
            .map_err(|_| AuditError::Unavailable("audit queue full".into()))?;
        done.await
            .unwrap_or_else(|_| Err(AuditError::Unavailable("audit writer stopped".into())))
    }
}

/// The store when it could not be opened: every commit fails, so durable requests fail
/// closed with the reason.
pub struct BrokenStore(pub String);

impl AuditStore for BrokenStore {
    fn append(
        &self,
        _: &[AuditEvent],
        _: Durability,
    ) -> Result<Vec<(String, u64, String)>, AuditError> {
        Err(AuditError::Unavailable(self.0.clone()))
    }
    fn checkpoint(&self, _: &[gatehouse_audit::Checkpoint]) -> Result<(), AuditError> {
        Err(AuditError::Unavailable(self.0.clone()))
    }
    fn checkpoints(&self, _: &str) -> Result<Vec<gatehouse_audit::Checkpoint>, AuditError> {
        Err(AuditError::Unavailable(self.0.clone()))
    }
    fn links(&self, _: &str) -> Result<Vec<gatehouse_audit::Link>, AuditError> {
        Err(AuditError::Unavailable(self.0.clone()))
    }
    fn chains(&self) -> Result<Vec<String>, AuditError> {
        Err(AuditError::Unavailable(self.0.clone()))
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Signed checkpoints of chain heads.
pub struct Checkpoints {
    pub signer: gatehouse_audit::Signer,
    /// Events between checkpoints, at most.
    pub every: u64,
}

/// Heads committed since the last checkpoint, and how many events.
#[derive(Default)]
struct Pending {
    heads: std::collections::HashMap<String, (u64, String)>,
    events: u64,
}

impl Pending {
    fn flush(&mut self, store: &dyn AuditStore, cp: &Checkpoints) {
        if self.heads.is_empty() {
            return;
        }
        let now = now_ms();
        let signed: Vec<gatehouse_audit::Checkpoint> = self
            .heads
            .iter()
            .map(|(chain, (seq, hash))| cp.signer.sign(chain, *seq, hash, now))
            .collect();
        match store.checkpoint(&signed) {
            Ok(()) => {
                self.heads.clear();
                self.events = 0;
            }
            // Kept pending: the next flush signs the newer heads.
            Err(e) => tracing::error!(error = %e, "audit checkpoint not stored"),
        }
    }
}

/// A quiet minute triggers a checkpoint of what was written.
const CHECKPOINT_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

fn write_loop(store: &dyn AuditStore, rx: &Receiver<Queued>, checkpoints: Option<Checkpoints>) {
    let mut pending = Pending::default();
    loop {
        let first = match rx.recv_timeout(CHECKPOINT_IDLE) {
            Ok(e) => e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(cp) = &checkpoints {
                    pending.flush(store, cp);
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        // A group nobody waits for lingers a moment for company: under load one
        // transaction then carries many events instead of one or two. An event someone
        // waits for ends the wait at once.
        let linger_until = std::time::Instant::now() + LINGER;
        while batch.len() < GROUP && batch.iter().all(|(_, ack)| ack.is_none()) {
            let left = linger_until.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let (events, acks): (Vec<AuditEvent>, Vec<Option<Ack>>) =
            batch.into_iter().map(|(e, ack)| (*e, ack)).unzip();
        // Only a group someone waits for pays the fsync; the others are made durable by
        // the next synced group (the log is sequential).
        let durability = if acks.iter().any(Option::is_some) {
            Durability::Synced
        } else {
            Durability::Written
        };
        let result = store.append(&events, durability);
        match &result {
            Ok(heads) => {
                pending.events += events.len() as u64;
                for (chain, seq, hash) in heads {
                    pending.heads.insert(chain.clone(), (*seq, hash.clone()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = events.len(), "audit commit failed");
                metrics::counter!(crate::metrics::AUDIT_FAILED).increment(events.len() as u64);
            }
        }
        let result = result.map(|_| ());
        for ack in acks.into_iter().flatten() {
            let _ = ack.send(result.clone());
        }
        if let Some(cp) = &checkpoints
            && pending.events >= cp.every
        {
            pending.flush(store, cp);
        }
    }
    // The queue closed (shutdown): sign what was written.
    if let Some(cp) = &checkpoints {
        pending.flush(store, cp);
    }
}

#[cfg(test)]
mod tests {
    use super::{QUEUE, Queued};

    #[test]
    fn the_preallocated_queue_stays_small() {
        // The channel's slots are allocated when the gateway starts, whatever the load.
        let bytes = QUEUE * std::mem::size_of::<Queued>();
        assert!(bytes <= 2 << 20, "{bytes} bytes");
    }
}
