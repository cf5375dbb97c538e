//! Gatehouse's request pipeline: the gateway's runtime state ([`gateway::Gateway`]), the
//! request context, the verdict type, one file per stage and the chain that orders them,
//! and the controls' own state (approvals, pins, rate limits, exfiltration baselines, the
//! audit writer). Every transport hands a decoded, authenticated message to
//! [`gateway::Gateway::handle_request`].
//!
//! The request path, in order (DESIGN.md §2). Two halves:
//!
//! ```text
//! edge (every transport; `gatehouse_proxy::edge`):  decode ─► authenticate ─► bind session
//! chain (`chain.rs`, one line per stage):
//!   scope ─► route ─► authorize ─► validate (envelope, schema, rules) ─► detect
//!   ─► resolve URL hosts ─► DLP / ICAP on arguments ─► rate limit ─► approval
//!   ─► upstream call ─► hygiene ─► inspect response
//! then audit (`handle_request`, `trace.rs`)
//! ```
//!
//! Each stage takes the request context (`crate::context::Call`) and returns a [`Verdict`]. A stage
//! that cannot decide denies. Modules depend on each other in one direction: `verdict`,
//! `client`, `findings` and the controls' state at the bottom, `gateway` on them, the stage
//! files on `gateway`, `chain` on the stages, `request` (`handle_request`) on top.

pub use gatehouse_auth::Principal;

pub mod approval;
pub mod arbiter;
pub mod audit;
pub mod authorize;
pub mod catalog;
/// The configuration, validated (its own crate: plain data, no clients).
pub use gatehouse_config as config;
pub mod exfil;
pub mod fleet;
pub mod gateway;
pub mod icap;
pub mod pins;
pub mod ratelimit;

mod chain;
mod client;
mod context;
mod detect;
mod findings;
mod forward;
mod hold;
mod hygiene;
mod inspect;
mod limits;
mod local;
mod outbound;
mod policy;
mod request;
mod route;
mod schemas;
mod search;
#[cfg(test)]
mod tests;
mod trace;
mod validate;
mod verdict;

pub use client::{ClientCtx, forwardable, user_token};
pub use verdict::{Denial, Verdict};

pub use detect::{Place, judge};
/// Every string in a JSON value, scanned by the pattern stage (with JSON pointers).
pub use findings::scan as scan_strings;
