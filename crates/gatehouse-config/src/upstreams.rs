//! Validation of the servers behind the gateway: `upstreams` (transport, credentials, TLS,
//! data policy, argument rules) and `virtual_servers`.

use super::*;

/// Reads an upstream's TLS files now, so `gatehouse check` and reload catch a bad one.
/// The `upstreams` section: each server's transport, credentials and data policy.
pub(super) fn validate_upstreams(
    raw: BTreeMap<String, raw::RawUpstream>,
    base: &Path,
    separator: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<UpstreamSpec>, ConfigError> {
    let mut upstreams = Vec::new();
    let mut namespaces = BTreeMap::new();
    for (name, u) in raw {
        let at = format!("upstreams.{name}");
        if !valid_name(&name) {
            return Err(ConfigError::at(
                at,
                "names use a-z, 0-9, _ and - (at most 64)",
            ));
        }
        if u.tenant.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::at(format!("{at}.tenant"), "empty tenant"));
        }
        let data = DataPolicy {
            classification: u.classification,
            tenancy: gatehouse_policy::Tenancy {
                tenant: u.tenant.clone(),
                shared: u.shared,
            },
            tools: u.tools.clone(),
            resources: u.resources.clone(),
        };
        let namespace = match u.namespace.as_deref() {
            None => Some(name.clone()),
            Some("") => None,
            Some(ns) => Some(ns.to_owned()),
        };
        if let Some(ns) = &namespace {
            if ns.contains(separator) {
                return Err(ConfigError::at(
                    format!("{at}.namespace"),
                    format!("`{ns}` contains the separator `{separator}`, so names could collide"),
                ));
            }
            if let Some(other) = namespaces.insert(ns.clone(), name.clone()) {
                return Err(ConfigError::at(
                    format!("{at}.namespace"),
                    format!("namespace `{ns}` is already used by upstream {other}"),
                ));
            }
        }
        let transport = match (u.command, u.url) {
            (Some(command), None) => {
                if u.transport.is_some()
                    || !u.headers.is_empty()
                    || u.client_credentials.is_some()
                    || u.tls.is_some()
                {
                    return Err(ConfigError::at(
                        at,
                        "transport and headers apply to url upstreams only",
                    ));
                }
                if command.trim().is_empty() {
                    return Err(ConfigError::at(format!("{at}.command"), "empty command"));
                }
                let mut envs: Vec<(String, String)> = Vec::new();
                let inherit = u
                    .inherit_env
                    .unwrap_or_else(|| DEFAULT_INHERIT.map(str::to_owned).to_vec());
                for k in inherit {
                    if let Some(v) = env(&k) {
                        envs.push((k, v));
                    }
                }
                envs.extend(u.env);
                // A package runner must name the exact version it runs, and its hash.
                let package = match crate::packages::runner_package(&command, &u.args) {
                    Some(pkg) if !crate::packages::pinned(&pkg) => {
                        return Err(ConfigError::at(
                            format!("{at}.args"),
                            format!(
                                "`{pkg}` is not pinned: {command} would run whatever version the registry serves at each start; name an exact version, {}",
                                crate::packages::pin_hint(&command, &pkg)
                            ),
                        ));
                    }
                    Some(pkg) => Some(
                        crate::packages::pinned_package(&command, &pkg, u.integrity.as_deref())
                            .map_err(|m| ConfigError::at(format!("{at}.integrity"), m))?,
                    ),
                    None if u.integrity.is_some() => {
                        return Err(ConfigError::at(
                            format!("{at}.integrity"),
                            "integrity applies to a package a runner (npx, uvx, …) starts",
                        ));
                    }
                    None => None,
                };
                let sandbox = match u.sandbox {
                    None => None,
                    Some(s) => Some(crate::sandbox::sandbox(&format!("{at}.sandbox"), s)?),
                };
                TransportSpec::Stdio {
                    command,
                    args: u.args,
                    env: envs,
                    cwd: u.cwd.map(PathBuf::from),
                    sandbox,
                    package,
                }
            }
            (None, Some(url)) => {
                if !u.args.is_empty()
                    || !u.env.is_empty()
                    || u.cwd.is_some()
                    || u.inherit_env.is_some()
                    || u.sandbox.is_some()
                {
                    return Err(ConfigError::at(
                        at,
                        "args, env, inherit_env, cwd and sandbox apply to command upstreams only",
                    ));
                }
                let url = match reqwest::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u,
                    _ => {
                        return Err(ConfigError::at(
                            format!("{at}.url"),
                            format!("`{url}` is not an http(s) URL"),
                        ));
                    }
                };
                for k in u.headers.keys() {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        return Err(ConfigError::at(
                            format!("{at}.headers"),
                            format!("`{k}` is not a header name"),
                        ));
                    }
                }
                let headers = u.headers.into_iter().collect();
                let credential = match u.client_credentials {
                    None => None,
                    Some(c) => {
                        let cat = format!("{at}.client_credentials");
                        match reqwest::Url::parse(&c.token_url) {
                            Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                            _ => {
                                return Err(ConfigError::at(
                                    format!("{cat}.token_url"),
                                    "not an http(s) URL",
                                ));
                            }
                        }
                        let secret = gatehouse_auth::SecretRef::parse(&c.client_secret)
                            .map_err(|e| ConfigError::at(format!("{cat}.client_secret"), e))?;
                        Some(gatehouse_auth::ClientCredentialsConfig {
                            token_url: c.token_url,
                            client_id: c.client_id,
                            client_secret: secret,
                            scope: c.scope,
                            resource: c.resource,
                            token_exchange: c.token_exchange,
                        })
                    }
                };
                let tls = u
                    .tls
                    .map(|t| upstream_tls(&format!("{at}.tls"), t, base))
                    .transpose()?;
                if tls.is_some() && url.scheme() != "https" {
                    return Err(ConfigError::at(
                        format!("{at}.tls"),
                        "tls needs an https:// url",
                    ));
                }
                match u.transport.unwrap_or(RawTransportKind::StreamableHttp) {
                    RawTransportKind::StreamableHttp => TransportSpec::StreamableHttp {
                        url,
                        headers,
                        credential,
                        tls,
                    },
                    RawTransportKind::Sse
                        if credential.as_ref().is_some_and(|c| c.token_exchange) =>
                    {
                        return Err(ConfigError::at(
                            format!("{at}.client_credentials.token_exchange"),
                            "token exchange needs a streamable_http upstream",
                        ));
                    }
                    RawTransportKind::Sse => TransportSpec::Sse {
                        url,
                        headers,
                        credential,
                        tls,
                    },
                }
            }
            _ => return Err(ConfigError::at(at, "set exactly one of command and url")),
        };
        let mut forward_headers = Vec::new();
        for h in &u.forward_headers {
            let loc = format!("{at}.forward_headers");
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ConfigError::at(loc, format!("`{h}` is not a header name")));
            }
            if crate::never_forwarded(h) {
                return Err(ConfigError::at(
                    loc,
                    format!(
                        "`{h}` is never passed on (credentials, cookies, hop-by-hop, MCP's and the gateway's own headers)"
                    ),
                ));
            }
            if matches!(transport, TransportSpec::Stdio { .. }) {
                return Err(ConfigError::at(loc, "only HTTP upstreams receive headers"));
            }
            forward_headers.push(h.to_ascii_lowercase());
        }
        upstreams.push(UpstreamSpec {
            name,
            namespace,
            transport,
            data,
            forward_headers,
        });
    }
    Ok(upstreams)
}

