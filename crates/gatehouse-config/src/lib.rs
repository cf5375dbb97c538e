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
mod detection;

pub use authz::{
    Authorization, DataPolicy, RawApprovalRule, RawArgLimits, RawArgRule, RawAuthorization,
    RawDeniedAs, RawToolApproval, RawToolPolicy,
};
pub use detection::{ArbiterSettings, Detection, FirstSight, Pinning, Response, Thresholds};
pub use raw::{
    RawApiKeys, RawAudit, RawAuth, RawCertRule, RawClaims, RawClientAuth, RawConfig, RawFacade,
    RawFederation, RawIntrospection, RawIssuer, RawLimits, RawLogFormat, RawLogging, RawSession,
    RawStore, RawTls, RawTransportKind, RawUpstream, RawUpstreamTls, RawUserOAuth, RawVault,
    RawVirtualServer,
};
pub use raw::{
    RawDlp, RawErrorMode, RawErrors, RawFailMode, RawRateLimits, RawRatePer, RawRateRule,
};
pub use raw::{RawSink, RawSinkFormat, RawSinkKind};

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
    /// API keys in PostgreSQL (shared by replicas); `None`: the store file.
    pub api_keys_postgres: Option<String>,
    /// Vault, for `vault:` secret references.
    pub vault: Option<gatehouse_auth::VaultSettings>,
    /// The SQLite database (API keys; later audit, approvals, pins).
    pub store_path: PathBuf,
    /// `store.postgres`: PostgreSQL for every store that names none of its own (a cluster's
    /// shared state, pins included); `None`: the store file.
    pub store_postgres: Option<String>,
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
    pub approvals: ApprovalSettings,
    pub dlp: Arc<Dlp>,
    pub errors: ErrorSettings,
    pub rate_limits: RateLimits,
    pub exfiltration: Exfiltration,
    pub icap: Option<IcapSettings>,
    /// Prompt-injection detection; `None` when turned off.
    pub detection: Option<Arc<Detection>>,
    /// Tool and prompt pinning; `None` when turned off.
    pub pinning: Option<Pinning>,
    /// The directory in PostgreSQL (shared by replicas); `None`: the store file.
    pub directory_postgres: Option<String>,
}

/// The gateway's stores, by what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    ApiKeys,
    Directory,
    Approvals,
    OAuth,
    Pins,
    Audit,
}

impl Config {
    /// The PostgreSQL connection string a store uses: its section's own (`api_keys.postgres`,
    /// `directory.postgres`, …), else `store.postgres`; `None`: the SQLite store file.
    pub fn postgres_for(&self, kind: StoreKind) -> Option<&str> {
        let own = match kind {
            StoreKind::ApiKeys => self.api_keys_postgres.as_deref(),
            StoreKind::Directory => self.directory_postgres.as_deref(),
            StoreKind::Approvals => self.approvals.postgres.as_deref(),
            StoreKind::OAuth => self
                .auth
                .as_ref()
                .and_then(|a| a.facade.as_ref())
                .and_then(|f| f.postgres.as_deref()),
            StoreKind::Audit => self.audit.as_ref().and_then(|a| a.postgres.as_deref()),
            StoreKind::Pins => None,
        };
        own.or(self.store_postgres.as_deref())
    }
}

/// Where an ICAP service is and how to use it (the client is the proxy's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcapService {
    pub host: String,
    pub port: u16,
    /// The service path, e.g. `srv_clamav`.
    pub service: String,
    pub timeout: Duration,
    /// Bytes sent as the preview (0: no preview).
    pub preview: usize,
}

impl IcapService {
    /// `icap://host[:port]/service`.
    pub fn parse(url: &str) -> Result<(String, u16, String), String> {
        let rest = url
            .strip_prefix("icap://")
            .ok_or("must start with icap://")?;
        let (authority, service) = rest.split_once('/').ok_or("needs a service path")?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "bad port")?),
            None => (authority, 1344),
        };
        if host.is_empty() || service.is_empty() || service.contains(char::is_whitespace) {
            return Err("needs a host and a service".into());
        }
        Ok((host.to_owned(), port, service.to_owned()))
    }
}

/// The `icap` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcapSettings {
    pub service: IcapService,
    pub respmod: bool,
    pub reqmod: bool,
    pub fail_closed: bool,
    pub levels: Vec<gatehouse_policy::Classification>,
}

