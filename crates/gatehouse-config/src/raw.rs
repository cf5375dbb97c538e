//! The YAML file as written: serde types with unknown fields rejected. `JsonSchema` on these
//! types is what `gatehouse schema` prints for editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

pub use crate::identity::{RawClientMetadata, RawFacade, RawIdJag, RawUserOAuth};

pub use crate::observability::{RawFleet, RawLogFormat, RawLogging, RawTraces};

/// Top level of `gatehouse.yaml`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the client-facing listener binds. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Allow binding a non-loopback address. Off by default: exposing the gateway beyond
    /// this host is a deliberate decision.
    #[serde(default)]
    pub allow_remote: bool,
    /// Development mode: no authentication, loopback only. Printed loudly at start.
    #[serde(default)]
    pub dev_mode: bool,
    /// Extra `Origin` values accepted besides loopback origins (DNS-rebinding defence).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Roles a group grants: `{eng-oncall: [operator]}`. Applied to every principal's
    /// groups (the token's, or the directory's for users it provisions), added to the roles
    /// its credential carries.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub federation: RawFederation,
    /// Upstream MCP servers by name. Names are `[a-z0-9_-]`, unique.
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// Named subsets served at `/s/{name}/mcp`.
    #[serde(default)]
    pub virtual_servers: BTreeMap<String, RawVirtualServer>,
    /// `true`: `/mcp` lists three meta-tools (search, describe, call) instead of every tool,
    /// for agents facing hundreds of tools. Virtual servers decide for themselves.
    pub tool_search: Option<bool>,
    /// Packages command upstreams may run, exactly: `npm:NAME@VERSION`,
    /// `pypi:NAME==VERSION`. When set, any other package is refused at load.
    #[serde(default)]
    pub approved_servers: Vec<String>,
    /// How npm provenance (Sigstore attestations the registry publishes) is checked before
    /// a pinned package starts.
    #[serde(default)]
    pub provenance: RawProvenance,
    #[serde(default)]
    pub logging: RawLogging,
    /// Who may call: OAuth 2.1 access tokens from trusted issuers.
    pub auth: Option<RawAuth>,
    /// API keys for services (`gatehouse keys …`).
    pub api_keys: Option<RawApiKeys>,
    /// Vault for `vault:` secret references.
    pub vault: Option<RawVault>,
    #[serde(default)]
    pub store: RawStore,
    /// Serve HTTPS (and optionally verify client certificates) instead of plain HTTP.
    pub tls: Option<RawTls>,
    /// SCIM 2.0 provisioning at `/scim/v2` (deprovisioned users are refused).
    pub scim: Option<RawScim>,
    /// The administrator's API at `/admin/v1` (revoking a subject at once).
    pub admin: Option<RawAdmin>,
    /// The operator console at `/console` (approvals, pins, audit, inventory, policy).
    pub console: Option<crate::RawConsole>,
    /// The encrypted local secret store behind `secret:NAME` references.
    pub secrets: Option<RawSecrets>,
    /// Who may call what: role grants and Cedar policies (default deny once present),
    /// and the controls each classification level carries.
    pub authorization: Option<super::authz::RawAuthorization>,
    /// The tamper-evident audit record in the store (`store.sqlite`).
    pub audit: Option<RawAudit>,
    /// OpenTelemetry traces over OTLP/HTTP (protobuf).
    pub traces: Option<RawTraces>,
    /// Several replicas behind one address: the Redis channel that carries server-to-client
    /// messages, cancellations, answers, session ends and approval decisions between them.
    pub fleet: Option<RawFleet>,
    #[serde(default)]
    pub approvals: RawApprovals,
    #[serde(default)]
    pub dlp: RawDlp,
    #[serde(default)]
    pub errors: RawErrors,
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    #[serde(default)]
    pub exfiltration: RawExfiltration,
    pub icap: Option<RawIcap>,
    #[serde(default)]
    pub detection: super::detection::RawDetection,
    /// Where the SCIM directory and revocations live: the store file by default, or
    /// PostgreSQL shared by every replica (`postgres: "host=… user=… dbname=…"`).
    pub directory: Option<RawDirectory>,
    pub pinning: Option<super::detection::RawPinning>,
}

/// The directory's backend.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    /// A PostgreSQL connection string; a deprovisioning or revoke on any replica reaches the
    /// others within a second.
    pub postgres: Option<String>,
}

