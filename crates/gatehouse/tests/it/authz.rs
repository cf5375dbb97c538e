//! Authorization end to end: a gateway process with role grants, classification and a
//! second tenant's server, reached by the official TypeScript SDK client with API keys.
//! Lists are filtered by the decision that guards calls; refusals are audited with their
//! rule and policies; policy edits reload atomically and a broken edit is refused.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{free_port, gatehouse_bin, last_json, repo, run_ok};
use serde_json::Value;
use tokio::process::Command;

const PEPPER: &str = "cGVwcGVyLWZvci10aGUta2V5LXRlc3RzLTMyLWJ5dGVzLWxvbmc=";
const APP: &str = "gatehouse-ts-test";

fn config(port: u16, analyst_tools: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:{port}
# Every call's log line, allowed ones included (those are at debug when the store has them).
logging: {{format: json, level: "info,gatehouse::audit=debug"}}
api_keys: {{pepper: "{PEPPER}"}}
store: {{sqlite: keys.db}}
upstreams:
  demo:
    command: {bin}
    args: [demo-server]
    tools:
      # Exempt from the approval default rule: this test is about policy alone
      # (approvals.rs covers held calls).
      delete_database: {{classification: confidential, approval: false}}
      modify_permissions: {{classification: restricted, approval: false}}
      search_files: {{classification: public}}
  ops:
    command: {bin}
    args: [demo-server]
    tenant: globex
virtual_servers:
  acme-ops: {{upstreams: [demo], tenant: acme}}
  globex-ops: {{upstreams: [ops], tenant: globex}}
authorization:
  policies: [extra.cedar]
  roles:
    analyst: [{analyst_tools}]
    admin: ["demo.*", "ops.*"]
  classification:
    restricted:
      step_up: {{acr: [mfa], max_age: 600}}
    public:
      max_result_bytes: 16
"#,
        bin = gatehouse_bin()
    )
}

const EXTRA: &str = r#"@id("no-drop-users")
forbid (principal, action == Gatehouse::Action::"call_tool", resource == Gatehouse::Tool::"demo.delete_database")
when { context.arguments.hasTag("table") && context.arguments.getTag("table") == "users" };

// Context the listener and the handshake supply: calls only from this host, and only from
// a client that said who it is. Were either missing, every call would be refused.
@id("local-named-clients")
forbid (principal, action, resource)
unless { context has source_ip && context.source_ip.isLoopback() && context has client && context.client == "gatehouse-ts-test" };
"#;

async fn key(dir: &Path, principal: &str, roles: &str) -> String {
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["keys", "--config"])
        .arg(dir.join("gatehouse.yaml"))
        .args([
            "create",
            "--principal",
            principal,
            "--app",
            APP,
            "--tenant",
            "acme",
            "--roles",
            roles,
        ]);
    run_ok(&mut cmd, 30).await.trim().to_owned()
}

/// Runs the TypeScript SDK client as `key`: it lists tools and makes one call.
async fn ts(url: &str, key: &str, tool: &str, args: &str) -> Value {
    let out = run_ok(
        Command::new("node")
            .arg(repo().join("testdata/peers/ts_client.mjs"))
            .args([url, "http", tool, args])
            .env("GATEHOUSE_BEARER", key)
            .env("GATEHOUSE_CLIENT_NAME", APP),
        60,
    )
    .await;
    last_json(&out)
}

