//! What `gatehouse serve` prints in development mode: a loud warning and how to connect the
//! common MCP clients.

use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine as _;
use gatehouse_auth::{ApiKeys, KeySpec};
use gatehouse_proxy::Config;
use gatehouse_proxy::config::RawAuthorization;
use gatehouse_store::SqliteKeyStore;

/// The application the demo keys are bound to: clients must send it as `clientInfo.name`.
const DEMO_APP: &str = "demo";

/// The seed's roles over the demo server: the analyst reads, the engineer also executes
/// and deploys, the admin also deletes and changes permissions. The anonymous caller is an
/// admin, so desktop clients connected without a key see everything.
pub(crate) fn demo_authorization() -> RawAuthorization {
    let roles = yaml_serde::from_str(
        r#"
analyst:
  tools: [demo.read_database, demo.search_files]
  prompts: ["demo.*"]
  resources: ["demo.*"]
deploy-staging:
  tools: [demo.deploy_service]
  when: {environment: [staging]}
deploy-production:
  tools: [demo.deploy_service]
  when: {environment: [production]}
  approval: true
engineer:
  inherits: [analyst, deploy-staging, deploy-production]
  tools: [demo.execute_code, "everything.*"]
  prompts: ["everything.*"]
  resources: ["everything.*"]
destructive:
  tools: [demo.delete_database, demo.modify_permissions]
  approval: true
admin: [engineer, destructive]
"#,
    )
    .unwrap_or_default();
    RawAuthorization {
        roles,
        anonymous_roles: vec!["admin".into()],
        ..RawAuthorization::default()
    }
}

fn parse<T: serde::de::DeserializeOwned>(y: &str) -> Result<T> {
    yaml_serde::from_str(y).context("demo settings")
}

/// The demo's other controls: production deploys and destructive tools wait for an
/// administrator; the customers' e-mail addresses and phone numbers are masked for
/// everyone but engineers (and admins); the console maps the demo roles.
pub(crate) fn demo_controls(raw: &mut gatehouse_proxy::config::RawConfig) -> Result<()> {
    raw.approvals = parse(&format!(
        "approvers: [admin]\nconsole_url: http://{}/console\n",
        raw.listen.as_deref().unwrap_or("127.0.0.1:8080")
    ))?;
    raw.dlp = parse(
        "profiles:\n  contact-details: {default: alert, kinds: {email: mask, phone: mask}}\n",
    )?;
    raw.console = Some(parse("viewers: [analyst]\n")?);
    if let Some(demo) = raw.upstreams.get_mut("demo") {
        demo.tools =
            parse("read_database: {redaction: contact-details, unmasked_roles: [engineer]}\n")?;
    }
    Ok(())
}

/// A fresh pepper for the demo's throw-away key store.
pub(crate) fn random_pepper() -> Result<String> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(b))
}

/// One API key per demo role, created in the demo's store and printed at start.
pub(crate) fn demo_keys(cfg: &Config) -> Result<Vec<(&'static str, String)>> {
    let pepper = cfg
        .api_key_pepper
        .as_ref()
        .context("demo without api_keys")?;
    let store = SqliteKeyStore::open(&cfg.store_path)
        .with_context(|| format!("opening {}", cfg.store_path.display()))?;
    let keys = ApiKeys::new(pepper, Arc::new(store));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = Vec::new();
    for role in ["analyst", "engineer", "admin"] {
        let spec = KeySpec {
            principal: format!("demo-{role}"),
            app: DEMO_APP.into(),
            tenant: None,
            roles: vec![role.into()],
            servers: Vec::new(),
            tools: Vec::new(),
            expires_in: Some(std::time::Duration::from_secs(86_400)),
        };
        out.push((role, keys.create(&spec, now, None)?.key));
    }
    Ok(out)
}

/// A one-time console sign-in link per demo role (valid an hour, usable once).
pub(crate) fn demo_links(cfg: &Config) -> Vec<(&'static str, String)> {
    ["admin", "engineer", "analyst"]
        .into_iter()
        .filter_map(|role| {
            let mut p = gatehouse_auth::Principal::anonymous();
            p.id = format!("demo-{role}");
            p.roles = vec![role.into()];
            p.kind = gatehouse_auth::PrincipalKind::User;
            let ticket = gatehouse_control::console::issue_ticket(p)?;
            Some((
                role,
                format!("http://{}/console/login?ticket={ticket}", cfg.listen),
            ))
        })
        .collect()
}

pub(crate) fn banner(cfg: &Config, keys: &[(&str, String)], links: &[(&str, String)]) {
    let url = format!("http://{}/mcp", cfg.listen);
    let names: Vec<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    eprintln!(
        r#"
==========================================================================
  GATEHOUSE DEVELOPMENT MODE: AUTHENTICATION NOT REQUIRED. LOOPBACK ONLY.
  Do not use this mode for anything but trying Gatehouse out.
==========================================================================
  MCP endpoint     {url}
  Upstreams        {ups}
  Legacy SSE       http://{listen}/sse
  Health           http://{listen}/healthz  /readyz  /metrics
  Audit record     {audit}

  Claude Desktop (claude_desktop_config.json, stdio bridge):
    {{"mcpServers": {{"gatehouse": {{"command": "gatehouse", "args": ["connect", "{url}"]}}}}}}
  Cursor (~/.cursor/mcp.json):
    {{"mcpServers": {{"gatehouse": {{"url": "{url}"}}}}}}
  VS Code (.vscode/mcp.json):
    {{"servers": {{"gatehouse": {{"type": "http", "url": "{url}"}}}}}}
  MCP Inspector (CLI):
    npx @modelcontextprotocol/inspector --cli {url} --transport http --method tools/list
==========================================================================
"#,
        ups = if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        },
        listen = cfg.listen,
        audit = match &cfg.audit {
            None => "off".to_owned(),
            Some(a) if a.fsync => format!("{} (synced before answers)", cfg.store_path.display()),
            // Development mode's default: a power cut may lose the last records.
            Some(_) => format!(
                "{} (committed before answers, not fsynced: audit.fsync)",
                cfg.store_path.display()
            ),
        },
    );
    if keys.is_empty() {
        return;
    }
    eprintln!("  Console          http://{}/console", cfg.listen);
    eprintln!("  One-time console sign-in links (valid 1 h; the admin approves, the others view):");
    for (role, link) in links {
        eprintln!("    console as {role:<9} {link}");
    }
    eprintln!("  Demo principals (API keys bound to the app `{DEMO_APP}`, valid 24 h):");
    for (role, key) in keys {
        eprintln!("    {role:<9} {key}");
    }
    let list = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{{"name":"{DEMO_APP}","version":"1"}},"io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    );
    let url = format!("http://{}/mcp", cfg.listen);
    eprintln!(
        r#"
  Each role sees only what it may call (the analyst has no delete_database):
    curl -s {url} -H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' \
      -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
      -H 'Mcp-Method: tools/list' -d '{list}'
==========================================================================
"#
    );
}
