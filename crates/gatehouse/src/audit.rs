//! `gatehouse audit`: verify the hash chains of the audit record.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Subcommand;
use gatehouse_audit::{AuditStore, verify_chain, verify_checkpoints};
use gatehouse_proxy::Config;
use gatehouse_store::SqliteAudit;

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
    },
}

/// Group commit, measured: `concurrency` tasks each record events durably (waiting for
/// the commit) until `events` are committed.
pub(crate) async fn bench(events: u64, concurrency: u64) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    let dir = std::env::temp_dir().join(format!("gatehouse-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.db");
    let store = Arc::new(SqliteAudit::open(&path)?);
    // Checkpoints as a configured gateway signs them (every 1000 events).
    let (seed, _) = gatehouse_audit::Signer::generate().context("key")?;
    let signer = gatehouse_audit::Signer::from_seed(&seed).context("key")?;
    let writer = gatehouse_proxy::audit::AuditWriter::start(
        store.clone(),
        Some(gatehouse_proxy::audit::Checkpoints {
            signer,
            every: 1000,
        }),
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (writer, next) = (writer.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < events {
                let e = gatehouse_audit::AuditEvent {
                    v: gatehouse_audit::SCHEMA_VERSION,
                    kind: Some(gatehouse_audit::EventKind::Request),
                    time_ms: 1,
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
    let links = store.links("default")?;
    let verified = verify_chain(&links)
        .map_err(|t| anyhow::anyhow!("chain broken: {t}"))?
        .0;
    println!(
        "audit bench: {} durable events, {concurrency} concurrent callers, SQLite WAL synchronous=FULL",
        lat.len()
    );
    println!("  throughput  {:>10.0} events/s", lat.len() as f64 / secs);
    println!("  commit wait p50 {} µs   p99 {} µs", p(0.5), p(0.99));
    println!("  chain       {verified} records verified");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
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
    } = cmd
    {
        return tokio::runtime::Runtime::new()?.block_on(bench(events, concurrency));
    }
    if let AuditCommand::Keygen = cmd {
        let (seed, public) = gatehouse_audit::Signer::generate().context("no randomness")?;
        println!("signing_key (seed, secret): {}", B64.encode(seed));
        println!("public_key: {}", B64.encode(public));
        return Ok(());
    }
    let config = config.context("--config is required")?;
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    match cmd {
        AuditCommand::Verify { public_key } => {
            let public_key = public_key
                .map(|k| B64.decode(k.trim()).context("--public-key is not base64"))
                .transpose()?;
            let store = SqliteAudit::open(&cfg.store_path)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let mut broken = 0;
            let chains = store.chains()?;
            for chain in &chains {
                let links = store.links(chain)?;
                match verify_chain(&links) {
                    Ok((n, head)) => {
                        let signed = match &public_key {
                            None => Ok(String::new()),
                            Some(k) => verify_checkpoints(&links, &store.checkpoints(chain)?, k)
                                .map(|n| format!(", {n} signed checkpoints match")),
                        };
                        match signed {
                            Ok(s) => println!("chain {chain}: {n} records intact{s}, head {head}"),
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
        } => {
            let store = SqliteAudit::open(&cfg.store_path)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let rows = store.query(&gatehouse_store::AuditQuery {
                tenant,
                principal,
                target,
                status,
                since_ms,
                until_ms,
                limit,
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
    }
}
