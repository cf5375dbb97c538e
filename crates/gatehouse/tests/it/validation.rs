//! Argument validation end to end, through the official Python SDK client: path traversal
//! against the official filesystem server, SQL injection against the demo database, and an
//! operator's limits — refused by the gateway with invalid-params before any upstream sees
//! them, while the benign equivalents pass.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use crate::common::{
    filesystem_js, free_port, gatehouse_bin, last_json, python, repo, run_ok, start_gateway,
};
use serde_json::{Value, json};
use tokio::process::Command;

async fn agent(url: &str, tool: &str, args: Value) -> Value {
    last_json(
        &run_ok(
            Command::new(python())
                .arg(repo().join("testdata/clients/py_approval_client.py"))
                .args([
                    url,
                    "dev",
                    "validation-test",
                    "auto",
                    tool,
                    &args.to_string(),
                ]),
            120,
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injections_are_refused_with_invalid_params_and_benign_calls_pass() {
    let root = std::env::temp_dir().join(format!("gatehouse-validation-{}", free_port()));
    let inside = root.join("docs");
    std::fs::create_dir_all(&inside).expect("dir");
    std::fs::write(inside.join("note.txt"), "inside the root").expect("write");
    // A file next to the root that a traversal would reach.
    std::fs::write(
        root.parent()
            .expect("tmp")
            .join("gatehouse-validation-secret.txt"),
        "secret",
    )
    .expect("write");
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  fs:\n    command: node\n    args: ['{fs}', '{root}']\n  demo:\n    command: {bin}\n    args: [demo-server]\n    tools:\n      read_database:\n        arguments:\n          params: {{max_length: 3}}\n",
        fs = filesystem_js(),
        root = root.display(),
        bin = gatehouse_bin(),
    );
    let gw = start_gateway(&yaml).await;
    let url = gw.mcp();

    // Paths: inside the root works; `..` escapes are refused by the gateway itself.
    let ok = agent(
        &url,
        "fs__read_text_file",
        json!({"path": inside.join("note.txt").display().to_string()}),
    )
    .await;
    assert_eq!(
        ok["result"]["content"][0]["text"], "inside the root",
        "{ok}"
    );
    for escape in [
        format!("{}/../../gatehouse-validation-secret.txt", inside.display()),
        format!(
            "{}/%2e%2e/%2e%2e/gatehouse-validation-secret.txt",
            inside.display()
        ),
    ] {
        let v = agent(&url, "fs__read_text_file", json!({"path": escape})).await;
        assert_eq!(v["error"]["code"], -32602, "{escape}: {v}");
        assert_eq!(v["error"]["data"]["argument"], "path", "{v}");
        assert!(!v.to_string().contains("secret\""), "{v}");
    }

    // SQL: a read-only query passes; a stacked write and a comment trick do not.
    let ok = agent(
        &url,
        "demo__read_database",
        json!({"query": "SELECT name FROM customers WHERE region = 'APAC' ORDER BY name"}),
    )
    .await;
    assert!(
        ok["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Umbrella")),
        "{ok}"
    );
    for (sql, check) in [
        ("SELECT 1; DROP TABLE customers", "sql.stacked"),
        ("DELETE FROM customers", "sql.write"),
        (
            "SELECT * FROM users WHERE name = 'x' /**/ OR 1=1",
            "sql.comment",
        ),
    ] {
        let v = agent(&url, "demo__read_database", json!({"query": sql})).await;
        assert_eq!(v["error"]["code"], -32602, "{sql}: {v}");
        assert_eq!(v["error"]["data"]["check"], check, "{sql}: {v}");
    }
    // The table is still there: nothing reached the upstream.
    let v = agent(
        &url,
        "demo__read_database",
        json!({"query": "SELECT count(*) AS n FROM customers"}),
    )
    .await;
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("\"n\":5")),
        "{v}"
    );

    // The tool's own input schema: an enum value it does not allow, a missing argument.
    let v = agent(
        &url,
        "demo__deploy_service",
        json!({"service": "a", "version": "1", "environment": "moon"}),
    )
    .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(
        (
            v["error"]["data"]["argument"].as_str(),
            v["error"]["data"]["rule"].as_str()
        ),
        (Some("environment"), Some("validate.schema")),
        "{v}"
    );
    let v = agent(&url, "demo__deploy_service", json!({"service": "a"})).await;
    assert_eq!(v["error"]["data"]["rule"], "validate.schema", "{v}");

    // An operator's limit: written into the schema `tools/list` shows (`maxItems`), so the
    // schema check refuses what exceeds it.
    let v = agent(
        &url,
        "demo__read_database",
        json!({"query": "SELECT ?1", "params": [1, 2, 3, 4]}),
    )
    .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(
        (
            v["error"]["data"]["argument"].as_str(),
            v["error"]["data"]["rule"].as_str()
        ),
        (Some("params"), Some("validate.schema")),
        "{v}"
    );
}

/// SSRF through a URL argument, sent by the official Python SDK client to a real server's
/// `fetch_page(url)`: an internal address, a redirector carrying one, and a host name that
/// only resolves to one (the machine's own name) are refused with invalid-params before
/// the server sees them; a public URL goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_to_internal_hosts_are_refused_even_behind_a_name_or_a_redirect() {
    let dir = std::env::temp_dir().join(format!("gatehouse-ssrf-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("v"), "1").expect("state");
    let yaml = format!(
        "dev_mode: true\nupstreams:\n  web:\n    command: {py}\n    args: ['{server}', '{state}']\n",
        py = python(),
        server = repo().join("testdata/servers/poisoned_server.py").display(),
        state = dir.join("v").display(),
    );
    let gw = start_gateway(&yaml).await;
    let url = gw.mcp();
    // The machine's own name: not an address and not a reserved name, yet it resolves
    // to this machine (loopback or a private address).
    let host = String::from_utf8(
        Command::new("hostname")
            .output()
            .await
            .expect("hostname")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_owned();
    let resolved: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.as_str(), 443))
        .await
        .expect("the machine's own name resolves")
        .map(|a| a.ip())
        .collect();
    assert!(
        resolved
            .iter()
            .any(|ip| gatehouse_detect::inject::internal_address(*ip)),
        "{host} resolves to {resolved:?}"
    );
    for (target, check) in [
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "ssrf.private",
        ),
        (
            "https://example.com/redirect?to=http%3A%2F%2F127.0.0.1%3A8080%2Fadmin".to_owned(),
            "ssrf.redirect",
        ),
        (format!("http://{host}:8080/admin"), "ssrf.resolved"),
    ] {
        let v = agent(&url, "web__fetch_page", json!({"url": target})).await;
        assert_eq!(v["error"]["code"], -32602, "{target}: {v}");
        assert_eq!(v["error"]["data"]["check"], check, "{target}: {v}");
    }
    // A public URL passes validation (the page's own injected text is then withheld by
    // detection, which shows the server was called).
    let v = agent(
        &url,
        "web__fetch_page",
        json!({"url": "https://example.com/about"}),
    )
    .await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("withheld")),
        "{v}"
    );
}
