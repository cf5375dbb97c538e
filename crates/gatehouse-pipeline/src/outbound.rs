//! What leaves in a call's arguments: the gateway's DLP (a secret an agent pastes into a
//! call is caught before it leaves; a masking profile rewrites what is forwarded), then the
//! enterprise DLP over ICAP (REQMOD), when configured.

use gatehouse_protocol::{RpcError, method};
use serde_json::{Value, json};

use crate::context::Call;
use crate::context::Target;
use crate::verdict::Denial;
use crate::verdict::Verdict;
use gatehouse_transport::correlation::CorrelationId;
use gatehouse_transport::refusal;

/// Stage: DLP on outgoing arguments. Blocked kinds refuse the call; masked ones are
/// forwarded masked.
pub(super) fn dlp(c: &mut Call<'_>) -> Verdict {
    if c.req.method != method::TOOLS_CALL {
        return Verdict::Allow;
    }
    let (Some(profile), Some(args)) = (&c.cfg.dlp.arguments, c.arguments()) else {
        return Verdict::Allow;
    };
    // Nothing that could hold a finding: no copy, no keyed tokenizer, no walk.
    if !gatehouse_detect::redact::may_find(&c.cfg.dlp.recognizers, args) {
        return Verdict::Allow;
    }
    let mut copy = args.clone();
    let report = gatehouse_detect::walk_indexed(
        &c.cfg.dlp.recognizers,
        profile,
        &c.gw.dlp_tokens(&c.ctx.principal.id, c.ctx.key()),
        c.gw.subjects.as_ref(),
        &mut copy,
    );
    c.trace.note(&report);
    if !report.blocked.is_empty() {
        let kinds = report.blocked.join(",");
        tracing::warn!(target: "gatehouse::audit", correlation = %c.correlation, %kinds, "call refused: its arguments carry data that may not be sent");
        return Verdict::Deny(Denial::new(
            "dlp.arguments",
            format!("arguments carry {kinds}"),
            gatehouse_transport::refusal::forbidden(
                format!(
                    "Forbidden: the arguments carry data that may not be sent ({})",
                    report.blocked.join(", ")
                ),
                c.correlation,
            ),
        ));
    }
    if report.redacted > 0 {
        c.outgoing_args = Some(copy);
    }
    Verdict::Allow
}

/// Stage: the enterprise DLP sees the arguments too (REQMOD): it may pass, rewrite or
/// block them. Unreachable, it refuses the call unless configured to fail open.
pub(super) async fn icap(c: &mut Call<'_>) -> Verdict {
    if c.req.method != method::TOOLS_CALL {
        return Verdict::Allow;
    }
    let (Some(icap), Target::Upstream { guard, .. }) =
        (c.cfg.icap.as_ref().filter(|i| i.reqmod), &c.target)
    else {
        return Verdict::Allow;
    };
    if !icap.covers(guard.target.classification()) {
        return Verdict::Allow;
    }
    let args = c
        .outgoing_args
        .clone()
        .or_else(|| c.arguments().cloned())
        .unwrap_or_else(|| json!({}));
    let body = serde_json::to_vec(&args).unwrap_or_default();
    let correlation = c.correlation;
    let refuse = |rule: &'static str, msg: &str, error: fn(String, CorrelationId) -> RpcError| {
        Verdict::Deny(Denial::new(
            rule,
            msg.to_owned(),
            error(msg.to_owned(), correlation),
        ))
    };
    match crate::icap::IcapClient(&icap.service).reqmod(&body).await {
        Ok(crate::icap::Verdict::Unmodified) => Verdict::Allow,
        Ok(crate::icap::Verdict::Modified(new)) => match serde_json::from_slice::<Value>(&new) {
            Ok(v) if v.is_object() => {
                c.outgoing_args = Some(v);
                Verdict::Allow
            }
            _ => refuse(
                "icap.unreadable",
                "Forbidden: content inspection returned arguments that cannot be used",
                refusal::forbidden,
            ),
        },
        Ok(crate::icap::Verdict::Blocked { .. }) => {
            tracing::warn!(target: "gatehouse::audit", %correlation, "call refused by content inspection (ICAP)");
            refuse(
                "icap.block",
                "Forbidden: content inspection blocked these arguments",
                refusal::forbidden,
            )
        }
        Err(e) if icap.fail_closed => {
            tracing::error!(target: "gatehouse::audit", %correlation, error = %e, "content inspection unavailable: call refused");
            refuse(
                "icap.unavailable",
                "Content inspection is unavailable; the call is refused",
                refusal::internal,
            )
        }
        Err(e) => {
            tracing::error!(%correlation, error = %e, "content inspection unavailable: call passed (fail open)");
            Verdict::Allow
        }
    }
}
