//! What a profile does with findings, applied in place to any JSON an MCP message carries:
//! every string leaf (text content, `structuredContent` values, embedded resources, prompt
//! messages, arguments) is scanned; findings are masked, partially masked, replaced by a
//! keyed token stable within a session, or make the whole message blocked, or only alert.
//! The structure and every non-string value stay as they were.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dlp::{Finding, Recognizers};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `[REDACTED:kind]`.
    Mask,
    /// `****1234`: the last four letters or digits kept.
    Partial,
    /// `[kind:1a2b3c4d]`: a keyed hash, the same for the same value within one session.
    Token,
    /// Nothing of the message is returned.
    Block,
    /// Left as is; recorded.
    Alert,
}

/// What to do per kind (`card`, `secret.github_token`) or family (`secret`,
/// `national_id`), with a default for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default = "default_action")]
    pub default: Action,
    #[serde(default)]
    pub kinds: BTreeMap<String, Action>,
    /// Findings below this confidence are ignored (default 0.5).
    #[serde(default = "default_confidence")]
    pub min_confidence: f32,
}

fn default_action() -> Action {
    Action::Mask
}

fn default_confidence() -> f32 {
    0.5
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            default: Action::Mask,
            kinds: BTreeMap::new(),
            min_confidence: 0.5,
        }
    }
}

impl Profile {
    /// The built-in `standard` profile: secrets block, cards and national IDs keep their
    /// last four, everything else is masked.
    pub fn standard() -> Profile {
        let mut kinds = BTreeMap::new();
        kinds.insert("secret".into(), Action::Block);
        kinds.insert("card".into(), Action::Partial);
        kinds.insert("iban".into(), Action::Partial);
        kinds.insert("ssn".into(), Action::Partial);
        kinds.insert("national_id".into(), Action::Partial);
        Profile {
            default: Action::Mask,
            kinds,
            min_confidence: 0.5,
        }
    }

    /// Outgoing arguments: secrets block the call; personal data passes (the tool may need
    /// it) but is recorded.
    pub fn arguments() -> Profile {
        let mut kinds = BTreeMap::new();
        kinds.insert("secret".into(), Action::Block);
        Profile {
            default: Action::Alert,
            kinds,
            min_confidence: 0.7,
        }
    }

    pub fn action(&self, f: &Finding) -> Action {
        self.kinds
            .get(&f.kind)
            .or_else(|| self.kinds.get(f.family()))
            .copied()
            .unwrap_or(self.default)
    }
}

/// Turns a value into its session-stable token (a keyed hash).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    key: aws_lc_rs::hmac::Key,
}

impl Tokenizer {
    pub fn new(key: &[u8]) -> Tokenizer {
        Tokenizer {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        }
    }

    fn token(&self, kind: &str, value: &str) -> String {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        let tag = ctx.sign();
        let hex = hex::encode(&tag.as_ref()[..4]);
        format!("[{kind}:{hex}]")
    }
}

/// Keys the digests of data subjects' identifiers (emails, phone numbers, national IDs…)
/// so the audit can say which events involved someone without holding who.
#[derive(Debug, Clone)]
pub struct SubjectKey {
    key: aws_lc_rs::hmac::Key,
}

impl SubjectKey {
    pub fn new(key: &[u8]) -> SubjectKey {
        SubjectKey {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        }
    }

    /// The digest of an identifier as written anywhere: emails compare case-insensitively,
    /// everything else on its letters and digits only (`4111 1111…` = `4111-1111…`).
    pub fn digest(&self, value: &str) -> String {
        let normal: String = if value.contains('@') {
            value.trim().to_lowercase()
        } else {
            value
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        let tag = aws_lc_rs::hmac::sign(&self.key, normal.as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }
}

/// Kinds that identify a person (secrets and birth dates alone do not).
fn identifies(kind: &str) -> bool {
    !kind.starts_with("secret.") && kind != "date_of_birth"
}

/// What a walk found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Findings per kind.
    pub found: BTreeMap<String, usize>,
    /// Kinds whose action is to block: the message must not be returned.
    pub blocked: Vec<String>,
    /// Values changed.
    pub redacted: usize,
    /// Keyed digests of the personal identifiers seen (with a [`SubjectKey`]): what a data
    /// subject's access report searches for, never the values.
    pub subjects: std::collections::BTreeSet<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.found.is_empty()
    }
}

