//! Detection findings as the gateway keeps them: every string of a JSON value scanned with
//! its pointer, and a finding's audit form and action name. Shared by the detection stage
//! and the vetting of tool definitions (`pins`).

use gatehouse_detect::{Cascade, Signal};
use serde_json::Value;

use crate::config::Response;

/// Deepest nesting walked (the edge limits depth long before this).
pub(crate) const MAX_DEPTH: usize = 64;

/// Every string in `v` with its JSON pointer, scanned.
pub fn scan(p: &Cascade, v: &Value) -> Vec<(String, Signal)> {
    let mut out = Vec::new();
    gatehouse_detect::json::visit(v, false, MAX_DEPTH, &mut |at, s, _| {
        out.extend(p.scan(s).into_iter().map(|x| (at.to_owned(), x)));
    });
    out
}

pub(crate) fn action_name(r: Response, place: &str) -> &'static str {
    match r {
        Response::Block if place == "description" => "quarantine",
        Response::Block => "block",
        Response::Approve => "approve",
        Response::Redact => "redact",
        Response::Flag | Response::Pass => "flag",
    }
}

/// The `stage` label of detection metrics.
pub(crate) fn stage_label(stage: u8) -> &'static str {
    match stage {
        1 => "1",
        2 => "2",
        3 => "3",
        _ => "other",
    }
}

/// A finding as the audit record holds it.
pub(crate) fn to_audit(
    place: &str,
    at: &str,
    s: &Signal,
    r: Response,
) -> gatehouse_audit::Detection {
    gatehouse_audit::Detection {
        place: place.to_owned(),
        stage: s.stage,
        rule: s.rule.clone(),
        severity: s.severity.as_str().to_owned(),
        score: f64::from((s.score * 100.0).round()) / 100.0,
        at: at.to_owned(),
        start: s.start as u64,
        end: s.end as u64,
        action: action_name(r, place).to_owned(),
    }
}
