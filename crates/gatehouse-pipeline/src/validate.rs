//! Stage: validate, for tool arguments: the operator's limits on each argument, then the
//! injection detector of the argument's kind (configured, or inferred from its name).
//! A refusal is a JSON-RPC invalid-params error naming the argument; nothing reaches the
//! upstream.

use gatehouse_detect::inject::{self, ArgKind};
use gatehouse_policy::{Target, Verb};
use gatehouse_protocol::method;
use serde_json::{Map, Value, json};

use crate::config::{Config, RawArgRule};
use crate::context::Call;
use crate::route;
use crate::verdict::Denial;
use crate::verdict::Verdict;

fn refuse(rule: &'static str, arg: &str, why: &str, detail: Option<&str>) -> Verdict {
    let mut data = json!({"argument": arg, "rule": rule});
    if let Some(d) = detail {
        data["check"] = json!(d);
    }
    Verdict::Deny(Denial::new(
        rule,
        format!("argument `{arg}`: {why}"),
        gatehouse_transport::refusal::invalid_params(format!("Invalid arguments: `{arg}` {why}"))
            .with_data(data),
    ))
}

/// The limits one rule (or one role's part of it) puts on a value.
struct Limits<'a> {
    one_of: Option<&'a Vec<Value>>,
    max_length: Option<usize>,
    min: Option<i64>,
    max: Option<i64>,
    pattern: Option<&'a str>,
    keys: Option<&'a Vec<String>>,
}

impl<'a> From<&'a RawArgRule> for Limits<'a> {
    fn from(r: &'a RawArgRule) -> Self {
        Limits {
            one_of: r.one_of.as_ref(),
            max_length: r.max_length,
            min: r.min,
            max: r.max,
            pattern: r.pattern.as_deref(),
            keys: r.keys.as_ref(),
        }
    }
}

impl<'a> From<&'a crate::config::RawArgLimits> for Limits<'a> {
    fn from(r: &'a crate::config::RawArgLimits) -> Self {
        Limits {
            one_of: r.one_of.as_ref(),
            max_length: r.max_length,
            min: r.min,
            max: r.max,
            pattern: r.pattern.as_deref(),
            keys: r.keys.as_ref(),
        }
    }
}

