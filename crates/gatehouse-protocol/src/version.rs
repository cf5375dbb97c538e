//! MCP protocol revisions Gatehouse speaks, and which era (handshake or stateless) each is.

use std::fmt;

/// A released MCP protocol revision.
///
/// Ordered oldest to newest; `Ord` follows release order, not string order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

impl ProtocolVersion {
    /// Every revision, oldest first.
    pub const ALL: [ProtocolVersion; 5] = [
        ProtocolVersion::V2024_11_05,
        ProtocolVersion::V2025_03_26,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_11_25,
        ProtocolVersion::V2026_07_28,
    ];
    /// Newest revision negotiated with `initialize`.
    pub const LATEST_HANDSHAKE: ProtocolVersion = ProtocolVersion::V2025_11_25;
    /// Newest stateless (per-request envelope) revision.
    pub const LATEST_STATELESS: ProtocolVersion = ProtocolVersion::V2026_07_28;
    /// What a server assumes when a session-era request carries no version header.
    pub const ASSUMED_WITHOUT_HEADER: ProtocolVersion = ProtocolVersion::V2025_03_26;

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "2024-11-05" => Self::V2024_11_05,
            "2025-03-26" => Self::V2025_03_26,
            "2025-06-18" => Self::V2025_06_18,
            "2025-11-25" => Self::V2025_11_25,
            "2026-07-28" => Self::V2026_07_28,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2024_11_05 => "2024-11-05",
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// True for revisions without `initialize` or sessions: every request carries its own
    /// `_meta` envelope and routing headers.
    pub fn is_stateless(self) -> bool {
        self >= Self::V2026_07_28
    }

    /// JSON-RPC batches were allowed only in 2025-03-26.
    pub fn allows_batch(self) -> bool {
        self == Self::V2025_03_26
    }

    /// Handshake-era revisions, for `initialize` negotiation and `supportedVersions`.
    pub fn handshake() -> impl Iterator<Item = ProtocolVersion> {
        Self::ALL.into_iter().filter(|v| !v.is_stateless())
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
