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

/// Each token verified once (signature and claims checked), then each again (answered
/// from the verified-token cache): the time of every call, in order.
async fn verify_twice(
    auth: &Authenticator,
    tokens: &[String],
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut rounds = [
        Vec::with_capacity(tokens.len()),
        Vec::with_capacity(tokens.len()),
    ];
    for round in &mut rounds {
        for t in tokens {
            let start = Instant::now();
            auth.authenticate(t)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            round.push(start.elapsed());
        }
    }
    let [first, again] = rounds;
    Ok((first, again))
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
    let (first, again) = verify_twice(&auth, &tokens).await?;
    println!("authentication (ES256 JWT, warm JWKS, {n} tokens)");
    println!("  first verification    p50 {:>8.1} µs", p50(first));
    println!("  already verified      p50 {:>8.1} µs", p50(again));
    gateway_tokens(n).await
}

fn hex_sha256(s: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        s.as_bytes(),
    ))
}

/// Tokens the gateway's own authorization server issues: minted by the real token endpoint
/// from codes placed in a scratch store, then verified (signature, claims, the sign-in not
/// revoked) and verified again.
async fn gateway_tokens(n: usize) -> Result<()> {
    use gatehouse_auth::{AuthorizationServer, FacadeConfig, LoginConfig, SecretRef};
    use gatehouse_store::{CodeGrant, OAuthStore, SqliteOAuth};
    use std::sync::Arc;

    let dir = std::env::temp_dir().join(format!("gatehouse-bench-oauth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).context("scratch directory")?;
    let aud = "https://bench.invalid/mcp";
    let store: Arc<dyn OAuthStore> =
        Arc::new(SqliteOAuth::open(&dir.join("oauth.db")).context("scratch store")?);
    let cfg = FacadeConfig {
        issuer: "https://bench.invalid".into(),
        audience: aud.into(),
        resources: vec![aud.into()],
        login: LoginConfig {
            issuer: "https://idp.invalid".into(),
            client_id: "unused".into(),
            client_secret: SecretRef::Env("GATEHOUSE_BENCH_UNUSED".into()),
            scopes: Vec::new(),
            resource: aud.into(),
            authorization_endpoint: None,
            token_endpoint: None,
        },
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        max_clients: 10,
        scopes: Vec::new(),
        signing_key: None,
        token_key: None,
        upstreams: Vec::new(),
        postgres: None,
        client_metadata: None,
        registrations_per_hour: 0,
        id_jag_issuers: Vec::new(),
    };
    let server = AuthorizationServer::new(cfg, &dir.join("key.pem"), store.clone(), None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = Authenticator::new(Vec::new()).with_own_tokens(&server);
    let (client, _) = server
        .register(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .map_err(|e| anyhow::anyhow!("{}", e.description))?;
    let client_id = client["client_id"].as_str().unwrap_or_default().to_owned();
    let verifier = "bench-verifier-".repeat(4);
    let challenge = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let never_cut_off = |_: &str| -> Result<bool, String> { Ok(false) };
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let code = format!("bench-code-{i}");
        let claims = json!({"sub": format!("bench/user-{i}"), "kind": "user", "tenant": "acme",
            "roles": ["analyst"], "groups": [], "amr": [], "attrs": {}, "idp": "https://idp.invalid"});
        store
            .put_code(
                &hex_sha256(&code),
                &CodeGrant {
                    client_id: client_id.clone(),
                    redirect_uri: "http://127.0.0.1/cb".into(),
                    code_challenge: challenge.clone(),
                    claims: claims.to_string(),
                    scope: String::new(),
                    resource: aud.into(),
                    family: format!("bench-family-{i}"),
                    created_at: now,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (issued, _) = server.token(&form, None, &never_cut_off);
        let issued = issued.map_err(|e| anyhow::anyhow!("{}", e.description))?;
        tokens.push(
            issued["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let (first, again) = verify_twice(&auth, &tokens).await?;
    println!(
        "authentication (gateway-issued ES256 tokens, sign-in revocation checked, {n} tokens)"
    );
    println!("  first verification    p50 {:>8.1} µs", p50(first));
    println!("  already verified      p50 {:>8.1} µs", p50(again));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
