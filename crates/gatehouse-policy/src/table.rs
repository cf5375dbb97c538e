//! Policy test tables: principals, targets and the decisions expected for them, in YAML.
//! `gatehouse policy test FILE.yaml` runs one; CI runs the seed scenarios' tables.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::PolicyError;
use crate::classify::{Controls, authorize};
use crate::engine::{Engine, PolicySource, PolicySpec};
use crate::model::{Action, Classification, Hints, Situation, Subject, Target, Tenancy, Verb};
use crate::roles::RoleSpec;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Table {
    /// Role grants in the short form (as in config `authorization.roles`).
    pub roles: BTreeMap<String, RoleSpec>,
    /// `.cedar` files, relative to the table.
    pub policies: Vec<String>,
    /// Cedar policies written inline.
    pub cedar: Option<String>,
    /// Controls per classification level (defaults where absent).
    pub controls: BTreeMap<Classification, Controls>,
    /// "Now", seconds since the epoch. Default 1,800,000,000.
    pub now: Option<u64>,
    pub principals: BTreeMap<String, TablePrincipal>,
    /// Servers' owners and classification.
    pub servers: BTreeMap<String, TableServer>,
    /// Targets by reference: `server.tool`, `server.prompt` or `server.URI`.
    pub targets: BTreeMap<String, TableTarget>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TablePrincipal {
    pub service: bool,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    /// Seconds since the principal authenticated.
    pub auth_age: Option<u64>,
    pub attributes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TableServer {
    pub tenant: Option<String>,
    pub shared: bool,
    pub classification: Option<Classification>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    #[default]
    Tool,
    Prompt,
    Resource,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TableTarget {
    pub kind: TargetKind,
    /// MCP annotations as the upstream lists them.
    pub annotations: Option<Value>,
    /// Verb override (as config would set it).
    pub verb: Option<Verb>,
    pub classification: Option<Classification>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Allow,
    Deny,
    StepUp,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub principal: String,
    pub target: String,
    /// Default: the target kind's main action (call_tool, get_prompt, read_resource).
    pub action: Option<Action>,
    #[serde(default)]
    pub args: Map<String, Value>,
    /// Decide for a list instead of a call.
    #[serde(default)]
    pub listing: bool,
    pub expect: Expect,
    /// A policy id that must be among those that decided.
    pub by: Option<String>,
    pub note: Option<String>,
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub index: usize,
    pub case: Case,
    pub got: Expect,
    pub policies: Vec<String>,
    pub passed: bool,
}

impl Table {
    pub fn parse(yaml: &str) -> Result<Table, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    /// The policy spec the table describes; `read` loads a `.cedar` file by its path.
    pub fn spec(
        &self,
        read: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<PolicySpec, String> {
        let mut files = Vec::new();
        for p in &self.policies {
            files.push(PolicySource {
                name: p.clone(),
                text: read(p)?,
            });
        }
        if let Some(text) = &self.cedar {
            files.push(PolicySource {
                name: "inline".into(),
                text: text.clone(),
            });
        }
        Ok(PolicySpec {
            roles: self.roles.clone(),
            files,
        })
    }

    fn now(&self) -> u64 {
        self.now.unwrap_or(1_800_000_000)
    }

    /// The subject a case's principal name stands for.
    pub fn subject(&self, name: &str) -> Result<Subject, String> {
        let p = self
            .principals
            .get(name)
            .ok_or_else(|| format!("unknown principal `{name}`"))?;
        Ok(Subject {
            id: name.to_owned(),
            service: p.service,
            tenant: p.tenant.clone(),
            roles: p.roles.clone(),
            groups: p.groups.clone(),
            scopes: Vec::new(),
            acr: p.acr.clone(),
            amr: p.amr.clone(),
            authenticated_at: p.auth_age.map(|a| self.now().saturating_sub(a)),
            method: if p.service { "api_key" } else { "jwt" }.into(),
            attributes: p.attributes.clone(),
        })
    }

    /// The target a reference stands for.
    pub fn target(&self, reference: &str) -> Result<Target, String> {
        let t = self.targets.get(reference).cloned().unwrap_or_default();
        let (server, name) = reference
            .split_once('.')
            .ok_or_else(|| format!("`{reference}` is not server.name"))?;
        let srv = self.servers.get(server).cloned().unwrap_or_default();
        let tenancy = Tenancy {
            tenant: srv.tenant.clone(),
            shared: srv.shared,
        };
        let classification = t
            .classification
            .or(srv.classification)
            .unwrap_or(Classification::Internal);
        Ok(match t.kind {
            TargetKind::Tool => Target::Tool {
                server: server.to_owned(),
                original: name.to_owned(),
                exposed: format!("{server}__{name}"),
                classification,
                verb: t
                    .verb
                    .unwrap_or_else(|| Hints::verb(t.annotations.as_ref())),
                hints: Hints::from_annotations(t.annotations.as_ref()),
                tenancy,
            },
            TargetKind::Prompt => Target::Prompt {
                server: server.to_owned(),
                original: name.to_owned(),
                exposed: format!("{server}__{name}"),
                classification,
                tenancy,
            },
            TargetKind::Resource => Target::Resource {
                server: server.to_owned(),
                uri: name.to_owned(),
                classification,
                tenancy,
            },
        })
    }

    /// Runs every case against `engine`, with the table's classification controls.
    pub fn run(&self, engine: &Engine) -> Result<Vec<CaseResult>, String> {
        self.run_with(engine, &Controls::table(&self.controls))
    }

    /// Runs every case against `engine` with the given controls (a live config's).
    pub fn run_with(
        &self,
        engine: &Engine,
        controls: &BTreeMap<Classification, Controls>,
    ) -> Result<Vec<CaseResult>, String> {
        let mut out = Vec::new();
        for (index, case) in self.cases.iter().enumerate() {
            let subject = self.subject(&case.principal)?;
            let target = self.target(&case.target)?;
            let action = case.action.unwrap_or(match target {
                Target::Tool { .. } => Action::CallTool,
                Target::Prompt { .. } => Action::GetPrompt,
                Target::Resource { .. } => Action::ReadResource,
            });
            let prepared = engine.prepare(&subject).map_err(|e| e.to_string())?;
            let sit = Situation {
                listing: case.listing,
                now: self.now(),
                arguments: Some(&case.args),
                client: None,
                source_ip: None,
            };
            let outcome = authorize(engine, &prepared, &subject, controls, action, &target, &sit);
            let got = match outcome.label() {
                "allow" => Expect::Allow,
                "step_up" => Expect::StepUp,
                _ => Expect::Deny,
            };
            let policies = outcome.policies().to_vec();
            let by_ok = case
                .by
                .as_ref()
                .is_none_or(|id| policies.iter().any(|p| p == id));
            out.push(CaseResult {
                index,
                passed: got == case.expect && by_ok,
                case: case.clone(),
                got,
                policies,
            });
        }
        Ok(out)
    }
}

/// Builds the engine a table describes.
pub fn engine_for(
    table: &Table,
    read: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Engine, String> {
    let spec = table.spec(read)?;
    Engine::build(&spec).map_err(|e: PolicyError| e.to_string())
}
