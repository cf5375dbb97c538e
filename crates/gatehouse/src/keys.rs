//! `gatehouse keys`: create, list, revoke and rotate API keys in the configured store.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use gatehouse_auth::{ApiKeys, KeySpec};
use gatehouse_proxy::Config;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a key; it is printed once and never stored.
    Create {
        /// The service principal the key acts as.
        #[arg(long)]
        principal: String,
        /// The one application allowed to use it (its MCP clientInfo.name).
        #[arg(long)]
        app: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Upstreams it may reach (comma-separated); all when absent.
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// Exposed tool names it may call (comma-separated); all when absent.
        #[arg(long, value_delimiter = ',')]
        tools: Vec<String>,
        /// Lifetime such as 30d, 12h, 90m; none when absent.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key now.
    Revoke { id: String },
    /// Replace a key; the old one keeps working for the overlap, then expires.
    Rotate {
        id: String,
        #[arg(long, default_value = "24h")]
        overlap: String,
        #[arg(long)]
        expires: Option<String>,
    },
}

/// `30d`, `12h`, `90m`, `45s`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration like 30d"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" | "" => n,
        _ => bail!("`{s}`: use d, h, m or s"),
    };
    if secs == 0 {
        bail!("`{s}`: must be longer than zero");
    }
    Ok(Duration::from_secs(secs))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn when(t: Option<u64>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

pub(crate) fn run(config: &Path, cmd: KeysCommand) -> Result<()> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let pepper = cfg
        .api_key_pepper
        .as_ref()
        .context("the config has no api_keys section")?;
    let store = gatehouse_store::Backend::new(
        &cfg.store_path,
        cfg.postgres_for(gatehouse_proxy::config::StoreKind::ApiKeys),
    )
    .api_keys()
    .with_context(|| format!("opening the key store ({})", cfg.store_path.display()))?;
    let keys = ApiKeys::new(pepper, store);
    let known: Vec<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    match cmd {
        KeysCommand::Create {
            principal,
            app,
            tenant,
            roles,
            servers,
            tools,
            expires,
        } => {
            for s in &servers {
                if !known.contains(&s.as_str()) {
                    bail!("no upstream named `{s}` in {}", config.display());
                }
            }
            if principal.trim().is_empty() || app.trim().is_empty() {
                bail!("--principal and --app must not be empty");
            }
            let spec = KeySpec {
                principal,
                app,
                tenant,
                roles,
                servers,
                tools,
                expires_in: expires.as_deref().map(parse_duration).transpose()?,
            };
            let new = keys.create(&spec, now(), None)?;
            eprintln!(
                "key {} for {} (app {}) — shown once, store it now:",
                new.record.id, new.record.principal, new.record.app
            );
            println!("{}", new.key);
        }
        KeysCommand::List => {
            println!(
                "id\tprincipal\tapp\troles\tservers\ttools\tcreated\texpires\trevoked\tlast_used\trotated_from"
            );
            for k in keys.store().list()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.principal,
                    k.app,
                    k.roles.join(","),
                    k.servers.join(","),
                    k.tools.join(","),
                    k.created_at,
                    when(k.expires_at),
                    when(k.revoked_at),
                    when(k.last_used_at),
                    k.rotated_from.as_deref().unwrap_or("-")
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if !keys.store().revoke(&id, now())? {
                bail!("no key {id}");
            }
            eprintln!("key {id} revoked");
        }
        KeysCommand::Rotate {
            id,
            overlap,
            expires,
        } => {
            let overlap = parse_duration(&overlap)?;
            let ttl = expires.as_deref().map(parse_duration).transpose()?;
            let Some(new) = keys.rotate(&id, overlap, ttl, now())? else {
                bail!("no active key {id}")
            };
            eprintln!(
                "key {} replaces {id}, which expires in {}s — shown once, store it now:",
                new.record.id,
                overlap.as_secs()
            );
            println!("{}", new.key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 2_592_000);
        assert_eq!(parse_duration("90m").unwrap().as_secs(), 5_400);
        assert_eq!(parse_duration("45").unwrap().as_secs(), 45);
        for bad in ["", "d", "0h", "3w", "-1d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
