//! `gatehouse audit`: verify the hash chains of the audit record.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Subcommand;
use gatehouse_audit::{AuditStore, verify_chain, verify_chain_from, verify_checkpoints_from};
use gatehouse_proxy::Config;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every tenant's chain; names the first altered, deleted, inserted or
    /// reordered record and exits 1 if any chain is broken. With the public key, also
    /// checks the signed checkpoints (catching a chain rewritten with recomputed hashes,
    /// or cut short).
    Verify {
        /// The audit key's public half (base64), as `keygen` printed it.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Records matching every filter given, oldest first, as JSON lines or CSV.
    Query {
        /// The tenant's chain (`default` for principals without a tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        principal: Option<String>,
        /// Tool, prompt or resource.
        #[arg(long)]
        target: Option<String>,
        /// `ok`, `denied`, `error`, `unknown_tool`.
        #[arg(long)]
        status: Option<String>,
        /// Milliseconds since the epoch, inclusive.
        #[arg(long)]
        since_ms: Option<u64>,
        #[arg(long)]
        until_ms: Option<u64>,
        #[arg(long, default_value_t = 10_000)]
        limit: u64,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// A data subject's identifier (email, phone, card, national ID…): only the events
        /// whose arguments or results involved it, found by its keyed digest (the GDPR
        /// access report). The value itself is never stored.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Retention: remove records older than DAYS, per chain up to its newest signed
    /// checkpoint among them and never past what a configured sink has not shipped. The
    /// rest still verifies from the checkpointed anchor.
    Prune {
        #[arg(long)]
        older_than_days: u64,
    },
    /// Export the signed checkpoints (JSON lines) for anchoring outside the gateway's
    /// host (a transparency log, a WORM bucket, a ticket).
    Checkpoints {
        #[arg(long)]
        chain: Option<String>,
    },
    /// Make an audit signing key: prints the seed (for `audit.signing_key`, keep it
    /// secret) and the public key (for `verify`, keep it off the gateway's host too).
    Keygen,
    /// Durable events per second through the group-commit writer into a scratch SQLite
    /// file, with CONCURRENCY callers each waiting for its commit.
    Bench {
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 256)]
        concurrency: u64,
        /// Measure a PostgreSQL store instead (a connection string); the events go to a
        /// chain of their own (`bench-PID`).
        #[arg(long)]
        postgres: Option<String>,
    },
}

/// Group commit, measured: `concurrency` tasks each record events durably (waiting for
/// the commit) until `events` are committed.
pub(crate) async fn bench(events: u64, concurrency: u64, postgres: Option<String>) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    let dir = std::env::temp_dir().join(format!("gatehouse-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.db");
    let store = Arc::new(gatehouse_store::AnyAudit::open(&path, postgres.as_deref())?);
    let tenant = if postgres.is_some() {
        format!("bench-{}", std::process::id())
    } else {
        String::new()
    };
    // Checkpoints as a configured gateway signs them (every 1000 events).
    let (seed, _) = gatehouse_audit::Signer::generate().context("key")?;
    let signer = gatehouse_audit::Signer::from_seed(&seed).context("key")?;
    let writer = gatehouse_pipeline::audit::AuditWriter::start(
        store.clone(),
        Some(gatehouse_pipeline::audit::Checkpoints {
            signer,
            every: 1000,
        }),
        true,
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (writer, next, tenant) = (writer.clone(), next.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < events {
                let e = gatehouse_audit::AuditEvent {
                    v: gatehouse_audit::SCHEMA_VERSION,
                    kind: Some(gatehouse_audit::EventKind::Request),
                    time_ms: 1,
                    tenant: tenant.clone(),
                    principal: "bench/user".into(),
                    method: "tools/call".into(),
                    target: "db__read_database".into(),
                    status: "ok".into(),
                    args_digest: "0".repeat(64),
                    ..Default::default()
                };
                let t = Instant::now();
                writer.record(e, true).await?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            Ok::<_, gatehouse_audit::AuditError>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))];
    let chain = if tenant.is_empty() {
        "default".to_owned()
    } else {
        tenant.clone()
    };
    let reader = store.clone();
    // The PostgreSQL client is synchronous: never on the async threads.
    let links = tokio::task::spawn_blocking(move || reader.links(&chain)).await??;
    let verified = verify_chain(&links)
        .map_err(|t| anyhow::anyhow!("chain broken: {t}"))?
        .0;
    println!(
        "audit bench: {} durable events, {concurrency} concurrent callers, {}",
        lat.len(),
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite WAL synchronous=FULL"
        }
    );
    println!("  throughput  {:>10.0} events/s", lat.len() as f64 / secs);
    println!("  commit wait p50 {} µs   p99 {} µs", p(0.5), p(0.99));
    println!("  chain       {verified} records verified");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading
