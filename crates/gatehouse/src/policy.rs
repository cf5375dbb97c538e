//! `gatehouse policy`: explain one decision, run a table of expected decisions, export the
//! access-control document auditors ask for, print the Cedar schema, and time decisions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use gatehouse_policy::table::{Table, TableServer, TableTarget, engine_for};
use gatehouse_policy::{
    Action, Classification, Controls, Engine, Hints, Outcome, PolicySource, PolicySpec, Situation,
    Subject, Target, Verb, authorize,
};
use gatehouse_proxy::Config;
use gatehouse_proxy::config::Authorization;
use serde_json::{Map, Value, json};

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide one call and say which policies decided and why.
    Explain {
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: PathBuf,
        /// The principal's id.
        #[arg(long)]
        principal: String,
        /// Comma-separated roles (as the principal's credential would carry them).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        acr: Option<String>,
        #[arg(long, value_delimiter = ',')]
        amr: Vec<String>,
        /// Seconds since the principal authenticated.
        #[arg(long)]
        auth_age: Option<u64>,
        /// A service principal (API key, certificate) rather than a user.
        #[arg(long)]
        service: bool,
        /// Mapped claim, repeatable: NAME=JSON (e.g. `assigned=["p-1"]`).
        #[arg(long = "attr", value_name = "NAME=JSON")]
        attrs: Vec<String>,
        /// The tool as clients see it (`db__read_database`) or as `server.tool`.
        #[arg(long)]
        tool: String,
        /// The call's arguments (JSON object).
        #[arg(long, default_value = "{}")]
        args: String,
        /// The tool's MCP annotations as its upstream lists them (JSON object).
        #[arg(long)]
        annotations: Option<String>,
        /// Decide for a list instead of a call.
        #[arg(long)]
        listing: bool,
    },
    /// Run a table of expected decisions (YAML); exits non-zero when any case fails.
    Test {
        file: PathBuf,
        /// Decide with this config's roles, policies and controls instead of the table's.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Write the access-control document: roles → grants with verb classes,
    /// classification and conditions, from the live config.
    Export {
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: PathBuf,
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
    /// Print the Cedar schema policies are validated against.
    Schema,
    /// Time decisions: one call, and a list of every tool, with N policies and M tools.
    Bench {
        #[arg(long, default_value_t = 100)]
        policies: usize,
        #[arg(long, default_value_t = 1000)]
        tools: usize,
        #[arg(long, default_value_t = 20000)]
        decisions: usize,
    },
}

fn load(config: &Path) -> Result<(Config, std::sync::Arc<Authorization>)> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let authz = cfg
        .authorization
        .clone()
        .with_context(|| format!("{} has no authorization section", config.display()))?;
    Ok((cfg, authz))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `server.tool` or an exposed name, resolved through the upstreams' namespaces.
fn resolve_tool(cfg: &Config, tool: &str) -> Result<(String, String)> {
    for u in &cfg.upstreams {
        if let Some(rest) = tool.strip_prefix(&format!("{}.", u.name)) {
            return Ok((u.name.clone(), rest.to_owned()));
        }
        if let Some(ns) = &u.namespace
            && let Some(rest) = tool.strip_prefix(&format!("{ns}{}", cfg.separator))
        {
            return Ok((u.name.clone(), rest.to_owned()));
        }
    }
    bail!("`{tool}` names no configured upstream (use server.tool or the exposed name)")
}

pub(crate) fn run(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Explain {
            config,
            principal,
            roles,
            groups,
            tenant,
            acr,
            amr,
            auth_age,
            service,
            attrs,
            tool,
            args,
            annotations,
            listing,
        } => {
            let (cfg, authz) = load(&config)?;
            let mut attributes = BTreeMap::new();
            for a in attrs {
                let (k, v) = a.split_once('=').context("--attr takes NAME=JSON")?;
                let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
                attributes.insert(k.to_owned(), v);
            }
            let now = now();
            let subject = Subject {
                id: principal,
                service,
                tenant,
                roles,
                groups,
                scopes: Vec::new(),
                acr,
                amr,
                authenticated_at: auth_age.map(|a| now.saturating_sub(a)),
                method: "explain".into(),
                attributes,
            };
            let (server, original) = resolve_tool(&cfg, &tool)?;
            let up = cfg
                .upstreams
                .iter()
                .find(|u| u.name == server)
                .context("upstream")?;
            let exposed = match &up.namespace {
                Some(ns) => format!("{ns}{}{original}", cfg.separator),
                None => original.clone(),
            };
            let ann: Value = match annotations {
                Some(a) => serde_json::from_str(&a).context("--annotations is not JSON")?,
                None => json!({}),
            };
            let target = up
                .data
                .tool(&server, &original, &exposed, &json!({"annotations": ann}));
            let args: Value = serde_json::from_str(&args).context("--args is not JSON")?;
            let args: Map<String, Value> = match args {
                Value::Object(m) => m,
                _ => bail!("--args must be a JSON object"),
            };
            let prepared = authz.engine.prepare(&subject)?;
            let sit = Situation {
                listing,
                now,
                arguments: Some(&args),
                client: None,
                source_ip: None,
            };
            let outcome = authorize(
                &authz.engine,
                &prepared,
                &subject,
                &authz.controls,
                Action::CallTool,
                &target,
                &sit,
            );
            print_explanation(&authz, &subject, &target, &outcome);
            Ok(())
        }
        PolicyCommand::Test { file, config } => test(&file, config.as_deref()),
        PolicyCommand::Export { config, format } => {
            let (cfg, authz) = load(&config)?;
            let doc = export(&cfg, &authz);
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", markdown(&doc));
            }
            Ok(())
        }
        PolicyCommand::Schema => {
            print!("{}", Engine::schema_text());
            Ok(())
        }
        PolicyCommand::Bench {
            policies,
            tools,
            decisions,
        } => bench(policies, tools, decisions),
    }
}

