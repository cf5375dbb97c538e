//! Configuration: the raw YAML types, `${ENV}` substitution, and validation into the
//! runtime types the gateway runs on. Runtime code never sees a raw type.

mod console;
mod identity;
mod load;
mod observability;
pub mod packages;
mod protection;
mod raw;
mod sandbox;
pub use console::{ConsoleSettings, RawConsole, draft_authorization};
use identity::{validate_auth, validate_tls, validate_vault};
use protection::{
    validate_approvals, validate_dlp, validate_exfiltration, validate_rate_limits, validate_sinks,
};
pub use sandbox::{EgressRule, RawNetworkMode, RawSandbox, RawSandboxNetwork};
use upstreams::{validate_argument_patterns, validate_upstreams, validate_virtual_servers};
mod upstreams;
mod validate;

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
    RawApiKeys, RawAudit, RawAuth, RawCertRule, RawClaims, RawClientAuth, RawClientMetadata,
    RawConfig, RawFacade, RawFederation, RawFleet, RawIdJag, RawIntrospection, RawIssuer,
    RawLimits, RawLogFormat, RawLogging, RawSession, RawStore, RawTls, RawTraces, RawTransportKind,
    RawUpstream, RawUpstreamTls, RawUserOAuth, RawVault, RawVirtualServer,
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
    /// `/mcp` lists meta-tools (search, describe, call) instead of every tool.
    pub tool_search: bool,
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
    /// The operator console at `/console`.
    pub console: ConsoleSettings,
    pub secrets: Option<SecretsSettings>,
    /// Policy decisions; `None` when the section is absent (every caller may call every
    /// tool in scope — `gatehouse check` warns).
    pub authorization: Option<Arc<Authorization>>,
    /// The audit record, when configured: whether every call waits for its commit.
    pub audit: Option<AuditSettings>,
    /// OpenTelemetry export, when configured (read at start).
    pub traces: Option<TracesSettings>,
    /// The channel replicas share, when configured (read at start).
    pub fleet: Option<FleetSettings>,
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
    /// Where the store of `kind` lives: PostgreSQL as [`Config::postgres_for`] says, else
    /// the store file. Open it with the backend's method for that store.
    pub fn backend(&self, kind: StoreKind) -> gatehouse_store::Backend<'_> {
        gatehouse_store::Backend::new(&self.store_path, self.postgres_for(kind))
    }

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
    /// Records someone waits for are fsynced before the answer.
    pub fsync: bool,
    /// Signs checkpoints of chain heads.
    pub signing_key: Option<gatehouse_auth::SecretRef>,
    pub checkpoint_every: u64,
    pub sinks: Vec<SinkSpec>,
    pub subject_key: Option<gatehouse_auth::SecretRef>,
    pub retention: Option<Duration>,
    /// PostgreSQL instead of the SQLite store.
    pub postgres: Option<String>,
}

/// OpenTelemetry export, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesSettings {
    pub endpoint: String,
    pub service_name: String,
    /// Share of new traces kept, 0 to 1.
    pub sample: f64,
    pub headers: Vec<(String, String)>,
}

/// The fleet channel, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    pub redis: String,
    pub redis_ca: Option<PathBuf>,
    pub channel: String,
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
    /// Request worker threads (`None`: one per CPU).
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub name: String,
    /// `None` exposes names unprefixed.
    pub namespace: Option<String>,
    pub transport: TransportSpec,
    /// Classification, tenant and per-tool overrides for authorization.
    pub data: DataPolicy,
    /// Client headers passed on to this (HTTP) upstream, lowercase.
    pub forward_headers: Vec<String>,
}

/// A command upstream's confinement, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub network: SandboxNetwork,
    pub memory_mb: u64,
    pub cpu_secs: Option<u64>,
    pub processes: u64,
    pub file_size_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxNetwork {
    /// A network namespace of its own: no interface, not even loopback.
    None,
    Host,
    /// TCP connections to these ports only.
    Connect(Vec<u16>),
    /// A network namespace of its own whose only way out is the gateway's egress proxy,
    /// which connects to these hosts alone.
    Hosts(Vec<EgressRule>),
}

/// Headers a client's request never passes on to an upstream, whatever the config says:
/// credentials and cookies, hop-by-hop and framing headers, addressing, and the headers
/// MCP, tracing and Gatehouse set themselves.
pub fn never_forwarded(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "host"
            | "content-length"
            | "content-type"
            | "content-encoding"
            | "accept"
            | "accept-encoding"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
            | "forwarded"
            | "origin"
            | "last-event-id"
            | "traceparent"
            | "tracestate"
            | "baggage"
            | "dpop"
    ) || n.starts_with("mcp-")
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-real-ip")
        || n.starts_with("gatehouse-")
        || n.starts_with("x-gatehouse-")
        || n.starts_with("proxy-")
        || n.starts_with("sec-")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSpec {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
        /// Confinement; `None`: the child runs with the gateway's rights.
        sandbox: Option<SandboxSpec>,
        /// The package a runner starts and the hash it must have at its registry.
        package: Option<packages::PinnedPackage>,
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
    /// Meta-tools instead of the tool list; `None`: as the gateway's `tool_search`.
    pub tool_search: Option<bool>,
}

const DEFAULT_INHERIT: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
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
