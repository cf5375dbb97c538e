//! Client ID Metadata Documents: a client whose `client_id` is an HTTPS URL is described by
//! the JSON document at that URL, which the façade fetches instead of asking the client to
//! register. Fetching a URL a stranger names is a server-side request forgery risk, so the
//! fetch is fenced: HTTPS only, a host name or address checked before connecting and pinned
//! for the connection (no DNS rebinding between check and use), no private, loopback,
//! link-local or metadata addresses unless the operator names the host, no redirects, a
//! 64 KiB cap, short timeouts. The document must name itself (`client_id` equal to its URL),
//! list redirect URIs the façade's allowlist admits, and be a public client (PKCE, no
//! secret). Documents are kept in memory for a while; nothing is written to the store.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use gatehouse_store::OAuthClient;
use serde_json::Value;

use super::{AuthorizationServer, MAX_PARAM, MAX_REDIRECT_URIS, redirect_allowed};
use crate::wire::{now, read_limited};

/// Largest document read.
const MAX_DOCUMENT: usize = 64 * 1024;
/// Documents kept at once; the oldest go first beyond it.
const MAX_CACHED: usize = 1024;

/// How the façade accepts metadata-document client ids, validated from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadataConfig {
    /// Only documents on these hosts; empty: any host with a public address.
    pub hosts: Vec<String>,
    /// Hosts whose documents may be on private or loopback addresses.
    pub private_hosts: Vec<String>,
    /// Extra CA certificates (PEM) trusted for fetching documents.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a fetched document is trusted.
    pub cache: Duration,
}

/// Fetched documents by URL, with when they were fetched.
#[derive(Debug, Default)]
pub(crate) struct DocumentCache {
    entries: HashMap<String, (OAuthClient, Instant)>,
}

/// Whether `id` is a URL-shaped client id (a metadata document), as opposed to one the
/// façade issued at registration (random, base64url).
pub(crate) fn is_document_id(id: &str) -> bool {
    id.starts_with("https://")
}

/// Checks the URL's form (draft-ietf-oauth-client-id-metadata-document §3): HTTPS, a host,
/// a path other than `/`, no fragment, no credentials, no dot segments.
fn checked_url(id: &str) -> Result<reqwest::Url, String> {
    if id.len() > MAX_PARAM {
        return Err("the client id is too long".into());
    }
    let u = reqwest::Url::parse(id).map_err(|_| "the client id is not a URL".to_owned())?;
    if u.scheme() != "https" {
        return Err("a metadata document must be served over https".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the client id names no host".into());
    }
    if u.path() == "/" || u.path().is_empty() {
        return Err("the client id must have a path".into());
    }
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err("the client id has a fragment or credentials".into());
    }
    // The parser removes dot segments: a URL it rewrote is not the one the client named.
    let raw_path = id
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    if raw_path.split(['/', '?']).any(|s| s == "." || s == "..") || u.as_str() != id {
        return Err("the client id is not in its normal form".into());
    }
    Ok(u)
}

impl ClientMetadataConfig {
    /// The address to fetch `u` from: the host allowed, every address it resolves to
    /// allowed, the first one pinned.
    async fn address(&self, u: &reqwest::Url) -> Result<SocketAddr, String> {
        let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(&bare)) {
            return Err(format!("documents from {bare} are not accepted here"));
        }
        let private_ok = self
            .private_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&bare));
        let port = u.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::lookup_host((bare.as_str(), port)),
            )
            .await
            .map_err(|_| format!("{bare} did not resolve in time"))?
            .map_err(|_| format!("{bare} does not resolve"))?
            .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{bare} does not resolve"));
        }
        // Every address must pass: a name with one public and one internal address could
        // be answered by either.
        if !private_ok
            && let Some(a) = addrs
                .iter()
                .find(|a| gatehouse_detect::inject::internal_address(a.ip()))
        {
            return Err(format!(
                "{bare} resolves to an internal address ({})",
                a.ip()
            ));
        }
        Ok(addrs[0])
    }
}

