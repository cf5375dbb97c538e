//! A command upstream's sandbox profile as the YAML writes it (`upstreams.NAME.sandbox`),
//! and its validation into a [`SandboxSpec`](crate::SandboxSpec).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ConfigError;

/// A command upstream's confinement.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// Absolute paths it may read (and execute) beneath, besides the system's libraries
    /// and certificates.
    #[serde(default)]
    pub read: Vec<String>,
    /// Absolute paths it may read and write beneath.
    #[serde(default)]
    pub write: Vec<String>,
    /// `none` (default: a network namespace of its own, no interface up), `host`,
    /// `{connect: [ports]}` (TCP connections to these ports only, no listening), or
    /// `{hosts: [HOST[:PORT]…]}` (a network namespace of its own whose only way out is the
    /// gateway's egress proxy, which lets through these hosts alone).
    pub network: Option<RawSandboxNetwork>,
    /// Private writable memory, MiB (default 1024).
    pub memory_mb: Option<u64>,
    /// CPU seconds (default: none).
    pub cpu_secs: Option<u64>,
    /// Processes and threads it may run at once (default 64).
    pub processes: Option<u64>,
    /// Largest file it may write, MiB (default 256).
    pub file_size_mb: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawSandboxNetwork {
    Mode(RawNetworkMode),
    Connect { connect: Vec<u16> },
    Hosts { hosts: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawNetworkMode {
    None,
    Host,
}

/// A sandbox profile: absolute paths, sane limits.
pub(crate) fn sandbox(at: &str, s: RawSandbox) -> Result<crate::SandboxSpec, ConfigError> {
    let paths = |field: &str, v: Vec<String>| -> Result<Vec<PathBuf>, ConfigError> {
        v.into_iter()
            .map(|p| {
                let path = PathBuf::from(&p);
                if !path.is_absolute() || p.split('/').any(|c| c == "..") {
                    return Err(ConfigError::at(
                        format!("{at}.{field}"),
                        format!("`{p}` must be an absolute path without `..`"),
                    ));
                }
                if path == std::path::Path::new("/") {
                    return Err(ConfigError::at(
                        format!("{at}.{field}"),
                        "`/` would grant everything",
                    ));
                }
                Ok(path)
            })
            .collect()
    };
    let network = match s.network {
        None | Some(RawSandboxNetwork::Mode(RawNetworkMode::None)) => crate::SandboxNetwork::None,
        Some(RawSandboxNetwork::Mode(RawNetworkMode::Host)) => crate::SandboxNetwork::Host,
        Some(RawSandboxNetwork::Connect { connect }) => {
            if connect.is_empty() || connect.contains(&0) {
                return Err(ConfigError::at(
                    format!("{at}.network.connect"),
                    "name the TCP ports (1-65535) it may connect to",
                ));
            }
            crate::SandboxNetwork::Connect(connect)
        }
        Some(RawSandboxNetwork::Hosts { hosts }) => {
            if hosts.is_empty() {
                return Err(ConfigError::at(
                    format!("{at}.network.hosts"),
                    "name the hosts it may reach, or use `network: none`",
                ));
            }
            let rules = hosts
                .iter()
                .map(|h| {
                    EgressRule::parse(h).map_err(|e| {
                        ConfigError::at(format!("{at}.network.hosts"), format!("`{h}`: {e}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            crate::SandboxNetwork::Hosts(rules)
        }
    };
    let bounded =
        |field: &str, v: Option<u64>, default: u64, max: u64| -> Result<u64, ConfigError> {
            match v.unwrap_or(default) {
                n @ 1.. if n <= max => Ok(n),
                _ => Err(ConfigError::at(
                    format!("{at}.{field}"),
                    format!("1 to {max}"),
                )),
            }
        };
    Ok(crate::SandboxSpec {
        read: paths("read", s.read)?,
        write: paths("write", s.write)?,
        network,
        memory_mb: bounded("memory_mb", s.memory_mb, 1024, 1 << 20)?,
        cpu_secs: match s.cpu_secs {
            None => None,
            Some(n) => Some(bounded("cpu_secs", Some(n), 0, 1 << 32)?),
        },
        processes: bounded("processes", s.processes, 64, 1 << 16)?,
        file_size_mb: bounded("file_size_mb", s.file_size_mb, 256, 1 << 20)?,
    })
}

/// One entry of a sandboxed server's egress allowlist: a host name (`api.example.com`), every
/// name beneath a domain (`*.example.com`, not the domain itself) or an IP address, and one
/// port (443 when none is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    /// Lowercase, without a trailing dot; for a wildcard, the domain after `*.`.
    pub host: String,
    pub wildcard: bool,
    /// Set when the rule names an address rather than a host name.
    pub ip: Option<std::net::IpAddr>,
    pub port: u16,
}

impl EgressRule {
    /// Reads `HOST`, `HOST:PORT`, `*.DOMAIN[:PORT]`, `IPV4[:PORT]` or `[IPV6][:PORT]`.
    pub fn parse(text: &str) -> Result<EgressRule, String> {
        let t = text.trim().to_ascii_lowercase();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or("an IPv6 address needs its `]`")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("expected `:PORT` after `]`")?),
            };
            (ip.to_owned(), port)
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
                Some(_) => return Err("write an IPv6 address in brackets: `[::1]:443`".into()),
                None => (t.clone(), None),
            }
        };
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("`{p}` is not a port (1-65535)")),
            },
        };
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(EgressRule {
                host: ip.to_string(),
                wildcard: false,
                ip: Some(ip),
                port,
            });
        }
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(d) => (true, d),
            None => (false, host.as_str()),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err("not a host name, `*.domain` or IP address".into());
        }
        if wildcard && !name.contains('.') {
            return Err("a wildcard must sit beneath a domain with a dot (`*.example.com`)".into());
        }
        Ok(EgressRule {
            host: name.to_owned(),
            wildcard,
            ip: None,
            port,
        })
    }

    /// Whether a connection to `host` (as the client named it: lowercase, no trailing dot)
    /// and `port` is allowed by this rule.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        if let Some(ip) = self.ip {
            return host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|h| h == ip);
        }
        if self.wildcard {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            host == self.host
        }
    }
}