/// Compiled `pattern`s (config checks them at load; compiled once here).
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Option<regex::Regex>>>,
    > = std::sync::OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() > 1024 {
        cache.clear();
    }
    let re = cache.entry(pattern.to_owned()).or_insert_with(|| {
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .ok()
    });
    // A pattern that does not compile matches nothing: the call is refused.
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// The operator's limits on one value; `whose` names the role they come from, if any.
fn limits(rule: Limits<'_>, arg: &str, v: &Value, whose: &str) -> Option<Verdict> {
    let why = |what: String| {
        Some(refuse(
            "validate.constraint",
            arg,
            &format!("{what}{whose}"),
            None,
        ))
    };
    if let Some(allowed) = rule.one_of
        && !allowed.contains(v)
    {
        return why("is not one of the allowed values".into());
    }
    if let Some(max) = rule.max_length {
        let len = match v {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len > max {
            return why(format!("is longer than {max}"));
        }
    }
    if let Some(n) = v.as_f64()
        && (rule.min.is_some_and(|m| n < m as f64) || rule.max.is_some_and(|m| n > m as f64))
    {
        return why("is out of range".into());
    }
    if let Some(p) = rule.pattern
        && !v.as_str().is_some_and(|s| pattern_matches(p, s))
    {
        return why("does not match the allowed pattern".into());
    }
    if let (Some(allowed), Some(o)) = (rule.keys, v.as_object())
        && let Some(k) = o.keys().find(|k| !allowed.contains(k))
    {
        return why(format!("has a key that is not allowed (`{k}`)"));
    }
    None
}

/// Checks a tool call's arguments against its rules and the injection detectors.
/// `hosts` receives the host names of URL arguments that passed, for [`resolved_hosts`].
pub(super) fn arguments(
    cfg: &Config,
    target: &Target,
    args: Option<&Map<String, Value>>,
    roles: &[String],
    hosts: &mut Vec<(String, String)>,
) -> Verdict {
    let Target::Tool {
        server,
        original,
        verb,
        ..
    } = target
    else {
        return Verdict::Allow;
    };
    let Some(args) = args else {
        return Verdict::Allow;
    };
    let configured = route::data_policy(cfg, server).and_then(|d| d.tools.get(original));
    let default = RawArgRule::default();
    for (name, value) in args {
        let rule = configured
            .and_then(|t| t.arguments.get(name))
            .unwrap_or(&default);
        if let Some(v) = limits(rule.into(), name, value, "") {
            return v;
        }
        for (role, extra) in &rule.roles {
            if roles.contains(role)
                && let Some(v) = limits(extra.into(), name, value, &format!(" for role {role}"))
            {
                return v;
            }
        }
        // Every string in the argument, however deep: a configured kind covers them all;
        // otherwise each string is typed by the nearest key above it (`{"options":
        // {"path": …}}` is a path).
        let read_only = rule.read_only.unwrap_or(*verb == Verb::Read);
        // Documents whose keys matter (NoSQL operators) are checked whole.
        let top = rule.kind.unwrap_or_else(|| inject::infer(original, name));
        if let Some(found) = inject::check_value(top, value) {
            tracing::warn!(target: "gatehouse::audit", tool = %original, argument = %name, rule = found.rule, detail = %found.detail, "argument refused");
            return refuse(
                "validate.injection",
                name,
                &format!("was refused: {}", found.detail),
                Some(found.rule),
            );
        }
        let mut strings = Vec::new();
        collect(value, name, rule.kind, original, &mut strings, 0);
        for (kind, s) in strings {
            if kind == ArgKind::Url
                && hosts.len() < MAX_RESOLVED
                && let Some(h) = inject::url_host(s)
                && h.parse::<std::net::IpAddr>().is_err()
            {
                hosts.push((name.clone(), h));
            }
            if let Some(found) = inject::check(kind, s, read_only, &rule.roots) {
                tracing::warn!(target: "gatehouse::audit", tool = %original, argument = %name, rule = found.rule, detail = %found.detail, "argument refused");
                return refuse(
                    "validate.injection",
                    name,
                    &format!("was refused: {}", found.detail),
                    Some(found.rule),
                );
            }
        }
    }
    Verdict::Allow
}

/// Stage: validate the envelope. `tools/call` arguments, when present, is an object.
pub(super) fn envelope(c: &mut Call<'_>) -> Verdict {
    if c.req.method == method::TOOLS_CALL
        && c.arguments()
            .is_some_and(|a| !a.is_object() && !a.is_null())
    {
        return Verdict::Deny(Denial::new(
            "validate.arguments_object",
            "tools/call arguments is not an object",
            gatehouse_transport::refusal::invalid_params("params.arguments must be an object"),
        ));
    }
    Verdict::Allow
}

/// A routed `tools/call`: its guard. Other requests have no arguments to check.
fn routed_call<'c>(c: &'c Call<'_>) -> Option<&'c crate::context::Guard> {
    match &c.target {
        crate::context::Target::Upstream { guard, .. } if c.req.method == method::TOOLS_CALL => {
            Some(guard)
        }
        _ => None,
    }
}

/// Stage: validate against the tool's own input schema.
pub(super) fn schema(c: &mut Call<'_>) -> Verdict {
    let Some(guard) = routed_call(c) else {
        return Verdict::Allow;
    };
    let empty = Value::Object(Map::new());
    if let Some(args) = c.arguments().and_then(Value::as_object)
        && let Some(fixed) = fixed_params(c.cfg, &guard.target)
        && let Some(arg) = args.keys().find(|a| fixed.contains_key(*a))
    {
        tracing::warn!(target: "gatehouse::audit", tool = %guard.name, argument = %arg, "argument refused: the gateway fixes its value");
        return refuse(
            "arguments.fixed",
            arg,
            "is set by the gateway and cannot be sent",
            None,
        );
    }
    let catalog = c.gw.catalog();
    c.gw.schemas.check(
        catalog.tool(&guard.name).map(|e| &e.def),
        c.arguments().filter(|a| !a.is_null()).unwrap_or(&empty),
    )
}

/// The parameters the gateway sets on a tool's calls (config `fixed`), if any.
pub(super) fn fixed_params<'c>(
    cfg: &'c Config,
    target: &Target,
) -> Option<&'c std::collections::BTreeMap<String, Value>> {
    let Target::Tool {
        server, original, ..
    } = target
    else {
        return None;
    };
    let fixed = &route::data_policy(cfg, server)?.tools.get(original)?.fixed;
    (!fixed.is_empty()).then_some(fixed)
}

