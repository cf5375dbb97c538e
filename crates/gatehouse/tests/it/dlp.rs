//! Response protection end to end: the official PostgreSQL MCP server (npm, pinned) in
//! front of the PostgreSQL on this machine, seeded with synthetic customers (emails, cards
//! that pass Luhn, SSNs) and a table holding an API token. Results come back redacted per
//! the classification's profile; a result carrying a secret is withheld; a secret in the
//! outgoing arguments never leaves; the audit records what was found, never the values.

// Tests read their own local peers' output: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use crate::common::{
    Mcp, free_port, gatehouse_bin, peers, psql, python, repo, start_gateway, wait_port,
};
use serde_json::{Value, json};
use tokio::process::Command;

const SEED: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card text, ssn text, note text);
INSERT INTO customers VALUES
 (1, 'Avery Stone', 'avery.stone@example.com', '4111 1111 1111 1111', '123-45-6789', 'gold tier'),
 (2, 'Blake Moore', 'blake.moore@example.org', '5500-0000-0000-0004', '234-56-7890', 'order 1234567812345670 pending'),
 (3, 'Casey Lee', 'casey@example.net', '378282246310005', '345-67-8901', 'call back 2026-11-22 10:15');
CREATE TABLE integrations (name text, api_token text);
INSERT INTO integrations VALUES ('ci', 'ghp_0123456789abcdefghijABCDEFGHIJ012345');
CREATE TABLE events AS SELECT g AS id, 'event number ' || g || ' logged by the order service' AS line FROM generate_series(1, 400) g;
";

