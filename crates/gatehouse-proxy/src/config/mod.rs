//! Configuration: the raw YAML types, `${ENV}` substitution, and validation into the
//! runtime types the gateway runs on. Runtime code never sees a raw type.

mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_protocol::Limits;

mod authz;

pub use authz::{Authorization, DataPolicy, RawAuthorization, RawDeniedAs, RawToolPolicy};
pub use raw::{
    RawApiKeys, RawAudit, RawAuth, RawCertRule, RawClaims, RawClientAuth, RawConfig, RawFederation,
    RawIntrospection, RawIssuer, RawLimits, RawLogFormat, RawLogging, RawSession, RawStore, RawTls,
    RawTransportKind, RawUpstream, RawUpstreamTls, RawVirtualServer,
};

/// A config problem, with where it is (a YAML location or a field path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: String,
    pub message: String,
}

impl ConfigError {
    fn at(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub dev_mode: bool,
    pub allowed_origins: Vec<String>,
    /// Roles granted by group membership.
    pub group_roles: BTreeMap<String, Vec<String>>,
    pub limits: RuntimeLimits,
    pub session_key: Option<[u8; 32]>,
    pub session_ttl: Duration,
    pub separator: String,
    pub upstreams: Vec<UpstreamSpec>,
    pub virtual_servers: BTreeMap<String, VirtualServer>,
    pub log_json: bool,
    pub log_level: String,
    pub auth: Option<AuthSettings>,
    /// Present when API keys are accepted: the pepper they are hashed under.
    pub api_key_pepper: Option<Vec<u8>>,
    /// The SQLite database (API keys; later audit, approvals, pins).
    pub store_path: PathBuf,
    pub tls: Option<TlsSettings>,
    /// Enables SCIM: the token the directory's SCIM client must present.
    pub scim_token: Option<gatehouse_auth::SecretRef>,
    /// Enables the admin API (`/admin/v1`): the token administrators present.
    pub admin_token: Option<gatehouse_auth::SecretRef>,
    pub secrets: Option<SecretsSettings>,
    /// Policy decisions; `None` when the section is absent (every caller may call every
    /// tool in scope — `gatehouse check` warns).
    pub authorization: Option<Arc<Authorization>>,
    /// The audit record, when configured: whether every call waits for its commit.
    pub audit: Option<AuditSettings>,
}

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub durable_all: bool,
    /// Signs checkpoints of chain heads.
    pub signing_key: Option<gatehouse_auth::SecretRef>,
    pub checkpoint_every: u64,
}

/// The encrypted local secret store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsSettings {
    pub file: PathBuf,
    pub master_key: gatehouse_auth::SecretRef,
}

/// The HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub allow_tls12: bool,
    pub client_ca: Option<PathBuf>,
    pub require_client_cert: bool,
    pub rules: Vec<CertRule>,
}

/// Maps a verified client certificate to a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRule {
    pub matcher: CertMatch,
    pub principal: String,
    pub roles: Vec<String>,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMatch {
    SanUri(String),
    SanDns(String),
    SubjectCn(String),
}

/// The gateway as a resource server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    pub resource: String,
    pub issuers: Vec<gatehouse_auth::IssuerConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeLimits {
    pub decode: Limits,
    pub max_upstream_message_bytes: usize,
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub name: String,
    /// `None` exposes names unprefixed.
    pub namespace: Option<String>,
    pub transport: TransportSpec,
    /// Classification, tenant and per-tool overrides for authorization.
    pub data: DataPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSpec {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    StreamableHttp {
        url: reqwest::Url,
        headers: Vec<(String, String)>,
        credential: Option<gatehouse_auth::ClientCredentialsConfig>,
        tls: Option<UpstreamTls>,
    },
    Sse {
        url: reqwest::Url,
        headers: Vec<(String, String)>,
        credential: Option<gatehouse_auth::ClientCredentialsConfig>,
        tls: Option<UpstreamTls>,
    },
}

/// TLS material for one upstream, read and checked when the config is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM of the only CA(s) trusted for this upstream.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate followed by its key.
    pub identity_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.identity_pem.is_some())
            .finish()
    }
}

