//! The `gatehouse` binary: serve the gateway, validate config, run the demo upstream, bridge
//! stdio clients to a remote gateway, and benchmark.

mod approvals;
mod audit;
mod bench;
mod bench_auth;
mod bench_detect;
mod bench_load;

/// mimalloc without transparent huge pages, counted when `GATEHOUSE_COUNT_ALLOCATIONS` is
/// set (`gatehouse bench` reads allocations per call): `gatehouse_alloc`.
#[global_allocator]
static GLOBAL: gatehouse_alloc::Global = gatehouse_alloc::GLOBAL;

mod connect;
mod demo;
mod detect;
mod discover;
mod keys;
mod pins;
mod policy;
mod quickstart;
mod sbom;
mod scan;
mod secrets;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gatehouse_proxy::Config;
use gatehouse_proxy::config::{RawConfig, RawUpstream};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: the MCP security gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway from a config file, or (development mode) from --upstream flags.
    Serve {
        /// YAML config file; watched and reloaded on change.
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (development mode: loopback only).
        #[arg(long)]
        listen: Option<String>,
        /// NAME=COMMAND (stdio) or NAME=URL (Streamable HTTP); repeatable. Development mode.
        #[arg(long = "upstream", value_name = "NAME=TARGET")]
        upstreams: Vec<String>,
        /// Front the bundled demo server (and server-everything when npx is present).
        #[arg(long)]
        demo: bool,
    },
    /// Probe a running gateway's health endpoint: exit 0 when it answers 2xx within two
    /// seconds, 1 otherwise (a container health check that needs no shell or curl).
    Health {
        #[arg(default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Validate a config file offline; prints the first problem with its location.
    Check { config: PathBuf },
    /// Print the config file's JSON Schema.
    Schema,
    /// Manage the encrypted local secret store (`secret:NAME` references).
    Secrets {
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: PathBuf,
        #[command(subcommand)]
        command: secrets::SecretsCommand,
    },
    /// The audit record: verify its hash chains.
    Audit {
        /// The gateway's config (for the store); `verify` needs it.
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Held calls waiting for a person: list, show, approve, deny (through the gateway's
    /// approvals API, as yourself).
    Approvals {
        /// The gateway's base URL.
        #[arg(long, env = "GATEHOUSE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Your credential (an OAuth access token or API key); never the agent's.
        #[arg(long, env = "GATEHOUSE_TOKEN", hide_env_values = true)]
        token: String,
        /// The application your API key is bound to.
        #[arg(long, env = "GATEHOUSE_APP", default_value = "gatehouse-cli")]
        app: String,
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
    /// Tool and prompt pins: review what the gateway holds back (first seen, changed after
    /// pinning, or flagged as poisoned) and approve or reject it (admin API).
    Pins {
        /// The gateway's base URL.
        #[arg(long, env = "GATEHOUSE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The gateway's `admin_token`.
        #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        command: pins::PinsCommand,
    },
    /// Inventory the MCP servers this machine's clients use (Claude Desktop and Code, Cursor,
    /// VS Code, Windsurf, Zed, Continue, Cline, Codex CLI, Gemini CLI) and flag those that do
    /// not go through the gateway, with their risks. Read-only.
    Discover {
        /// The home directory to read (default: $HOME).
        #[arg(long)]
        home: Option<std::path::PathBuf>,
        /// Project directories whose own configs to read (default: the current one).
        #[arg(long = "project")]
        projects: Vec<std::path::PathBuf>,
        /// The gateway's MCP URL: servers reached through it are managed.
        #[arg(long)]
        gateway: Option<String>,
        /// Remote hosts servers may be reached at directly.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Print the JSON report (for fleet collection).
        #[arg(long)]
        json: bool,
        /// Instead: fingerprint MCP endpoints listening at `HOST:PORTS` (`127.0.0.1:3000-3010,8080`)
        /// by their answer to `initialize`.
        #[arg(long)]
        probe: Option<String>,
        /// Instead: plan (and with `--apply`, make) the changes that send every client's
        /// servers through the gateway (`--gateway` required).
        #[arg(long)]
        fix: bool,
        /// With `--fix`: write the changes (the originals are kept as `FILE.gatehouse-backup`).
        #[arg(long)]
        apply: bool,
        /// Also send the report to this gateway's admin API (`POST /admin/v1/inventory`).
        #[arg(long)]
        report_to: Option<String>,
        /// The gateway's `admin_token`, for `--report-to`.
        #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Print a CycloneDX 1.5 bill of materials of the MCP servers a config runs (components,
    /// with package URLs for npm and PyPI packages) and reaches (services).
    Sbom {
        /// The config file.
        config: std::path::PathBuf,
    },
    /// Vet an MCP server before adding it: list its tools, prompts and resources and run
    /// the checks the gateway runs before exposing them (poisoned descriptions, hidden
    /// Unicode, shadowing). Exits 1 if anything would be quarantined.
    Scan {
        /// A Streamable HTTP URL, or a command line that starts a stdio server.
        #[arg(required_unless_present = "package")]
        target: Option<String>,
        /// Instead: fetch and verify a package (`npm:NAME@X.Y.Z`, `pypi:NAME==X.Y.Z`) and vet
        /// it running in the sandbox; prints the pinned config lines.
        #[arg(long, conflicts_with = "target")]
        package: Option<String>,
        /// The registry for `--package` (default: the public npm registry or PyPI).
        #[arg(long, requires = "package")]
        registry: Option<String>,
        /// Print JSON instead of a report.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for the server.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Run the detection cascade over JSON lines from stdin (`{"index": …, "text": …}`, or
    /// `{"index": …, "tool": {…}}` with `--kind description`); one line out per input, in
    /// order: `{"index", "action", "findings": [{stage, rule, severity, score, start, end, at}]}`.
    Detect {
        /// Where the texts sit: the place decides the action.
        #[arg(long, value_enum, default_value = "result")]
        kind: detect::Kind,
        /// Use this config's detection settings (rules, model, thresholds, arbiter).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The data classification the texts come from (thresholds are per level).
        #[arg(long, default_value = "internal", value_parser = parse_level)]
        classification: gatehouse_policy::Classification,
        /// Worker threads (default: every core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Authorization policy: explain a decision, test a table, export for auditors.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Manage API keys (create, list, revoke, rotate).
    Keys {
        /// The gateway's config file (for the store path and the pepper).
        #[arg(short, long, env = "GATEHOUSE_CONFIG")]
        config: PathBuf,
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The bundled demo MCP server (stdio): a seeded SQLite database and a few documents.
    DemoServer {
        /// Database file to use; a fresh seeded copy in a temporary directory by default.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Newest protocol version to accept (e.g. 2025-03-26), to play an older server.
        #[arg(long)]
        max_version: Option<String>,
    },
    /// Bridge a stdio MCP client (desktop apps) to a gateway URL.
    Connect {
        url: String,
        /// Extra header sent with every request, e.g. `Authorization=Bearer …`.
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
    },
    /// Measure added latency and throughput of tools/call through the gateway vs direct;
    /// `gatehouse bench detect` measures the detection cascade instead.
    Bench {
        /// `detect`: the cascade's cost per 512-token text and stage, and the share of
        /// texts that reach its costlier stages.
        #[arg(value_parser = ["detect"])]
        what: Option<String>,
        /// With `detect`: JSON lines with `text` (default: Gatehouse's own documentation).
        #[arg(long)]
        texts: Option<PathBuf>,
        /// With `detect`: use this config's detection settings.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sequential calls for the latency figures.
        #[arg(long, default_value_t = 5000)]
        calls: usize,
        /// Concurrent connections for the throughput figures.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds of load for each throughput figure.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Instead: a soak of this many minutes through the full pipeline at
        /// `--connections`, printing the gateway's memory every `--sample` seconds.
        #[arg(long)]
        soak: Option<u64>,
        /// Seconds between memory samples in a soak.
        #[arg(long, default_value_t = 30)]
        sample: u64,
        /// Only the reference harness's rows (direct, no config, production config).
        #[arg(long)]
        reference: bool,
        /// Fail when the reference rows' gateway CPU per call exceeds these bounds in µs,
        /// `NO_CONFIG,PRODUCTION` (the CI regression guard).
        #[arg(long, value_name = "NO_CONFIG,PRODUCTION", value_parser = parse_bounds)]
        max_cpu: Option<(f64, f64)>,
        /// Send 1 KB of English prose instead of the harness's repeated word (detection's
        /// cost on text as tools return it).
        #[arg(long)]
        prose: bool,
    },
}

fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Builds a development-mode config from flags.
fn dev_config(listen: Option<String>, upstreams: &[String], demo: bool) -> Result<Config> {
    let mut raw = RawConfig {
        listen,
        dev_mode: true,
        // The record is committed before each answer but not fsynced: development mode
        // trades power-cut durability for latency (one fsync per write call otherwise).
        audit: Some(gatehouse_proxy::config::RawAudit {
            fsync: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    if demo {
        let exe = std::env::current_exe().context("locating the gatehouse executable")?;
        raw.upstreams.insert(
            "demo".into(),
            RawUpstream {
                command: Some(exe.display().to_string()),
                args: vec!["demo-server".into()],
                ..Default::default()
            },
        );
        // Demo principals: the seed's roles, reachable with the API keys printed at start.
        raw.authorization = Some(quickstart::demo_authorization());
        quickstart::demo_controls(&mut raw)?;
        raw.api_keys = Some(gatehouse_proxy::config::RawApiKeys {
            pepper: quickstart::random_pepper()?,
            postgres: None,
        });
        raw.store = gatehouse_proxy::config::RawStore {
            sqlite: Some(
                std::env::temp_dir()
                    .join(format!("gatehouse-demo-{}.db", std::process::id()))
                    .display()
                    .to_string(),
            ),
            postgres: None,
        };
        if which("npx").is_some() {
            raw.upstreams.insert(
                "everything".into(),
                RawUpstream {
                    command: Some("npx".into()),
                    args: vec![
                        "-y".into(),
                        // Pinned: the version the test suite runs, and its hash.
                        "@modelcontextprotocol/server-everything@2026.8.31".into(),
                    ],
                    integrity: Some("sha512-5U3OZh8Xq0Li4nA26l6uNvV9/1suMDuWSn+NjLZIhzinhMY6N3A4DCrxVecBGPf2PsNFKTEv5krxGPRwzxc7jQ==".into()),
                    ..Default::default()
                },
            );
        }
    }
    for u in upstreams {
        let Some((name, target)) = u.split_once('=') else {
            bail!("--upstream takes NAME=COMMAND or NAME=URL, got `{u}`")
        };
        let up = raw_upstream(target)?;
        raw.upstreams.insert(name.to_owned(), up);
    }
    raw.validate(&|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// An upstream from a command line (stdio) or a URL (Streamable HTTP).
pub(crate) fn raw_upstream(target: &str) -> Result<RawUpstream> {
    Ok(
        if target.starts_with("http://") || target.starts_with("https://") {
            RawUpstream {
                url: Some(target.to_owned()),
                ..Default::default()
            }
        } else {
            let mut words = target.split_whitespace().map(str::to_owned);
            let command = words.next().context("empty upstream command")?;
            RawUpstream {
                command: Some(command),
                args: words.collect(),
                ..Default::default()
            }
        },
    )
}

/// `gatehouse health`: one GET, two seconds at most.
async fn health(url: &str) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()?;
    let status = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?
        .status();
    if !status.is_success() {
        bail!("{url}: HTTP {status}");
    }
    println!("{url}: {status}");
    Ok(())
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(cmd))
            .find(|f| f.is_file())
    })
}

fn main() -> Result<()> {
    gatehouse_alloc::configure();
    if std::env::var_os("GATEHOUSE_COUNT_ALLOCATIONS").is_some() {
        gatehouse_alloc::enable();
    }
    // A confined stdio upstream starts here, before anything else runs (one thread):
    // `gatehouse __sandbox PROFILE -- COMMAND ARGS…` confines itself and executes COMMAND.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(gatehouse_transport::upstream::sandbox::LAUNCHER) {
        let (Some(profile), Some("--"), Some(command)) =
            (argv.get(2), argv.get(3).map(String::as_str), argv.get(4))
        else {
            eprintln!("gatehouse: usage: __sandbox PROFILE -- COMMAND [ARGS…]");
            std::process::exit(126);
        };
        let why =
            gatehouse_transport::upstream::sandbox::exec_confined(profile, command, &argv[5..]);
        eprintln!("gatehouse: {why}");
        std::process::exit(126);
    }
    // The relay a confined server allowed some hosts reaches its egress proxy through,
    // started by the launcher inside the server's network namespace.
    if argv.get(1).map(String::as_str) == Some(gatehouse_transport::upstream::egress::RELAY) {
        let (Some(socket), Some(port)) = (argv.get(2), argv.get(3)) else {
            eprintln!("gatehouse: usage: __egress_relay SOCKET PORT");
            std::process::exit(126);
        };
        eprintln!(
            "gatehouse: {}",
            gatehouse_transport::upstream::egress::relay(socket, port)
        );
        std::process::exit(126);
    }
    // No transparent huge pages: on a gateway whose heap is mostly small short-lived
    // buffers they held about 40 MB of resident memory for no measurable CPU gain
    // (docs/benchmarks.md). mimalloc is built not to ask for them (`gatehouse_alloc`);
    // this also refuses them where the system gives them unasked, and is inherited by
    // stdio upstreams we start.
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("gatehouse: transparent huge pages left on: {e}");
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Health { url } => runtime()?.block_on(health(&url)),
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} upstreams, {} virtual servers, {})",
                    config.display(),
                    c.upstreams.len(),
                    c.virtual_servers.len(),
                    match &c.authorization {
                        Some(a) => format!("{} policies", a.engine.len()),
                        None => "no authorization".into(),
                    }
                );
                if c.authorization.is_none() && !c.dev_mode {
                    eprintln!(
                        "warning: no `authorization` section: every authenticated caller may call every tool in its scope"
                    );
                }
                // Each command upstream's confinement, and whether this kernel enforces it.
                for u in &c.upstreams {
                    let gatehouse_proxy::config::TransportSpec::Stdio { sandbox, .. } =
                        &u.transport
                    else {
                        continue;
                    };
                    match sandbox {
                        Some(s) => {
                            println!(
                                "  {}: sandboxed: {}",
                                u.name,
                                gatehouse_transport::upstream::sandbox::describe(s)
                            );
                            if let Err(e) = gatehouse_transport::upstream::sandbox::enforceable(s) {
                                eprintln!(
                                    "warning: {}: this kernel cannot enforce the sandbox ({e}): the server will not start",
                                    u.name
                                );
                            }
                        }
                        None => println!(
                            "  {}: not sandboxed (it runs with the gateway's own rights)",
                            u.name
                        ),
                    }
                }
                Ok(())
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                std::process::exit(1);
            }
        },
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&gatehouse_proxy::config::json_schema())?
            );
            Ok(())
        }
        Command::Keys { config, command } => keys::run(&config, command),
        Command::Policy { command } => policy::run(command),
        Command::Sbom { config } => sbom::run(&config),
        Command::Approvals {
            url,
            token,
            app,
            command,
        } => runtime()?.block_on(approvals::run(
            approvals::Target { url, token, app },
            command,
        )),
        Command::Audit { config, command } => audit::run(config.as_deref(), command),
        Command::Discover {
            home,
            projects,
            gateway,
            allow_hosts,
            json,
            probe,
            report_to,
            token,
            fix,
            apply,
        } => match probe {
            None if fix => {
                let gateway = gateway.ok_or_else(|| {
                    anyhow::anyhow!("--fix needs --gateway URL: where clients should go")
                })?;
                let home = home
                    .or_else(|| std::env::var_os("HOME").map(std::path::PathBuf::from))
                    .ok_or_else(|| anyhow::anyhow!("no home directory: pass --home"))?;
                let projects = if projects.is_empty() {
                    vec![std::env::current_dir()?]
                } else {
                    projects
                };
                let plan = discover::fix(&home, &projects, &gateway, apply)?;
                println!("{}", serde_json::to_string_pretty(&plan)?);
                if !apply && plan["changes"].as_array().is_some_and(|c| !c.is_empty()) {
                    eprintln!("dry run: nothing written; --apply makes these changes");
                }
                Ok(())
            }
            Some(spec) => {
                let r = runtime()?.block_on(discover::probe(&spec))?;
                println!("{}", serde_json::to_string_pretty(&r)?);
                Ok(())
            }
            None => {
                let report = discover::run(home, projects, gateway, allow_hosts, json)?;
                match report_to {
                    Some(url) => {
                        let token = token.ok_or_else(|| {
                            anyhow::anyhow!("--report-to needs the admin token (--token or GATEHOUSE_ADMIN_TOKEN)")
                        })?;
                        runtime()?.block_on(discover::send(&url, &token, &report))
                    }
                    None => Ok(()),
                }
            }
        },
        Command::Scan {
            target,
            package,
            registry,
            json,
            timeout,
        } => {
            let rt = runtime()?;
            let upstream = match (&package, &target) {
                (Some(p), _) => rt.block_on(scan::package_upstream(p, registry.as_deref()))?,
                (None, Some(t)) => raw_upstream(t)?,
                (None, None) => bail!("name a server to scan, or --package"),
            };
            let code = rt.block_on(scan::run(
                upstream,
                json,
                std::time::Duration::from_secs(timeout),
            ))?;
            std::process::exit(code)
        }
        Command::Pins {
            url,
            token,
            command,
        } => runtime()?.block_on(pins::run(&url, &token, command)),
        Command::Secrets { config, command } => secrets::run(&config, command),
        Command::DemoServer { db, max_version } => {
            let max = match max_version {
                Some(v) => Some(
                    gatehouse_protocol::ProtocolVersion::parse(&v)
                        .with_context(|| format!("unknown protocol version {v}"))?,
                ),
                None => None,
            };
            demo::run(db, max)
        }
        Command::Connect { url, headers } => runtime()?.block_on(connect::run(url, headers)),
        Command::Detect {
            kind,
            config,
            classification,
            threads,
        } => {
            init_logging(false, "warn");
            runtime()?.block_on(detect::run(kind, config, classification, threads))
        }
        Command::Bench {
            what: Some(_),
            texts,
            config,
            ..
        } => bench_detect::run(texts, config),
        Command::Bench {
            calls,
            connections,
            seconds,
            soak,
            sample,
            reference,
            max_cpu,
            prose,
            ..
        } => {
            init_logging(false, "warn");
            match soak {
                Some(minutes) => runtime()?.block_on(bench::soak(minutes, connections, sample)),
                None => runtime()?.block_on(bench::run(bench::Options {
                    calls,
                    conns: connections,
                    secs: seconds,
                    reference_only: reference,
                    max_cpu,
                    prose,
                })),
            }
        }
        Command::Serve {
            config,
            listen,
            upstreams,
            demo,
        } => {
            let (cfg, path) = match &config {
                Some(p) => {
                    if !upstreams.is_empty() || demo || listen.is_some() {
                        bail!(
                            "--upstream, --demo and --listen are for development mode; put them in the config file"
                        );
                    }
                    (
                        Config::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                        Some(p.clone()),
                    )
                }
                None => (dev_config(listen, &upstreams, demo)?, None),
            };
            init_logging(cfg.log_json, &cfg.log_level);
            if cfg.dev_mode {
                let (keys, links) = if demo {
                    (quickstart::demo_keys(&cfg)?, quickstart::demo_links(&cfg))
                } else {
                    (Vec::new(), Vec::new())
                };
                quickstart::banner(&cfg, &keys, &links);
            }
            runtime()?
                .block_on(gatehouse_proxy::serve(cfg, path, gatehouse_control::start))
                .context("serving")
        }
    }
}

/// `A,B` in µs, both positive.
fn parse_bounds(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or("two bounds in µs: NO_CONFIG,PRODUCTION")?;
    let num = |x: &str| -> Result<f64, String> {
        x.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0)
            .ok_or_else(|| format!("`{x}` is not a positive number of µs"))
    };
    Ok((num(a)?, num(b)?))
}

fn parse_level(s: &str) -> Result<gatehouse_policy::Classification, String> {
    gatehouse_policy::Classification::ALL
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| format!("{s}: expected public, internal, confidential or restricted"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
