//! How one stored event is written for a SIEM: JSON (the event with its chain position),
//! CEF, LEEF, and the RFC 5424 syslog message that carries any of them.

use gatehouse_store::Pending;
use serde_json::{Map, Value, json};

use gatehouse_proxy::config::RawSinkFormat;

/// The event with its place in the chain, as every JSON sink sends it.
pub fn json_event(p: &Pending) -> Value {
    let mut event: Value = serde_json::from_str(&p.body).unwrap_or_else(|_| json!({}));
    if let Some(o) = event.as_object_mut() {
        o.insert("chain".into(), json!(p.chain));
        o.insert("seq".into(), json!(p.seq));
        o.insert("hash".into(), json!(p.hash));
    }
    event
}

fn field<'a>(e: &'a Map<String, Value>, k: &str) -> &'a str {
    e.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Severity 0–10 for CEF/LEEF: refusals and errors stand out.
fn severity(e: &Map<String, Value>) -> u8 {
    match field(e, "status") {
        "denied" | "error" => 7,
        "expired" | "approval_pending" => 5,
        _ if field(e, "kind") == "auth" => 5,
        _ => 3,
    }
}

fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// ArcSight CEF: `CEF:0|Gatehouse|Gatehouse|VERSION|ID|NAME|SEV|ext`.
pub fn cef(p: &Pending) -> String {
    let v = json_event(p);
    let e = v.as_object().cloned().unwrap_or_default();
    let id = format!("{}:{}", field(&e, "kind"), field(&e, "method"));
    let name = format!("{} {}", field(&e, "method"), field(&e, "status"));
    let mut ext = vec![
        format!(
            "rt={}",
            e.get("time_ms").and_then(Value::as_u64).unwrap_or(0)
        ),
        format!("suser={}", cef_value(field(&e, "principal"))),
        format!("outcome={}", cef_value(field(&e, "status"))),
        format!("request={}", cef_value(field(&e, "target"))),
        format!(
            "destinationServiceName={}",
            cef_value(field(&e, "upstream"))
        ),
        format!("src={}", cef_value(field(&e, "source_ip"))),
        format!("externalId={}", cef_value(field(&e, "correlation"))),
        format!("cs1Label=tenant cs1={}", cef_value(field(&e, "tenant"))),
        format!("cs2Label=rule cs2={}", cef_value(field(&e, "rule"))),
        format!("cs3Label=chain cs3={}", cef_value(&p.chain)),
        format!("cn1Label=seq cn1={}", p.seq),
        format!("cs4Label=hash cs4={}", p.hash),
    ];
    let classification = field(&e, "classification");
    if !classification.is_empty() {
        ext.push(format!(
            "cs5Label=classification cs5={}",
            cef_value(classification)
        ));
    }
    format!(
        "CEF:0|Gatehouse|Gatehouse|{}|{}|{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&id),
        cef_header(&name),
        severity(&e),
        ext.join(" ")
    )
}

fn leef_value(s: &str) -> String {
    s.replace(['^', '\n', '\r', '\t'], " ")
}

/// IBM QRadar LEEF 2.0 with `^` as the delimiter.
pub fn leef(p: &Pending) -> String {
    let v = json_event(p);
    let e = v.as_object().cloned().unwrap_or_default();
    let attrs = [
        (
            "devTime",
            e.get("time_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .to_string(),
        ),
        ("devTimeFormat", "epoch-millis".to_owned()),
        ("cat", field(&e, "kind").to_owned()),
        ("sev", severity(&e).to_string()),
        ("usrName", field(&e, "principal").to_owned()),
        ("src", field(&e, "source_ip").to_owned()),
        ("action", field(&e, "method").to_owned()),
        ("outcome", field(&e, "status").to_owned()),
        ("resource", field(&e, "target").to_owned()),
        ("tenant", field(&e, "tenant").to_owned()),
        ("rule", field(&e, "rule").to_owned()),
        ("correlation", field(&e, "correlation").to_owned()),
        ("chain", p.chain.clone()),
        ("seq", p.seq.to_string()),
        ("hash", p.hash.clone()),
    ];
    let body: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", leef_value(v)))
        .collect();
    format!(
        "LEEF:2.0|Gatehouse|Gatehouse|{}|{}|^|{}",
        env!("CARGO_PKG_VERSION"),
        leef_value(&format!("{}:{}", field(&e, "kind"), field(&e, "method"))),
        body.join("^")
    )
}

pub fn body(p: &Pending, format: RawSinkFormat) -> String {
    match format {
        RawSinkFormat::Json => json_event(p).to_string(),
        RawSinkFormat::Cef => cef(p),
        RawSinkFormat::Leef => leef(p),
    }
}

/// RFC 3339 with milliseconds, UTC, from epoch milliseconds.
fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Printable ASCII without spaces, bounded: what RFC 5424 header fields allow.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

fn sd_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// One RFC 5424 message: facility `log audit` (13), severity notice or warning,
/// MSGID the event's method, structured data with the chain position, then the body.
pub fn syslog(p: &Pending, format: RawSinkFormat, host: &str) -> String {
    let v = json_event(p);
    let e = v.as_object().cloned().unwrap_or_default();
    let sev = if severity(&e) >= 7 { 4 } else { 5 };
    let time = e.get("time_ms").and_then(Value::as_u64).unwrap_or(0);
    format!(
        "<{}>1 {} {} gatehouse {} {} [gatehouse@32473 chain=\"{}\" seq=\"{}\" hash=\"{}\"] {}",
        13 * 8 + sev,
        timestamp(time),
        header_field(host, 255),
        std::process::id(),
        header_field(field(&e, "method"), 32),
        sd_value(&p.chain),
        p.seq,
        sd_value(&p.hash),
        body(p, format)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(body: Value) -> Pending {
        Pending {
            chain: "acme".into(),
            seq: 7,
            hash: "ab12".into(),
            body: body.to_string(),
        }
    }

    #[test]
    fn formats_carry_the_event_and_escape_what_they_must() {
        let p = pending(json!({
            "v": 1, "kind": "request", "time_ms": 1_795_000_000_123u64, "principal": "corp/a=b|c",
            "method": "tools/call", "status": "denied", "target": "db__query", "tenant": "acme",
            "rule": "authorize.forbid", "correlation": "x-1"
        }));
        let j = json_event(&p);
        assert_eq!(
            (j["chain"].as_str(), j["seq"].as_u64()),
            (Some("acme"), Some(7))
        );
        let c = cef(&p);
        assert!(c.starts_with("CEF:0|Gatehouse|Gatehouse|"), "{c}");
        assert!(
            c.contains("|request:tools/call|tools/call denied|7|"),
            "{c}"
        );
        assert!(c.contains("suser=corp/a\\=b|c"), "{c}");
        let l = leef(&p);
        assert!(
            l.starts_with("LEEF:2.0|Gatehouse|Gatehouse|")
                && l.contains("|^|devTime=1795000000123^"),
            "{l}"
        );
        let s = syslog(&p, RawSinkFormat::Json, "gw-1");
        assert!(s.starts_with("<108>1 2026-11-18T11:06:40.123Z "), "{s}");
        assert!(
            s.contains(" gw-1 gatehouse ")
                && s.contains(
                    " tools/call [gatehouse@32473 chain=\"acme\" seq=\"7\" hash=\"ab12\"] {"
                ),
            "{s}"
        );
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
