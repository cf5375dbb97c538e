//! What one request leaves behind: the facts the stages gather as it runs ([`Trace`]) and
//! the audit record written from them at the end.

use gatehouse_audit::{AuditEvent, EventKind};
use gatehouse_policy::{Classification, Verb};
use serde_json::Value;

use crate::client::ClientCtx;
use gatehouse_transport::correlation::CorrelationId;
use gatehouse_transport::upstream::UpstreamError;

/// What an audit record says about a request beyond its method and outcome.
#[derive(Debug, Default)]
pub(super) struct Trace {
    pub(super) upstream: Option<String>,
    pub(super) tool: Option<String>,
    pub(super) denied_by: Option<&'static str>,
    pub(super) unknown_tool: bool,
    pub(super) upstream_error: Option<UpstreamError>,
    /// The gateway answered for the upstream (a consent link, a refused caller): its own
    /// words, not an upstream's, so error hygiene leaves them alone.
    pub(super) own_answer: bool,
    /// The policies that decided (allow or deny).
    pub(super) policies: Vec<String>,
    pub(super) classification: Option<Classification>,
    /// The routed target's verb class (prompts and resources read).
    pub(super) verb: Option<Verb>,
    /// Enhanced audit: SHA-256 of the arguments and of the result.
    pub(super) args_digest: Option<String>,
    pub(super) result_digest: Option<String>,
    /// The approval the call waited for or used.
    pub(super) approval: Option<String>,
    /// Answered "approval pending" instead of running.
    pub(super) pending: bool,
    /// DLP findings on arguments and result: kind → count, and the kinds that blocked.
    pub(super) findings: std::collections::BTreeMap<String, usize>,
    pub(super) dlp_blocked: Vec<String>,
    /// An upstream error's detail the client was not shown (bounded, secrets masked).
    pub(super) scrubbed: Option<String>,
    /// Alerts that did not refuse the call: a truncated result, a size anomaly.
    pub(super) alerts: Vec<String>,
    /// Keyed digests of personal identifiers in the arguments or the result.
    pub(super) subjects: std::collections::BTreeSet<String>,
    /// Prompt-injection findings and what was done about them.
    pub(super) detections: Vec<gatehouse_audit::Detection>,
    /// Masked copies the classification keeps (`audit_bodies`).
    pub(super) arguments: Option<Value>,
    pub(super) result: Option<Value>,
    /// OpenTelemetry spans of this request, when traced and sampled.
    pub(super) spans: Option<gatehouse_transport::otel::Spans>,
}

impl Trace {
    pub(super) fn note(&mut self, report: &gatehouse_detect::Report) {
        for (k, n) in &report.found {
            *self.findings.entry(k.clone()).or_default() += n;
        }
        self.dlp_blocked.extend(report.blocked.iter().cloned());
        self.subjects.extend(report.subjects.iter().cloned());
    }

    /// `kind=count,…;blocked=kind,…` for the audit line.
    fn findings_line(&self) -> String {
        let mut s: Vec<String> = self
            .findings
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if !self.dlp_blocked.is_empty() {
            s.push(format!("blocked={}", self.dlp_blocked.join("+")));
        }
        s.extend(self.alerts.iter().cloned());
        s.join(",")
    }
}

/// The facts of one request that its record and log line carry.
pub(super) struct Finished<'a> {
    pub ctx: &'a ClientCtx,
    pub correlation: CorrelationId,
    pub method: &'static str,
    pub status: &'static str,
    pub latency_us: u64,
}

impl Trace {
    /// The chained audit record of a finished request.
    pub(super) fn event(&mut self, f: &Finished<'_>) -> AuditEvent {
        let ctx = f.ctx;
        AuditEvent {
            v: gatehouse_audit::SCHEMA_VERSION,
            kind: Some(EventKind::Request),
            time_ms: crate::audit::now_ms(),
            correlation: f.correlation.to_string(),
            tenant: ctx.principal.tenant.clone().unwrap_or_default(),
            principal: ctx.principal.id.clone(),
            auth_method: ctx.principal.method_label().to_owned(),
            client: ctx.client.clone().unwrap_or_default(),
            source_ip: ctx.source.map(|s| s.to_string()).unwrap_or_default(),
            session: ctx.key().to_owned(),
            virtual_server: ctx.scope.clone().unwrap_or_default(),
            method: f.method.to_owned(),
            target: self.tool.clone().unwrap_or_default(),
            upstream: self.upstream.clone().unwrap_or_default(),
            status: f.status.to_owned(),
            rule: self.denied_by.unwrap_or("").to_owned(),
            policies: self.policies.clone(),
            roles: ctx.principal.roles.clone(),
            groups: ctx.principal.groups.clone(),
            classification: self
                .classification
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            verb: self.verb.map(|v| v.as_str().to_owned()).unwrap_or_default(),
            args_digest: self.args_digest.clone().unwrap_or_default(),
            result_digest: self.result_digest.clone().unwrap_or_default(),
            error_class: self
                .upstream_error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            approval: self.approval.clone().unwrap_or_default(),
            findings: self.findings_line(),
            detections: std::mem::take(&mut self.detections),
            subjects: self.subjects.iter().cloned().collect(),
            arguments: self.arguments.take(),
            result: self.result.take(),
            latency_us: f.latency_us,
            detail: self.scrubbed.clone().unwrap_or_default(),
        }
    }

    /// Whether the log line of this call may go at `debug`: its record is in the audit
    /// store and nothing was found in it. Asked before the record takes the detections.
    pub(super) fn unremarkable(&self, stored: bool) -> bool {
        stored && self.detections.is_empty() && self.findings.is_empty() && self.alerts.is_empty()
    }

    /// The operators' log line of a finished request: at `info` for every call the audit
    /// store does not hold, and for refused, failed, held and flagged calls; at `debug`
    /// for an unremarkable allowed call (`gatehouse::audit=debug` shows them all): the
    /// store holds its record, and a line per call cost about a tenth of a call's CPU.
    pub(super) fn log(&self, f: &Finished<'_>, unremarkable: bool) {
        let ctx = f.ctx;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "gatehouse::audit",
                    correlation = %f.correlation,
                    principal = %ctx.principal.id,
                    tenant = ctx.principal.tenant.as_deref().unwrap_or(""),
                    session = ctx.key(),
                    scope = ctx.scope.as_deref().unwrap_or(""),
                    version = %ctx.version,
                    method = f.method,
                    tool = self.tool.as_deref().unwrap_or(""),
                    upstream = self.upstream.as_deref().unwrap_or(""),
                    status = f.status,
                    rule = self.denied_by.unwrap_or(""),
                    policies = %self.policies.join(","),
                    classification = self.classification.map(|c| c.as_str()).unwrap_or(""),
                    args_digest = self.args_digest.as_deref().unwrap_or(""),
                    result_digest = self.result_digest.as_deref().unwrap_or(""),
                    upstream_error = self.upstream_error.as_ref().map(ToString::to_string).unwrap_or_default(),
                    approval = self.approval.as_deref().unwrap_or(""),
                    findings = %self.findings_line(),
                    latency_us = f.latency_us,
                    "request"
                )
            };
        }
        if unremarkable && f.status == "ok" {
            line!(debug);
        } else {
            line!(info);
        }
    }
}