fn print_explanation(authz: &Authorization, s: &Subject, t: &Target, outcome: &Outcome) {
    let effective: Vec<&str> = authz
        .engine
        .roles()
        .effective(s.roles.iter().map(String::as_str))
        .into_iter()
        .collect();
    println!(
        "principal   {} (tenant {})",
        s.id,
        s.tenant.as_deref().unwrap_or("-")
    );
    println!(
        "roles       {} (effective: {})",
        s.roles.join(", "),
        effective.join(", ")
    );
    if let Target::Tool {
        server,
        original,
        exposed,
        classification,
        verb,
        tenancy,
        ..
    } = t
    {
        println!("tool        {exposed} = {server}.{original}");
        println!(
            "facts       verb {verb}, classification {classification}, server tenant {}{}",
            tenancy.tenant.as_deref().unwrap_or("-"),
            if tenancy.shared { " (shared)" } else { "" }
        );
    }
    let verdict = match outcome {
        Outcome::Allow { .. } => "ALLOW".to_owned(),
        Outcome::Deny { cause, .. } => format!("DENY ({cause:?})"),
        Outcome::StepUp { needed, .. } => format!(
            "STEP-UP REQUIRED ({} not met; acr {:?}, max_age {:?})",
            needed.reason, needed.acr_values, needed.max_age
        ),
    };
    println!("decision    {verdict}");
    if outcome.policies().is_empty() {
        println!("because     no policy permits it (default deny)");
    }
    for id in outcome.policies() {
        match authz.engine.policy(id) {
            Some((origin, text)) => {
                println!("because     {id} ({origin}):");
                for line in text.lines() {
                    println!("              {line}");
                }
            }
            None => println!("because     {id}"),
        }
    }
    let c = authz.controls(t.classification());
    println!(
        "controls    {}: step-up {}, max result {}, redaction {}, enhanced audit {}",
        t.classification(),
        if c.step_up.is_some() { "yes" } else { "no" },
        c.max_result_bytes
            .map_or("-".to_owned(), |b| format!("{b} B")),
        c.redaction.as_deref().unwrap_or("-"),
        c.enhanced_audit
    );
}

