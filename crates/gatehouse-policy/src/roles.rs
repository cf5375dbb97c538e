//! The short YAML form of role grants and how it compiles to Cedar: `analyst:
//! [db.read_database]`, inheritance (`engineer: [analyst, code.execute_code]`), verb limits
//! and argument conditions. Inheritance is resolved here, once, into each principal's
//! effective roles.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::model::Verb;

/// One role: either a list (entries with a dot are tool references `server.tool` or
/// `server.*`, entries without are inherited roles) or the full form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RoleSpec {
    List(Vec<String>),
    Full(RoleGrant),
}

/// The full form of a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RoleGrant {
    /// Roles whose grants this role also has.
    pub inherits: Vec<String>,
    /// Tools: `server.tool` (the tool's name at its upstream) or `server.*`.
    pub tools: Vec<String>,
    /// Prompts (get and complete): `server.prompt` or `server.*`.
    pub prompts: Vec<String>,
    /// Resources (read, subscribe, complete): `server.URI` or `server.*`.
    pub resources: Vec<String>,
    /// Only tools of these verb classes (e.g. `[read]` for read-only access).
    pub verbs: Option<Vec<Verb>>,
    /// Argument conditions, all of which must hold on a call: a list of allowed values, or
    /// `principal.ATTRIBUTE` (the argument must be one of the caller's attribute values).
    /// Lists are not filtered by them.
    pub when: BTreeMap<String, Condition>,
    /// The role's grants hold only with a person's approval of each call (the compiled
    /// policies carry `@approval("required")`). A caller also allowed by a grant without
    /// it needs none.
    pub approval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Condition {
    OneOf(Vec<String>),
    Attribute(String),
}

impl RoleSpec {
    /// The full form of either spelling.
    pub fn grant(&self) -> RoleGrant {
        match self {
            RoleSpec::Full(g) => g.clone(),
            RoleSpec::List(items) => {
                let mut g = RoleGrant::default();
                for i in items {
                    if i.contains('.') {
                        g.tools.push(i.clone());
                    } else {
                        g.inherits.push(i.clone());
                    }
                }
                g
            }
        }
    }
}

/// Role names and attribute names: short identifiers only, so compiled Cedar stays simple.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

/// A Cedar string literal.
pub(crate) fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Splits `server.rest`; `rest` may itself contain dots (URIs, dotted tool names).
fn split_ref(r: &str) -> Option<(&str, &str)> {
    let (server, rest) = r.split_once('.')?;
    let ok = !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    (ok && !rest.is_empty()).then_some((server, rest))
}

/// One compiled grant. Its argument conditions are not in the Cedar text the engine
/// evaluates (so the grant's decisions can be memoized); Gatehouse checks them on each call
/// with the same meaning `display` states in Cedar.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub id: String,
    /// Evaluated by Cedar: the grant without its argument conditions.
    pub cedar: String,
    /// The grant's full meaning in Cedar, for explanations and export.
    pub display: String,
    pub when: BTreeMap<String, Condition>,
}

/// Whether a grant's argument conditions hold for a call (they always hold for a listing).
/// Arguments read as the Cedar form reads them: strings as they are, other values as their
/// JSON text; a principal attribute is the set of its values.
pub(crate) fn conditions_hold(
    when: &BTreeMap<String, Condition>,
    args: Option<&serde_json::Map<String, serde_json::Value>>,
    attributes: &BTreeMap<String, serde_json::Value>,
) -> bool {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    when.iter().all(|(arg, cond)| {
        let Some(value) = args.and_then(|a| a.get(arg)).map(text) else {
            return false;
        };
        match cond {
            Condition::OneOf(values) => values.contains(&value),
            Condition::Attribute(a) => match attributes.get(a.trim_start_matches("principal.")) {
                Some(Value::Array(items)) => items.iter().any(|i| text(i) == value),
                Some(other) => text(other) == value,
                None => false,
            },
        }
    })
}

/// The role graph: which roles each role inherits.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    grants: BTreeMap<String, RoleGrant>,
}

impl Roles {
    /// Checks names, references and that inheritance has no cycle.
    pub fn new(specs: &BTreeMap<String, RoleSpec>) -> Result<Roles, PolicyError> {
        let grants: BTreeMap<String, RoleGrant> =
            specs.iter().map(|(k, v)| (k.clone(), v.grant())).collect();
        for (name, g) in &grants {
            let bad = |why: String| PolicyError::Role {
                role: name.clone(),
                reason: why,
            };
            if !is_name(name) {
                return Err(bad(
                    "role names are letters, digits, `_`, `-` and `:`".into()
                ));
            }
            for parent in &g.inherits {
                if !grants.contains_key(parent) {
                    return Err(bad(format!(
                        "inherits `{parent}`, which is not a defined role"
                    )));
                }
            }
            for r in g.tools.iter().chain(&g.prompts).chain(&g.resources) {
                if split_ref(r).is_none() {
                    return Err(bad(format!(
                        "`{r}` is not a reference of the form server.name or server.*"
                    )));
                }
            }
            for (arg, cond) in &g.when {
                if !is_name(arg) {
                    return Err(bad(format!("`{arg}` is not an argument name")));
                }
                match cond {
                    Condition::OneOf(v) if v.is_empty() => {
                        return Err(bad(format!("condition on `{arg}` allows no value")));
                    }
                    Condition::Attribute(a)
                        if !a.strip_prefix("principal.").is_some_and(is_name) =>
                    {
                        return Err(bad(format!(
                            "condition on `{arg}` must be a list of values or principal.ATTRIBUTE"
                        )));
                    }
                    _ => {}
                }
            }
        }
        let roles = Roles { grants };
        for name in roles.grants.keys() {
            roles.check_cycle(name, &mut Vec::new())?;
        }
        Ok(roles)
    }

