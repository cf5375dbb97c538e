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
