//! Tool overrides from config, applied to an upstream's list before anything else sees it:
//! the title, description and annotations clients see (so the override is what is pinned
//! and scanned), parameters hidden because the gateway fixes their value, and parameters
//! narrowed to the argument rules the gateway enforces (`one_of` → `enum`, `min`/`max`,
//! `max_length`), so `tools/list` says what `tools/call` accepts. Renames are applied when
//! the catalog names the tool: the upstream's name stays the tool's identity for policies,
//! pins and the audit.

use std::collections::BTreeMap;

use gatehouse_config::{RawArgRule, RawToolPolicy};
use serde_json::{Map, Value};

use super::UpstreamLists;

/// Whether a tool's config changes what clients see of it.
fn shapes(t: &RawToolPolicy) -> bool {
    t.name.is_some()
        || t.title.is_some()
        || t.description.is_some()
        || !t.annotations.is_empty()
        || !t.fixed.is_empty()
        || t.arguments.values().any(narrows)
}

fn narrows(r: &RawArgRule) -> bool {
    r.one_of.is_some() || r.min.is_some() || r.max.is_some() || r.max_length.is_some()
}

/// The upstream's lists with its tools' overrides applied (borrowed as is when none apply).
pub(crate) fn apply<'a>(
    lists: &'a UpstreamLists,
    tools: &BTreeMap<String, RawToolPolicy>,
) -> std::borrow::Cow<'a, UpstreamLists> {
    if !tools.values().any(shapes) {
        return std::borrow::Cow::Borrowed(lists);
    }
    let mut out = lists.clone();
    for def in &mut out.tools {
        let Some(t) = def
            .get("name")
            .and_then(Value::as_str)
            .and_then(|n| tools.get(n))
        else {
            continue;
        };
        override_tool(def, t);
    }
    std::borrow::Cow::Owned(out)
}

/// The names clients see for renamed tools: upstream name → new name.
pub(crate) fn renames(tools: &BTreeMap<String, RawToolPolicy>) -> BTreeMap<String, String> {
    tools
        .iter()
        .filter_map(|(orig, t)| t.name.clone().map(|n| (orig.clone(), n)))
        .collect()
}

fn override_tool(def: &mut Value, t: &RawToolPolicy) {
    let Some(o) = def.as_object_mut() else { return };
    if let Some(title) = &t.title {
        o.insert("title".into(), Value::String(title.clone()));
    }
    if let Some(d) = &t.description {
        o.insert("description".into(), Value::String(d.clone()));
    }
    if !t.annotations.is_empty() {
        let ann = o
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !ann.is_object() {
            *ann = Value::Object(Map::new());
        }
        if let Some(a) = ann.as_object_mut() {
            for (k, v) in &t.annotations {
                a.insert(k.clone(), v.clone());
            }
        }
    }
    let Some(schema) = o.get_mut("inputSchema").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for k in t.fixed.keys() {
            props.remove(k);
        }
        for (arg, rule) in &t.arguments {
            if let Some(p) = props.get_mut(arg).and_then(Value::as_object_mut) {
                narrow(p, rule);
            }
        }
    }
    if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r.as_str().is_none_or(|r| !t.fixed.contains_key(r)));
    }
}

/// Writes an argument rule's limits into the parameter's schema (never loosening one the
/// upstream already has).
fn narrow(p: &mut Map<String, Value>, r: &RawArgRule) {
    if let Some(values) = &r.one_of {
        let allowed: Vec<Value> = match p.get("enum").and_then(Value::as_array) {
            Some(theirs) => values
                .iter()
                .filter(|v| theirs.contains(v))
                .cloned()
                .collect(),
            None => values.clone(),
        };
        p.insert("enum".into(), Value::Array(allowed));
    }
    let tighter = |p: &mut Map<String, Value>, key: &str, v: i64, lower: bool| {
        let keep = p.get(key).and_then(Value::as_f64).is_some_and(|theirs| {
            if lower {
                theirs >= v as f64
            } else {
                theirs <= v as f64
            }
        });
        if !keep {
            p.insert(key.into(), Value::from(v));
        }
    };
    if let Some(min) = r.min {
        tighter(p, "minimum", min, true);
    }
    if let Some(max) = r.max {
        tighter(p, "maximum", max, false);
    }
    if let Some(n) = r.max_length {
        let key = if p.get("type").and_then(Value::as_str) == Some("array") {
            "maxItems"
        } else {
            "maxLength"
        };
        tighter(p, key, n as i64, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"name": "deploy_service", "title": "Deploy a service", "description": "Records a deployment.",
            "inputSchema": {"type": "object", "properties": {
                "service": {"type": "string"}, "version": {"type": "string", "enum": ["1", "2", "3"]},
                "environment": {"type": "string", "enum": ["staging", "production"]},
                "replicas": {"type": "integer", "maximum": 10}, "tags": {"type": "array"}},
                "required": ["service", "version", "environment"], "additionalProperties": false},
            "annotations": {"readOnlyHint": false, "destructiveHint": false}})
    }

    #[test]
    fn overrides_shape_what_clients_see_and_leave_other_tools_alone() {
        let lists = UpstreamLists {
            tools: vec![
                deploy(),
                json!({"name": "other", "inputSchema": {"type": "object"}}),
            ],
            ..Default::default()
        };
        let rule = |r: RawArgRule| r;
        let t = RawToolPolicy {
            name: Some("ship".into()),
            description: Some("Ships a service to staging.".into()),
            annotations: [("destructiveHint".to_owned(), json!(true))].into(),
            fixed: [("environment".to_owned(), json!("staging"))].into(),
            arguments: [
                (
                    "version".to_owned(),
                    rule(RawArgRule {
                        one_of: Some(vec![json!("2"), json!("3"), json!("9")]),
                        ..Default::default()
                    }),
                ),
                (
                    "replicas".to_owned(),
                    rule(RawArgRule {
                        min: Some(1),
                        max: Some(50),
                        ..Default::default()
                    }),
                ),
                (
                    "tags".to_owned(),
                    rule(RawArgRule {
                        max_length: Some(4),
                        ..Default::default()
                    }),
                ),
            ]
            .into(),
            ..Default::default()
        };
        let tools = [("deploy_service".to_owned(), t)].into();
        let out = apply(&lists, &tools);
        let d = &out.tools[0];
        // The name stays the upstream's here: the catalog renames.
        assert_eq!(d["name"], "deploy_service");
        assert_eq!(d["title"], "Deploy a service");
        assert_eq!(d["description"], "Ships a service to staging.");
        assert_eq!(d["annotations"]["destructiveHint"], true);
        assert_eq!(d["annotations"]["readOnlyHint"], false);
        let s = &d["inputSchema"];
        assert!(s["properties"].get("environment").is_none(), "{s}");
        assert_eq!(s["required"], json!(["service", "version"]));
        // Narrowed, never widened: "9" is not one of the upstream's values, its maximum
        // of 10 is tighter than 50.
        assert_eq!(s["properties"]["version"]["enum"], json!(["2", "3"]));
        assert_eq!(s["properties"]["replicas"]["minimum"], 1);
        assert_eq!(s["properties"]["replicas"]["maximum"], 10);
        assert_eq!(s["properties"]["tags"]["maxItems"], 4);
        assert_eq!(out.tools[1], lists.tools[1]);
        assert_eq!(
            renames(&tools).get("deploy_service").map(String::as_str),
            Some("ship")
        );
        // No override that shapes a definition: the lists are not even copied.
        let plain = [("deploy_service".to_owned(), RawToolPolicy::default())].into();
        assert!(matches!(
            apply(&lists, &plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
