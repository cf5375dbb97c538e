//! Logging and traces as the YAML file writes them, and the validation of `traces`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{ConfigError, TracesSettings};

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
