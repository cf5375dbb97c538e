//! Server-to-client delivery per session on this replica: the standalone GET stream (list
//! changes, subscriptions, legacy SSE answers) and one stream per POST request answered with
//! SSE. Every event has an id `{stream}:{seq}` and each stream keeps a short replay buffer,
//! so a client that loses a connection resumes it with `Last-Event-ID` and misses nothing;
//! events are never replayed onto a different stream.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_protocol::Message;
use tokio::sync::mpsc;

/// Messages a slow connection may have queued before further ones wait in the replay buffer.
const STREAM_QUEUE: usize = 256;
/// Events kept per stream for replay after a reconnect.
const REPLAY: usize = 64;
/// How long a stream nobody is connected to (or a finished one) is kept for a reconnect.
const LINGER: Duration = Duration::from_secs(300);
/// The standalone GET stream's number.
pub const STANDALONE: u64 = 0;

/// Where an event sits: stream number and sequence within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub stream: u64,
    pub seq: u64,
}

impl EventId {
    /// Parses `Last-Event-ID` (`{stream}:{seq}`).
    pub fn parse(s: &str) -> Option<EventId> {
        let (a, b) = s.split_once(':')?;
        Some(EventId {
            stream: a.parse().ok()?,
            seq: b.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.stream, self.seq)
    }
}

/// One event on a session stream.
pub type Event = (EventId, Message);

#[derive(Debug)]
struct Stream {
    live: Option<mpsc::Sender<Event>>,
    replay: VecDeque<Event>,
    seq: u64,
    /// A POST stream whose final response was sent: nothing more will come.
    finished: bool,
    idle_since: Instant,
}

impl Stream {
    fn new() -> Self {
        Self {
            live: None,
            replay: VecDeque::new(),
            seq: 0,
            finished: false,
            idle_since: Instant::now(),
        }
    }

    fn push(&mut self, number: u64, msg: Message) -> bool {
        self.seq += 1;
        let ev = (
            EventId {
                stream: number,
                seq: self.seq,
            },
            msg,
        );
        if self.replay.len() == REPLAY {
            self.replay.pop_front();
        }
        self.replay.push_back(ev.clone());
        let delivered = match &self.live {
            Some(tx) => match tx.try_send(ev) {
                Ok(()) => true,
                // A reader too slow to keep up is cut off; it resumes from the replay
                // buffer with Last-Event-ID instead of silently missing events.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.live = None;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            None => false,
        };
        if !delivered {
            self.idle_since = Instant::now();
        }
        delivered
    }

    fn attach(&mut self, after: Option<u64>) -> (Vec<Event>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        self.live = Some(tx);
        let replay = match after {
            Some(seq) => self
                .replay
                .iter()
                .filter(|(id, _)| id.seq > seq)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (replay, rx)
    }

    fn stale(&self) -> bool {
        let connected = self.live.as_ref().is_some_and(|t| !t.is_closed());
        !connected && self.idle_since.elapsed() > LINGER
    }
}

#[derive(Debug, Default)]
struct Session {
    streams: HashMap<u64, Stream>,
    next_stream: u64,
}

#[derive(Debug, Default)]
pub struct Hub {
    sessions: Mutex<HashMap<String, Session>>,
    subscriptions: Mutex<HashMap<String, HashSet<String>>>,
}

impl Hub {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops streams nobody has wanted for a while, and sessions left with none.
    fn collect(sessions: &mut HashMap<String, Session>) {
        sessions.retain(|_, s| {
            s.streams.retain(|_, st| !st.stale());
            !s.streams.is_empty()
        });
    }

    /// Attaches the standalone GET stream (one per session; a new one replaces the old).
    /// With `last`, the events after it on that stream are returned for replay.
    pub fn open_standalone(
        &self,
        sid: &str,
        last: Option<u64>,
    ) -> (Vec<Event>, mpsc::Receiver<Event>) {
        let mut sessions = self.sessions();
        Self::collect(&mut sessions);
        let s = sessions.entry(sid.to_owned()).or_default();
        s.streams
            .entry(STANDALONE)
            .or_insert_with(Stream::new)
            .attach(last)
    }

    /// Opens a new stream for one POST request's answer.
    pub fn open_call(&self, sid: &str) -> (u64, mpsc::Receiver<Event>) {
        let mut sessions = self.sessions();
        let s = sessions.entry(sid.to_owned()).or_default();
        s.next_stream += 1;
        let number = s.next_stream;
        let (_, rx) = s
            .streams
            .entry(number)
            .or_insert_with(Stream::new)
            .attach(None);
        (number, rx)
    }

    /// Resumes any stream of a session after `last`. `None` if the stream is unknown here
    /// (expired, or opened on another replica).
    pub fn resume(
        &self,
        sid: &str,
        last: EventId,
    ) -> Option<(Vec<Event>, mpsc::Receiver<Event>, bool)> {
        let mut sessions = self.sessions();
        let st = sessions.get_mut(sid)?.streams.get_mut(&last.stream)?;
        let (replay, rx) = st.attach(Some(last.seq));
        Some((replay, rx, st.finished))
    }

    /// Appends to a stream (and delivers it if someone is connected).
    pub fn push(&self, sid: &str, stream: u64, msg: Message) -> bool {
        self.sessions()
            .get_mut(sid)
            .and_then(|s| s.streams.get_mut(&stream))
            .is_some_and(|st| st.push(stream, msg))
    }

    /// Marks a POST stream complete (its final response was pushed).
    pub fn finish(&self, sid: &str, stream: u64) {
        if let Some(st) = self
            .sessions()
            .get_mut(sid)
            .and_then(|s| s.streams.get_mut(&stream))
        {
            st.finished = true;
            st.live = None;
            st.idle_since = Instant::now();
        }
    }

    /// Forgets everything about a session (terminated).
    pub fn forget(&self, sid: &str) {
        self.sessions().remove(sid);
        for subs in self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values_mut()
        {
            subs.remove(sid);
        }
    }

    /// Live connections on this replica, for the metrics gauge.
    pub fn open_streams(&self) -> usize {
        self.sessions()
            .values()
            .flat_map(|s| s.streams.values())
            .filter(|st| st.live.as_ref().is_some_and(|t| !t.is_closed()))
            .count()
    }

    /// Sends on a session's standalone stream; false if nobody is connected to it here (the
    /// event is still kept for replay when the session has such a stream).
    pub fn send(&self, sid: &str, msg: Message) -> bool {
        self.push(sid, STANDALONE, msg)
    }

    /// Sends on every standalone stream held (or recently held) here.
    pub fn broadcast(&self, msg: &Message) {
        for s in self.sessions().values_mut() {
            if let Some(st) = s.streams.get_mut(&STANDALONE) {
                st.push(STANDALONE, msg.clone());
            }
        }
    }

    pub fn subscribe(&self, sid: &str, uri: &str) {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(uri.to_owned())
            .or_default()
            .insert(sid.to_owned());
    }

    pub fn unsubscribe(&self, sid: &str, uri: &str) {
        let mut subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = subs.get_mut(uri) {
            s.remove(sid);
            if s.is_empty() {
                subs.remove(uri);
            }
        }
    }

    /// The sessions subscribed here to `uri`.
    pub fn subscribers(&self, uri: &str) -> Vec<String> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
