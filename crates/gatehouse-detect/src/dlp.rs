//! DLP recognizers: personal data (email, phone, SSN, payment cards, IBAN, national IDs, IP
//! addresses, dates of birth in context) and secrets (cloud keys, platform tokens, JWTs,
//! private keys, connection strings, high-entropy values in key-like context). Each
//! finding has a kind, a byte span and a confidence. Operators add their own recognizers.
//!
//! Scanning is one pass of a regex set to learn which recognizers can match at all, then
//! each of those alone for spans, so clean text costs one pass; a text holding none of the
//! bytes every recognizer needs (digits, `@`, `:`, `=`…) skips even that.

use regex::{Regex, RegexSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checks::Check;
use crate::lazy::Lazy;

/// One match that passed its checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `email`, `card`, `secret.github_token`, a custom id…
    pub kind: String,
    /// Byte offsets into the scanned text.
    pub start: usize,
    pub end: usize,
    /// 0.0 – 1.0.
    pub confidence: f32,
}

impl Finding {
    /// The family: `secret` for `secret.*`, else the kind.
    pub fn family(&self) -> &str {
        self.kind.split('.').next().unwrap_or(&self.kind)
    }
}

/// An operator's recognizer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomRecognizer {
    /// The finding's kind, e.g. `employee_id`.
    pub id: String,
    /// A regular expression (Rust syntax); a capture group named `value` narrows the span.
    pub pattern: String,
    /// A checksum the match must pass.
    pub check: Option<Check>,
    /// Words that, within 48 bytes before the match, raise its confidence (or, with
    /// `context_required`, are needed at all).
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub context_required: bool,
    /// Default 0.8.
    pub confidence: Option<f32>,
}

#[derive(Debug, thiserror::Error)]
#[error("recognizer `{id}`: {reason}")]
pub struct RecognizerError {
    pub id: String,
    pub reason: String,
}

struct Recognizer {
    kind: String,
    /// Compiled when the recognizer set first matches it (`lazy.rs`).
    regex: Lazy<Regex>,
    /// The pattern has a `value` group (capturing costs more than finding).
    narrowed: bool,
    check: Option<Check>,
    context: Vec<String>,
    context_required: bool,
    confidence: f32,
    /// Confidence with a context word nearby.
    boosted: f32,
}

/// Bytes before a match searched for context words.
const CONTEXT_WINDOW: usize = 48;
/// Longest text scanned in one piece; longer texts are scanned in overlapping windows.
const MAX_SCAN: usize = 1 << 20;

/// `(?-u:\b)`: ASCII word boundaries keep the fast DFA on any text.
fn b(p: &str) -> String {
    p.replace(r"\b", r"(?-u:\b)")
}

