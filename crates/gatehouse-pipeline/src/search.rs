//! Tool search: where it is on, `tools/list` shows three meta-tools instead of every tool —
//! search tools by what they do, describe one, call one. Search and describe see exactly
//! what `tools/list` would (scope, key limits and the same authorization decision); a call
//! through the meta-tool is rewritten into a call of the real tool before routing, so
//! policy, approvals, detection, DLP and the audit (under the real tool's name) apply as to
//! a direct call. A tool the caller cannot see is unknown to all three.

use serde_json::{Map, Value, json};

use crate::catalog::Entry;
use crate::config::Config;
use crate::context::View;

pub(crate) const SEARCH: &str = "gatehouse_search_tools";
pub(crate) const DESCRIBE: &str = "gatehouse_describe_tool";
pub(crate) const CALL: &str = "gatehouse_call_tool";

/// Results a search returns by default, and at most.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;
/// Longest query read (characters).
const MAX_QUERY: usize = 512;

/// Whether the caller's endpoint shows meta-tools instead of its tools.
pub(super) fn on(cfg: &Config, view: &View<'_>) -> bool {
    match view.scope {
        Some(vs) => vs.tool_search.unwrap_or(cfg.tool_search),
        None => cfg.tool_search,
    }
}

/// Stage: a call through the call meta-tool becomes the call of the tool it names, before
/// anything decides about it.
pub(super) fn unwrap(c: &mut crate::context::Call<'_>) -> crate::verdict::Verdict {
    if c.req.method != gatehouse_protocol::method::TOOLS_CALL
        || c.req.param_str("name") != Some(CALL)
        || !on(c.cfg, &c.view)
    {
        return crate::verdict::Verdict::Allow;
    }
    let Some(params) = c.req.params.as_mut() else {
        return crate::verdict::Verdict::Answer(Err(gatehouse_transport::refusal::invalid_params(
            "gatehouse_call_tool needs arguments",
        )));
    };
    match unwrap_call(params) {
        Ok(()) => crate::verdict::Verdict::Allow,
        Err(why) => crate::verdict::Verdict::Answer(Err(
            gatehouse_transport::refusal::invalid_params(format!("gatehouse_call_tool: {why}")),
        )),
    }
}

/// Which meta-tool a `tools/call` names, where tool search is on.
pub(super) fn meta(name: Option<&str>) -> Option<&'static str> {
    match name? {
        SEARCH => Some(SEARCH),
        DESCRIBE => Some(DESCRIBE),
        CALL => Some(CALL),
        _ => None,
    }
}

/// The three meta-tools, as `tools/list` shows them.
pub(super) fn list() -> Value {
    json!({"tools": [
        {"name": SEARCH, "title": "Search tools",
         "description": "Finds the tools you may use by what they do. Returns up to `limit` tools (name, title, description), best match first. Describe one to see its parameters, then call it.",
         "inputSchema": {"type": "object", "properties": {
             "query": {"type": "string", "description": "What you want to do, in a few words", "maxLength": MAX_QUERY},
             "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
           "required": ["query"], "additionalProperties": false},
         "annotations": {"readOnlyHint": true, "openWorldHint": false}},
        {"name": DESCRIBE, "title": "Describe a tool",
         "description": "The full definition of one tool found by search: its description and input schema.",
         "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}},
           "required": ["name"], "additionalProperties": false},
         "annotations": {"readOnlyHint": true, "openWorldHint": false}},
        {"name": CALL, "title": "Call a tool",
         "description": "Calls one tool found by search with its arguments, exactly as calling it directly.",
         "inputSchema": {"type": "object", "properties": {
             "name": {"type": "string"}, "arguments": {"type": "object"}},
           "required": ["name"], "additionalProperties": false}}
    ]})
}

/// Rewrites a call of the call meta-tool into the call of the tool it names, keeping the
/// request's `_meta`. `Err`: what is wrong with the meta-tool's own arguments.
pub(super) fn unwrap_call(params: &mut Value) -> Result<(), &'static str> {
    let args = params
        .get("arguments")
        .and_then(Value::as_object)
        .ok_or("arguments must be an object with `name`")?;
    let name = args
        .get("name")
        .and_then(Value::as_str)
        .ok_or("`name` must be a string")?;
    if meta(Some(name)).is_some() {
        return Err("`name` must be a tool, not a meta-tool");
    }
    let inner = match args.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) if v.is_object() => v.clone(),
        Some(_) => return Err("`arguments` must be an object"),
    };
    let name = Value::String(name.to_owned());
    if let Some(p) = params.as_object_mut() {
        p.insert("name".into(), name);
        p.insert("arguments".into(), inner);
    }
    Ok(())
}

fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
}

/// How well a tool matches the query's terms: names weigh most, then titles, parameter
/// names and descriptions; a word that starts with a term counts for less than the term.
fn score(e: &Entry, terms: &[String]) -> f64 {
    let field =
        |v: Option<&str>| -> Vec<String> { v.map(|s| words(s).collect()).unwrap_or_default() };
    let name = field(Some(&e.exposed));
    let title = field(e.def.get("title").and_then(Value::as_str));
    let description = field(e.def.get("description").and_then(Value::as_str));
    let params: Vec<String> = e
        .def
        .pointer("/inputSchema/properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.keys()
                .flat_map(|k| words(k).collect::<Vec<_>>())
                .collect()
        })
        .unwrap_or_default();
    let hit = |words: &[String], term: &str| -> f64 {
        if words.iter().any(|w| w == term) {
            1.0
        } else if words.iter().any(|w| w.starts_with(term)) {
            0.6
        } else {
            0.0
        }
    };
    terms
        .iter()
        .map(|t| {
            3.0 * hit(&name, t)
                + 2.0 * hit(&title, t)
                + 1.5 * hit(&params, t)
                + 1.0 * hit(&description, t)
        })
        .sum()
}

