//! The `gatehouse` binary as an operator uses it: `check`, `schema`, development-mode
//! `serve` from flags, health, readiness and metrics, and a clean stop on SIGTERM.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::process::Command;

#[tokio::test]
async fn check_reports_problems_with_their_location() {
    let dir = std::env::temp_dir().join(format!("gatehouse-check-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "dev_mode: true\nupstreams:\n  db:\n    command: gatehouse\n    args: [demo-server]\n",
    )
    .expect("write");
    let out = run_ok(Command::new(gatehouse_bin()).arg("check").arg(&good), 30).await;
    assert!(out.contains("ok (1 upstreams"), "{out}");

    for (yaml, expect) in [
        ("upstreams:\n  db:\n    comand: x\n", "line 3"),
        (
            "upstreams:\n  db:\n    command: x\n    namespace: 'a__b'\n",
            "upstreams.db.namespace",
        ),
        (
            "listen: ${GATEHOUSE_TEST_SURELY_UNSET_VARIABLE}\n",
            "GATEHOUSE_TEST_SURELY_UNSET_VARIABLE",
        ),
        ("listen: 10.0.0.1:80\n", "allow_remote"),
    ] {
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, yaml).expect("write");
        let out = Command::new(gatehouse_bin())
            .arg("check")
            .arg(&bad)
            .output()
            .await
            .expect("run");
        assert!(!out.status.success(), "{yaml} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{yaml}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    let schema = run_ok(Command::new(gatehouse_bin()).arg("schema"), 30).await;
    let v: serde_json::Value = serde_json::from_str(&schema).expect("schema is JSON");
    assert!(v["properties"]["upstreams"].is_object() && v["properties"]["limits"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_from_flags_health_metrics_and_clean_stop() {
    let refused = Command::new(gatehouse_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--upstream", "x=true"])
        .output()
        .await
        .expect("run");
    assert!(
        !refused.status.success(),
        "development mode never binds a public address"
    );

    let port = free_port();
    let mut child = Command::new(gatehouse_bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &format!("demo={} demo-server", gatehouse_bin()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    wait_port(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .expect("health")
            .text()
            .await
            .expect("body"),
        "ok"
    );

    let c = Mcp::connect(&format!("{base}/mcp"), "2025-11-25").await;
    c.call("demo__search_files", json!({"query": "vpn"})).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("gatehouse_upstream_latency_seconds_bucket{upstream=\"demo\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_requests_total{method=\"tools/call\",outcome=\"ok\"}"),
        "{metrics}"
    );

    let pid = child.id().expect("pid");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops on SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .await
        .expect("read");
    assert!(
        err.contains("DEVELOPMENT MODE: NO AUTHENTICATION"),
        "the banner is loud"
    );
    assert!(
        err.contains("claude_desktop_config.json") && err.contains("inspector"),
        "connection help is printed"
    );
}
