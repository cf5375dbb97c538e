//! Server-to-client requests (sampling, elicitation, roots) waiting for a client's answer:
//! the gateway's id for each, the upstream and original id it maps back to, and the
//! session that alone may answer it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_protocol::Id;

/// Server-to-client requests waiting for a client's answer, across all upstreams. Client
/// answers carry the gateway's id; this maps it back to the upstream and its own id. The id
/// names this replica (`gatehouse-{replica}-{n}`), so an answer that reaches another replica
/// can be handed back to this one.
#[derive(Debug, Default)]
pub struct ServerRequests {
    replica: String,
    next: AtomicU64,
    map: Mutex<HashMap<String, Waiting>>,
}

#[derive(Debug)]
struct Waiting {
    upstream: String,
    id: Id,
    owner: String,
    at: Instant,
}

const SERVER_REQUEST_CAP: usize = 4096;
const SERVER_REQUEST_TTL: Duration = Duration::from_secs(600);

impl ServerRequests {
    pub fn new(replica: &str) -> ServerRequests {
        ServerRequests {
            replica: replica.to_owned(),
            ..ServerRequests::default()
        }
    }

    /// The replica that sent server request `id`, when it is one of Gatehouse's and not
    /// this replica's.
    pub fn elsewhere<'a>(&self, id: &'a Id) -> Option<&'a str> {
        let Id::Str(key) = id else { return None };
        let (replica, n) = key.strip_prefix("gatehouse-")?.rsplit_once('-')?;
        (replica != self.replica && !replica.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then_some(replica)
    }

    pub(super) fn insert(&self, upstream: &str, id: Id, owner: &str) -> String {
        let key = format!(
            "gatehouse-{}-{}",
            self.replica,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SERVER_REQUEST_CAP {
            map.retain(|_, w| w.at.elapsed() < SERVER_REQUEST_TTL);
            if map.len() >= SERVER_REQUEST_CAP {
                // Still full: unanswered requests from a misbehaving pair; drop the oldest.
                if let Some(oldest) = map.iter().min_by_key(|(_, w)| w.at).map(|(k, _)| k.clone()) {
                    map.remove(&oldest);
                }
            }
        }
        let waiting = Waiting {
            upstream: upstream.to_owned(),
            id,
            owner: owner.to_owned(),
            at: Instant::now(),
        };
        map.insert(key.clone(), waiting);
        key
    }

    /// Takes the upstream and original id for an answer from session `owner`. An answer
    /// from any other session is refused (it cannot answer someone else's request).
    pub fn take(&self, id: &Id, owner: &str) -> Option<(String, Id)> {
        let Id::Str(key) = id else { return None };
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|w| w.owner != owner) {
            return None;
        }
        map.remove(key).map(|w| (w.upstream, w.id))
    }
}