/// The built-in recognizers: (kind, pattern, check, context words, context required,
/// confidence, with context).
#[allow(clippy::type_complexity)]
const BUILT_IN: &[(&str, &str, Option<Check>, &[&str], bool, f32, f32)] = &[
    (
        "email",
        r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b",
        None,
        &[],
        false,
        0.9,
        0.95,
    ),
    // International: +CC then 6–14 more digits in groups; NANP: (415) 555-0100, 415-555-0100.
    (
        "phone",
        r"(?:\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}\b|\(?\b[2-9][0-9]{2}\)?[ .-][2-9][0-9]{2}[ .-][0-9]{4}\b)",
        None,
        &["phone", "tel", "mobile", "cell", "fax", "call"],
        false,
        0.6,
        0.85,
    ),
    (
        "ssn",
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        Some(Check::Ssn),
        &["ssn", "social security"],
        false,
        0.8,
        0.95,
    ),
    (
        "ssn",
        r"(?i:ssn|social security(?: number)?)[^0-9]{0,12}(?P<value>\b[0-9]{9}\b)",
        Some(Check::Ssn),
        &[],
        false,
        0.85,
        0.85,
    ),
    (
        "card",
        r"\b[0-9](?:[ -]?[0-9]){11,18}\b",
        Some(Check::Card),
        &[
            "card",
            "visa",
            "mastercard",
            "amex",
            "credit",
            "debit",
            "pan",
        ],
        false,
        0.85,
        0.98,
    ),
    (
        "iban",
        r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
        Some(Check::Iban),
        &["iban", "account"],
        false,
        0.9,
        0.98,
    ),
    (
        "national_id.uk_nino",
        r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
        Some(Check::UkNino),
        &["national insurance", "nino", "ni number"],
        false,
        0.6,
        0.9,
    ),
    (
        "national_id.in_aadhaar",
        r"\b[2-9][0-9]{3} ?[0-9]{4} ?[0-9]{4}\b",
        Some(Check::Aadhaar),
        &["aadhaar", "uid"],
        false,
        0.6,
        0.9,
    ),
    (
        "national_id.br_cpf",
        r"\b[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}\b",
        Some(Check::Cpf),
        &["cpf"],
        false,
        0.85,
        0.95,
    ),
    (
        "national_id.cn_resident",
        r"\b[1-9][0-9]{16}[0-9Xx]\b",
        Some(Check::ChinaId),
        &["身份证", "resident", "id card"],
        false,
        0.8,
        0.95,
    ),
    (
        "ip_address",
        r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        Some(Check::Ipv4),
        &["ip", "address", "host"],
        false,
        0.7,
        0.85,
    ),
    // A candidate of hex groups and colons; parsing decides.
    (
        "ip_address",
        r"(?:\b[0-9A-Fa-f]{1,4})?(?::{1,2}[0-9A-Fa-f]{1,4}){1,7}(?:::)?",
        Some(Check::Ipv6),
        &["ip", "address", "host"],
        false,
        0.7,
        0.85,
    ),
    (
        "date_of_birth",
        r"\b(?:(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]|[0-3]?[0-9][/.][01]?[0-9][/.](?:19|20)[0-9]{2})\b",
        None,
        &["born", "birth", "dob", "birthday", "d.o.b"],
        true,
        0.8,
        0.8,
    ),
    (
        "secret.aws_access_key",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b",
        None,
        &[],
        false,
        0.95,
        0.95,
    ),
    (
        "secret.aws_secret_key",
        r"(?i:aws)[A-Za-z0-9_ .-]{0,24}(?i:secret)[A-Za-z0-9_ .-]{0,16}[\x22'`]?\s*[:=]\s*[\x22'`]?(?P<value>[A-Za-z0-9/+=]{40})\b",
        None,
        &[],
        false,
        0.9,
        0.9,
    ),
    (
        "secret.gcp_api_key",
        r"\bAIza[0-9A-Za-z_-]{35}\b",
        None,
        &[],
        false,
        0.95,
        0.95,
    ),
    (
        "secret.gcp_service_account",
        r#""private_key_id"\s*:\s*"(?P<value>[0-9a-f]{40})""#,
        None,
        &[],
        false,
        0.9,
        0.9,
    ),
    (
        "secret.azure_storage_key",
        r"(?i:AccountKey)=(?P<value>[A-Za-z0-9+/]{80,90}={0,2})",
        None,
        &[],
        false,
        0.95,
        0.95,
    ),
    (
        "secret.github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        None,
        &[],
        false,
        0.98,
        0.98,
    ),
    (
        "secret.gitlab_token",
        r"\bglpat-[A-Za-z0-9_-]{20,}\b",
        None,
        &[],
        false,
        0.98,
        0.98,
    ),
    (
        "secret.slack_token",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
        None,
        &[],
        false,
        0.95,
        0.95,
    ),
    (
        "secret.stripe_key",
        r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b",
        None,
        &[],
        false,
        0.95,
        0.95,
    ),
    (
        "secret.jwt",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        None,
        &[],
        false,
        0.9,
        0.9,
    ),
    (
        "secret.private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)?",
        None,
        &[],
        false,
        0.99,
        0.99,
    ),
    (
        "secret.connection_string",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@]{1,128}:(?P<value>[^\s@/]{1,128})@[^\s/]{1,255}",
        None,
        &[],
        false,
        0.95,
        0.95,
    ),
    (
        "secret.generic",
        r"(?i:api[_-]?key|secret|token|passwd|password|pwd|access[_-]?key|client[_-]?secret)[\x22'`]?\s*[:=]\s*[\x22'`]?(?P<value>[A-Za-z0-9_+/=.~-]{16,256})",
        Some(Check::Entropy),
        &[],
        false,
        0.75,
        0.75,
    ),
];

/// A compiled set of recognizers.
pub struct Recognizers {
    set: RegexSet,
    all: Vec<Recognizer>,
    /// The bytes of which a text must hold one for any recognizer to match; `None` when
    /// some recognizer needs no particular byte.
    needed: Option<[bool; 256]>,
}

impl std::fmt::Debug for Recognizers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizers")
            .field("count", &self.all.len())
            .finish()
    }
}

/// Bounds on operators' patterns: compiled size, so one cannot exhaust memory.
const MAX_PATTERN_BYTES: usize = 1 << 20;

/// How an operator's pattern compiles.
fn build_custom(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_BYTES)
        .build()
}

