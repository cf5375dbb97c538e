//! Validation of the whole file into the runtime [`Config`]: the top-level settings here,
//! each larger section in its own module (upstreams, identity, protection, authz, detection).

use super::*;
use crate::observability::{validate_fleet, validate_traces};

impl RawConfig {
    /// Checks everything that can be checked offline and builds the runtime config.
    pub fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        self.validate_in(env, Path::new("."))
    }

    /// Like [`RawConfig::validate`], with relative file paths relative to `base`.
    pub fn validate_in(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let listen_s = self.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            ConfigError::at(
                "listen",
                format!("`{listen_s}` is not an address like 127.0.0.1:8080"),
            )
        })?;
        if !is_loopback(&listen) && (!self.allow_remote || self.dev_mode) {
            return Err(ConfigError::at(
                "listen",
                if self.dev_mode {
                    "development mode binds loopback only"
                } else {
                    "binding a non-loopback address needs allow_remote: true"
                },
            ));
        }
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(ConfigError::at(
                    format!("allowed_origins[{i}]"),
                    "an origin is scheme://host[:port] without a trailing slash",
                ));
            }
        }
        let l = &self.limits;
        let limits = RuntimeLimits {
            decode: Limits {
                max_body_bytes: positive("limits.max_body_bytes", l.max_body_bytes, 4 << 20)?,
                max_depth: positive("limits.max_json_depth", l.max_json_depth, 64)?,
                max_batch: positive("limits.max_batch", l.max_batch, 32)?,
            },
            max_upstream_message_bytes: positive(
                "limits.max_upstream_message_bytes",
                l.max_upstream_message_bytes,
                16 << 20,
            )?,
            request_timeout: Duration::from_secs(positive_u64(
                "limits.request_timeout_secs",
                l.request_timeout_secs,
                120,
            )?),
            body_timeout: Duration::from_secs(positive_u64(
                "limits.body_timeout_secs",
                l.body_timeout_secs,
                30,
            )?),
            max_concurrent_requests: positive(
                "limits.max_concurrent_requests",
                l.max_concurrent_requests,
                1024,
            )?,
            max_connections: positive("limits.max_connections", l.max_connections, 4096)?,
            drain: Duration::from_secs(l.drain_secs.unwrap_or(30)),
            workers: match l.workers {
                None => None,
                Some(n @ 1..=64) => Some(n),
                Some(_) => return Err(ConfigError::at("limits.workers", "1 to 64")),
            },
        };
        if limits.decode.max_depth > 128 {
            return Err(ConfigError::at("limits.max_json_depth", "at most 128"));
        }
        let session_key = match &self.session.key {
            None => None,
            Some(k) => {
                let bytes = STANDARD
                    .decode(k.trim())
                    .map_err(|_| ConfigError::at("session.key", "not base64"))?;
                Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    ConfigError::at(
                        "session.key",
                        format!("must decode to 32 bytes, got {}", bytes.len()),
                    )
                })?)
            }
        };
        let session_ttl = Duration::from_secs(positive_u64(
            "session.ttl_secs",
            self.session.ttl_secs,
            86_400,
        )?);
        let separator = self.federation.separator.unwrap_or_else(|| "__".to_owned());
        if separator.is_empty()
            || separator.len() > 8
            || separator.chars().any(|c| c.is_whitespace())
        {
            return Err(ConfigError::at(
                "federation.separator",
                "1 to 8 characters, no white space",
            ));
        }

        let mut upstreams = validate_upstreams(self.upstreams, base, &separator, env)?;
        let trusted_root = match &self.provenance.trusted_root {
            None => None,
            Some(f) => {
                let path = base.join(f);
                if !path.is_file() {
                    return Err(ConfigError::at(
                        "provenance.trusted_root",
                        format!("{} is not a readable file", path.display()),
                    ));
                }
                Some(path)
            }
        };
        for u in &mut upstreams {
            if let crate::TransportSpec::Stdio {
                package: Some(p), ..
            } = &mut u.transport
            {
                p.trusted_root.clone_from(&trusted_root);
                p.require_provenance = self.provenance.required;
            }
        }
        crate::packages::check_approved(&upstreams, &self.approved_servers)?;
        let virtual_servers = validate_virtual_servers(self.virtual_servers, &upstreams)?;

        let auth = match self.auth {
            None => None,
            Some(a) => {
                if self.dev_mode {
                    return Err(ConfigError::at(
                        "auth",
                        "dev_mode and auth exclude each other",
                    ));
                }
                Some(validate_auth(a, &virtual_servers, &upstreams)?)
            }
        };

        let api_keys_postgres = self.api_keys.as_ref().and_then(|k| k.postgres.clone());
        let api_key_pepper = match self.api_keys {
            None => None,
            // In development mode keys are optional: a caller without one is anonymous (the
            // quickstart's demo principals).
            Some(k) => {
                let bytes = STANDARD
                    .decode(k.pepper.trim())
                    .map_err(|_| ConfigError::at("api_keys.pepper", "not base64"))?;
                if bytes.len() < 32 {
                    return Err(ConfigError::at(
                        "api_keys.pepper",
                        format!("must decode to at least 32 bytes, got {}", bytes.len()),
                    ));
                }
                Some(bytes)
            }
        };
        let store_postgres = self.store.postgres.clone();
        let store_path = PathBuf::from(
            self.store
                .sqlite
                .unwrap_or_else(|| "gatehouse.db".to_owned()),
        );

        let tls = self.tls.map(validate_tls).transpose()?;

        let scim_token = self
            .scim
            .map(|s| {
                gatehouse_auth::SecretRef::parse(&s.token)
                    .map_err(|e| ConfigError::at("scim.token", e))
            })
            .transpose()?;
        let admin_token = self
            .admin
            .map(|s| {
                gatehouse_auth::SecretRef::parse(&s.token)
                    .map_err(|e| ConfigError::at("admin.token", e))
            })
            .transpose()?;

        let secrets = match self.secrets {
            None => None,
            Some(s) => {
                let master_key = gatehouse_auth::SecretRef::parse(&s.master_key)
                    .map_err(|e| ConfigError::at("secrets.master_key", e))?;
                if matches!(master_key, gatehouse_auth::SecretRef::Store(_)) {
                    return Err(ConfigError::at(
                        "secrets.master_key",
                        "use env: or file: for the master key",
                    ));
                }
                Some(SecretsSettings {
                    file: base.join(&s.file),
                    master_key,
                })
            }
        };
        let uses_store =
            |r: &gatehouse_auth::SecretRef| matches!(r, gatehouse_auth::SecretRef::Store(_));
        // Exchange needs callers with OAuth tokens: without `auth` every call would be refused.
        if auth.is_none()
            && let Some(u) = upstreams.iter().find(|u| {
                matches!(&u.transport, TransportSpec::StreamableHttp { credential: Some(c), .. } if c.token_exchange)
            })
        {
            return Err(ConfigError::at(
                format!("upstreams.{}.client_credentials.token_exchange", u.name),
                "token exchange needs `auth`: only callers with OAuth tokens have one to exchange",
            ));
        }
        let approvals = validate_approvals(self.approvals)?;
        let dlp = validate_dlp(self.dlp, self.authorization.as_ref(), &upstreams)?;
        validate_argument_patterns(&upstreams)?;
        // Every reference the gateway resolves at run time, to check that its source exists.
        let mut refs: Vec<&gatehouse_auth::SecretRef> =
            scim_token.iter().chain(&admin_token).collect();
        if let Some(f) = auth.as_ref().and_then(|a| a.facade.as_ref()) {
            refs.push(&f.login.client_secret);
            refs.extend(&f.token_key);
            refs.extend(f.upstreams.iter().filter_map(|u| u.client_secret.as_ref()));
        }
        refs.extend(approvals.notify.iter().filter_map(|w| w.secret.as_ref()));
        for u in &upstreams {
            if let TransportSpec::StreamableHttp {
                credential: Some(c),
                ..
            }
            | TransportSpec::Sse {
                credential: Some(c),
                ..
            } = &u.transport
            {
                refs.push(&c.client_secret);
            }
        }
        let store_refs = refs.iter().any(|r| uses_store(r));
        let vault = self.vault.map(validate_vault).transpose()?;
        if vault.is_none()
            && refs
                .iter()
                .any(|r| matches!(r, gatehouse_auth::SecretRef::Vault { .. }))
        {
            return Err(ConfigError::at(
                "vault",
                "vault: references need a vault section",
            ));
        }
        if store_refs && secrets.is_none() {
            return Err(ConfigError::at(
                "secrets",
                "secret: references need a secrets section",
            ));
        }

        let authorization = self
            .authorization
            .map(|a| authz::validate(a, base, self.dev_mode).map(Arc::new))
            .transpose()?;

        let errors = ErrorSettings {
            mode: self.errors.mode.unwrap_or(RawErrorMode::Scrub),
            pass_codes: self.errors.pass_codes.clone(),
            pass: self
                .errors
                .pass
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    regex::RegexBuilder::new(p)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| ConfigError::at(format!("errors.pass[{i}]"), e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        let detection = detection::validate(self.detection, base)?;
        let pinning = detection::validate_pinning(
            self.pinning,
            &upstreams
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>(),
        )?;
        let rate_limits = validate_rate_limits(self.rate_limits)?;
        let exfiltration = validate_exfiltration(self.exfiltration)?;
        let icap = match self.icap {
            None => None,
            Some(i) => {
                let (host, port, service) =
                    IcapService::parse(&i.url).map_err(|e| ConfigError::at("icap.url", e))?;
                let timeout =
                    Duration::from_millis(i.timeout_ms.unwrap_or(3000).clamp(10, 600_000));
                Some(IcapSettings {
                    service: IcapService {
                        host,
                        port,
                        service,
                        timeout,
                        preview: i.preview.unwrap_or(4096),
                    },
                    respmod: i.respmod.unwrap_or(true),
                    reqmod: i.reqmod.unwrap_or(false),
                    fail_closed: i.fail != Some(RawFailMode::Open),
                    levels: i.levels,
                })
            }
        };
        let traces = match self.traces {
            None => None,
            Some(t) => Some(validate_traces(t)?),
        };
        let fleet = match self.fleet {
            None => None,
            Some(f) => Some(validate_fleet(f, session_key.is_some())?),
        };
        Ok(Config {
            traces,
            fleet,
            directory_postgres: self.directory.and_then(|d| d.postgres),
            detection,
            pinning,
            icap,
            exfiltration,
            approvals,
            dlp,
            errors,
            rate_limits,
            // On unless turned off: every gateway keeps its record.
            audit: match self.audit.unwrap_or_default() {
                a if a.enabled == Some(false) => None,
                a => Some(AuditSettings {
                    durable_all: a.durable_all,
                    fsync: a.fsync.unwrap_or(true),
                    signing_key: a
                        .signing_key
                        .as_deref()
                        .map(gatehouse_auth::SecretRef::parse)
                        .transpose()
                        .map_err(|e| ConfigError::at("audit.signing_key", e))?,
                    checkpoint_every: a.checkpoint_every.unwrap_or(1000).max(1),
                    retention: match a.retention_days {
                        None => None,
                        Some(0) => {
                            return Err(ConfigError::at("audit.retention_days", "at least 1"));
                        }
                        Some(d) => Some(Duration::from_secs(d.saturating_mul(86_400))),
                    },
                    sinks: validate_sinks(a.sinks, base)?,
                    postgres: a.postgres,
                    subject_key: a
                        .subject_key
                        .as_deref()
                        .map(gatehouse_auth::SecretRef::parse)
                        .transpose()
                        .map_err(|e| ConfigError::at("audit.subject_key", e))?,
                }),
            },
            authorization,
            secrets,
            scim_token,
            admin_token,
            console: crate::console::validate_console(self.console)?,
            tls,
            auth,
            api_key_pepper,
            api_keys_postgres,
            vault,
            store_path,
            store_postgres,
            listen,
            dev_mode: self.dev_mode,
            group_roles: self.group_roles,
            allowed_origins: self.allowed_origins,
            limits,
            session_key,
            session_ttl,
            separator,
            upstreams,
            virtual_servers,
            tool_search: self.tool_search.unwrap_or(false),
            log_json: self.logging.format == Some(RawLogFormat::Json),
            log_level: self.logging.level.unwrap_or_else(|| "info".to_owned()),
        })
    }
}
