//! The audit writer: one thread that commits events in groups (group commit), so many
//! concurrent requests share one fsync. A request whose event must be durable wakes the
//! writer and waits for its group's commit; other events are queued without waking it,
//! and are committed with the next group: when a durable event arrives, when
//! [`GROUP_AT`] events are waiting, or [`LINGER`] after the first of them. At low load
//! that is one wake-up and one transaction per [`LINGER`], not per event; under load the
//! groups fill up and commit back to back.
//!
//! A group someone waits for is synced (fsync) before the wait ends, unless the operator
//! turned that off (`audit.fsync: false`, development mode's default): it is then
//! committed (it survives the gateway being killed) and reaches the disk with the store's
//! next sync.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_audit::{AuditError, AuditEvent, AuditStore, Durability};
use tokio::sync::oneshot;

/// Events waiting for the writer, at most. A full queue makes durable requests fail
/// closed and drops (and counts) events that did not need to be durable.
const QUEUE: usize = 65_536;
/// Events committed in one transaction, at most.
const GROUP: usize = 4096;
/// Waiting events that wake the writer without a durable one among them.
const GROUP_AT: usize = 256;
/// How long an event nobody waits for may wait for its group. Lost on a crash: such an
/// event was never promised to be durable (the durable ones are committed before their
/// answer).
const LINGER: Duration = Duration::from_millis(20);

type Ack = oneshot::Sender<Result<(), AuditError>>;

/// One queued event, and who waits for its commit.
type Queued = (AuditEvent, Option<Ack>);

/// What the request path and the writer thread share.
#[derive(Default)]
struct Queue {
    state: Mutex<Waiting>,
    wake: Condvar,
    /// Groups someone waits for are fsynced (`audit.fsync`).
    fsync: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    events: Vec<Queued>,
    /// Someone waits for a commit: the writer goes at once.
    urgent: bool,
    /// When the oldest waiting event arrived.
    since: Option<Instant>,
    /// Every handle is gone: the writer commits what is left and ends.
    closed: bool,
}

