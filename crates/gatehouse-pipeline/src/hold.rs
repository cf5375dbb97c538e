//! Stage: approval. Calls that change things on sensitive data, and whatever a policy or
//! detection flags, wait for a person; only an approval of these exact arguments, used
//! once, lets the call through.

use gatehouse_protocol::method;

use crate::approval;
use crate::context::Call;
use crate::context::Target;
use crate::route;
use crate::verdict::Verdict;

pub(super) async fn approval(c: &mut Call<'_>) -> Verdict {
    let Target::Upstream {
        upstream, guard, ..
    } = &c.target
    else {
        return Verdict::Allow;
    };
    if c.req.method != method::TOOLS_CALL {
        return Verdict::Allow;
    }
    let cfg = c.cfg;
    let need = approval::needed(
        cfg,
        route::data_policy(cfg, upstream),
        &guard.target,
        c.approval_policies.as_deref(),
    )
    .or_else(|| {
        c.flagged.map(|rule| approval::Need {
            reason: format!("detection:{rule}"),
            approvers: cfg.approvals.approvers.clone(),
            count: cfg.approvals.count,
            timeout: cfg.approvals.timeout,
        })
    });
    let Some(need) = need else {
        return Verdict::Allow;
    };
    let call = approval::Call {
        upstream,
        tool: &guard.name,
        classification: guard.target.classification(),
        arguments: c.req.params.as_ref().and_then(|p| p.get("arguments")),
        progress_token: c.req.meta().and_then(|m| m.get("progressToken")).cloned(),
    };
    match c
        .gw
        .approval_gate(c.ctx, need, call, c.events.as_ref(), c.correlation)
        .await
    {
        approval::Gate::Proceed(id) => {
            c.trace.approval = Some(id);
            Verdict::Allow
        }
        approval::Gate::Answer(answer, rule, id) => {
            c.trace.approval = Some(id).filter(|i| !i.is_empty());
            if answer.is_ok() {
                c.trace.pending = true;
            } else {
                c.trace.denied_by = Some(rule);
            }
            Verdict::Answer(answer)
        }
    }
}
