//! Server-initiated messages to clients: each session's GET (or legacy SSE) stream on this
//! replica, list-change fan-out, resource subscriptions, and a short replay buffer so a
//! client that reconnects with `Last-Event-ID` misses nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_protocol::Message;
use tokio::sync::mpsc;

/// Messages a slow stream may have queued before further ones are dropped for it.
const STREAM_QUEUE: usize = 256;
/// Events kept per session for replay after a reconnect.
const REPLAY: usize = 64;
/// How long a disconnected session's buffer is kept for a reconnect.
const LINGER: Duration = Duration::from_secs(300);

/// One event on a session stream: its id (for `Last-Event-ID`) and the message.
pub type Event = (u64, Message);

#[derive(Debug)]
struct Stream {
    live: Option<mpsc::Sender<Event>>,
    replay: VecDeque<Event>,
    next: u64,
    left: Instant,
}

impl Stream {
    fn push(&mut self, msg: Message) -> bool {
        self.next += 1;
        let ev = (self.next, msg);
        if self.replay.len() == REPLAY {
            self.replay.pop_front();
        }
        self.replay.push_back(ev.clone());
        self.live.as_ref().is_some_and(|tx| tx.try_send(ev).is_ok())
    }
}

#[derive(Debug, Default)]
pub struct Hub {
    streams: Mutex<HashMap<String, Stream>>,
    subscriptions: Mutex<HashMap<String, HashSet<String>>>,
}

impl Hub {
    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stream>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the stream for a session, replacing any earlier one (one GET stream per
    /// session). Returns the buffered events after `last_event_id` and the live receiver.
    pub fn register(
        &self,
        sid: &str,
        last_event_id: Option<u64>,
    ) -> (Vec<Event>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut streams = self.streams();
        streams.retain(|_, s| {
            s.live.as_ref().is_some_and(|t| !t.is_closed()) || s.left.elapsed() < LINGER
        });
        let s = streams.entry(sid.to_owned()).or_insert_with(|| Stream {
            live: None,
            replay: VecDeque::new(),
            next: 0,
            left: Instant::now(),
        });
        s.live = Some(tx);
        let replay = match last_event_id {
            Some(after) => s
                .replay
                .iter()
                .filter(|(id, _)| *id > after)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (replay, rx)
    }

    /// Marks a session's stream as gone; its buffer lingers for a reconnect.
    pub fn unregister(&self, sid: &str) {
        if let Some(s) = self.streams().get_mut(sid)
            && s.live.as_ref().is_some_and(mpsc::Sender::is_closed)
        {
            s.live = None;
            s.left = Instant::now();
        }
    }

    /// Forgets everything about a session (terminated).
    pub fn forget(&self, sid: &str) {
        self.streams().remove(sid);
        for subs in self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values_mut()
        {
            subs.remove(sid);
        }
    }

    pub fn open_streams(&self) -> usize {
        self.streams().values().filter(|s| s.live.is_some()).count()
    }

    /// Sends to one session; false if it has no live stream here (the event is still kept
    /// for replay when the session had one).
    pub fn send(&self, sid: &str, msg: Message) -> bool {
        self.streams().get_mut(sid).is_some_and(|s| s.push(msg))
    }

    /// Sends to every session that holds (or recently held) a stream here.
    pub fn broadcast(&self, msg: &Message) {
        for s in self.streams().values_mut() {
            s.push(msg.clone());
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

    pub fn to_subscribers(&self, uri: &str, msg: &Message) {
        let sids: Vec<String> = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for sid in sids {
            self.send(&sid, msg.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_protocol::Notification;

    use super::Hub;

    fn note(n: &str) -> gatehouse_protocol::Message {
        Notification::new(n, None).into()
    }

    #[test]
    fn reconnect_replays_what_was_missed_and_nothing_else() {
        let hub = Hub::default();
        let (_, rx) = hub.register("s", None);
        hub.broadcast(&note("a"));
        drop(rx);
        hub.unregister("s");
        hub.broadcast(&note("b"));
        hub.broadcast(&note("c"));
        let (replay, _rx) = hub.register("s", Some(1));
        let methods: Vec<_> = replay
            .iter()
            .map(|(id, m)| (*id, m.method().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(methods, vec![(2, "b".to_owned()), (3, "c".to_owned())]);
    }

    #[test]
    fn replay_is_bounded_and_forget_drops_it() {
        let hub = Hub::default();
        let (_, rx) = hub.register("s", None);
        drop(rx);
        for _ in 0..200 {
            hub.broadcast(&note("x"));
        }
        let (replay, _rx) = hub.register("s", Some(0));
        assert_eq!(replay.len(), super::REPLAY);
        hub.forget("s");
        assert!(!hub.send("s", note("y")));
    }
}