    fn check_cycle<'a>(
        &'a self,
        name: &'a str,
        path: &mut Vec<&'a str>,
    ) -> Result<(), PolicyError> {
        if path.contains(&name) {
            path.push(name);
            return Err(PolicyError::Role {
                role: path[0].to_owned(),
                reason: format!("inheritance cycle: {}", path.join(" → ")),
            });
        }
        path.push(name);
        if let Some(g) = self.grants.get(name) {
            for p in &g.inherits {
                self.check_cycle(p, path)?;
            }
        }
        path.pop();
        Ok(())
    }

    /// The roles held directly plus every role they inherit.
    pub fn effective<'a>(&'a self, held: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<&str> = held.into_iter().collect();
        while let Some(r) = stack.pop() {
            if out.insert(r)
                && let Some(g) = self.grants.get(r)
            {
                stack.extend(g.inherits.iter().map(String::as_str));
            }
        }
        out
    }

    pub fn grants(&self) -> &BTreeMap<String, RoleGrant> {
        &self.grants
    }

    /// The Cedar policies the roles compile to.
    pub fn compile(&self) -> Vec<Compiled> {
        let mut out = Vec::new();
        for (role, g) in &self.grants {
            let principal = format!("principal in Gatehouse::Role::{}", lit(role));
            let args = conditions(&g.when);
            let groups: [(&str, &[String], &str, &str); 3] = [
                (
                    "tools",
                    &g.tools,
                    "action == Gatehouse::Action::\"call_tool\"",
                    "Tool",
                ),
                (
                    "prompts",
                    &g.prompts,
                    "action in [Gatehouse::Action::\"get_prompt\", Gatehouse::Action::\"complete\"]",
                    "Prompt",
                ),
                (
                    "resources",
                    &g.resources,
                    "action in [Gatehouse::Action::\"read_resource\", Gatehouse::Action::\"subscribe_resource\", Gatehouse::Action::\"complete\"]",
                    "Resource",
                ),
            ];
            for (kind, refs, action, entity) in groups {
                if refs.is_empty() {
                    continue;
                }
                // Cedar sets are homogeneous: whole servers and single entities apart.
                let mut servers = Vec::new();
                let mut items = Vec::new();
                for (server, rest) in refs.iter().filter_map(|r| split_ref(r)) {
                    if rest == "*" {
                        servers.push(format!("Gatehouse::Server::{}", lit(server)));
                    } else if entity == "Resource" {
                        items.push(format!("Gatehouse::Resource::{}", lit(rest)));
                    } else {
                        items.push(format!(
                            "Gatehouse::{entity}::{}",
                            lit(&format!("{server}.{rest}"))
                        ));
                    }
                }
                let scope: Vec<String> = [servers, items]
                    .into_iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("resource in [{}]", v.join(", ")))
                    .collect();
                let mut when = vec![if scope.len() == 1 {
                    scope.join("")
                } else {
                    format!("({})", scope.join(" || "))
                }];
                if kind == "tools"
                    && let Some(verbs) = &g.verbs
                {
                    let v: Vec<String> = verbs.iter().map(|v| lit(v.as_str())).collect();
                    when.push(format!("[{}].contains(resource.verb)", v.join(", ")));
                }
                let id = format!("role.{role}.{kind}");
                let approval = if g.approval {
                    "\n@approval(\"required\")"
                } else {
                    ""
                };
                let text = |when: &[String]| {
                    format!(
                        "@id({}){approval}\npermit (\n  {principal},\n  {action},\n  resource\n)\nwhen {{\n  {}\n}};\n",
                        lit(&id),
                        when.join(" &&\n  ")
                    )
                };
                let cedar = text(&when);
                if let Some(a) = &args {
                    when.push(format!("(context.listing || {a})"));
                }
                out.push(Compiled {
                    display: text(&when),
                    cedar,
                    when: g.when.clone(),
                    id,
                });
            }
        }
        out
    }
}

/// The argument conditions of a role as one Cedar expression, or `None` without any.
fn conditions(when: &BTreeMap<String, Condition>) -> Option<String> {
    if when.is_empty() {
        return None;
    }
    let parts: Vec<String> = when
        .iter()
        .map(|(arg, cond)| {
            let has = format!("context.arguments.hasTag({})", lit(arg));
            let get = format!("context.arguments.getTag({})", lit(arg));
            match cond {
                Condition::OneOf(values) => {
                    let v: Vec<String> = values.iter().map(|v| lit(v)).collect();
                    format!("({has} && [{}].contains({get}))", v.join(", "))
                }
                Condition::Attribute(a) => {
                    let attr = lit(a.trim_start_matches("principal."));
                    format!(
                        "({has} && principal.hasTag({attr}) && principal.getTag({attr}).contains({get}))"
                    )
                }
            }
        })
        .collect();
    Some(format!("({})", parts.join(" && ")))
}
