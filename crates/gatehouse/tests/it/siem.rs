//! SIEM shipping end to end with real rsyslog (Debian) on loopback: RFC 5424 over TCP,
//! TLS and mutual TLS, checked in its output files; a webhook receiving HMAC-signed batches;
//! a rotating JSON-lines file. Then an outage and a crash: rsyslog stopped while calls go on,
//! the gateway killed with SIGKILL and restarted, rsyslog back — every stored event arrives
//! (duplicates allowed, loss not).

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    Mcp, ca, free_port, fresh_database, gatehouse_bin, hook_server, leaf, psql, serve_config,
    signature_verifies, start_gateway, wait_port,
};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How rsyslog listens.
#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Tls,
    /// TLS that requires a client certificate from our CA.
    MutualTls,
}

/// Starts rsyslogd in the foreground with its own config, writing every message it gets
/// (as received) to `out`.
async fn rsyslog(dir: &Path, name: &str, port: u16, mode: Mode, out: &Path) -> Child {
    let work = dir.join(format!("{name}-work"));
    std::fs::create_dir_all(&work).expect("work dir");
    let d = dir.display();
    let driver = match mode {
        Mode::Plain => String::new(),
        Mode::Tls => " StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\"".into(),
        Mode::MutualTls => " StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\"".into(),
    };
    let conf = format!(
        "global(workDirectory=\"{work}\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" DefaultNetstreamDriverCertFile=\"{d}/server.pem\" DefaultNetstreamDriverKeyFile=\"{d}/server.key\")\n\
         module(load=\"imtcp\"{driver})\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
         template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
         action(type=\"omfile\" file=\"{out}\" template=\"raw\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n",
        work = work.display(),
        out = out.display(),
    );
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf).expect("rsyslog config");
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&path)
        .arg("-i")
        .arg(dir.join(format!("{name}.pid")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("rsyslogd runs (scripts/test installs rsyslog)");
    wait_port(port).await;
    child
}

/// (chain, seq) of every Gatehouse message in an rsyslog output file.
fn received(out: &Path) -> BTreeSet<(String, u64)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let sd = l.split("[gatehouse@32473 ").nth(1)?;
            let chain = sd.split("chain=\"").nth(1)?.split('"').next()?.to_owned();
            let seq = sd.split("seq=\"").nth(1)?.split('"').next()?.parse().ok()?;
            Some((chain, seq))
        })
        .collect()
}