/// A tool result carrying `value` both as text and as structured content.
fn result(value: Value) -> Value {
    json!({"content": [{"type": "text", "text": value.to_string()}], "structuredContent": value})
}

/// Answers the search or describe meta-tool over the tools the caller can see.
pub(super) fn answer(which: &str, args: Option<&Value>, visible: &[&Entry]) -> Value {
    let arg = |k: &str| args.and_then(|a| a.get(k));
    match which {
        DESCRIBE => {
            let name = arg("name").and_then(Value::as_str).unwrap_or("");
            match visible.iter().find(|e| e.exposed == name) {
                Some(e) => result(e.def.clone()),
                // The answer an unknown tool gets: a hidden tool is indistinguishable.
                None => json!({
                    "content": [{"type": "text", "text": format!("Unknown tool: {name}")}],
                    "isError": true
                }),
            }
        }
        _ => {
            let query: String = arg("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(MAX_QUERY)
                .collect();
            let limit = arg("limit")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_LIMIT, |n| (n as usize).clamp(1, MAX_LIMIT));
            let mut terms: Vec<String> = words(&query).collect();
            terms.sort();
            terms.dedup();
            let mut ranked: Vec<(f64, &Entry)> = visible
                .iter()
                .map(|e| (score(e, &terms), *e))
                .filter(|(s, _)| *s > 0.0)
                .collect();
            ranked.sort_by(|a, b| {
                b.0.total_cmp(&a.0)
                    .then_with(|| a.1.exposed.cmp(&b.1.exposed))
            });
            let tools: Vec<Value> = ranked
                .into_iter()
                .take(limit)
                .map(|(_, e)| {
                    let description: String = e
                        .def
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .chars()
                        .take(300)
                        .collect();
                    let mut t = json!({"name": e.exposed, "description": description});
                    if let Some(title) = e.def.get("title") {
                        t["title"] = title.clone();
                    }
                    t
                })
                .collect();
            result(json!({ "tools": tools }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, title: &str, description: &str, params: &[&str]) -> Entry {
        let props: Map<String, Value> = params
            .iter()
            .map(|p| ((*p).to_owned(), json!({"type": "string"})))
            .collect();
        Entry {
            exposed: name.to_owned(),
            upstream: "u".into(),
            original: name.to_owned(),
            def: json!({"name": name, "title": title, "description": description,
                "inputSchema": {"type": "object", "properties": props}}),
        }
    }

    #[test]
    fn search_ranks_names_over_descriptions_and_sees_only_what_it_is_given() {
        let a = entry(
            "db__read_database",
            "Read the database",
            "Runs one SQL query.",
            &["query"],
        );
        let b = entry(
            "files__search_files",
            "Search documents",
            "Finds lines in the database export files.",
            &["pattern"],
        );
        let c = entry(
            "ops__deploy_service",
            "Deploy",
            "Ships a service.",
            &["service", "environment"],
        );
        let visible = [&a, &b, &c];
        let r = answer(SEARCH, Some(&json!({"query": "database"})), &visible);
        let names: Vec<&str> = r["structuredContent"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["db__read_database", "files__search_files"]);
        // A parameter name finds its tool; prefixes count.
        let r = answer(
            SEARCH,
            Some(&json!({"query": "environ", "limit": 1})),
            &visible,
        );
        assert_eq!(
            r["structuredContent"]["tools"][0]["name"],
            "ops__deploy_service"
        );
        // Hidden from the caller: neither found nor described.
        let r = answer(SEARCH, Some(&json!({"query": "deploy"})), &[&a, &b]);
        assert_eq!(r["structuredContent"]["tools"], json!([]));
        let r = answer(
            DESCRIBE,
            Some(&json!({"name": "ops__deploy_service"})),
            &[&a, &b],
        );
        assert_eq!(r["isError"], true);
        let r = answer(
            DESCRIBE,
            Some(&json!({"name": "db__read_database"})),
            &visible,
        );
        assert_eq!(
            r["structuredContent"]["inputSchema"]["properties"]["query"]["type"],
            "string"
        );
    }

    #[test]
    fn the_call_meta_tool_becomes_the_call_it_names() {
        let mut p = json!({"name": CALL, "arguments": {"name": "db__read_database", "arguments": {"query": "select 1"}}, "_meta": {"k": 1}});
        unwrap_call(&mut p).unwrap();
        assert_eq!(
            p,
            json!({"name": "db__read_database", "arguments": {"query": "select 1"}, "_meta": {"k": 1}})
        );
        for bad in [
            json!({"name": CALL, "arguments": {"name": SEARCH}}),
            json!({"name": CALL, "arguments": {"name": 3}}),
            json!({"name": CALL, "arguments": {"name": "x", "arguments": [1]}}),
            json!({"name": CALL}),
        ] {
            let mut p = bad.clone();
            assert!(unwrap_call(&mut p).is_err(), "{bad}");
        }
    }
}
