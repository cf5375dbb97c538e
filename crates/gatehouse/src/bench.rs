//! `gatehouse bench`: added latency and throughput of `tools/call` through the gateway,
//! measured beside direct calls to the same upstream in one run. The upstream is a minimal
//! Streamable HTTP echo server in this process; the gateway runs as a child process.
//! Its first rows are the reference harness's (`../shared/bench/run`): a 1 KB call of a
//! tool without annotations, direct, through `serve --upstream` and through the
//! production config (API key, 100 Cedar grants, a rate limit, default controls); with
//! `--max-cpu` it fails when either gateway's CPU per call exceeds its bound (the CI guard).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_load::{
    PROSE, Target, argument_kind, call, latency, load, start_echo, throughput,
};

fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn proc_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Gateway {
    child: tokio::process::Child,
    pid: u32,
    target: Arc<Target>,
}

/// Starts `gatehouse serve` with `args`, waits until ready and opens a session.
/// With `count`, the gateway counts its allocations (`GATEHOUSE_COUNT_ALLOCATIONS`).
async fn spawn_gateway(
    port: u16,
    args: &[String],
    bearer: Option<String>,
    count: bool,
) -> Result<Gateway> {
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    if count {
        cmd.env("GATEHOUSE_COUNT_ALLOCATIONS", "1");
    }
    let child = cmd
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the gateway")?;
    let pid = child.id().context("gateway pid")?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !ready {
        bail!("gateway did not become ready");
    }
    let mut init = client
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#);
    if let Some(b) = &bearer {
        init = init.header("authorization", format!("Bearer {b}"));
    }
    let init = init.send().await?;
    if !init.status().is_success() {
        bail!(
            "initialize through the gateway failed: HTTP {}",
            init.status()
        );
    }
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Gateway {
        child,
        pid,
        target: Arc::new(Target {
            url: format!("{base}/mcp"),
            session,
            bearer,
        }),
    })
}

/// Direct-call figures the gateway runs are compared with.
#[derive(Clone, Copy)]
struct Direct {
    p50: Duration,
    p99: Duration,
    rate: f64,
}

/// One gateway's figures, as the reference harness prints them.
struct Row {
    added_p50_us: f64,
    added_p99_us: f64,
    share: f64,
    cpu_us: Option<f64>,
    rss_mb: Option<f64>,
}

/// Latency and throughput through one gateway, with its CPU and memory.
async fn measure(
    label: &str,
    gw: &mut Gateway,
    tool: &'static str,
    (calls, conns, secs): (usize, usize, u64),
    direct: Direct,
) -> Result<Row> {
    let client = reqwest::Client::new();
    let (g50, g99) = latency(&client, &gw.target, tool, calls).await?;
    let cpu0 = proc_cpu_ticks(gw.pid);
    let started = Instant::now();
    let gt = throughput(gw.target.clone(), tool, conns, secs).await?;
    let cpu1 = proc_cpu_ticks(gw.pid);
    let total_calls = gt * started.elapsed().as_secs_f64();
    let row = Row {
        added_p50_us: (g50.as_secs_f64() - direct.p50.as_secs_f64()) * 1e6,
        added_p99_us: (g99.as_secs_f64() - direct.p99.as_secs_f64()) * 1e6,
        share: gt / direct.rate,
        // Clock ticks are 1/100 s on Linux.
        cpu_us: cpu0
            .zip(cpu1)
            .map(|(a, b)| (b - a) as f64 * 10_000.0 / total_calls.max(1.0)),
        rss_mb: proc_rss_kb(gw.pid).map(|kb| kb as f64 / 1024.0),
    };
    println!("{label}");
    println!(
        "  latency     p50 {:>8.1} µs   p99 {:>8.1} µs",
        g50.as_secs_f64() * 1e6,
        g99.as_secs_f64() * 1e6
    );
    println!(
        "  added       p50 {:>8.1} µs   p99 {:>8.1} µs",
        row.added_p50_us, row.added_p99_us
    );
    println!(
        "  throughput  {gt:>10.0} calls/s   ratio {:.2}x of direct",
        row.share
    );
    if let Some(cpu) = row.cpu_us {
        println!("  gateway CPU {cpu:>10.1} µs per call");
    }
    if let Some(mb) = row.rss_mb {
        println!("  gateway RSS {mb:>10.1} MB after load");
    }
    let _ = gw.child.kill().await;
    Ok(row)
}

