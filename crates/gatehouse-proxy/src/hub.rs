//! Server-initiated messages to clients: each session's GET (or legacy SSE) stream on this
//! replica, list-change fan-out, and resource subscriptions.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use gatehouse_protocol::Message;
use tokio::sync::mpsc;

/// Messages a slow stream may have queued before further ones are dropped for it.
const STREAM_QUEUE: usize = 256;

#[derive(Debug, Default)]
pub struct Hub {
    streams: Mutex<HashMap<String, mpsc::Sender<Message>>>,
    subscriptions: Mutex<HashMap<String, HashSet<String>>>,
}

impl Hub {
    /// Opens the stream for a session, replacing any earlier one (one GET stream per session).
    pub fn register(&self, sid: &str) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sid.to_owned(), tx);
        rx
    }

    /// Closes a session's stream if `rx` is still the current one.
    pub fn unregister(&self, sid: &str) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if streams.get(sid).is_some_and(mpsc::Sender::is_closed) {
            streams.remove(sid);
        }
    }

    /// Forgets everything about a session (terminated).
    pub fn forget(&self, sid: &str) {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sid);
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
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Sends to one session; false if it has no open stream here.
    pub fn send(&self, sid: &str, msg: Message) -> bool {
        let tx = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sid)
            .cloned();
        tx.is_some_and(|tx| tx.try_send(msg).is_ok())
    }

    pub fn broadcast(&self, msg: &Message) {
        let streams: Vec<_> = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for tx in streams {
            let _ = tx.try_send(msg.clone());
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

    /// Whether any session here still wants updates for `uri`.
    pub fn has_subscribers(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(uri)
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
