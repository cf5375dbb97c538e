//! The `detection` section: the prompt-injection rules, and per place (tool arguments,
//! what a model reads back, tool and prompt descriptions) and per classification level,
//! which severity blocks, redacts, asks for approval or is only recorded. And the `pinning`
//! section: whether a tool seen for the first time is trusted or waits for review.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse_detect::{Cascade, Classifier, Patterns, Severity};
use gatehouse_policy::Classification;
use schemars::JsonSchema;
use serde::Deserialize;

use super::ConfigError;

/// Lowest severity at which each action applies; the strongest applicable action wins
/// (block, then approve, then redact, then flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Refuse the call, withhold the result, or (descriptions) quarantine the tool.
    pub block: Option<Severity>,
    /// Ask a person (tool arguments only).
    pub approve: Option<Severity>,
    /// Replace the offending span (results and prompt messages).
    pub redact: Option<Severity>,
    /// Record in the audit and pass.
    pub flag: Option<Severity>,
}

/// What to do about a text's findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Response {
    Pass,
    Flag,
    Redact,
    Approve,
    Block,
}

impl Thresholds {
    /// The action for the worst severity found.
    pub fn response(&self, worst: Option<Severity>) -> Response {
        let Some(w) = worst else {
            return Response::Pass;
        };
        let at = |t: Option<Severity>| t.is_some_and(|t| w >= t);
        if at(self.block) {
            Response::Block
        } else if at(self.approve) {
            Response::Approve
        } else if at(self.redact) {
            Response::Redact
        } else if at(self.flag) {
            Response::Flag
        } else {
            Response::Pass
        }
    }

    /// `self` where set, else `base`.
    fn over(self, base: Thresholds) -> Thresholds {
        if self == Thresholds::default() {
            base
        } else {
            self
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLevelThresholds {
    pub arguments: Option<Thresholds>,
    pub results: Option<Thresholds>,
    pub descriptions: Option<Thresholds>,
}

/// First sight of a tool: trusted as it is, or hidden until an administrator approves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FirstSight {
    Approve,
    Review,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPinning {
    /// Pin tool and prompt definitions (default true).
    pub enabled: Option<bool>,
    /// What happens on first sight (default `approve`: trust on first use; a later change
    /// is quarantined either way).
    pub first_sight: Option<FirstSight>,
    /// Per upstream, overriding `first_sight`.
    #[serde(default)]
    pub servers: BTreeMap<String, FirstSight>,
}

/// Prompt-injection detection and tool pinning.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDetection {
    /// Default true.
    pub enabled: Option<bool>,
    /// Rule files of your own (same shape as the built-in `rules/stage1.yaml`).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Built-in rule ids to turn off.
    #[serde(default)]
    pub disabled_rules: Vec<String>,
    /// Tool arguments (default: critical blocks, anything else is recorded).
    pub arguments: Option<Thresholds>,
    /// Tool results, resource contents and prompt messages (default: critical withholds
    /// the result, high redacts the span, anything else is recorded; on restricted data
    /// high withholds).
    pub results: Option<Thresholds>,
    /// Tool and prompt descriptions and schemas at list time (default: high or critical
    /// quarantines the tool, anything else is recorded).
    pub descriptions: Option<Thresholds>,
    /// Per classification level, overriding the above.
    #[serde(default)]
    pub levels: BTreeMap<Classification, RawLevelThresholds>,
    /// Stage 2, the trained classifier (on by default, with the shipped model).
    pub classifier: Option<RawClassifier>,
    /// Stage 3, an LLM asked about what the classifier is unsure of (off unless set).
    pub arbiter: Option<RawArbiter>,
}

/// An OpenAI-compatible chat endpoint that judges doubtful texts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArbiter {
    /// Base URL, e.g. `http://127.0.0.1:11434/v1` (Ollama) or `https://api.openai.com/v1`.
    pub url: String,
    pub model: String,
    /// `env:NAME` or `file:PATH`; sent as a bearer token (and `api-key`, for Azure).
    pub api_key: Option<String>,
    /// Default 3000.
    pub timeout_ms: Option<u64>,
    /// Stage-2 scores from this up to the classifier's `high` are asked about (default 0.5).
    pub low: Option<f32>,
    /// Exposed tool names whose every argument and result text is asked about.
    #[serde(default)]
    pub high_risk_tools: Vec<String>,
    /// No verdict (down, slow, unreadable): `flag` (default: recorded, passes) or `block`
    /// (treated as critical: arguments refused, results withheld).
    pub fail: Option<RawArbiterFail>,
    /// Verdicts kept, by text digest (default 4096).
    pub cache: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawArbiterFail {
    Flag,
    Block,
}

/// The validated arbiter.
#[derive(Debug)]
pub struct ArbiterSettings {
    /// The OpenAI-compatible base URL, without a trailing slash.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: std::time::Duration,
    /// Verdicts kept, by text digest.
    pub cache: usize,
    pub low: f32,
    pub high_risk_tools: Vec<String>,
    pub fail_block: bool,
}

/// The stage-2 classifier: scores every sentence chunk of a text; a chunk at or above
/// `medium` is a medium finding, at or above `high` a high one.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClassifier {
    /// Default true.
    pub enabled: Option<bool>,
    /// A model file of your own (`scripts/train-classifier` writes one); default: the
    /// model shipped inside the gateway.
    pub model: Option<PathBuf>,
    /// Default 0.594.
    pub medium: Option<f32>,
    /// Default 0.984.
    pub high: Option<f32>,
}

/// The validated section.
pub struct Detection {
    /// Stages 1 and 2.
    pub cascade: Arc<Cascade>,
    /// Stage 3, when configured.
    pub arbiter: Option<Arc<ArbiterSettings>>,
    arguments: [Thresholds; 4],
    results: [Thresholds; 4],
    descriptions: [Thresholds; 4],
    source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pinning {
    pub first_sight: FirstSight,
    pub servers: BTreeMap<String, FirstSight>,
}

impl Pinning {
    pub fn first_sight(&self, upstream: &str) -> FirstSight {
        self.servers
            .get(upstream)
            .copied()
            .unwrap_or(self.first_sight)
    }
}

impl std::fmt::Debug for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detection")
            .field("cascade", &self.cascade)
            .finish()
    }
}

