//! Trusted issuers and the [`Authenticator`] that checks a bearer token against them.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::introspect::Introspector;
pub use crate::introspect::IssuerTrust;
use crate::jwks::Jwks;
use crate::principal::{AuthMethod, Principal, PrincipalKind};
pub use crate::wire::{client_basic, client_basic_decode};
pub(crate) use crate::wire::{get_bounded, now, sha256};

/// The gateway's own tokens as the authorization-server façade checks them: how the
/// authenticator accepts them without depending on the façade.
pub(crate) trait OwnTokenCheck: Send + Sync {
    /// The `iss` of the gateway's tokens.
    fn issuer(&self) -> &str;
    /// The principal, `exp`, and the refresh family the token belongs to.
    fn verify(&self, token: &str) -> Result<(Principal, u64, String), AuthError>;
    /// Whether that family is still live (not revoked by a refresh replay or a sign-out).
    fn family_live(&self, family: &str) -> bool;
}

/// Which claims carry what. Defaults suit most providers; see docs/identity.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMap {
    pub subject: String,
    pub tenant: Option<String>,
    pub roles: Option<String>,
    pub groups: Option<String>,
    /// Claims copied into the principal's attributes, for policies.
    pub attributes: Vec<String>,
}

impl Default for ClaimMap {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            tenant: None,
            roles: Some("roles".into()),
            groups: Some("groups".into()),
            attributes: Vec::new(),
        }
    }
}

/// One trusted issuer, validated from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// Short name, prefixed to subjects in principal ids.
    pub name: String,
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values (RFC 8707 resource indicators of this gateway).
    pub audiences: Vec<String>,
    /// Asymmetric algorithms only; config validation refuses `none` and HMAC.
    pub algorithms: Vec<Algorithm>,
    /// Overrides the JWKS URI from discovery.
    pub jwks_uri: Option<String>,
    pub introspection: Option<IssuerTrust>,
    pub required_scopes: Vec<String>,
    /// When set, only these tenant values are accepted (multi-tenant issuers).
    pub tenants: Option<Vec<String>>,
    pub claims: ClaimMap,
    pub skew: Duration,
    pub jwks_min_refetch: Duration,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Discovery {
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
}

struct IssuerState {
    cfg: IssuerConfig,
    discovery: tokio::sync::Mutex<Option<Discovery>>,
    jwks: Jwks,
    introspector: Option<Introspector>,
}

/// Checks bearer tokens against the trusted issuers.
pub struct Authenticator {
    issuers: Vec<IssuerState>,
    /// The gateway's own tokens, when it runs the authorization-server façade.
    own: Option<std::sync::Arc<dyn OwnTokenCheck>>,
    client: reqwest::Client,
    /// Verified JWTs by SHA-256 (the token itself is never kept). Bounded with TinyLFU
    /// admission: a flood of new tokens cannot flush the ones in steady use. Only verified
    /// tokens enter.
    verified: moka::sync::Cache<[u8; 32], std::sync::Arc<Verified>>,
}

struct Verified {
    principal: Principal,
    exp: u64,
    /// Index of the issuer, or [`OWN`] for the gateway's own tokens.
    issuer: usize,
    /// The issuer's JWKS fetch count when verified: a refetch (rotation) invalidates.
    generation: u64,
    /// A gateway token's refresh family, checked again on each hit (revocation).
    family: Option<String>,
}

/// The issuer index of the gateway's own tokens in the verified-token memory.
const OWN: usize = usize::MAX;

