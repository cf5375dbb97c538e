//! Stage: inspect response. What an upstream returns passes, in order: the classification's
//! size cap (refused, or cut to size with a marker), DLP (redacted in place, or withheld for
//! a blocking finding), prompt-injection detection (withheld, or the span removed), the byte budgets (withheld when it would overspend one), and the
//! size anomaly alert. Every step is recorded in the call's trace for the audit.

use gatehouse_policy::{Controls, Target};
use gatehouse_protocol::RpcError;
use serde_json::{Value, json};

use crate::client::ClientCtx;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::route;
use crate::trace::Trace;
use gatehouse_transport::correlation::CorrelationId;

/// A classification's controls: configured, or the level's defaults without an
/// `authorization` section.
pub(super) fn controls(cfg: &Config, target: &Target) -> Controls {
    let level = target.classification();
    match cfg.authorization.as_deref() {
        Some(a) => a.controls(level).clone(),
        None => Controls::default_for(level),
    }
}

/// The redaction profile for a routed target's results: the tool's own, else its
/// classification's.
fn result_profile<'c>(
    cfg: &'c Config,
    ctx: &ClientCtx,
    target: &Target,
    controls: &Controls,
) -> Option<&'c gatehouse_detect::Profile> {
    let tool = match target {
        Target::Tool {
            server, original, ..
        } => route::data_policy(cfg, server)
            .and_then(|d| d.tools.get(original))
            .filter(|t| !unmasked(cfg, ctx, &t.unmasked_roles))
            .and_then(|t| t.redaction.as_deref()),
        _ => None,
    };
    cfg.dlp.profile(tool.or(controls.redaction.as_deref())?)
}

/// Whether the caller holds one of a tool's `unmasked_roles` (directly or by inheritance).
fn unmasked(cfg: &Config, ctx: &ClientCtx, roles: &[String]) -> bool {
    if roles.is_empty() {
        return false;
    }
    let Some(a) = cfg.authorization.as_deref() else {
        return false;
    };
    let held = match ctx.principal.method {
        gatehouse_auth::AuthMethod::DevMode => &a.anonymous_roles,
        _ => &ctx.principal.roles,
    };
    let effective = a.engine.roles().effective(held.iter().map(String::as_str));
    roles.iter().any(|r| effective.contains(r.as_str()))
}

/// Largest argument or result copy the audit keeps.
const MAX_AUDIT_COPY: usize = 16 * 1024;

/// What the audit keeps of a body under the classification's `audit_bodies`: nothing
/// beyond the digest, a copy with every recognised value masked, or one with secrets
/// masked; bounded.
pub(super) fn audit_copy(
    cfg: &Config,
    mode: gatehouse_policy::AuditBodies,
    v: &Value,
) -> Option<Value> {
    let profile = match mode {
        gatehouse_policy::AuditBodies::Digest => return None,
        gatehouse_policy::AuditBodies::Redacted => gatehouse_detect::Profile::default(),
        gatehouse_policy::AuditBodies::Full => gatehouse_detect::Profile {
            default: gatehouse_detect::Action::Alert,
            kinds: [("secret".to_owned(), gatehouse_detect::Action::Mask)].into(),
            min_confidence: 0.5,
        },
    };
    let mut copy = v.clone();
    // Nothing to mask when nothing could be found.
    if gatehouse_detect::redact::may_find(&cfg.dlp.recognizers, v) {
        gatehouse_detect::walk(
            &cfg.dlp.recognizers,
            &profile,
            &gatehouse_detect::Tokenizer::new(b"audit"),
            &mut copy,
        );
    }
    let n = size_of(&copy) as usize;
    Some(if n > MAX_AUDIT_COPY {
        json!(format!("[{n} bytes: too large to keep; see the digest]"))
    } else {
        copy
    })
}

fn withheld(message: &str, correlation: CorrelationId) -> RpcError {
    gatehouse_transport::refusal::forbidden(message, correlation)
}

fn size_of(v: &Value) -> u64 {
    /// Counts what is written and keeps nothing: the size without a copy.
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    serde_json::to_writer(&mut n, v).map_or(u64::MAX, |()| n.0)
}