/// Direct calls: latency sequentially, then throughput on `conns` connections.
async fn direct(
    url: &str,
    tool: &'static str,
    (calls, conns, secs): (usize, usize, u64),
) -> Result<Direct> {
    let target = Arc::new(Target {
        url: url.to_owned(),
        session: None,
        bearer: None,
    });
    let (p50, p99) = latency(&reqwest::Client::new(), &target, tool, calls).await?;
    let rate = throughput(target, tool, conns, secs).await?;
    println!("direct ({tool})");
    println!(
        "  latency     p50 {:>8.1} µs   p99 {:>8.1} µs",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    println!("  throughput  {rate:>10.0} calls/s");
    Ok(Direct { p50, p99, rate })
}

/// `gatehouse serve --upstream echo=…`: development mode, no config file.
async fn dev_gateway(echo_url: &str, count: bool) -> Result<Gateway> {
    let port = free_port()?;
    let args = [
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--upstream".to_owned(),
        format!("echo={echo_url}"),
    ];
    spawn_gateway(port, &args, None, count).await
}

/// The reference harness's production config: API keys, 100 Cedar role grants, a rate
/// limit, and every default control; returns the gateway with a key for role `r1`.
async fn production_gateway(dir: &std::path::Path, echo_url: &str, count: bool) -> Result<Gateway> {
    let port = free_port()?;
    let cfg = dir.join("production.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{port}\napi_keys: {{pepper: \"{pepper}\"}}\nstore: {{sqlite: {store}}}\nupstreams:\n  echo: {{url: \"{echo_url}\"}}\n{grants}rate_limits:\n  rules:\n    - {{name: calls, per: principal, methods: [tools/call], requests: 100000000, per_secs: 1, burst: 1000000}}\n",
            pepper = crate::quickstart::random_pepper()?,
            store = dir.join("production.db").display(),
            grants = role_grants(),
        ),
    )?;
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args(["keys", "--config"])
        .arg(&cfg)
        .args(["create", "--principal", "bench", "--app", "bench"])
        .args(["--roles", "r1", "--expires", "1d"])
        .output()
        .await
        .context("creating the benchmark's API key")?;
    if !out.status.success() {
        bail!(
            "gatehouse keys create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = String::from_utf8(out.stdout)?.trim().to_owned();
    spawn_gateway(
        port,
        &["--config".to_owned(), cfg.display().to_string()],
        Some(key),
        count,
    )
    .await
}

/// The reference harness's three rows: direct, `serve --upstream`, production config.
/// Returns the two gateway rows.
async fn harness_rows(
    echo_url: &str,
    dir: &std::path::Path,
    load: (usize, usize, u64),
) -> Result<[Row; 2]> {
    let direct = direct(echo_url, "echo_any", load).await?;
    let mut gw = dev_gateway(echo_url, false).await?;
    let bare = measure(
        "gateway, serve --upstream (no config)",
        &mut gw,
        "echo__echo_any",
        load,
        direct,
    )
    .await?;
    let mut gw = production_gateway(dir, echo_url, false).await?;
    let production = measure(
        "gateway, production config (API key, 100 Cedar grants, rate limit, default controls)",
        &mut gw,
        "echo__echo_any",
        load,
        direct,
    )
    .await?;
    println!(
        "\nreference rows (1 KB {} tools/call, c=1 latency, c={} throughput):",
        argument_kind(),
        load.1
    );
    println!(
        "{:<11} {:>10} {:>10} {:>11} {:>9} {:>7}",
        "gateway", "added p50", "added p99", "share", "CPU/call", "RSS"
    );
    for (name, r) in [("no-config", &bare), ("production", &production)] {
        println!(
            "{name:<11} {:>7.0} µs {:>7.0} µs {:>10.2}x {:>6} µs {:>4} MB",
            r.added_p50_us,
            r.added_p99_us,
            r.share,
            r.cpu_us.map_or("-".to_owned(), |c| format!("{c:.0}")),
            r.rss_mb.map_or("-".to_owned(), |m| format!("{m:.0}")),
        );
    }
    Ok([bare, production])
}

/// A gateway's allocation counters, read from its `/metrics`: (allocations, bytes
/// allocated, live heap bytes).
async fn allocation_counts(client: &reqwest::Client, gw: &Gateway) -> Result<(u64, u64, u64)> {
    let base = gw.target.url.trim_end_matches("/mcp");
    let mut resp = client.get(format!("{base}/metrics")).send().await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 1 << 20 {
            bail!("the gateway's metrics are larger than 1 MiB");
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let read = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .with_context(|| format!("{name} missing from the gateway's metrics"))
    };
    use gatehouse_transport::metrics as m;
    Ok((
        read(m::ALLOCATIONS)?,
        read(m::ALLOCATED_BYTES)?,
        read(m::HEAP_LIVE_BYTES)?,
    ))
}

/// Allocations per call through each reference gateway, counted by its own allocator over
/// `calls` sequential calls after a warm-up, with the heap it holds live when idle after
/// start and after the calls. Separate starts: counting costs the counted gateway a little
/// CPU, so the rows above are measured without it.
async fn allocation_rows(echo_url: &str, dir: &std::path::Path, calls: usize) -> Result<()> {
    let dir = dir.join("allocations");
    std::fs::create_dir_all(&dir)?;
    let client = reqwest::Client::new();
    println!(
        "\nallocations per call (1 KB {} tools/call, c=1, {calls} calls, counted by the gateway):",
        argument_kind()
    );
    println!(
        "{:<11} {:>11} {:>11} {:>18} {:>9}",
        "gateway", "allocs/call", "bytes/call", "live heap idle/end", "RSS idle"
    );
    for name in ["no-config", "production"] {
        let mut gw = if name == "no-config" {
            dev_gateway(echo_url, true).await?
        } else {
            production_gateway(&dir, echo_url, true).await?
        };
        // Idle means settled: after the gateway let go of its start-up code.
        tokio::time::sleep(gatehouse_proxy::SETTLED + Duration::from_secs(1)).await;
        let rss_idle = proc_rss_kb(gw.pid);
        let (_, _, idle_live) = allocation_counts(&client, &gw).await?;
        for i in 0..200 {
            call(&client, &gw.target, "echo__echo_any", i).await?;
        }
        let (a0, b0, _) = allocation_counts(&client, &gw).await?;
        for i in 0..calls {
            call(&client, &gw.target, "echo__echo_any", i as u64).await?;
        }
        let (a1, b1, live) = allocation_counts(&client, &gw).await?;
        let _ = gw.child.kill().await;
        // Reading the metrics between the marks allocates too; over many calls it is noise.
        let per = |x: u64| x as f64 / calls.max(1) as f64;
        println!(
            "{name:<11} {:>11.0} {:>8.1} KB {:>7.1} / {:>4.1} MB {:>6} MB",
            per(a1 - a0),
            per(b1 - b0) / 1024.0,
            idle_live as f64 / 1048576.0,
            live as f64 / 1048576.0,
            rss_idle.map_or("-".to_owned(), |kb| format!("{:.0}", kb as f64 / 1024.0)),
        );
    }
    Ok(())
}

/// Cedar authorization: 99 role grants of ten tools each (the caller holds three roles,
/// one of which grants the echo tool) plus the built-in tenant rule.
fn role_grants() -> String {
    let mut authz = String::from("authorization:\n  roles:\n");
    for i in 0..99 {
        let tools: Vec<String> = (0..10).map(|k| format!("echo.t{i}_{k}")).collect();
        let extra = if i == 1 {
            ", echo.echo, echo.echo_any"
        } else {
            ""
        };
        authz.push_str(&format!("    r{i}: [{}{extra}]\n", tools.join(", ")));
    }
    authz
}

/// The full pipeline (DESIGN.md §7) adds, on a server classified confidential: the
/// `standard` DLP profile on the result, a durable audit record (committed before the
/// answer) with argument and result digests, and a GCRA rate limit; the schema check,
/// argument detectors and detection on arguments and results run in every gateway.
const FULL_UPSTREAM: &str = "    classification: confidential\n";

fn full_pipeline() -> String {
    format!(
        "{}rate_limits:\n  rules:\n    - {{name: calls, per: principal, methods: [tools/call], requests: 100000000, per_secs: 1, burst: 1000000}}\n",
        role_grants()
    )
}

/// A gateway from a config file in `dir` with JWT authentication by `issuer`, `upstream`
/// YAML for the echo upstream and `extra` YAML at the top; it carries its token.
async fn jwt_gateway(
    dir: &std::path::Path,
    issuer: &crate::bench_auth::LocalIssuer,
    echo_url: &str,
    upstream: &str,
    extra: &str,
) -> Result<Gateway> {
    let port = free_port()?;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let cfg = dir.join("bench.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{port}\nlogging: {{level: warn}}\nstore: {{sqlite: {store}}}\nauth:\n  resource: {resource}\n  issuers:\n    bench:\n      issuer: {}\n      algorithms: [ES256]\n      required_scopes: [mcp:tools]\nupstreams:\n  echo:\n{upstream}    url: {echo_url}\n{extra}",
            issuer.issuer,
            store = dir.join(format!("bench-{port}.db")).display(),
        ),
    )?;
    let token = issuer.token(&resource, 1)?;
    spawn_gateway(
        port,
        &["--config".to_owned(), cfg.display().to_string()],
        Some(token),
        false,
    )
    .await
}

/// What `gatehouse bench` runs beyond the reference rows, and the CI guard's bounds.
pub(crate) struct Options {
    pub calls: usize,
    pub conns: usize,
    pub secs: u64,
    /// Only the reference harness's rows.
    pub reference_only: bool,
    /// Fail when CPU per call (µs) exceeds these: (no config, production).
    pub max_cpu: Option<(f64, f64)>,
    /// A 1 KB English paragraph as the argument instead of the harness's repeated word.
    pub prose: bool,
}

pub(crate) async fn run(o: Options) -> Result<()> {
    PROSE.store(o.prose, std::sync::atomic::Ordering::Relaxed);
    let load = (o.calls, o.conns, o.secs);
    let echo_url = start_echo().await?;
    println!(
        "gatehouse bench: tools/call, keep-alive HTTP/1.1 on loopback, {} sequential calls, {} connections for {} s",
        o.calls, o.conns, o.secs
    );
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let guarded = harness_rows(&echo_url, &dir, load)
        .await
        .and_then(|[bare, production]| guard(o.max_cpu, &bare, &production));
    let guarded = match guarded {
        Ok(()) => allocation_rows(&echo_url, &dir, o.calls.min(2000)).await,
        Err(e) => Err(e),
    };
    if o.reference_only || guarded.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
        return guarded;
    }
    println!();
    let direct = direct(&echo_url, "echo", load).await?;
    let mut gw = dev_gateway(&echo_url, false).await?;
    measure(
        "gateway, development mode (no controls)",
        &mut gw,
        "echo__echo",
        load,
        direct,
    )
    .await?;

    // The same with JWT authentication (ES256, keys from a local issuer).
    let issuer = crate::bench_auth::LocalIssuer::start().await?;
    let authz = role_grants();
    let full = full_pipeline();
    let runs = [
        (
            "gateway, JWT authentication (ES256, verified-token cache)",
            "",
            "",
        ),
        (
            "gateway, JWT + Cedar authorization (100 policies)",
            "",
            authz.as_str(),
        ),
        (
            "gateway, full pipeline (JWT, Cedar, schema, detection, DLP, rate limit, durable audit)",
            FULL_UPSTREAM,
            full.as_str(),
        ),
    ];
    for (label, upstream, extra) in runs {
        let mut gw = jwt_gateway(&dir, &issuer, &echo_url, upstream, extra).await?;
        measure(label, &mut gw, "echo__echo", load, direct).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    crate::bench_auth::run(o.calls.min(5000)).await
}

/// The CI guard: each reference row's CPU per call within its bound (printed either way).
fn guard(max: Option<(f64, f64)>, bare: &Row, production: &Row) -> Result<()> {
    let Some((max_bare, max_production)) = max else {
        return Ok(());
    };
    let mut over = Vec::new();
    for (name, row, max) in [
        ("no-config", bare, max_bare),
        ("production", production, max_production),
    ] {
        match row.cpu_us {
            None => over.push(format!("{name}: CPU per call unreadable")),
            Some(c) if c > max => over.push(format!("{name} {c:.0} µs > {max:.0} µs")),
            Some(c) => println!("guard: {name} {c:.0} µs CPU per call, within {max:.0} µs"),
        }
    }
    if over.is_empty() {
        Ok(())
    } else {
        bail!("gateway CPU per call over its bound: {}", over.join("; "))
    }
}

/// Anonymous and file-backed resident memory of a process, in KiB.
fn proc_rss_parts_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

/// `gatehouse bench --soak MINUTES`: the full-pipeline gateway under steady load for
/// `minutes`, printing its anonymous and file-backed RSS every `every` seconds, then the
/// drift of anonymous memory after the first two minutes (warm-up) and the least-squares
/// growth per call over the same window.
pub(crate) async fn soak(minutes: u64, conns: usize, every: u64) -> Result<()> {
    let echo_url = start_echo().await?;
    let issuer = crate::bench_auth::LocalIssuer::start().await?;
    let dir = std::env::temp_dir().join(format!("gatehouse-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut gw = jwt_gateway(&dir, &issuer, &echo_url, FULL_UPSTREAM, &full_pipeline()).await?;
    println!(
        "gatehouse bench --soak: full pipeline (JWT, 100 Cedar grants, rate limit, detection, DLP, durable audit), {conns} connections, {minutes} min"
    );
    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>12}",
        "s", "calls", "calls/s", "anon MB", "file MB"
    );
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&gw.target, "echo__echo", conns, &done, &stop);
    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let warm_up = Duration::from_secs(120);
    // (calls, anonymous KiB) after warm-up.
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut last = (0u64, Instant::now());
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let n = done.load(Ordering::Relaxed);
        let rate = (n - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (n, Instant::now());
        let Some((anon, file)) = proc_rss_parts_kb(gw.pid) else {
            bail!("the gateway exited during the soak");
        };
        println!(
            "{:>6} {n:>12} {rate:>10.0} {:>12.1} {:>12.1}",
            start.elapsed().as_secs(),
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        );
        if start.elapsed() >= warm_up {
            samples.push((n as f64, anon as f64));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let _ = gw.child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    if samples.len() < 2 {
        bail!("the soak must run past its two-minute warm-up");
    }
    let first = samples[0].1;
    let (lo, hi) = samples.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| {
        (lo.min(s.1), hi.max(s.1))
    });
    let k = samples.len() as f64;
    let (mx, my) = (
        samples.iter().map(|s| s.0).sum::<f64>() / k,
        samples.iter().map(|s| s.1).sum::<f64>() / k,
    );
    let (sxy, sxx) = samples.iter().fold((0.0, 0.0), |(sxy, sxx), s| {
        (sxy + (s.0 - mx) * (s.1 - my), sxx + (s.0 - mx).powi(2))
    });
    let slope_bytes = if sxx > 0.0 { sxy / sxx * 1024.0 } else { 0.0 };
    println!(
        "after warm-up: anonymous RSS {:.1} MB at first, {:.1}–{:.1} MB ({:+.1}% / {:+.1}%), growth {slope_bytes:.2} bytes per call over {:.0} calls",
        first / 1024.0,
        lo / 1024.0,
        hi / 1024.0,
        (lo / first - 1.0) * 100.0,
        (hi / first - 1.0) * 100.0,
        samples[samples.len() - 1].0 - samples[0].0,
    );
    Ok(())
}