/// `=`, `+`, `-`, `@`, tab or carriage return (OWASP's list) is prefixed with `'` so
/// spreadsheets do not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub(crate) fn run(config: Option<&Path>, cmd: AuditCommand) -> Result<()> {
    if let AuditCommand::Bench {
        events,
        concurrency,
        postgres,
    } = cmd
    {
        return tokio::runtime::Runtime::new()?.block_on(bench(events, concurrency, postgres));
    }
    if let AuditCommand::Keygen = cmd {
        let (seed, public) = gatehouse_audit::Signer::generate().context("no randomness")?;
        println!("signing_key (seed, secret): {}", B64.encode(seed));
        println!("public_key: {}", B64.encode(public));
        return Ok(());
    }
    let config = config.context("--config is required")?;
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let postgres = cfg.postgres_for(gatehouse_proxy::config::StoreKind::Audit);
    match cmd {
        AuditCommand::Verify { public_key } => {
            let public_key = public_key
                .map(|k| B64.decode(k.trim()).context("--public-key is not base64"))
                .transpose()?;
            let store = gatehouse_store::AnyAudit::open(&cfg.store_path, postgres)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let mut broken = 0;
            let chains = store.chains()?;
            for chain in &chains {
                let links = store.links(chain)?;
                let anchor = store.anchor(chain)?;
                match verify_chain_from(&links, anchor.as_ref()) {
                    Ok((n, head)) => {
                        let signed = match &public_key {
                            None => Ok(String::new()),
                            Some(k) => verify_checkpoints_from(
                                &links,
                                &store.checkpoints(chain)?,
                                k,
                                anchor.as_ref(),
                            )
                            .map(|n| format!(", {n} signed checkpoints match")),
                        };
                        let pruned = anchor.as_ref().map_or(String::new(), |a| {
                            format!(
                                " (records 1-{} pruned; the chain resumes from a checkpointed anchor)",
                                a.seq
                            )
                        });
                        match signed {
                            Ok(s) => println!(
                                "chain {chain}: {n} records intact{s}, head {head}{pruned}"
                            ),
                            Err(e) => {
                                broken += 1;
                                println!("chain {chain}: BROKEN at {e}");
                            }
                        }
                    }
                    Err(t) => {
                        broken += 1;
                        println!("chain {chain}: BROKEN at {t}");
                    }
                }
            }
            if chains.is_empty() {
                println!("no audit records in {}", cfg.store_path.display());
            }
            if broken > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::Query {
            tenant,
            principal,
            target,
            status,
            since_ms,
            until_ms,
            limit,
            format,
            subject,
        } => {
            let subject = match subject {
                None => None,
                Some(v) => Some(
                    gatehouse_pipeline::gateway::subject_key(&cfg)
                        .context("no subject index: set audit.subject_key (or session.key)")?
                        .digest(&v),
                ),
            };
            let store = gatehouse_store::AnyAudit::open(&cfg.store_path, postgres)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let rows = store.query(&gatehouse_store::AuditQuery {
                tenant,
                principal,
                target,
                status,
                since_ms,
                until_ms,
                limit,
                subject,
                ..Default::default()
            })?;
            const COLUMNS: [&str; 12] = [
                "time_ms",
                "kind",
                "tenant",
                "principal",
                "method",
                "target",
                "upstream",
                "status",
                "rule",
                "policies",
                "classification",
                "correlation",
            ];
            if format == "csv" {
                println!("chain,seq,{}", COLUMNS.join(","));
            }
            for (chain, seq, body) in rows {
                if format == "jsonl" {
                    println!(
                        "{{\"chain\":{},\"seq\":{seq},\"event\":{body}}}",
                        serde_json::to_string(&chain)?
                    );
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&body)?;
                let cell = |k: &str| {
                    let s = match &v[k] {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Array(a) => a
                            .iter()
                            .filter_map(serde_json::Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => other.to_string(),
                    };
                    csv_field(&s)
                };
                let cells: Vec<String> = COLUMNS.iter().map(|c| cell(c)).collect();
                println!("{},{seq},{}", csv_field(&chain), cells.join(","));
            }
            Ok(())
        }
        AuditCommand::Prune { older_than_days } => {
            let store = gatehouse_store::AnyAudit::open(&cfg.store_path, postgres)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let sinks: Vec<String> = cfg
                .audit
                .as_ref()
                .map(|a| a.sinks.iter().map(|s| s.name.clone()).collect())
                .unwrap_or_default();
            let cutoff = gatehouse_pipeline::audit::now_ms()
                .saturating_sub(older_than_days.saturating_mul(86_400_000));
            let pruned = store.prune(cutoff, &sinks)?;
            if pruned.is_empty() {
                println!(
                    "nothing to prune (no signed checkpoint older than the cutoff, or sinks behind)"
                );
            }
            for (chain, upto) in pruned {
                println!("chain {chain}: records 1-{upto} pruned");
            }
            Ok(())
        }
        AuditCommand::Checkpoints { chain } => {
            let store = gatehouse_store::AnyAudit::open(&cfg.store_path, postgres)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let chains = match chain {
                Some(c) => vec![c],
                None => store.chains()?,
            };
            for c in chains {
                for cp in store.checkpoints(&c)? {
                    println!("{}", serde_json::to_string(&cp)?);
                }
            }
            Ok(())
        }
        AuditCommand::Bench { .. } | AuditCommand::Keygen => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        // Tab and carriage return start formulas in some spreadsheets too.
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
    }
}