impl IcapSettings {
    pub fn covers(&self, level: gatehouse_policy::Classification) -> bool {
        self.levels.is_empty() || self.levels.contains(&level)
    }
}

/// The `exfiltration` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Exfiltration {
    pub budgets: Vec<Budget>,
    pub anomaly: Option<Anomaly>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub name: String,
    pub per: RawRatePer,
    pub bytes: u64,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub factor: f64,
    pub min_bytes: u64,
    pub min_samples: u64,
}

/// The `rate_limits` section, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimits {
    pub redis: Option<String>,
    /// The CA for a `rediss://` server's certificate (default: the system's roots).
    pub redis_ca: Option<PathBuf>,
    pub max_in_flight_per_principal: Option<usize>,
    pub rules: Vec<RateRule>,
}

/// One GCRA limit: one request per `interval` per key, `burst` more at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRule {
    pub name: String,
    pub per: RawRatePer,
    pub interval: Duration,
    pub burst: u64,
    pub methods: Vec<String>,
    pub tools: Vec<String>,
    pub servers: Vec<String>,
    pub fail: Option<RawFailMode>,
}

/// The `errors` section.
#[derive(Debug, Clone)]
pub struct ErrorSettings {
    pub mode: RawErrorMode,
    pub pass: Vec<regex::Regex>,
    pub pass_codes: Vec<i64>,
}

impl PartialEq for ErrorSettings {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode
            && self.pass_codes == other.pass_codes
            && self
                .pass
                .iter()
                .map(regex::Regex::as_str)
                .eq(other.pass.iter().map(regex::Regex::as_str))
    }
}

impl ErrorSettings {
    /// Whether an allowlist entry lets this message through as is.
    pub fn passes(&self, message: &str) -> bool {
        self.mode == RawErrorMode::Pass || self.pass.iter().any(|r| r.is_match(message))
    }
}

/// The `dlp` section compiled: recognizers and the profiles by name.
pub struct Dlp {
    pub recognizers: gatehouse_detect::Recognizers,
    /// `None` for a profile that does nothing (`none`).
    profiles: BTreeMap<String, Option<gatehouse_detect::Profile>>,
    /// For outgoing tool arguments.
    pub arguments: Option<gatehouse_detect::Profile>,
    source: String,
}

impl std::fmt::Debug for Dlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dlp")
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PartialEq for Dlp {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Dlp {
    /// A profile by name; `None` for `none` or an unknown name (config validation refuses
    /// unknown names, so only `none` gets here).
    pub fn profile(&self, name: &str) -> Option<&gatehouse_detect::Profile> {
        self.profiles.get(name).and_then(Option::as_ref)
    }
}

/// The `approvals` section, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSettings {
    pub default_rule: bool,
    pub approvers: Vec<String>,
    pub count: u32,
    pub timeout: Duration,
    pub use_within: Duration,
    pub hold: Duration,
    pub progress: Duration,
    pub max_pending: u32,
    pub console_url: Option<String>,
    pub notify: Vec<Webhook>,
    pub postgres: Option<String>,
}

/// A notification target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub slack: bool,
    pub secret: Option<gatehouse_auth::SecretRef>,
}

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub durable_all: bool,
    /// Signs checkpoints of chain heads.
    pub signing_key: Option<gatehouse_auth::SecretRef>,
    pub checkpoint_every: u64,
    pub sinks: Vec<SinkSpec>,
    pub subject_key: Option<gatehouse_auth::SecretRef>,
    pub retention: Option<Duration>,
    /// PostgreSQL instead of the SQLite store.
    pub postgres: Option<String>,
}

