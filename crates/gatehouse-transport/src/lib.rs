//! Gatehouse's transport layer, below the request pipeline: the upstream transports (stdio,
//! Streamable HTTP, SSE) and the sandbox, egress proxy and provenance checks of the
//! servers it starts; client sessions and the hub that carries server-sent messages to
//! them; the errors the gateway sends clients (`refusal`), correlation ids, metrics and
//! trace export. It knows nothing of stages or policies.

/// The configuration, validated (its own crate: plain data, no clients).
pub use gatehouse_config as config;
pub mod correlation;
pub mod hub;
pub mod line;
pub mod metrics;
pub mod otel;
pub mod refusal;
pub mod session;
pub mod upstream;
pub mod worker;