/// Stage: the gateway's own argument rules (limits, paths, URLs, SQL, shell, per role).
pub(super) fn rules(c: &mut Call<'_>) -> Verdict {
    let Some(guard) = routed_call(c) else {
        return Verdict::Allow;
    };
    let mut hosts = Vec::new();
    let verdict = arguments(
        c.cfg,
        &guard.target,
        c.arguments().and_then(Value::as_object),
        &c.ctx.principal.roles,
        &mut hosts,
    );
    c.url_hosts = hosts;
    verdict
}

/// Stage: URL arguments naming a host: what the name resolves to.
pub(super) async fn hosts(c: &mut Call<'_>) -> Verdict {
    let crate::context::Target::Upstream { guard, .. } = &c.target else {
        return Verdict::Allow;
    };
    if c.url_hosts.is_empty() {
        return Verdict::Allow;
    }
    resolved_hosts(&guard.target, std::mem::take(&mut c.url_hosts)).await
}

/// Most host names resolved per call.
const MAX_RESOLVED: usize = 16;
/// How long a URL argument's host may take to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// URL arguments whose host is a name: resolved, and refused if any address it resolves
/// to is internal (a public-looking name pointing at loopback, a private network or the
/// metadata service). A name that does not resolve passes: the upstream cannot reach it
/// either. The upstream resolves again when it connects, so a name that changes its
/// answer in between (DNS rebinding) is for the upstream's own egress policy.
pub(super) async fn resolved_hosts(target: &Target, hosts: Vec<(String, String)>) -> Verdict {
    let Target::Tool { original, .. } = target else {
        return Verdict::Allow;
    };
    for (arg, host) in hosts {
        let lookup = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), 443)),
        )
        .await;
        let Ok(Ok(addrs)) = lookup else {
            continue;
        };
        if let Some(a) = addrs
            .map(|a| a.ip())
            .find(|ip| inject::internal_address(*ip))
        {
            tracing::warn!(target: "gatehouse::audit", tool = %original, argument = %arg, host = %host, address = %a, "argument refused: the host resolves to an internal address");
            return refuse(
                "validate.injection",
                &arg,
                &format!("was refused: host `{host}` resolves to {a}"),
                Some("ssrf.resolved"),
            );
        }
    }
    Verdict::Allow
}