fn text(v: &Value) -> String {
    v["content"][0]["text"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_redacted_per_classification_and_secrets_never_leave() {
    let port = free_port();
    let db = format!("gatehouse_dlp_{port}");
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}")).await;
    psql("postgres", &format!("CREATE DATABASE {db}")).await;
    psql(&db, SEED).await;
    let store = std::env::temp_dir().join(format!("gatehouse-dlp-{port}.db"));
    let _ = std::fs::remove_file(&store);

    let server = peers().join("node_modules/@modelcontextprotocol/server-postgres/dist/index.js");
    let subject_key = std::env::temp_dir().join(format!("gatehouse-dlp-{port}.subjects"));
    std::fs::write(&subject_key, "subject-index-key-for-the-dlp-test").expect("key");
    let yaml = format!(
        r#"dev_mode: true
store: {{sqlite: {store}}}
audit: {{durable_all: true, subject_key: "file:{subject_key}"}}
authorization:
  roles: {{reader: ["crm.*", "crm_raw.*", "hr.*"]}}
  anonymous_roles: [reader]
  classification:
    confidential: {{max_result_bytes: 4096, truncate: true, redaction: standard, audit_bodies: redacted}}
    restricted: {{redaction: strict}}
dlp:
  profiles:
    strict: {{default: block}}
upstreams:
  hr:
    command: node
    args: ['{server}', 'postgresql://postgres@127.0.0.1:5432/{db}']
    classification: restricted
    tools:
      query: {{verb: read}}
  crm:
    command: node
    args: ['{server}', 'postgresql://postgres@127.0.0.1:5432/{db}']
    classification: confidential
    tools:
      query: {{verb: read}}
  crm_raw:
    command: node
    args: ['{server}', 'postgresql://postgres@127.0.0.1:5432/{db}']
    classification: internal
    tools:
      query: {{verb: read}}
"#,
        store = store.display(),
        server = server.display(),
        subject_key = subject_key.display(),
    );
    let gw = start_gateway(&yaml).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    let correlation = confidential_results_are_redacted_and_secrets_withheld(&mcp).await;
    drop(mcp);
    the_audit_has_the_findings_not_the_values(&store, &correlation);

    // The data subject's access report: every recorded access that involved Avery's email,
    // however it is written, found by its keyed digest.
    let config = std::env::temp_dir().join(format!("gatehouse-dlp-{port}.yaml"));
    std::fs::write(&config, &yaml).expect("config file");
    let report = |who: &str| {
        let config = config.clone();
        let who = who.to_owned();
        async move {
            let out = Command::new(gatehouse_bin())
                .args(["audit", "--config"])
                .arg(&config)
                .args(["query", "--subject", &who])
                .output()
                .await
                .expect("audit query");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
                .collect::<Vec<_>>()
        }
    };
    let avery = report("Avery.Stone@Example.com").await;
    assert!(!avery.is_empty(), "Avery's accesses are found");
    assert!(
        avery.iter().all(|e| e["event"]["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("__query"))),
        "{avery:?}"
    );
    // The first query (all customers) involved every customer; Casey's card alone finds it.
    let casey = report("3782 822463 10005").await;
    assert!(!casey.is_empty(), "found by the card, however spaced");
    assert!(report("nobody@example.com").await.is_empty());
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}

/// What callers get back: masked, partially masked, withheld or cut, per classification;
/// the withheld result's correlation id.
async fn confidential_results_are_redacted_and_secrets_withheld(mcp: &Mcp) -> String {
    // Confidential data: the `standard` profile by default. Emails masked, cards, SSNs
    // keep their last four; an order number that fails the card checks is left alone, and
    // so is a timestamp.
    let r = mcp
        .call(
            "crm__query",
            json!({"sql": "SELECT name, email, card, ssn, note FROM customers ORDER BY id"}),
        )
        .await;
    let t = text(&r);
    for leaked in [
        "avery.stone@example.com",
        "4111 1111 1111 1111",
        "123-45-6789",
        "378282246310005",
        "5500-0000-0000-0004",
    ] {
        assert!(!t.contains(leaked), "{leaked} leaked: {t}");
    }
    for kept in [
        "Avery Stone",
        "[REDACTED:email]",
        "****1111",
        "****6789",
        "****0005",
        "order 1234567812345670 pending",
        "2026-11-22 10:15",
    ] {
        assert!(t.contains(kept), "{kept} missing: {t}");
    }
    // The JSON the server produced is still JSON.
    let rows: Value = serde_json::from_str(&t).expect("rows still parse");
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");

    // Internal data has no redaction profile by default: the same query is returned as is.
    let raw = text(
        &mcp.call(
            "crm_raw__query",
            json!({"sql": "SELECT email FROM customers WHERE id = 1"}),
        )
        .await,
    );
    assert!(raw.contains("avery.stone@example.com"), "{raw}");

    // A result carrying a secret is withheld whole, with a correlation id.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "crm__query", "arguments": {"sql": "SELECT * FROM integrations"}}),
        )
        .await;
    assert_eq!(r.error_code(), -32003, "{:?}", r.last());
    let body = r.last().to_string();
    assert!(!body.contains("ghp_0123"), "{body}");
    let correlation = r.last()["error"]["data"]["correlationId"]
        .as_str()
        .expect("correlation id")
        .to_owned();

    // A big SELECT * on confidential data is cut to the level's cap, with a marker.
    let r = mcp
        .call("crm__query", json!({"sql": "SELECT * FROM events"}))
        .await;
    let body = r.to_string();
    assert!(body.len() < 4096 + 1024, "{} bytes", body.len());
    assert_eq!(r["_meta"]["gatehouse/truncated"], true, "{body}");
    assert!(body.contains("truncated by Gatehouse"), "{body}");
    assert!(body.contains("event number 1 "), "{body}");
    assert!(!body.contains("event number 400 "), "{body}");

    // Restricted data under a profile where any finding blocks: the customers query is
    // withheld whole.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "hr__query", "arguments": {"sql": "SELECT name, ssn FROM customers"}}),
        )
        .await;
    assert_eq!(r.error_code(), -32003, "{:?}", r.last());
    assert!(!r.last().to_string().contains("Avery"), "{:?}", r.last());
    // The same server's non-personal data passes.
    let r = mcp
        .call(
            "hr__query",
            json!({"sql": "SELECT count(*) AS n FROM customers"}),
        )
        .await;
    assert!(text(&r).contains("\"n\": \"3\""), "{r}");

    // A secret an agent pastes into the arguments never leaves the gateway.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "crm_raw__query", "arguments": {"sql": "SELECT 1 -- AKIAIOSFODNN7EXAMPLE"}}),
        )
        .await;
    assert_eq!(r.error_code(), -32003, "{:?}", r.last());
    assert!(r.error_message().contains("secret.aws_access_key"));

    correlation
}