fn names(v: &Value) -> Vec<String> {
    v["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The gateway's audit records (JSON log lines with target gatehouse::audit).
fn audit(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "gatehouse::audit")
        .map(|v| v["fields"].clone())
        .collect()
}

fn request_record<'a>(records: &'a [Value], principal: &str, tool: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["message"] == "request" && r["principal"] == principal && r["tool"] == tool)
        .collect()
}

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_filter_lists_guard_calls_and_are_audited() {
    let port = free_port();
    let dir: PathBuf = std::env::temp_dir().join(format!("gatehouse-authz-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg_path = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg_path,
        config(
            port,
            "demo.read_database, demo.search_files, ops.search_files",
        ),
    )
    .expect("config");
    std::fs::write(dir.join("extra.cedar"), EXTRA).expect("policy");
    let analyst = key(&dir, "ana", "analyst").await;
    let admin = key(&dir, "root", "admin").await;

    let log = dir.join("gateway.log");
    let _gw = Command::new(gatehouse_bin())
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("start gateway");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for("readiness", async || {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let url = format!("{base}/mcp");

    // The analyst's list has exactly its grants — no delete_database, and nothing of the
    // other tenant's server although its role names a tool there.
    let v = ts(
        &url,
        &analyst,
        "demo__delete_database",
        r#"{"table":"customers"}"#,
    )
    .await;
    assert_eq!(
        names(&v),
        ["demo__read_database", "demo__search_files"],
        "{v}"
    );
    // Its call is refused as forbidden (-32003), not "unknown tool", and never arrives.
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let v = ts(&url, &analyst, "ops__search_files", r#"{"query":"x"}"#).await;
    assert_eq!(v["error"]["code"], -32003, "cross-tenant call: {v}");
    // A result larger than its classification allows is withheld.
    let v = ts(&url, &analyst, "demo__search_files", r#"{"query":"vpn"}"#).await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(v["result"].is_null(), "{v}");

    // The admin sees the demo server's tools (not the other tenant's) and reaches the upstream.
    let v = ts(
        &url,
        &admin,
        "demo__delete_database",
        r#"{"table":"customers"}"#,
    )
    .await;
    let admin_tools = names(&v);
    assert!(
        admin_tools.contains(&"demo__delete_database".to_owned()),
        "{v}"
    );
    assert!(!admin_tools.iter().any(|t| t.starts_with("ops__")), "{v}");
    assert_eq!(
        v["result"]["content"][0]["text"], "dropped table customers",
        "{v}"
    );
    // A Cedar forbid beats the admin's grant for one argument value.
    let v = ts(
        &url,
        &admin,
        "demo__delete_database",
        r#"{"table":"users"}"#,
    )
    .await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    // Restricted data needs a step-up sign-in an API key cannot have.
    let v = ts(
        &url,
        &admin,
        "demo__modify_permissions",
        r#"{"user":"ana","role":"admin"}"#,
    )
    .await;
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(v["error"]["data"]["stepUp"]["acr_values"][0], "mfa", "{v}");

    // A tenant's virtual server refuses another tenant's principal at its door.
    for (path, status) in [("/s/globex-ops/mcp", 403), ("/s/acme-ops/mcp", 200)] {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(&analyst)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": APP, "version": "1"}}}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), status, "{path}");
    }

    // Every decision is in the audit, with the rule and the deciding policies.
    let records = audit(&log);
    let denied = request_record(&records, "apikey/ana", "demo__delete_database");
    assert_eq!(denied.len(), 1, "{records:#?}");
    assert_eq!(denied[0]["status"], "denied");
    assert_eq!(denied[0]["rule"], "authorize.default_deny");
    let tenant = request_record(&records, "apikey/ana", "ops__search_files");
    assert_eq!(tenant[0]["rule"], "authorize.forbid");
    assert_eq!(tenant[0]["policies"], "gatehouse.tenant_isolation");
    let admin_calls = request_record(&records, "apikey/root", "demo__delete_database");
    assert_eq!(admin_calls.len(), 2, "{records:#?}");
    assert_eq!(admin_calls[0]["status"], "ok");
    assert_eq!(admin_calls[0]["policies"], "role.admin.tools");
    assert_eq!(admin_calls[0]["classification"], "confidential");
    // Confidential data: enhanced audit carries digests of arguments and result.
    assert_eq!(
        admin_calls[0]["args_digest"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(
        admin_calls[0]["result_digest"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(admin_calls[1]["rule"], "authorize.forbid");
    assert_eq!(admin_calls[1]["policies"], "no-drop-users");
    let capped = request_record(&records, "apikey/ana", "demo__search_files");
    assert_eq!(
        capped[0]["rule"], "classification.max_result_bytes",
        "{capped:?}"
    );
    assert_eq!(capped[0]["status"], "denied");
    let step_up = request_record(&records, "apikey/root", "demo__modify_permissions");
    assert_eq!(step_up[0]["rule"], "authorize.step_up");

    policy_edits_reload_atomically_and_are_audited((&dir, &cfg_path, &log), port, &url, &analyst)
        .await;
}

/// A policy edit reloads atomically and is audited; a broken one is refused and the
/// running policy keeps deciding.
async fn policy_edits_reload_atomically_and_are_audited(
    (dir, cfg_path, log): (&std::path::Path, &std::path::Path, &std::path::Path),
    port: u16,
    url: &str,
    analyst: &str,
) {
    // A policy edit reloads atomically and is audited with what changed.
    std::fs::write(
        cfg_path,
        config(
            port,
            "demo.read_database, demo.search_files, demo.deploy_service",
        ),
    )
    .expect("edit");
    wait_for("the reload", async || {
        names(
            &ts(
                url,
                analyst,
                "demo__read_database",
                r#"{"query":"select 1 as n"}"#,
            )
            .await,
        )
        .contains(&"demo__deploy_service".to_owned())
    })
    .await;
    let reloaded: Vec<Value> = audit(log)
        .into_iter()
        .filter(|r| r["message"] == "config reloaded")
        .collect();
    assert!(
        reloaded.iter().any(|r| r["policies"]
            .as_str()
            .is_some_and(|p| p.contains("~role.analyst.tools"))),
        "{reloaded:#?}"
    );
    // A broken policy file is refused; the running policy keeps deciding.
    std::fs::write(
        dir.join("extra.cedar"),
        "forbid (principal, action, resource) when { resource.no_such_attribute };",
    )
    .expect("edit");
    wait_for("the rejection", async || {
        audit(log)
            .iter()
            .any(|r| r["message"] == "config change rejected; previous config still active")
    })
    .await;
    let v = ts(
        url,
        analyst,
        "demo__read_database",
        r#"{"query":"select 1 as n"}"#,
    )
    .await;
    assert!(v["error"].is_null(), "{v}");
    assert!(names(&v).contains(&"demo__deploy_service".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_cli_tests_explains_and_exports() {
    let policy = repo().join("testdata/policy");
    let cfg = policy.join("gateway.yaml");
    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["policy", "test"])
        .arg(policy.join("gateway-cases.yaml"))
        .arg("--config")
        .arg(&cfg);
    let out = run_ok(&mut cmd, 30).await;
    assert!(out.contains("7 cases, 0 failed"), "{out}");

    // A table whose expectation is wrong fails the command.
    let dir = std::env::temp_dir().join(format!("gatehouse-policy-cli-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let wrong = dir.join("wrong.yaml");
    std::fs::write(
        &wrong,
        "principals: {ana: {roles: [analyst]}}\ncases:\n  - {principal: ana, target: demo.delete_database, expect: allow}\n",
    )
    .expect("write");
    let out = Command::new(gatehouse_bin())
        .args(["policy", "test"])
        .arg(&wrong)
        .arg("--config")
        .arg(&cfg)
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));

    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["policy", "explain", "--config"]).arg(&cfg).args([
        "--principal",
        "alice",
        "--roles",
        "admin",
        "--tool",
        "demo__delete_database",
        "--args",
        r#"{"table":"users"}"#,
    ]);
    let out = run_ok(&mut cmd, 30).await;
    assert!(out.contains("DENY (Forbidden)"), "{out}");
    assert!(out.contains("no-drop-users (gateway.cedar)"), "{out}");

    let mut cmd = Command::new(gatehouse_bin());
    cmd.args(["policy", "export", "--format", "json", "--config"])
        .arg(&cfg);
    let doc: Value = serde_json::from_str(&run_ok(&mut cmd, 30).await).expect("json");
    let refs = |role: &str| -> Vec<String> {
        doc["roles"][role]["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["ref"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(!refs("analyst").contains(&"demo.delete_database".to_owned()));
    assert!(refs("admin").contains(&"demo.delete_database".to_owned()));
    assert!(
        refs("admin").contains(&"demo.read_database".to_owned()),
        "inherited grants are listed"
    );
    assert_eq!(doc["default"], "deny");
    assert_eq!(doc["servers"]["crm"]["tenant"], "globex");
    assert_eq!(doc["policies"][0]["id"], "gatehouse.tenant_isolation");
}