impl UpstreamTls {
    /// An HTTP client that trusts only the pinned CA (when set) and presents the client
    /// certificate (when set). Certificates are always verified.
    pub fn client(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        let mut b = builder;
        if let Some(ca) = &self.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(ca).map_err(|e| format!("CA: {e}"))?;
            b = b.tls_certs_only(certs);
        }
        if let Some(id) = &self.identity_pem {
            b = b.identity(
                reqwest::Identity::from_pem(id).map_err(|e| format!("client certificate: {e}"))?,
            );
        }
        Ok(b)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub name: String,
    pub upstreams: BTreeSet<String>,
    pub tools: Option<BTreeSet<String>>,
    /// Only this tenant's principals may use it.
    pub tenant: Option<String>,
}

const DEFAULT_INHERIT: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

impl Config {
    /// Reads, substitutes and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::at(path.display().to_string(), e.to_string()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut cfg = Self::from_yaml_in(&text, &|k| std::env::var(k).ok(), base)?;
        // Relative paths are relative to the config file, not the working directory.
        if let Some(dir) = path.parent() {
            let fix = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            };
            fix(&mut cfg.store_path);
            if let Some(t) = cfg.tls.as_mut() {
                fix(&mut t.cert);
                fix(&mut t.key);
                if let Some(ca) = t.client_ca.as_mut() {
                    fix(ca);
                }
            }
        }
        Ok(cfg)
    }

    /// Parses YAML text; `env` resolves `${VAR}` references.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::from_yaml_in(text, env, Path::new("."))
    }

    /// Parses YAML text whose relative file paths are relative to `base`.
    pub fn from_yaml_in(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let text = substitute_env(text, env)?;
        let raw: RawConfig = yaml_serde::from_str(&text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "config".to_owned());
            ConfigError::at(loc, e.to_string())
        })?;
        raw.validate_in(env, base)
    }
}

