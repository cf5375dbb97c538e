//! Correlation ids: what ties a client's error to the log and audit lines about it. A leaf:
//! every layer (refusals, stages, the audit record) names calls by it.

/// `{process prefix}-{sequence}`, unique across replicas with high probability; formatted
/// only when used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorrelationId {
    prefix: u32,
    n: u64,
}

impl CorrelationId {
    /// The `n`th id of the process whose random prefix is `prefix`.
    pub fn new(prefix: u32, n: u64) -> CorrelationId {
        CorrelationId { prefix, n }
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}-{}", self.prefix, self.n)
    }
}
