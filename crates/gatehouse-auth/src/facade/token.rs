//! The token and revocation endpoints: client authentication, code and refresh-token
//! grants (rotation, replay detection, deprovisioned principals cut off), token issue.

use gatehouse_store::{OAuthClient, Redeem, RefreshRecord};
use serde_json::{Value, json};

use super::{
    AuthorizationServer, CODE_TTL, CutOff, FacadeEvent, LOGIN_TTL, OAuthError, Params, digest,
    random_token, s256, same, valid_verifier,
};
use crate::wire::now;

impl AuthorizationServer {
    /// Revokes a sign-in: its refresh tokens in the store, its access tokens here at once.
    /// If the store cannot take it, the refusal at hand still stands and this replica
    /// refuses the sign-in's tokens, but other replicas do not learn of it: logged loudly.
    fn revoke_sign_in(&self, family: &str, at: u64) {
        self.own.revoked(family);
        if let Err(e) = self.store.revoke_family(family, at) {
            tracing::error!(target: "gatehouse::audit", error = %e, "a sign-in could not be revoked in the store; other replicas still accept it");
        }
    }

    /// Authenticates the client at the token and revocation endpoints.
    fn client_auth(
        &self,
        form: &Params,
        basic: Option<(String, String)>,
    ) -> Result<OAuthClient, OAuthError> {
        let invalid = || OAuthError::new(401, "invalid_client", "client authentication failed");
        let (id, secret, method) = match basic {
            Some((id, secret)) => (id, Some(secret), "client_secret_basic"),
            None => {
                let id = form.get("client_id").cloned().ok_or_else(invalid)?;
                match form.get("client_secret") {
                    Some(s) => (id, Some(s.clone()), "client_secret_post"),
                    None => (id, None, "none"),
                }
            }
        };
        // A metadata-document client is public: its codes and refresh tokens are bound to
        // its URL and the code to its PKCE challenge, checked at /authorize against the
        // document; no secret can authenticate it.
        if super::cimd::is_document_id(&id) && self.cfg.client_metadata.is_some() {
            return match (secret, method) {
                (None, "none") => Ok(OAuthClient {
                    client_id: id,
                    name: None,
                    redirect_uris: Vec::new(),
                    auth_method: "none".into(),
                    secret_hash: None,
                    created_at: 0,
                }),
                _ => Err(invalid()),
            };
        }
        let client = self
            .store
            .client(&id)
            .map_err(OAuthError::store)?
            .ok_or_else(invalid)?;
        match (&client.secret_hash, secret) {
            (None, None) if client.auth_method == "none" => Ok(client),
            (Some(h), Some(s)) if client.auth_method == method && same(h, &digest(&s)) => {
                Ok(client)
            }
            _ => Err(invalid()),
        }
    }