/// An ICAP server (enterprise DLP, scanner) that sees results and arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIcap {
    /// `icap://host[:port]/service`.
    pub url: String,
    /// Send results (RESPMOD); default true.
    pub respmod: Option<bool>,
    /// Send tool arguments (REQMOD); default false.
    pub reqmod: Option<bool>,
    /// Default 3000.
    pub timeout_ms: Option<u64>,
    /// Preview bytes (default 4096; 0 sends everything at once).
    pub preview: Option<usize>,
    /// When the server cannot be asked: `closed` (default) withholds, `open` passes.
    pub fail: Option<RawFailMode>,
    /// Only data of these classification levels (default: all).
    #[serde(default)]
    pub levels: Vec<gatehouse_policy::Classification>,
}

/// Limits on how much data leaves: byte budgets and size anomaly alerts.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExfiltration {
    /// Bytes of results per key over a sliding window; once spent, calls are refused.
    #[serde(default)]
    pub budgets: Vec<RawBudget>,
    /// Alert when a result is far above the usual size (on by default; `enabled: false`
    /// turns it off).
    pub anomaly: Option<RawAnomaly>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub name: String,
    /// `principal`, `tool` or `principal_tool`.
    pub per: RawRatePer,
    pub bytes: u64,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAnomaly {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How many times the usual size counts as anomalous (default 10).
    pub factor: Option<f64>,
    /// Results smaller than this are never anomalies (default 65536).
    pub min_bytes: Option<u64>,
    /// Results seen before a baseline counts (default 20).
    pub min_samples: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Request rate limits (GCRA) and in-flight caps.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    /// `redis://host:port/db`: limits are global across every gateway sharing it.
    /// Without it they hold per process. `rediss://` connects with TLS (rustls), the
    /// server's certificate verified against `redis_ca` or the system's roots.
    pub redis: Option<String>,
    /// A PEM file of the CA that issued the Redis server's certificate (`rediss://` only).
    pub redis_ca: Option<String>,
    /// Calls one principal may have in flight at once (default unlimited; the gateway-wide
    /// `limits.max_concurrent_requests` still holds).
    pub max_in_flight_per_principal: Option<usize>,
    #[serde(default)]
    pub rules: Vec<RawRateRule>,
}

/// One limit: `requests` per `per_secs` for each key of `per`, with `burst` extra.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateRule {
    pub name: String,
    /// What is counted separately: `principal`, `tool`, `server`, `tenant`, `api_key`,
    /// `principal_tool`.
    pub per: RawRatePer,
    pub requests: u64,
    pub per_secs: u64,
    /// Requests allowed at once beyond the steady rate (default 0).
    #[serde(default)]
    pub burst: u64,
    /// JSON-RPC methods counted (default: every request, lists and discovery included).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Exposed tool names counted (default: any).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Upstreams counted (default: any).
    #[serde(default)]
    pub servers: Vec<String>,
    /// When the shared store is unreachable: `closed` refuses, `open` allows. Default:
    /// closed for restricted data, open otherwise.
    pub fail: Option<RawFailMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawRatePer {
    Principal,
    Tool,
    Server,
    Tenant,
    ApiKey,
    PrincipalTool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawFailMode {
    Open,
    Closed,
}

/// What clients are told when an upstream fails.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawErrors {
    /// `scrub` (default): an upstream error or failed tool result that shows internals
    /// (stack traces, SQL errors, paths, internal hosts, exception names) is replaced by a
    /// generic message and the correlation id; `strict`: every upstream error message is;
    /// `pass`: nothing is (debugging only).
    pub mode: Option<RawErrorMode>,
    /// Regular expressions: an error message matching one passes untouched (e.g. a tool's
    /// own validation messages).
    #[serde(default)]
    pub pass: Vec<String>,
    /// JSON-RPC error codes whose upstream errors pass untouched (e.g. `-32602`, a tool's
    /// own invalid-params answers).
    #[serde(default)]
    pub pass_codes: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawErrorMode {
    Scrub,
    Strict,
    Pass,
}

/// Data loss prevention on results and outgoing arguments.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDlp {
    /// Named profiles, referenced by a classification's `redaction` or a tool's. Built in:
    /// `standard` (secrets block; cards, IBANs, SSNs and national IDs keep their last four;
    /// the rest masked) and `none`.
    #[serde(default)]
    pub profiles: BTreeMap<String, gatehouse_detect::Profile>,
    /// Recognizers of your own, beside the built-in ones.
    #[serde(default)]
    pub recognizers: Vec<gatehouse_detect::CustomRecognizer>,
    /// The profile for outgoing tool arguments (default: secrets block the call, the rest
    /// is recorded); `none` turns it off.
    pub arguments: Option<String>,
}

