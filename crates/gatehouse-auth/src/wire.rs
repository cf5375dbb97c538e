//! Small helpers every part of the crate shares (digests, form encoding, HTTP Basic client
//! authentication, bounded reads, the clock, locks). A leaf: it uses no other module but
//! the error type.

use std::sync::{Mutex, PoisonError};

use base64::Engine;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::AuthError;

pub(crate) fn sha256(s: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Reads a response body up to `max` bytes; anything else is "identity provider unavailable".
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, AuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| AuthError::Unavailable(e.without_url().to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > max {
            return Err(AuthError::Unavailable("response too large".into()));
        }
    }
    Ok(body)
}

/// `application/x-www-form-urlencoded` value: everything but unreserved characters escaped.
/// RFC 6749 §2.3.1 client authentication: the client id and secret, each
/// `application/x-www-form-urlencoded`, joined by `:`, base64: the `Authorization` value.
/// The one place Gatehouse writes HTTP Basic for a client; [`client_basic_decode`] reads it.
pub fn client_basic(id: &str, secret: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", form_encode(id), form_encode(secret)))
    )
}

/// Reads an RFC 6749 §2.3.1 `Authorization` value into the client id and secret (each
/// form-decoded). `None` when it is not Basic or not well formed.
pub fn client_basic_decode(header: &str) -> Option<(String, String)> {
    use base64::engine::general_purpose::STANDARD;
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let text = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// `application/x-www-form-urlencoded` decoding of one value (`+` is a space).
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = s.get(i + 1..i + 3)?;
                out.push(hex::decode(h).ok()?.first().copied()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

pub(crate) fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET with a timeout and a body limit; any failure is "identity provider unavailable".
pub(crate) async fn get_bounded(
    client: &reqwest::Client,
    uri: &str,
    max: usize,
) -> Result<Vec<u8>, AuthError> {
    let resp = client
        .get(uri)
        .send()
        .await
        .map_err(|e| AuthError::Unavailable(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(AuthError::Unavailable(format!("HTTP {}", resp.status())));
    }
    read_limited(resp, max).await
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Poison-tolerant lock, shared with the introspection cache.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
