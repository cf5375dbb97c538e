//! `gatehouse discover` against configuration files written for the test in each client's
//! documented format (Claude Desktop, Claude Code user and project, Cursor, VS Code user
//! and workspace, Windsurf, Zed, Continue YAML, JSON and project blocks, Cline, Codex CLI,
//! Gemini CLI): every server found, the ones through the gateway told apart, the risks
//! named, and no secret value copied into the report.

use std::path::Path;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{free_port, gatehouse_bin};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
    std::fs::write(p, text).expect("fixture");
}

fn fixtures(home: &Path, project: &Path) {
    write(
        home,
        ".config/Claude/claude_desktop_config.json",
        r#"{"mcpServers": {
            "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"]},
            "gw": {"command": "gatehouse", "args": ["connect", "http://127.0.0.1:8080/mcp"]}}}"#,
    );
    write(
        home,
        ".claude.json",
        r#"{"numStartups": 3, "mcpServers": {
            "github": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github@2025.4.8"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literal_secret_value"}}},
          "projects": {"/work/app": {"mcpServers": {"sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"}}}}}"#,
    );
    write(
        project,
        ".mcp.json",
        r#"{"mcpServers": {"db": {"type": "stdio", "command": "uvx", "args": ["mcp-server-postgres"], "env": {"DATABASE_URL": "${DATABASE_URL}"}}}}"#,
    );
    write(
        home,
        ".cursor/mcp.json",
        r#"{"mcpServers": {"via-gateway": {"url": "http://127.0.0.1:8080/mcp"}}}"#,
    );
    write(
        project,
        ".cursor/mcp.json",
        r#"{"mcpServers": {"linear": {"url": "https://mcp.linear.app/sse", "headers": {"Authorization": "Bearer lin_literal_secret"}}}}"#,
    );
    write(
        home,
        ".config/Code/User/mcp.json",
        "{\n  // Playwright, from the marketplace\n  \"servers\": {\"playwright\": {\"type\": \"stdio\", \"command\": \"npx\", \"args\": [\"@playwright/mcp@latest\"],},},\n  \"inputs\": []\n}",
    );
    write(
        project,
        ".vscode/mcp.json",
        r#"{"servers": {"copilot": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}}}"#,
    );
    write(
        home,
        ".codeium/windsurf/mcp_config.json",
        r#"{"mcpServers": {"remote": {"serverUrl": "http://mcp.internal.example/mcp"}}}"#,
    );
    write(
        home,
        ".config/zed/settings.json",
        "{\n  \"theme\": \"One Dark\",\n  /* servers */\n  \"context_servers\": {\n    \"zed-fs\": {\"command\": {\"path\": \"npx\", \"args\": [\"-y\", \"some-mcp@1.0.0\"], \"env\": {}}},\n    \"zed-new\": {\"command\": \"node\", \"args\": [\"/opt/x.js\"]}\n  }\n}",
    );
    write(
        home,
        ".continue/config.yaml",
        "name: assistant\nversion: 0.0.1\nmcpServers:\n  - name: sqlite\n    command: uvx\n    args: [mcp-server-sqlite==2025.1.1, --db-path, /tmp/x.db]\n",
    );
    write(
        home,
        ".continue/config.json",
        r#"{"experimental": {"modelContextProtocolServers": [{"transport": {"type": "stdio", "command": "npx", "args": ["-y", "mcp-everything"]}}]}}"#,
    );
    write(
        project,
        ".continue/mcpServers/browser.yaml",
        "name: Browser\nversion: 0.0.1\nschema: v1\nmcpServers:\n  - name: browser\n    command: npx\n    args: [\"@browsermcp/mcp@0.1.3\"]\n",
    );
    write(
        home,
        ".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
        r#"{"mcpServers": {"weather": {"command": "node", "args": ["/w.js"], "env": {"API_KEY": "abc123literal"}, "disabled": false, "autoApprove": []}}}"#,
    );
    write(
        home,
        ".codex/config.toml",
        "model = \"o4\"\n\n[mcp_servers.docs]\ncommand = \"npx\"\nargs = [\"-y\", \"docs-mcp\"]\nenv = { \"DOCS_TOKEN\" = \"t0ken_literal\" }\n",
    );
    write(
        home,
        ".gemini/settings.json",
        r#"{"mcpServers": {"gem": {"httpUrl": "https://gem.example/mcp", "headers": {"X-Api-Key": "k_literal"}}}}"#,
    );
    write(
        project,
        ".gemini/settings.json",
        r#"{"mcpServers": {"local": {"command": "python", "args": ["server.py"], "cwd": "./x"}}}"#,
    );
}

