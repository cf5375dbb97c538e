//! Server-sent events: an encoder for the streams Gatehouse sends and a bounded, incremental
//! decoder for the streams upstreams send.

use bytes::{Bytes, BytesMut};

/// One dispatched SSE event. `data` is empty for events that carry none (a priming event).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// Encodes one event. Multi-line data becomes several `data:` lines.
pub fn encode_sse_event(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\n");
    }
    if let Some(ev) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(ev.as_bytes());
        out.extend_from_slice(b"\n");
    }
    if data.is_empty() {
        out.extend_from_slice(b"data: \n");
    }
    for line in data.split('\n').filter(|_| !data.is_empty()) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE event exceeds {limit} bytes")]
    EventTooLarge { limit: usize },
    #[error("SSE stream is not UTF-8")]
    NotUtf8,
}

/// Incremental SSE decoder with a cap on one event's size (and so on buffered bytes).
#[derive(Debug)]
pub struct SseDecoder {
    buf: Vec<u8>,
    max_event_bytes: usize,
    current: SseEvent,
    has_data: bool,
    event_bytes: usize,
    last_id: Option<String>,
    skip_lf: bool,
}

impl SseDecoder {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_event_bytes,
            current: SseEvent::default(),
            has_data: false,
            event_bytes: 0,
            last_id: None,
            skip_lf: false,
        }
    }

    /// The last event id seen, for `Last-Event-ID` on reconnect.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        for &b in chunk {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            if b == b'\n' || b == b'\r' {
                self.skip_lf = b == b'\r';
                let line = std::mem::take(&mut self.buf);
                if let Some(ev) = self.line(&line)? {
                    events.push(ev);
                }
                continue;
            }
            self.buf.push(b);
            self.event_bytes += 1;
            if self.event_bytes > self.max_event_bytes {
                return Err(SseError::EventTooLarge {
                    limit: self.max_event_bytes,
                });
            }
        }
        Ok(events)
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            self.event_bytes = 0;
            let ev = std::mem::take(&mut self.current);
            let had = std::mem::replace(&mut self.has_data, false);
            if ev.id.is_some() || had || ev.event.is_some() {
                return Ok(Some(ev));
            }
            return Ok(None);
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => {
                self.current.id = Some(value.to_owned());
                self.last_id = Some(value.to_owned());
            }
            "retry" => self.current.retry = value.parse().ok(),
            _ => {}
        }
        Ok(None)
    }
}
