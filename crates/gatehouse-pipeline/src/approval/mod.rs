//! Human approval: which calls wait for a person, the request bound to the exact call (its
//! argument digest), the wait (held open with progress, or answered "pending" for a later
//! retry), and the decisions approvers make out of band (`api`), never through the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_audit::{AuditEvent, EventKind};
use gatehouse_policy::{Classification, Target, Verb};
use gatehouse_protocol::{Message, Notification, RpcError, method};
use gatehouse_store::{ApprovalRecord, ApprovalStatus, ApprovalStore};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

use crate::ClientCtx;
use crate::config::{Config, DataPolicy, RawToolApproval};
use crate::gateway::{CorrelationId, Gateway};

mod notify;
mod render;

pub use notify::signature as notify_signature;

/// How often a held call re-reads its request: decisions made by another process sharing
/// the store arrive this way (this process's own decisions wake it at once).
const POLL: Duration = Duration::from_secs(1);

/// Why a call must wait, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    /// `policy:ID,…`, `tool`, `default_rule` or `detection:RULE`.
    pub reason: String,
    pub approvers: Vec<String>,
    pub count: u32,
    pub timeout: Duration,
}

/// Whether a tool call needs approval: the policy that allowed it says so (`@approval`),
/// the tool's config says so, or the default rule applies (a tool that is not read-only
/// on confidential or restricted data), unless the tool's config exempts it.
pub(crate) fn needed(
    cfg: &Config,
    data: Option<&DataPolicy>,
    target: &Target,
    approval_policies: Option<&[String]>,
) -> Option<Need> {
    let Target::Tool {
        original,
        classification,
        verb,
        ..
    } = target
    else {
        return None;
    };
    let settings = &cfg.approvals;
    let configured = data
        .and_then(|d| d.tools.get(original))
        .and_then(|t| t.approval.as_ref());
    let rule = match configured {
        Some(RawToolApproval::Rule(r)) => Some(r),
        _ => None,
    };
    let reason = if let Some(p) = approval_policies {
        format!("policy:{}", p.join(","))
    } else if matches!(
        configured,
        Some(RawToolApproval::Required(true)) | Some(RawToolApproval::Rule(_))
    ) {
        "tool".to_owned()
    } else if settings.default_rule
        && configured.is_none()
        && *classification >= Classification::Confidential
        && *verb != Verb::Read
    {
        "default_rule".to_owned()
    } else {
        return None;
    };
    Some(Need {
        reason,
        approvers: rule
            .and_then(|r| r.approvers.clone())
            .unwrap_or_else(|| settings.approvers.clone()),
        count: rule.and_then(|r| r.count).unwrap_or(settings.count).max(1),
        timeout: rule
            .and_then(|r| r.timeout_secs)
            .map(Duration::from_secs)
            .unwrap_or(settings.timeout),
    })
}

