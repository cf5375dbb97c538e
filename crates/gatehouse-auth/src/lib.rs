//! Who is calling: OAuth 2.1 access tokens (JWTs verified through OIDC discovery and JWKS, or
//! opaque tokens through RFC 7662 introspection) turned into a [`Principal`]. Several issuers
//! at once; every failure is a typed [`AuthError`] that the edge maps to 401 or 403.

mod apikey;
mod error;
mod facade;
mod introspect;
mod issuer;
mod jwks;
mod principal;
mod secret_ref;
mod secrets;
mod upstream;
mod vault;
mod wire;

pub use apikey::{ApiKeys, KEY_PREFIX, KeySpec, NewKey};
pub use error::{AuthError, bearer};
pub use facade::consent::{UpstreamCredential, UpstreamOAuth};
pub use facade::{
    AuthorizationServer, ClientMetadataConfig, CutOff, FacadeConfig, FacadeEvent, JWT_BEARER,
    LoginConfig, OAuthError, Params, Step, redirect_allowed, valid_allow_entry,
};
pub use issuer::{
    Algorithm, Authenticator, ClaimMap, IssuerConfig, IssuerTrust, client_basic,
    client_basic_decode,
};
pub use principal::{AuthMethod, KeyLimits, Principal, PrincipalKind};
pub use secrets::LocalSecrets;
pub use upstream::{ClientCredentials, ClientCredentialsConfig, SecretRef};
pub use vault::{Vault, VaultSettings};
