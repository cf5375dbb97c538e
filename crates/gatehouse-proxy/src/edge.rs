//! The edge half of the request path: who is calling (authenticate), which session they
//! may use (bind session), and which application an API key belongs to. Every transport
//! (Streamable HTTP, legacy SSE, the approvals API) runs these before a message reaches
//! the chain (`gatehouse_pipeline`).

use std::sync::Arc;

use gatehouse_auth::{AuthError, AuthMethod, KEY_PREFIX, Principal, bearer};
use gatehouse_config::Config;
use gatehouse_pipeline::gateway::Gateway;
use gatehouse_transport::session::{SessionClaims, SessionError};

use crate::tls::PeerIdentity;

/// Why the edge refused a caller before any message was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no identity provider is configured and development mode is off")]
    NotConfigured,
    #[error(transparent)]
    Refused(#[from] AuthError),
}

/// Stage: authenticate. Runs first because every later decision is about *who* asks; an
/// unknown caller learns nothing, not even which tools exist. The client's credential
/// stops here: nothing downstream ever forwards it.
pub async fn authenticate(
    gw: &Gateway,
    cfg: &Config,
    authorization: Option<&str>,
    peer: Option<&PeerIdentity>,
) -> Result<Arc<Principal>, AuthFailure> {
    // Development mode: a caller without a credential is anonymous; one that presents an
    // API key is that key's principal (the quickstart's demo roles).
    if cfg.dev_mode && (authorization.is_none() || cfg.api_key_pepper.is_none()) {
        return Ok(gw.anonymous());
    }
    let principal = identify(gw, cfg, authorization, peer).await?;
    // A person or service the directory deprovisioned is refused whatever they present:
    // token, open session, API key or certificate.
    let subject = principal
        .id
        .split_once('/')
        .map_or(principal.id.as_str(), |(_, s)| s);
    let mut groups = None;
    match gw.directory() {
        Ok(None) => {}
        Ok(Some(dir)) => {
            let unavailable =
                |e: gatehouse_store::StoreError| AuthError::Unavailable(e.to_string());
            if dir.is_deprovisioned(subject).map_err(unavailable)? {
                tracing::warn!(target: "gatehouse::audit", principal = %principal.id, "deprovisioned principal refused");
                return Err(AuthError::Inactive.into());
            }
            // For the people it provisions the directory is the truth about groups: someone
            // removed from a group loses it at once, though their token still lists it.
            groups = dir
                .groups_of(subject)
                .map_err(unavailable)?
                .filter(|g| **g != *principal.groups);
        }
        Err(e) => return Err(AuthError::Unavailable(e).into()),
    }
    Ok(with_groups(principal, groups, &cfg.group_roles))
}

/// The principal with its final groups, and the roles those groups grant added to the ones
/// its credential carries. Unchanged (no copy) when nothing applies.
fn with_groups(
    principal: Arc<Principal>,
    groups: Option<Arc<[String]>>,
    group_roles: &std::collections::BTreeMap<String, Vec<String>>,
) -> Arc<Principal> {
    let final_groups: &[String] = groups.as_deref().unwrap_or(&principal.groups);
    let granted: Vec<&String> = final_groups
        .iter()
        .filter_map(|g| group_roles.get(g))
        .flatten()
        .filter(|r| !principal.roles.contains(r))
        .collect();
    if groups.is_none() && granted.is_empty() {
        return principal;
    }
    let mut p = (*principal).clone();
    for r in granted {
        if !p.roles.contains(r) {
            p.roles.push(r.clone());
        }
    }
    if let Some(g) = groups {
        p.groups = g.to_vec();
    }
    Arc::new(p)
}

async fn identify(
    gw: &Gateway,
    cfg: &Config,
    authorization: Option<&str>,
    peer: Option<&PeerIdentity>,
) -> Result<Arc<Principal>, AuthFailure> {
    // A verified client certificate that a rule maps stands for the caller when no token
    // is presented; a presented token always decides.
    if authorization.is_none()
        && let Some(p) = peer.and_then(|p| p.0.clone())
    {
        return Ok(p);
    }
    // A broken key store refuses API keys (503), not every other kind of caller.
    let keys = gw.api_keys();
    let jwt = gw.authenticator();
    let certs = cfg.tls.as_ref().is_some_and(|t| !t.rules.is_empty());
    if matches!(keys, Ok(None)) && jwt.is_none() && !certs {
        return Err(AuthFailure::NotConfigured);
    }
    let token = bearer(authorization)?;
    if token.starts_with(KEY_PREFIX) {
        let keys = keys
            .map_err(AuthError::Unavailable)?
            .ok_or(AuthError::UnknownIssuer)?;
        return Ok(Arc::new(
            keys.authenticate(token, gatehouse_transport::session::now_secs())?,
        ));
    }
    let jwt = jwt.ok_or(AuthError::UnknownIssuer)?;
    Ok(Arc::new(jwt.authenticate(token).await?))
}

/// Stage: bind session. A session id is honoured only on the endpoint that issued it, and
/// only for the principal that opened it: a stolen id is useless to anyone else.
pub fn bind_session(
    gw: &Gateway,
    token: &str,
    scope: Option<&str>,
    principal: &Principal,
) -> Result<SessionClaims, SessionError> {
    let claims = gw.sessions.open(token)?;
    if claims.scope != scope.unwrap_or("") {
        return Err(SessionError::Invalid);
    }
    if claims.principal != principal.id {
        tracing::warn!(
            target: "gatehouse::audit",
            session = %claims.sid,
            owner = %claims.principal,
            principal = %principal.id,
            "session used by another principal: refused"
        );
        return Err(SessionError::OtherPrincipal);
    }
    Ok(claims)
}

/// An API key belongs to one application: the client must say it is that application
/// (`clientInfo.name` at `initialize`, or in a stateless request's envelope). A key used by
/// another application is refused and audited, so sharing a key is never silent.
pub fn check_app(principal: &Principal, client_name: Option<&str>) -> Result<(), AuthError> {
    let AuthMethod::ApiKey { app, key_id } = &principal.method else {
        return Ok(());
    };
    if client_name == Some(app.as_str()) {
        return Ok(());
    }
    tracing::warn!(
        target: "gatehouse::audit",
        principal = %principal.id,
        key = %key_id,
        bound_to = %app,
        client = client_name.unwrap_or("(none)"),
        "API key used by another application: refused"
    );
    Err(AuthError::InsufficientScope(vec![format!("app:{app}")]))
}
