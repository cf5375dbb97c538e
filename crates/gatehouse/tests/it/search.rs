//! Tool search under policy, against 300 tools federated from real peers (forty demo
//! servers, the filesystem and everything servers) and the Python SDK client: the client
//! sees three meta-tools, finds a tool by what it does, describes and calls it; the
//! analyst's search never returns the admin's tools; a hidden tool is refused whether it is
//! called by its real name, by its overridden name or through the meta-tool, and each
//! refusal is audited under the real tool's name.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::common::oauth::connect;
use crate::common::{
    everything_js, filesystem_js, free_port, gatehouse_bin, last_json, python, repo, run_ok,
    serve_config,
};

const PEPPER: &str = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";
const APP: &str = "t";
const DEMOS: usize = 40;

fn config(port: u16, dir: &Path) -> String {
    let mut upstreams = String::new();
    for i in 0..DEMOS {
        upstreams.push_str(&format!(
            "  d{i:02}:\n    command: {bin}\n    args: [demo-server]\n",
            bin = gatehouse_bin()
        ));
        if i == 0 {
            upstreams.push_str(
                "    tools:\n      deploy_service: {name: ship, description: \"Ships a service to an environment.\"}\n",
            );
        }
    }
    upstreams.push_str(&format!(
        "  fs:\n    command: node\n    args: ['{}', '{}']\n  ev:\n    command: node\n    args: ['{}']\n",
        filesystem_js(),
        dir.display(),
        everything_js()
    ));
    let admin_tools: Vec<String> = (0..DEMOS)
        .map(|i| format!("d{i:02}.*"))
        .chain(["fs.*".to_owned(), "ev.*".to_owned()])
        .collect();
    format!(
        r#"listen: 127.0.0.1:{port}
logging: {{format: json, level: "info,gatehouse::audit=debug"}}
api_keys: {{pepper: "{PEPPER}"}}
store: {{sqlite: state.db}}
audit: {{}}
tool_search: true
upstreams:
{upstreams}authorization:
  roles:
    analyst: [d00.read_database, d00.search_files, fs.read_text_file, fs.list_directory]
    admin: [{admin}]
"#,
        admin = admin_tools.join(", ")
    )
}

async fn key(dir: &Path, principal: &str, roles: &str) -> String {
    crate::common::create_key(&dir.join("gatehouse.yaml"), principal, APP, roles).await
}

async fn sdk(port: u16, token: &str, query: &str, args: Value) -> Value {
    last_json(
        &run_ok(
            Command::new(python())
                .arg(repo().join("testdata/clients/py_search_client.py"))
                .args([
                    &format!("http://127.0.0.1:{port}/mcp"),
                    token,
                    APP,
                    query,
                    &args.to_string(),
                ]),
            120,
        )
        .await,
    )
}

