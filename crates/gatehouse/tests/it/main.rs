//! Gatehouse's integration tests, one binary: each module drives the gateway (in process or
//! as its own process) against real peers started on loopback; `common` is the harness.

mod common;

mod approvals;
mod audit;
mod authz;
mod cli;
mod conformance;
mod consent;
mod console;
mod console_access;
mod control;
mod credentials;
mod deploy;
mod detection;
mod directory;
mod discover;
mod dlp;
mod edge;
mod facade;
mod facade_grants;
mod fleet;
mod hardening;
mod identity;
mod keys;
mod limits;
mod overrides;
mod packages;
mod passthrough;
mod peers;
mod provenance;
mod resilience;
mod sandbox;
mod search;
mod siem;
mod tls;
mod traces;
mod validation;
