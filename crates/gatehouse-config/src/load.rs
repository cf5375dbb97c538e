//! Reading the configuration: the file, `${ENV}` substitution, and the YAML parse into the
//! raw types.

use super::*;

impl Config {
    /// Reads, substitutes and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::at(path.display().to_string(), e.to_string()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut cfg = Self::from_yaml_in(&text, &|k| std::env::var(k).ok(), base)?;
        // Relative paths are relative to the config file, not the working directory.
        if let Some(dir) = path.parent() {
            let fix = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            };
            fix(&mut cfg.store_path);
            if let Some(k) = cfg
                .auth
                .as_mut()
                .and_then(|a| a.facade.as_mut())
                .and_then(|f| f.signing_key.as_mut())
            {
                fix(k);
            }
            if let Some(t) = cfg.tls.as_mut() {
                fix(&mut t.cert);
                fix(&mut t.key);
                if let Some(ca) = t.client_ca.as_mut() {
                    fix(ca);
                }
            }
        }
        Ok(cfg)
    }

    /// Parses YAML text; `env` resolves `${VAR}` references.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::from_yaml_in(text, env, Path::new("."))
    }

    /// Parses YAML text whose relative file paths are relative to `base`.
    pub fn from_yaml_in(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let located = |e: yaml_serde::Error| {
            let loc = e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "config".to_owned());
            ConfigError::at(loc, e.to_string())
        };
        let substituted = substitute_env(text, env)?;
        let raw: RawConfig = match yaml_serde::from_str(&substituted) {
            Ok(raw) => raw,
            // Locations in the substituted text mean nothing to the operator: the same
            // mistake in the file as written is reported where it is.
            Err(e) if substituted != text => {
                return Err(match yaml_serde::from_str::<RawConfig>(text) {
                    Err(original) => located(original),
                    Ok(_) => ConfigError::at("config (after ${} substitution)", e.to_string()),
                });
            }
            Err(e) => return Err(located(e)),
        };
        raw.validate_in(env, base)
    }
}

/// Replaces `${NAME}` with the variable's value inside the document's parsed string
/// values, never in its text: a value holding `"`, `#`, `,`, `}` or a line break stays one
/// string and cannot change the document's structure. `$${` is a literal `${`. A missing
/// variable is an error naming where it is used. Returns the text to deserialize (the
/// input itself when it holds no reference).
fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut doc: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "config".to_owned());
        ConfigError::at(loc, e.to_string())
    })?;
    substitute_in(&mut doc, env, &mut Vec::new(), 0)?;
    yaml_serde::to_string(&doc).map_err(|e| ConfigError::at("config", e.to_string()))
}

fn substitute_in(
    v: &mut yaml_serde::Value,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<(), ConfigError> {
    use yaml_serde::Value;
    if depth > 64 {
        return Err(ConfigError::at(path.join("."), "nested too deeply"));
    }
    match v {
        Value::String(s) if s.contains("${") => *s = expand(s, env, path)?,
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_in(item, env, path, depth + 1)?;
                path.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                path.push(k.as_str().unwrap_or("?").to_owned());
                substitute_in(item, env, path, depth + 1)?;
                path.pop();
            }
        }
        Value::Tagged(t) => substitute_in(&mut t.value, env, path, depth + 1)?,
        _ => {}
    }
    Ok(())
}

/// One string with its references replaced.
fn expand(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
    path: &[String],
) -> Result<String, ConfigError> {
    let at = || {
        if path.is_empty() {
            "config".to_owned()
        } else {
            path.join(".")
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            return Err(ConfigError::at(at(), "unterminated ${"));
        };
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            ConfigError::at(at(), format!("environment variable {name} is not set"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
