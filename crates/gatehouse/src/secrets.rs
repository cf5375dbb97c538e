//! `gatehouse secrets`: the encrypted local secret store behind `secret:NAME` references.
//! Values are read from standard input, never from the command line (shell history, ps).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use gatehouse_auth::LocalSecrets;
use gatehouse_proxy::Config;

#[derive(Subcommand)]
pub(crate) enum SecretsCommand {
    /// Store a secret; the value is read from standard input.
    Set { name: String },
    /// List secret names (never values).
    List,
    /// Remove a secret.
    Delete { name: String },
}

pub(crate) fn run(config: &Path, cmd: SecretsCommand) -> Result<()> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let s = cfg
        .secrets
        .as_ref()
        .context("the config has no secrets section")?;
    let key = s
        .master_key
        .resolve(None)
        .map_err(|e| anyhow::anyhow!("master key: {e}"))?;
    let store = LocalSecrets::new(&s.file, &key).map_err(|e| anyhow::anyhow!(e))?;
    match cmd {
        SecretsCommand::Set { name } => {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                bail!("secret names use letters, digits, -, _ and .");
            }
            let mut value = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut value)
                .context("reading the value from stdin")?;
            let value = value.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                bail!("empty value on stdin");
            }
            store.set(&name, value).map_err(|e| anyhow::anyhow!(e))?;
            eprintln!("secret {name} stored");
        }
        SecretsCommand::List => {
            for n in store.names().map_err(|e| anyhow::anyhow!(e))? {
                println!("{n}");
            }
        }
        SecretsCommand::Delete { name } => {
            if !store.delete(&name).map_err(|e| anyhow::anyhow!(e))? {
                bail!("no secret named {name}");
            }
            eprintln!("secret {name} deleted");
        }
    }
    Ok(())
}
