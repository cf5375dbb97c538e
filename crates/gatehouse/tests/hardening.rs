//! The controls' own parsers, attacked through a running gateway: every row of the shared
//! attack table (`testdata/attacks/arguments.json`: URL parser differentials and special
//! ranges, shell words a shell would unquote, programs behind wrappers, dollar-quoted SQL)
//! is refused with invalid-params naming its rule before the upstream sees it, and every
//! benign row reaches the upstream. An SQL argument over the analysed length is refused
//! with a reason, and one just under it is analysed quickly enough to answer.

mod common;

use std::time::Duration;

use common::*;
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
