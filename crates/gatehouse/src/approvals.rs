//! `gatehouse approvals`: the approver's side of held calls, through the gateway's
//! approvals API with the approver's own credential (never the agent's channel).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// Requests this approver may decide (default: pending ones).
    List {
        /// pending, approved, denied, expired, used or all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One request in full: who asked, the tool, the arguments (secrets redacted), why.
    Show { id: String },
    /// Approve one held call (valid once, for these exact arguments).
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny one held call.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// Largest answer read (a full page of requests with their arguments).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Where and as whom.
pub(crate) struct Target {
    pub url: String,
    pub token: String,
    pub app: String,
}

/// An admin API answer: its JSON body (at most `max` bytes), or its error as an error.
pub(crate) async fn answer(mut resp: reqwest::Response, max: usize, failed: &str) -> Result<Value> {
    let status = resp.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the answer")? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > max {
            bail!("the gateway's answer is larger than {max} bytes");
        }
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body.get("error").and_then(Value::as_str).unwrap_or(failed);
        bail!("{msg} (HTTP {})", status.as_u16());
    }
    Ok(body)
}

pub(crate) async fn run(t: Target, cmd: ApprovalsCommand) -> Result<()> {
    let base = format!("{}/admin/v1/approvals", t.url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let send = |req: reqwest::RequestBuilder| {
        req.bearer_auth(&t.token)
            .header(gatehouse_control::APP_HEADER, &t.app)
            .send()
    };
    let (resp, print_json) = match &cmd {
        ApprovalsCommand::List { status, json } => (
            send(http.get(format!(
                "{base}?status={}",
                status.replace(|c: char| !c.is_ascii_alphabetic(), "")
            )))
            .await,
            *json,
        ),
        ApprovalsCommand::Show { id } => (send(http.get(format!("{base}/{id}"))).await, true),
        ApprovalsCommand::Approve { id, reason } => (
            send(
                http.post(format!("{base}/{id}/approve"))
                    .json(&json!({"reason": reason})),
            )
            .await,
            false,
        ),
        ApprovalsCommand::Deny { id, reason } => (
            send(
                http.post(format!("{base}/{id}/deny"))
                    .json(&json!({"reason": reason})),
            )
            .await,
            false,
        ),
    };
    let body = answer(
        resp.with_context(|| format!("reaching {base}"))?,
        MAX_ANSWER,
        "request failed",
    )
    .await?;
    if print_json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    match cmd {
        ApprovalsCommand::List { .. } => {
            let items = body
                .get("approvals")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                println!("no approval requests");
            }
            for a in items {
                let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let approvals = a.get("decisions").and_then(Value::as_array).map_or(0, |d| {
                    d.iter()
                        .filter(|d| d.get("approve") == Some(&Value::Bool(true)))
                        .count()
                });
                println!(
                    "{}  {:8}  {} → {}/{}  {}/{} approvals  reason {}  args {}",
                    s("id"),
                    s("status"),
                    s("principal"),
                    s("upstream"),
                    s("tool"),
                    approvals,
                    a.get("required").and_then(Value::as_u64).unwrap_or(1),
                    s("reason"),
                    a.get("arguments").map(Value::to_string).unwrap_or_default()
                );
            }
        }
        ApprovalsCommand::Approve { id, .. } | ApprovalsCommand::Deny { id, .. } => {
            let status = body.get("status").and_then(Value::as_str).unwrap_or("?");
            println!("{id}: {status}");
        }
        ApprovalsCommand::Show { .. } => {}
    }
    Ok(())
}
