//! Replicas that share streams: one Redis pub/sub channel carries what a replica must hand
//! to another — a message for a client whose stream another replica holds, a client's
//! answer to a server request another replica sent, a cancellation of a call running
//! elsewhere, a terminated session, an approval or pin decision, an upstream's changed
//! lists.
//!
//! Every envelope is signed with a key derived from the shared `session.key` and carries
//! its sender and a sequence number: whoever can write to Redis but lacks the key cannot
//! speak for a replica, and a replayed envelope is dropped. Pub/sub delivers at most once:
//! what is published while a replica is disconnected from Redis is lost to it, and
//! `/readyz` reports `redis` until the subscription is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use aws_lc_rs::hmac;
use futures_util::StreamExt;
use gatehouse_config::FleetSettings;
use gatehouse_protocol::{Id, Message, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Envelopes waiting to be published; beyond this they are dropped (and counted).
const QUEUE: usize = 4096;
/// Largest envelope accepted from the channel.
const MAX_ENVELOPE: usize = 4 << 20;
/// Envelopes older than this are dropped (replays, or a backlog from a stalled Redis).
const MAX_AGE_MS: u64 = 30_000;
/// Longest wait for Redis when connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Senders remembered for replay protection; the oldest are forgotten beyond it.
const SENDERS: usize = 1024;

/// What one replica asks the others to do.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetMsg {
    /// Put `message` on session `sid`'s standalone stream, where that stream is held.
    Stream { sid: String, message: Message },
    /// A client's answer to server request `response.id`, sent by replica `to`.
    Answer {
        to: String,
        owner: String,
        response: Response,
    },
    /// Session `owner` cancelled its request `request`.
    Cancel { owner: String, request: Id },
    /// Session `sid` (issued at `issued`) was terminated.
    SessionEnded { sid: String, issued: u64 },
    /// Approval request `id` was decided: calls held on it re-read it now.
    Approval { id: String },
    /// A pin was decided: re-vet the lists against the pin store.
    Pins,
    /// An upstream announced changed lists: refresh them from it.
    Lists {
        upstream: String,
        kinds: Vec<String>,
    },
}

impl FleetMsg {
    fn kind(&self) -> &'static str {
        match self {
            FleetMsg::Stream { .. } => "stream",
            FleetMsg::Answer { .. } => "answer",
            FleetMsg::Cancel { .. } => "cancel",
            FleetMsg::SessionEnded { .. } => "session_ended",
            FleetMsg::Approval { .. } => "approval",
            FleetMsg::Pins => "pins",
            FleetMsg::Lists { .. } => "lists",
        }
    }

    fn to_value(&self) -> Value {
        let mut v = match self {
            FleetMsg::Stream { sid, message } => json!({"sid": sid, "message": message}),
            FleetMsg::Answer {
                to,
                owner,
                response,
            } => json!({"to": to, "owner": owner, "response": Message::Response(response.clone())}),
            FleetMsg::Cancel { owner, request } => {
                json!({"owner": owner, "request": request.to_value()})
            }
            FleetMsg::SessionEnded { sid, issued } => json!({"sid": sid, "issued": issued}),
            FleetMsg::Approval { id } => json!({"id": id}),
            FleetMsg::Pins => json!({}),
            FleetMsg::Lists { upstream, kinds } => json!({"upstream": upstream, "kinds": kinds}),
        };
        v["kind"] = Value::String(self.kind().to_owned());
        v
    }

    fn from_value(v: Value) -> Option<FleetMsg> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let message = |k: &str| Message::from_value(v.get(k)?.clone()).ok();
        Some(match v.get("kind")?.as_str()? {
            "stream" => FleetMsg::Stream {
                sid: s("sid")?,
                message: message("message")?,
            },
            "answer" => FleetMsg::Answer {
                to: s("to")?,
                owner: s("owner")?,
                response: match message("response")? {
                    Message::Response(r) => r,
                    _ => return None,
                },
            },
            "cancel" => FleetMsg::Cancel {
                owner: s("owner")?,
                request: Id::from_value(v.get("request")?)?,
            },
            "session_ended" => FleetMsg::SessionEnded {
                sid: s("sid")?,
                issued: v.get("issued")?.as_u64()?,
            },
            "approval" => FleetMsg::Approval { id: s("id")? },
            "pins" => FleetMsg::Pins,
            "lists" => FleetMsg::Lists {
                upstream: s("upstream")?,
                kinds: v
                    .get("kinds")?
                    .as_array()?
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect(),
            },
            _ => return None,
        })
    }
}

/// Signs and checks envelopes: `{hex hmac}.{json}`, the JSON naming sender, sequence and
/// time.
struct Seal {
    key: hmac::Key,
    replica: String,
    seq: AtomicU64,
    /// Highest sequence seen per sender.
    seen: Mutex<HashMap<String, u64>>,
}