/// Keys whose values are not text a person or model reads.
const SKIP_KEYS: &[&str] = &["blob", "type", "mimeType", "inputSchema", "outputSchema"];

/// Scans and rewrites every string in `value` per `profile`.
pub fn walk(
    recognizers: &Recognizers,
    profile: &Profile,
    tokens: &Tokenizer,
    value: &mut Value,
) -> Report {
    walk_indexed(recognizers, profile, tokens, None, value)
}

/// [`walk`], also collecting the digests of the personal identifiers it sees.
pub fn walk_indexed(
    recognizers: &Recognizers,
    profile: &Profile,
    tokens: &Tokenizer,
    subjects: Option<&SubjectKey>,
    value: &mut Value,
) -> Report {
    let mut report = Report::default();
    let ctx = Ctx {
        r: recognizers,
        p: profile,
        t: tokens,
        s: subjects,
    };
    visit(&ctx, value, &mut report);
    report.blocked.sort();
    report.blocked.dedup();
    report
}

struct Ctx<'a> {
    r: &'a Recognizers,
    p: &'a Profile,
    t: &'a Tokenizer,
    s: Option<&'a SubjectKey>,
}

fn visit(c: &Ctx<'_>, v: &mut Value, report: &mut Report) {
    match v {
        Value::String(s) => {
            if let Some(new) = apply_with(c, s, report) {
                *s = new;
                report.redacted += 1;
            }
        }
        Value::Array(items) => {
            for i in items {
                visit(c, i, report);
            }
        }
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if !SKIP_KEYS.contains(&k.as_str()) {
                    visit(c, child, report);
                }
            }
        }
        _ => {}
    }
}

/// Whether any string [`walk`] would scan in `value` could hold a finding (see
/// [`Recognizers::may_match`]): when not, walking it changes and reports nothing, and a
/// caller can skip the copy it would walk.
pub fn may_find(recognizers: &Recognizers, value: &Value) -> bool {
    match value {
        Value::String(s) => recognizers.may_match(s),
        Value::Array(items) => items.iter().any(|i| may_find(recognizers, i)),
        Value::Object(map) => map
            .iter()
            .any(|(k, child)| !SKIP_KEYS.contains(&k.as_str()) && may_find(recognizers, child)),
        _ => false,
    }
}

/// The rewritten text, or `None` when nothing in it changes.
pub fn apply(
    r: &Recognizers,
    p: &Profile,
    t: &Tokenizer,
    text: &str,
    report: &mut Report,
) -> Option<String> {
    apply_with(&Ctx { r, p, t, s: None }, text, report)
}

fn apply_with(c: &Ctx<'_>, text: &str, report: &mut Report) -> Option<String> {
    let mut current = apply_once(c, text, report)?;
    for _ in 1..MAX_PASSES {
        match apply_once(c, &current, report) {
            Some(next) => current = next,
            None => break,
        }
    }
    Some(current)
}

/// Passes over one text at most: a value that lost an overlap to another finding may show
/// once that one is replaced, so the text is scanned again until nothing changes.
const MAX_PASSES: usize = 3;

fn apply_once(c: &Ctx<'_>, text: &str, report: &mut Report) -> Option<String> {
    let (r, p, t) = (c.r, c.p, c.t);
    let findings: Vec<Finding> = r
        .scan(text)
        .into_iter()
        .filter(|f| f.confidence >= p.min_confidence)
        .collect();
    if findings.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut changed = false;
    for f in &findings {
        *report.found.entry(f.kind.clone()).or_default() += 1;
        let value = &text[f.start..f.end];
        if let Some(key) = c.s
            && identifies(&f.kind)
        {
            report.subjects.insert(key.digest(value));
        }
        let replacement = match p.action(f) {
            Action::Alert => continue,
            Action::Block => {
                report.blocked.push(f.kind.clone());
                format!("[REDACTED:{}]", f.kind)
            }
            Action::Mask => format!("[REDACTED:{}]", f.kind),
            Action::Partial => partial(value),
            Action::Token => t.token(&f.kind, value),
        };
        out.push_str(&text[last..f.start]);
        out.push_str(&replacement);
        last = f.end;
        changed = true;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// `****` and the last four letters or digits.
fn partial(value: &str) -> String {
    let alnum: Vec<char> = value.chars().filter(char::is_ascii_alphanumeric).collect();
    if alnum.len() <= 8 {
        return "****".into();
    }
    let tail: String = alnum[alnum.len() - 4..].iter().collect();
    format!("****{tail}")
}