/// One SIEM sink, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    pub name: String,
    pub kind: SinkKind,
    pub batch: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Syslog {
        host: String,
        port: u16,
        server_name: String,
        tls: Option<UpstreamTls>,
        format: RawSinkFormat,
    },
    Http {
        kind: RawSinkKind,
        url: String,
        tls: Option<UpstreamTls>,
        token: Option<gatehouse_auth::SecretRef>,
        index: String,
    },
    File {
        path: PathBuf,
        format: RawSinkFormat,
        max_bytes: u64,
        keep: u32,
    },
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
    /// The authorization-server façade, when configured.
    pub facade: Option<gatehouse_auth::FacadeConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeLimits {
    pub decode: Limits,
    pub max_upstream_message_bytes: usize,
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    pub max_concurrent_requests: usize,
    /// Connections open at once on the HTTPS listener.
    pub max_connections: usize,
    /// How long open connections may finish on shutdown.
    pub drain: Duration,
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
            if let Some(k) = cfg
                .auth
                .as_mut()
                .and_then(|a| a.facade.as_mut())
                .and_then(|f| f.signing_key.as_mut())
            {
                fix(k);
            }
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
        let located = |e: yaml_serde::Error| {
            let loc = e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "config".to_owned());
            ConfigError::at(loc, e.to_string())
        };
        let substituted = substitute_env(text, env)?;
        let raw: RawConfig = match yaml_serde::from_str(&substituted) {
            Ok(raw) => raw,
            // Locations in the substituted text mean nothing to the operator: the same
            // mistake in the file as written is reported where it is.
            Err(e) if substituted != text => {
                return Err(match yaml_serde::from_str::<RawConfig>(text) {
                    Err(original) => located(original),
                    Ok(_) => ConfigError::at("config (after ${} substitution)", e.to_string()),
                });
            }
            Err(e) => return Err(located(e)),
        };
        raw.validate_in(env, base)
    }
}

/// Replaces `${NAME}` with the variable's value inside the document's parsed string
/// values, never in its text: a value holding `"`, `#`, `,`, `}` or a line break stays one
/// string and cannot change the document's structure. `$${` is a literal `${`. A missing
/// variable is an error naming where it is used. Returns the text to deserialize (the
/// input itself when it holds no reference).
fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut doc: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "config".to_owned());
        ConfigError::at(loc, e.to_string())
    })?;
    substitute_in(&mut doc, env, &mut Vec::new(), 0)?;
    yaml_serde::to_string(&doc).map_err(|e| ConfigError::at("config", e.to_string()))
}

fn substitute_in(
    v: &mut yaml_serde::Value,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<(), ConfigError> {
    use yaml_serde::Value;
    if depth > 64 {
        return Err(ConfigError::at(path.join("."), "nested too deeply"));
    }
    match v {
        Value::String(s) if s.contains("${") => *s = expand(s, env, path)?,
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_in(item, env, path, depth + 1)?;
                path.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                path.push(k.as_str().unwrap_or("?").to_owned());
                substitute_in(item, env, path, depth + 1)?;
                path.pop();
            }
        }
        Value::Tagged(t) => substitute_in(&mut t.value, env, path, depth + 1)?,
        _ => {}
    }
    Ok(())
}

