//! Gatehouse's wire model: JSON-RPC 2.0 messages as MCP uses them, protocol versions,
//! bounded decoding of untrusted bodies, the `Mcp-*` header rules and the SSE codec.
//!
//! Pure: no IO, no async runtime. Everything here is deterministic over bytes and values,
//! so it is unit-tested and fuzzed alone.

mod decode;
mod error;
mod headers;
mod message;
mod sse;
mod version;

pub use decode::{DecodeError, Decoded, Limits, decode_body, decode_message_bytes, json_depth};
pub use error::{RpcError, code};
pub use headers::{
    HEADER_MCP_METHOD, HEADER_MCP_NAME, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, HeaderMismatch,
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, decode_header_value,
    encode_header_value, name_param, stateless_envelope_check,
};
pub use message::{Id, Message, Notification, Request, Response, method};
pub use sse::{SseDecoder, SseError, SseEvent, encode_sse_event};
pub use version::ProtocolVersion;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prop;