/// The `virtual_servers` section: named endpoints over a subset of the upstreams.
pub(super) fn validate_virtual_servers(
    raw: BTreeMap<String, raw::RawVirtualServer>,
    upstreams: &[UpstreamSpec],
) -> Result<BTreeMap<String, VirtualServer>, ConfigError> {
    let mut virtual_servers = BTreeMap::new();
    for (name, v) in raw {
        let at = format!("virtual_servers.{name}");
        if !valid_name(&name) {
            return Err(ConfigError::at(
                at,
                "names use a-z, 0-9, _ and - (at most 64)",
            ));
        }
        if v.upstreams.is_empty() {
            return Err(ConfigError::at(
                format!("{at}.upstreams"),
                "name at least one upstream",
            ));
        }
        for u in &v.upstreams {
            if !upstreams.iter().any(|s| &s.name == u) {
                return Err(ConfigError::at(
                    format!("{at}.upstreams"),
                    format!("no upstream named `{u}`"),
                ));
            }
        }
        virtual_servers.insert(
            name.clone(),
            VirtualServer {
                name,
                upstreams: v.upstreams.into_iter().collect(),
                tools: v.tools.map(|t| t.into_iter().collect()),
                tenant: v.tenant.filter(|t| !t.is_empty()),
                tool_search: v.tool_search,
            },
        );
    }
    Ok(virtual_servers)
}

