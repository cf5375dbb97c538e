//! Stage 1 of the detection cascade: patterns. Rules are data (`rules/stage1.yaml`, plus the
//! operator's own files): literal phrases matched with one Aho-Corasick automaton, and
//! regexes that run only in windows around one of their anchors. Texts are normalised first
//! (see [`crate::unicode`]); invisible Unicode is a finding of its own, text hidden in tag
//! characters is decoded and scanned, and base64, hex and URL-encoded blobs that decode to
//! text are scanned too.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use regex::bytes::Regex;
use serde::Deserialize;

use crate::lazy::Lazy;
use crate::unicode::{self, OddityKind};
use sentence::{negated, sentence};

/// How bad a finding is; thresholds and actions are set per severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The score a pattern finding carries (patterns are certain of the match, not of
    /// intent; the score orders them with model scores).
    pub fn score(self) -> f32 {
        match self {
            Severity::Low => 0.3,
            Severity::Medium => 0.55,
            Severity::High => 0.8,
            Severity::Critical => 0.97,
        }
    }
}

/// A stage-1 finding: which rule, how bad, and where in the original text.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub rule: String,
    pub category: String,
    pub severity: Severity,
    pub stage: u8,
    pub score: f32,
    pub start: usize,
    pub end: usize,
}

/// A rule as written in a rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub category: String,
    pub severity: Severity,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub phrases: Vec<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub anchors: Vec<String>,
    /// A match right after a negation ("do not include any API keys") does not count.
    #[serde(default)]
    pub unless_negated: bool,
    /// Regexes that must each also match in the sentence of the `regex` match: a rule by
    /// combination (private data, a place to put it, an order), in any order.
    #[serde(default)]
    pub all: Vec<String>,
    /// Regexes none of which may match in that sentence (`example.com` addresses).
    #[serde(default)]
    pub none: Vec<String>,
    /// The highest severity the rule's finding has in a tool or prompt definition, which
    /// addresses the model by design ("Note to LLM: list the indexes first"): a note to
    /// the model is suspect in a result, ordinary in a description.
    #[serde(default)]
    pub in_definitions: Option<Severity>,
    #[serde(default)]
    pub examples: Examples,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    #[serde(default, rename = "match")]
    pub matching: Vec<String>,
    #[serde(default)]
    pub clean: Vec<String>,
}

/// A rule file or rule that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// The rules Gatehouse ships.
pub const BUILTIN_RULES: &str = include_str!("../rules/stage1.yaml");

/// Parses a rule file.
pub fn parse_rules(yaml: &str) -> Result<Vec<RuleSpec>, RuleError> {
    yaml_serde::from_str(yaml).map_err(|e| RuleError(format!("rule file: {e}")))
}

struct Rule {
    id: String,
    category: String,
    severity: Severity,
    regex: Option<Lazy<Regex>>,
    unless_negated: bool,
    all: Vec<Lazy<Regex>>,
    none: Vec<Lazy<Regex>>,
    in_definitions: Option<Severity>,
}

impl Rule {
    /// Whether the match `s..e` of `text` counts: not negated (when the rule says so), and
    /// its sentence holds every `all` regex and no `none` one.
    fn accepts(&self, text: &[u8], s: usize, e: usize) -> bool {
        if self.unless_negated && negated(text, s) {
            return false;
        }
        if self.all.is_empty() && self.none.is_empty() {
            return true;
        }
        let (a, b) = sentence(text, s, e);
        let sent = &text[a..b];
        self.all.iter().all(|r| r.get().is_match(sent))
            && !self.none.iter().any(|r| r.get().is_match(sent))
    }
}

/// How rule regexes compile: over bytes, ASCII classes (texts are normalised first), at
/// most 4 MiB each.
fn build_rule(pattern: &str) -> Result<Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(4 << 20)
        .build()
}

/// What one automaton pattern stands for.
#[derive(Clone, Copy)]
enum Hit {
    Phrase(usize),
    Anchor(usize),
}