/// Replaces `${NAME}` with the variable's value; `$${` is a literal `${`. A missing variable
/// or a value with a line break is an error naming the line.
fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("${") {
            if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                return Err(ConfigError::at(
                    format!("line {}", lineno + 1),
                    "unterminated ${",
                ));
            };
            let name = &after[..end];
            let value = env(name).ok_or_else(|| {
                ConfigError::at(
                    format!("line {}", lineno + 1),
                    format!("environment variable {name} is not set"),
                )
            })?;
            if value.contains('\n') || value.contains('\r') {
                return Err(ConfigError::at(
                    format!("line {}", lineno + 1),
                    format!("environment variable {name} contains a line break"),
                ));
            }
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

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

        let mut upstreams = Vec::new();
        let mut namespaces = BTreeMap::new();
        for (name, u) in self.upstreams {
            let at = format!("upstreams.{name}");
            if !valid_name(&name) {
                return Err(ConfigError::at(
                    at,
                    "names use a-z, 0-9, _ and - (at most 64)",
                ));
            }
            if u.tenant.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::at(format!("{at}.tenant"), "empty tenant"));
            }
            let data = DataPolicy {
                classification: u.classification,
                tenancy: gatehouse_policy::Tenancy {
                    tenant: u.tenant.clone(),
                    shared: u.shared,
                },
                tools: u.tools.clone(),
                resources: u.resources.clone(),
            };
            let namespace = match u.namespace.as_deref() {
                None => Some(name.clone()),
                Some("") => None,
                Some(ns) => Some(ns.to_owned()),
            };
            if let Some(ns) = &namespace {
                if ns.contains(separator.as_str()) {
                    return Err(ConfigError::at(
                        format!("{at}.namespace"),
                        format!(
                            "`{ns}` contains the separator `{separator}`, so names could collide"
                        ),
                    ));
                }
                if let Some(other) = namespaces.insert(ns.clone(), name.clone()) {
                    return Err(ConfigError::at(
                        format!("{at}.namespace"),
                        format!("namespace `{ns}` is already used by upstream {other}"),
                    ));
                }
            }
            let transport = match (u.command, u.url) {
                (Some(command), None) => {
                    if u.transport.is_some()
                        || !u.headers.is_empty()
                        || u.client_credentials.is_some()
                        || u.tls.is_some()
                    {
                        return Err(ConfigError::at(
                            at,
                            "transport and headers apply to url upstreams only",
                        ));
                    }
                    if command.trim().is_empty() {
                        return Err(ConfigError::at(format!("{at}.command"), "empty command"));
                    }
                    let mut envs: Vec<(String, String)> = Vec::new();
                    let inherit = u
                        .inherit_env
                        .unwrap_or_else(|| DEFAULT_INHERIT.map(str::to_owned).to_vec());
                    for k in inherit {
                        if let Some(v) = env(&k) {
                            envs.push((k, v));
                        }
                    }
                    envs.extend(u.env);
                    TransportSpec::Stdio {
                        command,
                        args: u.args,
                        env: envs,
                        cwd: u.cwd.map(PathBuf::from),
                    }
                }
                (None, Some(url)) => {
                    if !u.args.is_empty()
                        || !u.env.is_empty()
                        || u.cwd.is_some()
                        || u.inherit_env.is_some()
                    {
                        return Err(ConfigError::at(
                            at,
                            "args, env, inherit_env and cwd apply to command upstreams only",
                        ));
                    }
                    let url = match reqwest::Url::parse(&url) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u,
                        _ => {
                            return Err(ConfigError::at(
                                format!("{at}.url"),
                                format!("`{url}` is not an http(s) URL"),
                            ));
                        }
                    };
                    for k in u.headers.keys() {
                        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                            return Err(ConfigError::at(
                                format!("{at}.headers"),
                                format!("`{k}` is not a header name"),
                            ));
                        }
                    }
                    let headers = u.headers.into_iter().collect();
                    let credential = match u.client_credentials {
                        None => None,
                        Some(c) => {
                            let cat = format!("{at}.client_credentials");
                            match reqwest::Url::parse(&c.token_url) {
                                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                                _ => {
                                    return Err(ConfigError::at(
                                        format!("{cat}.token_url"),
                                        "not an http(s) URL",
                                    ));
                                }
                            }
                            let secret = gatehouse_auth::SecretRef::parse(&c.client_secret)
                                .map_err(|e| ConfigError::at(format!("{cat}.client_secret"), e))?;
                            Some(gatehouse_auth::ClientCredentialsConfig {
                                token_url: c.token_url,
                                client_id: c.client_id,
                                client_secret: secret,
                                scope: c.scope,
                                resource: c.resource,
                                token_exchange: c.token_exchange,
                            })
                        }
                    };
                    let tls = u
                        .tls
                        .map(|t| upstream_tls(&format!("{at}.tls"), t, base))
                        .transpose()?;
                    if tls.is_some() && url.scheme() != "https" {
                        return Err(ConfigError::at(
                            format!("{at}.tls"),
                            "tls needs an https:// url",
                        ));
                    }
                    match u.transport.unwrap_or(RawTransportKind::StreamableHttp) {
                        RawTransportKind::StreamableHttp => TransportSpec::StreamableHttp {
                            url,
                            headers,
                            credential,
                            tls,
                        },
                        RawTransportKind::Sse
                            if credential.as_ref().is_some_and(|c| c.token_exchange) =>
                        {
                            return Err(ConfigError::at(
                                format!("{at}.client_credentials.token_exchange"),
                                "token exchange needs a streamable_http upstream",
                            ));
                        }
                        RawTransportKind::Sse => TransportSpec::Sse {
                            url,
                            headers,
                            credential,
                            tls,
                        },
                    }
                }
                _ => return Err(ConfigError::at(at, "set exactly one of command and url")),
            };
            upstreams.push(UpstreamSpec {
                name,
                namespace,
                transport,
                data,
            });
        }

        let mut virtual_servers = BTreeMap::new();
        for (name, v) in self.virtual_servers {
            let at = format!("virtual_servers.{name}");
            if !valid_name(&name) {
                return Err(ConfigError::at(
                    at,
                    "names use a-z, 0-9, _ and - (at most 64)",
                ));
            }
            if v.upstreams.is_empty() {
                return Err(ConfigError::at(
                    format!("{at}.upstreams"),
                    "name at least one upstream",
                ));
            }
            for u in &v.upstreams {
                if !upstreams.iter().any(|s| &s.name == u) {
                    return Err(ConfigError::at(
                        format!("{at}.upstreams"),
                        format!("no upstream named `{u}`"),
                    ));
                }
            }
            virtual_servers.insert(
                name.clone(),
                VirtualServer {
                    name,
                    upstreams: v.upstreams.into_iter().collect(),
                    tools: v.tools.map(|t| t.into_iter().collect()),
                    tenant: v.tenant.filter(|t| !t.is_empty()),
                },
            );
        }

        let auth = match self.auth {
            None => None,
            Some(a) => {
                if self.dev_mode {
                    return Err(ConfigError::at(
                        "auth",
                        "dev_mode and auth exclude each other",
                    ));
                }
                Some(validate_auth(a)?)
            }
        };

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
        let store_refs = scim_token.iter().chain(&admin_token).any(uses_store)
            || upstreams.iter().any(|u| match &u.transport {
                TransportSpec::StreamableHttp {
                    credential: Some(c),
                    ..
                }
                | TransportSpec::Sse {
                    credential: Some(c),
                    ..
                } => uses_store(&c.client_secret),
                _ => false,
            });
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

        Ok(Config {
            audit: match self.audit {
                None => None,
                Some(a) => Some(AuditSettings {
                    durable_all: a.durable_all,
                    signing_key: a
                        .signing_key
                        .as_deref()
                        .map(gatehouse_auth::SecretRef::parse)
                        .transpose()
                        .map_err(|e| ConfigError::at("audit.signing_key", e))?,
                    checkpoint_every: a.checkpoint_every.unwrap_or(1000).max(1),
                }),
            },
            authorization,
            secrets,
            scim_token,
            admin_token,
            tls,
            auth,
            api_key_pepper,
            store_path,
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
            log_json: self.logging.format == Some(RawLogFormat::Json),
            log_level: self.logging.level.unwrap_or_else(|| "info".to_owned()),
        })
    }
}

