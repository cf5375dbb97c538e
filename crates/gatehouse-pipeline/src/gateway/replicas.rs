//! What this replica hands to the others through the fleet channel, and what it does with
//! what they hand to it. Without a fleet every method here acts on this replica alone.

use std::sync::Arc;

use gatehouse_protocol::{Id, Message, Response};

use super::Gateway;
use crate::fleet::{Fleet, FleetMsg, Receiver};

impl Receiver for Gateway {
    fn fleet(&self) -> Option<&Fleet> {
        self.fleet.get()
    }

    fn receive(self: Arc<Self>, msg: FleetMsg) {
        self.on_fleet(msg);
    }
}

impl Gateway {
    /// Puts a message on a session's standalone stream: here when this replica holds the
    /// connection, else on whichever replica does.
    pub fn deliver(&self, sid: &str, msg: Message) {
        match self.fleet.get() {
            None => {
                self.hub.send(sid, msg);
            }
            Some(fleet) => {
                if !self.hub.send(sid, msg.clone()) {
                    fleet.publish(FleetMsg::Stream {
                        sid: sid.to_owned(),
                        message: msg,
                    });
                }
            }
        }
    }

    /// A client's answer to a server request: to the upstream that asked, when the request
    /// was sent from here; to the replica that sent it otherwise. Only the session the
    /// request went to may answer it (checked where it is waiting).
    pub fn client_answered(&self, owner: &str, mut resp: Response) {
        match self.server_requests.take(&resp.id, owner) {
            Some((upstream, original)) => {
                resp.id = original;
                if let Some(up) = self.upstream(&upstream) {
                    tokio::spawn(async move { up.send(resp.into()).await });
                }
            }
            None => match (
                self.fleet.get(),
                self.server_requests.elsewhere(&resp.id).map(str::to_owned),
            ) {
                (Some(fleet), Some(to)) => fleet.publish(FleetMsg::Answer {
                    to,
                    owner: owner.to_owned(),
                    response: resp,
                }),
                _ => tracing::info!(id = ?resp.id, "client answered a request it was not sent"),
            },
        }
    }

    /// A session cancelled one of its requests: the call stops wherever it runs.
    pub fn cancel_anywhere(&self, owner: &str, request: &Id) {
        if !self.cancel_here(owner, request)
            && let Some(fleet) = self.fleet.get()
        {
            fleet.publish(FleetMsg::Cancel {
                owner: owner.to_owned(),
                request: request.clone(),
            });
        }
    }

    /// A client terminated its session: refused from now on by every replica, its streams
    /// dropped.
    pub fn end_session(&self, claims: &gatehouse_transport::session::SessionClaims) {
        self.sessions.revoke(claims);
        self.hub.forget(&claims.sid);
        if let Some(fleet) = self.fleet.get() {
            fleet.publish(FleetMsg::SessionEnded {
                sid: claims.sid.clone(),
                issued: claims.issued,
            });
        }
    }

    /// An approval request was decided here: calls held on it, here and on every replica,
    /// re-read it now.
    pub fn approval_decided(&self, id: &str) {
        self.approvals.wake(id);
        if let Some(fleet) = self.fleet.get() {
            fleet.publish(FleetMsg::Approval { id: id.to_owned() });
        }
    }

    /// A pin was decided here: every replica re-vets its lists against the pin store (shared
    /// in PostgreSQL) and tells its clients what changed.
    pub fn pins_decided(&self) {
        self.pins.forget();
        self.rebuild_catalog();
        if let Some(fleet) = self.fleet.get() {
            fleet.publish(FleetMsg::Pins);
        }
    }

    /// An upstream said its lists changed: the other replicas refresh theirs from it too
    /// (their own connection to it may never hear the news).
    pub(crate) fn lists_changed(&self, upstream: &str, kinds: &[&str]) {
        if let Some(fleet) = self.fleet.get() {
            fleet.publish(FleetMsg::Lists {
                upstream: upstream.to_owned(),
                kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            });
        }
    }

    /// A client cancelled one of its calls: stops it if it runs here.
    fn cancel_here(&self, owner: &str, request_id: &Id) -> bool {
        let key = (owner.to_owned(), request_id.clone());
        match self
            .cancellable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key)
        {
            Some(tx) => {
                let _ = tx.send(());
                true
            }
            None => false,
        }
    }

    /// A message from another replica (its envelope already checked).
    fn on_fleet(self: &Arc<Self>, msg: FleetMsg) {
        match msg {
            // Only where the session's stream is: other replicas hold nothing for it.
            FleetMsg::Stream { sid, message } => {
                self.hub.send(&sid, message);
            }
            FleetMsg::Answer {
                to,
                owner,
                response,
            } => {
                if to == self.replica {
                    self.client_answered(&owner, response);
                }
            }
            FleetMsg::Cancel { owner, request } => {
                self.cancel_here(&owner, &request);
            }
            FleetMsg::SessionEnded { sid, issued } => {
                self.sessions.revoke_id(&sid, issued);
                self.hub.forget(&sid);
            }
            FleetMsg::Approval { id } => self.approvals.wake(&id),
            FleetMsg::Pins => {
                self.pins.forget();
                self.rebuild_catalog();
            }
            FleetMsg::Lists { upstream, kinds } => {
                const KNOWN: [&str; 4] = ["tools", "prompts", "resources", "templates"];
                let kinds: Vec<&'static str> = KNOWN
                    .into_iter()
                    .filter(|k| kinds.iter().any(|x| x == k))
                    .collect();
                if self.upstream(&upstream).is_some() && !kinds.is_empty() {
                    let g = self.clone();
                    tokio::spawn(async move { g.refresh_lists(&upstream, &kinds).await });
                }
            }
        }
    }
}
