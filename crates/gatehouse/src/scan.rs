//! `gatehouse scan URL|COMMAND`: vet an MCP server before adding it. Connects to it the way
//! the gateway would (stdio command or Streamable HTTP URL), lists its tools, prompts,
//! resources and instructions, runs the list-time checks the gateway runs before exposing
//! a definition, and prints a report. Exits 1 when something would be quarantined.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gatehouse_proxy::Gateway;
use gatehouse_proxy::config::RawConfig;
use serde_json::json;

/// A progress bar on stderr.
fn bar(label: &str, done: usize, total: usize) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    eprint!(
        "\r{label:<12} [{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    if done >= total {
        eprintln!();
    }
    let _ = std::io::stderr().flush();
}

/// `--package npm:NAME@VERSION` (or `pypi:NAME==VERSION`): the package's hash from its
/// registry, and the upstream that runs it confined — its runner with only the network it
/// needs to fetch it (TCP to the registry's port), a scratch cache as its one writable
/// directory — checked against that hash before it starts, like any pinned upstream.
pub(crate) async fn package_upstream(
    spec: &str,
    registry: Option<&str>,
) -> Result<gatehouse_proxy::config::RawUpstream> {
    use gatehouse_proxy::config::{RawSandbox, RawSandboxNetwork, RawUpstream};
    let (eco, pkg) = spec
        .split_once(':')
        .context("--package npm:NAME@VERSION or pypi:NAME==VERSION")?;
    let (runner, registry) = match eco {
        "npm" => (
            "npx",
            registry.unwrap_or("https://registry.npmjs.org/").to_owned(),
        ),
        "pypi" => ("uvx", registry.unwrap_or("https://pypi.org/").to_owned()),
        _ => bail!("--package npm:NAME@VERSION or pypi:NAME==VERSION"),
    };
    anyhow::ensure!(
        gatehouse_proxy::config::packages::pinned(pkg),
        "`{pkg}`: name an exact version (npm:NAME@X.Y.Z, pypi:NAME==X.Y.Z)"
    );
    let (_, name, version) = gatehouse_proxy::config::packages::identify(runner, pkg)
        .context("a package name and version")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let meta_url = match eco {
        "npm" => format!(
            "{}/{}/{version}",
            registry.trim_end_matches('/'),
            name.replace('/', "%2f")
        ),
        _ => format!(
            "{}/pypi/{name}/{version}/json",
            registry.trim_end_matches('/')
        ),
    };
    let mut resp = http
        .get(&meta_url)
        .send()
        .await
        .with_context(|| format!("{meta_url}: no answer"))?;
    anyhow::ensure!(
        resp.status().is_success(),
        "{meta_url}: HTTP {}",
        resp.status()
    );
    let mut body = Vec::new();
    while let Some(c) = resp.chunk().await? {
        body.extend_from_slice(&c);
        anyhow::ensure!(body.len() <= 8 << 20, "{meta_url}: answer too large");
    }
    let meta: serde_json::Value = serde_json::from_slice(&body).context("registry answer")?;
    let integrity = match eco {
        "npm" => meta
            .pointer("/dist/integrity")
            .and_then(serde_json::Value::as_str)
            .context("the registry reports no integrity")?
            .to_owned(),
        _ => format!(
            "sha256:{}",
            meta["urls"][0]["digests"]["sha256"]
                .as_str()
                .context("the registry lists no file")?
        ),
    };
    let port = reqwest::Url::parse(&registry)?
        .port_or_known_default()
        .context("registry port")?;
    let cache = std::env::temp_dir().join(format!("gatehouse-scan-cache-{}", std::process::id()));
    std::fs::create_dir_all(&cache)?;
    let mut env = std::collections::BTreeMap::new();
    // Its one writable place serves as temporary directory too.
    env.insert("TMPDIR".to_owned(), cache.display().to_string());
    if eco == "npm" {
        env.insert("npm_config_registry".to_owned(), registry.clone());
        env.insert("npm_config_cache".to_owned(), cache.display().to_string());
        env.insert("npm_config_userconfig".to_owned(), "/dev/null".to_owned());
        env.insert("npm_config_update_notifier".to_owned(), "false".to_owned());
    } else {
        env.insert("UV_CACHE_DIR".to_owned(), cache.display().to_string());
    }
    let line = match eco {
        "npm" => format!("{name}@{version}"),
        _ => format!("{name}=={version}"),
    };
    eprintln!(
        "{spec}: pin it as\n    command: {runner}\n    args: [{}'{line}']\n    integrity: \"{integrity}\"",
        if eco == "npm" { "-y, " } else { "" }
    );
    Ok(RawUpstream {
        command: Some(runner.to_owned()),
        args: if eco == "npm" {
            vec!["-y".into(), line]
        } else {
            vec![line]
        },
        env,
        integrity: Some(integrity),
        sandbox: Some(RawSandbox {
            write: vec![cache.display().to_string()],
            network: Some(RawSandboxNetwork::Connect {
                connect: vec![port],
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub(crate) async fn run(
    upstream: gatehouse_proxy::config::RawUpstream,
    json_out: bool,
    timeout: Duration,
) -> Result<i32> {
    // Progress only where a person watches.
    let json_out_or_quiet = json_out || !std::io::stderr().is_terminal();
    let dir = std::env::temp_dir().join(format!("gatehouse-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("scratch directory")?;
    let mut raw = RawConfig {
        dev_mode: true,
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    raw.store = gatehouse_proxy::config::RawStore {
        sqlite: Some(dir.join("scan.db").display().to_string()),
        postgres: None,
    };
    // What was scanned, as the report names it: the URL, or the command line.
    let target = match (&upstream.url, &upstream.command) {
        (Some(u), _) => u.clone(),
        (None, Some(c)) => std::iter::once(c.as_str())
            .chain(upstream.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    raw.upstreams.insert("scanned".into(), upstream);
    let cfg = raw
        .validate(&|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("scan target")?;
    let gw = Gateway::start(cfg);
    let started = Instant::now();
    let mut tick = 0;
    while !gw.not_ready().is_empty() {
        if started.elapsed() > timeout {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "the server did not become ready within {}s",
                timeout.as_secs()
            );
        }
        if !json_out_or_quiet {
            tick += 1;
            eprint!("\rconnecting  {}", ".".repeat(tick % 30));
            let _ = std::io::stderr().flush();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !json_out_or_quiet {
        eprintln!("\rconnected in {} ms", started.elapsed().as_millis());
    }
    let lists = gw.upstream_lists("scanned").unwrap_or_default();
    let detection = gw
        .config()
        .detection
        .clone()
        .context("detection is off in the scan's own config")?;
    let mut progress = |done: usize, total: usize| {
        if !json_out_or_quiet {
            bar("checking", done, total);
        }
    };
    let mut reports = gatehouse_pipeline::pins::check_definitions(
        &detection.cascade,
        "scanned",
        &lists,
        &mut progress,
    );
    // What the server tells every client at initialize, which models read too.
    if let Some(text) = gw.upstream_instructions("scanned") {
        let v = serde_json::Value::String(text.clone());
        let found = gatehouse_pipeline::scan_strings(&detection.cascade, &v);
        reports.push(gatehouse_pipeline::pins::DefinitionReport {
            kind: "instructions",
            name: String::new(),
            findings: found
                .into_iter()
                .map(|(at, s)| {
                    let t = text.get(s.start..s.end).unwrap_or("").to_owned();
                    (at, s, t)
                })
                .collect(),
        });
    }
    let _ = std::fs::remove_dir_all(&dir);

    let level = gatehouse_policy::Classification::Internal;
    let quarantine = detection.descriptions(level);
    let verdict = |r: &gatehouse_pipeline::pins::DefinitionReport| {
        let worst = r.findings.iter().map(|(_, s, _)| s.severity).max();
        match quarantine.response(worst) {
            gatehouse_proxy::config::Response::Block => "quarantine",
            gatehouse_proxy::config::Response::Pass => "clean",
            _ => "flag",
        }
    };
    let held = reports
        .iter()
        .filter(|r| verdict(r) == "quarantine")
        .count();
    if json_out {
        let out: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "kind": r.kind,
                    "name": r.name,
                    "verdict": verdict(r),
                    "findings": r.findings.iter().map(|(at, s, t)| json!({
                        "rule": s.rule, "severity": s.severity.as_str(), "score": s.score,
                        "at": at, "start": s.start, "end": s.end, "text": t,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"target": target, "definitions": out, "quarantined": held})
            )?
        );
    } else {
        println!(
            "{} tools, {} prompts, {} resources, {} templates",
            lists.tools.len(),
            lists.prompts.len(),
            lists.resources.len(),
            lists.templates.len()
        );
        for r in &reports {
            let v = verdict(r);
            if v == "clean" {
                continue;
            }
            println!("{v:<10} {} {}", r.kind, r.name);
            for (at, s, text) in &r.findings {
                let excerpt: String = text.chars().take(70).collect();
                println!(
                    "           {:<8} {:<36} {at} {excerpt:?}",
                    s.severity.as_str(),
                    s.rule
                );
            }
        }
        let flagged = reports.iter().filter(|r| verdict(r) == "flag").count();
        println!(
            "{} definitions: {held} would be quarantined, {flagged} flagged, {} clean",
            reports.len(),
            reports.len() - held - flagged
        );
    }
    Ok(i32::from(held > 0))
}