impl AuthorizationServer {
    /// The client a metadata-document client id describes, fetched (or remembered).
    pub(crate) async fn document_client(&self, id: &str) -> Result<OAuthClient, String> {
        let Some(cfg) = &self.cfg.client_metadata else {
            return Err("this server does not accept metadata-document client ids".into());
        };
        if let Some((c, at)) = self
            .documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entries
            .get(id)
            && at.elapsed() < cfg.cache
        {
            return Ok(c.clone());
        }
        let u = checked_url(id)?;
        let addr = cfg.address(&u).await?;
        let host = u.host_str().unwrap_or_default().to_owned();
        let mut b = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .resolve(host.trim_start_matches('[').trim_end_matches(']'), addr);
        if let Some(pem) = &cfg.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
                b = b.add_root_certificate(cert);
            }
        }
        let http = b.build().map_err(|e| e.to_string())?;
        let resp = http
            .get(u.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching the document failed: {}", e.without_url()))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!(
                "the document answered HTTP {}",
                resp.status().as_u16()
            ));
        }
        let body = read_limited(resp, MAX_DOCUMENT)
            .await
            .map_err(|e| format!("the document: {e}"))?;
        let doc: Value =
            serde_json::from_slice(&body).map_err(|_| "the document is not JSON".to_owned())?;
        let client = self.client_from_document(id, &doc)?;
        let mut cache = self
            .documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.entries.len() >= MAX_CACHED {
            let ttl = cfg.cache;
            cache.entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.entries.len() >= MAX_CACHED {
                cache.entries.clear();
            }
        }
        cache
            .entries
            .insert(id.to_owned(), (client.clone(), Instant::now()));
        Ok(client)
    }

    /// Checks a fetched document and turns it into the client it describes.
    pub(crate) fn client_from_document(
        &self,
        id: &str,
        doc: &Value,
    ) -> Result<OAuthClient, String> {
        let o = doc.as_object().ok_or("the document is not a JSON object")?;
        if o.get("client_id").and_then(Value::as_str) != Some(id) {
            return Err("the document's client_id is not its own URL".into());
        }
        for secret in ["client_secret", "client_secret_expires_at"] {
            if o.contains_key(secret) {
                return Err(format!("a metadata document must not carry {secret}"));
            }
        }
        match o.get("token_endpoint_auth_method").and_then(Value::as_str) {
            None | Some("none") => {}
            Some(m) => return Err(format!("token_endpoint_auth_method {m} is not supported")),
        }
        let uris: Vec<String> = o
            .get("redirect_uris")
            .and_then(Value::as_array)
            .ok_or("the document lists no redirect_uris")?
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or("redirect_uris must be strings")?;
        if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
            return Err(format!("1 to {MAX_REDIRECT_URIS} redirect_uris"));
        }
        if let Some(bad) = uris
            .iter()
            .find(|u| !redirect_allowed(u, &self.cfg.redirect_uris))
        {
            return Err(format!("redirect URI {bad} is not allowed here"));
        }
        Ok(OAuthClient {
            client_id: id.to_owned(),
            name: o
                .get("client_name")
                .and_then(Value::as_str)
                .map(|n| n.chars().take(128).collect()),
            redirect_uris: uris,
            auth_method: "none".into(),
            secret_hash: None,
            created_at: now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_in_normal_form_with_a_path_are_client_ids() {
        assert!(checked_url("https://app.example.com/oauth/client.json").is_ok());
        for bad in [
            "http://app.example.com/client.json",
            "https://app.example.com/",
            "https://app.example.com",
            "https://user:pw@app.example.com/c.json",
            "https://app.example.com/c.json#x",
            "https://app.example.com/a/../c.json",
            "https://app.example.com/./c.json",
            "https://APP.example.com/c.json",
            "not a url",
        ] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn internal_addresses_are_refused_unless_the_host_is_named() {
        let cfg = ClientMetadataConfig {
            hosts: vec![],
            private_hosts: vec!["localhost".into()],
            ca_pem: None,
            cache: Duration::from_secs(60),
        };
        for bad in [
            "https://127.0.0.1/c.json",
            "https://10.1.2.3/c.json",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/c.json",
            "https://[::ffff:127.0.0.1]/c.json",
        ] {
            let u = reqwest::Url::parse(bad).unwrap();
            assert!(cfg.address(&u).await.is_err(), "{bad}");
        }
        let u = reqwest::Url::parse("https://localhost:8443/c.json").unwrap();
        assert_eq!(cfg.address(&u).await.unwrap().port(), 8443);
        let only = ClientMetadataConfig {
            hosts: vec!["clients.example.com".into()],
            ..cfg
        };
        let u = reqwest::Url::parse("https://localhost/c.json").unwrap();
        assert!(only.address(&u).await.is_err());
    }
}
