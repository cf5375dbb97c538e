//! The HTTP headers MCP defines, and the 2026-07-28 rule that the routing headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) must agree with the body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::message::{Request, method};
use crate::version::ProtocolVersion;

pub const HEADER_SESSION_ID: &str = "mcp-session-id";
pub const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
pub const HEADER_MCP_METHOD: &str = "mcp-method";
pub const HEADER_MCP_NAME: &str = "mcp-name";

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// The params key mirrored in `Mcp-Name` for a method, if it has one.
pub fn name_param(method_name: &str) -> Option<&'static str> {
    match method_name {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ => Some("uri"),
        _ => None,
    }
}

/// Encodes a value for an `Mcp-*` header: plain printable ASCII without edge white space as
/// is, anything else (or anything that looks like the encoded form) as `=?base64?…?=`.
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value))
    }
}

/// Decodes a header value that may use the `=?base64?…?=` form for values that are not
/// plain printable ASCII. A malformed encoding decodes to `None`, so it never matches.
pub fn decode_header_value(raw: &str) -> Option<String> {
    let Some(payload) = raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Some(raw.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    // Only the canonical encoding matches: an alternative spelling could smuggle a value.
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// Why a stateless request's envelope or headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderMismatch {
    #[error("params._meta must carry {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES}")]
    MissingEnvelope,
    #[error("MCP-Protocol-Version header does not match the request envelope's protocol version")]
    Version,
    #[error("Mcp-Method header does not match the request body's method")]
    Method,
    #[error("Mcp-Name header does not match the request body's {0} parameter")]
    Name(&'static str),
    #[error("unsupported protocol version")]
    UnsupportedVersion { requested: Value },
}

/// Checks a 2026-07-28 request: the `_meta` envelope, then the headers against the body,
/// then the version. Header values are passed decoded-as-received (`None` when absent).
pub fn stateless_envelope_check(
    req: &Request,
    header_version: Option<&str>,
    header_method: Option<&str>,
    header_name: Option<&str>,
) -> Result<ProtocolVersion, HeaderMismatch> {
    let meta = req.meta().ok_or(HeaderMismatch::MissingEnvelope)?;
    let (Some(body_version), true) = (
        meta.get(META_PROTOCOL_VERSION),
        meta.contains_key(META_CLIENT_CAPABILITIES),
    ) else {
        return Err(HeaderMismatch::MissingEnvelope);
    };
    if header_version.is_none() || body_version.as_str() != header_version {
        return Err(HeaderMismatch::Version);
    }
    if header_method != Some(req.method.as_str()) {
        return Err(HeaderMismatch::Method);
    }
    if let Some(key) = name_param(&req.method)
        && let Some(body_name) = req.param_str(key)
    {
        let header = header_name.and_then(decode_header_value);
        if header.as_deref() != Some(body_name) {
            return Err(HeaderMismatch::Name(key));
        }
    }
    match body_version.as_str().and_then(ProtocolVersion::parse) {
        Some(v) if v.is_stateless() => Ok(v),
        _ => Err(HeaderMismatch::UnsupportedVersion {
            requested: body_version.clone(),
        }),
    }
}
