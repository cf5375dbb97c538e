//! `gatehouse audit`: verify the hash chains of the audit record.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;
use gatehouse_audit::{AuditStore, verify_chain};
use gatehouse_proxy::Config;
use gatehouse_store::SqliteAudit;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every tenant's chain; names the first altered, deleted, inserted or
    /// reordered record and exits 1 if any chain is broken.
    Verify,
}

pub(crate) fn run(config: &Path, cmd: AuditCommand) -> Result<()> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    match cmd {
        AuditCommand::Verify => {
            let store = SqliteAudit::open(&cfg.store_path)
                .with_context(|| format!("opening {}", cfg.store_path.display()))?;
            let mut broken = 0;
            let chains = store.chains()?;
            for chain in &chains {
                let links = store.links(chain)?;
                match verify_chain(&links) {
                    Ok((n, head)) => println!("chain {chain}: {n} records intact, head {head}"),
                    Err(t) => {
                        broken += 1;
                        println!("chain {chain}: BROKEN at {t}");
                    }
                }
            }
            if chains.is_empty() {
                println!("no audit records in {}", cfg.store_path.display());
            }
            if broken > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
