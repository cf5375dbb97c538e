//! `gatehouse discover`: the MCP servers a machine's clients are configured to use, read from
//! each client's own configuration files, with the ones that do not go through the gateway
//! flagged and their risks noted (packages that run whatever version the registry serves,
//! secrets written into the configuration, remote endpoints off the allowlist). Read-only;
//! the JSON report is what fleet collection sends to the admin API.

use std::path::{Path, PathBuf};

use anyhow::Result;
use gatehouse_proxy::config::packages::{pinned, runner_package};
use serde_json::{Map, Value, json};

/// How a client writes its server list.
#[derive(Clone, Copy)]
enum Shape {
    /// `{KEY: {name: entry}}` at a JSON path (JSON with comments allowed).
    JsonMap(&'static [&'static str]),
    /// `~/.claude.json`: `mcpServers` and each project's `mcpServers`.
    ClaudeCodeUser,
    /// Continue's YAML: `mcpServers: [{name, …}]`.
    YamlList,
    /// Continue's older JSON: `experimental.modelContextProtocolServers: [{transport}]`.
    ContinueJson,
    /// Codex CLI's TOML: `[mcp_servers.NAME]`.
    CodexToml,
}

/// Where each client keeps its servers: (client, path under home or project, shape).
const HOME: &[(&str, &str, Shape)] = &[
    (
        "Claude Desktop",
        ".config/Claude/claude_desktop_config.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
    (
        "Claude Desktop",
        "Library/Application Support/Claude/claude_desktop_config.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
    ("Claude Code", ".claude.json", Shape::ClaudeCodeUser),
    (
        "Cursor",
        ".cursor/mcp.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
    (
        "VS Code",
        ".config/Code/User/mcp.json",
        Shape::JsonMap(&["servers"]),
    ),
    (
        "VS Code",
        ".config/Code/User/settings.json",
        Shape::JsonMap(&["mcp", "servers"]),
    ),
    (
        "VS Code",
        "Library/Application Support/Code/User/mcp.json",
        Shape::JsonMap(&["servers"]),
    ),
    (
        "Windsurf",
        ".codeium/windsurf/mcp_config.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
    (
        "Zed",
        ".config/zed/settings.json",
        Shape::JsonMap(&["context_servers"]),
    ),
    ("Continue", ".continue/config.yaml", Shape::YamlList),
    ("Continue", ".continue/config.json", Shape::ContinueJson),
    (
        "Cline",
        ".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
    ("Codex CLI", ".codex/config.toml", Shape::CodexToml),
    (
        "Gemini CLI",
        ".gemini/settings.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
];

const PROJECT: &[(&str, &str, Shape)] = &[
    ("Claude Code", ".mcp.json", Shape::JsonMap(&["mcpServers"])),
    (
        "Cursor",
        ".cursor/mcp.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
    ("VS Code", ".vscode/mcp.json", Shape::JsonMap(&["servers"])),
    (
        "Gemini CLI",
        ".gemini/settings.json",
        Shape::JsonMap(&["mcpServers"]),
    ),
];

/// One server a client is configured with.
#[derive(Debug, Clone)]
struct Found {
    client: &'static str,
    file: PathBuf,
    name: String,
    entry: Value,
}

/// JSON with comments and trailing commas (VS Code's and Zed's settings) as plain JSON.
fn strip_jsonc(s: &str) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let (mut i, mut in_str) = (0, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match (c, b.get(i + 1)) {
            (b'"', _) => {
                in_str = true;
                out.push(b'"');
                i += 1;
            }
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            (b',', _) => {
                // A comma before a closing bracket is dropped.
                let next = b[i + 1..].iter().find(|x| !x.is_ascii_whitespace());
                if !matches!(next, Some(b'}' | b']')) {
                    out.push(b',');
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

fn map_entries(client: &'static str, file: &Path, map: Option<&Value>) -> Vec<Found> {
    map.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(name, entry)| Found {
                    client,
                    file: file.to_path_buf(),
                    name: name.clone(),
                    entry: entry.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The servers one configuration file lists; `Err` when it exists but cannot be read.
fn read_file(client: &'static str, file: &Path, shape: Shape) -> Result<Vec<Found>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let json = || -> Result<Value, String> {
        serde_json::from_str(&strip_jsonc(&text)).map_err(|e| e.to_string())
    };
    Ok(match shape {
        Shape::JsonMap(path) => {
            let v = json()?;
            let mut at = Some(&v);
            for k in path {
                at = at.and_then(|x| x.get(*k));
            }
            map_entries(client, file, at)
        }
        Shape::ClaudeCodeUser => {
            let v = json()?;
            let mut out = map_entries(client, file, v.get("mcpServers"));
            if let Some(projects) = v.get("projects").and_then(Value::as_object) {
                for p in projects.values() {
                    out.extend(map_entries(client, file, p.get("mcpServers")));
                }
            }
            out
        }
        Shape::YamlList => {
            let v: Value = yaml_serde::from_str(&text).map_err(|e| e.to_string())?;
            v.get("mcpServers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| Found {
                            client,
                            file: file.to_path_buf(),
                            name: e["name"].as_str().unwrap_or("(unnamed)").to_owned(),
                            entry: e.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        Shape::ContinueJson => {
            let v = json()?;
            v.pointer("/experimental/modelContextProtocolServers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .map(|(i, e)| Found {
                            client,
                            file: file.to_path_buf(),
                            name: e["name"]
                                .as_str()
                                .map_or_else(|| format!("server-{i}"), str::to_owned),
                            entry: e.get("transport").cloned().unwrap_or(Value::Null),
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        Shape::CodexToml => {
            let t: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
            let v = serde_json::to_value(t).map_err(|e| e.to_string())?;
            map_entries(client, file, v.get("mcp_servers"))
        }
    })
}

/// An entry's command, arguments, environment, URL and headers, whatever the client's
/// spelling (Zed nests the command; Windsurf says `serverUrl`, Gemini `httpUrl`).
struct Server {
    command: Option<String>,
    args: Vec<String>,
    env: Map<String, Value>,
    url: Option<String>,
    headers: Map<String, Value>,
}

fn normalise(e: &Value) -> Server {
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let obj = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let (command, args, env) = match e.get("command") {
        Some(Value::Object(c)) => (
            c.get("path").and_then(Value::as_str).map(str::to_owned),
            strs(c.get("args")),
            obj(c.get("env")),
        ),
        Some(Value::String(c)) => (Some(c.clone()), strs(e.get("args")), obj(e.get("env"))),
        _ => (None, Vec::new(), obj(e.get("env"))),
    };
    let url = ["url", "serverUrl", "httpUrl"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    Server {
        command,
        args,
        env,
        url,
        headers: obj(e.get("headers")),
    }
}

fn secret_name(k: &str) -> bool {
    let k = k.to_ascii_uppercase().replace('-', "_");
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A value written into the file, not a reference to one kept elsewhere.
fn literal(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        !s.is_empty() && !s.starts_with("${") && !s.starts_with("$env:") && !s.starts_with("env:")
    })
}

/// What one server entry risks, and whether it goes through the gateway.
fn assess(s: &Server, gateway: Option<&str>, allow_hosts: &[String]) -> (bool, Vec<String>) {
    let via_gateway = match (&s.url, &s.command, gateway) {
        (Some(u), _, Some(g)) => u.trim_end_matches('/').starts_with(g.trim_end_matches('/')),
        (None, Some(c), Some(g)) => {
            Path::new(c).file_name().is_some_and(|f| f == "gatehouse")
                && s.args.first().is_some_and(|a| a == "connect")
                && s.args
                    .get(1)
                    .is_some_and(|u| u.starts_with(g.trim_end_matches('/')))
        }
        _ => false,
    };
    let mut risks = Vec::new();
    if !via_gateway {
        risks.push("does not go through the gateway".to_owned());
    }
    if let Some(c) = &s.command
        && let Some(pkg) = runner_package(c, &s.args)
        && !pinned(&pkg)
    {
        risks.push(format!(
            "unpinned package `{pkg}`: runs whatever version the registry serves at each start"
        ));
    }
    for (k, v) in &s.env {
        if secret_name(k) && literal(v) {
            risks.push(format!(
                "secret in environment variable {k}, written into the file"
            ));
        }
    }
    for (k, v) in &s.headers {
        if (k.eq_ignore_ascii_case("authorization") || secret_name(k)) && literal(v) {
            risks.push(format!("credential in header {k}, written into the file"));
        }
    }
    if let Some(u) = &s.url
        && !via_gateway
        && let Ok(parsed) = reqwest::Url::parse(u)
    {
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1");
        if !local && !allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            risks.push(format!("remote endpoint {host} is not on the allowlist"));
        }
        if parsed.scheme() == "http" && !local {
            risks.push("plain http to a remote endpoint".to_owned());
        }
    }
    (via_gateway, risks)
}

/// `--fix`: in each client file that lists servers as a JSON map, the servers that bypass
/// the gateway are replaced by one entry that reaches it (`gatehouse connect GATEWAY`, the
/// stdio bridge every client supports). Dry run unless `apply`; applying keeps the original
/// beside it (`FILE.gatehouse-backup`, written once) and writes valid JSON. Files with
/// comments (which a rewrite would lose), YAML and TOML are listed for a manual change.
/// Returns the plan, and the `upstreams` the gateway needs for the servers moved behind it.
pub(crate) fn fix(home: &Path, projects: &[PathBuf], gateway: &str, apply: bool) -> Result<Value> {
    let places = HOME.iter().map(|(c, p, s)| (*c, home.join(p), *s)).chain(
        projects
            .iter()
            .flat_map(|proj| PROJECT.iter().map(move |(c, p, s)| (*c, proj.join(p), *s))),
    );
    let mut changes = Vec::new();
    let mut manual = Vec::new();
    let mut upstreams = Map::new();
    for (client, path, shape) in places {
        if !path.is_file() {
            continue;
        }
        let keys: &[&str] = match shape {
            Shape::JsonMap(k) => k,
            Shape::ClaudeCodeUser => &["mcpServers"],
            _ => {
                if read_file(client, &path, shape).is_ok_and(|f| {
                    f.iter()
                        .any(|s| !assess(&normalise(&s.entry), Some(gateway), &[]).0)
                }) {
                    manual.push(json!({"client": client, "file": path, "why": "YAML or TOML: change it by hand"}));
                }
                continue;
            }
        };
        let text = std::fs::read_to_string(&path)?;
        let Ok(mut doc) = serde_json::from_str::<Value>(&text) else {
            if serde_json::from_str::<Value>(&strip_jsonc(&text)).is_ok() {
                manual.push(json!({"client": client, "file": path, "why": "it has comments a rewrite would lose: change it by hand"}));
            }
            continue;
        };
        let mut pointers = vec![keys.iter().fold(String::new(), |p, k| format!("{p}/{k}"))];
        if matches!(shape, Shape::ClaudeCodeUser)
            && let Some(projects) = doc.get("projects").and_then(Value::as_object)
        {
            // Each project's own servers, by JSON pointer (`~` and `/` escaped).
            pointers.extend(projects.keys().map(|k| {
                format!(
                    "/projects/{}/mcpServers",
                    k.replace('~', "~0").replace('/', "~1")
                )
            }));
        }
        let vscode = keys == ["servers"] || keys == ["mcp", "servers"];
        let mut bypassing: Vec<String> = Vec::new();
        for pointer in &pointers {
            let Some(map) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) else {
                continue;
            };
            let here: Vec<String> = map
                .iter()
                .filter(|(_, e)| !assess(&normalise(e), Some(gateway), &[]).0)
                .map(|(n, _)| n.clone())
                .collect();
            if here.is_empty() {
                continue;
            }
            for name in &here {
                if let Some(e) = map.remove(name) {
                    let s = normalise(&e);
                    // The gateway's upstream for it; secrets become references to fill in.
                    let env: Map<String, Value> = s
                        .env
                        .keys()
                        .map(|k| (k.clone(), Value::String(format!("${{{k}}}"))))
                        .collect();
                    let up = match (&s.url, &s.command) {
                        (Some(u), _) => json!({"url": u}),
                        (None, Some(c)) => json!({"command": c, "args": s.args, "env": env}),
                        _ => continue,
                    };
                    upstreams.insert(name.clone(), up);
                }
            }
            let bridge = if vscode {
                json!({"type": "stdio", "command": "gatehouse", "args": ["connect", gateway]})
            } else {
                json!({"command": "gatehouse", "args": ["connect", gateway]})
            };
            map.entry("gatehouse").or_insert(bridge);
            bypassing.extend(here);
        }
        if bypassing.is_empty() {
            continue;
        }
        let mut change = json!({"client": client, "file": path, "moved": bypassing});
        if apply {
            let backup = PathBuf::from(format!("{}.gatehouse-backup", path.display()));
            if !backup.exists() {
                std::fs::copy(&path, &backup)?;
            }
            std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
            change["backup"] = json!(backup);
        }
        changes.push(change);
    }
    Ok(json!({
        "applied": apply,
        "changes": changes,
        "manual": manual,
        "gateway_upstreams": upstreams,
    }))
}

/// The report for one machine.
pub(crate) fn report(
    home: &Path,
    projects: &[PathBuf],
    gateway: Option<&str>,
    allow_hosts: &[String],
) -> Value {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    let mut found = Vec::new();
    let places = HOME
        .iter()
        .map(|(c, p, s)| (*c, home.join(p), *s))
        .chain(
            projects
                .iter()
                .flat_map(|proj| PROJECT.iter().map(move |(c, p, s)| (*c, proj.join(p), *s))),
        )
        .chain(projects.iter().flat_map(|proj| {
            std::fs::read_dir(proj.join(".continue/mcpServers"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .map(|p| ("Continue", p, Shape::YamlList))
                .collect::<Vec<_>>()
        }));
    for (client, path, shape) in places {
        if !path.is_file() {
            continue;
        }
        match read_file(client, &path, shape) {
            Ok(f) => {
                files.push(json!({"client": client, "file": path}));
                found.extend(f);
            }
            Err(e) => unreadable.push(json!({"client": client, "file": path, "error": e})),
        }
    }
    let servers: Vec<Value> = found
        .iter()
        .map(|f| {
            let s = normalise(&f.entry);
            let (managed, risks) = assess(&s, gateway, allow_hosts);
            let mut v = json!({
                "client": f.client,
                "file": f.file,
                "name": f.name,
                "transport": if s.url.is_some() { "http" } else { "stdio" },
                "managed": managed,
                "risks": risks,
            });
            match (&s.url, &s.command) {
                (Some(u), _) => v["url"] = json!(u),
                (None, Some(c)) => {
                    v["command"] = json!(c);
                    v["args"] = json!(s.args);
                }
                _ => {}
            }
            // Names of variables only: the report never carries their values.
            v["env"] = json!(s.env.keys().collect::<Vec<_>>());
            v
        })
        .collect();
    let unmanaged = servers.iter().filter(|s| s["managed"] == false).count();
    json!({
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        "gateway": gateway,
        "files": files,
        "unreadable": unreadable,
        "servers": servers,
        "unmanaged": unmanaged,
    })
}

/// Ports named as `HOST:PORT,PORT,LOW-HIGH` (at most 1024 of them).
fn probe_targets(spec: &str) -> Result<(String, Vec<u16>)> {
    let (host, ports) = spec
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--probe HOST:PORTS, e.g. 127.0.0.1:3000-3010,8080"))?;
    let mut out = Vec::new();
    for part in ports.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u16, u16) = (lo.trim().parse()?, hi.trim().parse()?);
        anyhow::ensure!(lo <= hi, "port range {part} is backwards");
        out.extend(lo..=hi);
        anyhow::ensure!(out.len() <= 1024, "at most 1024 ports per probe");
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), out))
}

/// What answers MCP on `host` among `ports`: a Streamable HTTP `initialize` at `/mcp` (and
/// at `/`), else a legacy SSE endpoint at `/sse`. Connection attempts are short; nothing
/// but the handshake is sent.
pub(crate) async fn probe(spec: &str) -> Result<Value> {
    let (host, ports) = probe_targets(spec)?;
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_millis(500))
        .timeout(std::time::Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "gatehouse-discover", "version": env!("CARGO_PKG_VERSION")}}});
    let mut found = Vec::new();
    for port in ports {
        let base = if host.contains(':') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        };
        for path in ["/mcp", "/"] {
            let Ok(mut resp) = http
                .post(format!("{base}{path}"))
                .header("accept", "application/json, text/event-stream")
                .json(&init)
                .send()
                .await
            else {
                break; // nothing listens: no other path either
            };
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            while let Ok(Some(c)) = resp.chunk().await {
                body.extend_from_slice(&c);
                if body.len() > 64 * 1024 || body.windows(2).any(|w| w == b"\n\n") {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&body);
            // JSON, or the first SSE event's data.
            let msg = serde_json::from_str::<Value>(&text).ok().or_else(|| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            });
            let result = msg.as_ref().and_then(|m| m.get("result"));
            if let Some(r) = result {
                found.push(json!({
                    "endpoint": format!("{base}{path}"),
                    "transport": "streamable_http",
                    "protocolVersion": r["protocolVersion"],
                    "serverInfo": r["serverInfo"],
                    "gateway": r["serverInfo"]["name"] == "gatehouse",
                }));
                break;
            }
            if status == 401 || status == 403 {
                found.push(
                    json!({"endpoint": format!("{base}{path}"), "transport": "streamable_http",
                    "authentication": "required", "status": status}),
                );
                break;
            }
        }
        if found
            .last()
            .is_some_and(|f| f["endpoint"].as_str().is_some_and(|e| e.starts_with(&base)))
        {
            continue;
        }
        if let Ok(resp) = http
            .get(format!("{base}/sse"))
            .header("accept", "text/event-stream")
            .send()
            .await
            && resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            found.push(json!({"endpoint": format!("{base}/sse"), "transport": "sse"}));
        }
    }
    Ok(json!({"host": host, "endpoints": found}))
}

/// Sends a report to a gateway's admin API.
pub(crate) async fn send(base: &str, token: &str, report: &Value) -> Result<()> {
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/v1/inventory", base.trim_end_matches('/')))
        .bearer_auth(token)
        .json(report)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("sending the report: {}", e.without_url()))?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the gateway refused the report: HTTP {}",
        resp.status().as_u16()
    );
    eprintln!("report sent to {base}");
    Ok(())
}

/// `gatehouse discover`: prints the report and returns it.
pub(crate) fn run(
    home: Option<PathBuf>,
    projects: Vec<PathBuf>,
    gateway: Option<String>,
    allow_hosts: Vec<String>,
    json_out: bool,
) -> Result<Value> {
    let home = home
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .ok_or_else(|| anyhow::anyhow!("no home directory: pass --home"))?;
    let projects = if projects.is_empty() {
        vec![std::env::current_dir()?]
    } else {
        projects
    };
    let r = report(&home, &projects, gateway.as_deref(), &allow_hosts);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(r);
    }
    let servers = r["servers"].as_array().cloned().unwrap_or_default();
    println!(
        "{} MCP servers in {} client configuration files; {} do not go through the gateway",
        servers.len(),
        r["files"].as_array().map_or(0, Vec::len),
        r["unmanaged"]
    );
    for s in &servers {
        let target = s["url"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| s["command"].as_str().unwrap_or("").to_owned());
        println!(
            "{} {} / {} ({target})",
            if s["managed"] == true { "ok  " } else { "RISK" },
            s["client"].as_str().unwrap_or(""),
            s["name"].as_str().unwrap_or(""),
        );
        for risk in s["risks"].as_array().into_iter().flatten() {
            println!("       - {}", risk.as_str().unwrap_or(""));
        }
    }
    for u in r["unreadable"].as_array().into_iter().flatten() {
        eprintln!(
            "warning: {} could not be read: {}",
            u["file"].as_str().unwrap_or(""),
            u["error"].as_str().unwrap_or("")
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_are_dropped_but_strings_kept() {
        let s = "{\n // a comment\n \"a\": \"http://x//y\", /* block */ \"b\": [1, 2,],\n}";
        let v: Value = serde_json::from_str(&strip_jsonc(s)).expect("json");
        assert_eq!(v, json!({"a": "http://x//y", "b": [1, 2]}));
    }
}
