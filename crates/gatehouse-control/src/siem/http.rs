//! HTTP sinks: Splunk HEC, Elasticsearch bulk (each event's id is its chain position, so a
//! resent batch overwrites instead of duplicating), OTLP/HTTP logs (JSON), and a generic
//! webhook whose batches are HMAC-signed like approval notifications.

use gatehouse_store::Pending;
use serde_json::{Value, json};

use super::{Failure, format};
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_proxy::config::{RawSinkKind, SinkKind};

pub(super) struct HttpSink {
    kind: RawSinkKind,
    url: String,
    client: reqwest::Client,
    token: Option<gatehouse_auth::SecretRef>,
    index: String,
}

impl HttpSink {
    pub(super) fn new(kind: &SinkKind) -> Result<HttpSink, String> {
        let SinkKind::Http {
            kind,
            url,
            tls,
            token,
            index,
        } = kind
        else {
            return Err("not an HTTP sink".into());
        };
        let client = gatehouse_transport::upstream::http_client(tls.as_ref())
            .ok_or("TLS settings unusable")?;
        Ok(HttpSink {
            kind: *kind,
            url: url.clone(),
            client,
            token: token.clone(),
            index: index.clone(),
        })
    }

    fn body(&self, batch: &[Pending]) -> (Vec<u8>, &'static str) {
        match self.kind {
            RawSinkKind::Hec => {
                let mut out = Vec::new();
                for p in batch {
                    let e = format::json_event(p);
                    let time =
                        e.get("time_ms").and_then(Value::as_u64).unwrap_or(0) as f64 / 1000.0;
                    let line = json!({"time": time, "source": "gatehouse", "sourcetype": "gatehouse:audit", "event": e});
                    out.extend_from_slice(line.to_string().as_bytes());
                    out.push(b'\n');
                }
                (out, "application/json")
            }
            RawSinkKind::Elasticsearch => {
                let mut out = Vec::new();
                for p in batch {
                    let action = json!({"index": {"_index": self.index, "_id": format!("{}-{}", p.chain, p.seq)}});
                    out.extend_from_slice(action.to_string().as_bytes());
                    out.push(b'\n');
                    out.extend_from_slice(format::json_event(p).to_string().as_bytes());
                    out.push(b'\n');
                }
                (out, "application/x-ndjson")
            }
            RawSinkKind::Otlp => {
                let records: Vec<Value> = batch
                    .iter()
                    .map(|p| {
                        let e = format::json_event(p);
                        let ms = e.get("time_ms").and_then(Value::as_u64).unwrap_or(0);
                        let denied = matches!(
                            e.get("status").and_then(Value::as_str),
                            Some("denied" | "error")
                        );
                        json!({
                            "timeUnixNano": (u128::from(ms) * 1_000_000).to_string(),
                            "severityNumber": if denied { 13 } else { 9 },
                            "severityText": if denied { "WARN" } else { "INFO" },
                            "body": {"stringValue": e.to_string()},
                            "attributes": [
                                {"key": "gatehouse.chain", "value": {"stringValue": p.chain}},
                                {"key": "gatehouse.seq", "value": {"intValue": p.seq.to_string()}},
                                {"key": "gatehouse.hash", "value": {"stringValue": p.hash}},
                            ],
                        })
                    })
                    .collect();
                let body = json!({"resourceLogs": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gatehouse"}}]},
                    "scopeLogs": [{"scope": {"name": "gatehouse.audit"}, "logRecords": records}],
                }]});
                (body.to_string().into_bytes(), "application/json")
            }
            _ => {
                let events: Vec<Value> = batch.iter().map(format::json_event).collect();
                (
                    json!({"events": events}).to_string().into_bytes(),
                    "application/json",
                )
            }
        }
    }

    pub(super) async fn send(&self, gw: &Gateway, batch: &[Pending]) -> Result<(), Failure> {
        let (body, content_type) = self.body(batch);
        let token = match &self.token {
            None => None,
            Some(r) => Some(r.resolve(gw.secrets()).map_err(Failure::Transient)?),
        };
        let mut req = self
            .client
            .post(&self.url)
            .timeout(std::time::Duration::from_secs(30))
            .header(http::header::CONTENT_TYPE, content_type);
        match (self.kind, &token) {
            (RawSinkKind::Hec, Some(t)) => {
                req = req.header(http::header::AUTHORIZATION, format!("Splunk {t}"))
            }
            (RawSinkKind::Elasticsearch, Some(t)) => {
                req = req.header(http::header::AUTHORIZATION, format!("ApiKey {t}"))
            }
            (RawSinkKind::Otlp, Some(t)) => req = req.bearer_auth(t),
            (RawSinkKind::Webhook, Some(t)) => {
                let sig = gatehouse_pipeline::approval::notify_signature(
                    t.as_bytes(),
                    gatehouse_transport::session::now_secs(),
                    &body,
                );
                req = req.header("gatehouse-signature", sig);
            }
            _ => {}
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Transient(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_success() {
            if self.kind == RawSinkKind::Elasticsearch {
                // Bulk answers 200 with per-item errors.
                let text = read_limited(resp).await;
                if text.contains("\"errors\":true") {
                    return Err(Failure::Permanent(
                        "Elasticsearch refused some items".into(),
                    ));
                }
            }
            return Ok(());
        }
        let reason = format!("HTTP {}", status.as_u16());
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(Failure::Transient(reason))
        } else {
            Err(Failure::Permanent(reason))
        }
    }
}

