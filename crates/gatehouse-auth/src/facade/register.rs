//! Dynamic client registration (RFC 7591) and the redirect-URI allowlist it is checked
//! against: which clients may register, and where a sign-in may be sent back to.

use super::*;

fn is_loopback(host: Option<&str>) -> bool {
    matches!(host, Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// Whether a redirect URI a client registers is allowed by one allowlist entry.
pub fn redirect_allowed(uri: &str, allow: &[String]) -> bool {
    let Ok(u) = reqwest::Url::parse(uri) else {
        return false;
    };
    if u.fragment().is_some() || u.username() != "" || u.password().is_some() {
        return false;
    }
    // https anywhere; http only to loopback; a private-use scheme (RFC 8252 §7.1) has a dot
    // or is allowlisted by name.
    let scheme_ok = match u.scheme() {
        "https" => true,
        "http" => is_loopback(u.host_str()),
        "javascript" | "data" | "file" | "vbscript" | "blob" => false,
        _ => true,
    };
    if !scheme_ok {
        return false;
    }
    allow.iter().any(|entry| {
        // Prefixes are matched on the normalised URI, so `/oauth/../admin` cannot pass
        // as `/oauth/…`.
        if let Some(prefix) = entry.strip_suffix('*') {
            return uri == u.as_str() && u.as_str().starts_with(prefix);
        }
        if entry == uri {
            return true;
        }
        // A loopback entry without a port admits any port.
        match reqwest::Url::parse(entry) {
            Ok(e) if is_loopback(e.host_str()) && e.port().is_none() => {
                e.scheme() == u.scheme()
                    && e.host_str() == u.host_str()
                    && e.path() == u.path()
                    && e.query() == u.query()
            }
            _ => false,
        }
    })
}

/// Checks an allowlist entry at config time: `*` only at the end, after a path, so a prefix
/// can never stretch a host name (`https://app.example.com*` would admit `…com.evil.net`).
pub fn valid_allow_entry(entry: &str) -> Result<(), String> {
    let base = entry.strip_suffix('*').unwrap_or(entry);
    if base.contains('*') {
        return Err("`*` may only end an entry".into());
    }
    let u = reqwest::Url::parse(base).map_err(|e| format!("`{entry}`: {e}"))?;
    if entry.ends_with('*') {
        let after_authority = base.split_once("://").map(|(_, rest)| rest).unwrap_or(base);
        if !after_authority.contains('/') || u.cannot_be_a_base() && !base.ends_with(':') {
            return Err(format!(
                "`{entry}`: a prefix must reach past the host into the path"
            ));
        }
    }
    Ok(())
}

impl AuthorizationServer {
    /// RFC 7591 registration. Returns the registration response (HTTP 201).
    pub fn register(&self, body: &Value) -> Result<(Value, FacadeEvent), OAuthError> {
        let meta = |m: &str| OAuthError::bad("invalid_client_metadata", m);
        let o = body
            .as_object()
            .ok_or_else(|| meta("the body is not a JSON object"))?;
        let uris: Vec<String> = o
            .get("redirect_uris")
            .and_then(Value::as_array)
            .ok_or_else(|| OAuthError::bad("invalid_redirect_uri", "redirect_uris is required"))?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| OAuthError::bad("invalid_redirect_uri", "redirect_uris are strings"))?;
        if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::bad(
                "invalid_redirect_uri",
                format!("1 to {MAX_REDIRECT_URIS} redirect_uris"),
            ));
        }
        for u in &uris {
            if u.len() > MAX_PARAM || !redirect_allowed(u, &self.cfg.redirect_uris) {
                return Err(OAuthError::bad(
                    "invalid_redirect_uri",
                    "a redirect URI is not on this gateway's allowlist",
                ));
            }
        }
        let list = |k: &str,
                    default: &[&str],
                    allowed: &[&str]|
         -> Result<Vec<String>, OAuthError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
                Some(Value::Array(a)) => {
                    let v: Vec<String> = a
                        .iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| meta("lists hold strings"))?;
                    match v.iter().find(|x| !allowed.contains(&x.as_str())) {
                        Some(bad) => Err(meta(&format!("{k} `{bad}` is not supported"))),
                        None => Ok(v),
                    }
                }
                Some(_) => Err(meta("lists hold strings")),
            }
        };
        let grant_types = list(
            "grant_types",
            &["authorization_code"],
            &["authorization_code", "refresh_token"],
        )?;
        let response_types = list("response_types", &["code"], &["code"])?;
        let auth_method = match o.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => "client_secret_basic",
            Some(Value::String(s)) => match s.as_str() {
                "none" => "none",
                "client_secret_basic" => "client_secret_basic",
                "client_secret_post" => "client_secret_post",
                _ => return Err(meta("token_endpoint_auth_method is not supported")),
            },
            Some(_) => return Err(meta("token_endpoint_auth_method is a string")),
        };
        let name = o.get("client_name").and_then(Value::as_str).map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        });
        let client_id = format!("ghc_{}", &random_token()[..24]);
        let secret = (auth_method != "none").then(random_token);
        let at = now();
        let client = OAuthClient {
            client_id: client_id.clone(),
            name: name.clone(),
            redirect_uris: uris.clone(),
            auth_method: auth_method.to_owned(),
            secret_hash: secret.as_deref().map(digest),
            created_at: at,
        };
        if !self
            .store
            .register(&client, self.cfg.max_clients)
            .map_err(OAuthError::store)?
        {
            return Err(OAuthError::bad(
                "invalid_client_metadata",
                "this gateway registers no more clients",
            ));
        }
        let mut out = json!({
            "client_id": client_id,
            "client_id_issued_at": at,
            "redirect_uris": uris,
            "grant_types": grant_types,
            "response_types": response_types,
            "token_endpoint_auth_method": auth_method,
        });
        if let Some(n) = &name {
            out["client_name"] = json!(n);
        }
        if let Some(s) = secret {
            out["client_secret"] = json!(s);
            out["client_secret_expires_at"] = json!(0);
        }
        let event = FacadeEvent {
            what: "auth.client_registered",
            principal: String::new(),
            tenant: None,
            client_id,
            ok: true,
            detail: format!(
                "client {:?} registered for {}",
                name.unwrap_or_default(),
                uris.join(" ")
            ),
        };
        Ok((out, event))
    }
}