impl Seal {
    fn new(session_key: &[u8; 32], replica: String) -> Seal {
        // A key of its own: the session key never signs anything but sessions.
        let derive = hmac::Key::new(hmac::HMAC_SHA256, session_key);
        let key = hmac::sign(&derive, b"gatehouse fleet envelope v1");
        Seal {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            replica,
            seq: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn seal(&self, msg: &FleetMsg, now_ms: u64) -> Vec<u8> {
        let body = json!({
            "from": self.replica,
            "seq": self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            "at": now_ms,
            "msg": msg.to_value(),
        })
        .to_string();
        let tag = hmac::sign(&self.key, body.as_bytes());
        let mut out = hex::encode(tag.as_ref()).into_bytes();
        out.push(b'.');
        out.extend_from_slice(body.as_bytes());
        out
    }

    /// The message in an envelope from another replica; `Err` names why it was dropped
    /// (`Ok(None)`: one of this replica's own).
    fn open(&self, raw: &[u8], now_ms: u64) -> Result<Option<FleetMsg>, &'static str> {
        if raw.len() > MAX_ENVELOPE {
            return Err("oversized");
        }
        let dot = raw.iter().position(|b| *b == b'.').ok_or("malformed")?;
        let (tag, body) = (&raw[..dot], &raw[dot + 1..]);
        let tag = hex::decode(tag).map_err(|_| "malformed")?;
        hmac::verify(&self.key, body, &tag).map_err(|_| "bad signature")?;
        let v: Value = serde_json::from_slice(body).map_err(|_| "malformed")?;
        let from = v.get("from").and_then(Value::as_str).ok_or("malformed")?;
        if from == self.replica {
            return Ok(None);
        }
        let seq = v.get("seq").and_then(Value::as_u64).ok_or("malformed")?;
        let at = v.get("at").and_then(Value::as_u64).ok_or("malformed")?;
        if now_ms.saturating_sub(at) > MAX_AGE_MS || at > now_ms + MAX_AGE_MS {
            return Err("stale");
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            match seen.get(from) {
                Some(last) if seq <= *last => return Err("replayed"),
                _ => {}
            }
            if seen.len() >= SENDERS && !seen.contains_key(from) {
                seen.clear();
            }
            seen.insert(from.to_owned(), seq);
        }
        let msg = v.get("msg").cloned().ok_or("malformed")?;
        FleetMsg::from_value(msg).map(Some).ok_or("malformed")
    }
}

/// This replica's end of the channel.
pub struct Fleet {
    seal: Seal,
    out: mpsc::Sender<Vec<u8>>,
    subscribed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("replica", &self.seal.replica)
            .finish()
    }
}

fn now_ms() -> u64 {
    crate::audit::now_ms()
}

/// Where received messages go: the gateway, which owns the fleet.
pub trait Receiver: Send + Sync + 'static {
    /// The fleet the messages came through (`None` once it is gone).
    fn fleet(&self) -> Option<&Fleet>;
    /// One checked message from another replica.
    fn receive(self: Arc<Self>, msg: FleetMsg);
}

impl Fleet {
    /// Joins the channel: a publisher and a subscriber task, each reconnecting on its own.
    /// Received messages go to `to` (a weak reference: it owns the fleet).
    pub fn start<R: Receiver>(
        settings: &FleetSettings,
        session_key: &[u8; 32],
        replica: &str,
        to: Weak<R>,
    ) -> Result<Fleet, String> {
        let client = crate::ratelimit::redis_client(&settings.redis, settings.redis_ca.as_deref())?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let subscribed = Arc::new(AtomicBool::new(false));
        tokio::spawn(publish_loop(client.clone(), settings.channel.clone(), rx));
        let fleet = Fleet {
            seal: Seal::new(session_key, replica.to_owned()),
            out: tx,
            subscribed: subscribed.clone(),
        };
        tokio::spawn(subscribe_loop(
            client,
            settings.channel.clone(),
            to,
            subscribed,
        ));
        Ok(fleet)
    }

    /// This replica's name on the channel (random per process).
    pub fn replica(&self) -> &str {
        &self.seal.replica
    }

    /// Whether the subscription to the channel is up (readiness).
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// Queues a message for the other replicas; never waits (a full queue drops it).
    pub fn publish(&self, msg: FleetMsg) {
        let kind = msg.kind();
        let sealed = self.seal.seal(&msg, now_ms());
        if self.out.try_send(sealed).is_err() {
            metrics::counter!("gatehouse_fleet_dropped_total", "kind" => kind, "reason" => "queue_full")
                .increment(1);
        } else {
            metrics::counter!("gatehouse_fleet_published_total", "kind" => kind).increment(1);
        }
    }

    /// Checks one envelope read from the channel.
    fn open(&self, raw: &[u8]) -> Option<FleetMsg> {
        match self.seal.open(raw, now_ms()) {
            Ok(m) => m,
            Err(why) => {
                metrics::counter!("gatehouse_fleet_dropped_total", "kind" => "received", "reason" => why)
                    .increment(1);
                tracing::warn!(reason = why, "fleet message dropped");
                None
            }
        }
    }
}

/// Backoff between reconnects: 100 ms doubling to 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2_000))
}