/// (chain, seq) of every event in the store.
fn stored(store: &Path) -> BTreeSet<(String, u64)> {
    let s = gatehouse_store::SqliteAudit::open(store).expect("store");
    s.query(&gatehouse_store::AuditQuery {
        limit: 1_000_000,
        ..Default::default()
    })
    .expect("query")
    .into_iter()
    .map(|(c, seq, _)| (c, seq))
    .collect()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pki(dir: &Path) {
    ca(dir, "ca").await;
    leaf(
        dir,
        "ca",
        "server",
        "IP:127.0.0.1,DNS:localhost",
        "serverAuth",
    )
    .await;
    leaf(dir, "ca", "client", "DNS:gatehouse", "clientAuth").await;
}

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-siem-{tag}-{}", free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_over_tcp_tls_and_mtls_a_signed_webhook_and_a_file_receive_every_event() {
    let dir = workdir("sinks");
    pki(&dir).await;
    let (plain, tls, mtls) = (free_port(), free_port(), free_port());
    let (out_plain, out_tls, out_mtls) = (
        dir.join("plain.log"),
        dir.join("tls.log"),
        dir.join("mtls.log"),
    );
    let _r1 = rsyslog(&dir, "plain", plain, Mode::Plain, &out_plain).await;
    let _r2 = rsyslog(&dir, "tls", tls, Mode::Tls, &out_tls).await;
    let _r3 = rsyslog(&dir, "mtls", mtls, Mode::MutualTls, &out_mtls).await;
    let (hook, mut hooks) = hook_server().await;
    let store = dir.join("state.db");
    // SAFETY of the test environment: the variable is read by this process's gateway only.
    let secret = "siem-webhook-secret-0123456789";
    let d = dir.display();
    let yaml = format!(
        r#"dev_mode: true
store: {{sqlite: {store}}}
audit:
  sinks:
    - {{name: plain, type: syslog, address: "127.0.0.1:{plain}"}}
    - {{name: tls, type: syslog, address: "127.0.0.1:{tls}", format: cef, tls: {{ca: {d}/ca.pem}}}}
    - {{name: mtls, type: syslog, address: "127.0.0.1:{mtls}", format: leef, tls: {{ca: {d}/ca.pem, client_cert: {d}/client.pem, client_key: {d}/client.key}}}}
    # Without a client certificate: the mTLS listener must drop what it sends.
    - {{name: nocert, type: syslog, address: "127.0.0.1:{mtls}", tls: {{ca: {d}/ca.pem}}}}
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook}/audit", token: "file:{d}/hook.secret", batch: 1000}}
    - {{name: archive, type: file, path: {d}/audit.jsonl, max_bytes: 8192, keep: 3, batch: 5}}
upstreams:
  demo:
    command: {bin}
    args: [demo-server]
"#,
        store = store.display(),
        bin = gatehouse_bin(),
    );
    std::fs::write(dir.join("hook.secret"), secret).expect("secret");
    let gw = start_gateway(&yaml).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    for i in 0..20 {
        mcp.call("demo__search_files", json!({"query": format!("q{i}")}))
            .await;
    }
    // Read calls are committed in the next group, not before their answer.
    eventually("the calls are in the store", || stored(&store).len() >= 20).await;
    let want = stored(&store);
    for (name, out) in [
        ("plain", &out_plain),
        ("tls", &out_tls),
        ("mtls", &out_mtls),
    ] {
        eventually(&format!("{name}: every stored event arrives"), || {
            received(out).is_superset(&want)
        })
        .await;
    }
    let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(text(&out_plain).contains(r#"] {"v":1"#), "JSON body");
    assert!(
        text(&out_tls).contains("CEF:0|Gatehouse|Gatehouse|"),
        "CEF body"
    );
    assert!(
        text(&out_mtls).contains("LEEF:2.0|Gatehouse|Gatehouse|"),
        "LEEF body"
    );
    // The certificate-less sink has had as long as the others to deliver.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !text(&out_mtls).contains(r#"] {"v":1"#),
        "a sink without a client certificate got through mutual TLS"
    );

    // The webhook: signed batches, together every event.
    let mut seen = BTreeSet::new();
    while !seen.is_superset(&want) {
        let (sig, body) = tokio::time::timeout(Duration::from_secs(30), hooks.recv())
            .await
            .expect("a webhook batch in time")
            .expect("batch");
        assert!(signature_verifies(&sig, &body, secret), "signature {sig:?}");
        assert!(!signature_verifies(&sig, &body, "wrong"));
        let batch: Value = serde_json::from_slice(&body).expect("JSON batch");
        for e in batch["events"].as_array().expect("events") {
            seen.insert((
                e["chain"].as_str().unwrap_or("").to_owned(),
                e["seq"].as_u64().unwrap_or(0),
            ));
        }
    }

    // The file: rotated, each line one event.
    eventually("the file sink catches up", || {
        let mut all = BTreeSet::new();
        for f in [
            "audit.jsonl",
            "audit.jsonl.1",
            "audit.jsonl.2",
            "audit.jsonl.3",
        ] {
            for l in text(&dir.join(f)).lines() {
                if let Ok(e) = serde_json::from_str::<Value>(l) {
                    all.insert((
                        e["chain"].as_str().unwrap_or("").to_owned(),
                        e["seq"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
        // Four files of 8 KiB hold every event of this run.
        all.is_superset(&want)
    })
    .await;
    assert!(dir.join("audit.jsonl.1").exists(), "the file rotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_crash_lose_no_event() {
    let dir = workdir("outage");
    let (port, syslog) = (free_port(), free_port());
    let out = dir.join("out.log");
    let config = dir.join("gatehouse.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\ndev_mode: true\nlogging: {{level: warn}}\nstore: {{sqlite: state.db}}\naudit:\n  sinks:\n    - {{name: soc, type: syslog, address: \"127.0.0.1:{syslog}\", batch: 50}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
            bin = gatehouse_bin()
        ),
    )
    .expect("config");
    let store = dir.join("state.db");
    let mut rs = rsyslog(&dir, "soc", syslog, Mode::Plain, &out).await;
    let mut gw = serve_config(&config, port, &[]).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mcp = Mcp::connect(&url, "2025-11-25").await;
    for i in 0..30 {
        mcp.call("demo__search_files", json!({"query": format!("a{i}")}))
            .await;
    }
    eventually("shipping works before the outage", || {
        received(&out).is_superset(&stored(&store))
    })
    .await;

    // rsyslog goes away; calls go on and are answered.
    let _ = Command::new("kill")
        .arg(rs.id().expect("pid").to_string())
        .status()
        .await;
    let _ = rs.wait().await;
    let started = Instant::now();
    for i in 0..30 {
        let r = mcp
            .call("demo__search_files", json!({"query": format!("b{i}")}))
            .await;
        assert!(r["content"].is_array(), "{r}");
    }
    let during = started.elapsed();
    // Then the gateway dies mid-stream, with events still queued for the sink.
    gw.start_kill().expect("kill -9");
    let _ = gw.wait().await;
    let want = stored(&store);
    assert!(
        !received(&out).is_superset(&want),
        "events were queued when it died"
    );

    // Back: the gateway first, then rsyslog. Everything stored arrives.
    let _gw = serve_config(&config, port, &[]).await;
    let _rs = rsyslog(&dir, "soc", syslog, Mode::Plain, &out).await;
    eventually(
        "every stored event arrives after the outage and the crash",
        || received(&out).is_superset(&want),
    )
    .await;
    eprintln!("30 calls during the outage took {during:?}");
}

/// With PostgreSQL as the store, sinks read their queue from it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_ship_from_a_postgres_store() {
    let dir = workdir("pg");
    let db = format!("gatehouse_siem_{}", free_port());
    fresh_database(&db).await;
    let file = dir.join("audit.jsonl");
    let yaml = format!(
        "dev_mode: true\nstore: {{sqlite: {store}}}\naudit:\n  postgres: \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"\n  sinks:\n    - {{name: archive, type: file, path: {file}}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
        store = dir.join("state.db").display(),
        file = file.display(),
        bin = gatehouse_bin(),
    );
    let gw = start_gateway(&yaml).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    for i in 0..10 {
        mcp.call("demo__search_files", json!({"query": format!("p{i}")}))
            .await;
    }
    let count = || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("demo__search_files"))
            .count()
    };
    eventually("the file sink gets the calls from PostgreSQL", || {
        count() >= 10
    })
    .await;
    // Nothing came from a SQLite record: there is none.
    let sqlite_events = gatehouse_store::SqliteAudit::open(&dir.join("state.db"))
        .and_then(|s| {
            s.query(&gatehouse_store::AuditQuery {
                limit: 10,
                ..Default::default()
            })
        })
        .map(|r| r.len())
        .unwrap_or(0);
    assert_eq!(sqlite_events, 0);
    drop(mcp);
    drop(gw);
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}
