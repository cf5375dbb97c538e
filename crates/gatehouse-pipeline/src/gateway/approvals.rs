//! How the gateway runs an approval: the approval stage's gate (find or open the request
//! for this exact call, wait for its decision, use an approval once), decisions and their
//! audit records, expiry sweeps, and webhook notifications of new requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_audit::{AuditEvent, EventKind};
use gatehouse_protocol::{Message, Notification, method};
use gatehouse_store::{ApprovalRecord, ApprovalStatus};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{CorrelationId, Gateway};
use crate::approval::{Call, Gate, Need, POLL, blocking, expired, hex, notify::deliver, pending};
use crate::client::ClientCtx;
use crate::config::Config;

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
                    arguments: crate::approval::render::redacted(args),
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
                notify(self, &cfg, &rec);
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

/// Notifies the configured webhooks of a new request, in the background, each outcome
/// audited.
fn notify(gw: &Arc<Gateway>, cfg: &Config, rec: &ApprovalRecord) {
    if cfg.approvals.notify.is_empty() {
        return;
    }
    let link = cfg
        .approvals
        .console_url
        .as_deref()
        .map(|base| format!("{}/approvals/{}", base.trim_end_matches('/'), rec.id));
    for hook in cfg.approvals.notify.clone() {
        let gw = Arc::downgrade(gw);
        let rec = rec.clone();
        let link = link.clone();
        tokio::spawn(async move {
            let Some(gw) = gw.upgrade() else { return };
            let outcome = deliver(
                &gw.approvals.http,
                gw.secrets(),
                &hook,
                &rec,
                link.as_deref(),
            )
            .await;
            let host = reqwest::Url::parse(&hook.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            let (status, detail) = match &outcome {
                Ok(()) => ("ok", format!("webhook {host}")),
                Err(e) => {
                    tracing::error!(approval = %rec.id, webhook = %host, error = %e, "approval notification failed");
                    ("error", format!("webhook {host}: {e}"))
                }
            };
            let _ = gw
                .audit_approval("approval.notified", &rec, "", &detail, status)
                .await;
        });
    }
}