/// One string with its references replaced.
fn expand(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
    path: &[String],
) -> Result<String, ConfigError> {
    let at = || {
        if path.is_empty() {
            "config".to_owned()
        } else {
            path.join(".")
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
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
            return Err(ConfigError::at(at(), "unterminated ${"));
        };
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            ConfigError::at(at(), format!("environment variable {name} is not set"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
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
            max_connections: positive("limits.max_connections", l.max_connections, 4096)?,
            drain: Duration::from_secs(l.drain_secs.unwrap_or(30)),
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
        Ok(Config {
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

fn validate_auth(
    a: RawAuth,
    virtual_servers: &BTreeMap<String, VirtualServer>,
    upstreams: &[UpstreamSpec],
) -> Result<AuthSettings, ConfigError> {
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
    let facade = match a.authorization_server {
        None => None,
        Some(f) => Some(validate_facade(
            f,
            &a.resource,
            &issuers,
            virtual_servers,
            upstreams,
        )?),
    };
    Ok(AuthSettings {
        resource: a.resource,
        issuers,
        facade,
    })
}

fn validate_vault(v: RawVault) -> Result<gatehouse_auth::VaultSettings, ConfigError> {
    if !reqwest::Url::parse(&v.address)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    {
        return Err(ConfigError::at("vault.address", "an http(s) URL"));
    }
    let token = gatehouse_auth::SecretRef::parse(&v.token)
        .map_err(|e| ConfigError::at("vault.token", e))?;
    if !matches!(
        token,
        gatehouse_auth::SecretRef::Env(_) | gatehouse_auth::SecretRef::File(_)
    ) {
        return Err(ConfigError::at(
            "vault.token",
            "use env: or file: for the Vault token",
        ));
    }
    let cache = v.cache_secs.unwrap_or(300);
    if cache > 86_400 {
        return Err(ConfigError::at("vault.cache_secs", "at most 86400"));
    }
    Ok(gatehouse_auth::VaultSettings {
        address: v.address,
        token,
        namespace: v.namespace,
        cache: Duration::from_secs(cache),
    })
}

fn validate_facade(
    f: RawFacade,
    resource: &str,
    issuers: &[gatehouse_auth::IssuerConfig],
    virtual_servers: &BTreeMap<String, VirtualServer>,
    upstreams: &[UpstreamSpec],
) -> Result<gatehouse_auth::FacadeConfig, ConfigError> {
    const AT: &str = "auth.authorization_server";
    let origin_of = |u: &str| {
        reqwest::Url::parse(u)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    let issuer = match f.issuer {
        Some(i) => {
            let u = reqwest::Url::parse(&i)
                .map_err(|_| ConfigError::at(format!("{AT}.issuer"), "not a URL"))?;
            if !matches!(u.scheme(), "http" | "https")
                || u.path() != "/"
                || u.query().is_some()
                || i.ends_with('/')
            {
                return Err(ConfigError::at(
                    format!("{AT}.issuer"),
                    "an http(s) origin without a path or trailing slash, e.g. https://mcp.example.com",
                ));
            }
            i
        }
        None => origin_of(resource).ok_or_else(|| ConfigError::at("auth.resource", "not a URL"))?,
    };
    let login_issuer = issuers
        .iter()
        .find(|i| i.name == f.login.issuer)
        .ok_or_else(|| {
            ConfigError::at(
                format!("{AT}.login.issuer"),
                format!("`{}` is not a name under auth.issuers", f.login.issuer),
            )
        })?;
    if issuers.iter().any(|i| i.issuer == issuer) {
        return Err(ConfigError::at(
            format!("{AT}.issuer"),
            "the gateway's own issuer must differ from every trusted issuer",
        ));
    }
    let client_secret = gatehouse_auth::SecretRef::parse(&f.login.client_secret)
        .map_err(|e| ConfigError::at(format!("{AT}.login.client_secret"), e))?;
    for (k, v) in [
        ("authorization_endpoint", &f.login.authorization_endpoint),
        ("token_endpoint", &f.login.token_endpoint),
    ] {
        if let Some(u) = v
            && !reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"))
        {
            return Err(ConfigError::at(
                format!("{AT}.login.{k}"),
                format!("`{u}` is not an http(s) URL"),
            ));
        }
    }
    let access = f.access_token_ttl_secs.unwrap_or(900);
    if !(300..=3600).contains(&access) {
        return Err(ConfigError::at(
            format!("{AT}.access_token_ttl_secs"),
            "between 300 and 3600 (5 to 60 minutes)",
        ));
    }
    let refresh = f.refresh_token_ttl_secs.unwrap_or(14 * 86_400);
    if !(access..=90 * 86_400).contains(&refresh) {
        return Err(ConfigError::at(
            format!("{AT}.refresh_token_ttl_secs"),
            "at least the access token's lifetime, at most 90 days",
        ));
    }
    if f.redirect_uris.is_empty() {
        return Err(ConfigError::at(
            format!("{AT}.redirect_uris"),
            "name the redirect URIs clients may register (an empty list admits none)",
        ));
    }
    for (n, e) in f.redirect_uris.iter().enumerate() {
        gatehouse_auth::valid_allow_entry(e)
            .map_err(|m| ConfigError::at(format!("{AT}.redirect_uris[{n}]"), m))?;
    }
    let scopes = f
        .scopes
        .unwrap_or_else(|| login_issuer.required_scopes.clone());
    let login_scopes = f.login.scopes.unwrap_or_else(|| {
        let mut v = vec!["openid".to_owned()];
        v.extend(scopes.iter().filter(|s| *s != "openid").cloned());
        v
    });
    let mut resources = vec![resource.to_owned()];
    if let Some(o) = origin_of(resource) {
        resources.extend(virtual_servers.keys().map(|n| format!("{o}/s/{n}/mcp")));
    }
    let signing_key = f.signing_key.map(PathBuf::from);
    let token_key = f
        .token_key
        .as_deref()
        .map(gatehouse_auth::SecretRef::parse)
        .transpose()
        .map_err(|e| ConfigError::at(format!("{AT}.token_key"), e))?;
    if !f.upstreams.is_empty() && token_key.is_none() {
        return Err(ConfigError::at(
            format!("{AT}.token_key"),
            "users' upstream tokens are sealed with this key: set it (32 bytes, base64)",
        ));
    }
    let mut user_upstreams = Vec::new();
    for (name, u) in f.upstreams {
        user_upstreams.push(user_oauth(
            &format!("{AT}.upstreams.{name}"),
            name,
            u,
            upstreams,
        )?);
    }
    Ok(gatehouse_auth::FacadeConfig {
        issuer,
        audience: resource.to_owned(),
        resources,
        login: gatehouse_auth::LoginConfig {
            issuer: login_issuer.issuer.clone(),
            client_id: f.login.client_id,
            client_secret,
            scopes: login_scopes,
            resource: f.login.resource.unwrap_or_else(|| resource.to_owned()),
            authorization_endpoint: f.login.authorization_endpoint,
            token_endpoint: f.login.token_endpoint,
        },
        access_ttl: Duration::from_secs(access),
        refresh_ttl: Duration::from_secs(refresh),
        redirect_uris: f.redirect_uris,
        max_clients: positive(&format!("{AT}.max_clients"), f.max_clients, 1000)?,
        scopes,
        signing_key,
        token_key,
        upstreams: user_upstreams,
        postgres: f.postgres,
    })
}

/// One upstream called with each user's own token: it must exist and speak
/// `streamable_http` (requests carry their caller's credential; an SSE stream is shared), and
/// it cannot also exchange tokens.
fn user_oauth(
    at: &str,
    name: String,
    u: RawUserOAuth,
    upstreams: &[UpstreamSpec],
) -> Result<gatehouse_auth::UpstreamOAuth, ConfigError> {
    let spec = upstreams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ConfigError::at(at, format!("`{name}` is not an upstream")))?;
    let url = match &spec.transport {
        TransportSpec::StreamableHttp {
            url, credential, ..
        } => {
            if credential.as_ref().is_some_and(|c| c.token_exchange) {
                return Err(ConfigError::at(
                    at,
                    "an upstream uses either token exchange or users' own tokens",
                ));
            }
            url.to_string()
        }
        _ => {
            return Err(ConfigError::at(
                at,
                "users' own tokens need a streamable_http upstream",
            ));
        }
    };
    for (k, v) in [
        ("authorization_endpoint", &u.authorization_endpoint),
        ("token_endpoint", &u.token_endpoint),
    ] {
        if !reqwest::Url::parse(v).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) {
            return Err(ConfigError::at(
                format!("{at}.{k}"),
                format!("`{v}` is not an http(s) URL"),
            ));
        }
    }
    let client_secret = u
        .client_secret
        .as_deref()
        .map(gatehouse_auth::SecretRef::parse)
        .transpose()
        .map_err(|e| ConfigError::at(format!("{at}.client_secret"), e))?;
    Ok(gatehouse_auth::UpstreamOAuth {
        upstream: name,
        authorization_endpoint: u.authorization_endpoint,
        token_endpoint: u.token_endpoint,
        client_id: u.client_id,
        client_secret,
        scopes: u.scopes,
        resource: u.resource.unwrap_or(url),
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

fn validate_sinks(raw: Vec<raw::RawSink>, base: &Path) -> Result<Vec<SinkSpec>, ConfigError> {
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

fn validate_exfiltration(raw: raw::RawExfiltration) -> Result<Exfiltration, ConfigError> {
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

fn validate_rate_limits(raw: RawRateLimits) -> Result<RateLimits, ConfigError> {
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

/// Argument `pattern`s must compile: a broken one would refuse every call.
fn validate_argument_patterns(upstreams: &[UpstreamSpec]) -> Result<(), ConfigError> {
    for u in upstreams {
        for (tool, t) in &u.data.tools {
            for (arg, r) in &t.arguments {
                let at = format!("upstreams.{}.tools.{tool}.arguments.{arg}", u.name);
                let patterns = r
                    .pattern
                    .iter()
                    .map(|p| (format!("{at}.pattern"), p))
                    .chain(r.roles.iter().filter_map(|(role, l)| {
                        l.pattern
                            .as_ref()
                            .map(|p| (format!("{at}.roles.{role}.pattern"), p))
                    }));
                for (loc, p) in patterns {
                    regex::RegexBuilder::new(&format!("^(?:{p})$"))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| ConfigError::at(loc, e.to_string()))?;
                }
            }
        }
    }
    Ok(())
}

fn validate_dlp(
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

/// Bounds on approval times: long enough for a person, short enough to bound what waits.
const MAX_APPROVAL_SECS: u64 = 7 * 24 * 3600;

fn validate_approvals(raw: raw::RawApprovals) -> Result<ApprovalSettings, ConfigError> {
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

#[cfg(test)]
mod tests;
