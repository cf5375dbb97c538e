//! `gatehouse pins`: review tool and prompt definitions the gateway holds back (first seen
//! under review, changed after pinning, or flagged by detection), through the admin API:
//! list, diff the trusted definition against the proposed one, approve or reject.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub(crate) enum PinsCommand {
    /// Pins (default: only what is held back).
    List {
        /// held, pending, quarantined, rejected, approved or all.
        #[arg(long, default_value = "held")]
        status: String,
        #[arg(long)]
        json: bool,
    },
    /// The trusted definition against the proposed one, line by line.
    Diff {
        /// `UPSTREAM/NAME` (a tool) or `UPSTREAM/prompt/NAME`.
        pin: String,
    },
    /// Trust the proposed definition (the one `diff` showed: its hash is checked).
    Approve {
        pin: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Who decides, for the record.
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Refuse the proposed definition: it stays hidden while the server offers it.
    Reject {
        pin: String,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
}

/// Largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// `UPSTREAM/NAME` or `UPSTREAM/KIND/NAME` as the API path.
fn pin_path(pin: &str) -> Result<String> {
    let parts: Vec<&str> = pin.split('/').collect();
    let (up, kind, name) = match parts.as_slice() {
        [up, name] => (*up, "tool", *name),
        [up, kind, name] if matches!(*kind, "tool" | "prompt") => (*up, *kind, *name),
        _ => bail!("name a pin as UPSTREAM/NAME or UPSTREAM/prompt/NAME"),
    };
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    Ok(format!("{}/{kind}/{}", enc(up), enc(name)))
}

/// A line diff of two texts (longest common subsequence; definitions are small).
pub(crate) fn diff_lines(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out
}

async fn call(req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("reaching {what}"))?;
    crate::approvals::answer(
        resp,
        MAX_ANSWER,
        "request failed (is admin_token configured and given?)",
    )
    .await
}

fn pretty(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        serde_json::to_string_pretty(v).unwrap_or_default()
    }
}

/// Approves or rejects the definition the administrator was shown: its hash goes along,
/// so a server that changed it again in between gets a conflict, not an approval.
async fn decide(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    pin: &str,
    verb: &str,
    reason: &str,
    by: &str,
) -> Result<()> {
    let path = pin_path(pin)?;
    let shown = call(http.get(format!("{base}/{path}")).bearer_auth(token), base).await?;
    let hash = shown
        .get("proposed_hash")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let body = call(
        http.post(format!("{base}/{path}/{verb}"))
            .bearer_auth(token)
            .json(&json!({"hash": hash, "reason": reason, "by": by})),
        base,
    )
    .await?;
    println!(
        "{pin}: {}",
        body.get("status").and_then(Value::as_str).unwrap_or("")
    );
    Ok(())
}

pub(crate) async fn run(url: &str, token: &str, cmd: PinsCommand) -> Result<()> {
    let base = format!("{}/admin/v1/pins", url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    match cmd {
        PinsCommand::List { status, json } => {
            let status: String = status.chars().filter(char::is_ascii_alphabetic).collect();
            let body = call(
                http.get(format!("{base}?status={status}"))
                    .bearer_auth(token),
                &base,
            )
            .await?;
            if json {
                println!("{}", pretty(&body));
                return Ok(());
            }
            let pins = body
                .get("pins")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if pins.is_empty() {
                println!("no pins");
            }
            for p in pins {
                let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let why = p
                    .get("findings")
                    .map(|f| match (f.get("reason"), f.get("rules")) {
                        (_, Some(r)) => format!("detection: {r}"),
                        (Some(r), None) => r.as_str().unwrap_or("").to_owned(),
                        _ => String::new(),
                    })
                    .unwrap_or_default();
                println!(
                    "{:<12} {}/{}/{}  {}",
                    s("status"),
                    s("upstream"),
                    s("kind"),
                    s("name"),
                    why
                );
            }
        }
        PinsCommand::Diff { pin } => {
            let path = pin_path(&pin)?;
            let body = call(http.get(format!("{base}/{path}")).bearer_auth(token), &base).await?;
            let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            println!("{} {}  status {}", s("kind"), pin, s("status"));
            if let Some(f) = body.get("findings").filter(|f| !f.is_null()) {
                println!("why: {f}");
            }
            println!(
                "trusted  {}",
                if s("hash").is_empty() {
                    "(none yet)".into()
                } else {
                    s("hash")
                }
            );
            println!(
                "proposed {}",
                if s("proposed_hash").is_empty() {
                    "(none)".into()
                } else {
                    s("proposed_hash")
                }
            );
            let old = pretty(&body["definition"]);
            let new = pretty(&body["proposed"]);
            if new.is_empty() {
                println!("nothing waits for review");
            } else {
                for line in diff_lines(&old, &new) {
                    println!("{line}");
                }
            }
        }
        PinsCommand::Approve { pin, reason, by } => {
            decide(&http, &base, token, &pin, "approve", &reason, &by).await?;
        }
        PinsCommand::Reject { pin, reason, by } => {
            decide(&http, &base, token, &pin, "reject", &reason, &by).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_what_changed() {
        let d = diff_lines("a\nb\nc", "a\nB\nc\nd");
        assert_eq!(d, ["  a", "+ B", "- b", "  c", "+ d"]);
        assert!(pin_path("evil/add").is_ok_and(|p| p == "evil/tool/add"));
        assert!(pin_path("evil/prompt/brief").is_ok_and(|p| p == "evil/prompt/brief"));
        assert!(pin_path("a/b/c/d").is_err());
        assert!(pin_path("a b/x").is_ok_and(|p| p == "a%20b/tool/x"));
    }
}
