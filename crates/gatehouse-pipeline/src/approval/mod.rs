//! Human approval: which calls wait for a person, the request bound to the exact call (its
//! argument digest), the wait (held open with progress, or answered "pending" for a later
//! retry), and the decisions approvers make out of band (`api`), never through the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gatehouse_policy::{Classification, Target, Verb};
use gatehouse_protocol::RpcError;
use gatehouse_store::{ApprovalRecord, ApprovalStore};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config::{Config, DataPolicy, RawToolApproval};
use gatehouse_transport::correlation::CorrelationId;

pub(crate) mod notify;
pub(crate) mod render;

pub use notify::signature as notify_signature;

/// How often a held call re-reads its request: decisions made by another process sharing
/// the store arrive this way (this process's own decisions wake it at once).
pub(crate) const POLL: Duration = Duration::from_secs(1);

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
        let store = cfg.backend(crate::config::StoreKind::Approvals)
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

    pub(crate) fn waiter(&self, id: &str) -> Arc<Notify> {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    /// Drops a held call's wake-up, and the entry when no other call waits on it.
    pub(crate) fn release(&self, id: &str, waiter: Arc<Notify>) {
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
pub(crate) async fn blocking<T: Send + 'static>(
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

pub(crate) fn pending(rec: &ApprovalRecord, rule: &'static str) -> Gate {
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

pub(crate) fn expired(id: &str, correlation: CorrelationId) -> Gate {
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