fn test(file: &Path, config: Option<&Path>) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut table = Table::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (engine, controls) = match config {
        None => {
            let read =
                |p: &str| std::fs::read_to_string(base.join(p)).map_err(|e| format!("{p}: {e}"));
            let engine = engine_for(&table, &read)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            (
                std::sync::Arc::new(engine),
                Controls::table(&table.controls),
            )
        }
        Some(c) => {
            let (cfg, authz) = load(c)?;
            // Servers and tools the table does not describe take the config's facts.
            for u in &cfg.upstreams {
                table
                    .servers
                    .entry(u.name.clone())
                    .or_insert_with(|| TableServer {
                        tenant: u.data.tenancy.tenant.clone(),
                        shared: u.data.tenancy.shared,
                        classification: u.data.classification,
                    });
                for (name, o) in &u.data.tools {
                    let t = table
                        .targets
                        .entry(format!("{}.{name}", u.name))
                        .or_insert_with(TableTarget::default);
                    t.verb = t.verb.or(o.verb);
                    t.classification = t.classification.or(o.classification);
                }
            }
            (authz.engine.clone(), authz.controls.clone())
        }
    };
    let results = table
        .run_with(&engine, &controls)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut failed = 0;
    for r in &results {
        let mark = if r.passed { "ok  " } else { "FAIL" };
        if !r.passed {
            failed += 1;
        }
        println!(
            "{mark} {:>3}  {} → {}{}: expected {:?}, got {:?}{}{}",
            r.index + 1,
            r.case.principal,
            r.case.target,
            if r.case.listing { " (list)" } else { "" },
            r.case.expect,
            r.got,
            if r.policies.is_empty() {
                String::new()
            } else {
                format!(" by {}", r.policies.join(", "))
            },
            r.case
                .note
                .as_deref()
                .map(|n| format!("  — {n}"))
                .unwrap_or_default(),
        );
    }
    println!("{} cases, {} failed", results.len(), failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// The access-control document as JSON.
fn export(cfg: &Config, authz: &Authorization) -> Value {
    let roles = authz.engine.roles();
    let mut out_roles = Map::new();
    for name in roles.grants().keys() {
        let mut grants = Vec::new();
        for held in roles.effective([name.as_str()]) {
            let Some(g) = roles.grants().get(held) else {
                continue;
            };
            for (kind, refs) in [
                ("tool", &g.tools),
                ("prompt", &g.prompts),
                ("resource", &g.resources),
            ] {
                for r in refs {
                    let (server, rest) = r.split_once('.').unwrap_or((r.as_str(), ""));
                    let data = cfg
                        .upstreams
                        .iter()
                        .find(|u| u.name == server)
                        .map(|u| &u.data);
                    let o = data.and_then(|d| d.tools.get(rest));
                    let classification = o
                        .and_then(|o| o.classification)
                        .or(data.and_then(|d| d.classification))
                        .unwrap_or(Classification::Internal);
                    grants.push(json!({
                        "kind": kind,
                        "ref": r,
                        "via": held,
                        "verb": if kind == "tool" {
                            o.and_then(|o| o.verb).map_or(json!("from annotations"), |v| json!(v.as_str()))
                        } else { Value::Null },
                        "verbs_allowed": g.verbs.as_ref().map(|v| v.iter().map(|v| v.as_str()).collect::<Vec<_>>()),
                        "classification": classification.as_str(),
                        "conditions": serde_json::to_value(&g.when).unwrap_or_default(),
                        "server_tenant": data.and_then(|d| d.tenancy.tenant.clone()),
                        "known_server": data.is_some(),
                    }));
                }
            }
        }
        out_roles.insert(
            name.clone(),
            json!({
                "inherits": roles.grants()[name].inherits,
                "grants": grants,
            }),
        );
    }
    let servers: Map<String, Value> = cfg
        .upstreams
        .iter()
        .map(|u| {
            (
                u.name.clone(),
                json!({
                    "classification": u.data.classification.unwrap_or(Classification::Internal).as_str(),
                    "tenant": u.data.tenancy.tenant,
                    "shared": u.data.tenancy.shared,
                    "tools": u.data.tools.iter().map(|(k, o)| (k.clone(), json!({
                        "verb": o.verb.map(Verb::as_str),
                        "classification": o.classification.map(Classification::as_str),
                    }))).collect::<Map<_, _>>(),
                }),
            )
        })
        .collect();
    let controls: Map<String, Value> = authz
        .controls
        .iter()
        .map(|(k, c)| {
            (
                k.as_str().to_owned(),
                serde_json::to_value(c).unwrap_or_default(),
            )
        })
        .collect();
    let policies: Vec<Value> = authz
        .engine
        .policy_ids()
        .filter(|(_, origin)| *origin != "roles")
        .map(|(id, origin)| {
            json!({"id": id, "source": origin, "text": authz.engine.policy(id).map(|p| p.1)})
        })
        .collect();
    json!({
        "default": "deny",
        "denied_as": format!("{:?}", authz.denied_as).to_lowercase(),
        "roles": out_roles,
        "servers": servers,
        "classification_controls": controls,
        "policies": policies,
    })
}

fn markdown(doc: &Value) -> String {
    let mut s = String::from(
        "# Access-control policy\n\nDefault: **deny**. A forbid policy overrides any grant. No grant crosses tenants unless a server is declared shared.\n\n## Roles\n\n",
    );
    for (role, r) in doc["roles"].as_object().into_iter().flatten() {
        let inherits: Vec<&str> = r["inherits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        s.push_str(&format!("### {role}\n\n"));
        if !inherits.is_empty() {
            s.push_str(&format!("Inherits: {}\n\n", inherits.join(", ")));
        }
        s.push_str("| grant | kind | via | verb class | verbs allowed | classification | conditions |\n|---|---|---|---|---|---|---|\n");
        for g in r["grants"].as_array().into_iter().flatten() {
            let cell = |v: &Value| match v {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                Value::Object(o) if o.is_empty() => "-".to_owned(),
                other => other.to_string().replace('|', "\\|"),
            };
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                cell(&g["ref"]),
                cell(&g["kind"]),
                cell(&g["via"]),
                cell(&g["verb"]),
                cell(&g["verbs_allowed"]),
                cell(&g["classification"]),
                cell(&g["conditions"])
            ));
        }
        s.push('\n');
    }
    s.push_str("## Servers\n\n| server | classification | tenant | shared |\n|---|---|---|---|\n");
    for (name, v) in doc["servers"].as_object().into_iter().flatten() {
        s.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            v["classification"].as_str().unwrap_or("-"),
            v["tenant"].as_str().unwrap_or("-"),
            v["shared"]
        ));
    }
    s.push_str("\n## Classification controls\n\n| level | step-up | max result bytes | redaction | enhanced audit |\n|---|---|---|---|---|\n");
    for (level, c) in doc["classification_controls"]
        .as_object()
        .into_iter()
        .flatten()
    {
        s.push_str(&format!(
            "| {level} | {} | {} | {} | {} |\n",
            if c["step_up"].is_null() {
                "-".to_owned()
            } else {
                c["step_up"].to_string()
            },
            c["max_result_bytes"],
            c["redaction"].as_str().unwrap_or("-"),
            c["enhanced_audit"]
        ));
    }
    s.push_str("\n## Other policies\n\n");
    for p in doc["policies"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "### {} ({})\n\n```cedar\n{}\n```\n\n",
            p["id"].as_str().unwrap_or(""),
            p["source"].as_str().unwrap_or(""),
            p["text"].as_str().unwrap_or("").trim_end()
        ));
    }
    s
}