/// Reads an upstream's TLS files now, so `gatehouse check` and reload catch a bad one.
fn upstream_tls(at: &str, t: RawUpstreamTls, base: &Path) -> Result<UpstreamTls, ConfigError> {
    let read = |field: &str, p: &str| {
        std::fs::read(base.join(p))
            .map_err(|e| ConfigError::at(format!("{at}.{field}"), format!("{p}: {e}")))
    };
    let ca_pem = t.ca.as_deref().map(|p| read("ca", p)).transpose()?;
    let identity_pem = match (t.client_cert.as_deref(), t.client_key.as_deref()) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let mut pem = read("client_cert", c)?;
            pem.push(b'\n');
            pem.extend(read("client_key", k)?);
            Some(pem)
        }
        _ => {
            return Err(ConfigError::at(
                at,
                "client_cert and client_key go together",
            ));
        }
    };
    let tls = UpstreamTls {
        ca_pem,
        identity_pem,
    };
    // Build a client once now: a certificate reqwest cannot use is a config error.
    tls.client(reqwest::Client::builder())
        .and_then(|b| b.build().map_err(|e| e.to_string()))
        .map_err(|e| ConfigError::at(at, e))?;
    Ok(tls)
}

fn validate_tls(t: RawTls) -> Result<TlsSettings, ConfigError> {
    let allow_tls12 = match t.min_version.as_deref() {
        None | Some("1.3") => false,
        Some("1.2") => true,
        Some(other) => {
            return Err(ConfigError::at(
                "tls.min_version",
                format!("`{other}`: use \"1.3\" or \"1.2\""),
            ));
        }
    };
    let require_client_cert = t.client_auth == Some(RawClientAuth::Required);
    if t.client_ca.is_none() && (require_client_cert || !t.client_principals.is_empty()) {
        return Err(ConfigError::at(
            "tls.client_ca",
            "client certificates need a CA to verify them",
        ));
    }
    let mut rules = Vec::new();
    for (i, r) in t.client_principals.into_iter().enumerate() {
        let at = format!("tls.client_principals[{i}]");
        let matcher = match (r.san_uri, r.san_dns, r.subject_cn) {
            (Some(u), None, None) => CertMatch::SanUri(u),
            (None, Some(d), None) => CertMatch::SanDns(d),
            (None, None, Some(c)) => CertMatch::SubjectCn(c),
            _ => {
                return Err(ConfigError::at(
                    at,
                    "set exactly one of san_uri, san_dns and subject_cn",
                ));
            }
        };
        if r.principal.trim().is_empty() {
            return Err(ConfigError::at(
                format!("{at}.principal"),
                "must not be empty",
            ));
        }
        rules.push(CertRule {
            matcher,
            principal: r.principal,
            roles: r.roles,
            tenant: r.tenant,
        });
    }
    Ok(TlsSettings {
        cert: PathBuf::from(t.cert),
        key: PathBuf::from(t.key),
        allow_tls12,
        client_ca: t.client_ca.map(PathBuf::from),
        require_client_cert,
        rules,
    })
}