/// Bytes either side of an anchor a regex match may reach.
const WINDOW: usize = 400;
/// Shortest run worth decoding as base64 / hex, and fewest escapes for URL encoding.
const MIN_BASE64: usize = 24;
const MIN_HEX: usize = 32;
const MIN_ESCAPES: usize = 6;
/// How deep encodings inside encodings are followed.
const MAX_DEPTH: u8 = 2;

/// The compiled stage-1 engine.
pub struct Patterns {
    rules: Vec<Rule>,
    /// Leftmost-longest over the distinct literals (prefiltered, non-overlapping).
    automaton: AhoCorasick,
    /// What each distinct literal stands for: its own rules, and those of every literal
    /// it contains (`<|system|>` is also an occurrence of the anchor `system`).
    hits: Vec<Vec<Hit>>,
    /// Rules whose regex has no anchors: run over every text.
    unanchored: Vec<usize>,
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Patterns {
    /// The shipped rules, less `disabled`, plus `extra`.
    pub fn new(extra: &[RuleSpec], disabled: &[String]) -> Result<Patterns, RuleError> {
        let mut specs = parse_rules(BUILTIN_RULES)?;
        specs.extend(extra.iter().cloned());
        specs.retain(|s| !disabled.contains(&s.id));
        Patterns::from_specs(&specs)
    }

    pub fn from_specs(specs: &[RuleSpec]) -> Result<Patterns, RuleError> {
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(specs.len());
        let mut literals: Vec<String> = Vec::new();
        let mut hits = Vec::new();
        let mut unanchored = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if !seen.insert(s.id.clone()) {
                return Err(RuleError(format!("rule {}: the id is used twice", s.id)));
            }
            if s.phrases.is_empty() == s.regex.is_none() {
                return Err(RuleError(format!(
                    "rule {}: give either phrases or a regex",
                    s.id
                )));
            }
            // Checked now, compiled when a text first reaches the rule (`lazy.rs`).
            let compile = |r: &str| {
                Lazy::new(r, build_rule).map_err(|e| RuleError(format!("rule {}: {e}", s.id)))
            };
            let regex = s.regex.as_deref().map(compile).transpose()?;
            if regex.is_none() && !(s.all.is_empty() && s.none.is_empty()) {
                return Err(RuleError(format!(
                    "rule {}: `all` and `none` go with a regex",
                    s.id
                )));
            }
            let all = s.all.iter().map(|r| compile(r)).collect::<Result<_, _>>()?;
            let none = s
                .none
                .iter()
                .map(|r| compile(r))
                .collect::<Result<_, _>>()?;
            for p in &s.phrases {
                if p.trim().is_empty() {
                    return Err(RuleError(format!("rule {}: an empty phrase", s.id)));
                }
                literals.push(p.clone());
                hits.push(Hit::Phrase(i));
            }
            if regex.is_some() {
                if s.anchors.is_empty() {
                    unanchored.push(i);
                }
                for a in &s.anchors {
                    if a.is_empty() {
                        return Err(RuleError(format!("rule {}: an empty anchor", s.id)));
                    }
                    literals.push(a.clone());
                    hits.push(Hit::Anchor(i));
                }
            }
            rules.push(Rule {
                id: s.id.clone(),
                category: s.category.clone(),
                severity: s.severity,
                regex,
                unless_negated: s.unless_negated,
                all,
                none,
                in_definitions: s.in_definitions,
            });
        }
        // Distinct literals (ASCII case folded), each with every rule it stands for.
        let mut distinct: Vec<String> = Vec::new();
        let mut own: Vec<Vec<Hit>> = Vec::new();
        for (lit, hit) in literals.iter().zip(hits) {
            let key = lit.to_ascii_lowercase();
            match distinct.iter().position(|d| *d == key) {
                Some(i) => own[i].push(hit),
                None => {
                    distinct.push(key);
                    own.push(vec![hit]);
                }
            }
        }
        // Leftmost-longest reports one literal per position, so a literal inside a longer
        // one is reported through the longer one. (A literal that only overlaps another's
        // end, sharing a few characters, is not: rule regexes need word boundaries there.)
        let hits: Vec<Vec<Hit>> = distinct
            .iter()
            .map(|d| {
                distinct
                    .iter()
                    .zip(&own)
                    .filter(|(inner, _)| d.contains(inner.as_str()))
                    .flat_map(|(_, h)| h.iter().copied())
                    .collect()
            })
            .collect();
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&distinct)
            .map_err(|e| RuleError(format!("rule set: {e}")))?;
        Ok(Patterns {
            rules,
            automaton,
            hits,
            unanchored,
        })
    }

    /// Every finding in `text`, spans in `text`'s bytes, ordered by position.
    pub fn scan(&self, text: &str) -> Vec<Signal> {
        self.scan_with(text, None)
    }

    /// [`Patterns::scan`], and what [`decoded_blobs`] returns for the same text from the
    /// same pass over its encoded runs (a run is found and decoded once, not twice).
    pub fn scan_and_decode(&self, text: &str) -> (Vec<Signal>, Vec<Blob>) {
        if !text.is_ascii() {
            // Normalising changes such a text; the blobs are read from it as it is.
            return (self.scan(text), decoded_blobs(text));
        }
        let mut blobs = Vec::new();
        (self.scan_with(text, Some(&mut blobs)), blobs)
    }

    /// `scan`; with `blobs` (an ASCII text, which normalising leaves as it is), the decoded
    /// blobs too.
    fn scan_with(&self, text: &str, blobs: Option<&mut Vec<Blob>>) -> Vec<Signal> {
        let mut out = Vec::new();
        let n = unicode::normalize(text);
        for o in &n.oddities {
            let severity = match o.kind {
                OddityKind::TagCharacters | OddityKind::VariationSelectors => Severity::Critical,
                OddityKind::BidiControl | OddityKind::MixedScript => Severity::Medium,
                OddityKind::ZeroWidth => Severity::Low,
            };
            out.push(self.signal_raw(o.kind.rule(), "invisible_unicode", severity, o.start, o.end));
        }
        let mut found = Vec::new();
        self.scan_plain(n.text.as_bytes(), 0, &mut found);
        for (rule, s, e) in found {
            let (s, e) = n.original_span(s, e);
            out.push(self.signal(rule, s, e, None));
        }
        // What tag characters hide is scanned as text; its findings point at the tag run.
        for (hidden, s, e) in &n.hidden {
            let mut inner = Vec::new();
            self.scan_plain(hidden.as_bytes(), 0, &mut inner);
            for (rule, _, _) in inner {
                out.push(self.signal(rule, *s, *e, Some("unicode.tag_characters")));
            }
        }
        self.scan_encoded(
            n.text.as_bytes(),
            1,
            &mut |rule, s, e, via| {
                let (s, e) = n.original_span(s, e);
                out.push(self.signal(rule, s, e, Some(via)));
            },
            blobs,
        );
        out.sort_by_key(|s| (s.start, s.end));
        out.dedup_by(|a, b| a.rule == b.rule && a.start == b.start);
        out
    }

    /// The severity `signal` has in a tool or prompt definition: capped by its rule's
    /// `in_definitions`. A finding in decoded text is named after its encoding and keeps
    /// its severity: nothing benign hides a note to the model.
    pub fn in_definitions(&self, signal: &Signal) -> Severity {
        self.rules
            .iter()
            .find(|r| r.id == signal.rule)
            .and_then(|r| r.in_definitions)
            .map_or(signal.severity, |cap| signal.severity.min(cap))
    }

    /// How many rule regexes have been compiled so far (for tests).
    #[cfg(test)]
    fn compiled(&self) -> usize {
        self.rules
            .iter()
            .flat_map(|r| r.regex.iter().chain(&r.all).chain(&r.none))
            .filter(|r| r.is_compiled())
            .count()
    }

    /// The highest severity in `text`, if any rule fires.
    pub fn worst(&self, text: &str) -> Option<Severity> {
        self.scan(text).iter().map(|s| s.severity).max()
    }

    fn signal_raw(
        &self,
        rule: &str,
        category: &str,
        severity: Severity,
        start: usize,
        end: usize,
    ) -> Signal {
        Signal {
            rule: rule.to_owned(),
            category: category.to_owned(),
            severity,
            stage: 1,
            score: severity.score(),
            start,
            end,
        }
    }

    fn signal(&self, rule: usize, start: usize, end: usize, via: Option<&str>) -> Signal {
        let r = &self.rules[rule];
        let (id, severity) = match via {
            // Hiding an instruction is itself a signal: never less than high.
            Some(v) => (format!("{v}:{}", r.id), r.severity.max(Severity::High)),
            None => (r.id.clone(), r.severity),
        };
        Signal {
            rule: id,
            category: r.category.clone(),
            severity,
            stage: 1,
            score: severity.score(),
            start,
            end,
        }
    }

    /// Rule matches in plain (normalised) bytes, as (rule, start, end) offset by `base`.
    fn scan_plain(&self, text: &[u8], base: usize, out: &mut Vec<(usize, usize, usize)>) {
        // Windows per anchored rule: (start, end) merged as they come (hits are in order).
        let mut windows: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
        for m in self.automaton.find_iter(text) {
            for hit in &self.hits[m.pattern().as_usize()] {
                match *hit {
                    Hit::Phrase(r) => out.push((r, base + m.start(), base + m.end())),
                    Hit::Anchor(r) => {
                        let s = m.start().saturating_sub(WINDOW);
                        let e = (m.end() + WINDOW).min(text.len());
                        match windows.iter_mut().find(|(rule, _)| *rule == r) {
                            Some((_, ws)) => match ws.last_mut() {
                                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                                _ => ws.push((s, e)),
                            },
                            None => windows.push((r, vec![(s, e)])),
                        }
                    }
                }
            }
        }
        for &r in &self.unanchored {
            windows.push((r, vec![(0, text.len())]));
        }
        for (r, ws) in windows {
            let Some(re) = &self.rules[r].regex else {
                continue;
            };
            let re = re.get();
            let rule = &self.rules[r];
            for (s, e) in ws {
                let m = re
                    .find_iter(&text[s..e])
                    .find(|m| rule.accepts(text, s + m.start(), s + m.end()));
                if let Some(m) = m {
                    out.push((r, base + s + m.start(), base + s + m.end()));
                }
            }
        }
    }

    /// Blobs that decode to text, scanned as text. `report(rule, start, end, via)`.
    /// Blobs that decode to text, scanned as text. `report(rule, start, end, via)`. With
    /// `blobs`, every base64 or hex run that decodes to text is also pushed there, as
    /// [`decoded_blobs`] would return it.
    fn scan_encoded(
        &self,
        text: &[u8],
        depth: u8,
        report: &mut dyn FnMut(usize, usize, usize, &'static str),
        mut blobs: Option<&mut Vec<Blob>>,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        for r in b64_runs(text) {
            let run = &text[r.start..r.stop];
            let hex = r.hex && run.len() >= MIN_HEX;
            // What the patterns read; the classifier reads every mixed-case run.
            let read = hex || (r.upper && r.lower && (r.digit || run.len() >= 40));
            let decoded = if hex {
                decode_hex(run).map(|d| (d, "encoded.hex"))
            } else if r.upper && r.lower && (read || blobs.is_some()) {
                decode_b64(run).map(|d| (d, "encoded.base64"))
            } else {
                None
            };
            if let Some((d, via)) = decoded {
                if let Some(b) = blobs.as_deref_mut()
                    && mostly_text(&d)
                    && let Ok(t) = std::str::from_utf8(&d)
                {
                    b.push((r.start, r.end, t.to_owned()));
                }
                if read {
                    self.report_decoded(&d, r.start, r.end, via, depth, report);
                }
            }
        }
        // Tokens with many %XX escapes, decoded whole.
        let mut next = 0;
        for i in memchr::memchr_iter(b'%', text) {
            if i < next || i + 2 >= text.len() {
                continue;
            }
            // Back to the token's start, never before the last token's end (so a text of
            // many tokens costs one pass, not one per token).
            let start = text[next..i]
                .iter()
                .rposition(|c| c.is_ascii_whitespace() || matches!(*c, b'(' | b')' | b'"'))
                .map_or(next, |p| next + p + 1);
            let end = text[i..]
                .iter()
                .position(|c| c.is_ascii_whitespace() || *c == b')' || *c == b'"')
                .map_or(text.len(), |p| i + p);
            let token = &text[start..end];
            let escapes = token
                .windows(3)
                .filter(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
                .count();
            if escapes >= MIN_ESCAPES
                && let Some(d) = decode_percent(token)
            {
                self.report_decoded(&d, start, end, "encoded.url", depth, report);
            }
            next = end;
        }
    }

    fn report_decoded(
        &self,
        decoded: &[u8],
        start: usize,
        end: usize,
        via: &'static str,
        depth: u8,
        report: &mut dyn FnMut(usize, usize, usize, &'static str),
    ) {
        if !mostly_text(decoded) {
            return;
        }
        let Ok(s) = std::str::from_utf8(decoded) else {
            return;
        };
        let n = unicode::normalize(s);
        let mut inner = Vec::new();
        self.scan_plain(n.text.as_bytes(), 0, &mut inner);
        for (rule, _, _) in inner {
            report(rule, start, end, via);
        }
        self.scan_encoded(
            n.text.as_bytes(),
            depth + 1,
            &mut |rule, _, _, _| report(rule, start, end, via),
            None,
        );
    }

    /// Runs every rule's examples: `match` must be found by that rule, `clean` must not.
    /// Returns the failures, for `gatehouse check` and the rule tests.
    pub fn self_test(&self, specs: &[RuleSpec]) -> Vec<String> {
        let mut fails = Vec::new();
        for s in specs {
            for m in &s.examples.matching {
                if !self.scan(m).iter().any(|x| x.rule == s.id) {
                    fails.push(format!("rule {}: misses its example {m:?}", s.id));
                }
            }
            for c in &s.examples.clean {
                if self.scan(c).iter().any(|x| x.rule == s.id) {
                    fails.push(format!("rule {}: fires on its clean example {c:?}", s.id));
                }
            }
        }
        fails
    }
}

/// Character classes of a byte, as bits of [`CLASSES`].
const BASE64: u8 = 1;
const HEX: u8 = 2;
const UPPER: u8 = 4;
const LOWER: u8 = 8;
const DIGIT: u8 = 16;

/// The classes of every byte: base64 (either alphabet), hex digit, upper, lower, digit.
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        // Either base64 alphabet, standard or URL-safe.
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_' {
            c |= BASE64;
        }
        if b.is_ascii_hexdigit() {
            c |= HEX;
        }
        if b.is_ascii_uppercase() {
            c |= UPPER;
        }
        if b.is_ascii_lowercase() {
            c |= LOWER;
        }
        if b.is_ascii_digit() {
            c |= DIGIT;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// A run of base64 (or hex) characters at least `MIN_BASE64` long: `start..stop`, then up
/// to two `=` of padding to `end`, and the classes of characters in it.
struct B64Run {
    start: usize,
    stop: usize,
    end: usize,
    hex: bool,
    upper: bool,
    lower: bool,
    digit: bool,
}

/// The base64/hex runs of `text` at least `MIN_BASE64` long, in order. Such a run must
/// cover the byte at `i + MIN_BASE64 - 1`, so only that byte is probed: ordinary words
/// cost a few reads per `MIN_BASE64` bytes, and a run is read once.
fn b64_runs(text: &[u8]) -> impl Iterator<Item = B64Run> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + MIN_BASE64 <= text.len() {
            let probe = i + MIN_BASE64 - 1;
            if !is_b64(text[probe]) {
                i = probe + 1;
                continue;
            }
            let mut start = probe;
            while start > i && is_b64(text[start - 1]) {
                start -= 1;
            }
            // Every class seen (or) and the classes of every character (and), one table
            // read per byte.
            let (mut any, mut all, mut stop) = (0u8, HEX, start);
            while let Some(&c) = text.get(stop) {
                let class = CLASSES[usize::from(c)];
                if class & BASE64 == 0 {
                    break;
                }
                any |= class;
                all &= class;
                stop += 1;
            }
            let mut r = B64Run {
                start,
                stop,
                end: stop,
                hex: all & HEX != 0,
                upper: any & UPPER != 0,
                lower: any & LOWER != 0,
                digit: any & DIGIT != 0,
            };
            while r.end < text.len() && text[r.end] == b'=' && r.end - r.stop < 2 {
                r.end += 1;
            }
            i = r.end;
            if r.stop - r.start >= MIN_BASE64 {
                return Some(r);
            }
        }
        None
    })
}

