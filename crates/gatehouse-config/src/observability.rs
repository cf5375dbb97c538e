//! Logging, traces and the fleet channel as the YAML file writes them, and their validation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{ConfigError, FleetSettings, TracesSettings};

/// Where and how spans are exported.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTraces {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the spans. Default `gatehouse`.
    pub service_name: Option<String>,
    /// Share of new traces kept, 0 to 1 (default 1). A client's `traceparent` decides for
    /// its own trace.
    pub sample: Option<f64>,
    /// Headers sent to the collector (an API key: use `${VAR}`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    /// `text` (default) or `json`.
    pub format: Option<RawLogFormat>,
    /// A tracing filter such as `info` or `gatehouse_proxy=debug`. Default `info`.
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawLogFormat {
    Text,
    Json,
}

/// `traces`: an http(s) endpoint, a sample share within 0..=1, valid header names.
pub(crate) fn validate_traces(t: RawTraces) -> Result<TracesSettings, ConfigError> {
    match reqwest::Url::parse(&t.endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(ConfigError::at(
                "traces.endpoint",
                "an http:// or https:// URL, e.g. http://otel-collector:4318/v1/traces",
            ));
        }
    }
    let sample = t.sample.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample) {
        return Err(ConfigError::at("traces.sample", "a share from 0 to 1"));
    }
    for (k, v) in &t.headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(v).is_err()
        {
            return Err(ConfigError::at(
                format!("traces.headers.{k}"),
                "not a valid HTTP header",
            ));
        }
    }
    Ok(TracesSettings {
        endpoint: t.endpoint,
        service_name: t.service_name.unwrap_or_else(|| "gatehouse".to_owned()),
        sample,
        headers: t.headers.into_iter().collect(),
    })
}

/// Replicas sharing one Redis channel for what one must hand to another.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// `redis://host:port/db` or `rediss://` (TLS, verified against `redis_ca` or the
    /// system's roots).
    pub redis: String,
    /// A PEM file of the CA that issued the Redis server's certificate (`rediss://` only).
    pub redis_ca: Option<String>,
    /// The pub/sub channel; replicas of one deployment share it. Default `gatehouse:fleet`.
    pub channel: Option<String>,
}

/// `fleet`: a redis URL, a CA only with TLS, a channel name of printable ASCII.
pub(crate) fn validate_fleet(
    f: RawFleet,
    has_session_key: bool,
) -> Result<FleetSettings, ConfigError> {
    if !(f.redis.starts_with("redis://") || f.redis.starts_with("rediss://")) {
        return Err(ConfigError::at(
            "fleet.redis",
            "must be a redis:// or rediss:// URL",
        ));
    }
    if f.redis_ca.is_some() && !f.redis.starts_with("rediss://") {
        return Err(ConfigError::at(
            "fleet.redis_ca",
            "a CA needs a rediss:// (TLS) URL",
        ));
    }
    // Replicas open each other's sessions and sign what they send each other with keys
    // derived from the shared session key: without one, nothing could be shared.
    if !has_session_key {
        return Err(ConfigError::at(
            "fleet",
            "replicas need a shared session.key (base64 of 32 random bytes)",
        ));
    }
    let channel = f.channel.unwrap_or_else(|| "gatehouse:fleet".to_owned());
    if channel.is_empty() || channel.len() > 128 || !channel.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::at(
            "fleet.channel",
            "1 to 128 printable ASCII characters",
        ));
    }
    Ok(FleetSettings {
        redis: f.redis,
        redis_ca: f.redis_ca.map(std::path::PathBuf::from),
        channel,
    })
}
