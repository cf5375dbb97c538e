//! Validation of what protects data in and out: `audit.sinks`, `exfiltration`,
//! `rate_limits`, `dlp` and `approvals`.

use super::*;
use crate::upstreams::upstream_tls;

pub(super) fn validate_sinks(
    raw: Vec<raw::RawSink>,
    base: &Path,
) -> Result<Vec<SinkSpec>, ConfigError> {
    let mut out: Vec<SinkSpec> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let at = |f: &str| format!("audit.sinks[{i}].{f}");
        if s.name.is_empty()
            || !s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            || out.iter().any(|o| o.name == s.name)
        {
            return Err(ConfigError::at(
                at("name"),
                "a unique name of letters, digits, - and _",
            ));
        }
        let tls = s
            .tls
            .map(|t| upstream_tls(&at("tls"), t, base))
            .transpose()?;
        let need = |v: Option<String>, f: &str| {
            v.ok_or_else(|| ConfigError::at(at(f), format!("a {:?} sink needs `{f}`", s.kind)))
        };
        let kind = match s.kind {
            RawSinkKind::Syslog => {
                let address = need(s.address, "address")?;
                let (host, port) = address
                    .rsplit_once(':')
                    .and_then(|(h, p)| {
                        Some((
                            h.trim_matches(['[', ']']).to_owned(),
                            p.parse::<u16>().ok()?,
                        ))
                    })
                    .ok_or_else(|| ConfigError::at(at("address"), "host:port"))?;
                SinkKind::Syslog {
                    server_name: s.server_name.unwrap_or_else(|| host.clone()),
                    host,
                    port,
                    tls,
                    format: s.format.unwrap_or(RawSinkFormat::Json),
                }
            }
            RawSinkKind::File => SinkKind::File {
                path: base.join(need(s.path, "path")?),
                format: s.format.unwrap_or(RawSinkFormat::Json),
                max_bytes: s.max_bytes.unwrap_or(100 << 20).max(4096),
                keep: s.keep.unwrap_or(10).clamp(1, 1000),
            },
            kind => {
                let url = need(s.url, "url")?;
                let parsed = reqwest::Url::parse(&url)
                    .map_err(|e| ConfigError::at(at("url"), e.to_string()))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::at(at("url"), "an http(s) URL"));
                }
                let token = s
                    .token
                    .as_deref()
                    .map(gatehouse_auth::SecretRef::parse)
                    .transpose()
                    .map_err(|e| ConfigError::at(at("token"), e))?;
                if kind == RawSinkKind::Hec && token.is_none() {
                    return Err(ConfigError::at(at("token"), "Splunk HEC needs its token"));
                }
                SinkKind::Http {
                    kind,
                    url,
                    tls,
                    token,
                    index: s.index.unwrap_or_else(|| "gatehouse-audit".into()),
                }
            }
        };
        out.push(SinkSpec {
            name: s.name,
            kind,
            batch: s.batch.unwrap_or(200).clamp(1, 10_000),
        });
    }
    Ok(out)
}

pub(super) fn validate_exfiltration(
    raw: raw::RawExfiltration,
) -> Result<Exfiltration, ConfigError> {
    let mut budgets = Vec::new();
    for (i, b) in raw.budgets.into_iter().enumerate() {
        let at = |f: &str| format!("exfiltration.budgets[{i}].{f}");
        if b.bytes == 0 || b.window_secs == 0 {
            return Err(ConfigError::at(
                at("bytes"),
                "bytes and window_secs must be at least 1",
            ));
        }
        if !matches!(
            b.per,
            RawRatePer::Principal | RawRatePer::Tool | RawRatePer::PrincipalTool
        ) {
            return Err(ConfigError::at(
                at("per"),
                "principal, tool or principal_tool",
            ));
        }
        if budgets.iter().any(|x: &Budget| x.name == b.name) || b.name.is_empty() {
            return Err(ConfigError::at(at("name"), "names are required and unique"));
        }
        budgets.push(Budget {
            name: b.name,
            per: b.per,
            bytes: b.bytes,
            window: Duration::from_secs(b.window_secs),
        });
    }
    let anomaly = match raw.anomaly {
        Some(a) if !a.enabled => None,
        a => {
            let factor = a.as_ref().and_then(|a| a.factor).unwrap_or(10.0);
            if !(factor > 1.0 && factor.is_finite()) {
                return Err(ConfigError::at(
                    "exfiltration.anomaly.factor",
                    "must be above 1",
                ));
            }
            Some(Anomaly {
                factor,
                min_bytes: a.as_ref().and_then(|a| a.min_bytes).unwrap_or(65536),
                min_samples: a.as_ref().and_then(|a| a.min_samples).unwrap_or(20),
            })
        }
    };
    Ok(Exfiltration { budgets, anomaly })
}