/// A base64 or hex run that decodes to text: (start, end, decoded).
pub type Blob = (usize, usize, String);

/// Base64 and hex runs of `text` that decode to text: (start, end, decoded), for the
/// classifier to read what the patterns read through `scan_encoded`.
pub fn decoded_blobs(text: &str) -> Vec<Blob> {
    let mut out = Vec::new();
    for r in b64_runs(text.as_bytes()) {
        let run = &text.as_bytes()[r.start..r.stop];
        let decoded = if r.hex && run.len() >= MIN_HEX {
            decode_hex(run)
        } else if r.upper && r.lower {
            decode_b64(run)
        } else {
            None
        };
        if let Some(d) = decoded.filter(|d| mostly_text(d))
            && let Ok(t) = String::from_utf8(d)
        {
            out.push((r.start, r.end, t));
        }
    }
    out
}

fn is_b64(b: u8) -> bool {
    CLASSES[usize::from(b)] & BASE64 != 0
}

/// Lenient decoders: padding optional, trailing bits ignored (a blob cut out of text).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);
const B64_URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn decode_b64(run: &[u8]) -> Option<Vec<u8>> {
    // A length of 1 mod 4 cannot be base64: drop the stray character.
    let run = &run[..run.len() - usize::from(run.len() % 4 == 1)];
    let url = run.iter().any(|&b| b == b'-' || b == b'_');
    if url {
        B64_URL.decode(run)
    } else {
        B64.decode(run)
    }
    .ok()
}

fn decode_hex(run: &[u8]) -> Option<Vec<u8>> {
    let run = &run[..run.len() - run.len() % 2];
    let v = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    run.chunks(2)
        .map(|p| Some(v(p[0])? << 4 | v(p[1])?))
        .collect()
}

fn decode_percent(token: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(token.len());
    let mut i = 0;
    while i < token.len() {
        if token[i] == b'%' && i + 2 < token.len() {
            let h = std::str::from_utf8(&token[i + 1..i + 3]).ok()?;
            if let Ok(b) = u8::from_str_radix(h, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if token[i] == b'+' { b' ' } else { token[i] });
        i += 1;
    }
    Some(out)
}

/// Decoded bytes that read as text (not a compressed or binary blob).
fn mostly_text(d: &[u8]) -> bool {
    if d.len() < 8 {
        return false;
    }
    let printable = d
        .iter()
        .filter(|&&b| b.is_ascii_graphic() || b == b' ' || b == b'\n' || b == b'\t' || b >= 0x80)
        .count();
    printable * 100 >= d.len() * 90
}

mod sentence;
#[cfg(test)]
mod tests;