/// Human approval of held calls.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// Calls to tools that are not read-only on confidential or restricted data wait for
    /// approval (default true). Per tool, `approval: false` exempts one.
    pub default_rule: Option<bool>,
    /// Roles any of which an approver must hold (default `[approver]`).
    pub approvers: Option<Vec<String>>,
    /// Distinct approvers needed per call (default 1).
    pub count: Option<u32>,
    /// Seconds a request waits for its decision before it expires (default 900).
    pub timeout_secs: Option<u64>,
    /// Seconds an approved call stays usable by the caller's retry (default 900).
    pub use_within_secs: Option<u64>,
    /// Seconds a session-based (2025) call is held open waiting (default 25, under common client
    /// request timeouts); after that,
    /// and at once for stateless clients, the call answers "approval pending".
    pub hold_secs: Option<u64>,
    /// Seconds between progress notifications to a held call (default 5).
    pub progress_secs: Option<u64>,
    /// Most requests one principal may have pending at once (default 20); more are refused,
    /// so one caller cannot flood the approvers.
    pub max_pending: Option<u32>,
    /// Base URL of the console, for links in notifications.
    pub console_url: Option<String>,
    /// A PostgreSQL connection string: approvals live there, shared by every replica of
    /// a cluster (any replica takes a decision; the one holding the call sees it within a
    /// second). Default: the SQLite store.
    pub postgres: Option<String>,
    /// Webhooks told of every new request.
    #[serde(default)]
    pub notify: Vec<RawWebhook>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    /// `json` (default; the full request, HMAC-signed) or `slack` (a message with a link).
    pub format: Option<RawWebhookFormat>,
    /// HMAC-SHA256 key by reference (`env:NAME`, `file:/path`, `secret:NAME`).
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawWebhookFormat {
    Json,
    Slack,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// The audit record is on by default (in the store); `false` turns it off.
    pub enabled: Option<bool>,
    /// A PostgreSQL connection string (`host=… user=… dbname=…` or `postgresql://…`):
    /// the record goes there instead of the SQLite store, shared by every gateway of a
    /// cluster. The schema is created and migrated on first use.
    pub postgres: Option<String>,
    /// Commit every call's event before answering it. Default: only denied calls,
    /// write/execute/delete calls and calls on confidential or restricted data wait; the
    /// rest are committed in the next group without holding the response.
    #[serde(default)]
    pub durable_all: bool,
    /// A record someone waits for is flushed to the disk (fsync) before the answer.
    /// Default true; `false` keeps it committed before the answer (it survives the gateway
    /// being killed) but a power cut may lose the last ones. Development mode (no config
    /// file) runs with `false`.
    pub fsync: Option<bool>,
    /// Ed25519 key (base64 of its 32-byte seed, `gatehouse audit keygen`) that signs
    /// checkpoints of every chain's head, by reference: `env:NAME`, `file:/path` or
    /// `secret:NAME`. Without it there are no checkpoints.
    pub signing_key: Option<String>,
    /// Events between checkpoints, at most (default 1000; a quiet minute also triggers one).
    pub checkpoint_every: Option<u64>,
    /// Retention: records older than this many days are pruned hourly, per chain up to its
    /// newest signed checkpoint among them, never past what a sink has not shipped.
    pub retention_days: Option<u64>,
    /// Key of the subject index (HMAC of personal identifiers seen in calls), by reference.
    /// Default: derived from `session.key`; without either there is no subject index.
    pub subject_key: Option<String>,
    /// SIEM sinks: each ships every event from the store, at least once, in order per chain.
    #[serde(default)]
    pub sinks: Vec<RawSink>,
}

