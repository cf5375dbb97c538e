//! What each classification level demands regardless of role: step-up authentication,
//! a result-size cap, a redaction profile and enhanced audit.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{Classification, Subject};

/// Step-up requirements: the caller must have authenticated strongly enough, recently
/// enough.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StepUp {
    /// Accepted `acr` values (any one). Empty: no `acr` requirement.
    pub acr: Vec<String>,
    /// Required `amr` values (all of them), e.g. `[mfa]`.
    pub amr: Vec<String>,
    /// Maximum seconds since the caller authenticated (`auth_time`, else `iat`).
    pub max_age: Option<u64>,
}

/// The challenge a caller gets when step-up is needed (RFC 9470).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpNeeded {
    pub acr_values: Vec<String>,
    pub max_age: Option<u64>,
    pub reason: &'static str,
}

impl StepUp {
    /// Whether the caller meets the requirements at `now` (seconds since the epoch).
    pub fn check(&self, s: &Subject, now: u64) -> Result<(), StepUpNeeded> {
        let needed = |reason| StepUpNeeded {
            acr_values: self.acr.clone(),
            max_age: self.max_age,
            reason,
        };
        if !self.acr.is_empty() && !s.acr.as_ref().is_some_and(|a| self.acr.contains(a)) {
            return Err(needed("acr"));
        }
        if !self.amr.iter().all(|m| s.amr.contains(m)) {
            return Err(needed("amr"));
        }
        if let Some(max) = self.max_age {
            match s.authenticated_at {
                Some(at) if now.saturating_sub(at) <= max => {}
                _ => return Err(needed("max_age")),
            }
        }
        Ok(())
    }
}

/// The controls of one classification level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Controls {
    pub step_up: Option<StepUp>,
    /// Results larger than this (bytes of JSON) are refused (or cut, with `truncate`).
    pub max_result_bytes: Option<u64>,
    /// Cut an oversized result's text to the cap with a marker instead of refusing it.
    pub truncate: bool,
    /// The redaction profile response protection must apply to results at this level.
    pub redaction: Option<String>,
    /// Audit records carry full digests of arguments and results.
    pub enhanced_audit: bool,
    /// What the audit keeps of arguments and results beyond digests: `digest` (default:
    /// nothing more), `redacted` (every recognised value masked) or `full` (secrets masked).
    pub audit_bodies: AuditBodies,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditBodies {
    #[default]
    Digest,
    Redacted,
    Full,
}

impl Controls {
    /// The defaults: confidential and restricted data get enhanced audit and the
    /// `standard` redaction profile; restricted results are capped at 1 MiB. Step-up needs the IdP's `acr` values, so it is only
    /// ever configured, never assumed.
    pub fn default_for(level: Classification) -> Controls {
        match level {
            Classification::Public | Classification::Internal => Controls::default(),
            Classification::Confidential => Controls {
                enhanced_audit: true,
                redaction: Some("standard".into()),
                ..Controls::default()
            },
            Classification::Restricted => Controls {
                enhanced_audit: true,
                max_result_bytes: Some(1 << 20),
                redaction: Some("standard".into()),
                ..Controls::default()
            },
        }
    }

    /// Configured controls per level, defaults where a level is not configured.
    pub fn table(
        configured: &BTreeMap<Classification, Controls>,
    ) -> BTreeMap<Classification, Controls> {
        Classification::ALL
            .into_iter()
            .map(|c| {
                (
                    c,
                    configured
                        .get(&c)
                        .cloned()
                        .unwrap_or_else(|| Controls::default_for(c)),
                )
            })
            .collect()
    }
}

/// The authorization stage's answer: the policy decision, then the classification's
/// step-up requirement for an allowed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow {
        policies: Vec<String>,
    },
    Deny {
        policies: Vec<String>,
        cause: crate::DenyCause,
    },
    /// Policy allows it, but only after the caller authenticates more strongly.
    StepUp {
        policies: Vec<String>,
        needed: StepUpNeeded,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Allow { .. } => "allow",
            Outcome::Deny { .. } => "deny",
            Outcome::StepUp { .. } => "step_up",
        }
    }

    pub fn policies(&self) -> &[String] {
        match self {
            Outcome::Allow { policies }
            | Outcome::Deny { policies, .. }
            | Outcome::StepUp { policies, .. } => policies,
        }
    }
}

/// Decides a request: Cedar first, then (for an allowed call, not a listing) the step-up
/// requirement of the target's classification. A listing shows what step-up would unlock.
pub fn authorize(
    engine: &crate::Engine,
    prepared: &crate::Prepared,
    subject: &Subject,
    controls: &BTreeMap<Classification, Controls>,
    action: crate::Action,
    target: &crate::Target,
    sit: &crate::Situation<'_>,
) -> Outcome {
    match engine.decide_prepared(prepared, action, target, sit) {
        crate::Decision::Deny { policies, cause } => Outcome::Deny { policies, cause },
        crate::Decision::Allow { policies } => {
            let step_up = controls
                .get(&target.classification())
                .and_then(|c| c.step_up.as_ref());
            match step_up.map(|s| s.check(subject, sit.now)) {
                Some(Err(needed)) if !sit.listing => Outcome::StepUp { policies, needed },
                _ => Outcome::Allow { policies },
            }
        }
    }
}