impl PartialEq for Detection {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

fn idx(level: Classification) -> usize {
    match level {
        Classification::Public => 0,
        Classification::Internal => 1,
        Classification::Confidential => 2,
        Classification::Restricted => 3,
    }
}

impl Detection {
    pub fn arguments(&self, level: Classification) -> Thresholds {
        self.arguments[idx(level)]
    }
    pub fn results(&self, level: Classification) -> Thresholds {
        self.results[idx(level)]
    }
    pub fn descriptions(&self, level: Classification) -> Thresholds {
        self.descriptions[idx(level)]
    }
}

pub(super) fn validate(
    raw: RawDetection,
    base: &Path,
) -> Result<Option<Arc<Detection>>, ConfigError> {
    let mut source = format!("{raw:?}");
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let mut extra = Vec::new();
    for (i, f) in raw.rules.iter().enumerate() {
        let at = format!("detection.rules[{i}]");
        let path = base.join(f);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::at(at.clone(), format!("{}: {e}", path.display())))?;
        // The files' contents count as the config: an edited rule file is a change.
        source.push_str(&text);
        extra.extend(
            gatehouse_detect::patterns::parse_rules(&text)
                .map_err(|e| ConfigError::at(at.clone(), e.to_string()))?,
        );
    }
    let patterns = Patterns::new(&extra, &raw.disabled_rules)
        .map_err(|e| ConfigError::at("detection.rules", e.to_string()))?;
    // An operator's rule that misses its own examples is a broken rule.
    let fails = patterns.self_test(&extra);
    if let Some(f) = fails.first() {
        return Err(ConfigError::at("detection.rules", f.clone()));
    }
    let known = gatehouse_detect::patterns::parse_rules(gatehouse_detect::patterns::BUILTIN_RULES)
        .map_err(|e| ConfigError::at("detection", e.to_string()))?;
    for id in &raw.disabled_rules {
        if !known.iter().any(|r| &r.id == id) {
            return Err(ConfigError::at(
                "detection.disabled_rules",
                format!("no built-in rule `{id}`"),
            ));
        }
    }
    let c = raw.classifier.clone().unwrap_or_default();
    let (medium, high) = (
        c.medium
            .unwrap_or(gatehouse_detect::classifier::DEFAULT_MEDIUM),
        c.high.unwrap_or(gatehouse_detect::classifier::DEFAULT_HIGH),
    );
    if !(0.0..=1.0).contains(&medium) || !(medium..=1.0).contains(&high) {
        return Err(ConfigError::at(
            "detection.classifier",
            "thresholds are probabilities with medium <= high",
        ));
    }
    let classifier = match (c.enabled, &c.model) {
        (Some(false), _) => None,
        (_, Some(path)) => Some(
            Classifier::load(&base.join(path))
                .map_err(|e| ConfigError::at("detection.classifier.model", e.to_string()))?,
        ),
        (_, None) => Some(
            Classifier::builtin()
                .map_err(|e| ConfigError::at("detection.classifier", e.to_string()))?,
        ),
    };
    let arbiter = match &raw.arbiter {
        None => None,
        Some(a) => {
            let at = "detection.arbiter";
            if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
                return Err(ConfigError::at(format!("{at}.url"), "an http(s) base URL"));
            }
            let api_key = match &a.api_key {
                None => None,
                Some(r) => Some(
                    gatehouse_auth::SecretRef::parse(r)
                        .and_then(|r| r.resolve(None))
                        .map_err(|e| ConfigError::at(format!("{at}.api_key"), e))?,
                ),
            };
            let low = a.low.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&low) {
                return Err(ConfigError::at(format!("{at}.low"), "a probability"));
            }
            let timeout =
                std::time::Duration::from_millis(a.timeout_ms.unwrap_or(3000).clamp(100, 60_000));
            Some(Arc::new(ArbiterSettings {
                url: a.url.trim_end_matches('/').to_owned(),
                model: a.model.clone(),
                api_key,
                timeout,
                cache: a.cache.unwrap_or(4096).max(1),
                low,
                high_risk_tools: a.high_risk_tools.clone(),
                fail_block: a.fail == Some(RawArbiterFail::Block),
            }))
        }
    };
    let arguments = raw.arguments.unwrap_or(Thresholds {
        block: Some(Severity::Critical),
        approve: None,
        redact: None,
        flag: Some(Severity::Low),
    });
    if arguments.redact.is_some() {
        return Err(ConfigError::at(
            "detection.arguments.redact",
            "arguments are not rewritten: block, approve or flag",
        ));
    }
    let results = raw.results.unwrap_or(Thresholds {
        block: Some(Severity::Critical),
        approve: None,
        redact: Some(Severity::High),
        flag: Some(Severity::Low),
    });
    let descriptions = raw.descriptions.unwrap_or(Thresholds {
        block: Some(Severity::High),
        approve: None,
        redact: None,
        flag: Some(Severity::Low),
    });
    for (place, t) in [("results", &results), ("descriptions", &descriptions)] {
        if t.approve.is_some() {
            return Err(ConfigError::at(
                format!("detection.{place}.approve"),
                "only tool arguments can wait for approval",
            ));
        }
    }
    if descriptions.redact.is_some() {
        return Err(ConfigError::at(
            "detection.descriptions.redact",
            "a description is never rewritten: block (quarantine) or flag",
        ));
    }
    let per = |default: Thresholds, pick: fn(&RawLevelThresholds) -> Option<Thresholds>| {
        let mut out = [default; 4];
        for l in Classification::ALL {
            if let Some(t) = raw.levels.get(&l).and_then(pick) {
                out[idx(l)] = t.over(default);
            }
        }
        out
    };
    let arguments = per(arguments, |l| l.arguments);
    let mut results_per = per(results, |l| l.results);
    // Restricted data: what would be redacted elsewhere is withheld, unless configured.
    if raw.results.is_none()
        && raw
            .levels
            .get(&Classification::Restricted)
            .and_then(|l| l.results)
            .is_none()
    {
        results_per[idx(Classification::Restricted)].block = Some(Severity::High);
    }
    let descriptions = per(descriptions, |l| l.descriptions);
    Ok(Some(Arc::new(Detection {
        cascade: Arc::new(Cascade {
            patterns,
            classifier,
            medium,
            high,
        }),
        arbiter,
        arguments,
        results: results_per,
        descriptions,
        source,
    })))
}

pub(super) fn validate_pinning(
    raw: Option<RawPinning>,
    upstreams: &[&str],
) -> Result<Option<Pinning>, ConfigError> {
    let p = raw.unwrap_or_default();
    if p.enabled == Some(false) {
        return Ok(None);
    }
    if let Some(name) = p.servers.keys().find(|n| !upstreams.contains(&n.as_str())) {
        return Err(ConfigError::at(
            format!("pinning.servers.{name}"),
            "no such upstream",
        ));
    }
    Ok(Some(Pinning {
        first_sight: p.first_sight.unwrap_or(FirstSight::Approve),
        servers: p.servers,
    }))
}