impl std::fmt::Display for EgressRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.ip, self.wildcard) {
            (Some(std::net::IpAddr::V6(ip)), _) => write!(f, "[{ip}]:{}", self.port),
            (_, true) => write!(f, "*.{}:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EgressRule;

    #[test]
    fn egress_rules_read_hosts_wildcards_addresses_and_ports() {
        let r = EgressRule::parse("API.GitHub.com").expect("host");
        assert!(r.allows("api.github.com", 443));
        assert!(!r.allows("api.github.com", 80));
        assert!(!r.allows("evil-api.github.com", 443));
        assert!(!r.allows("api.github.com.evil.net", 443));

        let w = EgressRule::parse("*.example.com:8443").expect("wildcard");
        assert!(w.allows("a.example.com", 8443));
        assert!(w.allows("a.b.example.com", 8443));
        assert!(
            !w.allows("example.com", 8443),
            "the domain itself is not beneath it"
        );
        assert!(!w.allows("badexample.com", 8443));
        assert!(!w.allows("a.example.com", 443));

        let v4 = EgressRule::parse("127.0.0.1:9000").expect("v4");
        assert!(v4.allows("127.0.0.1", 9000));
        assert!(!v4.allows("localhost", 9000), "a name is not its address");
        assert!(!v4.allows("127.0.0.2", 9000));
        let v6 = EgressRule::parse("[::1]:9000").expect("v6");
        assert!(v6.allows("[::1]", 9000) && v6.allows("::1", 9000));
        assert_eq!(v6.to_string(), "[::1]:9000");

        for bad in [
            "",
            "*.com",
            "a b.com",
            "host:0",
            "host:99999",
            "::1",
            "[::1",
            "-a.com",
            "*.",
            "a..b",
            "http://x.com",
        ] {
            assert!(EgressRule::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
