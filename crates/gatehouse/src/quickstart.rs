//! What `gatehouse serve` prints in development mode: a loud warning and how to connect the
//! common MCP clients.

use gatehouse_proxy::Config;

pub(crate) fn banner(cfg: &Config) {
    let url = format!("http://{}/mcp", cfg.listen);
    let names: Vec<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    eprintln!(
        r#"
==========================================================================
  GATEHOUSE DEVELOPMENT MODE: NO AUTHENTICATION. LOOPBACK ONLY.
  Do not use this mode for anything but trying Gatehouse out.
==========================================================================
  MCP endpoint     {url}
  Upstreams        {ups}
  Legacy SSE       http://{listen}/sse
  Health           http://{listen}/healthz  /readyz  /metrics

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
    );
}