async fn publish_loop(client: redis::Client, channel: String, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut attempt = 0;
    while let Some(payload) = rx.recv().await {
        if conn.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
                .await
            {
                Ok(Ok(c)) => {
                    conn = Some(c);
                    attempt = 0;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "fleet: cannot reach Redis to publish"),
                Err(_) => tracing::warn!("fleet: Redis did not answer a connect in time"),
            }
        }
        let Some(c) = conn.as_mut() else {
            metrics::counter!("gatehouse_fleet_dropped_total", "kind" => "published", "reason" => "redis_down")
                .increment(1);
            // Do not hammer a dead Redis for every message.
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            continue;
        };
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(c)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "fleet: publish failed");
            metrics::counter!("gatehouse_fleet_dropped_total", "kind" => "published", "reason" => "redis_error")
                .increment(1);
            conn = None;
        }
    }
}

async fn subscribe_loop<R: Receiver>(
    client: redis::Client,
    channel: String,
    gw: Weak<R>,
    subscribed: Arc<AtomicBool>,
) {
    let mut attempt = 0;
    loop {
        if gw.strong_count() == 0 {
            return;
        }
        let joined = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, joined).await {
            Ok(Ok(ps)) => {
                attempt = 0;
                subscribed.store(true, Ordering::Relaxed);
                tracing::info!(channel = %channel, "fleet: subscribed");
                let mut stream = ps.into_on_message();
                while let Some(msg) = stream.next().await {
                    let Some(gw) = gw.upgrade() else { return };
                    let Some(fleet) = gw.fleet() else { return };
                    if let Some(m) = fleet.open(msg.get_payload_bytes()) {
                        metrics::counter!("gatehouse_fleet_received_total", "kind" => m.kind())
                            .increment(1);
                        gw.receive(m);
                    }
                }
                subscribed.store(false, Ordering::Relaxed);
                tracing::warn!("fleet: subscription lost; reconnecting");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "fleet: cannot subscribe"),
            Err(_) => tracing::warn!("fleet: Redis did not answer a subscribe in time"),
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Seal, Seal) {
        (
            Seal::new(&[9u8; 32], "a".into()),
            Seal::new(&[9u8; 32], "b".into()),
        )
    }

    fn every_kind() -> Vec<FleetMsg> {
        vec![
            FleetMsg::Stream {
                sid: "s1".into(),
                message: gatehouse_protocol::Notification::new(
                    "notifications/resources/updated",
                    Some(json!({"uri": "x://1"})),
                )
                .into(),
            },
            FleetMsg::Answer {
                to: "a".into(),
                owner: "s1".into(),
                response: Response::ok(Id::Str("gatehouse-a-1".into()), json!({"ok": true})),
            },
            FleetMsg::Cancel {
                owner: "s1".into(),
                request: Id::Num(7.into()),
            },
            FleetMsg::SessionEnded {
                sid: "s1".into(),
                issued: 42,
            },
            FleetMsg::Approval { id: "ap1".into() },
            FleetMsg::Pins,
            FleetMsg::Lists {
                upstream: "db".into(),
                kinds: vec!["tools".into()],
            },
        ]
    }

    #[test]
    fn every_message_crosses_between_replicas_intact() {
        let (a, b) = pair();
        for m in every_kind() {
            let raw = a.seal(&m, 1_000);
            assert_eq!(b.open(&raw, 1_000), Ok(Some(m.clone())));
            // The sender ignores its own.
            assert_eq!(a.open(&raw, 1_000), Ok(None));
        }
    }

    #[test]
    fn a_forged_altered_replayed_or_stale_envelope_is_dropped() {
        let (a, b) = pair();
        let m = FleetMsg::Approval { id: "x".into() };
        // Someone with Redis access but not the session key.
        let outsider = Seal::new(&[1u8; 32], "a".into());
        assert_eq!(
            b.open(&outsider.seal(&m, 1_000), 1_000),
            Err("bad signature")
        );
        // A signed envelope with its body changed.
        let raw = a.seal(&m, 1_000);
        let mut changed = raw.clone();
        let n = changed.len();
        changed[n - 3] ^= 1;
        assert_eq!(b.open(&changed, 1_000), Err("bad signature"));
        assert!(b.open(&raw, 1_000).is_ok());
        assert_eq!(b.open(&raw, 1_000), Err("replayed"));
        let late = a.seal(&m, 1_000);
        assert_eq!(b.open(&late, 1_000 + MAX_AGE_MS + 1), Err("stale"));
        assert_eq!(b.open(b"nonsense", 0), Err("malformed"));
    }

    #[test]
    fn an_answer_names_the_replica_that_sent_its_request() {
        let here = gatehouse_transport::upstream::ServerRequests::new("aa11");
        let id = |s: &str| Id::Str(s.to_owned());
        assert_eq!(here.elsewhere(&id("gatehouse-bb22-3")), Some("bb22"));
        // Its own, an id from before replicas were named, and anyone else's ids.
        assert_eq!(here.elsewhere(&id("gatehouse-aa11-3")), None);
        assert_eq!(here.elsewhere(&id("gatehouse-3")), None);
        assert_eq!(here.elsewhere(&id("gatehouse-bb22-x")), None);
        assert_eq!(here.elsewhere(&id("client-1")), None);
        assert_eq!(here.elsewhere(&Id::Num(3.into())), None);
    }
}
