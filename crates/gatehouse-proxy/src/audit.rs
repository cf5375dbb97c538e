//! The audit writer: one thread that commits events in groups (group commit), so many
//! concurrent requests share one fsync. A request whose event must be durable waits for
//! its group's commit; others are queued and never wait.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use gatehouse_audit::{AuditError, AuditEvent, AuditStore};
use tokio::sync::oneshot;

/// Events waiting for the writer, at most. A full queue makes durable requests fail
/// closed and drops (and counts) events that did not need to be durable.
const QUEUE: usize = 65_536;
/// Events committed in one transaction, at most.
const GROUP: usize = 4096;

type Ack = oneshot::Sender<Result<(), AuditError>>;

/// Handle to the writer thread; cloning shares it.
#[derive(Clone)]
pub struct AuditWriter {
    tx: SyncSender<(AuditEvent, Option<Ack>)>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl AuditWriter {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn AuditStore>) -> AuditWriter {
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_loop(&*store, &rx));
        if let Err(e) = spawned {
            // Without the thread every durable request fails closed (its ack is dropped).
            tracing::error!(error = %e, "audit writer did not start");
        }
        AuditWriter { tx }
    }

    /// Records an event. With `durable`, returns once it is committed (or the store
    /// failed); otherwise returns at once.
    pub async fn record(&self, event: AuditEvent, durable: bool) -> Result<(), AuditError> {
        if !durable {
            if let Err(TrySendError::Full(_)) = self.tx.try_send((event, None)) {
                metrics::counter!(crate::metrics::AUDIT_DROPPED).increment(1);
            }
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .try_send((event, Some(ack)))
            .map_err(|_| AuditError::Unavailable("audit queue full".into()))?;
        done.await
            .unwrap_or_else(|_| Err(AuditError::Unavailable("audit writer stopped".into())))
    }
}

/// The store when it could not be opened: every commit fails, so durable requests fail
/// closed with the reason.
pub struct BrokenStore(pub String);

impl AuditStore for BrokenStore {
    fn append(&self, _: &[AuditEvent]) -> Result<(), AuditError> {
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

fn write_loop(store: &dyn AuditStore, rx: &Receiver<(AuditEvent, Option<Ack>)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let (events, acks): (Vec<AuditEvent>, Vec<Option<Ack>>) = batch.into_iter().unzip();
        let result = store.append(&events);
        if let Err(e) = &result {
            tracing::error!(error = %e, events = events.len(), "audit commit failed");
            metrics::counter!(crate::metrics::AUDIT_FAILED).increment(events.len() as u64);
        }
        for ack in acks.into_iter().flatten() {
            let _ = ack.send(result.clone());
        }
    }
}