/// The start of an answer body (enough to see an error flag), never more.
async fn read_limited(mut resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        out.extend_from_slice(&chunk);
        if out.len() > 64 * 1024 {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sink(kind: RawSinkKind) -> HttpSink {
        HttpSink {
            kind,
            url: "http://127.0.0.1:9/".into(),
            client: reqwest::Client::new(),
            token: None,
            index: "audit-idx".into(),
        }
    }

    fn batch() -> Vec<Pending> {
        (1..=2)
            .map(|seq| Pending {
                chain: "acme".into(),
                seq,
                hash: format!("h{seq}"),
                body: json!({"v": 1, "kind": "request", "time_ms": 1_700_000_000_500u64, "status": if seq == 1 { "ok" } else { "denied" }}).to_string(),
            })
            .collect()
    }

    #[test]
    fn payloads_follow_each_destinations_format() {
        // Splunk HEC: concatenated event objects, time in seconds.
        let (b, ct) = sink(RawSinkKind::Hec).body(&batch());
        assert_eq!(ct, "application/json");
        let lines: Vec<Value> = String::from_utf8(b)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"], 1_700_000_000.5);
        assert_eq!(lines[0]["sourcetype"], "gatehouse:audit");
        assert_eq!(lines[1]["event"]["seq"], 2);
        // Elasticsearch bulk: an action line then the document, ids from the chain position.
        let (b, ct) = sink(RawSinkKind::Elasticsearch).body(&batch());
        assert_eq!(ct, "application/x-ndjson");
        let text = String::from_utf8(b).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["index"]["_index"], "audit-idx");
        assert_eq!(lines[0]["index"]["_id"], "acme-1");
        assert_eq!(lines[3]["hash"], "h2");
        // OTLP/HTTP logs: one record per event, nanoseconds as strings, severity by status.
        let (b, _) = sink(RawSinkKind::Otlp).body(&batch());
        let v: Value = serde_json::from_slice(&b).unwrap();
        let records = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
        assert_eq!(records.as_array().unwrap().len(), 2);
        assert_eq!(records[0]["timeUnixNano"], "1700000000500000000");
        assert_eq!(
            (
                records[0]["severityText"].as_str(),
                records[1]["severityText"].as_str()
            ),
            (Some("INFO"), Some("WARN"))
        );
        assert_eq!(records[1]["attributes"][1]["value"]["intValue"], "2");
        let body: Value =
            serde_json::from_str(records[0]["body"]["stringValue"].as_str().unwrap()).unwrap();
        assert_eq!(body["chain"], "acme");
        // Webhook: one JSON object with the events.
        let (b, _) = sink(RawSinkKind::Webhook).body(&batch());
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
    }
}
