//! The controls' own parsers, attacked through a running gateway: every row of the shared
//! attack table (`testdata/attacks/arguments.json`: URL parser differentials and special
//! ranges, shell words a shell would unquote, programs behind wrappers, dollar-quoted SQL)
//! is refused with invalid-params naming its rule before the upstream sees it, and every
//! benign row reaches the upstream. An SQL argument over the analysed length is refused
//! with a reason, and one just under it is analysed quickly enough to answer.

use std::time::Duration;

use crate::common::{Mcp, Reply, free_port, gatehouse_bin, repo, start_gateway};
use serde_json::{Value, json};

/// One demo upstream per argument kind, the search tool's `query` typed as that kind.
fn config() -> String {
    let bin = gatehouse_bin();
    let mut yaml = String::from("dev_mode: true\nlogging: {level: warn}\nupstreams:\n");
    for kind in ["url", "shell", "sql_query"] {
        yaml.push_str(&format!(
            "  {kind}:\n    command: {bin}\n    args: [demo-server]\n    tools:\n      search_files:\n        arguments:\n          query: {{kind: {kind}, read_only: true}}\n"
        ));
    }
    yaml
}

async fn call(mcp: &Mcp, kind: &str, value: &str) -> Reply {
    mcp.request(
        "tools/call",
        json!({"name": format!("{kind}__search_files"), "arguments": {"query": value}}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attack_table_is_refused_by_the_running_gateway() {
    let gw = start_gateway(&config()).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("testdata/attacks/arguments.json")).expect("table"),
    )
    .expect("json");
    let rows = table["rows"].as_array().expect("rows");
    let (mut refused, mut passed) = (0, 0);
    for row in rows {
        let kind = row["kind"].as_str().expect("kind");
        let value = row["value"].as_str().expect("value");
        let r = call(&mcp, kind, value).await;
        let m = r.last();
        match row["rule"].as_str() {
            Some(rule) => {
                assert_eq!(m["error"]["code"], -32602, "{row}: {m}");
                assert_eq!(m["error"]["data"]["check"], rule, "{row}: {m}");
                assert_eq!(m["error"]["data"]["argument"], "query", "{row}: {m}");
                refused += 1;
            }
            None => {
                // Reached the demo upstream: its search answers with content.
                assert!(m["result"]["content"].is_array(), "{row}: {m}");
                passed += 1;
            }
        }
    }
    assert!(
        refused > 50 && passed > 10,
        "{refused} refused, {passed} passed"
    );

    // SQL over the analysed length: refused, and the message says why.
    let long = format!("SELECT 1 {}", "$a$".repeat(40_000));
    let r = call(&mcp, "sql_query", &long).await;
    assert_eq!(
        r.last()["error"]["data"]["check"],
        "sql.too_long",
        "{:?}",
        r.last()
    );
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than the 65536")),
        "{:?}",
        r.last()
    );
    // Just under it, the quadratic input of the review is analysed and answered (the
    // upstream sees a query of empty dollar quotes); the gateway is still serving.
    let under = format!("SELECT 1 {}", "$a$".repeat(21_000));
    let r = tokio::time::timeout(Duration::from_secs(30), call(&mcp, "sql_query", &under))
        .await
        .expect("answered");
    assert!(r.last().get("result").is_some(), "{:?}", r.last());
}

/// Whether a process is alive (a zombie waiting to be reaped counts as ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

async fn read_pid(path: &std::path::Path) -> u32 {
    for _ in 0..200 {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never written", path.display());
}

/// A stdio upstream started through a shell leaves a grandchild (as `npx`, `uvx` and
/// `sh -c` do) that inherits its stdout. When the child dies, the gateway notices (the
/// grandchild still holds the pipe open), kills the child's whole process group, and
/// restarts it: the grandchild, holding the child's environment and secrets, is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_stdio_upstream_leaves_no_orphans() {
    let dir = std::env::temp_dir().join(format!("gatehouse-orphans-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = format!(
        "n=$(ls {d} | wc -l); sleep 3600 & echo $! > {d}/grandchild-$n; echo $$ > {d}/child-$n; exec {bin} demo-server",
        d = dir.display(),
        bin = gatehouse_bin()
    );
    let yaml = format!(
        "dev_mode: true\nlogging: {{level: warn}}\nupstreams:\n  demo:\n    command: sh\n    args: ['-c', '{script}']\n    inherit_env: [PATH]\n"
    );
    let gw = start_gateway(&yaml).await;
    let grandchild = read_pid(&dir.join("grandchild-0")).await;
    let child = read_pid(&dir.join("child-0")).await;
    assert!(alive(grandchild) && alive(child));
    // The child crashes: the supervisor restarts it, and the old grandchild is gone.
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.to_string()])
        .status();
    let next = read_pid(&dir.join("grandchild-2")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(grandchild) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !alive(grandchild),
        "the first grandchild outlived its parent"
    );
    assert!(alive(next), "the new child's grandchild runs");
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