impl Gateway {
    pub(super) async fn inspect(
        &self,
        cfg: &Config,
        ctx: &ClientCtx,
        target: &Target,
        result: &mut Value,
        trace: &mut Trace,
        correlation: CorrelationId,
    ) -> Result<(), RpcError> {
        let controls = controls(cfg, target);
        let upstream_size = size_of(result);

        if let Some(cap) = controls.max_result_bytes
            && upstream_size > cap
        {
            if controls.truncate && truncate(result, cap) {
                trace
                    .alerts
                    .push(format!("truncated={upstream_size}>{cap}"));
                tracing::warn!(target: "gatehouse::audit", %correlation, size = upstream_size, cap, "result over the classification's size cap: truncated");
            } else {
                trace.denied_by = Some("classification.max_result_bytes");
                tracing::warn!(target: "gatehouse::audit", %correlation, size = upstream_size, cap, "result over the classification's size cap: withheld");
                return Err(withheld(
                    "Forbidden: the result is larger than this data's classification allows",
                    correlation,
                ));
            }
        }

        if let Some(icap) = cfg
            .icap
            .as_ref()
            .filter(|i| i.respmod && i.covers(target.classification()))
        {
            let body = serde_json::to_vec(result).unwrap_or_default();
            match crate::icap::IcapClient(&icap.service).respmod(&body).await {
                Ok(crate::icap::Verdict::Unmodified) => {}
                Ok(crate::icap::Verdict::Modified(new)) => match serde_json::from_slice(&new) {
                    Ok(v) => {
                        *result = v;
                        trace.alerts.push("icap=modified".into());
                    }
                    Err(_) => {
                        trace.denied_by = Some("icap.unreadable");
                        return Err(withheld(
                            "Forbidden: content inspection returned a result that cannot be used",
                            correlation,
                        ));
                    }
                },
                Ok(crate::icap::Verdict::Blocked { http_status }) => {
                    trace.denied_by = Some("icap.block");
                    tracing::warn!(target: "gatehouse::audit", %correlation, http_status, "result withheld by content inspection (ICAP)");
                    return Err(withheld(
                        "Forbidden: content inspection blocked this result",
                        correlation,
                    ));
                }
                Err(e) if icap.fail_closed => {
                    trace.denied_by = Some("icap.unavailable");
                    tracing::error!(target: "gatehouse::audit", %correlation, error = %e, "content inspection unavailable: result withheld");
                    return Err(gatehouse_transport::refusal::internal(
                        "Content inspection is unavailable; the result is withheld",
                        correlation,
                    ));
                }
                Err(e) => {
                    trace.alerts.push("icap=unavailable".into());
                    tracing::error!(%correlation, error = %e, "content inspection unavailable: result passed (fail open)");
                }
            }
        }

        // With a subject index and no profile, the result is still read (changing nothing)
        // for the identifiers it carries.
        let scan_only = gatehouse_detect::Profile {
            default: gatehouse_detect::Action::Alert,
            ..gatehouse_detect::Profile::default()
        };
        let profile = result_profile(cfg, ctx, target, &controls)
            .or_else(|| self.subjects.as_ref().map(|_| &scan_only));
        if let Some(profile) = profile
            && gatehouse_detect::redact::may_find(&cfg.dlp.recognizers, result)
        {
            let report = gatehouse_detect::walk_indexed(
                &cfg.dlp.recognizers,
                profile,
                &self.dlp_tokens(&ctx.principal.id, ctx.key()),
                self.subjects.as_ref(),
                result,
            );
            trace.note(&report);
            if !report.blocked.is_empty() {
                trace.denied_by = Some("dlp.block");
                tracing::warn!(target: "gatehouse::audit", %correlation, kinds = %report.blocked.join(","), "result withheld: it carries data that may not leave");
                return Err(withheld(
                    "Forbidden: the result carries data that may not leave the gateway",
                    correlation,
                ));
            }
            if report.redacted > 0 {
                tracing::info!(target: "gatehouse::audit", %correlation, values = report.redacted, "result redacted");
            }
        }

        // Indirect prompt injection: what the model will read back.
        if let Some(d) = cfg.detection.as_deref() {
            let tool = match target {
                Target::Tool { exposed, .. } => exposed.as_str(),
                _ => "",
            };
            crate::detect::response(d, target.classification(), tool, result, trace, correlation)
                .await?;
        }

        trace.result = audit_copy(cfg, controls.audit_bodies, result);
        let call = crate::exfil::Call {
            principal: &ctx.principal.id,
            tool: trace.tool.as_deref().unwrap_or(""),
        };
        if let Some(usual) = self.exfil.anomaly(&cfg.exfiltration, &call, upstream_size) {
            trace
                .alerts
                .push(format!("size_anomaly={upstream_size}~{usual}"));
            tracing::warn!(target: "gatehouse::audit", %correlation, size = upstream_size, usual, principal = %ctx.principal.id, "result far above the usual size");
        }
        if !cfg.exfiltration.budgets.is_empty()
            && let Err(over) = self.exfil.after(&cfg.exfiltration, &call, size_of(result))
        {
            trace.denied_by = Some("exfiltration.budget");
            tracing::warn!(target: "gatehouse::audit", %correlation, budget = %over.budget, "result withheld: it would overspend a byte budget");
            return Err(gatehouse_transport::refusal::rate_limited(
                format!("Byte budget `{}` spent; retry later", over.budget),
                &over.budget,
                over.retry_after,
                correlation,
            ));
        }
        Ok(())
    }
}

