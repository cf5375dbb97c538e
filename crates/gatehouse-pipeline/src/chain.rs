//! The chain: every stage a request passes after the edge, in order, one line each. This
//! is the one place the order is decided; every transport runs it through
//! [`Gateway::handle_request`](crate::gateway::Gateway::handle_request).

use gatehouse_protocol::RpcError;
use serde_json::Value;

use crate::context::Call;
use crate::detect;
use crate::forward;
use crate::hold;
use crate::limits;
use crate::outbound;
use crate::policy;
use crate::route;
use crate::search;
use crate::validate;
use crate::verdict::Verdict;

/// Acts on one stage's verdict: go on, remember who asked for a person, or end the request.
/// A traced request gets a span per stage, named after the stage's function.
macro_rules! stage {
    ($c:ident, $verdict:expr) => {
        let started = $c.trace.spans.as_ref().map(|_| gatehouse_transport::otel::now_ns());
        let verdict = $verdict;
        if let (Some(t0), Some(spans)) = (started, $c.trace.spans.as_mut()) {
            stage_span(spans, stringify!($verdict), t0, &verdict);
        }
        match verdict {
            Verdict::Allow => {}
            Verdict::RequireApproval(rule) => $c.flagged = Some(rule),
            Verdict::Deny(d) => {
                tracing::info!(rule = d.rule, reason = %d.reason, "request denied");
                $c.trace.denied_by = Some(d.rule);
                return Err(d.error);
            }
            Verdict::Answer(answer) => return answer,
        }
    };
}

/// One stage's span: `route.scope` from `route::scope(c)`, with what it decided.
fn stage_span(
    spans: &mut gatehouse_transport::otel::Spans,
    call: &str,
    started: u64,
    verdict: &Verdict,
) {
    use gatehouse_transport::otel::Attr;
    let name = call
        .split('(')
        .next()
        .unwrap_or(call)
        .replace(' ', "")
        .replace("::", ".");
    let mut attrs = vec![("gatehouse.stage", Attr::from(name.as_str()))];
    let mut error = None;
    match verdict {
        Verdict::Allow => {}
        Verdict::RequireApproval(rule) => attrs.push(("gatehouse.approval_rule", (*rule).into())),
        Verdict::Deny(d) => {
            attrs.push(("gatehouse.rule", d.rule.into()));
            error = Some(d.reason.to_string());
        }
        Verdict::Answer(_) => attrs.push(("gatehouse.answered", Attr::Bool(true))),
    }
    let id = spans.new_id();
    spans.child(
        name,
        gatehouse_transport::otel::Kind::Internal,
        started,
        id,
        attrs,
        error,
    );
}

/// Every stage after the edge, cheapest first: nothing costly (a model, a DNS lookup, an
/// ICAP server, the upstream) runs for a request an earlier check refuses.
pub(super) async fn chain(c: &mut Call<'_>) -> Result<Value, RpcError> {
    stage!(c, route::scope(c)); // the virtual server still exists; the caller's view
    stage!(c, search::unwrap(c)); // a call through the call meta-tool: the tool it names
    stage!(c, route::target(c)); // exposed name → upstream and tool, within the view
    stage!(c, policy::authorize(c)); // policies (default deny), step-up, approval policies
    stage!(c, validate::envelope(c)); // tools/call arguments is an object
    stage!(c, validate::schema(c)); // the tool's own input schema
    stage!(c, validate::rules(c)); // the gateway's argument rules (paths, URLs, SQL, shell)
    stage!(c, detect::call_arguments(c).await); // prompt injection in arguments (may ask a model)
    stage!(c, validate::hosts(c).await); // URL arguments' hosts resolve to allowed addresses
    stage!(c, outbound::dlp(c)); // secrets and personal data leaving in arguments
    stage!(c, outbound::icap(c).await); // the enterprise DLP's verdict (ICAP REQMOD)
    stage!(c, limits::capacity(c)); // the gateway's own work in flight
    stage!(c, limits::caller(c).await); // rate limits, byte budgets, the caller's calls in flight
    stage!(c, hold::approval(c).await); // a person approves these exact arguments
    forward::call(c).await // answer locally or call the upstream, then inspect the result
}
