//! The arguments as an approver reads them: the same structure, with values under secret-
//! looking keys and secret-looking strings replaced, and bounded in size. The approval is
//! bound to the digest of the real arguments, never to this rendering.

use serde_json::{Map, Value};

/// Keys whose values never reach an approver (or a webhook).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "authorization",
    "cookie",
    "session",
];

/// Prefixes of well-known credentials.
const SECRET_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "sk_live_",
    "sk-",
    "AKIA",
    "ASIA",
    "ghk_",
    "-----BEGIN",
];

/// Longest string shown; longer ones are cut with a marker.
const MAX_STRING: usize = 2048;
/// Deepest nesting shown.
const MAX_DEPTH: usize = 16;
/// Most members shown per object or array.
const MAX_ITEMS: usize = 200;

pub(crate) const REDACTED: &str = "[redacted]";

pub(crate) fn redacted(v: &Value) -> Value {
    walk(v, 0)
}

fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

fn secret_value(s: &str) -> bool {
    let t = s.trim_start();
    SECRET_PREFIXES.iter().any(|p| t.starts_with(p))
        // A JWT: three base64url parts, the first a JSON header.
        || (t.starts_with("eyJ") && t.split('.').count() == 3)
        // A connection string with a password.
        || (t.contains("://") && t.split("://").nth(1).is_some_and(|r| r.split('/').next().is_some_and(|auth| auth.contains(':') && auth.contains('@'))))
}

fn walk(v: &Value, depth: usize) -> Value {
    if depth >= MAX_DEPTH {
        return Value::String("[nested too deep]".into());
    }
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter().take(MAX_ITEMS) {
                let shown = if secret_key(k) && !v.is_null() {
                    Value::String(REDACTED.into())
                } else {
                    walk(v, depth + 1)
                };
                out.insert(k.clone(), shown);
            }
            if m.len() > MAX_ITEMS {
                out.insert(
                    "…".into(),
                    Value::String(format!("{} more", m.len() - MAX_ITEMS)),
                );
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            let mut out: Vec<Value> = a
                .iter()
                .take(MAX_ITEMS)
                .map(|v| walk(v, depth + 1))
                .collect();
            if a.len() > MAX_ITEMS {
                out.push(Value::String(format!("… {} more", a.len() - MAX_ITEMS)));
            }
            Value::Array(out)
        }
        Value::String(s) if secret_value(s) => Value::String(REDACTED.into()),
        Value::String(s) if s.len() > MAX_STRING => {
            let mut end = MAX_STRING;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!("{}… [{} bytes]", &s[..end], s.len()))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_reach_an_approver_but_the_rest_does() {
        let args = json!({
            "service": "billing",
            "env": {"DB_PASSWORD": "hunter2", "Api-Key": "abc", "region": "eu"},
            "notes": ["ghp_0123456789abcdef0123456789abcdef0123", "ok"],
            "dsn": "postgres://app:s3cret@db.internal/app",
            "auth": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            "long": "x".repeat(5000)
        });
        let r = redacted(&args);
        assert_eq!(r["service"], "billing");
        assert_eq!(r["env"]["DB_PASSWORD"], REDACTED);
        assert_eq!(r["env"]["Api-Key"], REDACTED);
        assert_eq!(r["env"]["region"], "eu");
        assert_eq!(r["notes"][0], REDACTED);
        assert_eq!(r["notes"][1], "ok");
        assert_eq!(r["dsn"], REDACTED);
        assert_eq!(r["auth"], REDACTED);
        assert!(
            r["long"]
                .as_str()
                .is_some_and(|s| s.len() < 2200 && s.ends_with("[5000 bytes]"))
        );
        let text = r.to_string();
        for secret in ["hunter2", "ghp_", "s3cret", "eyJhbGci"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}