    /// `/token`: authorization code (with the PKCE verifier) or refresh token (rotated).
    /// `cut_off` says whether a principal id was deprovisioned or revoked since it signed in:
    /// its sign-in is then revoked instead of renewed (an error refuses too: fail closed).
    pub fn token(
        &self,
        form: &Params,
        basic: Option<(String, String)>,
        cut_off: &CutOff<'_>,
    ) -> (Result<Value, OAuthError>, Option<FacadeEvent>) {
        let client = match self.client_auth(form, basic) {
            Ok(c) => c,
            Err(e) => return (Err(e), None),
        };
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.code_grant(form, &client, cut_off),
            Some("refresh_token") => self.refresh_grant(form, &client, cut_off),
            Some(_) => (
                Err(OAuthError::bad(
                    "unsupported_grant_type",
                    "authorization_code or refresh_token",
                )),
                None,
            ),
            None => (
                Err(OAuthError::bad("invalid_request", "grant_type is required")),
                None,
            ),
        }
    }

    /// The refusal when a sign-in's principal was cut off (its family is then revoked);
    /// `None` when it may go on.
    fn cut_off_refusal(
        &self,
        claims: &str,
        family: &str,
        client: &str,
        cut_off: &CutOff<'_>,
    ) -> Option<(OAuthError, Option<FacadeEvent>)> {
        let c: Value = serde_json::from_str(claims).unwrap_or(Value::Null);
        let who = c["sub"].as_str().unwrap_or_default();
        match cut_off(who) {
            Ok(false) => None,
            Ok(true) => {
                let at = now();
                self.revoke_sign_in(family, at);
                let event = self.event(
                    "auth.refresh_refused",
                    claims,
                    client,
                    false,
                    "the principal was deprovisioned or revoked: its sign-in is revoked",
                );
                Some((
                    OAuthError::bad("invalid_grant", "the grant is no longer valid"),
                    Some(event),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "directory unavailable at the token endpoint");
                Some((
                    OAuthError::new(503, "temporarily_unavailable", "try again later"),
                    None,
                ))
            }
        }
    }

    fn code_grant(
        &self,
        form: &Params,
        client: &OAuthClient,
        cut_off: &CutOff<'_>,
    ) -> (Result<Value, OAuthError>, Option<FacadeEvent>) {
        let invalid = |d: &str| Err(OAuthError::bad("invalid_grant", d));
        let Some(code) = form.get("code") else {
            return (
                Err(OAuthError::bad("invalid_request", "code is required")),
                None,
            );
        };
        let at = now();
        let grant = match self
            .store
            .redeem_code(&digest(code), at.saturating_sub(CODE_TTL), at)
        {
            Ok(Redeem::Fresh(g)) => g,
            Ok(Redeem::Replayed(g)) => {
                // RFC 9700 §4.2.4: a code used twice revokes what it produced.
                self.revoke_sign_in(&g.family, at);
                let event = self.event(
                    "auth.code_replayed",
                    &g.claims,
                    &g.client_id,
                    false,
                    "an authorization code was presented again; its tokens are revoked",
                );
                return (invalid("the code was already used"), Some(event));
            }
            Ok(Redeem::Unknown) => return (invalid("unknown or expired code"), None),
            Err(e) => return (Err(OAuthError::store(e)), None),
        };
        if grant.client_id != client.client_id {
            return (invalid("the code was issued to another client"), None);
        }
        if form
            .get("redirect_uri")
            .is_some_and(|r| *r != grant.redirect_uri)
        {
            return (invalid("redirect_uri does not match"), None);
        }
        let Some(verifier) = form.get("code_verifier").filter(|v| valid_verifier(v)) else {
            return (invalid("a valid code_verifier is required"), None);
        };
        if !same(&s256(verifier), &grant.code_challenge) {
            return (invalid("code_verifier does not match the challenge"), None);
        }
        if let Some((e, event)) =
            self.cut_off_refusal(&grant.claims, &grant.family, &client.client_id, cut_off)
        {
            return (Err(e), event);
        }
        let expires = at + self.cfg.refresh_ttl.as_secs();
        match self.issue(
            client,
            &grant.claims,
            &grant.scope,
            &grant.family,
            Some(expires),
        ) {
            Ok(v) => {
                let event = self.event(
                    "auth.token_issued",
                    &grant.claims,
                    &client.client_id,
                    true,
                    "access and refresh token issued for an authorization code",
                );
                (Ok(v), Some(event))
            }
            Err(e) => (Err(e), None),
        }
    }

    fn refresh_grant(
        &self,
        form: &Params,
        client: &OAuthClient,
        cut_off: &CutOff<'_>,
    ) -> (Result<Value, OAuthError>, Option<FacadeEvent>) {
        let Some(token) = form.get("refresh_token") else {
            return (
                Err(OAuthError::bad(
                    "invalid_request",
                    "refresh_token is required",
                )),
                None,
            );
        };
        let at = now();
        let rec = match self.store.redeem_refresh(&digest(token), at) {
            Ok(Redeem::Fresh(r)) => r,
            Ok(Redeem::Replayed(r)) => {
                // A spent refresh token came back: someone holds a copy. Both the thief and
                // the user lose the family; the user signs in again.
                self.revoke_sign_in(&r.family, at);
                let event = self.event(
                    "auth.refresh_replayed",
                    &r.claims,
                    &r.client_id,
                    false,
                    "a spent or revoked refresh token was presented; its family is revoked",
                );
                return (
                    Err(OAuthError::bad(
                        "invalid_grant",
                        "the refresh token is not valid",
                    )),
                    Some(event),
                );
            }
            Ok(Redeem::Unknown) => {
                return (
                    Err(OAuthError::bad(
                        "invalid_grant",
                        "the refresh token is not valid",
                    )),
                    None,
                );
            }
            Err(e) => return (Err(OAuthError::store(e)), None),
        };
        if rec.client_id != client.client_id {
            return (
                Err(OAuthError::bad(
                    "invalid_grant",
                    "the refresh token is not valid",
                )),
                None,
            );
        }
        if let Some((e, event)) =
            self.cut_off_refusal(&rec.claims, &rec.family, &client.client_id, cut_off)
        {
            return (Err(e), event);
        }
        // A narrower scope may be asked; never a wider one.
        let scope = match form.get("scope") {
            None => rec.scope.clone(),
            Some(s) => {
                if s.split_whitespace()
                    .any(|x| !rec.scope.split_whitespace().any(|y| y == x))
                {
                    return (
                        Err(OAuthError::bad("invalid_scope", "wider than granted")),
                        None,
                    );
                }
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        match self.issue(
            client,
            &rec.claims,
            &scope,
            &rec.family,
            Some(rec.expires_at),
        ) {
            Ok(v) => {
                let event = self.event(
                    "auth.token_refreshed",
                    &rec.claims,
                    &client.client_id,
                    true,
                    "refresh token rotated",
                );
                (Ok(v), Some(event))
            }
            Err(e) => (Err(e), None),
        }
    }

    fn event(
        &self,
        what: &'static str,
        claims: &str,
        client: &str,
        ok: bool,
        detail: &str,
    ) -> FacadeEvent {
        let c: Value = serde_json::from_str(claims).unwrap_or(Value::Null);
        FacadeEvent {
            what,
            principal: c["sub"].as_str().unwrap_or_default().to_owned(),
            tenant: c["tenant"].as_str().map(str::to_owned),
            client_id: client.to_owned(),
            ok,
            detail: detail.to_owned(),
        }
    }

    /// A new access token and the next refresh token of `family`.
    fn issue(
        &self,
        client: &OAuthClient,
        claims: &str,
        scope: &str,
        family: &str,
        refresh_expires: Option<u64>,
    ) -> Result<Value, OAuthError> {
        let p: Value = serde_json::from_str(claims)
            .map_err(|_| OAuthError::new(500, "server_error", "stored grant is unreadable"))?;
        let at = now();
        let ttl = self.cfg.access_ttl.as_secs();
        let access = json!({
            "iss": self.cfg.issuer,
            "aud": self.cfg.audience,
            "sub": p["sub"],
            "client_id": client.client_id,
            "scope": scope,
            "iat": at,
            "nbf": at,
            "exp": at + ttl,
            "jti": &random_token()[..22],
            "sid": family,
            "gh": p,
        });
        let access = self
            .signer
            .sign(&access)
            .map_err(|e| OAuthError::new(500, "server_error", e))?;
        let mut answer = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        });
        let Some(refresh_expires) = refresh_expires else {
            return Ok(answer);
        };
        let refresh = random_token();
        let rec = RefreshRecord {
            hash: digest(&refresh),
            family: family.to_owned(),
            client_id: client.client_id.clone(),
            claims: claims.to_owned(),
            scope: scope.to_owned(),
            resource: self.cfg.audience.clone(),
            issued_at: at,
            expires_at: refresh_expires,
            used_at: None,
            revoked_at: None,
        };
        self.store.put_refresh(&rec).map_err(OAuthError::store)?;
        answer["refresh_token"] = Value::String(refresh);
        Ok(answer)
    }

    /// RFC 7523 with an identity assertion authorization grant (ID-JAG): the enterprise
    /// IdP vouched for this user and this client (`verified`, checked by the
    /// authenticator). The grant must name the authenticated client and, if it names one,
    /// this gateway as resource; it is honoured once (its `jti`, across replicas through the
    /// store); a cut-off principal gets nothing. An access token only: for more, the client
    /// asks the IdP for a new grant, so the IdP keeps deciding.
    pub fn assertion_grant(
        &self,
        form: &Params,
        basic: Option<(String, String)>,
        verified: Result<(crate::Principal, serde_json::Map<String, Value>), crate::AuthError>,
        cut_off: &CutOff<'_>,
    ) -> (Result<Value, OAuthError>, Option<FacadeEvent>) {
        let client = match self.client_auth(form, basic) {
            Ok(c) => c,
            Err(e) => return (Err(e), None),
        };
        let refuse = |why: &str, claims: &str| {
            let event = self.event(
                "auth.assertion_refused",
                claims,
                &client.client_id,
                false,
                why,
            );
            (
                Err(OAuthError::bad("invalid_grant", why.to_owned())),
                Some(event),
            )
        };
        let (principal, grant) = match verified {
            Ok(v) => v,
            Err(e) => return refuse(&format!("the assertion is not valid: {e}"), "{}"),
        };
        let claims = super::principal_claims(&principal).to_string();
        if grant.get("client_id").and_then(Value::as_str) != Some(client.client_id.as_str()) {
            return refuse("the assertion was issued to another client", &claims);
        }
        if let Some(r) = grant.get("resource")
            && !crate::issuer::strings(Some(r))
                .iter()
                .all(|r| self.cfg.resources.iter().any(|x| x == r))
        {
            return refuse("the assertion is for another resource", &claims);
        }
        // Once only: the grant's issuer and jti, kept an hour past the grant's expiry (longer
        // than any clock skew its issuer is allowed), so a replay is refused while the grant
        // could still verify.
        let iss = grant.get("iss").and_then(Value::as_str).unwrap_or_default();
        let jti = grant.get("jti").and_then(Value::as_str).unwrap_or_default();
        let exp = grant.get("exp").and_then(Value::as_u64).unwrap_or_default();
        let key = digest(&format!("id-jag\n{iss}\n{jti}"));
        let marker = gatehouse_store::CodeGrant {
            client_id: client.client_id.clone(),
            redirect_uri: String::new(),
            code_challenge: String::new(),
            claims: String::new(),
            scope: String::new(),
            resource: String::new(),
            family: String::new(),
            created_at: exp.saturating_add(3600),
        };
        if self.store.put_code(&key, &marker).is_err() {
            return match self.store.redeem_code(&key, 0, now()) {
                Ok(Redeem::Fresh(_) | Redeem::Replayed(_)) => {
                    let (e, event) = refuse("the assertion was already used", &claims);
                    tracing::warn!(target: "gatehouse::audit", client_id = %client.client_id, "ID-JAG replayed");
                    (e, event)
                }
                _ => (
                    Err(OAuthError::new(
                        503,
                        "temporarily_unavailable",
                        "try again later",
                    )),
                    None,
                ),
            };
        }
        match cut_off(&principal.id) {
            Ok(false) => {}
            Ok(true) => return refuse("the principal was deprovisioned or revoked", &claims),
            Err(e) => {
                tracing::error!(error = %e, "directory unavailable at the token endpoint");
                return (
                    Err(OAuthError::new(
                        503,
                        "temporarily_unavailable",
                        "try again later",
                    )),
                    None,
                );
            }
        }
        // The scope the grant carries, narrowed to what was asked and what is offered.
        let granted = crate::issuer::strings(grant.get("scope"));
        let asked: Option<Vec<&str>> = form.get("scope").map(|s| s.split_whitespace().collect());
        let scope: Vec<&str> = granted
            .iter()
            .map(String::as_str)
            .filter(|s| self.cfg.scopes.iter().any(|x| x == s))
            .filter(|s| asked.as_ref().is_none_or(|a| a.contains(s)))
            .collect();
        let scope = scope.join(" ");
        let family = random_token();
        match self.issue(&client, &claims, &scope, &family, None) {
            Ok(v) => {
                let event = self.event(
                    "auth.token_issued",
                    &claims,
                    &client.client_id,
                    true,
                    "identity assertion authorization grant",
                );
                (Ok(v), Some(event))
            }
            Err(e) => (Err(e), None),
        }
    }

    /// RFC 7009: a refresh token's family is revoked (access tokens included). Unknown
    /// tokens are not an error.
    pub fn revoke(
        &self,
        form: &Params,
        basic: Option<(String, String)>,
    ) -> (Result<(), OAuthError>, Option<FacadeEvent>) {
        let client = match self.client_auth(form, basic) {
            Ok(c) => c,
            Err(e) => return (Err(e), None),
        };
        let Some(token) = form.get("token") else {
            return (
                Err(OAuthError::bad("invalid_request", "token is required")),
                None,
            );
        };
        let at = now();
        let rec = match self.store.redeem_refresh(&digest(token), at) {
            Ok(Redeem::Fresh(r) | Redeem::Replayed(r)) if r.client_id == client.client_id => r,
            Ok(_) => return (Ok(()), None),
            Err(e) => return (Err(OAuthError::store(e)), None),
        };
        if let Err(e) = self.store.revoke_family(&rec.family, at) {
            return (Err(OAuthError::store(e)), None);
        }
        self.own.revoked(&rec.family);
        let event = self.event(
            "auth.token_revoked",
            &rec.claims,
            &client.client_id,
            true,
            "the client revoked its tokens",
        );
        (Ok(()), Some(event))
    }

    /// Drops expired logins, codes and refresh tokens.
    pub fn purge(&self) {
        let at = now();
        if let Err(e) = self.store.purge(
            at.saturating_sub(LOGIN_TTL),
            at.saturating_sub(CODE_TTL),
            at,
        ) {
            tracing::warn!(error = %e, "oauth store purge");
        }
    }
}