/// Most verified tokens remembered at once.
const VERIFIED_CAP: u64 = 10_000;
/// A verified token unused this long is forgotten (its `exp` still bounds every hit).
const VERIFIED_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// The unverified payload of a JWT, only to pick the issuer whose keys will verify it.
fn peek_payload(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl Authenticator {
    pub fn new(issuers: Vec<IssuerConfig>) -> Authenticator {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let issuers = issuers
            .into_iter()
            .map(|cfg| IssuerState {
                jwks: Jwks::new(cfg.jwks_min_refetch),
                introspector: cfg
                    .introspection
                    .as_ref()
                    .map(|t| Introspector::new(t.cache_ttl)),
                discovery: tokio::sync::Mutex::new(None),
                cfg,
            })
            .collect();
        Authenticator {
            issuers,
            own: None,
            client,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAP)
                .time_to_idle(VERIFIED_IDLE)
                .build(),
        }
    }

    /// Accepts the gateway's own tokens, checked by `own` (the authorization-server
    /// façade's `with_own_tokens` hands its checker over).
    pub(crate) fn accepting_own(mut self, own: std::sync::Arc<dyn OwnTokenCheck>) -> Self {
        self.own = Some(own);
        self
    }

    /// The issuer URLs, for protected-resource metadata: the gateway's own first when it
    /// runs the authorization-server façade (clients then sign in through it).
    pub fn issuer_urls(&self) -> Vec<String> {
        let own = self.own.iter().map(|o| o.issuer().to_owned());
        own.chain(self.issuers.iter().map(|i| i.cfg.issuer.clone()))
            .collect()
    }

    /// Scopes any issuer requires, for metadata and challenges.
    pub fn required_scopes(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .issuers
            .iter()
            .flat_map(|i| i.cfg.required_scopes.clone())
            .collect();
        s.sort();
        s.dedup();
        s
    }

    /// How many times an issuer's JWKS was fetched (for operators and tests).
    pub fn jwks_fetches(&self, name: &str) -> u64 {
        self.issuers
            .iter()
            .find(|i| i.cfg.name == name)
            .map(|i| i.jwks.fetches())
            .unwrap_or(0)
    }

    /// Verifies a bearer token and maps it to a principal.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() || token.len() > 16 * 1024 || !token.is_ascii() {
            return Err(AuthError::Malformed);
        }
        if token.split('.').count() == 3 {
            // An already-verified token is answered from memory, until its `exp` and only
            // while the issuer's key set is the one that verified it.
            let digest = sha256(token);
            if let Some(p) = self.cached(&digest) {
                return Ok(p);
            }
            if let Some(own) = &self.own
                && peek_payload(token)
                    .and_then(|c| {
                        c.get("iss")
                            .and_then(Value::as_str)
                            .map(|i| i == own.issuer())
                    })
                    .unwrap_or(false)
            {
                let (p, exp, family) = own.verify(token)?;
                self.remember(digest, &p, exp, OWN, Some(family));
                return Ok(p);
            }
            let (p, exp, issuer) = self.jwt(token).await?;
            self.remember(digest, &p, exp, issuer, None);
            return Ok(p);
        }
        self.opaque(token).await
    }

    async fn discovery(&self, st: &IssuerState) -> Result<Discovery, AuthError> {
        let mut d = st.discovery.lock().await;
        if let Some(d) = d.as_ref() {
            return Ok(d.clone());
        }
        let base = st.cfg.issuer.trim_end_matches('/');
        let mut last = AuthError::Unavailable("no discovery document".into());
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            match get_bounded(&self.client, &format!("{base}{path}"), MAX_DISCOVERY_BYTES).await {
                Ok(body) => {
                    let doc: Discovery = serde_json::from_slice(&body).map_err(|e| {
                        AuthError::Unavailable(format!("discovery unreadable: {e}"))
                    })?;
                    *d = Some(doc.clone());
                    return Ok(doc);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Principal> {
        let hit = self.verified.get(digest)?;
        let fresh = now() < hit.exp
            && match (hit.issuer, &self.own, &hit.family) {
                (OWN, Some(own), Some(f)) => own.family_live(f),
                (OWN, _, _) => false,
                (i, _, _) => self.issuers[i].jwks.fetches() == hit.generation,
            };
        if fresh {
            return Some(hit.principal.clone());
        }
        self.verified.invalidate(digest);
        None
    }

    fn remember(
        &self,
        digest: [u8; 32],
        p: &Principal,
        exp: u64,
        issuer: usize,
        family: Option<String>,
    ) {
        let generation = self.issuers.get(issuer).map_or(0, |i| i.jwks.fetches());
        self.verified.insert(
            digest,
            std::sync::Arc::new(Verified {
                principal: p.clone(),
                exp,
                issuer,
                generation,
                family,
            }),
        );
    }

    /// Verifies a JWT; returns the principal, the token's `exp` and the issuer's index.
    async fn jwt(&self, token: &str) -> Result<(Principal, u64, usize), AuthError> {
        let (claims, index) = self.verified_claims(token, None).await?;
        let cfg = &self.issuers[index].cfg;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let p = principal(
            cfg,
            &claims,
            AuthMethod::Jwt {
                issuer: cfg.issuer.clone(),
            },
        )?;
        Ok((p, exp, index))
    }

    /// Verifies an identity assertion authorization grant (ID-JAG): a JWT of type
    /// `oauth-id-jag+jwt` from one of `issuers` (their `iss`), addressed to `audience` (the
    /// façade's issuer), short-lived, with a `jti` and the `client_id` it was issued to.
    /// Returns the principal it names and its claims.
    pub async fn verify_id_jag(
        &self,
        token: &str,
        audience: &str,
        issuers: &[String],
    ) -> Result<(Principal, Map<String, Value>), AuthError> {
        if token.is_empty() || token.len() > 16 * 1024 || !token.is_ascii() {
            return Err(AuthError::Malformed);
        }
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("oauth-id-jag+jwt"))
        {
            return Err(AuthError::Invalid("not an ID-JAG (typ)".into()));
        }
        let iss = peek_payload(token)
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_owned))
            .ok_or(AuthError::UnknownIssuer)?;
        if !issuers.contains(&iss) {
            return Err(AuthError::UnknownIssuer);
        }
        let (claims, index) = self
            .verified_claims(token, Some(&[audience.to_owned()]))
            .await?;
        let int = |k: &str| claims.get(k).and_then(Value::as_u64);
        let (Some(iat), Some(exp)) = (int("iat"), int("exp")) else {
            return Err(AuthError::Invalid("iat and exp are required".into()));
        };
        // A grant is for immediate use: at most five minutes of life.
        if exp.saturating_sub(iat) > 300 {
            return Err(AuthError::Invalid(
                "the grant lives longer than 5 minutes".into(),
            ));
        }
        for k in ["jti", "client_id", "sub"] {
            if claims
                .get(k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(AuthError::Invalid(format!("{k} is required")));
            }
        }
        let cfg = &self.issuers[index].cfg;
        let p = principal(
            cfg,
            &claims,
            AuthMethod::Jwt {
                issuer: cfg.issuer.clone(),
            },
        )?;
        Ok((p, claims))
    }

    /// A JWT's claims once its issuer, algorithm, signature, time claims and audience (the
    /// issuer's own audiences, or `audiences`) are verified; with the issuer's index.
    async fn verified_claims(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Result<(Map<String, Value>, usize), AuthError> {
        let header = decode_header(token).map_err(|e| {
            // An algorithm the library does not know (`none` among them) lands here.
            let alg = peek_header_alg(token).unwrap_or_default();
            if alg.is_empty() {
                AuthError::Malformed
            } else {
                AuthError::Algorithm(alg).with_detail(e.to_string())
            }
        })?;
        let payload = peek_payload(token).ok_or(AuthError::Malformed)?;
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::UnknownIssuer)?;
        let index = self
            .issuers
            .iter()
            .position(|i| i.cfg.issuer == iss)
            .ok_or(AuthError::UnknownIssuer)?;
        let st = &self.issuers[index];
        let cfg = &st.cfg;
        if !cfg.algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let jwks_uri = match &cfg.jwks_uri {
            Some(u) => u.clone(),
            None => self
                .discovery(st)
                .await?
                .jwks_uri
                .ok_or_else(|| AuthError::Unavailable("discovery has no jwks_uri".into()))?,
        };
        let key = st
            .jwks
            .key(&self.client, &jwks_uri, header.kid.as_deref(), header.alg)
            .await?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = cfg.skew.as_secs();
        v.validate_nbf = true;
        v.set_issuer(&[&cfg.issuer]);
        v.set_audience(audiences.unwrap_or(&cfg.audiences));
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidAudience => AuthError::Audience,
                K::InvalidIssuer => AuthError::UnknownIssuer,
                K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                    AuthError::Algorithm(format!("{:?}", header.alg))
                }
                other => AuthError::Invalid(format!("{other:?}")),
            }
        })?;
        let claims = data.claims;
        if claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_some_and(|iat| iat > now() + cfg.skew.as_secs())
        {
            return Err(AuthError::NotYetValid);
        }
        Ok((claims, index))
    }

    async fn opaque(&self, token: &str) -> Result<Principal, AuthError> {
        let mut last = AuthError::UnknownIssuer;
        for st in self.issuers.iter().filter(|i| i.introspector.is_some()) {
            let (Some(trust), Some(intro)) = (&st.cfg.introspection, &st.introspector) else {
                continue;
            };
            let endpoint = match &trust.endpoint {
                Some(e) => e.clone(),
                None => match self.discovery(st).await?.introspection_endpoint {
                    Some(e) => e,
                    None => continue,
                },
            };
            match intro.check(&self.client, &endpoint, trust, token).await {
                Ok(claims) => {
                    if claims
                        .get("iss")
                        .and_then(Value::as_str)
                        .is_some_and(|i| i != st.cfg.issuer)
                    {
                        last = AuthError::UnknownIssuer;
                        continue;
                    }
                    if let Some(aud) = claims.get("aud")
                        && !strings(Some(aud))
                            .iter()
                            .any(|a| st.cfg.audiences.contains(a))
                    {
                        return Err(AuthError::Audience);
                    }
                    if claims
                        .get("exp")
                        .and_then(Value::as_u64)
                        .is_some_and(|exp| exp + st.cfg.skew.as_secs() < now())
                    {
                        return Err(AuthError::Expired);
                    }
                    return principal(
                        &st.cfg,
                        &claims,
                        AuthMethod::Introspection {
                            issuer: st.cfg.issuer.clone(),
                        },
                    );
                }
                Err(AuthError::Inactive) => last = AuthError::Inactive,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

trait WithDetail {
    fn with_detail(self, d: String) -> Self;
}

impl WithDetail for AuthError {
    fn with_detail(self, d: String) -> Self {
        tracing::debug!(detail = %d, error = %self, "token refused");
        self
    }
}

fn peek_header_alg(token: &str) -> Option<String> {
    let h = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg").and_then(Value::as_str).map(str::to_owned)
}

/// Maps verified claims to a principal; checks tenant and scopes.
fn principal(
    cfg: &IssuerConfig,
    claims: &Map<String, Value>,
    method: AuthMethod,
) -> Result<Principal, AuthError> {
    let client_id = claims
        .get("client_id")
        .or_else(|| claims.get("azp"))
        .and_then(Value::as_str);
    // A client-credentials token may name no subject (RFC 7662 makes `sub` optional): the
    // client is then the subject.
    let sub = claims
        .get(&cfg.claims.subject)
        .and_then(Value::as_str)
        .or(client_id)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::Invalid(format!("no {} claim", cfg.claims.subject)))?;
    let tenant = cfg
        .claims
        .tenant
        .as_ref()
        .and_then(|c| claims.get(c))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(allowed) = &cfg.tenants {
        match &tenant {
            Some(t) if allowed.contains(t) => {}
            other => {
                return Err(AuthError::Tenant(
                    other.clone().unwrap_or_else(|| "(none)".into()),
                ));
            }
        }
    }
    let mut scopes = strings(claims.get("scope"));
    scopes.extend(strings(claims.get("scp")));
    let missing: Vec<String> = cfg
        .required_scopes
        .iter()
        .filter(|s| !scopes.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(AuthError::InsufficientScope(missing));
    }
    let service =
        claims.get("idtyp").and_then(Value::as_str) == Some("app") || client_id == Some(sub);
    let attributes: BTreeMap<String, Value> = cfg
        .claims
        .attributes
        .iter()
        .filter_map(|k| claims.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    Ok(Principal {
        id: format!("{}/{}", cfg.name, sub),
        kind: if service {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        },
        tenant,
        roles: cfg
            .claims
            .roles
            .as_ref()
            .map(|c| strings(claims.get(c)))
            .unwrap_or_default(),
        groups: cfg
            .claims
            .groups
            .as_ref()
            .map(|c| strings(claims.get(c)))
            .unwrap_or_default(),
        scopes,
        acr: claims.get("acr").and_then(Value::as_str).map(str::to_owned),
        amr: strings(claims.get("amr")),
        authenticated_at: claims
            .get("auth_time")
            .or_else(|| claims.get("iat"))
            .and_then(Value::as_u64),
        method,
        attributes,
        limits: None,
    })
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuers", &self.issuer_urls())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Map, Value, json};

    use super::{ClaimMap, IssuerConfig, principal, strings};
    use crate::error::AuthError;
    use crate::principal::{AuthMethod, PrincipalKind};

    fn cfg() -> IssuerConfig {
        IssuerConfig {
            name: "staff".into(),
            issuer: "https://idp.example".into(),
            audiences: vec!["https://gw.example/mcp".into()],
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            jwks_uri: None,
            introspection: None,
            required_scopes: vec!["mcp:tools".into()],
            tenants: Some(vec!["acme".into()]),
            claims: ClaimMap {
                tenant: Some("tid".into()),
                attributes: vec!["department".into()],
                ..ClaimMap::default()
            },
            skew: Duration::from_secs(60),
            jwks_min_refetch: Duration::from_secs(30),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn method() -> AuthMethod {
        AuthMethod::Jwt {
            issuer: "https://idp.example".into(),
        }
    }

    #[test]
    fn claims_map_to_a_principal() {
        let p = principal(
            &cfg(),
            &claims(json!({"sub": "alice", "tid": "acme", "scp": "mcp:tools mcp:read", "roles": ["analyst"],
                "groups": "eng ops", "acr": "mfa", "amr": ["pwd", "otp"], "auth_time": 100, "department": "risk"})),
            method(),
        )
        .unwrap();
        assert_eq!(p.id, "staff/alice");
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        assert_eq!(p.scopes, ["mcp:tools", "mcp:read"]);
        assert_eq!(
            (p.roles.as_slice(), p.groups.as_slice()),
            (
                &["analyst".to_owned()][..],
                &["eng".to_owned(), "ops".to_owned()][..]
            )
        );
        assert_eq!(
            (p.acr.as_deref(), p.amr.len(), p.authenticated_at),
            (Some("mfa"), 2, Some(100))
        );
        assert_eq!(p.attributes["department"], "risk");
    }

    #[test]
    fn service_tokens_and_missing_subjects() {
        let p = principal(
            &cfg(),
            &claims(json!({"client_id": "svc-a", "tid": "acme", "scope": "mcp:tools"})),
            method(),
        )
        .unwrap();
        assert_eq!(
            (p.id.as_str(), p.kind),
            ("staff/svc-a", PrincipalKind::Service)
        );
        let e = principal(
            &cfg(),
            &claims(json!({"tid": "acme", "scope": "mcp:tools"})),
            method(),
        )
        .unwrap_err();
        assert!(matches!(e, AuthError::Invalid(_)));
    }

    #[test]
    fn tenant_and_scope_rules_refuse() {
        let other = principal(
            &cfg(),
            &claims(json!({"sub": "a", "tid": "globex", "scope": "mcp:tools"})),
            method(),
        );
        assert_eq!(other.unwrap_err(), AuthError::Tenant("globex".into()));
        let none = principal(
            &cfg(),
            &claims(json!({"sub": "a", "scope": "mcp:tools"})),
            method(),
        );
        assert_eq!(none.unwrap_err(), AuthError::Tenant("(none)".into()));
        let scope = principal(
            &cfg(),
            &claims(json!({"sub": "a", "tid": "acme", "scope": "mcp:read"})),
            method(),
        );
        let err = scope.unwrap_err();
        assert_eq!(err, AuthError::InsufficientScope(vec!["mcp:tools".into()]));
        assert_eq!(
            (err.status(), err.oauth_error()),
            (403, "insufficient_scope")
        );
    }

    #[test]
    fn scope_strings_and_arrays() {
        assert_eq!(strings(Some(&json!("a b  c"))), ["a", "b", "c"]);
        assert_eq!(strings(Some(&json!(["a", 1, "b"]))), ["a", "b"]);
        assert!(strings(Some(&json!(5))).is_empty());
    }
}
