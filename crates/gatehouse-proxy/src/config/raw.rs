//! The YAML file as written: serde types with unknown fields rejected. `JsonSchema` on these
//! types is what `gatehouse schema` prints for editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

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
    #[serde(default)]
    pub logging: RawLogging,
    /// Who may call: OAuth 2.1 access tokens from trusted issuers.
    pub auth: Option<RawAuth>,
    /// API keys for services (`gatehouse keys …`).
    pub api_keys: Option<RawApiKeys>,
    #[serde(default)]
    pub store: RawStore,
    /// Serve HTTPS (and optionally verify client certificates) instead of plain HTTP.
    pub tls: Option<RawTls>,
    /// SCIM 2.0 provisioning at `/scim/v2` (deprovisioned users are refused).
    pub scim: Option<RawScim>,
    /// The administrator's API at `/admin/v1` (revoking a subject at once).
    pub admin: Option<RawAdmin>,
    /// The encrypted local secret store behind `secret:NAME` references.
    pub secrets: Option<RawSecrets>,
    /// Who may call what: role grants and Cedar policies (default deny once present),
    /// and the controls each classification level carries.
    pub authorization: Option<super::authz::RawAuthorization>,
    /// The tamper-evident audit record in the store (`store.sqlite`).
    pub audit: Option<RawAudit>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Commit every call's event before answering it. Default: only denied calls,
    /// write/execute/delete calls and calls on confidential or restricted data wait; the
    /// rest are committed in the next group without holding the response.
    #[serde(default)]
    pub durable_all: bool,
    /// Ed25519 key (base64 of its 32-byte seed, `gatehouse audit keygen`) that signs
    /// checkpoints of every chain's head, by reference: `env:NAME`, `file:/path` or
    /// `secret:NAME`. Without it there are no checkpoints.
    pub signing_key: Option<String>,
    /// Events between checkpoints, at most (default 1000; a quiet minute also triggers one).
    pub checkpoint_every: Option<u64>,
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
}

/// Where durable state lives.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// SQLite database file. Default `gatehouse.db`, relative to the config file.
    pub sqlite: Option<String>,
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
    /// Upstream endpoint for `streamable_http` (`…/mcp`) or `sse` (`…/sse`).
    pub url: Option<String>,
    /// `streamable_http` (default for `url`) or `sse` (legacy HTTP+SSE).
    pub transport: Option<RawTransportKind>,
    /// Extra HTTP headers sent to an HTTP upstream (e.g. its own credential).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
