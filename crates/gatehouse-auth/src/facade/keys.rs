//! The gateway's signing key (P-256, created on first start) and the checks of the tokens it
//! signs: signature, issuer, audience, time, and the sign-in not revoked.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_store::OAuthStore;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

use super::{FAMILY_RECHECK, hex};
use crate::error::AuthError;
use crate::principal::{AuthMethod, Principal, PrincipalKind};
use crate::wire::sha256;

/// Longest access-token life (and a minute): a revoked sign-in is remembered this long.
const REVOKED_MEMORY: Duration = Duration::from_secs(3600 + 60);

/// The gateway's P-256 signing key.
pub(super) struct Signer {
    pair: EcdsaKeyPair,
    pub(super) kid: String,
    pub(super) decoding: DecodingKey,
    pub(super) jwk: Value,
}

impl Signer {
    pub(super) fn load_or_create(path: &Path) -> Result<Signer, String> {
        let der = match std::fs::read_to_string(path) {
            Ok(pem) => pem_decode(&pem)
                .ok_or_else(|| format!("{}: not a PKCS#8 PEM key", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| "cannot generate a signing key".to_owned())?;
                let der = doc.as_ref().to_vec();
                write_private(path, &pem_encode(&der))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "created the authorization server's signing key");
                der
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| format!("{}: not a P-256 key", path.display()))?;
        let public = pair.public_key().as_ref();
        if public.len() != 65 {
            return Err("unexpected public key form".into());
        }
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&public[1..33]),
            URL_SAFE_NO_PAD.encode(&public[33..65]),
        );
        let kid = hex(&sha256(&format!("{x}.{y}"))[..8]);
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        Ok(Signer {
            pair,
            kid,
            decoding,
            jwk,
        })
    }

    pub(super) fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self
            .pair
            .sign(&rng, input.as_bytes())
            .map_err(|_| "signing failed".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

fn pem_decode(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(body.trim()).ok()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Verifies the gateway's own tokens; remembers revoked families.
pub(crate) struct OwnTokens {
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) decoding: DecodingKey,
    pub(super) kid: String,
    pub(super) store: Arc<dyn OAuthStore>,
    pub(super) families: Mutex<HashMap<String, (bool, Instant)>>,
}

impl crate::issuer::OwnTokenCheck for OwnTokens {
    fn issuer(&self) -> &str {
        &self.issuer
    }

    fn verify(&self, token: &str) -> Result<(Principal, u64, String), AuthError> {
        OwnTokens::verify(self, token)
    }

    fn family_live(&self, family: &str) -> bool {
        OwnTokens::family_live(self, family)
    }
}

impl OwnTokens {
    /// A family's refresh tokens were revoked (a replay, or `/revoke`): its access tokens
    /// stop working too. Known at once on this replica, within seconds on the others.
    pub(crate) fn family_live(&self, family: &str) -> bool {
        {
            let map = self.families.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((revoked, at)) = map.get(family) {
                if *revoked {
                    return false;
                }
                if at.elapsed() < FAMILY_RECHECK {
                    return true;
                }
            }
        }
        // Asked without the lock held (a PostgreSQL round trip must not stall every other
        // verification). Fails closed: a store that cannot answer does not vouch for the
        // family, and that is not remembered, so the next request asks again.
        let revoked = match self.store.family_revoked(family) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "sign-in revocation unknown: gateway token refused");
                return false;
            }
        };
        let mut map = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 50_000 {
            // A revoked sign-in is remembered as long as any of its access tokens can live.
            map.retain(|_, (r, at)| {
                at.elapsed() < if *r { REVOKED_MEMORY } else { FAMILY_RECHECK }
            });
        }
        map.insert(family.to_owned(), (revoked, Instant::now()));
        !revoked
    }

    pub(super) fn revoked(&self, family: &str) {
        self.families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(family.to_owned(), (true, Instant::now()));
    }

    /// Verifies a gateway token: signature (ES256, our key), `iss`, `aud`, time claims, and
    /// that its family was not revoked. Returns the principal, `exp` and the family.
    pub(crate) fn verify(&self, token: &str) -> Result<(Principal, u64, String), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AuthError::UnknownKey(header.kid));
        }
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = 5;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &v).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => AuthError::Expired,
                    K::ImmatureSignature => AuthError::NotYetValid,
                    K::InvalidAudience => AuthError::Audience,
                    K::InvalidIssuer => AuthError::UnknownIssuer,
                    other => AuthError::Invalid(format!("{other:?}")),
                }
            })?;
        let c = data.claims;
        let family = c
            .get("sid")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Invalid("no sid".into()))?
            .to_owned();
        if !self.family_live(&family) {
            return Err(AuthError::Inactive);
        }
        let exp = c.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok((principal_from_claims(&c)?, exp, family))
    }
}

/// The principal a gateway token carries (written by [`principal_claims`]).
fn principal_from_claims(c: &Map<String, Value>) -> Result<Principal, AuthError> {
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let p = c
        .get("gh")
        .and_then(Value::as_object)
        .ok_or_else(|| AuthError::Invalid("no principal".into()))?;
    let id = c
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::Invalid("no sub".into()))?;
    Ok(Principal {
        id: id.to_owned(),
        kind: if p.get("kind").and_then(Value::as_str) == Some("service") {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        },
        tenant: p.get("tenant").and_then(Value::as_str).map(str::to_owned),
        roles: strs(p.get("roles")),
        groups: strs(p.get("groups")),
        scopes: c
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        acr: p.get("acr").and_then(Value::as_str).map(str::to_owned),
        amr: strs(p.get("amr")),
        authenticated_at: p.get("auth_time").and_then(Value::as_u64),
        method: AuthMethod::Gateway {
            idp: p
                .get("idp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        attributes: p
            .get("attrs")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_else(BTreeMap::new),
        limits: None,
    })
}

/// The principal as gateway-token claims (inside `gh`).
pub(super) fn principal_claims(p: &Principal) -> Value {
    let idp = match &p.method {
        AuthMethod::Jwt { issuer } | AuthMethod::Introspection { issuer } => issuer.clone(),
        AuthMethod::Gateway { idp } => idp.clone(),
        _ => String::new(),
    };
    json!({
        "sub": p.id,
        "kind": if p.kind == PrincipalKind::Service { "service" } else { "user" },
        "tenant": p.tenant,
        "roles": p.roles,
        "groups": p.groups,
        "acr": p.acr,
        "amr": p.amr,
        "auth_time": p.authenticated_at,
        "attrs": p.attributes,
        "idp": idp,
        "scopes": p.scopes,
    })
}
