//! `gatehouse detect`: the detection cascade as a filter, for evaluations and for operators
//! testing their own corpora. JSON lines in, one JSON line out per input in the same order,
//! each with the action the gateway would take on that text in that place and the findings
//! behind it. The interface is stable: outside evaluations depend on it.

use std::io::{BufRead, Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gatehouse_pipeline::{Place, judge};
use gatehouse_policy::Classification;
use gatehouse_proxy::config::Detection;
use serde_json::{Value, json};

/// Where the texts sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Tool results (`{"text": …}`): withheld, redacted or recorded.
    Result,
    /// Tool-call arguments (`{"text": …}`): refused, held for approval or recorded.
    Argument,
    /// Tool definitions (`{"tool": {…}}`): quarantined or recorded.
    Description,
}

/// The configured detection, or the defaults when no config is given.
fn detection(config: Option<&PathBuf>) -> Result<Arc<Detection>> {
    let cfg = match config {
        Some(path) => gatehouse_proxy::Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => gatehouse_proxy::Config::from_yaml("dev_mode: true\n", &|_| None)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    cfg.detection
        .clone()
        .context("detection is disabled in this config (detection.enabled: false)")
}

/// One input line judged: its output line.
async fn one(d: &Detection, kind: Kind, level: Classification, line: &str) -> Value {
    let input: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"index": null, "error": format!("not JSON: {e}")}),
    };
    let index = input.get("index").cloned().unwrap_or(Value::Null);
    let (action, found) = match kind {
        Kind::Description => {
            let Some(tool) = input.get("tool").filter(|t| t.is_object()) else {
                return json!({"index": index, "error": "expected {\"index\": …, \"tool\": {…}}"});
            };
            let rules = gatehouse_detect::definitions::patterns();
            gatehouse_pipeline::pins::judge_definition(d, rules, level, "detect", tool, &[])
        }
        Kind::Result | Kind::Argument => {
            let Some(text) = input.get("text").and_then(Value::as_str) else {
                return json!({"index": index, "error": "expected {\"index\": …, \"text\": \"…\"}"});
            };
            let tool = input.get("tool").and_then(Value::as_str).unwrap_or("");
            let place = if kind == Kind::Result {
                Place::Result
            } else {
                Place::Argument
            };
            // A result as the gateway sees it: one text content block.
            let v = if place == Place::Result {
                json!({"content": [{"type": "text", "text": text}]})
            } else {
                json!({"text": text})
            };
            let (action, found) = judge(d, place, level, tool, &v).await;
            (action, found)
        }
    };
    let findings: Vec<Value> = found
        .iter()
        .map(|(at, s)| {
            json!({
                "stage": s.stage,
                "rule": s.rule,
                "severity": s.severity.as_str(),
                "score": (f64::from(s.score) * 1000.0).round() / 1000.0,
                "start": s.start,
                "end": s.end,
                "at": at,
            })
        })
        .collect();
    json!({"index": index, "action": action, "findings": findings})
}

/// Longest input line read (a 16 MiB text is far beyond any tool result the gateway passes).
const MAX_LINE: u64 = 16 << 20;

/// Non-empty lines, each at most [`MAX_LINE`] bytes.
fn read_lines(input: &mut impl BufRead) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut buf = Vec::new();
        let n = input
            .by_ref()
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .context("reading standard input")?;
        if n == 0 {
            return Ok(lines);
        }
        if buf.len() as u64 > MAX_LINE {
            bail!(
                "input line {} is longer than {MAX_LINE} bytes",
                lines.len() + 1
            );
        }
        let line = String::from_utf8(buf)
            .with_context(|| format!("input line {} is not UTF-8", lines.len() + 1))?;
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
}

pub(crate) async fn run(
    kind: Kind,
    config: Option<PathBuf>,
    level: Classification,
    threads: Option<usize>,
) -> Result<()> {
    let d = detection(config.as_ref())?;
    let lines = read_lines(&mut std::io::stdin().lock())?;
    if lines.is_empty() {
        return Ok(());
    }
    // Contiguous slices, one task each, on every core: the cascade is CPU work, the
    // arbiter (when configured) is awaited inside the same task.
    let workers = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .clamp(1, 64);
    let lines = Arc::new(lines);
    let per = lines.len().div_ceil(workers);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (lines, d) = (Arc::clone(&lines), Arc::clone(&d));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for line in lines.iter().skip(w * per).take(per) {
                out.push(one(&d, kind, level, line).await.to_string());
            }
            out
        }));
    }
    let stdout = std::io::stdout();
    let mut stdout = std::io::BufWriter::new(stdout.lock());
    for t in tasks {
        let part = match t.await {
            Ok(p) => p,
            Err(e) => bail!("a detection worker failed: {e}"),
        };
        for l in part {
            writeln!(stdout, "{l}").context("writing standard output")?;
        }
    }
    stdout.flush().context("writing standard output")?;
    Ok(())
}