fn validate_auth(a: RawAuth) -> Result<AuthSettings, ConfigError> {
    use gatehouse_auth::{Algorithm, ClaimMap, IssuerConfig, IssuerTrust};
    let http_url = |at: String, u: &str| -> Result<(), ConfigError> {
        match reqwest::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.has_host() => Ok(()),
            _ => Err(ConfigError::at(at, format!("`{u}` is not an http(s) URL"))),
        }
    };
    http_url("auth.resource".into(), &a.resource)?;
    if a.issuers.is_empty() {
        return Err(ConfigError::at("auth.issuers", "name at least one issuer"));
    }
    let mut issuers = Vec::new();
    for (name, i) in a.issuers {
        let at = format!("auth.issuers.{name}");
        if !valid_name(&name) {
            return Err(ConfigError::at(
                at,
                "names use a-z, 0-9, _ and - (at most 64)",
            ));
        }
        http_url(format!("{at}.issuer"), &i.issuer)?;
        if let Some(u) = &i.jwks_uri {
            http_url(format!("{at}.jwks_uri"), u)?;
        }
        let mut algorithms = Vec::new();
        for alg in i.algorithms.unwrap_or_else(|| vec!["RS256".into()]) {
            let parsed = match alg.as_str() {
                "RS256" => Algorithm::RS256,
                "RS384" => Algorithm::RS384,
                "RS512" => Algorithm::RS512,
                "PS256" => Algorithm::PS256,
                "PS384" => Algorithm::PS384,
                "PS512" => Algorithm::PS512,
                "ES256" => Algorithm::ES256,
                "ES384" => Algorithm::ES384,
                "EdDSA" => Algorithm::EdDSA,
                other => {
                    return Err(ConfigError::at(
                        format!("{at}.algorithms"),
                        format!(
                            "`{other}` is not allowed: asymmetric algorithms only (never none or HMAC)"
                        ),
                    ));
                }
            };
            algorithms.push(parsed);
        }
        if algorithms.is_empty() {
            return Err(ConfigError::at(
                format!("{at}.algorithms"),
                "name at least one algorithm",
            ));
        }
        if i.tenants.is_some() && i.claims.tenant.is_none() {
            return Err(ConfigError::at(
                format!("{at}.tenants"),
                "needs claims.tenant to know where the tenant is",
            ));
        }
        let skew = i.clock_skew_secs.unwrap_or(60);
        if skew > 300 {
            return Err(ConfigError::at(
                format!("{at}.clock_skew_secs"),
                "at most 300",
            ));
        }
        let introspection = match i.introspection {
            None => None,
            Some(t) => {
                if let Some(e) = &t.endpoint {
                    http_url(format!("{at}.introspection.endpoint"), e)?;
                }
                Some(IssuerTrust {
                    client_id: t.client_id,
                    client_secret: t.client_secret,
                    endpoint: t.endpoint,
                    cache_ttl: Duration::from_secs(t.cache_secs.unwrap_or(30)),
                })
            }
        };
        let defaults = ClaimMap::default();
        issuers.push(IssuerConfig {
            name,
            issuer: i.issuer,
            audiences: i.audiences.unwrap_or_else(|| vec![a.resource.clone()]),
            algorithms,
            jwks_uri: i.jwks_uri,
            introspection,
            required_scopes: i.required_scopes,
            tenants: i.tenants,
            claims: ClaimMap {
                subject: i.claims.subject.unwrap_or(defaults.subject),
                tenant: i.claims.tenant,
                roles: i.claims.roles.or(defaults.roles),
                groups: i.claims.groups.or(defaults.groups),
                attributes: i.claims.attributes,
            },
            skew: Duration::from_secs(skew),
            jwks_min_refetch: Duration::from_secs(i.jwks_min_refetch_secs.unwrap_or(30)),
        });
    }
    Ok(AuthSettings {
        resource: a.resource,
        issuers,
    })
}

fn positive(at: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match v {
        Some(0) => Err(ConfigError::at(at, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

fn positive_u64(at: &str, v: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match v {
        Some(0) => Err(ConfigError::at(at, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// The JSON Schema of the config file, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