pub(super) fn upstream_tls(
    at: &str,
    t: RawUpstreamTls,
    base: &Path,
) -> Result<UpstreamTls, ConfigError> {
    let read = |field: &str, p: &str| {
        std::fs::read(base.join(p))
            .map_err(|e| ConfigError::at(format!("{at}.{field}"), format!("{p}: {e}")))
    };
    let ca_pem = t.ca.as_deref().map(|p| read("ca", p)).transpose()?;
    let identity_pem = match (t.client_cert.as_deref(), t.client_key.as_deref()) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let mut pem = read("client_cert", c)?;
            pem.push(b'\n');
            pem.extend(read("client_key", k)?);
            Some(pem)
        }
        _ => {
            return Err(ConfigError::at(
                at,
                "client_cert and client_key go together",
            ));
        }
    };
    let tls = UpstreamTls {
        ca_pem,
        identity_pem,
    };
    // Build a client once now: a certificate reqwest cannot use is a config error.
    tls.client(reqwest::Client::builder())
        .and_then(|b| b.build().map_err(|e| e.to_string()))
        .map_err(|e| ConfigError::at(at, e))?;
    Ok(tls)
}

/// Argument `pattern`s must compile: a broken one would refuse every call. Overrides name
/// what clients can send and see: a name of tool-name characters, known annotations.
pub(super) fn validate_argument_patterns(upstreams: &[UpstreamSpec]) -> Result<(), ConfigError> {
    for u in upstreams {
        let mut renamed = std::collections::BTreeMap::new();
        for (tool, t) in &u.data.tools {
            let at = format!("upstreams.{}.tools.{tool}", u.name);
            if let Some(n) = &t.name {
                let ok = !n.is_empty()
                    && n.len() <= 128
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !ok {
                    return Err(ConfigError::at(
                        format!("{at}.name"),
                        "1 to 128 of A-Z, a-z, 0-9, `_`, `-`, `.`",
                    ));
                }
                // Two tools of one upstream under one name: clients could reach only one.
                let unchanged = u.data.tools.keys().any(|k| k == n && k != tool)
                    && u.data.tools.get(n).is_none_or(|o| o.name.is_none());
                if let Some(other) = renamed.insert(n.clone(), tool.clone()) {
                    return Err(ConfigError::at(
                        format!("{at}.name"),
                        format!("`{other}` is already renamed to `{n}`"),
                    ));
                }
                if unchanged {
                    return Err(ConfigError::at(
                        format!("{at}.name"),
                        format!("`{n}` is another tool of this upstream"),
                    ));
                }
            }
            for (k, v) in &t.annotations {
                let ok = match k.as_str() {
                    "title" => v.is_string(),
                    "readOnlyHint" | "destructiveHint" | "idempotentHint" | "openWorldHint" => {
                        v.is_boolean()
                    }
                    _ => false,
                };
                if !ok {
                    return Err(ConfigError::at(
                        format!("{at}.annotations.{k}"),
                        "title (a string) or readOnlyHint, destructiveHint, idempotentHint, openWorldHint (true or false)",
                    ));
                }
            }
            if let Some(arg) = t.fixed.keys().find(|a| t.arguments.contains_key(*a)) {
                return Err(ConfigError::at(
                    format!("{at}.fixed.{arg}"),
                    "a fixed parameter cannot also have argument rules: callers never send it",
                ));
            }
        }
        for (tool, t) in &u.data.tools {
            for (arg, r) in &t.arguments {
                let at = format!("upstreams.{}.tools.{tool}.arguments.{arg}", u.name);
                let patterns = r
                    .pattern
                    .iter()
                    .map(|p| (format!("{at}.pattern"), p))
                    .chain(r.roles.iter().filter_map(|(role, l)| {
                        l.pattern
                            .as_ref()
                            .map(|p| (format!("{at}.roles.{role}.pattern"), p))
                    }));
                for (loc, p) in patterns {
                    regex::RegexBuilder::new(&format!("^(?:{p})$"))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| ConfigError::at(loc, e.to_string()))?;
                }
            }
        }
    }
    Ok(())
}