/// One SIEM destination.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// Unique; names the sink's cursor in the store (renaming it ships everything again).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RawSinkKind,
    /// syslog: `host:port` (RFC 5424 over TCP, octet counting).
    pub address: Option<String>,
    /// syslog: TLS (`ca`; with `client_cert`/`client_key`, mutual TLS); HTTP sinks: the CA
    /// and client certificate for HTTPS.
    pub tls: Option<RawUpstreamTls>,
    /// syslog: the name the server's certificate must carry (default: the address's host).
    pub server_name: Option<String>,
    /// syslog and file: `json` (default), `cef` or `leef`.
    pub format: Option<RawSinkFormat>,
    /// HTTP sinks: the endpoint.
    pub url: Option<String>,
    /// hec: the HEC token; elasticsearch: an API key; otlp: a bearer token; webhook: the
    /// HMAC key. By reference (`env:`, `file:`, `secret:`).
    pub token: Option<String>,
    /// elasticsearch: the index (default `gatehouse-audit`).
    pub index: Option<String>,
    /// file: the JSON-lines file (relative to the config file).
    pub path: Option<String>,
    /// file: rotate past this size (default 100 MiB), keeping `keep` old files (default 10).
    pub max_bytes: Option<u64>,
    pub keep: Option<u32>,
    /// Events per batch (default 200).
    pub batch: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawSinkKind {
    Syslog,
    Hec,
    Elasticsearch,
    Otlp,
    Webhook,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawSinkFormat {
    Json,
    Cef,
    Leef,
}

/// A HashiCorp Vault-compatible KV engine, for `vault:PATH#FIELD` secret references.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    /// `https://vault.example.com:8200`
    pub address: String,
    /// The gateway's Vault token: `env:NAME` or `file:/path` (a file an agent renews).
    pub token: String,
    /// Namespace (Vault Enterprise, OpenBao).
    pub namespace: Option<String>,
    /// How long a value read is reused (seconds). Default 300.
    pub cache_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// The store file (JSON of sealed values), relative to the config file.
    pub file: String,
    /// The master key (base64 of 32 bytes) by reference: `env:NAME` or `file:/path`.
    pub master_key: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScim {
    /// The bearer token the identity provider's SCIM client presents: a reference
    /// (`env:NAME` or `file:/path`), read at each request.
    pub token: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// The bearer token administrators present: a reference (`env:NAME`, `file:/path` or
    /// `secret:NAME`), read at each request.
    pub token: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain. Reloaded when the file changes.
    pub cert: String,
    /// PEM private key. Reloaded when the file changes.
    pub key: String,
    /// `"1.3"` (default) or `"1.2"` to also accept TLS 1.2.
    pub min_version: Option<String>,
    /// PEM CA bundle that client certificates must chain to; enables mTLS.
    pub client_ca: Option<String>,
    /// `optional` (default: clients without a certificate use tokens) or `required`.
    pub client_auth: Option<RawClientAuth>,
    /// Rules mapping a verified client certificate to a principal; the first match wins.
    #[serde(default)]
    pub client_principals: Vec<RawCertRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawClientAuth {
    Optional,
    Required,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCertRule {
    /// Match a URI subject alternative name exactly (e.g. a SPIFFE id).
    pub san_uri: Option<String>,
    /// Match a DNS subject alternative name exactly.
    pub san_dns: Option<String>,
    /// Match the subject's common name exactly.
    pub subject_cn: Option<String>,
    /// The service principal the certificate acts as (`cert/{principal}`).
    pub principal: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    /// Server secret (base64, at least 32 bytes) that keys are hashed under. Changing it
    /// invalidates every key.
    pub pepper: String,
    /// PostgreSQL connection string: keys live there and every replica (and the CLI) sees
    /// a creation, rotation or revocation within a second. Default: the store file.
    pub postgres: Option<String>,
}

/// Where durable state lives.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// SQLite database file. Default `gatehouse.db`, relative to the config file.
    pub sqlite: Option<String>,
    /// PostgreSQL (`host=… user=… dbname=…` or a `postgres://` URL) for every store that
    /// names none of its own: API keys, directory, approvals, the OAuth façade, pins and the
    /// audit record, shared by every replica of a cluster.
    pub postgres: Option<String>,
}

/// The gateway as an OAuth 2.1 resource server.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// This gateway's canonical URL (RFC 8707 resource), e.g. `https://mcp.example.com/mcp`.
    /// Tokens must name it in `aud`; it is published in the protected-resource metadata.
    pub resource: String,
    /// Trusted token issuers by short name (the name prefixes subjects in principal ids).
    pub issuers: BTreeMap<String, RawIssuer>,
    /// Run the authorization-server façade: clients register and sign in at the gateway,
    /// which sends the user to `login.issuer` and issues its own tokens.
    pub authorization_server: Option<RawFacade>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted audiences. Default: `[auth.resource]`.
    pub audiences: Option<Vec<String>>,
    /// Accepted signature algorithms. Default `[RS256]`. Asymmetric only: `none` and HS*
    /// are refused.
    pub algorithms: Option<Vec<String>>,
    /// JWKS URI; by default taken from the issuer's discovery document.
    pub jwks_uri: Option<String>,
    /// Scopes every token must carry.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Only these tenants are accepted (for multi-tenant issuers). Needs `claims.tenant`.
    pub tenants: Option<Vec<String>>,
    #[serde(default)]
    pub claims: RawClaims,
    /// Check opaque tokens by RFC 7662 introspection.
    pub introspection: Option<RawIntrospection>,
    /// Allowed clock difference for exp/nbf/iat (seconds). Default 60, at most 300.
    pub clock_skew_secs: Option<u64>,
    /// Shortest interval between two JWKS fetches triggered by unknown key ids. Default 30.
    pub jwks_min_refetch_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClaims {
    /// Claim holding the subject. Default `sub` (Entra: consider `oid`).
    pub subject: Option<String>,
    /// Claim holding the tenant (Entra `tid`, Okta/Auth0: a custom claim).
    pub tenant: Option<String>,
    /// Claim holding roles. Default `roles`.
    pub roles: Option<String>,
    /// Claim holding groups. Default `groups`.
    pub groups: Option<String>,
    /// Claims copied into the principal's attributes for policies.
    #[serde(default)]
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    pub client_id: String,
    pub client_secret: String,
    /// By default from discovery.
    pub endpoint: Option<String>,
    /// How long an introspection answer is reused (seconds, never past the token's exp).
    /// Default 30.
    pub cache_secs: Option<u64>,
}

/// Bounds on everything a peer sends. Every field has a safe default.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request body accepted (bytes). Default 4 MiB.
    pub max_body_bytes: Option<usize>,
    /// Deepest JSON nesting accepted. Default 64.
    pub max_json_depth: Option<usize>,
    /// Most messages in one JSON-RPC batch (2025-03-26 only). Default 32.
    pub max_batch: Option<usize>,
    /// Largest single message from an upstream (stdio line or SSE event). Default 16 MiB.
    pub max_upstream_message_bytes: Option<usize>,
    /// How long one upstream call may take (seconds). Default 120.
    pub request_timeout_secs: Option<u64>,
    /// How long a client may take to send its request body (seconds). Default 30.
    pub body_timeout_secs: Option<u64>,
    /// Requests handled at once across all clients; further ones get 503. Default 1024.
    pub max_concurrent_requests: Option<usize>,
    /// Client connections open at once on the HTTPS listener; further ones wait to be
    /// accepted until one closes. Default 4096.
    pub max_connections: Option<usize>,
    /// On shutdown, how long open connections may finish their requests (seconds).
    /// Default 30.
    pub drain_secs: Option<u64>,
    /// Request worker threads, each serving its own connections start to end (plain HTTP
    /// listener). Default: one per CPU the process may use; at most 64.
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// 32-byte key (base64) that encrypts and authenticates session ids, shared by all
    /// replicas. When absent a random key is made at start and sessions die with the process.
    pub key: Option<String>,
    /// Session lifetime in seconds. Default 86400.
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFederation {
    /// Joins an upstream's namespace and a tool or prompt name. Default `__`.
    pub separator: Option<String>,
}

/// One upstream: either `command` (stdio child) or `url` (HTTP).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Program to run as a stdio MCP server.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment given to the child. Nothing else is inherited unless listed in `inherit_env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables copied from the gateway's environment. Default `[PATH, HOME, LANG, TMPDIR]`.
    pub inherit_env: Option<Vec<String>>,
    /// Working directory of the child.
    pub cwd: Option<String>,
    /// Confines a command upstream: the paths it may read and write, its network, and
    /// limits on memory, CPU, processes and file size (Landlock, seccomp, namespaces,
    /// rlimits). A profile this kernel cannot enforce stops the server from starting.
    pub sandbox: Option<crate::sandbox::RawSandbox>,
    /// The hash of the package a runner (`npx`, `uvx`, …) starts: npm's `dist.integrity`
    /// (`sha512-…`) or a PyPI file's `sha256:…`. Required for such packages; checked against
    /// the registry before every start.
    pub integrity: Option<String>,
    /// Upstream endpoint for `streamable_http` (`…/mcp`) or `sse` (`…/sse`).
    pub url: Option<String>,
    /// `streamable_http` (default for `url`) or `sse` (legacy HTTP+SSE).
    pub transport: Option<RawTransportKind>,
    /// Extra HTTP headers sent to an HTTP upstream (e.g. its own credential).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Client request headers passed on to this HTTP upstream, by name (e.g.
    /// `x-tenant-id`). Credentials, cookies, hop-by-hop and MCP's or Gatehouse's own
    /// headers never are: such a name is refused.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// TLS towards an HTTPS upstream: pin its CA and/or present a client certificate.
    pub tls: Option<RawUpstreamTls>,
    /// The gateway's own OAuth client credentials for an HTTP upstream (never the client's
    /// token): a token is fetched, cached and sent as `Authorization: Bearer`.
    pub client_credentials: Option<RawClientCredentials>,
    /// Prefix for this upstream's tools and prompts. Default: the upstream's name.
    /// An empty string exposes names unprefixed (collisions are then refused).
    pub namespace: Option<String>,
    /// How sensitive this server's data is: `public`, `internal` (default),
    /// `confidential` or `restricted`. Each level carries the controls
    /// `authorization.classification` sets.
    pub classification: Option<gatehouse_policy::Classification>,
    /// The tenant that owns this server: principals of other tenants are never granted it.
    pub tenant: Option<String>,
    /// Declared shared between tenants: grants may then reach it from any tenant.
    #[serde(default)]
    pub shared: bool,
    /// Per-tool overrides by the tool's name at this upstream: `verb`
    /// (read/write/execute/delete, instead of what its annotations imply) and
    /// `classification`.
    #[serde(default)]
    pub tools: BTreeMap<String, super::authz::RawToolPolicy>,
    /// Classification of resources by URI prefix (the longest matching prefix wins).
    #[serde(default)]
    pub resources: BTreeMap<String, gatehouse_policy::Classification>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// PEM CA bundle: only certificates chaining to it are trusted for this upstream
    /// (instead of the system roots). Certificates are always verified.
    pub ca: Option<String>,
    /// PEM client certificate for mTLS to the upstream (with `client_key`).
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClientCredentials {
    pub token_url: String,
    pub client_id: String,
    /// A reference: `env:NAME` or `file:/path` (read at each token fetch).
    pub client_secret: String,
    pub scope: Option<String>,
    /// RFC 8707 resource indicator for the upstream.
    pub resource: Option<String>,
    /// Calls made for a user who presented a token (JWT or introspected) go out with a
    /// token exchanged for theirs at `token_url` (RFC 8693: naming the user, the gateway as
    /// actor); the client-credentials token serves only the gateway's own traffic
    /// (handshake, lists). Callers without such a token (API keys, certificates) are
    /// refused on this upstream. `streamable_http` only.
    #[serde(default)]
    pub token_exchange: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawTransportKind {
    StreamableHttp,
    Sse,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVirtualServer {
    /// Upstreams this virtual server exposes.
    pub upstreams: Vec<String>,
    /// If set, only these exposed tool names (e.g. `db__read_database`).
    pub tools: Option<Vec<String>>,
    /// The tenant this virtual server belongs to: principals of other tenants are refused
    /// at its endpoint.
    pub tenant: Option<String>,
    /// Lists the search, describe and call meta-tools instead of every tool (default: the
    /// gateway's `tool_search`).
    pub tool_search: Option<bool>,
}

/// `provenance`: npm packages' Sigstore provenance.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvenance {
    /// A Sigstore `trusted_root.json` to check against instead of the public-good root
    /// Gatehouse ships (a private Sigstore, or a newer root).
    pub trusted_root: Option<String>,
    /// `true`: an npm package whose registry publishes no provenance is not started
    /// (default `false`: provenance is verified where published).
    #[serde(default)]
    pub required: bool,
}
