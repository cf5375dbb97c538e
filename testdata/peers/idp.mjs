// A real OpenID provider (npm oidc-provider) for the identity tests.
// usage: node idp.mjs PORT KEY_TAG
// Issues access tokens for the resource in $GATEWAY_RESOURCE through client credentials:
// JWTs signed RS256 (svc-reporting, svc-other-tenant) or ES256 (svc-es256), and opaque
// tokens for introspection (svc-opaque); svc-short's tokens live 4 s. KEY_TAG names the signing keys' kids, so starting
// it again with another tag rotates the keys. Users log in through the development
// login form (any name) for authorization code + PKCE.
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const [port, tag = "a"] = process.argv.slice(2);
const resource = process.env.GATEWAY_RESOURCE;
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
Object.assign(rsa, { kid: `rsa-${tag}`, alg: "RS256", use: "sig" });
Object.assign(ec, { kid: `ec-${tag}`, alg: "ES256", use: "sig" });

const service = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ["client_credentials"],
  redirect_uris: [],
  response_types: [],
  scope: "mcp:tools mcp:admin",
  token_endpoint_auth_method: "client_secret_basic",
});

// Claims a directory would add: tenant and groups per service identity.
const directory = {
  "svc-reporting": { tid: "acme", groups: ["analyst"] },
  "svc-es256": { tid: "acme", groups: ["engineer"] },
  "svc-opaque": { tid: "acme", groups: ["analyst"] },
  "svc-other-tenant": { tid: "globex", groups: ["analyst"] },
  "svc-short": { tid: "acme", groups: ["analyst"] },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    service("svc-reporting", "reporting-secret"),
    service("svc-es256", "es256-secret"),
    service("svc-opaque", "opaque-secret"),
    service("svc-other-tenant", "other-tenant-secret"),
    service("svc-short", "short-secret"),
    // The gateway's own client, for tokens to upstreams.
    service("gatehouse-upstream", "upstream-secret"),
    { client_id: "gatehouse", client_secret: "gatehouse-secret", grant_types: [], redirect_uris: [], response_types: [] },
  ],
  jwks: { keys: [rsa, ec] },
  scopes: ["mcp:tools", "mcp:admin"],
  features: {
    // Login and consent pages a test can answer over HTTP, and open dynamic client
    // registration, so SDK clients can run authorization code + PKCE without a browser.
    devInteractions: { enabled: true },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, res, client) => ({
        scope: "mcp:tools mcp:admin",
        audience: res,
        accessTokenTTL: client.clientId === "svc-short" ? 4 : 300,
        accessTokenFormat: client.clientId === "svc-opaque" ? "opaque" : "jwt",
        jwt: { sign: { alg: client.clientId === "svc-es256" ? "ES256" : "RS256" } },
      }),
    },
  },
  // Service clients by id; users who logged in belong to tenant acme.
  extraTokenClaims: (_ctx, token) =>
    directory[token.clientId] ?? (token.accountId ? { tid: "acme", groups: ["analyst"] } : undefined),
});
provider.listen(Number(port), "127.0.0.1", () => console.error(`idp listening on ${port}`));
