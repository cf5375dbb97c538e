//! Configuration: the raw YAML types, `${ENV}` substitution, and validation into the
//! runtime types the gateway runs on. Runtime code never sees a raw type.

mod identity;
mod protection;
mod raw;
use identity::{validate_auth, validate_tls, validate_vault};
use protection::{
    validate_approvals, validate_dlp, validate_exfiltration, validate_rate_limits, validate_sinks,
};
use upstreams::{validate_argument_patterns, validate_upstreams, validate_virtual_servers};
mod upstreams;

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

        let upstreams = validate_upstreams(self.upstreams, base, &separator, env)?;
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

/// Bounds on approval times: long enough for a person, short enough to bound what waits.
const MAX_APPROVAL_SECS: u64 = 7 * 24 * 3600;

#[cfg(test)]
mod tests;