/// The approval store and the in-process wake-ups of held calls.
pub struct Approvals {
    store: Result<Arc<dyn ApprovalStore>, String>,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    pub(crate) http: reqwest::Client,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

impl Approvals {
    pub(crate) fn open(cfg: &Config) -> Approvals {
        let store = crate::gateway::store(cfg, crate::config::StoreKind::Approvals)
            .approvals()
            .map_err(|e| {
                tracing::error!(path = %cfg.store_path.display(), error = %e, "approval store unavailable: calls that need approval will be refused");
                e.to_string()
            });
        Approvals {
            store,
            waiters: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn store(&self) -> Result<Arc<dyn ApprovalStore>, String> {
        self.store.clone()
    }

    fn waiter(&self, id: &str) -> Arc<Notify> {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    /// Drops a held call's wake-up, and the entry when no other call waits on it.
    fn release(&self, id: &str, waiter: Arc<Notify>) {
        let mut w = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference and `waiter`: nobody else holds it.
        if w.get(id).is_some_and(|n| Arc::strong_count(n) <= 2) {
            w.remove(id);
        }
        drop(waiter);
    }

    /// Wakes the calls held on `id` (a decision or expiry happened here).
    pub fn wake(&self, id: &str) {
        if let Some(n) = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            n.notify_waiters();
        }
    }
}

/// A blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, gatehouse_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// What the approval stage let through or answered.
pub(crate) enum Gate {
    /// Approved: the call runs, once.
    Proceed(String),
    /// The answer instead of the call: pending (a result), denied or expired (errors).
    Answer(Result<Value, RpcError>, &'static str, String),
}

/// The call as the approval stage sees it.
pub(crate) struct Call<'a> {
    pub upstream: &'a str,
    pub tool: &'a str,
    pub classification: Classification,
    pub arguments: Option<&'a Value>,
    pub progress_token: Option<Value>,
}

impl Gateway {
    /// Stage: approval. Finds or opens the request for this exact call, then waits for
    /// its decision as long as the client can be held; never lets the call through
    /// without an approval that is used here, once.
    pub(crate) async fn approval_gate(
        self: &Arc<Self>,
        ctx: &ClientCtx,
        need: Need,
        call: Call<'_>,
        events: Option<&mpsc::Sender<Message>>,
        correlation: CorrelationId,
    ) -> Gate {
        let cfg = self.config();
        let unavailable = |e: String| {
            tracing::error!(target: "gatehouse::audit", %correlation, error = %e, "approval store unavailable: call refused");
            Gate::Answer(
                Err(gatehouse_transport::refusal::internal(
                    "This call needs a person's approval, and approvals are unavailable",
                    correlation,
                )),
                "approval.unavailable",
                String::new(),
            )
        };
        let store = match self.approvals.store() {
            Ok(s) => s,
            Err(e) => return unavailable(e),
        };
        let empty = Value::Object(Map::new());
        let args = call.arguments.filter(|a| !a.is_null()).unwrap_or(&empty);
        let digest = crate::authorize::digest(args);
        let tenant = ctx.principal.tenant.clone().unwrap_or_default();
        let principal = ctx.principal.id.clone();
        let now = crate::audit::now_ms();
        let live = {
            let (s, p, t, tool, d) = (
                store.clone(),
                principal.clone(),
                tenant.clone(),
                call.tool.to_owned(),
                digest.clone(),
            );
            blocking(move || s.live(&p, &t, &tool, &d, now)).await
        };
        let mut rec = match live {
            Err(e) => return unavailable(e),
            Ok(Some(r)) => r,
            Ok(None) => {
                let (s, p, t) = (store.clone(), principal.clone(), tenant.clone());
                match blocking(move || s.pending_of(&p, &t, now)).await {
                    Err(e) => return unavailable(e),
                    Ok(n) if n >= u64::from(cfg.approvals.max_pending) => {
                        tracing::warn!(target: "gatehouse::audit", %correlation, principal = %principal, pending = n, "approval request refused: too many pending");
                        return Gate::Answer(
                            Err(gatehouse_transport::refusal::forbidden_with(
                                "Too many calls are already waiting for approval; wait for their decisions",
                                json!({"pending": n, "correlationId": correlation.to_string()}),
                            )),
                            "approval.max_pending",
                            String::new(),
                        );
                    }
                    Ok(_) => {}
                }
                let rec = ApprovalRecord {
                    id: format!(
                        "apr_{}",
                        hex(&gatehouse_transport::session::random_bytes::<12>())
                    ),
                    status: ApprovalStatus::Pending,
                    principal: principal.clone(),
                    tenant: tenant.clone(),
                    upstream: call.upstream.to_owned(),
                    tool: call.tool.to_owned(),
                    args_digest: digest.clone(),
                    arguments: render::redacted(args),
                    classification: call.classification.as_str().to_owned(),
                    reason: need.reason.clone(),
                    approvers: need.approvers.clone(),
                    required: need.count,
                    created_ms: now,
                    expires_ms: now + need.timeout.as_millis() as u64,
                    correlation: correlation.to_string(),
                    client: ctx.client.clone().unwrap_or_default(),
                    decisions: Vec::new(),
                };
                // The request is on record before anyone can act on it.
                if let Err(e) = self
                    .audit_approval("approval.requested", &rec, &rec.principal, "", "requested")
                    .await
                {
                    return unavailable(e);
                }
                let (s, r) = (store.clone(), rec.clone());
                if let Err(e) = blocking(move || s.insert(&r)).await {
                    return unavailable(e);
                }
                tracing::warn!(target: "gatehouse::audit", %correlation, approval = %rec.id, principal = %rec.principal, tool = %rec.tool, reason = %rec.reason, "call held for approval");
                notify::spawn(self, &cfg, &rec);
                rec
            }
        };
        let id = rec.id.clone();
        // Stateless (2026-07-28) clients are never held: they retry after approval.
        let hold = if ctx.version.is_stateless() {
            Duration::ZERO
        } else {
            cfg.approvals.hold
        };
        let started = Instant::now();
        let waiter = self.approvals.waiter(&id);
        let mut progress = 0u64;
        let mut next_progress = Instant::now();
        let gate = loop {
            match rec.status {
                ApprovalStatus::Approved => {
                    let (s, i) = (store.clone(), id.clone());
                    match blocking(move || s.use_once(&i, crate::audit::now_ms())).await {
                        Err(e) => break unavailable(e),
                        Ok(true) => {
                            let _ = self
                                .audit_approval("approval.used", &rec, &principal, "", "ok")
                                .await;
                            break Gate::Proceed(id.clone());
                        }
                        // Used by an identical call first, or expired: this one asks again.
                        Ok(false) => break pending(&rec, "approval.used_elsewhere"),
                    }
                }
                ApprovalStatus::Denied => {
                    let reason = rec
                        .decisions
                        .iter()
                        .rev()
                        .find(|d| !d.approve)
                        .map(|d| d.reason.clone())
                        .unwrap_or_default();
                    break Gate::Answer(
                        Err(gatehouse_transport::refusal::forbidden_with(
                            format!("Denied by an approver: {reason}"),
                            json!({
                                "approval": id, "status": "denied", "reason": reason,
                                "correlationId": correlation.to_string()
                            }),
                        )),
                        "approval.denied",
                        id.clone(),
                    );
                }
                ApprovalStatus::Expired | ApprovalStatus::Used => {
                    break expired(&id, correlation);
                }
                ApprovalStatus::Pending => {
                    let now = crate::audit::now_ms();
                    if now >= rec.expires_ms {
                        self.expire_due().await;
                        break expired(&id, correlation);
                    }
                    let elapsed = started.elapsed();
                    if elapsed >= hold {
                        break pending(&rec, "approval.pending");
                    }
                    if let (Some(events), Some(token)) = (events, &call.progress_token)
                        && Instant::now() >= next_progress
                    {
                        progress += 1;
                        next_progress = Instant::now() + cfg.approvals.progress;
                        let n = Notification::new(
                            method::PROGRESS,
                            Some(json!({
                                "progressToken": token,
                                "progress": progress,
                                "message": format!("Waiting for a person to approve this call (reference {id})"),
                            })),
                        );
                        let _ = events.try_send(Message::Notification(n));
                    }
                    let until_expiry = Duration::from_millis(rec.expires_ms.saturating_sub(now));
                    let wait = POLL.min(hold - elapsed).min(until_expiry).min(
                        next_progress
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(50)),
                    );
                    let notified = waiter.notified();
                    let _ = tokio::time::timeout(wait, notified).await;
                    let (s, i) = (store.clone(), id.clone());
                    match blocking(move || s.get(&i)).await {
                        Ok(Some(r)) => rec = r,
                        Ok(None) => break unavailable("approval request vanished".into()),
                        Err(e) => break unavailable(e),
                    }
                }
            }
        };
        self.approvals.release(&id, waiter);
        gate
    }

    /// Expires overdue requests, audits each, and wakes whoever waits on them.
    pub(crate) async fn expire_due(self: &Arc<Self>) {
        let Ok(store) = self.approvals.store() else {
            return;
        };
        let now = crate::audit::now_ms();
        match blocking(move || store.expire(now)).await {
            Ok(expired) => {
                for rec in expired {
                    tracing::warn!(target: "gatehouse::audit", approval = %rec.id, tool = %rec.tool, "approval request expired");
                    let _ = self
                        .audit_approval("approval.expired", &rec, &rec.principal, "", "expired")
                        .await;
                    self.approvals.wake(&rec.id);
                }
            }
            Err(e) => tracing::error!(error = %e, "approval expiry failed"),
        }
    }

    /// One step of an approval, on the record, linked to the call by its correlation id.
    /// Committed before the step takes effect; without an audit writer it is only logged.
    pub async fn audit_approval(
        &self,
        step: &str,
        rec: &ApprovalRecord,
        actor: &str,
        detail: &str,
        status: &str,
    ) -> Result<(), String> {
        let Some(writer) = &self.audit else {
            return Ok(());
        };
        let event = AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(EventKind::Approval),
            time_ms: crate::audit::now_ms(),
            correlation: rec.correlation.clone(),
            tenant: rec.tenant.clone(),
            principal: actor.to_owned(),
            client: rec.client.clone(),
            method: step.to_owned(),
            target: rec.tool.clone(),
            upstream: rec.upstream.clone(),
            status: status.to_owned(),
            rule: rec.reason.clone(),
            classification: rec.classification.clone(),
            args_digest: rec.args_digest.clone(),
            approval: rec.id.clone(),
            detail: detail.to_owned(),
            ..AuditEvent::default()
        };
        writer.record(event, true).await.map_err(|e| e.to_string())
    }
}

/// Sweeps overdue requests every few seconds so an expiry is recorded even when nobody
/// waits on it.
pub(crate) async fn sweep(gw: std::sync::Weak<Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(gw) = gw.upgrade() else { return };
        gw.expire_due().await;
    }
}

