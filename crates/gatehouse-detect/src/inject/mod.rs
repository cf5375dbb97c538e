//! Injection detectors for tool arguments, each for one kind of argument: SQL (a tokenizer,
//! not patterns: stacked statements, writes in a read-only query, comment tricks,
//! tautologies, UNION probes; `sql`), shell commands (`shell`), file paths (traversal,
//! encoded dots, escapes from configured roots) and URLs (SSRF through two parsers: `url`),
//! templates, LDAP and NoSQL. Each returns the first problem found.

mod shell;
mod sql;
mod url;

use serde::{Deserialize, Serialize};

pub use self::sql::MAX_SQL_BYTES;
pub use self::url::{internal_address, url_host};
use self::{shell::shell, sql::sql_query, sql::sql_value, url::url};

/// What an argument holds, which decides the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArgKind {
    /// A whole SQL query.
    SqlQuery,
    /// A value that ends up inside SQL (a name, an id).
    SqlValue,
    Shell,
    Path,
    Url,
    /// Text a template engine renders (Jinja, Twig, ERB, Thymeleaf, JS templates).
    Template,
    /// A value placed into an LDAP search filter or DN.
    Ldap,
    /// A MongoDB-style filter document: operators allowed, server-side code not.
    NosqlFilter,
    /// A plain value placed into a NoSQL query: no operators at all.
    NosqlValue,
    /// Free text: no injection detector (the detection stages read it).
    Text,
}

/// One problem in one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// `sql.stacked`, `sql.write`, `path.traversal`, `ssrf.private`…
    pub rule: &'static str,
    pub detail: String,
}

fn found(rule: &'static str, detail: impl Into<String>) -> Option<Injection> {
    Some(Injection {
        rule,
        detail: detail.into(),
    })
}

/// The kind an argument probably holds, from its name and the tool's (for arguments
/// configuration does not type).
pub fn infer(tool: &str, arg: &str) -> ArgKind {
    let a = arg.to_ascii_lowercase();
    let t = tool.to_ascii_lowercase();
    let has = |s: &str, words: &[&str]| words.iter().any(|w| s.contains(w));
    if a == "sql" || (a == "query" && has(&t, &["sql", "database", "db", "query"])) {
        ArgKind::SqlQuery
    } else if has(&a, &["path", "file", "dir", "folder"]) {
        ArgKind::Path
    } else if has(&a, &["url", "uri", "endpoint", "webhook", "href"]) {
        ArgKind::Url
    } else if has(&a, &["command", "cmd", "shell", "script"]) {
        ArgKind::Shell
    } else if has(&a, &["template"]) {
        ArgKind::Template
    } else if has(&a, &["ldap"]) || a == "dn" || (a == "filter" && has(&t, &["ldap", "directory"]))
    {
        ArgKind::Ldap
    } else if has(&a, &["filter", "selector", "query"])
        && has(&t, &["mongo", "nosql", "collection", "document", "find"])
    {
        ArgKind::NosqlFilter
    } else {
        ArgKind::Text
    }
}

/// Checks one argument value of a kind.
pub fn check(kind: ArgKind, value: &str, read_only: bool, roots: &[String]) -> Option<Injection> {
    match kind {
        ArgKind::SqlQuery => sql_query(value, read_only),
        ArgKind::SqlValue => sql_value(value),
        ArgKind::Shell => shell(value),
        ArgKind::Path => path(value, roots),
        ArgKind::Url => url(value),
        ArgKind::Template => template(value),
        ArgKind::Ldap => ldap(value),
        // A string where a document is expected: read it as one.
        ArgKind::NosqlFilter | ArgKind::NosqlValue => match serde_json::from_str(value) {
            Ok(v @ serde_json::Value::Object(_)) => check_value(kind, &v),
            _ if kind == ArgKind::NosqlValue && value.trim_start().starts_with('$') => {
                found("nosql.operator", "a value that starts with `$`")
            }
            _ => None,
        },
        ArgKind::Text => None,
    }
}

