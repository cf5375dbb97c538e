//! Gatehouse's authorization model (pure, no IO): the Cedar schema of its entities, the
//! evaluator, the short YAML role form that compiles to Cedar, classification levels and
//! their controls, and policy test tables.

mod classify;
mod engine;
mod model;
mod roles;
mod schema;
pub mod table;

pub use classify::{AuditBodies, Controls, Outcome, StepUp, StepUpNeeded, authorize};
pub use engine::{Decision, DenyCause, Engine, PolicySource, PolicySpec, Prepared};
pub use model::{Action, Classification, Hints, Situation, Subject, Target, Tenancy, Verb};
pub use roles::{Compiled, Condition, RoleGrant, RoleSpec, Roles};

/// Why a policy set could not be built, or a request could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("schema: {0}")]
    Schema(String),
    #[error("role `{role}`: {reason}")]
    Role { role: String, reason: String },
    #[error("{source_name}: {reason}")]
    Parse { source_name: String, reason: String },
    #[error("policies do not match the schema: {0}")]
    Invalid(String),
    #[error("request: {0}")]
    Request(String),
}

#[cfg(test)]
mod tests;
