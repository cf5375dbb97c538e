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
//! next sync. A lone commit costs less than waking the writer and being woken by it, so
//! the only request in flight commits its own event on its own thread when nothing is
//! queued and nobody is committing (it leads: [`AuditWriter::record_alone`]), synced or
//! not as a group would be, and hands it to the writer if the store is busy. Under load
//! the writer's groups stay cheaper, and keep the commits (and their fsyncs) off the
//! request threads, where they would hold up the other requests a thread serves.

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
    /// Events between signed checkpoints, when they are signed.
    sign_every: Option<u64>,
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
    /// Commits under way (the writer's group, requests committing their own event): a
    /// request leads only when there are none.
    committing: u32,
    /// Chain heads and event count of the commits requests made themselves, for the
    /// writer's signed checkpoints.
    led: Vec<(String, u64, String)>,
    led_events: u64,
    /// Those commits reached the checkpoint interval: the writer signs now.
    sign: bool,
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
                if std::mem::take(&mut w.sign) {
                    return Some(Vec::new()); // the requests' own commits are due a checkpoint
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
                w.committing += 1; // until `committed`
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

    /// The writer's group from [`Queue::next_group`] is committed (or failed); the heads
    /// requests committed themselves since the last call, and how many events.
    fn committed(&self, group: bool) -> (Vec<(String, u64, String)>, u64) {
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if group {
            w.committing = w.committing.saturating_sub(1);
        }
        (
            std::mem::take(&mut w.led),
            std::mem::take(&mut w.led_events),
        )
    }

    /// Commits `event` on the caller's thread when nothing is queued, nobody is committing
    /// and the store is free at once; `None` otherwise (nothing written: queue it).
    fn lead(
        &self,
        store: &dyn AuditStore,
        event: &AuditEvent,
        durability: Durability,
    ) -> Option<Result<(), AuditError>> {
        {
            let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if w.closed || w.committing > 0 || !w.events.is_empty() {
                return None;
            }
            w.committing += 1;
        }
        // A store that panics fails this call closed; it must not take the request
        // worker (and every connection it serves) down with it.
        let appended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.try_append(std::slice::from_ref(event), durability)
        }));
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        w.committing = w.committing.saturating_sub(1);
        let result = match appended {
            Ok(None) => None,
            Ok(Some(Ok(heads))) => {
                w.led.extend(heads);
                w.led_events += 1;
                Some(Ok(()))
            }
            Ok(Some(Err(e))) => Some(Err(e)),
            Err(_) => Some(Err(AuditError::Unavailable(
                "the audit store failed".into(),
            ))),
        };
        let sign = !w.sign && self.sign_every.is_some_and(|n| w.led_events >= n);
        w.sign |= sign;
        drop(w);
        if sign {
            self.wake.notify_one();
        }
        if let Some(Err(e)) = &result {
            tracing::error!(error = %e, events = 1, "audit commit failed");
            metrics::counter!(gatehouse_transport::metrics::AUDIT_FAILED).increment(1);
        }
        result
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
    /// For the commits requests make themselves.
    store: Arc<dyn AuditStore>,
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
        let queue = Arc::new(Queue {
            sign_every: checkpoints.as_ref().map(|c| c.every),
            ..Queue::default()
        });
        queue.fsync.store(fsync, Ordering::Relaxed);
        let (q, s) = (queue.clone(), store.clone());
        let spawned = std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_loop(&*s, &q, checkpoints));
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
            store,
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

    /// `record`, for the only request in flight: a durable event is committed (and synced,
    /// with fsync on) on the caller's thread when nothing is queued and nobody is
    /// committing: two thread wake-ups and a hop cost more than the commit, and no other
    /// request shares the thread while it waits for the disk. Under load requests use
    /// [`AuditWriter::record`]: a commit there would hold up the other requests served by
    /// the same thread, and the writer's groups amortise it.
    pub async fn record_alone(&self, event: AuditEvent, durable: bool) -> Result<(), AuditError> {
        if durable {
            let durability = if self.queue.0.fsync.load(Ordering::Relaxed) {
                Durability::Synced
            } else {
                Durability::Written
            };
            if let Some(done) = self.queue.0.lead(&*self.store, &event, durability) {
                return done;
            }
        }
        self.record(event, durable).await
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
    /// A chain's head after a commit; commits reported out of order keep the newest.
    fn note(&mut self, heads: Vec<(String, u64, String)>) {
        for (chain, seq, hash) in heads {
            match self.heads.get(&chain) {
                Some((s, _)) if *s >= seq => {}
                _ => {
                    self.heads.insert(chain, (seq, hash));
                }
            }
        }
    }

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
            let (led, n) = queue.committed(false);
            pending.note(led);
            pending.events += n;
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
        let (led, n) = queue.committed(true);
        pending.note(led);
        pending.events += n;
        match &result {
            Ok(heads) => {
                pending.events += events.len() as u64;
                pending.note(heads.clone());
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
    let (led, n) = queue.committed(false);
    pending.note(led);
    pending.events += n;
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
    /// It can also be `busy` (never appends at once), and it remembers on which thread
    /// each append ran and how many checkpoints it stored.
    #[derive(Default)]
    struct Fake {
        panics: bool,
        busy: bool,
        seen: Mutex<Vec<Durability>>,
        threads: Mutex<Vec<Option<String>>>,
        appended: std::sync::atomic::AtomicU64,
        signed: std::sync::atomic::AtomicUsize,
    }

    impl AuditStore for Fake {
        fn append(
            &self,
            events: &[AuditEvent],
            d: Durability,
        ) -> Result<Vec<(String, u64, String)>, AuditError> {
            assert!(!self.panics, "disk on fire");
            self.seen.lock().unwrap().push(d);
            let name = std::thread::current().name().map(str::to_owned);
            self.threads.lock().unwrap().push(name);
            let n = self
                .appended
                .fetch_add(events.len() as u64, Ordering::SeqCst);
            Ok(vec![("t".into(), n + events.len() as u64, "h".into())])
        }
        fn try_append(
            &self,
            events: &[AuditEvent],
            d: Durability,
        ) -> Option<Result<gatehouse_audit::NewHeads, AuditError>> {
            (!self.busy).then(|| self.append(events, d))
        }
        fn checkpoint(&self, _: &[gatehouse_audit::Checkpoint]) -> Result<(), AuditError> {
            self.signed.fetch_add(1, Ordering::SeqCst);
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

    #[tokio::test]
    async fn an_idle_writer_lets_the_lone_request_commit_its_own_record() {
        let here = std::thread::current().name().map(str::to_owned);
        let writer = Some("gatehouse-audit".to_owned());
        let store = Arc::new(Fake::default());
        let w = AuditWriter::start(store.clone(), None, false);
        w.record_alone(event(1), true).await.unwrap();
        // A request among others hands it over, to be grouped with theirs.
        w.record(event(2), true).await.unwrap();
        // With fsync on, the lone request's own commit is synced before it returns, and
        // one among others still goes to the writer's synced group.
        w.set_fsync(true);
        w.record_alone(event(3), true).await.unwrap();
        w.record(event(4), true).await.unwrap();
        assert_eq!(
            *store.threads.lock().unwrap(),
            [here.clone(), writer.clone(), here, writer]
        );
        use Durability::{Synced, Written};
        assert_eq!(
            *store.seen.lock().unwrap(),
            [Written, Written, Synced, Synced]
        );
    }

    #[tokio::test]
    async fn a_busy_store_gets_the_record_through_the_writer() {
        let store = Arc::new(Fake {
            busy: true,
            ..Fake::default()
        });
        let w = AuditWriter::start(store.clone(), None, false);
        w.record_alone(event(1), true).await.unwrap();
        let writer = Some("gatehouse-audit".to_owned());
        assert_eq!(*store.threads.lock().unwrap(), [writer]);
    }

    #[tokio::test]
    async fn a_store_that_panics_fails_the_leading_request_closed() {
        let store = Arc::new(Fake {
            panics: true,
            ..Fake::default()
        });
        let w = AuditWriter::start(store, None, false);
        for n in 0..2 {
            let r = tokio::time::timeout(Duration::from_secs(10), w.record_alone(event(n), true))
                .await
                .expect("answered, not left waiting");
            assert!(r.is_err(), "{r:?}");
        }
    }

    #[tokio::test]
    async fn records_requests_commit_themselves_are_signed_at_the_interval() {
        let store = Arc::new(Fake::default());
        let signer = gatehouse_audit::Signer::from_seed(&[7; 32]).unwrap();
        let cp = Checkpoints { signer, every: 3 };
        let w = AuditWriter::start(store.clone(), Some(cp), false);
        for n in 0..2 {
            w.record_alone(event(n), true).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.signed.load(Ordering::SeqCst), 0, "not yet due");
        w.record_alone(event(3), true).await.unwrap();
        let t = Instant::now();
        while store.signed.load(Ordering::SeqCst) == 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "never signed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Every one of them was the request's own commit.
        assert!(
            store
                .threads
                .lock()
                .unwrap()
                .iter()
                .all(|t| t.as_deref() != Some("gatehouse-audit"))
        );
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
