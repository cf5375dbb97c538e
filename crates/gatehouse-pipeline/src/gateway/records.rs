//! The gateway's own audit records outside the request chain: refused and successful
//! sign-ins, authorization-server events, sandboxed servers' connections out, and notes.

use gatehouse_auth::Principal;

use super::Gateway;

impl Gateway {
    /// Records a refused authentication in the audit store (queued, not waited for).
    pub fn audit_auth_failure(&self, reason: &str, scope: Option<&str>) {
        let Some(w) = &self.audit else { return };
        let event = gatehouse_audit::AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(gatehouse_audit::EventKind::Auth),
            time_ms: crate::audit::now_ms(),
            method: "authentication refused".into(),
            status: "denied".into(),
            virtual_server: scope.unwrap_or("").to_owned(),
            detail: reason.chars().take(256).collect(),
            ..Default::default()
        };
        w.queue(event);
    }

    /// A sandboxed server's connection out, made or refused (queued, not waited for).
    pub(super) fn audit_egress(
        &self,
        upstream: String,
        target: String,
        allowed: bool,
        detail: String,
    ) {
        if !allowed {
            tracing::warn!(target: "gatehouse::audit", upstream = %upstream, to = %target, "egress refused: {detail}");
        }
        let Some(w) = &self.audit else { return };
        w.queue(gatehouse_audit::AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(gatehouse_audit::EventKind::Egress),
            time_ms: crate::audit::now_ms(),
            method: "sandbox.egress".into(),
            target,
            upstream,
            status: if allowed { "ok" } else { "denied" }.into(),
            rule: if allowed { "" } else { "sandbox.egress" }.into(),
            detail,
            ..Default::default()
        });
    }

    /// A successful sign-in that opened a session (queued, not waited for): who, how,
    /// with which client, and the session it holds.
    pub fn audit_session_opened(&self, principal: &Principal, session: &str, client: &str) {
        let Some(w) = &self.audit else { return };
        w.queue(gatehouse_audit::AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(gatehouse_audit::EventKind::Auth),
            time_ms: crate::audit::now_ms(),
            tenant: principal.tenant.clone().unwrap_or_default(),
            principal: principal.id.clone(),
            auth_method: principal.method_label().to_owned(),
            client: client.chars().take(128).collect(),
            session: session.to_owned(),
            method: "auth.session_opened".into(),
            status: "ok".into(),
            ..Default::default()
        });
    }

    /// Records an authorization-server event (sign-in, token issue, rotation, replay,
    /// revocation, registration) and waits for its commit; a failure is logged.
    pub async fn audit_oauth(&self, e: &gatehouse_auth::FacadeEvent) {
        if e.ok {
            tracing::info!(target: "gatehouse::audit", event = e.what, principal = %e.principal, client = %e.client_id, "{}", e.detail);
        } else {
            tracing::warn!(target: "gatehouse::audit", event = e.what, principal = %e.principal, client = %e.client_id, "{}", e.detail);
        }
        let Some(w) = &self.audit else { return };
        let event = gatehouse_audit::AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(gatehouse_audit::EventKind::Auth),
            time_ms: crate::audit::now_ms(),
            tenant: e.tenant.clone().unwrap_or_default(),
            principal: e.principal.clone(),
            auth_method: "gateway_token".into(),
            client: e.client_id.clone(),
            method: e.what.to_owned(),
            status: if e.ok { "ok" } else { "denied" }.into(),
            detail: e.detail.chars().take(512).collect(),
            ..Default::default()
        };
        if let Err(err) = w.record(event, true).await {
            tracing::error!(target: "gatehouse::audit", error = %err, event = e.what, "audit record not committed");
        }
    }

    /// Records a gateway-level event (lifecycle, configuration) in the audit store, when
    /// one is configured, and waits for its commit; a failure is logged.
    pub async fn audit_note(&self, kind: gatehouse_audit::EventKind, what: &str, detail: String) {
        let Some(w) = &self.audit else { return };
        let event = gatehouse_audit::AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(kind),
            time_ms: crate::audit::now_ms(),
            method: what.to_owned(),
            detail,
            ..Default::default()
        };
        if let Err(e) = w.record(event, true).await {
            tracing::error!(target: "gatehouse::audit", error = %e, event = what, "audit record not committed");
        }
    }
}