/// Cuts the texts of a tool result, resource read or prompt to about `cap` bytes, drops
/// what cannot be cut (structured content, blobs), and says so in a last text item.
/// False when the result has no such shape or still does not fit.
pub(super) fn truncate(result: &mut Value, cap: u64) -> bool {
    const MARKER_ROOM: u64 = 256;
    let mut budget = cap.saturating_sub(MARKER_ROOM) as usize;
    let Some(obj) = result.as_object_mut() else {
        return false;
    };
    let field = ["content", "contents", "messages"]
        .into_iter()
        .find(|f| obj.get(*f).is_some_and(Value::is_array));
    let Some(field) = field else {
        return false;
    };
    obj.remove("structuredContent");
    let items = obj
        .get_mut(field)
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut kept = Vec::new();
    for mut item in items {
        // Prompt messages keep their text under `content`.
        let text = if field == "messages" {
            item.get_mut("content").and_then(|c| c.get_mut("text"))
        } else {
            item.get_mut("text")
        };
        let Some(Value::String(t)) = text else {
            continue; // blobs, images, links: not cut, dropped
        };
        if t.len() > budget {
            let mut end = budget;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            kept.push(item);
            break;
        }
        budget -= t.len();
        kept.push(item);
        if budget == 0 {
            break;
        }
    }
    let marker = format!("[truncated by Gatehouse: the full result exceeds {cap} bytes]");
    kept.push(if field == "messages" {
        json!({"role": "assistant", "content": {"type": "text", "text": marker}})
    } else if field == "contents" {
        json!({"uri": "gatehouse://truncated", "mimeType": "text/plain", "text": marker})
    } else {
        json!({"type": "text", "text": marker})
    });
    obj.insert(field.into(), Value::Array(kept));
    let meta = obj.entry("_meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.insert("gatehouse/truncated".into(), json!(true));
    }
    // Escaping makes the JSON longer than the texts: shrink the last cut text by what is
    // still over, a few times at most.
    for _ in 0..8 {
        let over = size_of(result).saturating_sub(cap + MARKER_ROOM) as usize;
        if over == 0 {
            return true;
        }
        let last_text = result
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .and_then(|items| {
                let n = items.len();
                items.get_mut(n.checked_sub(2)?)
            })
            .and_then(|item| {
                if field == "messages" {
                    item.get_mut("content").and_then(|c| c.get_mut("text"))
                } else {
                    item.get_mut("text")
                }
            });
        let Some(Value::String(t)) = last_text else {
            return false;
        };
        if t.is_empty() {
            return false;
        }
        let mut end = t.len().saturating_sub(over);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
    }
    size_of(result) <= cap + MARKER_ROOM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_cuts_texts_drops_the_rest_and_marks_it() {
        let mut r = json!({
            "content": [{"type": "text", "text": "a".repeat(5000)}, {"type": "text", "text": "b".repeat(5000)}],
            "structuredContent": {"rows": [1, 2, 3]},
        });
        assert!(truncate(&mut r, 2048));
        assert!(size_of(&r) <= 2048 + 256, "{}", size_of(&r));
        let content = r["content"].as_array().expect("content");
        assert_eq!(content.len(), 2);
        assert!(content[0]["text"].as_str().is_some_and(|t| t.len() < 2048));
        assert!(
            content[1]["text"]
                .as_str()
                .is_some_and(|t| t.contains("truncated"))
        );
        assert!(r.get("structuredContent").is_none());
        assert_eq!(r["_meta"]["gatehouse/truncated"], true);
        let mut multibyte = json!({"contents": [{"uri": "x", "text": "é".repeat(3000)}]});
        assert!(truncate(&mut multibyte, 1024));
        // JSON text escapes to more bytes than it has: still within the cap.
        let mut quoted = json!({"content": [{"type": "text", "text": "\"\\".repeat(4000)}]});
        assert!(truncate(&mut quoted, 2048));
        assert!(size_of(&quoted) <= 2048 + 256, "{}", size_of(&quoted));
        // Nothing to cut: not truncatable.
        assert!(!truncate(&mut json!({"completion": {"values": ["x"]}}), 10));
    }
}
