//! OpenTelemetry traces, exported over OTLP/HTTP in protobuf: a server span per request, a
//! child span per stage of the chain and a client span for the upstream call. A W3C
//! `traceparent` from the client (header, or `params._meta.traceparent`) is the parent;
//! upstreams get ours, as a header over HTTP and in `params._meta` for every transport.
//! Spans are queued by the request path (one lock, no IO) and shipped by one task.

mod proto;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatehouse_config::TracesSettings;

/// Spans waiting for the exporter, at most; more are dropped and counted.
const QUEUE: usize = 16_384;
/// Spans that wake the exporter before its interval.
const BATCH: usize = 512;
/// How often the exporter ships what is queued.
const INTERVAL: Duration = Duration::from_secs(1);

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Attr {
    fn from(s: &str) -> Attr {
        Attr::Str(s.to_owned())
    }
}

impl From<String> for Attr {
    fn from(s: String) -> Attr {
        Attr::Str(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(&'static str, Attr)>,
    /// Set when the span failed: its status is error, with this message.
    pub error: Option<String>,
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Random ids: unpredictable is not needed, distinct is. A per-thread xorshift seeded once
/// from the system's randomness.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut b = [0u8; 8];
            let _ = aws_lc_rs::rand::fill(&mut b);
            u64::from_le_bytes(b) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

fn span_id() -> [u8; 8] {
    loop {
        let id = random_u64().to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// A W3C trace context: `00-{trace id}-{parent id}-{flags}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl Parent {
    /// Parses a `traceparent` value; `None` for anything malformed (then a new trace starts,
    /// as the W3C recommendation says).
    pub fn parse(v: &str) -> Option<Parent> {
        let mut parts = v.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; a later version may add more after them.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        let flags = u8::from_str_radix(flags, 16)
            .ok()
            .filter(|_| flags.len() == 2)?;
        // Lowercase hex only, and all-zero ids are invalid.
        if trace_id == [0; 16] || span_id == [0; 8] || v.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Some(Parent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// `traceparent` for a span of ours.
pub fn traceparent(trace_id: &[u8; 16], span_id: &[u8; 8]) -> String {
    format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(span_id))
}

/// One request's spans while it runs: the server span's ids, and the children so far.
#[derive(Debug)]
pub struct Spans {
    pub trace_id: [u8; 16],
    /// The request's own (server) span.
    pub span_id: [u8; 8],
    /// The client's span, when it sent a trace context.
    pub parent: Option<[u8; 8]>,
    pub start_ns: u64,
    pub children: Vec<Span>,
}

impl Spans {
    /// A child of the request's span, finished now.
    pub fn child(
        &mut self,
        name: impl Into<String>,
        kind: Kind,
        start_ns: u64,
        id: [u8; 8],
        attrs: Vec<(&'static str, Attr)>,
        error: Option<String>,
    ) {
        self.children.push(Span {
            trace_id: self.trace_id,
            span_id: id,
            parent: Some(self.span_id),
            name: name.into(),
            kind,
            start_ns,
            end_ns: now_ns(),
            attrs,
            error,
        });
    }

    /// A fresh span id for a child whose context leaves before it ends (the upstream call).
    pub fn new_id(&self) -> [u8; 8] {
        span_id()
    }
}

/// Queues finished spans and ships them to the collector.
pub struct Tracer {
    queue: Mutex<Vec<Span>>,
    wake: tokio::sync::Notify,
    settings: TracesSettings,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

impl Tracer {
    pub fn new(settings: TracesSettings) -> Tracer {
        Tracer {
            queue: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            settings,
        }
    }

    /// A request's spans, or `None` when it is not sampled: a sampled parent is followed
    /// (and an unsampled one too), otherwise `sample` of new traces are kept.
    pub fn start(&self, parent: Option<Parent>) -> Option<Spans> {
        let sampled = match parent {
            Some(p) => p.sampled,
            None => {
                self.settings.sample >= 1.0
                    || ((random_u64() >> 11) as f64 / ((1u64 << 53) as f64)) < self.settings.sample
            }
        };
        if !sampled {
            return None;
        }
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => {
                let mut t = [0u8; 16];
                t[..8].copy_from_slice(&random_u64().to_be_bytes());
                t[8..].copy_from_slice(&span_id());
                t
            }
        };
        Some(Spans {
            trace_id,
            span_id: span_id(),
            parent: parent.map(|p| p.span_id),
            start_ns: now_ns(),
            children: Vec::new(),
        })
    }

    /// Queues a request's spans: its own last, with `name` and `attrs`.
    pub fn finish(
        &self,
        mut spans: Spans,
        name: String,
        attrs: Vec<(&'static str, Attr)>,
        error: Option<String>,
    ) {
        spans.children.push(Span {
            trace_id: spans.trace_id,
            span_id: spans.span_id,
            parent: spans.parent,
            name,
            kind: Kind::Server,
            start_ns: spans.start_ns,
            end_ns: now_ns(),
            attrs,
            error,
        });
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() + spans.children.len() > QUEUE {
            drop(q);
            metrics::counter!(crate::metrics::TRACES_DROPPED)
                .increment(spans.children.len() as u64);
            return;
        }
        q.append(&mut spans.children);
        let wake = q.len() >= BATCH;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Vec<Span> {
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Ships queued spans every second (sooner when a batch is full) until the tracer is
    /// dropped; a collector that fails loses that batch (counted), never the request.
    pub async fn export(tracer: std::sync::Weak<Tracer>) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "traces: no HTTP client, nothing is exported");
                return;
            }
        };
        loop {
            let Some(t) = tracer.upgrade() else { return };
            let spans = t.take();
            if !spans.is_empty() {
                t.ship(&client, &spans).await;
            }
            // A batch filled meanwhile left a permit: this wait then ends at once.
            let _ = tokio::time::timeout(INTERVAL, t.wake.notified()).await;
        }
    }

    async fn ship(&self, client: &reqwest::Client, spans: &[Span]) {
        let resource = [
            (
                "service.name",
                Attr::from(self.settings.service_name.as_str()),
            ),
            ("service.version", Attr::from(env!("CARGO_PKG_VERSION"))),
            ("telemetry.sdk.name", Attr::from("gatehouse")),
            ("telemetry.sdk.language", Attr::from("rust")),
        ];
        let body = proto::export_request(&resource, spans);
        let mut rb = client
            .post(&self.settings.endpoint)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body);
        for (k, v) in &self.settings.headers {
            rb = rb.header(k, v);
        }
        match rb.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(status = %r.status(), spans = spans.len(), "traces: the collector refused a batch");
                metrics::counter!(crate::metrics::TRACES_DROPPED).increment(spans.len() as u64);
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), spans = spans.len(), "traces: the collector is unreachable");
                metrics::counter!(crate::metrics::TRACES_DROPPED).increment(spans.len() as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_as_w3c_says_and_malformed_ones_start_a_new_trace() {
        let p = Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert!(p.sampled);
        assert_eq!(hex::encode(p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            traceparent(&p.trace_id, &p.span_id),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert!(
            !Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .expect("valid")
                .sampled
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(Parent::parse(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(
            Parent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some()
        );
    }

    #[test]
    fn an_unsampled_parent_is_followed_and_a_sampled_one_continues_its_trace() {
        let t = Tracer::new(TracesSettings {
            endpoint: "http://127.0.0.1:1/v1/traces".into(),
            service_name: "gatehouse".into(),
            sample: 1.0,
            headers: Vec::new(),
        });
        let parent = Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(t.start(parent).is_none());
        let parent = Parent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let s = t.start(parent).expect("sampled");
        assert_eq!(s.trace_id, parent.unwrap().trace_id);
        assert_eq!(s.parent, Some(parent.unwrap().span_id));
        assert_ne!(s.span_id, [0; 8]);
        let fresh = t.start(None).expect("sample 1.0 keeps every trace");
        assert_ne!(fresh.trace_id, s.trace_id);
        assert_eq!(fresh.parent, None);
    }
}
