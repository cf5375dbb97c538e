//! The operator console's settings (`console:`): whether it is served, which of an
//! operator's roles or groups make them a viewer, approver or administrator there, and how
//! long a sign-in lasts.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ConfigError;

/// `console:` as written.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    /// Serve the console at `/console`. Default true; it still needs a way to sign in
    /// (`admin.token`, API keys, a JWT issuer, or `auth.facade` for single sign-on).
    pub enabled: Option<bool>,
    /// Operators holding any of these roles or groups are console administrators (pins,
    /// audit, keys, policy what-if). Default `[admin]`.
    pub admins: Option<Vec<String>>,
    /// … approvers (the approvals inbox; the policy still decides which requests each may
    /// decide). Default `[approver]`.
    pub approvers: Option<Vec<String>>,
    /// … viewers (inventory, live view, policy explanations). Default `[viewer]`.
    pub viewers: Option<Vec<String>>,
    /// Hours a console sign-in lasts. Default 8, at most 24.
    pub session_hours: Option<u64>,
}

/// `console:` validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub enabled: bool,
    pub admins: Vec<String>,
    pub approvers: Vec<String>,
    pub viewers: Vec<String>,
    pub session_ttl: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> ConsoleSettings {
        ConsoleSettings {
            enabled: true,
            admins: vec!["admin".into()],
            approvers: vec!["approver".into()],
            viewers: vec!["viewer".into()],
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

pub(crate) fn validate_console(raw: Option<RawConsole>) -> Result<ConsoleSettings, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ConsoleSettings::default());
    };
    let d = ConsoleSettings::default();
    let hours = raw.session_hours.unwrap_or(8);
    if !(1..=24).contains(&hours) {
        return Err(ConfigError::at(
            "console.session_hours",
            "between 1 and 24 hours",
        ));
    }
    for (field, list) in [
        ("console.admins", &raw.admins),
        ("console.approvers", &raw.approvers),
        ("console.viewers", &raw.viewers),
    ] {
        if list.iter().flatten().any(|r| r.trim().is_empty()) {
            return Err(ConfigError::at(field, "an empty role or group name"));
        }
    }
    Ok(ConsoleSettings {
        enabled: raw.enabled.unwrap_or(true),
        admins: raw.admins.unwrap_or(d.admins),
        approvers: raw.approvers.unwrap_or(d.approvers),
        viewers: raw.viewers.unwrap_or(d.viewers),
        session_ttl: Duration::from_secs(hours * 3600),
    })
}

/// A draft `authorization:` section (YAML), validated as the config file's would be: what
/// the console's what-if replays recent calls against. Policy files it names are read
/// relative to `base`.
pub fn draft_authorization(
    yaml: &str,
    base: &std::path::Path,
) -> Result<crate::Authorization, ConfigError> {
    let raw: crate::RawAuthorization =
        yaml_serde::from_str(yaml).map_err(|e| ConfigError::at("authorization", e.to_string()))?;
    crate::authz::validate(raw, base, false)
}