pub(super) fn validate_rate_limits(raw: RawRateLimits) -> Result<RateLimits, ConfigError> {
    if let Some(url) = &raw.redis
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        return Err(ConfigError::at(
            "rate_limits.redis",
            "must be a redis:// or rediss:// URL",
        ));
    }
    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in raw.rules.into_iter().enumerate() {
        let at = |f: &str| format!("rate_limits.rules[{i}].{f}");
        if r.name.is_empty() || !names.insert(r.name.clone()) {
            return Err(ConfigError::at(at("name"), "names are required and unique"));
        }
        if r.requests == 0 || r.per_secs == 0 {
            return Err(ConfigError::at(
                at("requests"),
                "requests and per_secs must be at least 1",
            ));
        }
        let interval = Duration::from_secs(r.per_secs)
            / u32::try_from(r.requests.min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
        if interval.is_zero() {
            return Err(ConfigError::at(
                at("requests"),
                "more than a billion requests a second",
            ));
        }
        rules.push(RateRule {
            name: r.name,
            per: r.per,
            interval,
            burst: r.burst,
            methods: r.methods,
            tools: r.tools,
            servers: r.servers,
            fail: r.fail,
        });
    }
    if raw.max_in_flight_per_principal == Some(0) {
        return Err(ConfigError::at(
            "rate_limits.max_in_flight_per_principal",
            "must be at least 1",
        ));
    }
    if raw.redis_ca.is_some()
        && !raw
            .redis
            .as_deref()
            .is_some_and(|u| u.starts_with("rediss://"))
    {
        return Err(ConfigError::at(
            "rate_limits.redis_ca",
            "a CA needs a rediss:// (TLS) URL",
        ));
    }
    Ok(RateLimits {
        redis: raw.redis,
        redis_ca: raw.redis_ca.map(PathBuf::from),
        max_in_flight_per_principal: raw.max_in_flight_per_principal,
        rules,
    })
}

pub(super) fn validate_dlp(
    raw: raw::RawDlp,
    authz: Option<&RawAuthorization>,
    upstreams: &[UpstreamSpec],
) -> Result<Arc<Dlp>, ConfigError> {
    let source = format!(
        "{:?}|{:?}|{:?}",
        raw.profiles, raw.recognizers, raw.arguments
    );
    let recognizers = gatehouse_detect::Recognizers::new(&raw.recognizers)
        .map_err(|e| ConfigError::at("dlp.recognizers", e.to_string()))?;
    let mut profiles: BTreeMap<String, Option<gatehouse_detect::Profile>> = BTreeMap::new();
    profiles.insert(
        "standard".into(),
        Some(gatehouse_detect::Profile::standard()),
    );
    profiles.insert("none".into(), None);
    for (name, p) in raw.profiles {
        if name == "none" {
            return Err(ConfigError::at("dlp.profiles.none", "`none` is built in"));
        }
        if !(0.0..=1.0).contains(&p.min_confidence) {
            return Err(ConfigError::at(
                format!("dlp.profiles.{name}.min_confidence"),
                "must be between 0 and 1",
            ));
        }
        profiles.insert(name, Some(p));
    }
    let known = |name: &str, at: String| {
        if profiles.contains_key(name) {
            Ok(())
        } else {
            Err(ConfigError::at(
                at,
                format!("no redaction profile `{name}`"),
            ))
        }
    };
    if let Some(a) = authz {
        for (level, c) in &a.classification {
            if let Some(r) = &c.redaction {
                known(
                    r,
                    format!("authorization.classification.{}.redaction", level.as_str()),
                )?;
            }
        }
    }
    for u in upstreams {
        for (tool, t) in &u.data.tools {
            if let Some(r) = &t.redaction {
                known(r, format!("upstreams.{}.tools.{tool}.redaction", u.name))?;
            }
        }
    }
    let arguments = match raw.arguments.as_deref() {
        None => Some(gatehouse_detect::Profile::arguments()),
        Some(name) => {
            known(name, "dlp.arguments".into())?;
            profiles.get(name).cloned().flatten()
        }
    };
    Ok(Arc::new(Dlp {
        recognizers,
        profiles,
        arguments,
        source,
    }))
}

pub(super) fn validate_approvals(raw: raw::RawApprovals) -> Result<ApprovalSettings, ConfigError> {
    let secs = |field: &str, v: Option<u64>, default: u64, max: u64| {
        let v = v.unwrap_or(default);
        if v == 0 || v > max {
            return Err(ConfigError::at(
                format!("approvals.{field}"),
                format!("must be between 1 and {max}"),
            ));
        }
        Ok(Duration::from_secs(v))
    };
    let count = raw.count.unwrap_or(1);
    if !(1..=16).contains(&count) {
        return Err(ConfigError::at(
            "approvals.count",
            "must be between 1 and 16",
        ));
    }
    let approvers = raw.approvers.unwrap_or_else(|| vec!["approver".into()]);
    if approvers.is_empty() {
        return Err(ConfigError::at(
            "approvals.approvers",
            "at least one role must be able to approve",
        ));
    }
    let mut notify = Vec::new();
    for (i, w) in raw.notify.into_iter().enumerate() {
        let at = |f: &str| format!("approvals.notify[{i}].{f}");
        let url =
            reqwest::Url::parse(&w.url).map_err(|e| ConfigError::at(at("url"), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::at(at("url"), "must be an http(s) URL"));
        }
        notify.push(Webhook {
            url: w.url,
            slack: w.format == Some(raw::RawWebhookFormat::Slack),
            secret: w
                .secret
                .as_deref()
                .map(gatehouse_auth::SecretRef::parse)
                .transpose()
                .map_err(|e| ConfigError::at(at("secret"), e))?,
        });
    }
    Ok(ApprovalSettings {
        default_rule: raw.default_rule.unwrap_or(true),
        approvers,
        count,
        timeout: secs("timeout_secs", raw.timeout_secs, 900, MAX_APPROVAL_SECS)?,
        use_within: secs(
            "use_within_secs",
            raw.use_within_secs,
            900,
            MAX_APPROVAL_SECS,
        )?,
        hold: secs("hold_secs", raw.hold_secs, 25, 3600)?,
        progress: secs("progress_secs", raw.progress_secs, 5, 3600)?,
        max_pending: raw.max_pending.unwrap_or(20).max(1),
        console_url: raw.console_url,
        notify,
        postgres: raw.postgres,
    })
}
