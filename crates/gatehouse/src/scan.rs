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

pub(crate) async fn run(target: &str, json_out: bool, timeout: Duration) -> Result<i32> {
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
    raw.upstreams
        .insert("scanned".into(), crate::raw_upstream(target)?);
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
    let mut reports = gatehouse_proxy::pins::check_definitions(
        &detection.cascade,
        "scanned",
        &lists,
        &mut progress,
    );
    // What the server tells every client at initialize, which models read too.
    if let Some(text) = gw.upstream_instructions("scanned") {
        let v = serde_json::Value::String(text.clone());
        let found = gatehouse_proxy::pipeline::scan_strings(&detection.cascade, &v);
        reports.push(gatehouse_proxy::pins::DefinitionReport {
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
    let verdict = |r: &gatehouse_proxy::pins::DefinitionReport| {
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