/// The audit keeps the findings and masked copies, never the values.
fn the_audit_has_the_findings_not_the_values(store: &std::path::Path, correlation: &str) {
    // The audit has the findings, not the values.
    let conn = audit_events(store);
    let withheld = conn
        .iter()
        .find(|e| e["correlation"] == correlation)
        .unwrap_or_else(|| panic!("no audit event for {correlation}: {conn:?}"));
    assert_eq!(withheld["rule"], "dlp.block", "{withheld}");
    assert!(
        withheld["findings"]
            .as_str()
            .unwrap_or("")
            .contains("blocked=secret.github_token"),
        "{withheld}"
    );
    let redacted = conn
        .iter()
        .find(|e| e["findings"].as_str().is_some_and(|f| f.contains("card=3")))
        .unwrap_or_else(|| panic!("no redaction recorded: {conn:?}"));
    assert_eq!(redacted["status"], "ok");
    assert!(
        conn.iter().any(|e| e["findings"]
            .as_str()
            .is_some_and(|f| f.contains("truncated="))),
        "the truncation is on record"
    );
    // The classification keeps masked copies of arguments and results.
    let kept = conn
        .iter()
        .find(|e| {
            e["arguments"]["sql"]
                .as_str()
                .is_some_and(|q| q.starts_with("SELECT name, email, card"))
        })
        .unwrap_or_else(|| panic!("the query's arguments are kept: {conn:?}"));
    let result = kept["result"].to_string();
    assert!(
        result.contains("REDACTED:email") && result.contains("Avery Stone"),
        "{result}"
    );
    assert!(
        conn.iter().any(|e| e["kind"] == "auth"
            && e["method"] == "auth.session_opened"
            && e["status"] == "ok"),
        "a session's sign-in is an authentication event"
    );
    let all = serde_json::to_string(&conn).unwrap_or_default();
    for secret in [
        "ghp_0123",
        "AKIAIOSFODNN7EXAMPLE",
        "avery.stone",
        "4111 1111",
    ] {
        assert!(!all.contains(secret), "{secret} in the audit");
    }
}

/// Every audit event body in the store.
fn audit_events(path: &std::path::Path) -> Vec<Value> {
    let store = gatehouse_store::SqliteAudit::open(path).expect("store");
    store
        .query(&gatehouse_store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .expect("query")
        .into_iter()
        .filter_map(|(_, _, body)| serde_json::from_str(&body).ok())
        .collect()
}

/// A Python SDK server whose errors carry a stack trace, an internal host and address, an
/// SQL error and a path: the client sees a generic message and a correlation id, which
/// leads to the audit record holding the (masked) detail. A plain validation message passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_reach_clients_without_internals() {
    let port = free_port();
    let store = std::env::temp_dir().join(format!("gatehouse-hygiene-{port}.db"));
    let _ = std::fs::remove_file(&store);
    let yaml = format!(
        r#"dev_mode: true
store: {{sqlite: {store}}}
audit: {{durable_all: true}}
upstreams:
  leaky:
    command: {py}
    args: ['{srv}']
"#,
        store = store.display(),
        py = python(),
        srv = repo().join("testdata/servers/leaky_server.py").display(),
    );
    let gw = start_gateway(&yaml).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;

    let leaked = |body: &str| {
        [
            "Traceback",
            "prod.internal",
            "10.12.0.7",
            "/srv/app",
            "does not exist",
            "ConnectionError",
            "pg-primary",
        ]
        .into_iter()
        .find(|i| body.contains(i))
    };
    let mut references = Vec::new();
    // A failed tool result whose text is a stack trace with an internal host.
    let r = mcp.call("leaky__report", json!({"month": "2026-10"})).await;
    let body = r.to_string();
    assert_eq!(r["isError"], true, "{body}");
    assert_eq!(leaked(&body), None, "{body}");
    let reference = r["_meta"]["gatehouse/correlationId"]
        .as_str()
        .unwrap_or_else(|| panic!("a correlation id: {body}"))
        .to_owned();
    assert!(text(&r).contains(&reference), "{body}");
    references.push(reference);
    // A JSON-RPC error whose message is the database's error with a path.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "leaky__lookup", "arguments": {"table": "payroll"}}),
        )
        .await;
    let body = r.last().to_string();
    assert_eq!(r.error_code(), -32603, "{body}");
    assert_eq!(leaked(&body), None, "{body}");
    references.push(
        r.last()["error"]["data"]["correlationId"]
            .as_str()
            .unwrap_or_else(|| panic!("a correlation id: {body}"))
            .to_owned(),
    );
    // A tool's own validation message is fit for the client and passes.
    let r = mcp.call("leaky__validate", json!({"value": 99})).await;
    assert!(text(&r).contains("value must be between 1 and 10"), "{r}");

    drop(mcp);
    let events = audit_events(&store);
    for reference in &references {
        let e = events
            .iter()
            .find(|e| e["correlation"] == reference.as_str())
            .unwrap_or_else(|| panic!("the audit holds {reference}: {events:?}"));
        let detail = e["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("Traceback") || detail.contains("does not exist"),
            "the detail is kept for the operator: {e}"
        );
    }
}

