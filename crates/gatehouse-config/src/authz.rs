//! The `authorization` section and each upstream's data policy (classification, tenant,
//! verb overrides), validated into the policy engine and what the pipeline looks up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gatehouse_policy::{
    Classification, Controls, Engine, Hints, PolicySource, PolicySpec, RoleSpec, Target, Tenancy,
    Verb,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    /// Role grants in the short form: `analyst: [db.read_database, files.search_files]`,
    /// `engineer: [analyst, code.execute_code]` (entries without a dot are inherited
    /// roles), or `{tools, prompts, resources, inherits, verbs, when}`.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSpec>,
    /// Cedar policy files (relative to the config file), validated against the schema
    /// `gatehouse policy schema` prints.
    #[serde(default)]
    pub policies: Vec<String>,
    /// What a client is told about a call that policy refuses: `forbidden` (default; an
    /// error with code -32003) or `not_found` (the answer an unknown name gets). The audit
    /// records the refusal and its policies either way.
    pub denied_as: Option<RawDeniedAs>,
    /// Controls per classification level (`public`, `internal`, `confidential`,
    /// `restricted`): `step_up`, `max_result_bytes`, `truncate`, `redaction`, `enhanced_audit`.
    /// A level not listed keeps its defaults.
    #[serde(default)]
    pub classification: BTreeMap<Classification, Controls>,
    /// Roles of the unauthenticated caller in development mode (the quickstart).
    #[serde(default)]
    pub anonymous_roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawDeniedAs {
    Forbidden,
    NotFound,
}

/// Per-tool overrides in an upstream's config, by the tool's name at the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawToolPolicy {
    /// The name clients see instead of the upstream's (namespaced like any other). Policies,
    /// pins and the audit keep the upstream's name (`server.tool`).
    pub name: Option<String>,
    /// The title clients see instead of the upstream's.
    pub title: Option<String>,
    /// The description clients see instead of the upstream's: what is pinned and scanned.
    pub description: Option<String>,
    /// Annotations set over the upstream's (`title`, `readOnlyHint`, `destructiveHint`,
    /// `idempotentHint`, `openWorldHint`); they decide the verb class like the upstream's.
    #[serde(default)]
    pub annotations: BTreeMap<String, Value>,
    /// Parameters hidden from clients and sent with these values on every call, e.g.
    /// `{database: analytics}`. A caller that sets one is refused.
    #[serde(default)]
    pub fixed: BTreeMap<String, Value>,
    /// The verb class, instead of the one the tool's annotations imply.
    pub verb: Option<Verb>,
    pub classification: Option<Classification>,
    /// Whether calls wait for a person: `true`, `false` (exempt from the default rule;
    /// a policy's `@approval` still applies) or `{approvers, count, timeout_secs}`.
    pub approval: Option<RawToolApproval>,
    /// The redaction profile for this tool's results, instead of its classification's
    /// (`none` turns DLP off for it).
    pub redaction: Option<String>,
    /// Roles (with what inherits them) that see this tool's results without its own
    /// `redaction` profile: an analyst sees masked e-mail addresses, an engineer the values.
    /// The classification's profile still applies to them.
    #[serde(default)]
    pub unmasked_roles: Vec<String>,
    /// Per argument: what it holds (the injection detector) and limits on its value.
    /// Arguments not listed are typed from their names (`sql`, `path`, `url`, `command`…).
    #[serde(default)]
    pub arguments: BTreeMap<String, RawArgRule>,
}

/// Checks on one argument.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgRule {
    /// `sql_query`, `sql_value`, `shell`, `path`, `url` or `text` (no detector).
    pub kind: Option<gatehouse_detect::ArgKind>,
    /// SQL queries: only reads (default: when the tool's verb class is `read`).
    pub read_only: Option<bool>,
    /// Paths: absolute paths must be under one of these.
    #[serde(default)]
    pub roots: Vec<String>,
    /// The value must be one of these.
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Strings: at most this many characters; arrays: at most this many items.
    pub max_length: Option<usize>,
    /// Numbers: bounds, inclusive.
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Strings: a regex the whole value must match.
    pub pattern: Option<String>,
    /// Objects: the only keys allowed.
    pub keys: Option<Vec<String>>,
    /// Further limits for callers holding a role (each role the caller holds adds its
    /// own: all must pass), e.g. `{contractor: {max: 100}}`.
    #[serde(default)]
    pub roles: BTreeMap<String, RawArgLimits>,
}

/// Limits on one argument for one role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgLimits {
    pub one_of: Option<Vec<serde_json::Value>>,
    pub max_length: Option<usize>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub pattern: Option<String>,
    pub keys: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawToolApproval {
    Required(bool),
    Rule(RawApprovalRule),
}

/// Who approves one tool's calls, how many of them, and how long they have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovalRule {
    /// Roles any of which an approver must hold (default: `approvals.approvers`).
    pub approvers: Option<Vec<String>>,
    /// Distinct approvers needed (N of M; default `approvals.count`).
    pub count: Option<u32>,
    /// Seconds a request waits for its decision (default `approvals.timeout_secs`).
    pub timeout_secs: Option<u64>,
}

