//! Notifications of new approval requests to webhooks: a generic JSON payload signed with
//! HMAC-SHA256 (`Gatehouse-Signature: t=UNIX,v1=HEX` over `UNIX.BODY`, so a captured
//! payload cannot be replayed under a new time) or a Slack-compatible message with a link.
//! Sent in the background with retries; each outcome is audited. Never on the call's path.

use std::time::Duration;

use gatehouse_store::ApprovalRecord;
use serde_json::{Value, json};

use crate::config::Webhook;

/// Attempts per webhook, with doubling delays from one second.
const ATTEMPTS: u32 = 4;

/// The header carrying the signature.
pub(crate) const SIGNATURE_HEADER: &str = "gatehouse-signature";

/// The payload a webhook receives.
pub(crate) fn payload(rec: &ApprovalRecord, link: Option<&str>, slack: bool) -> Value {
    if slack {
        let mut text = format!(
            "*Approval needed* for `{}` on `{}` by `{}` (reference `{}`, {} of {} approvals, reason {}).",
            rec.tool,
            rec.upstream,
            rec.principal,
            rec.id,
            rec.approvals(),
            rec.required,
            rec.reason
        );
        if let Some(l) = link {
            text.push_str(&format!(" <{l}|Review>"));
        } else {
            text.push_str(&format!(" Review: `gatehouse approvals show {}`", rec.id));
        }
        return json!({"text": text});
    }
    json!({
        "type": "approval.requested",
        "approval": rec,
        "link": link,
    })
}

/// `t=UNIX,v1=HEX(HMAC-SHA256(secret, "UNIX.BODY"))`.
pub fn signature(secret: &[u8], unix: u64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(unix.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={unix},v1={}", super::hex(ctx.sign().as_ref()))
}

/// Sends one notification, retrying with doubling delays; the last failure if none
/// succeeded.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    secrets: Option<&gatehouse_auth::LocalSecrets>,
    hook: &Webhook,
    rec: &ApprovalRecord,
    link: Option<&str>,
) -> Result<(), String> {
    let secret = match &hook.secret {
        None => None,
        Some(r) => Some(r.resolve(secrets)?),
    };
    let body = serde_json::to_vec(&payload(rec, link, hook.slack)).map_err(|e| e.to_string())?;
    let mut delay = Duration::from_secs(1);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut req = http
            .post(&hook.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(s) = &secret {
            let unix = gatehouse_transport::session::now_secs();
            req = req.header(SIGNATURE_HEADER, signature(s.as_bytes(), unix, &body));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.without_url().to_string(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gatehouse_store::ApprovalStatus;

    fn rec() -> ApprovalRecord {
        ApprovalRecord {
            id: "apr_7".into(),
            status: ApprovalStatus::Pending,
            principal: "corp/eng".into(),
            tenant: String::new(),
            upstream: "ops".into(),
            tool: "ops__deploy".into(),
            args_digest: "d".into(),
            arguments: json!({"service": "api", "token": "[redacted]"}),
            classification: "confidential".into(),
            reason: "default_rule".into(),
            approvers: vec!["approver".into()],
            required: 2,
            created_ms: 1,
            expires_ms: 2,
            correlation: "c".into(),
            client: "cli".into(),
            decisions: vec![],
        }
    }

    #[test]
    fn payloads_carry_the_request_and_a_link() {
        let p = payload(&rec(), Some("https://console/approvals/apr_7"), false);
        assert_eq!(p["type"], "approval.requested");
        assert_eq!(p["approval"]["id"], "apr_7");
        assert_eq!(p["approval"]["arguments"]["token"], "[redacted]");
        assert_eq!(p["link"], "https://console/approvals/apr_7");
        let slack = payload(&rec(), Some("https://console/approvals/apr_7"), true);
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.contains("`ops__deploy`") && text.contains("`apr_7`") && text.contains("0 of 2"),
            "{text}"
        );
        assert!(
            text.contains("<https://console/approvals/apr_7|Review>"),
            "{text}"
        );
        let no_link = payload(&rec(), None, true);
        assert!(
            no_link["text"]
                .as_str()
                .unwrap()
                .contains("gatehouse approvals show apr_7")
        );
    }

    #[test]
    fn signatures_cover_time_and_body() {
        let s = signature(b"k", 1700000000, b"{}");
        assert!(
            s.starts_with("t=1700000000,v1=") && s.len() == "t=1700000000,v1=".len() + 64,
            "{s}"
        );
        assert_eq!(s, signature(b"k", 1700000000, b"{}"));
        assert_ne!(
            s,
            signature(b"k", 1700000001, b"{}"),
            "a replay under a new time fails"
        );
        assert_ne!(s, signature(b"k", 1700000000, b"{ }"));
        assert_ne!(s, signature(b"other", 1700000000, b"{}"));
    }
}