impl Queue {
    /// Adds an event; `false` when the queue is full.
    fn push(&self, event: AuditEvent, ack: Option<Ack>) -> bool {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Closed: no writer will ever commit it (it did not start, or it stopped).
        if w.closed || w.events.len() >= QUEUE {
            return false;
        }
        let urgent = ack.is_some();
        w.events.push((event, ack));
        if w.since.is_none() {
            w.since = Some(Instant::now());
        }
        // Wake the writer only when it has something to do: an event someone waits for,
        // a full group, or the first event of a group (which starts the group's one timed
        // wait). Events in between wake nobody.
        let first = w.events.len() == 1;
        let wake = (urgent && !w.urgent) || w.events.len() == GROUP_AT || first;
        w.urgent |= urgent;
        drop(w);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Waits for a group to commit; `None` once closed and drained.
    fn next_group(&self, idle: Duration) -> Option<Vec<Queued>> {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if w.events.is_empty() {
                if w.closed {
                    return None;
                }
                let (g, timeout) = self
                    .wake
                    .wait_timeout(w, idle)
                    .unwrap_or_else(PoisonError::into_inner);
                w = g;
                if timeout.timed_out() && w.events.is_empty() {
                    return Some(Vec::new()); // a quiet spell: the caller checkpoints
                }
                continue;
            }
            let due = w.since.map_or(Instant::now(), |s| s + LINGER);
            let now = Instant::now();
            if w.urgent || w.closed || w.events.len() >= GROUP_AT || now >= due {
                let take = w.events.len().min(GROUP);
                let group: Vec<Queued> = if take == w.events.len() {
                    std::mem::take(&mut w.events)
                } else {
                    w.events.drain(..take).collect()
                };
                w.urgent = w.events.iter().any(|(_, a)| a.is_some());
                w.since = (!w.events.is_empty()).then(Instant::now);
                return Some(group);
            }
            // One timed wait per group, not per event.
            w = self
                .wake
                .wait_timeout(w, due - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Closes the queue when the last handle goes, so the writer commits and ends.
struct Handle(Arc<Queue>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.0.wake.notify_one();
    }
}

/// Handle to the writer thread; cloning shares it.
#[derive(Clone)]
pub struct AuditWriter {
    queue: Arc<Handle>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl AuditWriter {
    /// Starts the writer thread over `store`; with `checkpoints`, chain heads are signed
    /// every `every` events and after a quiet minute.
    pub fn start(
        store: Arc<dyn AuditStore>,
        checkpoints: Option<Checkpoints>,
        fsync: bool,
    ) -> AuditWriter {
        let queue = Arc::new(Queue::default());
        queue.fsync.store(fsync, Ordering::Relaxed);
        let q = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_loop(&*store, &q, checkpoints));
        if let Err(e) = spawned {
            // Without the thread every durable request fails closed (its ack is dropped).
            tracing::error!(error = %e, "audit writer did not start");
            queue
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .closed = true;
        }
        AuditWriter {
            queue: Arc::new(Handle(queue)),
        }
    }

    /// Whether groups someone waits for are fsynced (a config reload may change it).
    pub fn set_fsync(&self, fsync: bool) {
        self.queue.0.fsync.store(fsync, Ordering::Relaxed);
    }

    /// Queues an event for the next group commit; never waits.
    pub fn queue(&self, event: AuditEvent) {
        if !self.queue.0.push(event, None) {
            metrics::counter!(gatehouse_transport::metrics::AUDIT_DROPPED).increment(1);
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
        if !self.queue.0.push(event, Some(ack)) {
            return Err(AuditError::Unavailable("audit queue full".into()));
        }
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

/// Closes the queue when the writer ends, normally or by a panic: waiting events are
/// dropped with their acks, so durable requests fail closed instead of waiting forever.
struct Stopped<'a>(&'a Queue);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut w = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        w.closed = true;
        w.events.clear();
    }
}

fn write_loop(store: &dyn AuditStore, queue: &Queue, checkpoints: Option<Checkpoints>) {
    let _stopped = Stopped(queue);
    let mut pending = Pending::default();
    while let Some(batch) = queue.next_group(CHECKPOINT_IDLE) {
        if batch.is_empty() {
            if let Some(cp) = &checkpoints {
                pending.flush(store, cp);
            }
            continue;
        }
        let (events, acks): (Vec<AuditEvent>, Vec<Option<Ack>>) = batch.into_iter().unzip();
        // Only a group someone waits for pays the fsync; the others are made durable by
        // the next synced group (the log is sequential).
        let durability = if queue.fsync.load(Ordering::Relaxed) && acks.iter().any(Option::is_some)
        {
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
                metrics::counter!(gatehouse_transport::metrics::AUDIT_FAILED)
                    .increment(events.len() as u64);
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
    use super::*;

    fn event(n: u64) -> AuditEvent {
        AuditEvent {
            method: format!("m{n}"),
            ..Default::default()
        }
    }

    #[test]
    fn a_lone_event_waits_for_company_and_a_durable_one_does_not() {
        let q = Queue::default();
        assert!(q.push(event(1), None));
        let t = Instant::now();
        let group = q.next_group(Duration::from_secs(5)).unwrap();
        assert_eq!(group.len(), 1);
        assert!(t.elapsed() >= LINGER / 2, "{:?}", t.elapsed());
        let (ack, _done) = oneshot::channel();
        assert!(q.push(event(2), None));
        assert!(q.push(event(3), Some(ack)));
        let t = Instant::now();
        assert_eq!(q.next_group(Duration::from_secs(5)).unwrap().len(), 2);
        assert!(t.elapsed() < LINGER, "{:?}", t.elapsed());
    }

    /// A store for the writer's tests: it remembers how far each append had to go, or
    /// (`panics`) its append panics and the writer thread dies mid-group.
    #[derive(Default)]
    struct Fake {
        panics: bool,
        seen: Mutex<Vec<Durability>>,
    }

    impl AuditStore for Fake {
        fn append(
            &self,
            _: &[AuditEvent],
            d: Durability,
        ) -> Result<Vec<(String, u64, String)>, AuditError> {
            assert!(!self.panics, "disk on fire");
            self.seen.lock().unwrap().push(d);
            Ok(Vec::new())
        }
        fn checkpoint(&self, _: &[gatehouse_audit::Checkpoint]) -> Result<(), AuditError> {
            Ok(())
        }
        fn checkpoints(&self, _: &str) -> Result<Vec<gatehouse_audit::Checkpoint>, AuditError> {
            Ok(Vec::new())
        }
        fn links(&self, _: &str) -> Result<Vec<gatehouse_audit::Link>, AuditError> {
            Ok(Vec::new())
        }
        fn chains(&self) -> Result<Vec<String>, AuditError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn durable_records_fail_closed_when_the_writer_dies() {
        let panicking = Fake {
            panics: true,
            ..Fake::default()
        };
        let w = AuditWriter::start(Arc::new(panicking), None, true);
        let first = tokio::time::timeout(Duration::from_secs(10), w.record(event(1), true))
            .await
            .expect("answered, not left waiting");
        assert!(first.is_err(), "{first:?}");
        // And every later one at once.
        let later = tokio::time::timeout(Duration::from_secs(10), w.record(event(2), true))
            .await
            .expect("answered, not left waiting");
        assert!(later.is_err(), "{later:?}");
    }

    #[tokio::test]
    async fn a_waited_for_record_is_synced_unless_fsync_is_off() {
        let store = Arc::new(Fake::default());
        let w = AuditWriter::start(store.clone(), None, true);
        w.record(event(1), true).await.unwrap();
        w.set_fsync(false);
        // Still answered only once committed, but without the fsync.
        w.record(event(2), true).await.unwrap();
        w.set_fsync(true);
        w.record(event(3), true).await.unwrap();
        use Durability::{Synced, Written};
        assert_eq!(*store.seen.lock().unwrap(), [Synced, Written, Synced]);
    }

    #[test]
    fn a_full_queue_refuses_and_a_closed_one_drains_then_ends() {
        let q = Queue::default();
        for n in 0..QUEUE as u64 {
            assert!(q.push(event(n), None));
        }
        assert!(!q.push(event(0), None));
        q.state.lock().unwrap().closed = true;
        let mut seen = 0;
        while let Some(g) = q.next_group(Duration::from_secs(5)) {
            assert!(!g.is_empty() && g.len() <= GROUP);
            seen += g.len();
        }
        assert_eq!(seen, QUEUE);
    }
}