/// Decision cost with `n_policies` policies (role grants over `n_tools` tools, plus the
/// built-in tenant rule) — one call, and filtering a list of every tool.
fn bench(n_policies: usize, n_tools: usize, decisions: usize) -> Result<()> {
    // Role r{i} grants ten tools; every tenth role is read-only with an argument condition.
    let mut roles = String::new();
    let grants = n_policies.saturating_sub(1).max(1);
    for i in 0..grants {
        let tools: Vec<String> = (0..10)
            .map(|k| format!("s{}.t{}", (i * 10 + k) % 10, (i * 10 + k) % n_tools))
            .collect();
        if i % 10 == 0 {
            roles.push_str(&format!(
                "r{i}: {{tools: [{}], verbs: [read], when: {{region: [APAC, EMEA]}}}}\n",
                tools.join(", ")
            ));
        } else {
            roles.push_str(&format!("r{i}: [{}]\n", tools.join(", ")));
        }
    }
    let spec = PolicySpec {
        roles: yaml_serde::from_str(&roles).context("bench roles")?,
        files: Vec::<PolicySource>::new(),
    };
    let engine = Engine::build(&spec)?;
    let subject = Subject {
        id: "bench".into(),
        tenant: Some("acme".into()),
        roles: vec!["r1".into(), "r10".into(), "r20".into()],
        method: "jwt".into(),
        ..Subject::default()
    };
    let targets: Vec<Target> = (0..n_tools)
        .map(|t| Target::Tool {
            server: format!("s{}", t % 10),
            original: format!("t{t}"),
            exposed: format!("s{}__t{t}", t % 10),
            classification: Classification::Internal,
            verb: Verb::Read,
            hints: Hints::default(),
            tenancy: Default::default(),
        })
        .collect();
    let mut args = Map::new();
    args.insert("region".into(), json!("APAC"));
    args.insert("query".into(), json!("select 1"));
    let controls = Controls::table(&BTreeMap::new());
    let sit = Situation {
        now: now(),
        arguments: Some(&args),
        ..Situation::default()
    };
    let pct = |v: &mut Vec<u64>, q: f64| {
        v.sort_unstable();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1000.0
    };
    // One call, prepared per request as the gateway does. First evaluation: every
    // principal is new (nothing memoized). Steady state: the same principal calls again.
    let mut first = Vec::with_capacity(decisions);
    let mut steady = Vec::with_capacity(decisions);
    let mut allowed = 0usize;
    for i in 0..decisions {
        let t = &targets[i % targets.len()];
        let fresh = Subject {
            id: format!("bench-{i}"),
            ..subject.clone()
        };
        let started = Instant::now();
        let p = engine.prepare(&fresh)?;
        let o = authorize(&engine, &p, &fresh, &controls, Action::CallTool, t, &sit);
        first.push(started.elapsed().as_nanos() as u64);
        allowed += usize::from(matches!(o, Outcome::Allow { .. }));
    }
    for _ in 0..2 {
        steady.clear();
        for i in 0..decisions {
            let t = &targets[i % targets.len()];
            let started = Instant::now();
            let p = engine.prepare(&subject)?;
            let o = authorize(&engine, &p, &subject, &controls, Action::CallTool, t, &sit);
            steady.push(started.elapsed().as_nanos() as u64);
            std::hint::black_box(o);
        }
    }
    println!(
        "policies {}  tools {n_tools}  decisions {decisions} ({allowed} allowed)",
        engine.len()
    );
    println!(
        "one decision, first evaluation:  p50 {:.1} µs  p99 {:.1} µs",
        pct(&mut first, 0.5),
        pct(&mut first, 0.99)
    );
    println!(
        "one decision, memoized:          p50 {:.2} µs  p99 {:.2} µs",
        pct(&mut steady, 0.5),
        pct(&mut steady, 0.99)
    );
    // A list: one prepared principal, every tool decided.
    let listing = Situation {
        listing: true,
        now: now(),
        ..Situation::default()
    };
    for (label, fresh) in [("first", true), ("memoized", false)] {
        let mut lists = Vec::new();
        for i in 0..10 {
            let who = Subject {
                id: if fresh {
                    format!("lister-{i}")
                } else {
                    "lister".into()
                },
                ..subject.clone()
            };
            let started = Instant::now();
            let p = engine.prepare(&who)?;
            let shown = targets
                .iter()
                .filter(|t| {
                    engine
                        .decide_prepared(&p, Action::CallTool, t, &listing)
                        .allowed()
                })
                .count();
            lists.push(started.elapsed().as_nanos() as u64);
            std::hint::black_box(shown);
        }
        println!(
            "filtering a list of {n_tools} tools, {label}: p50 {:.2} ms",
            pct(&mut lists, 0.5) / 1000.0
        );
    }
    Ok(())
}