impl Recognizers {
    /// The built-in recognizers plus `custom`.
    pub fn new(custom: &[CustomRecognizer]) -> Result<Recognizers, RecognizerError> {
        let mut all = Vec::new();
        for (kind, pattern, check, context, required, conf, boosted) in BUILT_IN {
            let pattern = b(pattern);
            let regex = Regex::new(&pattern).map_err(|e| RecognizerError {
                id: (*kind).into(),
                reason: e.to_string(),
            })?;
            all.push(Recognizer {
                kind: (*kind).into(),
                narrowed: regex.capture_names().any(|n| n == Some("value")),
                regex: Lazy::checked(&pattern, Regex::new),
                check: *check,
                context: context.iter().map(|c| (*c).to_owned()).collect(),
                context_required: *required,
                confidence: *conf,
                boosted: *boosted,
            });
        }
        for c in custom {
            let err = |reason: String| RecognizerError {
                id: c.id.clone(),
                reason,
            };
            if c.id.is_empty()
                || !c
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                return Err(err("ids are letters, digits, _ . -".into()));
            }
            let regex = build_custom(&c.pattern).map_err(|e| err(e.to_string()))?;
            let confidence = c.confidence.unwrap_or(0.8).clamp(0.0, 1.0);
            all.push(Recognizer {
                kind: c.id.clone(),
                narrowed: regex.capture_names().any(|n| n == Some("value")),
                regex: Lazy::checked(&c.pattern, build_custom),
                check: c.check,
                context: c.context.iter().map(|w| w.to_lowercase()).collect(),
                context_required: c.context_required,
                confidence,
                boosted: (confidence + 0.15).min(1.0),
            });
        }
        let set =
            RegexSet::new(all.iter().map(|r| r.regex.as_str())).map_err(|e| RecognizerError {
                id: "(set)".into(),
                reason: e.to_string(),
            })?;
        let needed = all
            .iter()
            .map(|r| needs::needed(r.regex.as_str()))
            .try_fold(needs::Bytes::default(), |acc, s| Some(acc.union(&s?)))
            .map(|s| s.table());
        Ok(Recognizers { set, all, needed })
    }

    /// Every finding in `text`, overlaps resolved (the more confident, then the longer,
    /// wins), in order.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        if !self.may_match(text) {
            return Vec::new();
        }
        self.scan_all(text)
    }

    /// Whether `text` holds one of the bytes some recognizer needs; when not, nothing in
    /// it can be found. One read of the text, stopping at the first such byte.
    pub fn may_match(&self, text: &str) -> bool {
        self.needed
            .as_ref()
            .is_none_or(|needed| needs::holds_any(text.as_bytes(), needed))
    }

    /// [`Recognizers::scan`] without the test of the needed bytes.
    fn scan_all(&self, text: &str) -> Vec<Finding> {
        if text.len() > MAX_SCAN {
            return self.scan_long(text);
        }
        let mut out = Vec::new();
        for i in self.set.matches(text).iter() {
            let r = &self.all[i];
            let mut consider = |start: usize, end: usize| {
                let value = &text[start..end];
                if value.is_empty() || r.check.is_some_and(|c| !c.holds(value)) {
                    return;
                }
                let near = near_context(text, start, &r.context);
                if r.context_required && !near {
                    return;
                }
                out.push(Finding {
                    kind: r.kind.clone(),
                    start,
                    end,
                    confidence: if near { r.boosted } else { r.confidence },
                });
            };
            if r.narrowed {
                for caps in r.regex.get().captures_iter(text) {
                    if let Some(m) = caps.name("value").or_else(|| caps.get(0)) {
                        consider(m.start(), m.end());
                    }
                }
            } else {
                for m in r.regex.get().find_iter(text) {
                    consider(m.start(), m.end());
                }
            }
        }
        resolve(out)
    }

    /// Texts over 1 MiB: overlapping windows, so a value across a boundary is still seen.
    fn scan_long(&self, text: &str) -> Vec<Finding> {
        let overlap = 4096;
        let mut out = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + MAX_SCAN).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            for mut f in self.scan(&text[start..end]) {
                f.start += start;
                f.end += start;
                out.push(f);
            }
            if end == text.len() {
                break;
            }
            let mut next = end - overlap;
            while !text.is_char_boundary(next) {
                next -= 1;
            }
            start = next;
        }
        resolve(out)
    }
}

fn near_context(text: &str, at: usize, words: &[String]) -> bool {
    if words.is_empty() {
        return false;
    }
    let before = &text.as_bytes()[at.saturating_sub(CONTEXT_WINDOW)..at];
    words.iter().any(|w| {
        let w = w.as_bytes();
        w.len() <= before.len() && before.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w))
    })
}

/// Keeps non-overlapping findings: higher confidence first, then longer, then earlier.
/// O(n log n): kept spans are disjoint, so only the one starting last before a candidate's
/// end can overlap it.
fn resolve(mut all: Vec<Finding>) -> Vec<Finding> {
    if all.len() <= 1 {
        return all;
    }
    all.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: std::collections::BTreeMap<usize, Finding> = std::collections::BTreeMap::new();
    for f in all {
        let overlaps = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        if !overlaps {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

mod needs;
#[cfg(test)]
mod tests;