/// Checks a whole argument value where its structure matters (NoSQL documents: operators
/// are object keys); for other kinds, nothing beyond the per-string checks.
pub fn check_value(kind: ArgKind, v: &serde_json::Value) -> Option<Injection> {
    fn walk(kind: ArgKind, v: &serde_json::Value, depth: usize) -> Option<Injection> {
        if depth > 64 {
            return found("nosql.depth", "nested too deeply");
        }
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    let op = k.trim().to_ascii_lowercase();
                    if NOSQL_CODE.contains(&op.as_str()) {
                        return found(
                            "nosql.code",
                            format!("operator `{k}` runs code on the server"),
                        );
                    }
                    if kind == ArgKind::NosqlValue && op.starts_with('$') {
                        return found("nosql.operator", format!("operator `{k}` in a plain value"));
                    }
                    walk(kind, child, depth + 1)?;
                }
                None
            }
            serde_json::Value::Array(a) => a.iter().find_map(|x| walk(kind, x, depth + 1)),
            _ => None,
        }
    }
    match kind {
        ArgKind::NosqlFilter | ArgKind::NosqlValue => walk(kind, v, 0),
        _ => None,
    }
}

/// Operators that run JavaScript (or other code) inside the database.
const NOSQL_CODE: &[&str] = &[
    "$where",
    "$function",
    "$accumulator",
    "$eval",
    "mapreduce",
    "$mapreduce",
];

// ---------------------------------------------------------------------------- templates

fn template(v: &str) -> Option<Injection> {
    for (open, engine) in [
        ("{{", "a `{{ }}` expression"),
        ("{%", "a `{% %}` statement"),
        ("${", "a `${}` expression"),
        ("#{", "a `#{}` expression"),
        ("<%", "an ERB/JSP tag"),
        ("*{", "a Thymeleaf expression"),
        ("@(", "a Razor expression"),
    ] {
        if v.contains(open) {
            return found("template.expression", engine);
        }
    }
    None
}

// ---------------------------------------------------------------------------- LDAP

/// RFC 4515: in a filter value `*`, `(`, `)`, `\` and NUL must be escaped as `\2a` etc.
fn ldap(v: &str) -> Option<Injection> {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // A valid escape is two hex digits.
                if b.len() < i + 3 || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit()
                {
                    return found("ldap.escape", "a backslash that is not a `\\XX` escape");
                }
                i += 3;
                continue;
            }
            b'*' | b'(' | b')' | 0 => {
                return found(
                    "ldap.metachar",
                    format!(
                        "unescaped `{}` in an LDAP value",
                        (b[i] as char).escape_default()
                    ),
                );
            }
            _ => {}
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------- paths

/// Percent-decoding, repeated (double encoding), of the bytes that matter here.
fn decode(s: &str) -> String {
    let mut cur = s.to_owned();
    for _ in 0..3 {
        let mut out = Vec::with_capacity(cur.len());
        let b = cur.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn path(p: &str, roots: &[String]) -> Option<Injection> {
    let d = decode(p).replace('\\', "/");
    if d.contains('\0') {
        return found("path.nul", "a NUL byte");
    }
    if d != p.replace('\\', "/") && (d.contains("..") || d.contains('/')) && p.contains('%') {
        // Encoded dots or slashes are never needed in a real path argument.
        return found("path.encoded", "percent-encoded path characters");
    }
    if d.starts_with("//") || d.starts_with("~") {
        return found("path.absolute", "a network or home path");
    }
    // Normalise: a `..` that climbs above the start escapes; in an absolute path any `..`
    // is refused (where it may climb to depends on roots the gateway may not know).
    let absolute = d.starts_with('/') || d.get(1..3) == Some(":/");
    if absolute && d.split('/').any(|seg| seg == "..") {
        return found("path.traversal", "`..` in an absolute path");
    }
    let mut depth: i64 = 0;
    let mut parts: Vec<&str> = Vec::new();
    for seg in d.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if parts.pop().is_none() || depth < 0 {
                    return found("path.traversal", "`..` climbs out of its directory");
                }
            }
            s => {
                depth += 1;
                parts.push(s);
            }
        }
    }
    if absolute && !roots.is_empty() {
        let normal = format!("/{}", parts.join("/"));
        let inside = roots.iter().any(|r| {
            let r = r.trim_end_matches('/');
            normal == r || normal.starts_with(&format!("{r}/"))
        });
        if !inside {
            return found(
                "path.outside",
                format!("{normal} is outside the allowed roots"),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests;