async fn start(dir: &Path, port: u16) -> Child {
    serve_config(&dir.join("gatehouse.yaml"), port, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_tools_are_searched_described_and_called_under_policy() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-search-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("notes.txt"), "quarterly numbers\n").expect("file");
    std::fs::write(dir.join("gatehouse.yaml"), config(port, &dir)).expect("config");
    let analyst = key(&dir, "ana", "analyst").await;
    let admin = key(&dir, "root", "admin").await;
    let _gw = start(&dir, port).await;
    let url = format!("http://127.0.0.1:{port}/mcp");

    // The admin sees 300 tools through search; the list itself is three meta-tools.
    let c = connect(&url, &admin).await;
    let listed = c.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed.result()["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "gatehouse_search_tools",
            "gatehouse_describe_tool",
            "gatehouse_call_tool"
        ]
    );
    let found = |v: &Value| -> Vec<String> {
        v["result"]["structuredContent"]["tools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let r = c
        .request(
            "tools/call",
            json!({"name": "gatehouse_search_tools", "arguments": {"query": "deploy a service", "limit": 50}}),
        )
        .await;
    let deploys = found(r.last());
    assert!(deploys.contains(&"d00__ship".to_owned()), "{deploys:?}");
    assert!(
        deploys.contains(&"d39__deploy_service".to_owned()),
        "{deploys:?}"
    );
    assert!(
        !deploys.contains(&"d00__deploy_service".to_owned()),
        "{deploys:?}"
    );

    // The analyst, through the Python SDK: finds the customer database by what it does,
    // describes it and calls it through the meta-tool.
    let v = sdk(
        port,
        &analyst,
        "run a SQL query on the customer database",
        json!({"query": "SELECT count(*) AS n FROM customers"}),
    )
    .await;
    assert_eq!(
        v["listed"],
        json!([
            "gatehouse_call_tool",
            "gatehouse_describe_tool",
            "gatehouse_search_tools"
        ]),
        "{v}"
    );
    assert_eq!(v["found"][0], "d00__read_database", "{v}");
    assert_eq!(
        v["described"]["inputSchema"]["required"],
        json!(["query"]),
        "{v}"
    );
    assert!(
        v["called"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains('n')),
        "{v}"
    );
    assert_ne!(v["called"]["isError"], true, "{v}");
    // Whatever the analyst asks for, only its four tools ever come back.
    for query in [
        "deploy a service",
        "delete table drop",
        "change role permissions",
        "execute code",
        "echo",
        "file",
    ] {
        let v = sdk(port, &analyst, query, Value::Null).await;
        for name in v["found"].as_array().expect("found") {
            assert!(
                [
                    "d00__read_database",
                    "d00__search_files",
                    "fs__read_text_file",
                    "fs__list_directory"
                ]
                .contains(&name.as_str().unwrap_or("")),
                "{query}: {v}"
            );
        }
    }

    a_hidden_tool_is_refused_under_every_name(&url, &analyst, &dir).await;
}

/// A hidden tool: refused by its real name, its overridden name and through the meta-tool,
/// unknown to describe; each refusal audited under the real name.
async fn a_hidden_tool_is_refused_under_every_name(
    url: &str,
    analyst: &str,
    dir: &std::path::Path,
) {
    // A hidden tool: refused by its real name, its overridden name, through the meta-tool;
    // unknown to describe.
    let c = connect(url, analyst).await;
    for (how, call) in [
        (
            "real name",
            json!({"name": "d00__delete_database", "arguments": {"table": "customers"}}),
        ),
        (
            "overridden name",
            json!({"name": "d00__ship", "arguments": {"service": "pg", "version": "1", "environment": "staging"}}),
        ),
        (
            "meta-tool",
            json!({"name": "gatehouse_call_tool", "arguments": {"name": "d00__delete_database", "arguments": {"table": "customers"}}}),
        ),
    ] {
        let r = c.request("tools/call", call).await;
        assert_eq!(r.error_code(), -32003, "{how}: {:?}", r.messages);
    }
    let r = c
        .request(
            "tools/call",
            json!({"name": "gatehouse_describe_tool", "arguments": {"name": "d00__delete_database"}}),
        )
        .await;
    assert_eq!(r.result()["isError"], true, "{:?}", r.messages);

    // Each refusal is in the audit under the real tool's name.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = Command::new(gatehouse_bin())
        .args(["audit", "--config"])
        .arg(dir.join("gatehouse.yaml"))
        .args(["query", "--limit", "100000"])
        .output()
        .await
        .expect("audit");
    let denied: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["event"].clone())
        .filter(|e| e["principal"] == "apikey/ana" && e["status"] == "denied")
        .map(|e| {
            (
                e["target"].as_str().unwrap_or("").to_owned(),
                e["rule"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        denied,
        [
            (
                "d00__delete_database".to_owned(),
                "authorize.default_deny".to_owned()
            ),
            ("d00__ship".to_owned(), "authorize.default_deny".to_owned()),
            (
                "d00__delete_database".to_owned(),
                "authorize.default_deny".to_owned()
            ),
        ],
        "{denied:?}"
    );
}
