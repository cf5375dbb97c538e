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
    /// `none` (default: a network namespace of its own, no interface up), `host`, or
    /// `{connect: [ports]}` (TCP connections to these ports only, no listening).
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