#[tokio::test]
async fn every_clients_servers_are_found_and_their_risks_named() {
    let root = std::env::temp_dir().join(format!("gatehouse-discover-{}", free_port()));
    let _ = std::fs::remove_dir_all(&root);
    let (home, project) = (root.join("home"), root.join("project"));
    fixtures(&home, &project);
    let out = Command::new(gatehouse_bin())
        .arg("discover")
        .arg("--home")
        .arg(&home)
        .arg("--project")
        .arg(&project)
        .args([
            "--gateway",
            "http://127.0.0.1:8080/mcp",
            "--allow-host",
            "api.githubcopilot.com",
            "--json",
        ])
        .output()
        .await
        .expect("discover");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in [
        "ghp_literal_secret_value",
        "lin_literal_secret",
        "abc123literal",
        "t0ken_literal",
        "k_literal",
    ] {
        assert!(!raw.contains(secret), "the report carries {secret}");
    }
    let r: Value = serde_json::from_str(&raw).expect("json");
    let servers = r["servers"].as_array().expect("servers");
    let by = |name: &str| -> &Value {
        servers
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} not found: {r:#}"))
    };
    let risks = |name: &str| -> String { by(name)["risks"].to_string() };
    let mut clients: Vec<&str> = servers
        .iter()
        .filter_map(|s| s["client"].as_str())
        .collect();
    clients.sort();
    clients.dedup();
    assert_eq!(
        clients,
        [
            "Claude Code",
            "Claude Desktop",
            "Cline",
            "Codex CLI",
            "Continue",
            "Cursor",
            "Gemini CLI",
            "VS Code",
            "Windsurf",
            "Zed"
        ]
    );
    assert_eq!(servers.len(), 19, "{r:#}");
    assert_eq!(r["unmanaged"], 17);

    // Through the gateway: a URL to it, or its stdio bridge.
    assert_eq!(by("gw")["managed"], true);
    assert_eq!(by("via-gateway")["managed"], true);
    assert_eq!(by("via-gateway")["risks"], json!([]));
    // Packages that run whatever the registry serves.
    for name in ["filesystem", "db", "playwright", "server-0", "docs"] {
        assert!(
            risks(name).contains("unpinned package"),
            "{name}: {}",
            risks(name)
        );
    }
    for name in ["github", "zed-fs", "sqlite", "browser"] {
        assert!(!risks(name).contains("unpinned"), "{name}: {}", risks(name));
    }
    // Secrets written into files; a reference to a variable is not one.
    assert!(risks("github").contains("GITHUB_PERSONAL_ACCESS_TOKEN"));
    assert!(risks("weather").contains("API_KEY"));
    assert!(risks("docs").contains("DOCS_TOKEN"));
    assert!(!risks("db").contains("DATABASE_URL"));
    assert!(risks("linear").contains("credential in header Authorization"));
    assert!(risks("gem").contains("credential in header X-Api-Key"));
    // Remote endpoints: off the allowlist, plain http; the allowlisted one is only unmanaged.
    assert!(risks("sentry").contains("mcp.sentry.dev is not on the allowlist"));
    assert!(risks("remote").contains("plain http"));
    assert!(!risks("copilot").contains("allowlist"));
    assert!(risks("copilot").contains("does not go through the gateway"));
    assert_eq!(by("zed-new")["command"], "node");
    assert_eq!(by("gem")["transport"], "http");

    // The text report names them too.
    let out = Command::new(gatehouse_bin())
        .arg("discover")
        .arg("--home")
        .arg(&home)
        .arg("--project")
        .arg(&project)
        .args(["--gateway", "http://127.0.0.1:8080/mcp"])
        .output()
        .await
        .expect("discover");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "19 MCP servers in 16 client configuration files; 17 do not go through the gateway"
        ),
        "{text}"
    );
    assert!(text.contains("RISK Codex CLI / docs"), "{text}");
}

/// `--probe` on loopback: the gateway and a Python SDK server are fingerprinted by their
/// answer to `initialize`; a closed port and a web server that is not MCP are not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_loopback_ports_finds_mcp_servers_by_their_handshake() {
    let gw = crate::common::start_gateway(&format!(
        "dev_mode: true\nupstreams:\n  demo:\n    command: {}\n    args: [demo-server]\n",
        gatehouse_bin()
    ))
    .await;
    let gw_port: u16 = gw
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let py = free_port();
    let _server = Command::new(crate::common::python())
        .arg(crate::common::repo().join("testdata/servers/trace_server.py"))
        .args(["http", &py.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python server");
    crate::common::wait_port(py).await;
    // A web server that is not MCP.
    let web = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let web_port = web.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let app =
            axum::Router::new().fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no") });
        let _ = axum::serve(web, app).await;
    });
    let closed = free_port();
    let out = Command::new(gatehouse_bin())
        .args([
            "discover",
            "--probe",
            &format!("127.0.0.1:{gw_port},{py},{web_port},{closed}"),
        ])
        .output()
        .await
        .expect("probe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let endpoints = v["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2, "{v:#}");
    let at = |port: u16| {
        endpoints
            .iter()
            .find(|e| {
                e["endpoint"]
                    .as_str()
                    .is_some_and(|u| u.contains(&format!(":{port}/")))
            })
            .unwrap_or_else(|| panic!("{port}: {v:#}"))
    };
    assert_eq!(at(gw_port)["gateway"], true);
    assert_eq!(at(py)["serverInfo"]["name"], "gatehouse-trace-peer");
    assert_eq!(at(py)["gateway"], false);
    assert!(at(py)["protocolVersion"].is_string());
}