/// The validated `authorization` section.
pub struct Authorization {
    pub engine: Arc<Engine>,
    /// Controls for every level (configured or default).
    pub controls: BTreeMap<Classification, Controls>,
    pub denied_as: RawDeniedAs,
    pub anonymous_roles: Vec<String>,
    /// The Cedar files read, so a change to one reloads the config.
    pub files: Vec<std::path::PathBuf>,
    /// The section's source: two configs with the same source have the same policy.
    source: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("policies", &self.engine.len())
            .field("denied_as", &self.denied_as)
            .finish()
    }
}

impl PartialEq for Authorization {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Authorization {
    pub fn controls(&self, level: Classification) -> &Controls {
        // The table holds every level.
        static NONE: Controls = Controls {
            step_up: None,
            max_result_bytes: None,
            truncate: false,
            audit_bodies: gatehouse_policy::AuditBodies::Digest,
            redaction: None,
            enhanced_audit: false,
        };
        self.controls.get(&level).unwrap_or(&NONE)
    }
}

impl Authorization {
    /// What changed from `old` to `self`, by policy id: `+added -removed ~changed`.
    pub fn diff(&self, old: Option<&Authorization>) -> String {
        let mut out = Vec::new();
        for (id, _) in self.engine.policy_ids() {
            match old.and_then(|o| o.engine.policy(id)) {
                None => out.push(format!("+{id}")),
                Some((_, text)) if Some(text) != self.engine.policy(id).map(|p| p.1) => {
                    out.push(format!("~{id}"))
                }
                Some(_) => {}
            }
        }
        if let Some(o) = old {
            for (id, _) in o.engine.policy_ids() {
                if self.engine.policy(id).is_none() {
                    out.push(format!("-{id}"));
                }
            }
        }
        out.join(" ")
    }
}

/// Reads the policy files and builds the engine; any error names the field.
pub(crate) fn validate(
    raw: RawAuthorization,
    base: &Path,
    dev_mode: bool,
) -> Result<Authorization, ConfigError> {
    if !raw.anonymous_roles.is_empty() && !dev_mode {
        return Err(ConfigError::at(
            "authorization.anonymous_roles",
            "only development mode has an anonymous caller",
        ));
    }
    let mut files = Vec::new();
    for (i, p) in raw.policies.iter().enumerate() {
        let text = std::fs::read_to_string(base.join(p)).map_err(|e| {
            ConfigError::at(format!("authorization.policies[{i}]"), format!("{p}: {e}"))
        })?;
        files.push(PolicySource {
            name: p.clone(),
            text,
        });
    }
    let spec = PolicySpec {
        roles: raw.roles.clone(),
        files,
    };
    let engine =
        Engine::build(&spec).map_err(|e| ConfigError::at("authorization", e.to_string()))?;
    let source = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}",
        raw.roles,
        spec.files
            .iter()
            .map(|f| (&f.name, &f.text))
            .collect::<Vec<_>>(),
        raw.classification,
        raw.denied_as,
        raw.anonymous_roles
    );
    Ok(Authorization {
        engine: Arc::new(engine),
        controls: Controls::table(&raw.classification),
        denied_as: raw.denied_as.unwrap_or(RawDeniedAs::Forbidden),
        anonymous_roles: raw.anonymous_roles,
        files: raw.policies.iter().map(|p| base.join(p)).collect(),
        source,
    })
}

/// What authorization knows about one upstream's data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataPolicy {
    /// Default `internal`.
    pub classification: Option<Classification>,
    pub tenancy: Tenancy,
    pub tools: BTreeMap<String, RawToolPolicy>,
    /// URI prefix → classification; the longest matching prefix wins.
    pub resources: BTreeMap<String, Classification>,
}

impl DataPolicy {
    fn level(&self) -> Classification {
        self.classification.unwrap_or(Classification::Internal)
    }

    /// A tool as policies see it.
    pub fn tool(&self, server: &str, original: &str, exposed: &str, def: &Value) -> Target {
        let annotations = def.get("annotations");
        let o = self.tools.get(original);
        Target::Tool {
            server: server.to_owned(),
            original: original.to_owned(),
            exposed: exposed.to_owned(),
            classification: o.and_then(|o| o.classification).unwrap_or(self.level()),
            verb: o
                .and_then(|o| o.verb)
                .unwrap_or_else(|| Hints::verb(annotations)),
            hints: Hints::from_annotations(annotations),
            tenancy: self.tenancy.clone(),
        }
    }

    pub fn prompt(&self, server: &str, original: &str, exposed: &str) -> Target {
        Target::Prompt {
            server: server.to_owned(),
            original: original.to_owned(),
            exposed: exposed.to_owned(),
            classification: self.level(),
            tenancy: self.tenancy.clone(),
        }
    }

    pub fn resource(&self, server: &str, uri: &str) -> Target {
        let classification = self
            .resources
            .iter()
            .filter(|(prefix, _)| uri.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, c)| *c)
            .unwrap_or(self.level());
        Target::Resource {
            server: server.to_owned(),
            uri: uri.to_owned(),
            classification,
            tenancy: self.tenancy.clone(),
        }
    }
}
