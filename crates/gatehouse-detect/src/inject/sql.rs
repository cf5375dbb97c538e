//! SQL arguments: a tokenizer, not patterns. Whole queries must be one statement (and only
//! a read in a read-only tool, with no comment inside); values pasted into SQL must stay
//! inside their quotes. The tokenizer runs in linear time on every input, and arguments
//! longer than [`MAX_SQL_BYTES`] are refused rather than analysed.

use super::{Injection, found};

/// The longest SQL argument analysed. Longer ones are refused: no analyst's query is this
/// long, and a bound keeps the worst case small whatever the input.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

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
///
/// Every step moves `i` forward and every search starts at `i`, so the work is linear in
/// the input (dollar-quote ends are found with a substring search from the opening tag).
fn lex(sql: &str) -> Option<Vec<Tok>> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if matches!(c, b'\'' | b'"' | b'`' | b'[') {
            let close = if c == b'[' { b']' } else { c };
            i += 1;
            loop {
                let ch = *b.get(i)?;
                if ch == b'\\' && c == b'\'' {
                    i += 2;
                    continue;
                }
                if ch == close {
                    if b.get(i + 1) == Some(&close) && c != b'[' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(if c == b'\'' {
                Tok::Str
            } else {
                Tok::Word("\"ident\"".into())
            });
        } else if (c == b'-' && b.get(i + 1) == Some(&b'-')) || c == b'#' {
            i = memchr::memchr(b'\n', &b[i..]).map_or(n, |p| i + p);
            out.push(Tok::Comment);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0usize;
            loop {
                if i >= n {
                    return None;
                }
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(Tok::Comment);
        } else if c == b'$'
            && b.get(i + 1)
                .is_some_and(|&x| x == b'$' || x == b'_' || x.is_ascii_alphabetic() || x >= 0x80)
        {
            // Dollar quoting: $tag$ … $tag$, the tag an identifier (or empty).
            let start = i;
            let mut j = i + 1;
            while j < n && b[j] != b'$' {
                if !(b[j] == b'_' || b[j].is_ascii_alphanumeric() || b[j] >= 0x80) {
                    break;
                }
                j += 1;
            }
            if j >= n || b[j] != b'$' {
                // `$name` without a closing `$`: a parameter or an odd word, not a quote.
                out.push(Tok::Punct('$'));
                i += 1;
                continue;
            }
            let tag = &b[start..=j];
            let body = j + 1;
            let end = memchr::memmem::find(&b[body..], tag)?;
            i = body + end + tag.len();
            out.push(Tok::Str);
        } else if c == b';' {
            out.push(Tok::Semi);
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(sql[start..i].to_owned()));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < n {
                if b[i].is_ascii_alphanumeric() || b[i] == b'_' {
                    i += 1;
                } else if b[i] >= 0x80 {
                    // A multi-byte character: part of the word when alphanumeric.
                    let ch = sql[i..].chars().next()?;
                    if !ch.is_alphanumeric() {
                        break;
                    }
                    i += ch.len_utf8();
                } else {
                    break;
                }
            }
            if i == start {
                // A non-alphanumeric multi-byte character on its own.
                let ch = sql[i..].chars().next()?;
                if !ch.is_whitespace() {
                    out.push(Tok::Punct(ch));
                }
                i += ch.len_utf8();
            } else {
                out.push(Tok::Word(sql[start..i].to_ascii_uppercase()));
            }
        } else {
            out.push(Tok::Punct(char::from(c)));
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

fn too_long(v: &str) -> Option<Injection> {
    (v.len() > MAX_SQL_BYTES).then(|| Injection {
        rule: "sql.too_long",
        detail: format!(
            "{} bytes of SQL, more than the {MAX_SQL_BYTES} the gateway analyses",
            v.len()
        ),
    })
}

/// A whole query (an analyst's tool): one statement; in a read-only tool no writes.
pub(super) fn sql_query(sql: &str, read_only: bool) -> Option<Injection> {
    if let Some(long) = too_long(sql) {
        return Some(long);
    }
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
pub(super) fn sql_value(v: &str) -> Option<Injection> {
    if let Some(long) = too_long(v) {
        return Some(long);
    }
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
