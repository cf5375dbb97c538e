//! Stage: rate limit. Bounded work in flight (overload is refused, not queued), then the
//! caller's own limits: GCRA rules per principal, tool, server, tenant or API key (in
//! process, or global through Redis), byte budgets already spent, and the principal's
//! calls in flight.

use std::time::Duration;

use gatehouse_auth::AuthMethod;
use gatehouse_policy::Classification;

use crate::context::Call;
use crate::ratelimit::Refusal;
use crate::verdict::Denial;
use crate::verdict::Verdict;
use gatehouse_transport::correlation::CorrelationId;
use gatehouse_transport::refusal;

/// Stage: the gateway's own capacity.
pub(super) fn capacity(c: &mut Call<'_>) -> Verdict {
    match c.gw.concurrency.load_full().try_acquire_owned() {
        Ok(p) => {
            c.permits[0] = Some(p);
            Verdict::Allow
        }
        Err(_) => Verdict::Deny(Denial::new(
            "limits.max_concurrent_requests",
            "the gateway is at capacity",
            refusal::at_capacity(),
        )),
    }
}

fn refused(correlation: CorrelationId, rule: &'static str, name: &str, wait: Duration) -> Verdict {
    tracing::info!(target: "gatehouse::audit", %correlation, rule, limit = name, "request refused by a rate limit");
    let ms = wait.as_millis().max(1) as u64;
    Verdict::Deny(Denial::new(
        rule,
        format!("limit {name}"),
        refusal::rate_limited(
            format!("Rate limit exceeded; retry in {ms} ms"),
            name,
            wait,
            correlation,
        ),
    ))
}

/// Stage: the caller's limits.
pub(super) async fn caller(c: &mut Call<'_>) -> Verdict {
    let limits = &c.cfg.rate_limits;
    let ctx = c.ctx;
    if !limits.rules.is_empty() {
        let facts = crate::ratelimit::Facts {
            method: &c.req.method,
            principal: &ctx.principal.id,
            tenant: ctx.principal.tenant.as_deref(),
            api_key: match &ctx.principal.method {
                AuthMethod::ApiKey { key_id, .. } => Some(key_id.as_str()),
                _ => None,
            },
            tool: c.trace.tool.as_deref(),
            server: c.trace.upstream.as_deref(),
            restricted: c.trace.classification == Some(Classification::Restricted),
        };
        match c.gw.limiter.check(limits, &facts).await {
            Ok(()) | Err(Refusal::InFlight) => {}
            Err(Refusal::Limited { rule, retry_after }) => {
                return refused(c.correlation, "rate_limit", &rule, retry_after);
            }
            Err(Refusal::Unavailable { rule }) => {
                return refused(
                    c.correlation,
                    "rate_limit.unavailable",
                    &rule,
                    Duration::from_secs(1),
                );
            }
        }
    }
    // A byte budget already spent refuses the call before it runs.
    if !c.cfg.exfiltration.budgets.is_empty()
        && let Some(tool) = c.trace.tool.as_deref()
        && let Err(over) = c.gw.exfil.before(
            &c.cfg.exfiltration,
            &crate::exfil::Call {
                principal: &ctx.principal.id,
                tool,
            },
        )
    {
        return refused(
            c.correlation,
            "exfiltration.budget",
            &over.budget,
            over.retry_after,
        );
    }
    match c.gw.limiter.enter(limits, &ctx.principal.id) {
        Ok(permit) => {
            c.permits[1] = permit;
            Verdict::Allow
        }
        Err(_) => refused(
            c.correlation,
            "rate_limit.in_flight",
            "max_in_flight_per_principal",
            Duration::from_secs(1),
        ),
    }
}
