//! Federation: the merged, namespaced view of every upstream's tools, prompts, resources and
//! resource templates, and the routing back from an exposed name or URI to its upstream.
//! Rebuilt whenever an upstream's lists change; published atomically.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::config::VirtualServer;

/// One upstream's lists as it last reported them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamLists {
    pub tools: Vec<Value>,
    pub prompts: Vec<Value>,
    pub resources: Vec<Value>,
    pub templates: Vec<Value>,
}

/// A tool or prompt as exposed: its public name, its owner and its name there.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub exposed: String,
    pub upstream: String,
    pub original: String,
    /// The definition with `name` replaced by `exposed`; every other field untouched.
    pub def: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceEntry {
    pub upstream: String,
    pub def: Value,
}

/// A name two upstreams both claimed; the later one is not exposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: &'static str,
    pub name: String,
    pub kept: String,
    pub refused: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Vec<Entry>,
    pub prompts: Vec<Entry>,
    pub resources: Vec<ResourceEntry>,
    pub templates: Vec<ResourceEntry>,
    tool_index: HashMap<String, usize>,
    prompt_index: HashMap<String, usize>,
    resource_index: HashMap<String, usize>,
}

/// How one upstream's names are exposed.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub upstream: &'a str,
    pub namespace: Option<&'a str>,
    pub lists: &'a UpstreamLists,
    /// Tools renamed in config: upstream name → the name clients see (before namespacing).
    pub renames: &'a BTreeMap<String, String>,
}

pub(crate) fn exposed_name(ns: Option<&str>, sep: &str, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}{sep}{name}"),
        None => name.to_owned(),
    }
}

impl Catalog {
    /// Merges the sources. A name already owned in `previous` keeps its owner, so a tool an
    /// upstream adds later can never take over an existing name.
    pub fn build(
        sources: &[Source<'_>],
        sep: &str,
        previous: &Catalog,
    ) -> (Catalog, Vec<Collision>) {
        let mut cat = Catalog::default();
        let mut collisions = Vec::new();
        for kind in ["tool", "prompt"] {
            let mut owners: BTreeMap<String, Entry> = BTreeMap::new();
            let (prev_index, prev_list) = if kind == "tool" {
                (&previous.tool_index, &previous.tools)
            } else {
                (&previous.prompt_index, &previous.prompts)
            };
            let mut candidates = Vec::new();
            for s in sources {
                let defs = if kind == "tool" {
                    &s.lists.tools
                } else {
                    &s.lists.prompts
                };
                for def in defs {
                    let Some(name) = def.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let shown = match kind {
                        "tool" => s.renames.get(name).map_or(name, String::as_str),
                        _ => name,
                    };
                    let exposed = exposed_name(s.namespace, sep, shown);
                    let mut def = def.clone();
                    if let Some(o) = def.as_object_mut() {
                        o.insert("name".into(), Value::String(exposed.clone()));
                    }
                    let incumbent = prev_index
                        .get(&exposed)
                        .is_some_and(|&i| prev_list[i].upstream == s.upstream);
                    candidates.push((
                        !incumbent,
                        Entry {
                            exposed,
                            upstream: s.upstream.to_owned(),
                            original: name.to_owned(),
                            def,
                        },
                    ));
                }
            }
            // Incumbents first (false sorts before true); stable, so config order otherwise.
            candidates.sort_by_key(|(newcomer, _)| *newcomer);
            for (_, e) in candidates {
                match owners.get(&e.exposed) {
                    Some(kept) => collisions.push(Collision {
                        kind,
                        name: e.exposed.clone(),
                        kept: kept.upstream.clone(),
                        refused: e.upstream.clone(),
                    }),
                    None => {
                        owners.insert(e.exposed.clone(), e);
                    }
                }
            }
            let list: Vec<Entry> = owners.into_values().collect();
            let index = list
                .iter()
                .enumerate()
                .map(|(i, e)| (e.exposed.clone(), i))
                .collect();
            if kind == "tool" {
                cat.tools = list;
                cat.tool_index = index;
            } else {
                cat.prompts = list;
                cat.prompt_index = index;
            }
        }
        for s in sources {
            for def in &s.lists.resources {
                let Some(uri) = def.get("uri").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(&i) = cat.resource_index.get(uri) {
                    collisions.push(Collision {
                        kind: "resource",
                        name: uri.to_owned(),
                        kept: cat.resources[i].upstream.clone(),
                        refused: s.upstream.to_owned(),
                    });
                    continue;
                }
                cat.resource_index
                    .insert(uri.to_owned(), cat.resources.len());
                cat.resources.push(ResourceEntry {
                    upstream: s.upstream.to_owned(),
                    def: def.clone(),
                });
            }
            for def in &s.lists.templates {
                cat.templates.push(ResourceEntry {
                    upstream: s.upstream.to_owned(),
                    def: def.clone(),
                });
            }
        }
        (cat, collisions)
    }

    pub fn tool(&self, name: &str) -> Option<&Entry> {
        self.tool_index.get(name).map(|&i| &self.tools[i])
    }

    pub fn prompt(&self, name: &str) -> Option<&Entry> {
        self.prompt_index.get(name).map(|&i| &self.prompts[i])
    }

    /// The upstream serving a resource URI: a listed resource, else the template with the
    /// longest literal prefix matching it.
    pub fn resource_upstream(&self, uri: &str) -> Option<&str> {
        if let Some(&i) = self.resource_index.get(uri) {
            return Some(&self.resources[i].upstream);
        }
        self.templates
            .iter()
            .filter_map(|t| {
                let tpl = t.def.get("uriTemplate")?.as_str()?;
                let prefix = tpl.split('{').next().unwrap_or(tpl);
                (!prefix.is_empty() && uri.starts_with(prefix))
                    .then_some((prefix.len(), t.upstream.as_str()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, u)| u)
    }
}

/// Whether an upstream (and, for tools, an exposed name) is visible in a scope.
pub fn in_scope(scope: Option<&VirtualServer>, upstream: &str, tool: Option<&str>) -> bool {
    match scope {
        None => true,
        Some(vs) => {
            vs.upstreams.contains(upstream)
                && match (tool, &vs.tools) {
                    (Some(t), Some(allowed)) => allowed.contains(t),
                    _ => true,
                }
        }
    }
}

pub(crate) mod overrides;
#[cfg(test)]
mod tests;
