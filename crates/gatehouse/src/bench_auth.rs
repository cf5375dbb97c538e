//! The authentication part of `gatehouse bench`: a local ES256 issuer (key made here, JWKS
//! served on loopback) whose tokens the real [`Authenticator`] verifies — first
//! verifications (signature checked) and repeated ones (answered from the verified cache).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_auth::{Algorithm, Authenticator, ClaimMap, IssuerConfig};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

/// A signing key and the URL of its issuer, whose discovery and JWKS this process serves.
pub(crate) struct LocalIssuer {
    pub(crate) issuer: String,
    key: EncodingKey,
}

impl LocalIssuer {
    pub(crate) async fn start() -> Result<LocalIssuer> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("key generation"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| anyhow::anyhow!("key export"))?;
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..65]),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "bench", "alg": "ES256", "use": "sig"}]}).to_string();
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}).to_string();
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || std::future::ready(jwks.clone())),
            )
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || std::future::ready(discovery.clone())),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(LocalIssuer {
            issuer,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        })
    }

    pub(crate) fn token(&self, audience: &str, n: u64) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("bench".into());
        let claims = json!({"iss": self.issuer, "sub": format!("bench-user-{n}"), "aud": audience, "iat": now, "exp": now + 3600,
            "scope": "mcp:tools", "jti": n, "roles": ["r1", "r10", "r20"]});
        encode(&header, &claims, &self.key).context("signing")
    }

    pub(crate) fn config(&self, audience: &str) -> IssuerConfig {
        IssuerConfig {
            name: "bench".into(),
            issuer: self.issuer.clone(),
            audiences: vec![audience.to_owned()],
            algorithms: vec![Algorithm::ES256],
            jwks_uri: None,
            introspection: None,
            required_scopes: vec!["mcp:tools".into()],
            tenants: None,
            claims: ClaimMap::default(),
            skew: Duration::from_secs(60),
            jwks_min_refetch: Duration::from_secs(30),
        }
    }
}

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// Prints p50 of first and repeated verifications.
pub(crate) async fn run(n: usize) -> Result<()> {
    let issuer = LocalIssuer::start().await?;
    let aud = "https://bench.invalid/mcp";
    let auth = Authenticator::new(vec![issuer.config(aud)]);
    // Warm discovery and JWKS.
    auth.authenticate(&issuer.token(aud, u64::MAX)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tokens: Vec<String> = (0..n as u64)
        .map(|i| issuer.token(aud, i))
        .collect::<Result<_>>()?;
    let mut first = Vec::with_capacity(n);
    for t in &tokens {
        let start = Instant::now();
        auth.authenticate(t)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        first.push(start.elapsed());
    }
    let mut again = Vec::with_capacity(n);
    for t in &tokens {
        let start = Instant::now();
        auth.authenticate(t)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        again.push(start.elapsed());
    }
    println!("authentication (ES256 JWT, warm JWKS, {n} tokens)");
    println!("  first verification    p50 {:>8.1} µs", p50(first));
    println!("  already verified      p50 {:>8.1} µs", p50(again));
    Ok(())
}