fn pending(rec: &ApprovalRecord, rule: &'static str) -> Gate {
    let text = format!(
        "This call is waiting for a person's approval (reference {}). Nothing was done. \
         Once it is approved, repeat the same call with the same arguments.",
        rec.id
    );
    Gate::Answer(
        Ok(json!({
            "content": [{"type": "text", "text": text}],
            "isError": true,
            "_meta": {"gatehouse/approval": {
                "id": rec.id, "status": "pending", "expiresAtMs": rec.expires_ms
            }}
        })),
        rule,
        rec.id.clone(),
    )
}

fn expired(id: &str, correlation: CorrelationId) -> Gate {
    Gate::Answer(
        Err(gatehouse_transport::refusal::forbidden_with(
            "Denied: nobody approved this call in time",
            json!({
                "approval": id, "status": "expired", "correlationId": correlation.to_string()
            }),
        )),
        "approval.expired",
        id.to_owned(),
    )
}

pub(crate) fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_yaml(
            &format!(
                r#"
upstreams:
  ops:
    url: http://127.0.0.1:9/mcp
    classification: confidential
    tools:
      rollback: {{approval: false}}
      restart: {{approval: {{approvers: [sre], count: 2, timeout_secs: 60}}}}
      status: {{approval: true}}
  wiki:
    url: http://127.0.0.1:9/mcp
{extra}"#
            ),
            &|_| None,
        )
        .unwrap()
    }

    fn tool(cfg: &Config, server: &str, name: &str, annotations: Value) -> Target {
        let data = &cfg
            .upstreams
            .iter()
            .find(|u| u.name == server)
            .unwrap()
            .data;
        data.tool(
            server,
            name,
            &format!("{server}__{name}"),
            &json!({"annotations": annotations}),
        )
    }

    fn need(cfg: &Config, server: &str, t: &Target, policies: Option<&[String]>) -> Option<Need> {
        let data = cfg
            .upstreams
            .iter()
            .find(|u| u.name == server)
            .map(|u| &u.data);
        needed(cfg, data, t, policies)
    }

    #[test]
    fn which_calls_wait_and_for_whom() {
        let c = cfg("");
        let write = json!({"readOnlyHint": false, "destructiveHint": false});
        let read = json!({"readOnlyHint": true});
        // Default rule: not read-only, on confidential data.
        let n = need(&c, "ops", &tool(&c, "ops", "deploy", write.clone()), None).unwrap();
        assert_eq!(
            (n.reason.as_str(), n.approvers.clone(), n.count),
            ("default_rule", vec!["approver".to_owned()], 1)
        );
        assert_eq!(n.timeout, Duration::from_secs(900));
        // A tool without annotations counts as destructive (MCP's defaults).
        assert!(need(&c, "ops", &tool(&c, "ops", "deploy", Value::Null), None).is_some());
        // Read-only, or on internal data: no.
        assert!(need(&c, "ops", &tool(&c, "ops", "list", read.clone()), None).is_none());
        assert!(need(&c, "wiki", &tool(&c, "wiki", "edit", write.clone()), None).is_none());
        // Exempted by config, unless a policy asks.
        let rollback = tool(&c, "ops", "rollback", write.clone());
        assert!(need(&c, "ops", &rollback, None).is_none());
        let by_policy = need(&c, "ops", &rollback, Some(&["p1".to_owned()])).unwrap();
        assert_eq!(by_policy.reason, "policy:p1");
        // Configured per tool: even a read-only one, with its own approvers, count, time.
        let n = need(&c, "ops", &tool(&c, "ops", "restart", read.clone()), None).unwrap();
        assert_eq!(
            (n.reason.as_str(), n.approvers.clone(), n.count),
            ("tool", vec!["sre".to_owned()], 2)
        );
        assert_eq!(n.timeout, Duration::from_secs(60));
        assert_eq!(
            need(&c, "ops", &tool(&c, "ops", "status", read), None)
                .unwrap()
                .reason,
            "tool"
        );
        // The default rule can be turned off; a policy still holds.
        let off = cfg("approvals: {default_rule: false}");
        assert!(
            need(
                &off,
                "ops",
                &tool(&off, "ops", "deploy", write.clone()),
                None
            )
            .is_none()
        );
        assert!(
            need(
                &off,
                "wiki",
                &tool(&off, "wiki", "edit", write),
                Some(&["p".to_owned()])
            )
            .is_some()
        );
    }

    #[test]
    fn approval_settings_are_bounded() {
        for bad in [
            "approvals: {count: 0}",
            "approvals: {timeout_secs: 0}",
            "approvals: {approvers: []}",
            "approvals: {notify: [{url: 'ftp://x'}]}",
            "approvals: {notify: [{url: 'https://x', secret: 'plain'}]}",
        ] {
            assert!(Config::from_yaml(bad, &|_| None).is_err(), "{bad}");
        }
    }
}
