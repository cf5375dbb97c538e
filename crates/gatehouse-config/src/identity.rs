//! Validation of who may call and how: `tls` (listener certificates and client-certificate
//! rules), `auth` (issuers and the authorization-server façade), per-user upstream OAuth
//! and `vault`.

use super::*;
use schemars::JsonSchema;
use serde::Deserialize;

pub(super) fn validate_tls(t: RawTls) -> Result<TlsSettings, ConfigError> {
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

pub(super) fn validate_auth(
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

pub(super) fn validate_vault(v: RawVault) -> Result<gatehouse_auth::VaultSettings, ConfigError> {
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

pub(super) fn validate_facade(
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
    let client_metadata = match f.client_metadata {
        Some(c) if c.enabled == Some(false) => None,
        c => {
            let c = c.unwrap_or_default();
            let at = format!("{AT}.client_metadata");
            let cache = c.cache_secs.unwrap_or(300);
            if !(1..=86_400).contains(&cache) {
                return Err(ConfigError::at(format!("{at}.cache_secs"), "1 to 86400"));
            }
            let ca_pem = match &c.ca {
                None => None,
                Some(p) => {
                    let pem = std::fs::read(p)
                        .map_err(|e| ConfigError::at(format!("{at}.ca"), format!("{p}: {e}")))?;
                    reqwest::Certificate::from_pem_bundle(&pem)
                        .ok()
                        .filter(|c| !c.is_empty())
                        .ok_or_else(|| {
                            ConfigError::at(format!("{at}.ca"), "no PEM certificate in it")
                        })?;
                    Some(pem)
                }
            };
            Some(gatehouse_auth::ClientMetadataConfig {
                hosts: c.hosts,
                private_hosts: c.private_hosts,
                ca_pem,
                cache: Duration::from_secs(cache),
            })
        }
    };
    let mut id_jag_issuers = Vec::new();
    for name in f.id_jag.map(|j| j.issuers).unwrap_or_default() {
        let i = issuers.iter().find(|i| i.name == name).ok_or_else(|| {
            ConfigError::at(
                format!("{AT}.id_jag.issuers"),
                format!("`{name}` is not a name under auth.issuers"),
            )
        })?;
        id_jag_issuers.push(i.issuer.clone());
    }
    Ok(gatehouse_auth::FacadeConfig {
        client_metadata,
        id_jag_issuers,
        registrations_per_hour: f.registrations_per_hour.unwrap_or(20),
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
pub(super) fn user_oauth(
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

/// Which enterprise IdPs may vouch for users and clients with an ID-JAG.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIdJag {
    pub issuers: Vec<String>,
}

/// How metadata-document client ids are fetched.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClientMetadata {
    /// Default true.
    pub enabled: Option<bool>,
    /// Accept documents only from these hosts (default: any host with public addresses).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Hosts whose documents may be on private or loopback addresses (an internal client
    /// registry). Every other host must resolve to public addresses only.
    #[serde(default)]
    pub private_hosts: Vec<String>,
    /// A PEM file of extra CA certificates trusted when fetching documents.
    pub ca: Option<String>,
    /// Seconds a fetched document is used before it is fetched again (default 300, at most
    /// 86400).
    pub cache_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUserOAuth {
    /// The upstream's authorization server.
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The gateway's client there; its redirect URI is `<issuer>/oauth/upstream/callback`.
    pub client_id: String,
    /// `env:`, `file:` or `secret:`; none for a public client (PKCE only).
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The RFC 8707 resource asked for. Default: the upstream's URL.
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFacade {
    /// This gateway as an issuer: its public origin, no path. Default: the origin of
    /// `auth.resource`.
    pub issuer: Option<String>,
    /// Where users sign in.
    pub login: RawLogin,
    /// Lifetime of the gateway's access tokens (seconds, 300–3600). Default 900.
    pub access_token_ttl_secs: Option<u64>,
    /// Lifetime of a sign-in: its refresh tokens rotate but never outlive it (seconds, at
    /// most 90 days). Default 14 days.
    pub refresh_token_ttl_secs: Option<u64>,
    /// Redirect URIs clients may register: exact URIs, or prefixes ending in `*` after a
    /// path. A loopback entry (`http://127.0.0.1/callback`) without a port admits any port.
    pub redirect_uris: Vec<String>,
    /// Most registered clients. Default 1000.
    pub max_clients: Option<usize>,
    /// Scopes clients may ask for. Default: the login issuer's `required_scopes`.
    pub scopes: Option<Vec<String>>,
    /// PKCS#8 PEM file of the P-256 key that signs gateway tokens; created (mode 0600) on
    /// first start when missing. Replicas must share it. Default: beside the store file
    /// (`<store file>.oauth-key.pem`).
    pub signing_key: Option<String>,
    /// AES-256-GCM key (32 bytes, base64; `env:`, `file:` or `secret:`) sealing users'
    /// upstream tokens. Required with `upstreams`.
    pub token_key: Option<String>,
    /// PostgreSQL connection string: replicas share clients, sign-ins, refresh tokens and
    /// users' upstream tokens there. Default: the store file (one host).
    pub postgres: Option<String>,
    /// Upstreams (by name under `upstreams`, `streamable_http`) that are called with each
    /// user's own account: the user connects it once through a consent link, the gateway
    /// keeps the tokens sealed and refreshes them.
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUserOAuth>,
    /// Client ids that are HTTPS URLs of client metadata documents (the registration MCP's
    /// 2025-11-25 and later specifications prefer). On by default; `{enabled: false}` turns
    /// it off.
    pub client_metadata: Option<RawClientMetadata>,
    /// Dynamic registrations one address may make per hour (default 20; 0: no limit).
    pub registrations_per_hour: Option<u32>,
    /// Enterprise-managed authorization: identity assertion authorization grants (ID-JAG)
    /// from these issuers (names under `auth.issuers`) are exchanged at the token endpoint
    /// for gateway tokens, with no sign-in page.
    pub id_jag: Option<RawIdJag>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// The name of the trusted issuer (under `auth.issuers`) users sign in at; its tokens
    /// become principals exactly as when presented directly.
    pub issuer: String,
    /// The gateway's client at that provider (a confidential web client whose redirect URI
    /// is `<issuer>/oauth/callback`).
    pub client_id: String,
    /// `env:NAME`, `file:/path` or `secret:NAME`.
    pub client_secret: String,
    /// Scopes asked of the provider. Default `[openid]` and the offered scopes.
    pub scopes: Option<Vec<String>>,
    /// The resource (RFC 8707) asked of the provider. Default `auth.resource`.
    pub resource: Option<String>,
    /// Override the endpoints from the provider's discovery document.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}
