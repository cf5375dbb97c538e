//! Package runners (`npx`, `uvx`, …) in a command line: which package they start, and
//! whether it is pinned to an exact version. An unpinned one runs whatever the registry
//! serves at each start, so the gateway refuses it and `gatehouse discover` flags it.

use std::path::Path;

/// Whether a package spec names an exact version (`name@1.2.3`, `@scope/name@1.2.3`,
/// `name==1.2.3`).
pub fn pinned(spec: &str) -> bool {
    let version = if let Some((_, v)) = spec.split_once("==") {
        v
    } else {
        match spec.rfind('@') {
            Some(0) | None => return false,
            Some(i) => &spec[i + 1..],
        }
    };
    let parts: Vec<&str> = version
        .split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The package a runner command starts, when the command is one (`npx`, `uvx`, …).
pub fn runner_package(command: &str, args: &[String]) -> Option<String> {
    let base = Path::new(command).file_name()?.to_str()?;
    let rest: Vec<&str> = match base {
        "npx" | "bunx" | "uvx" => args.iter().map(String::as_str).collect(),
        "pnpm" | "yarn" if args.first().is_some_and(|a| a == "dlx") => {
            args[1..].iter().map(String::as_str).collect()
        }
        "pipx" if args.first().is_some_and(|a| a == "run") => {
            args[1..].iter().map(String::as_str).collect()
        }
        "uv" if args.len() > 1 && args[0] == "tool" && args[1] == "run" => {
            args[2..].iter().map(String::as_str).collect()
        }
        "npm" if args.first().is_some_and(|a| a == "exec") => {
            args[1..].iter().map(String::as_str).collect()
        }
        _ => return None,
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if let Some(p) = a.strip_prefix("--package=") {
            return Some(p.to_owned());
        }
        if *a == "-p" || *a == "--package" || *a == "--from" {
            return it.next().map(|p| (*p).to_owned());
        }
        if !a.starts_with('-') {
            return Some((*a).to_owned());
        }
    }
    None
}

/// A package as `(ecosystem, name, version)`: `npm` for the Node runners, `pypi` for the
/// Python ones.
pub fn identify(command: &str, spec: &str) -> Option<PackageId> {
    let base = Path::new(command).file_name()?.to_str()?;
    let eco = match base {
        "uvx" | "uv" | "pipx" => "pypi",
        _ => "npm",
    };
    let (name, version) = match spec.split_once("==") {
        Some((n, v)) => (n, v),
        None => {
            let i = spec.rfind('@').filter(|i| *i > 0)?;
            (&spec[..i], &spec[i + 1..])
        }
    };
    let name = if eco == "pypi" {
        name.to_ascii_lowercase().replace('_', "-")
    } else {
        name.to_owned()
    };
    Some((eco, name, version.to_owned()))
}

/// A runner's package, pinned: what it is and the hash its registry must report for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPackage {
    /// `npm` or `pypi`.
    pub ecosystem: &'static str,
    pub name: String,
    pub version: String,
    /// npm: `sha512-<base64>` (`dist.integrity`); PyPI: `sha256:<hex>` of one release file.
    pub integrity: String,
    /// The Sigstore trust root npm provenance is checked against (`provenance.trusted_root`;
    /// none: the public-good root Gatehouse ships).
    pub trusted_root: Option<std::path::PathBuf>,
    /// `provenance.required`: an npm package without published provenance is not started.
    pub require_provenance: bool,
}

/// Checks a package's pinned hash: present, and in the ecosystem's form.
pub fn pinned_package(
    command: &str,
    spec: &str,
    integrity: Option<&str>,
) -> Result<PinnedPackage, String> {
    let (ecosystem, name, version) =
        identify(command, spec).ok_or_else(|| format!("`{spec}` names no package version"))?;
    let Some(integrity) = integrity else {
        return Err(match ecosystem {
            "npm" => format!(
                "pin its hash too: integrity: sha512-… (`npm view {name}@{version} dist.integrity` prints it)"
            ),
            _ => format!(
                "pin its hash too: integrity: sha256:… (a file's sha256 from https://pypi.org/pypi/{name}/{version}/json)"
            ),
        });
    };
    let ok = match ecosystem {
        "npm" => integrity.strip_prefix("sha512-").is_some_and(|b| {
            b.len() == 88
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        }),
        _ => integrity
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit())),
    };
    if !ok {
        return Err(match ecosystem {
            "npm" => "an npm integrity is `sha512-` and 88 base64 characters".to_owned(),
            _ => "a PyPI hash is `sha256:` and 64 hex digits".to_owned(),
        });
    }
    Ok(PinnedPackage {
        ecosystem,
        name,
        version,
        integrity: integrity.to_owned(),
        trusted_root: None,
        require_provenance: false,
    })
}