/// A machine's report reaches the admin API (`--report-to`): the gateway keeps the latest
/// per machine, lists its unmanaged servers, audits the arrival, and refuses a report
/// without the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_the_admin_api_and_unmanaged_servers_are_listed_per_machine() {
    let root = std::env::temp_dir().join(format!("gatehouse-inventory-{}", free_port()));
    let _ = std::fs::remove_dir_all(&root);
    let (home, project) = (root.join("home"), root.join("project"));
    fixtures(&home, &project);
    let admin = "admin-token-for-the-inventory-test-0123456789";
    std::fs::write(root.join("admin.token"), admin).expect("token");
    let gw = crate::common::start_gateway(&format!(
        "dev_mode: true\nstore: {{sqlite: {db}}}\naudit: {{}}\nadmin: {{token: \"file:{tok}\"}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
        db = root.join("gatehouse.db").display(),
        tok = root.join("admin.token").display(),
        bin = gatehouse_bin()
    ))
    .await;
    let run = |token: &str| {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.arg("discover")
            .arg("--home")
            .arg(&home)
            .arg("--project")
            .arg(&project)
            .args(["--gateway", "http://127.0.0.1:8080/mcp", "--json"])
            .args(["--report-to", &gw.base, "--token", token]);
        cmd
    };
    let out = run("wrong-token").output().await.expect("discover");
    assert!(
        !out.status.success(),
        "a report without the admin token was accepted"
    );
    let out = run(admin).output().await.expect("discover");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let v: Value = serde_json::from_str(
        &crate::common::read_text(
            reqwest::Client::new()
                .get(format!("{}/admin/v1/inventory", gw.base))
                .bearer_auth(admin)
                .send()
                .await
                .expect("inventory"),
        )
        .await,
    )
    .expect("json");
    let machine = &v["machines"][0];
    assert_eq!(machine["servers"], 19, "{v:#}");
    let unmanaged = machine["unmanaged"].as_array().expect("unmanaged");
    assert_eq!(unmanaged.len(), 17);
    assert!(
        unmanaged
            .iter()
            .any(|s| s["name"] == "docs" && s["client"] == "Codex CLI")
    );
    assert!(unmanaged.iter().all(|s| s["name"] != "gw"));
    let records = crate::common::read_text(
        reqwest::Client::new()
            .get(format!("{}/admin/v1/audit?limit=1000", gw.base))
            .bearer_auth(admin)
            .send()
            .await
            .expect("audit"),
    )
    .await;
    assert!(
        records.contains("inventory.reported")
            && records.contains("19 MCP servers, 17 not through the gateway"),
        "{records}"
    );
}

