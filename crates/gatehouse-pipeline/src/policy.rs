//! Stage: authorize. Least privilege per tool, resource and prompt: routing confined the
//! target to the caller's scope; the policy engine decides, default deny, then the
//! classification's step-up requirement. Refusals are audited with the policies.

use gatehouse_policy::{Outcome, Verb};
use serde_json::Value;

use crate::authorize::{Gate, digest, refusal};
use crate::context::Call;
use crate::context::Target;
use crate::inspect;
use crate::local::is_filtered_list;
use crate::verdict::Verdict;

pub(super) fn authorize(c: &mut Call<'_>) -> Verdict {
    // Built only for what it decides: routed calls and the lists it filters.
    let decides = matches!(c.target, Target::Upstream { .. })
        || is_filtered_list(&c.req.method)
        // Tool search's meta-tools answer over what the same decision shows.
        || (c.req.method == gatehouse_protocol::method::TOOLS_CALL
            && matches!(c.target, Target::Local));
    c.gate = c
        .cfg
        .authorization
        .as_deref()
        .filter(|_| decides)
        .map(|a| Gate::new(a, c.ctx));
    let Target::Upstream { guard, .. } = &c.target else {
        return Verdict::Allow;
    };
    let args = c.req.params.as_ref().and_then(|p| p.get("arguments"));
    if let Some(args) = args {
        let keep = inspect::controls(c.cfg, &guard.target).audit_bodies;
        c.trace.arguments = inspect::audit_copy(c.cfg, keep, args);
    }
    c.trace.classification = Some(guard.target.classification());
    c.trace.verb = Some(match &guard.target {
        gatehouse_policy::Target::Tool { verb, .. } => *verb,
        _ => Verb::Read,
    });
    let Some(gate) = &c.gate else {
        return Verdict::Allow;
    };
    let outcome = gate.decide(
        guard.action,
        &guard.target,
        args.and_then(Value::as_object),
        false,
    );
    c.trace.policies = outcome.policies().to_vec();
    if gate
        .authz()
        .controls(guard.target.classification())
        .enhanced_audit
    {
        c.trace.args_digest = Some(digest(args.unwrap_or(&Value::Null)));
    }
    if !matches!(outcome, Outcome::Allow { .. }) {
        c.trace.denied_by = Some(match &outcome {
            Outcome::StepUp { .. } => "authorize.step_up",
            Outcome::Deny {
                cause: gatehouse_policy::DenyCause::Error,
                ..
            } => "authorize.error",
            Outcome::Deny {
                cause: gatehouse_policy::DenyCause::Forbidden,
                ..
            } => "authorize.forbid",
            _ => "authorize.default_deny",
        });
        tracing::info!(rule = c.trace.denied_by, policies = %c.trace.policies.join(","), "request denied");
        return Verdict::Answer(refusal(
            &outcome,
            gate.authz().denied_as,
            guard.named,
            &guard.name,
            c.correlation,
        ));
    }
    if gate.authz().engine.requires_approval(outcome.policies()) {
        c.approval_policies = Some(outcome.policies().to_vec());
    }
    Verdict::Allow
}