/// A package as `(ecosystem, name, version)`.
pub type PackageId = (&'static str, String, String);

/// Parses an `approved_servers` entry (`npm:NAME@VERSION`, `pypi:NAME==VERSION`, either
/// optionally followed by `#HASH`): the package, and the hash when one is named.
pub fn approved_entry(e: &str) -> Option<(PackageId, Option<String>)> {
    let (e, hash) = match e.split_once('#') {
        Some((e, h)) => (e, Some(h.to_owned())),
        None => (e, None),
    };
    let (eco, spec) = e.split_once(':')?;
    let command = match eco {
        "npm" => "npx",
        "pypi" => "uvx",
        _ => return None,
    };
    if !pinned(spec) {
        return None;
    }
    Some((identify(command, spec)?, hash))
}

/// The pinned line to suggest for an unpinned package.
pub fn pin_hint(command: &str, spec: &str) -> String {
    let base = Path::new(command)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or(command);
    let name = match spec.rfind('@') {
        Some(i) if i > 0 => &spec[..i],
        _ => spec.split(['=', '<', '>', '~', '!']).next().unwrap_or(spec),
    };
    match base {
        "uvx" | "pipx" | "uv" => format!(
            "`{name}==X.Y.Z` (the version you vetted; `pip index versions {name}` lists them)"
        ),
        _ => format!(
            "`{name}@X.Y.Z` (the version you vetted; `npm view {name} version` prints the latest)"
        ),
    }
}

/// With `approved_servers` set, every package a command upstream runs must be one of them.
pub(crate) fn check_approved(
    upstreams: &[crate::UpstreamSpec],
    approved: &[String],
) -> Result<(), crate::ConfigError> {
    let mut list = Vec::new();
    for (i, e) in approved.iter().enumerate() {
        list.push(approved_entry(e).ok_or_else(|| {
            crate::ConfigError::at(
                format!("approved_servers[{i}]"),
                format!("`{e}`: npm:NAME@X.Y.Z or pypi:NAME==X.Y.Z, optionally #HASH"),
            )
        })?);
    }
    if list.is_empty() {
        return Ok(());
    }
    for u in upstreams {
        let crate::TransportSpec::Stdio {
            command,
            args,
            package,
            ..
        } = &u.transport
        else {
            continue;
        };
        let Some(spec) = runner_package(command, args) else {
            continue;
        };
        let id = identify(command, &spec);
        let hash = package.as_ref().map(|p| p.integrity.as_str());
        let approved = list.iter().any(|(entry, pinned_hash)| {
            Some(entry) == id.as_ref() && pinned_hash.as_deref().is_none_or(|h| Some(h) == hash)
        });
        if !approved {
            return Err(crate::ConfigError::at(
                format!("upstreams.{}.args", u.name),
                format!("`{spec}` is not on approved_servers"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_pinned_only_when_exact() {
        for p in [
            "pkg@1.2.3",
            "@scope/pkg@10.0.1",
            "pkg==2.0.0",
            "pkg@1.2.3-beta.1",
        ] {
            assert!(pinned(p), "{p}");
        }
        for p in [
            "pkg",
            "@scope/pkg",
            "pkg@latest",
            "pkg@^1.2.3",
            "pkg@1.x",
            "pkg>=1.0",
            "pkg@1.2",
        ] {
            assert!(!pinned(p), "{p}");
        }
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            runner_package("npx", &args(&["-y", "@x/server@1.0.0", "/srv"])).as_deref(),
            Some("@x/server@1.0.0")
        );
        assert_eq!(
            runner_package("/usr/bin/uvx", &args(&["--from", "mcp-x==1.2.3", "mcp-x"])).as_deref(),
            Some("mcp-x==1.2.3")
        );
        assert_eq!(runner_package("node", &args(&["server.js"])), None);
    }
}
