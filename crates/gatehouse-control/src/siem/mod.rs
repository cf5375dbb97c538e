//! SIEM shipping. The audit store is each sink's disk-backed queue: a sink reads the events
//! after its own cursor, delivers a batch, and only then moves the cursor (at least once:
//! a crash or an outage resends, never skips). A batch the destination refuses for good
//! goes to the sink's dead-letter file and the cursor moves on. Shipping never touches the
//! request path: an outage only grows the lag.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use gatehouse_store::{AnyAudit, Pending};

use gatehouse_pipeline::gateway::Gateway;
use gatehouse_proxy::config::{SinkKind, SinkSpec};
use gatehouse_transport::metrics as m;

mod file;
pub mod format;
mod http;
mod syslog;

/// Idle poll of the store when a sink has nothing to send.
const IDLE: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a batch was not delivered.
#[derive(Debug)]
pub enum Failure {
    /// Try again later (network, 5xx, 429).
    Transient(String),
    /// The destination refuses these events for good (4xx): dead-letter them.
    Permanent(String),
}

/// One destination's connection state.
enum Sender {
    Syslog(syslog::Syslog),
    Http(http::HttpSink),
    File(file::JsonLines),
}

impl Sender {
    async fn send(&mut self, gw: &Gateway, batch: &[Pending]) -> Result<(), Failure> {
        match self {
            Sender::Syslog(s) => s.send(batch).await,
            Sender::Http(h) => h.send(gw, batch).await,
            Sender::File(f) => f.send(batch).await,
        }
    }
}

/// Starts one shipping task per sink.
pub fn start(gw: &Arc<Gateway>, store_path: &Path, postgres: Option<&str>, sinks: &[SinkSpec]) {
    for spec in sinks {
        let store = match AnyAudit::open(store_path, postgres) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(sink = %spec.name, error = %e, "audit store unavailable: sink not started");
                continue;
            }
        };
        let sender = match &spec.kind {
            SinkKind::Syslog { .. } => syslog::Syslog::new(&spec.kind).map(Sender::Syslog),
            SinkKind::Http { .. } => http::HttpSink::new(&spec.kind).map(Sender::Http),
            SinkKind::File { .. } => Ok(Sender::File(file::JsonLines::new(&spec.kind))),
        };
        let sender = match sender {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(sink = %spec.name, error = %e, "sink unusable: not started");
                continue;
            }
        };
        let dead_letter = store_path.with_file_name(format!(
            "{}.deadletter-{}.jsonl",
            store_path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            spec.name
        ));
        tokio::spawn(ship(
            Arc::downgrade(gw),
            store,
            spec.clone(),
            sender,
            dead_letter,
        ));
    }
}

async fn ship(
    gw: Weak<Gateway>,
    store: Arc<AnyAudit>,
    spec: SinkSpec,
    mut sender: Sender,
    dead_letter: PathBuf,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let Some(gateway) = gw.upgrade() else { return };
        let (s, name, n) = (store.clone(), spec.name.clone(), spec.batch);
        let batch = match tokio::task::spawn_blocking(move || s.pending_for(&name, n)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(sink = %spec.name, error = %e, "reading the audit store failed");
                drop(gateway);
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(_) => return,
        };
        if batch.is_empty() {
            drop(gateway);
            tokio::time::sleep(IDLE).await;
            continue;
        }
        let outcome = sender.send(&gateway, &batch).await;
        drop(gateway);
        let advance = match outcome {
            Ok(()) => {
                metrics::counter!(m::SINK_SHIPPED, "sink" => spec.name.clone())
                    .increment(batch.len() as u64);
                backoff = Duration::from_millis(500);
                true
            }
            Err(Failure::Permanent(e)) => {
                tracing::error!(sink = %spec.name, events = batch.len(), error = %e, file = %dead_letter.display(), "sink refused events: dead-lettered");
                metrics::counter!(m::SINK_DEAD_LETTERED, "sink" => spec.name.clone())
                    .increment(batch.len() as u64);
                match write_dead_letter(&dead_letter, &batch, &e).await {
                    Ok(()) => true,
                    Err(io) => {
                        tracing::error!(sink = %spec.name, error = %io, "dead-letter file not written: will retry");
                        false
                    }
                }
            }
            Err(Failure::Transient(e)) => {
                tracing::warn!(sink = %spec.name, error = %e, retry_in = ?backoff, "sink unavailable");
                metrics::counter!(m::SINK_FAILURES, "sink" => spec.name.clone()).increment(1);
                false
            }
        };
        if advance {
            let (s, name) = (store.clone(), spec.name.clone());
            let moved = tokio::task::spawn_blocking(move || s.advance(&name, &batch)).await;
            if !matches!(moved, Ok(Ok(()))) {
                // The batch will be sent again: duplicates, never loss.
                tracing::error!(sink = %spec.name, "sink cursor not saved");
            }
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

async fn write_dead_letter(path: &Path, batch: &[Pending], reason: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut out = Vec::new();
    for p in batch {
        let mut e = format::json_event(p);
        if let Some(o) = e.as_object_mut() {
            o.insert("dead_letter_reason".into(), serde_json::json!(reason));
        }
        out.extend_from_slice(e.to_string().as_bytes());
        out.push(b'\n');
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    f.write_all(&out).await?;
    f.sync_data().await
}
