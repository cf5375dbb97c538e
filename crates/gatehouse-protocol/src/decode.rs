//! Bounded decoding of untrusted JSON-RPC bodies: size, nesting depth and batch length are
//! checked before anything is allocated per element.

use serde_json::Value;

use crate::error::RpcError;
use crate::message::{Id, Message};

/// Limits applied to every body a peer sends. Defaults are safe for the public internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_depth: usize,
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_batch: 32,
        }
    }
}

/// Why a body could not be decoded at all. Each maps to a JSON-RPC error with id null.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("JSON nesting exceeds the limit of {limit}")]
    TooDeep { limit: usize },
    #[error("body is not valid JSON")]
    NotJson,
    #[error("empty batch")]
    EmptyBatch,
    #[error("batch of {len} messages exceeds the limit of {limit}")]
    BatchTooLarge { len: usize, limit: usize },
}

/// One decoded body: a single message or a batch. Each element is either a message or the
/// error to answer it with (carrying its id when it had a readable one).
#[derive(Debug)]
pub enum Decoded {
    Single(Result<Message, (Id, RpcError)>),
    Batch(Vec<Result<Message, (Id, RpcError)>>),
}

/// Decodes a request body under `limits`.
pub fn decode_body(bytes: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    if bytes.len() > limits.max_body_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: limits.max_body_bytes,
        });
    }
    if json_depth(bytes, limits.max_depth).is_none() {
        return Err(DecodeError::TooDeep {
            limit: limits.max_depth,
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|_| DecodeError::NotJson)?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(DecodeError::EmptyBatch);
            }
            if items.len() > limits.max_batch {
                return Err(DecodeError::BatchTooLarge {
                    len: items.len(),
                    limit: limits.max_batch,
                });
            }
            Ok(Decoded::Batch(
                items.into_iter().map(Message::from_value).collect(),
            ))
        }
        other => Ok(Decoded::Single(Message::from_value(other))),
    }
}

/// Decodes one message (a stdio line, an SSE `data:` payload) under `limits`; batches are
/// not allowed here.
pub fn decode_message_bytes(bytes: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    match decode_body(bytes, limits)? {
        Decoded::Single(Ok(m)) => Ok(m),
        _ => Err(DecodeError::NotJson),
    }
}

/// Maximum nesting depth of a JSON text, or `None` as soon as it passes `limit`.
///
/// A linear scan that only tracks strings and brackets: it runs before the parser so a
/// hostile body never reaches serde's recursion.
pub fn json_depth(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut max = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // A string: jump from quote or backslash to the next (most of a body is strings).
            b'"' => loop {
                let rest = bytes.get(i + 1..).unwrap_or_default();
                match memchr::memchr2(b'"', b'\\', rest) {
                    None => return Some(max),
                    Some(k) if bytes[i + 1 + k] == b'\\' => i += k + 2,
                    Some(k) => {
                        i += k + 1;
                        break;
                    }
                }
            },
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return None;
                }
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Some(max)
}