/// `--fix`: a dry run writes nothing; applying moves every bypassing server of the JSON
/// configs behind the gateway (valid JSON, a backup kept, the gateway's upstreams listed
/// with secrets as references), leaves commented and YAML/TOML files to the operator, and a
/// second run changes nothing.
#[tokio::test]
async fn fix_sends_clients_through_the_gateway_once_and_keeps_backups() {
    let root = std::env::temp_dir().join(format!("gatehouse-fix-{}", free_port()));
    let _ = std::fs::remove_dir_all(&root);
    let (home, project) = (root.join("home"), root.join("project"));
    fixtures(&home, &project);
    let gateway = "https://mcp.example.com/mcp";
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.arg("discover")
            .arg("--home")
            .arg(&home)
            .arg("--project")
            .arg(&project)
            .args(["--gateway", gateway, "--fix"])
            .args(extra);
        cmd
    };
    let cursor = project.join(".cursor/mcp.json");
    let before = std::fs::read_to_string(&cursor).expect("cursor");
    let out = run(&[]).output().await.expect("dry run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan");
    assert_eq!(plan["applied"], false);
    assert_eq!(
        std::fs::read_to_string(&cursor).expect("cursor"),
        before,
        "a dry run wrote"
    );

    let out = run(&["--apply"]).output().await.expect("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan");
    let changed: Vec<String> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["client"].as_str().unwrap_or("").to_owned())
        .collect();
    for client in [
        "Claude Desktop",
        "Claude Code",
        "Cursor",
        "VS Code",
        "Windsurf",
        "Cline",
        "Gemini CLI",
    ] {
        assert!(changed.iter().any(|c| c == client), "{client}: {plan:#}");
    }
    let plan_files: Vec<Value> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["file"].clone())
        .collect();
    let manual: Vec<&str> = plan["manual"]
        .as_array()
        .expect("manual")
        .iter()
        .filter_map(|m| m["client"].as_str())
        .collect();
    for client in ["Zed", "Continue", "Codex CLI"] {
        assert!(manual.contains(&client), "{client}: {plan:#}");
    }
    // The gateway's side: each moved server, secrets as references.
    let ups = &plan["gateway_upstreams"];
    assert_eq!(
        ups["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"],
        "${GITHUB_PERSONAL_ACCESS_TOKEN}"
    );
    assert_eq!(ups["linear"]["url"], "https://mcp.linear.app/sse");
    // The client file: valid JSON, only the bridge, the original kept.
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cursor).expect("cursor"))
        .expect("valid JSON");
    assert_eq!(v["mcpServers"].as_object().map(|m| m.len()), Some(1), "{v}");
    assert_eq!(
        v["mcpServers"]["gatehouse"]["args"],
        json!(["connect", gateway])
    );
    assert_eq!(
        std::fs::read_to_string(format!("{}.gatehouse-backup", cursor.display())).expect("backup"),
        before
    );
    // Every fixed client now reaches its servers through the gateway only.
    let out = Command::new(gatehouse_bin())
        .arg("discover")
        .arg("--home")
        .arg(&home)
        .arg("--project")
        .arg(&project)
        .args(["--gateway", gateway, "--json"])
        .output()
        .await
        .expect("discover");
    let r: Value = serde_json::from_slice(&out.stdout).expect("report");
    let files: Vec<Value> = plan_files.clone();
    for s in r["servers"].as_array().expect("servers") {
        if files.contains(&s["file"]) {
            assert_eq!(s["managed"], true, "{s}");
        }
    }
    // Idempotent.
    let out = run(&["--apply"]).output().await.expect("again");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan");
    assert_eq!(plan["changes"], json!([]), "{plan:#}");
}

/// `gatehouse sbom`: a CycloneDX document listing every configured server — packages with
/// their package URLs, other commands as applications, HTTP upstreams as services.
#[tokio::test]
async fn the_sbom_lists_every_configured_server() {
    let dir = std::env::temp_dir().join(format!("gatehouse-sbom-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("gatehouse.yaml");
    std::fs::write(
        &cfg,
        "upstreams:\n  files:\n    command: npx\n    args: [-y, '@modelcontextprotocol/server-filesystem@2026.8.31', /srv]\n    integrity: 'sha512-kKaFkyAh6oipvc9+EAbJ552JafnMnOq5nzmzWkp1jJdBhTAAGpmIpWihUG1+rfNhmEFM98gUZDdCHCDD4v6a7Q=='\n    sandbox: {read: [/tmp]}\n  sqlite:\n    command: uvx\n    args: ['mcp-server-sqlite==2025.1.1']\n    integrity: 'sha256:abababababababababababababababababababababababababababababababab'\n  demo:\n    command: gatehouse\n    args: [demo-server]\n  tickets:\n    url: https://tickets.internal.example/mcp\n",
    )
    .expect("config");
    let out = Command::new(gatehouse_bin())
        .arg("sbom")
        .arg(&cfg)
        .output()
        .await
        .expect("sbom");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["bomFormat"], "CycloneDX");
    assert_eq!(v["specVersion"], "1.5");
    let comp = |r: &str| {
        v["components"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["bom-ref"] == r))
            .cloned()
            .unwrap_or_else(|| panic!("{r}: {v:#}"))
    };
    assert_eq!(
        comp("upstream:files")["purl"],
        "pkg:npm/%40modelcontextprotocol/server-filesystem@2026.8.31"
    );
    assert_eq!(comp("upstream:files")["version"], "2026.8.31");
    assert_eq!(comp("upstream:files")["hashes"][0]["alg"], "SHA-512");
    assert_eq!(
        comp("upstream:files")["hashes"][0]["content"]
            .as_str()
            .map(str::len),
        Some(128)
    );
    assert!(
        comp("upstream:files")["properties"]
            .to_string()
            .contains(r#""name":"gatehouse:sandboxed","value":"true""#)
    );
    assert_eq!(
        comp("upstream:sqlite")["purl"],
        "pkg:pypi/mcp-server-sqlite@2025.1.1"
    );
    assert_eq!(comp("upstream:demo")["name"], "gatehouse");
    assert_eq!(
        v["services"][0]["endpoints"][0],
        "https://tickets.internal.example/mcp"
    );
}
