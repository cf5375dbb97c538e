//! The operator console: the demo's story through the console's own API (a production
//! deploy approved by the admin, refused without its CSRF token or from another origin or
//! by a viewer), masking per role and the poisoned notice in the live feed, the policy and
//! pin pages, and the console in a real browser; `console_access.rs` has the sign-in doors.
// Test code reads its own child's banner.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::cli::demo_request;
use crate::common::{free_port, gatehouse_bin, last_json, peers, read_text, run_ok, wait_port};

/// `serve --demo` (no npx on PATH: only the bundled demo server) with its printed API keys
/// and one-time console links, by role; stopped when dropped.
pub(crate) struct Demo {
    pub(crate) base: String,
    pub(crate) keys: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
    _child: Child,
}

pub(crate) async fn demo() -> Demo {
    let port = free_port();
    let mut child = Command::new(gatehouse_bin())
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .env("PATH", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve --demo");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut keys, mut links) = (BTreeMap::new(), BTreeMap::new());
    while keys.len() < 3 || links.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("banner in time")
            .expect("read")
            .expect("banner lists keys and links");
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["console", "as", role, link] => links.insert(role.to_string(), link.to_string()),
            [role @ ("analyst" | "engineer" | "admin"), key] => {
                keys.insert(role.to_string(), key.to_string())
            }
            _ => None,
        };
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    wait_port(port).await;
    let base = format!("http://127.0.0.1:{port}");
    // The demo server is listed once it has started.
    for _ in 0..100 {
        let v = demo_request(&base, &keys["analyst"], "tools/list", json!({})).await;
        if v["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Demo {
        base,
        keys,
        links,
        _child: child,
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A signed-in console: its cookie and CSRF token.
pub(crate) struct Operator {
    pub(crate) base: String,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

impl Operator {
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = client()
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get");
        let status = r.status();
        (
            status,
            serde_json::from_str(&read_text(r).await).unwrap_or(Value::Null),
        )
    }

    /// A change, with the CSRF token unless `csrf` is false, from `origin` if given.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: Value,
        csrf: bool,
        origin: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut rb = client()
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .json(&body);
        if csrf {
            rb = rb.header("x-gatehouse-csrf", &self.csrf);
        }
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        let r = rb.send().await.expect("post");
        let status = r.status();
        (
            status,
            serde_json::from_str(&read_text(r).await).unwrap_or(Value::Null),
        )
    }
}

/// The session cookie a sign-in answer set, checked for its attributes.
pub(crate) fn session_cookie(h: &reqwest::header::HeaderMap) -> String {
    let set = h
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gatehouse-console="))
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    set.split(';').next().expect("pair").to_owned()
}

async fn by_link(base: &str, link: &str) -> Operator {
    let r = client().get(link).send().await.expect("link");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console");
    let cookie = session_cookie(r.headers());
    let mut op = Operator {
        base: base.to_owned(),
        cookie,
        csrf: String::new(),
    };
    let (_, me) = op.get("/console/api/me").await;
    op.csrf = me["csrf"].as_str().expect("csrf").to_owned();
    op
}

pub(crate) fn call(tool: &str, args: Value) -> Value {
    json!({"name": tool, "arguments": args})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_approves_a_production_deploy_in_the_console_and_forged_changes_are_refused() {
    let d = demo().await;
    let page = client()
        .get(format!("{}/console", d.base))
        .send()
        .await
        .expect("page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let admin = by_link(&d.base, &d.links["admin"]).await;
    // A link works once.
    let again = client().get(&d.links["admin"]).send().await.expect("reuse");
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    let prod = call(
        "demo__deploy_service",
        json!({"service": "api", "version": "2.0", "environment": "production"}),
    );
    let held = demo_request(&d.base, &d.keys["engineer"], "tools/call", prod.clone()).await;
    let id = held["result"]["_meta"]["gatehouse/approval"]["id"]
        .as_str()
        .expect("held")
        .to_owned();
    let staging = call(
        "demo__deploy_service",
        json!({"service": "api", "version": "2.0", "environment": "staging"}),
    );
    let ran = demo_request(&d.base, &d.keys["engineer"], "tools/call", staging).await;
    assert_eq!(
        ran["result"]["content"][0]["text"], "deployed api 2.0 to staging",
        "{ran}"
    );
    // The engineer is a viewer in the console: no inbox, no decisions.
    let engineer = by_link(&d.base, &d.links["engineer"]).await;
    assert_eq!(
        engineer.get("/console/api/approvals").await.0,
        StatusCode::FORBIDDEN
    );
    let approve = format!("/console/api/approvals/{id}/approve");
    let reason = json!({"reason": "change 4211"});
    assert_eq!(
        engineer.post(&approve, reason.clone(), true, None).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, inbox) = admin.get("/console/api/approvals").await;
    assert_eq!(inbox["approvals"][0]["id"], id.as_str(), "{inbox}");
    assert_eq!(
        inbox["approvals"][0]["arguments"]["environment"],
        "production"
    );
    // Forged changes: no CSRF token, or another site's origin.
    assert_eq!(
        admin.post(&approve, reason.clone(), false, None).await.0,
        StatusCode::FORBIDDEN
    );
    let evil = admin
        .post(&approve, reason.clone(), true, Some("http://evil.example"))
        .await;
    assert_eq!(evil.0, StatusCode::FORBIDDEN);
    let (status, decided) = admin.post(&approve, reason, true, None).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "approved");
    let ran = demo_request(&d.base, &d.keys["engineer"], "tools/call", prod).await;
    assert_eq!(
        ran["result"]["content"][0]["text"], "deployed api 2.0 to production",
        "{ran}"
    );
    // The audit explorer shows the operator's sign-in and decision under their name.
    let (_, page) = admin
        .get("/console/api/audit?principal=demo-admin&limit=20")
        .await;
    let methods: Vec<&str> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["event"]["method"].as_str())
        .collect();
    assert!(methods.contains(&"console.signed_in"), "{methods:?}");
    let (_, all) = admin.get("/console/api/audit?limit=200").await;
    let decision = all["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["event"]["method"] == "approval.approved")
        .expect("decision audited");
    assert!(decision.to_string().contains("demo-admin"), "{decision}");
    let (_, verified) = admin.get("/console/api/audit/verify").await;
    assert_eq!(verified["chains"][0]["ok"], true, "{verified}");
    // The admin's own agent waits too when it deletes or changes permissions.
    for (tool, args) in [
        ("demo__delete_database", json!({"table": "orders"})),
        (
            "demo__modify_permissions",
            json!({"user": "bob", "role": "admin"}),
        ),
    ] {
        let v = demo_request(&d.base, &d.keys["admin"], "tools/call", call(tool, args)).await;
        assert_eq!(
            v["result"]["_meta"]["gatehouse/approval"]["status"], "pending",
            "{tool}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyst_sees_masked_contacts_and_the_poisoned_notice_shows_in_the_live_feed() {
    let d = demo().await;
    let query = call(
        "demo__read_database",
        json!({"query": "SELECT email, phone FROM customers WHERE id = 1"}),
    );
    let analyst = demo_request(&d.base, &d.keys["analyst"], "tools/call", query.clone()).await;
    let text = analyst["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(
        text.contains("[REDACTED:email]") && text.contains("[REDACTED:phone]"),
        "{text}"
    );
    let engineer = demo_request(&d.base, &d.keys["engineer"], "tools/call", query).await;
    let text = engineer["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(text.contains("ops@acme.example"), "{text}");
    let notice = demo_request(
        &d.base,
        &d.keys["analyst"],
        "tools/call",
        call("demo__search_files", json!({"query": "customers"})),
    )
    .await;
    let text = notice["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(
        !text.contains("delete_database") && text.contains("removed by Gatehouse"),
        "{text}"
    );
    let viewer = by_link(&d.base, &d.links["analyst"]).await;
    let (status, live) = viewer.get("/console/api/live").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        live["metrics"]
            .as_str()
            .expect("metrics")
            .contains("gatehouse_requests_total")
    );
    let found = live["feed"].as_array().expect("feed").iter().any(|f| {
        f["target"] == "demo__search_files" && !f["detections"].as_array().is_none_or(Vec::is_empty)
    });
    assert!(found, "{live}");
    // A viewer reads the inventory but not the audit trail or the keys.
    let (_, inv) = viewer.get("/console/api/inventory").await;
    let tools = inv["upstreams"][0]["tools"].as_array().expect("tools");
    let delete = tools
        .iter()
        .find(|t| t["name"] == "demo__delete_database")
        .expect("listed");
    assert_eq!(delete["verb"], "delete");
    assert_eq!(delete["roles"], json!(["admin", "destructive"]), "{delete}");
    assert_eq!(
        viewer.get("/console/api/audit").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer.get("/console/api/keys").await.0,
        StatusCode::FORBIDDEN
    );
}

pub(crate) const ADMIN_TOKEN: &str = "console-admin-token-0123456789abcdef";

pub(crate) async fn login(
    base: &str,
    body: Value,
    content_type: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut rb = client()
        .post(format!("{base}/console/api/login"))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    rb.send().await.expect("login")
}

/// The console in a real browser (Debian's Chromium): the page runs under its CSP with no
/// script error, and the admin's click approves the engineer's production deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_admin_approves_the_deploy_and_every_page_renders_under_the_csp() {
    let d = demo().await;
    let prod = call(
        "demo__deploy_service",
        json!({"service": "web", "version": "3.1", "environment": "production"}),
    );
    let held = demo_request(&d.base, &d.keys["engineer"], "tools/call", prod.clone()).await;
    assert!(
        held["result"]["_meta"]["gatehouse/approval"]["id"].is_string(),
        "{held}"
    );
    // A detection for the live feed.
    demo_request(
        &d.base,
        &d.keys["analyst"],
        "tools/call",
        call("demo__search_files", json!({"query": "customers"})),
    )
    .await;
    let mut cmd = Command::new("node");
    cmd.arg(peers().join("console_browser.mjs"))
        .arg(&d.links["admin"]);
    if let Ok(dir) = std::env::var("GATEHOUSE_SCREENSHOTS") {
        cmd.arg(dir);
    }
    // Traffic while the browser looks, so the live page has rates and latencies to draw.
    let (base, key) = (d.base.clone(), d.keys["analyst"].clone());
    let traffic = tokio::spawn(async move {
        let read = call(
            "demo__read_database",
            json!({"query": "SELECT count(*) FROM orders"}),
        );
        loop {
            demo_request(&base, &key, "tools/call", read.clone()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = last_json(&run_ok(&mut cmd, 120).await);
    traffic.abort();
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["approved"], true, "{out}");
    for page in ["audit", "inventory"] {
        assert!(
            out["pages"][page].as_u64().unwrap_or(0) > 0,
            "{page}: {out}"
        );
    }
    let ran = demo_request(&d.base, &d.keys["engineer"], "tools/call", prod).await;
    assert_eq!(
        ran["result"]["content"][0]["text"], "deployed web 3.1 to production",
        "{ran}"
    );
}

/// Policy pages: an explanation of one decision, and a what-if that replays the recent calls
/// against a draft and lists those whose outcome would change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_what_if_answer_from_the_running_policy_and_recent_calls() {
    let d = demo().await;
    let admin = by_link(&d.base, &d.links["admin"]).await;
    let ask = |roles: &str| json!({"principal": "someone", "roles": roles, "tool": "demo__delete_database"});
    let (_, denied) = admin
        .post("/console/api/explain", ask("analyst"), true, None)
        .await;
    assert_eq!(denied["outcome"]["decision"], "deny", "{denied}");
    let (_, allowed) = admin
        .post("/console/api/explain", ask("admin"), true, None)
        .await;
    assert_eq!(allowed["outcome"]["decision"], "allow", "{allowed}");
    let staging = call(
        "demo__deploy_service",
        json!({"service": "api", "version": "1", "environment": "staging"}),
    );
    let ran = demo_request(&d.base, &d.keys["engineer"], "tools/call", staging).await;
    assert!(ran["result"]["content"][0]["text"].is_string(), "{ran}");
    let read = call("demo__read_database", json!({"query": "SELECT 1"}));
    demo_request(&d.base, &d.keys["analyst"], "tools/call", read).await;
    // The draft takes staging deploys away from engineers; reading stays as it was.
    let draft = "roles:\n  analyst: {tools: [demo.read_database, demo.search_files]}\n  engineer: {inherits: [analyst], tools: [demo.execute_code]}\n  admin: [engineer]\n";
    let (status, r) = admin
        .post(
            "/console/api/whatif",
            json!({"authorization": draft}),
            true,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let changed = r["changed"].as_array().expect("changed");
    assert_eq!(changed.len(), 1, "{r}");
    assert_eq!(changed[0]["tool"], "demo__deploy_service");
    assert_eq!(changed[0]["principal"], "apikey/demo-engineer");
    assert_eq!(
        (
            changed[0]["was"].as_str(),
            changed[0]["would_be"]["decision"].as_str()
        ),
        (Some("allowed"), Some("deny"))
    );
    assert!(r["replayed"].as_u64().expect("replayed") >= 2, "{r}");
    // A draft that does not validate is refused with the reason.
    let (status, bad) = admin
        .post(
            "/console/api/whatif",
            json!({"authorization": "roles: {a: {inherits: [missing]}}"}),
            true,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

/// Quarantine review in the console: the held tool with both definitions and its findings,
/// a rejection needs a reason, and the decision is audited under the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reviews_a_held_tool_definition_in_the_console() {
    let dir = std::env::temp_dir().join(format!("gatehouse-console-pins-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let state = dir.join("notes-version");
    std::fs::write(&state, "1").expect("state");
    std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).expect("token");
    let yaml = format!(
        "dev_mode: true\nstore: {{sqlite: {}}}\nadmin: {{token: \"file:{}\"}}\nupstreams:\n  poisoned:\n    command: {}\n    args: ['{}', '{}']\n",
        dir.join("g.db").display(),
        dir.join("admin.token").display(),
        crate::common::python(),
        crate::common::repo()
            .join("testdata/servers/poisoned_server.py")
            .display(),
        state.display(),
    );
    let cfg = gatehouse_proxy::Config::from_yaml(&yaml, &|k| {
        (k == "CONSOLE_PINS_ADMIN").then(|| ADMIN_TOKEN.to_owned())
    })
    .expect("config");
    let gw = crate::common::start_gateway_with(cfg, true).await;
    let ok = login(
        &gw.base,
        json!({"token": ADMIN_TOKEN}),
        "application/json",
        None,
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let mut admin = Operator {
        base: gw.base.clone(),
        cookie: session_cookie(ok.headers()),
        csrf: String::new(),
    };
    admin.csrf = admin.get("/console/api/me").await.1["csrf"]
        .as_str()
        .expect("csrf")
        .to_owned();
    let (_, held) = admin.get("/console/api/pins?status=held").await;
    let add = held["pins"]
        .as_array()
        .expect("pins")
        .iter()
        .find(|p| p["name"] == "add")
        .expect("add is held")
        .clone();
    assert_ne!(add["status"], "approved", "{add}");
    let (_, one) = admin.get("/console/api/pins/poisoned/tool/add").await;
    // The reviewer sees where each finding sits: a span of the proposed description.
    let description = one["proposed"]["description"]
        .as_str()
        .expect("description");
    let spans = one["spans"].as_array().expect("spans");
    let span = spans
        .iter()
        .find(|f| f["at"] == "/description" && f["rule"] == "tool.sensitive_file_directive")
        .expect("a span");
    let start = span["start"].as_u64().expect("start") as usize;
    let end = span["end"].as_u64().expect("end") as usize;
    let matched: String = description.chars().skip(start).take(end - start).collect();
    assert!(matched.contains(".cursor/mcp.json"), "{matched:?} {one}");
    let reject = "/console/api/pins/poisoned/tool/add/reject";
    let (status, _) = admin.post(reject, json!({"reason": ""}), true, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, done) = admin
        .post(
            reject,
            json!({"reason": "asks for the SSH key", "by": "mallory"}),
            true,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "rejected");
    assert_eq!(
        done["decided_by"], "admin",
        "the operator, whatever a body might claim"
    );
}
