//! Metric names (constants, bounded labels) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests handled, by `method` (MCP method, or `other`) and `outcome`.
pub const REQUESTS: &str = "gatehouse_requests_total";
/// Allocations since start, when the process counts them (`GATEHOUSE_COUNT_ALLOCATIONS`).
pub const ALLOCATIONS: &str = "gatehouse_allocations_total";
/// Bytes allocated since start, when counted.
pub const ALLOCATED_BYTES: &str = "gatehouse_allocated_bytes_total";
/// Bytes allocated and not yet freed, when counted.
pub const HEAP_LIVE_BYTES: &str = "gatehouse_heap_live_bytes";
/// Upstream call latency in seconds, by `upstream`.
pub const UPSTREAM_LATENCY: &str = "gatehouse_upstream_latency_seconds";
/// Upstream call failures, by `upstream` and `kind`.
pub const UPSTREAM_ERRORS: &str = "gatehouse_upstream_errors_total";
/// 1 when an upstream is connected, by `upstream`.
pub const UPSTREAM_UP: &str = "gatehouse_upstream_up";
/// Client input refused before the pipeline, by `reason`.
pub const REJECTED: &str = "gatehouse_rejected_total";
/// Audit events dropped because the writer's queue was full (only events that did not
/// need to be durable are ever dropped).
pub const AUDIT_DROPPED: &str = "gatehouse_audit_dropped_total";
/// Audit events whose commit failed.
pub const AUDIT_FAILED: &str = "gatehouse_audit_failed_total";
/// Names refused because another upstream already exposes them.
pub const NAME_COLLISIONS: &str = "gatehouse_name_collisions_total";
/// Prompt-injection findings, by `place` (arguments, result, description), `stage` (1
/// patterns, 2 classifier, 3 arbiter) and `action` (block, approve, redact, flag,
/// quarantine).
pub const DETECTIONS: &str = "gatehouse_detections_total";
/// Tool and prompt definitions held back for review, by `status` (pending, quarantined).
pub const PINS_HELD: &str = "gatehouse_pins_held_total";
/// Authorization-server events, by `event` (`auth.login`, `auth.token_issued`,
/// `auth.refresh_replayed`, …).
pub const OAUTH_EVENTS: &str = "gatehouse_oauth_events_total";
/// Audit events delivered to a SIEM sink.
pub const SINK_SHIPPED: &str = "gatehouse_audit_sink_shipped_total";
/// Failed deliveries to a SIEM sink (retried).
pub const SINK_FAILURES: &str = "gatehouse_audit_sink_failures_total";
/// Audit events a SIEM sink refused for good, written to its dead-letter file.
pub const SINK_DEAD_LETTERED: &str = "gatehouse_audit_sink_dead_lettered_total";
/// Connections a sandboxed server asked the egress proxy for, by `upstream` and `outcome`
/// (allowed, refused).
pub const EGRESS: &str = "gatehouse_egress_total";
/// Spans not delivered to the OpenTelemetry collector (queue full, collector down).
pub const TRACES_DROPPED: &str = "gatehouse_traces_dropped_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process; later calls return the same handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(UPSTREAM_LATENCY.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0,
                    ],
                )
                .ok()
                .and_then(|b| b.install_recorder().ok())
                .inspect(|h| {
                    let h = h.clone();
                    // Histogram samples queue in the recorder until they are folded into
                    // buckets, which happens on a scrape or an upkeep; without this a
                    // gateway nobody scrapes keeps every sample (~8 bytes a call) forever.
                    let _ = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                h.run_upkeep();
                            }
                        });
                })
        })
        .clone()
}

/// How often queued histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Bounded label for a method name: known MCP methods as themselves, anything else `other`.
pub fn method_label(m: &str) -> &'static str {
    use gatehouse_protocol::method as mm;
    for known in [
        mm::INITIALIZE,
        mm::PING,
        mm::DISCOVER,
        mm::TOOLS_LIST,
        mm::TOOLS_CALL,
        mm::PROMPTS_LIST,
        mm::PROMPTS_GET,
        mm::RESOURCES_LIST,
        mm::RESOURCES_TEMPLATES_LIST,
        mm::RESOURCES_READ,
        mm::RESOURCES_SUBSCRIBE,
        mm::RESOURCES_UNSUBSCRIBE,
        mm::COMPLETE,
        mm::LOGGING_SET_LEVEL,
    ] {
        if m == known {
            return known;
        }
    }
    "other"
}
