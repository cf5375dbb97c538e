//! `gatehouse sbom`: a CycloneDX 1.5 bill of materials of the MCP servers a config runs and
//! reaches — each command upstream as a component (a package run through `npx`, `uvx`, …
//! with its package URL; anything else as the application it runs), each HTTP upstream as a
//! service with its endpoint — so the servers behind the gateway enter the same supply-chain
//! inventory as everything else.

use anyhow::Result;
use gatehouse_proxy::config::packages::{pinned, runner_package};
use gatehouse_proxy::config::{Config, TransportSpec};
use serde_json::{Value, json};

/// `pkg:npm/%40scope/name@1.2.3` or `pkg:pypi/name@1.2.3` for a runner's package spec.
fn purl(runner: &str, spec: &str) -> (String, String, Option<String>) {
    let python = matches!(runner, "uvx" | "pipx" | "uv");
    let (name, version) = if let Some((n, v)) = spec.split_once("==") {
        (n.to_owned(), Some(v.to_owned()))
    } else {
        match spec.rfind('@') {
            Some(i) if i > 0 => (spec[..i].to_owned(), Some(spec[i + 1..].to_owned())),
            _ => (spec.to_owned(), None),
        }
    };
    let version = version.filter(|_| pinned(spec));
    let kind = if python { "pypi" } else { "npm" };
    let encoded = if python {
        name.to_ascii_lowercase().replace('_', "-")
    } else {
        name.replace('@', "%40")
    };
    let purl = match &version {
        Some(v) => format!("pkg:{kind}/{encoded}@{v}"),
        None => format!("pkg:{kind}/{encoded}"),
    };
    (name, purl, version)
}

pub(crate) fn bom(cfg: &Config) -> Value {
    let mut components = Vec::new();
    let mut services = Vec::new();
    for u in &cfg.upstreams {
        match &u.transport {
            TransportSpec::Stdio {
                command,
                args,
                sandbox,
                package,
                ..
            } => {
                let runner = std::path::Path::new(command)
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or(command);
                let mut props = vec![
                    json!({"name": "gatehouse:upstream", "value": u.name}),
                    json!({"name": "gatehouse:sandboxed", "value": sandbox.is_some().to_string()}),
                ];
                let c = match runner_package(command, args) {
                    Some(spec) => {
                        let (name, purl, version) = purl(runner, &spec);
                        props.push(json!({"name": "gatehouse:runner", "value": runner}));
                        let mut c = json!({"type": "application", "bom-ref": format!("upstream:{}", u.name),
                            "name": name, "purl": purl, "properties": props});
                        if let Some(v) = version {
                            c["version"] = json!(v);
                        }
                        if let Some(h) = package.as_ref().and_then(|p| hash(&p.integrity)) {
                            c["hashes"] = json!([h]);
                        }
                        c
                    }
                    None => {
                        props.push(json!({"name": "gatehouse:command", "value": command}));
                        json!({"type": "application", "bom-ref": format!("upstream:{}", u.name),
                            "name": runner, "properties": props})
                    }
                };
                components.push(c);
            }
            TransportSpec::StreamableHttp { url, .. } | TransportSpec::Sse { url, .. } => {
                services.push(json!({
                    "bom-ref": format!("upstream:{}", u.name),
                    "name": u.name,
                    "endpoints": [url.as_str()],
                    "authenticated": true,
                    "x-trust-boundary": true,
                }));
            }
        }
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": chrono_now(),
            "tools": {"components": [{"type": "application", "name": "gatehouse", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "application", "name": "gatehouse", "version": env!("CARGO_PKG_VERSION")},
        },
        "components": components,
        "services": services,
    })
}

/// A pinned hash as CycloneDX writes it: the algorithm and the digest in hex.
fn hash(integrity: &str) -> Option<Value> {
    use base64::Engine;
    if let Some(b) = integrity.strip_prefix("sha512-") {
        let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
        return Some(json!({"alg": "SHA-512", "content": hex::encode(raw)}));
    }
    let h = integrity.strip_prefix("sha256:")?;
    Some(json!({"alg": "SHA-256", "content": h.to_ascii_lowercase()}))
}

/// Now, as RFC 3339 UTC.
fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn run(config: &std::path::Path) -> Result<()> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    println!("{}", serde_json::to_string_pretty(&bom(&cfg))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_urls_follow_the_purl_spec() {
        assert_eq!(
            purl("npx", "@modelcontextprotocol/server-filesystem@2026.8.31").1,
            "pkg:npm/%40modelcontextprotocol/server-filesystem@2026.8.31"
        );
        assert_eq!(
            purl("uvx", "Mcp_Server==1.2.3").1,
            "pkg:pypi/mcp-server@1.2.3"
        );
        assert!(chrono_now().ends_with('Z') && chrono_now().len() == 20);
    }
}