/// c-icap (Debian) with ClamAV and a custom signature: arguments (REQMOD) and results
/// (RESPMOD) carrying it are blocked; clean traffic passes; with the server down, calls
/// fail closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icap_scanner_blocks_what_it_detects_and_fails_closed() {
    const SIGNATURE: &str = "GATEHOUSE-ICAP-TEST-SIGNATURE";
    let db = std::path::Path::new("/var/lib/clamav");
    std::fs::create_dir_all(db).expect("ClamAV database directory (scripts/test installs c-icap)");
    let hex: String = SIGNATURE.bytes().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        db.join("gatehouse-test.ndb"),
        format!("GatehouseTest.Marker:0:*:{hex}\n"),
    )
    .expect("custom signature");
    let icap_port = free_port();
    let dir = std::env::temp_dir().join(format!("gatehouse-icap-{icap_port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let d = dir.display();
    std::fs::write(
        dir.join("c-icap.conf"),
        format!(
            "PidFile {d}/c-icap.pid\nCommandsSocket {d}/c-icap.ctl\nPort 127.0.0.1:{icap_port}\nServerLog {d}/server.log\nAccessLog {d}/access.log\nTmpDir {d}\nModulesDir /usr/lib/x86_64-linux-gnu/c_icap\nServicesDir /usr/lib/x86_64-linux-gnu/c_icap\nTemplateDir /usr/share/c_icap/templates/\nLoadMagicFile /etc/c-icap/c-icap.magic\nStartServers 1\nMaxServers 2\nThreadsPerChild 4\nService echo srv_echo.so\nInclude /etc/c-icap/clamav_mod.conf\nInclude /etc/c-icap/virus_scan.conf\n"
        ),
    )
    .expect("c-icap config");
    // c-icap forks its server processes, which hold the listening socket: it runs in its own
    // process group and the whole group is stopped, on the way out too.
    let icap = Command::new("c-icap")
        .args(["-N", "-f"])
        .arg(dir.join("c-icap.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("c-icap runs (scripts/test installs it)");
    let icap_group = KillGroup(icap.id().expect("c-icap pid"));
    wait_port(icap_port).await;

    let yaml = format!(
        "dev_mode: true\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\nicap: {{url: 'icap://127.0.0.1:{icap_port}/srv_clamav', reqmod: true, timeout_ms: 5000}}\n",
        bin = gatehouse_bin()
    );
    let gw = start_gateway(&yaml).await;
    let mcp = Mcp::connect(&gw.mcp(), "2025-11-25").await;
    // Clean both ways.
    let r = mcp
        .call("demo__search_files", json!({"query": "vpn"}))
        .await;
    assert!(text(&r).contains("ops/vpn.md"), "{r}");
    // The signature in the arguments: REQMOD blocks the call.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "demo__search_files", "arguments": {"query": SIGNATURE}}),
        )
        .await;
    assert_eq!(r.error_code(), -32003, "{:?}", r.last());
    assert!(r.error_message().contains("arguments"), "{:?}", r.last());
    // Only the result carries it: RESPMOD blocks the result.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "demo__read_database", "arguments": {"query": "SELECT 'GATEHOUSE-ICAP-' || 'TEST-SIGNATURE' AS x"}}),
        )
        .await;
    assert_eq!(r.error_code(), -32003, "{:?}", r.last());
    assert!(!r.last().to_string().contains(SIGNATURE), "{:?}", r.last());
    assert!(r.error_message().contains("result"), "{:?}", r.last());
    // The scanner gone: fail closed.
    drop(icap_group);
    let gone = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", icap_port)).is_ok() {
        assert!(
            gone.elapsed() < std::time::Duration::from_secs(10),
            "c-icap still listening after SIGKILL to its group"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(icap);
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "demo__search_files", "arguments": {"query": "vpn"}}),
        )
        .await;
    assert_eq!(r.error_code(), -32603, "{:?}", r.last());
    assert!(r.error_message().contains("unavailable"), "{:?}", r.last());
}

/// Sends SIGKILL to a process group when dropped, so forked servers never outlive a test.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .status();
    }
}