/// Strings below `v` with the detector each gets (`Text` ones are left out). Depth is
/// bounded by the protocol's JSON depth limit; this bound only guards the recursion.
fn collect<'a>(
    v: &'a Value,
    key: &str,
    configured: Option<ArgKind>,
    tool: &str,
    out: &mut Vec<(ArgKind, &'a str)>,
    depth: usize,
) {
    if depth > 128 {
        return;
    }
    match v {
        Value::String(s) => {
            let kind = configured.unwrap_or_else(|| inject::infer(tool, key));
            if kind != ArgKind::Text {
                out.push((kind, s));
            }
        }
        Value::Array(items) => {
            for i in items {
                collect(i, key, configured, tool, out, depth + 1);
            }
        }
        Value::Object(m) => {
            for (k, child) in m {
                collect(child, k, configured, tool, out, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schemas::Schemas;

    fn rule(v: &Verdict) -> Option<&'static str> {
        match v {
            Verdict::Deny(d) => Some(d.rule),
            _ => None,
        }
    }

    /// Many tools' schemas in one cache: each call is checked against its own tool's
    /// schema, looked up by its full text.
    #[test]
    fn each_tool_is_checked_against_its_own_schema() {
        let schemas = Schemas::default();
        for n in 0..500 {
            let def = json!({"inputSchema": {"type": "object", "properties": {
                "x": {"type": "integer", "maximum": n}}, "required": ["x"]}});
            assert_eq!(rule(&schemas.check(Some(&def), &json!({"x": n}))), None);
            assert_eq!(
                rule(&schemas.check(Some(&def), &json!({"x": n + 1}))),
                Some("validate.schema"),
                "{n}"
            );
        }
    }

    /// Upstream `pattern`s run on the linear-time engine: one that needs backtracking
    /// (look-around, a back-reference) cannot be compiled, so the call is refused rather
    /// than checked by a backtracking engine an upstream could stall.
    #[test]
    fn schema_patterns_never_backtrack() {
        let schemas = Schemas::default();
        let def = |p: &str| {
            json!({"inputSchema": {"type": "object", "properties": {
            "s": {"type": "string", "pattern": p}}}})
        };
        for p in ["^(?=(a+)+b)", "^(a)\\1$", "(?<!x)y"] {
            assert_eq!(
                rule(&schemas.check(
                    Some(&def(p)),
                    &json!({"s": "aaaaaaaaaaaaaaaaaaaaaaaaaaaac"})
                )),
                Some("validate.schema_unusable"),
                "{p}"
            );
        }
        // Linear-time patterns work, including the classic catastrophic one.
        let evil = def("^(a+)+$");
        let t = "a".repeat(10_000) + "!";
        assert_eq!(
            rule(&schemas.check(Some(&evil), &json!({"s": t}))),
            Some("validate.schema")
        );
        assert_eq!(
            rule(&schemas.check(Some(&evil), &json!({"s": "aaa"}))),
            None
        );
    }

    #[test]
    fn strings_nested_in_objects_are_checked_by_their_own_key() {
        let v = json!({"options": {"path": "../../etc/passwd", "note": "x"}, "list": [{"url": "http://127.0.0.1/"}]});
        let mut out = Vec::new();
        collect(&v, "args", None, "tool", &mut out, 0);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out.contains(&(ArgKind::Path, "../../etc/passwd")),
            "{out:?}"
        );
        assert!(
            out.contains(&(ArgKind::Url, "http://127.0.0.1/")),
            "{out:?}"
        );
        let mut out = Vec::new();
        collect(&v, "args", Some(ArgKind::Shell), "tool", &mut out, 0);
        assert_eq!(out.len(), 3, "a configured kind covers every string");
    }

    #[test]
    fn limits_per_role_patterns_keys_and_nosql_documents() {
        let cfg = Config::from_yaml(
            "dev_mode: true\nupstreams:\n  db:\n    command: x\n    tools:\n      report:\n        arguments:\n          limit: {max: 1000, roles: {contractor: {max: 10}}}\n          region: {pattern: '[A-Z]{2,4}'}\n          options: {keys: [sort, desc]}\n          filter: {kind: nosql_filter}\n",
            &|_| None,
        )
        .unwrap();
        let target = Target::Tool {
            server: "db".into(),
            original: "report".into(),
            exposed: "db__report".into(),
            classification: gatehouse_policy::Classification::Internal,
            verb: Verb::Read,
            hints: Default::default(),
            tenancy: Default::default(),
        };
        let check = |args: Value, roles: &[&str]| {
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            match arguments(&cfg, &target, args.as_object(), &roles, &mut Vec::new()) {
                Verdict::Deny(d) => Some(d.reason),
                _ => None,
            }
        };
        assert_eq!(check(json!({"limit": 500}), &["analyst"]), None);
        let r = check(json!({"limit": 500}), &["analyst", "contractor"]);
        assert!(
            r.as_deref()
                .is_some_and(|r| r.contains("for role contractor")),
            "{r:?}"
        );
        assert!(check(json!({"limit": 5000}), &[]).is_some());
        assert_eq!(check(json!({"region": "EMEA"}), &[]), None);
        assert!(check(json!({"region": "EMEA; DROP"}), &[]).is_some());
        assert!(check(json!({"region": 7}), &[]).is_some());
        assert_eq!(check(json!({"options": {"sort": "name"}}), &[]), None);
        let r = check(json!({"options": {"sort": "name", "$where": "1"}}), &[]);
        assert!(
            r.as_deref().is_some_and(|r| r.contains("`$where`")),
            "{r:?}"
        );
        assert_eq!(check(json!({"filter": {"age": {"$gt": 3}}}), &[]), None);
        let r = check(json!({"filter": {"$where": "sleep(1000)"}}), &[]);
        assert!(
            r.as_deref().is_some_and(|r| r.contains("runs code")),
            "{r:?}"
        );
        // A pattern that does not compile is refused at load.
        let bad = Config::from_yaml(
            "dev_mode: true\nupstreams:\n  db:\n    command: x\n    tools:\n      report:\n        arguments:\n          region: {roles: {x: {pattern: '('}}}\n",
            &|_| None,
        );
        assert!(bad.is_err_and(|e| e.to_string().contains("roles.x.pattern")));
    }
}
