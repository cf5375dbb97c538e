// A real OpenID provider (npm oidc-provider) for the identity tests.
// usage: node idp.mjs PORT KEY_TAG
// Issues access tokens for the resource in $GATEWAY_RESOURCE through client credentials:
// JWTs signed RS256 (svc-reporting, svc-other-tenant) or ES256 (svc-es256), and opaque
// tokens for introspection (svc-opaque); svc-short's tokens live 4 s. KEY_TAG names the signing keys' kids, so starting
// it again with another tag rotates the keys. Users log in through the development
// login form (any name) for authorization code + PKCE. The gateway's client
// (gatehouse-upstream) may also exchange a user's JWT for an upstream token (RFC 8693).
// Enterprise-managed authorization: the agent client (mcp-agent) exchanges a user's ID
// token for an identity assertion authorization grant (ID-JAG, draft-ietf-oauth-identity-
// assertion-authz-grant) addressed to another authorization server; the client's id there
// comes from the JSON map in the file $ID_JAG_CLIENT_MAP ({"mcp-agent": "…"}), read per
// request, as an IdP admin would configure it.
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import Provider, { errors } from "oidc-provider";
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify } from "jose";

const [port, tag = "a"] = process.argv.slice(2);
const resource = process.env.GATEWAY_RESOURCE;
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
Object.assign(rsa, { kid: `rsa-${tag}`, alg: "RS256", use: "sig" });
Object.assign(ec, { kid: `ec-${tag}`, alg: "ES256", use: "sig" });

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token";
const ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag";
const publicKey = ({ d, p, q, dp, dq, qi, ...pub }) => pub;
const ownKeys = createLocalJWKSet({ keys: [publicKey(rsa), publicKey(ec)] });

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
    // The gateway's own client, for tokens to upstreams: its own (client credentials) and,
    // by RFC 8693 token exchange, tokens for an upstream that carry the user.
    { ...service("gatehouse-upstream", "upstream-secret"), grant_types: ["client_credentials", TOKEN_EXCHANGE] },
    // The gateway's authorization-server façade signs users in here (authorization code
    // with PKCE, its callback on the gateway's origin); the same client introspects.
    {
      client_id: "gatehouse",
      client_secret: "gatehouse-secret",
      grant_types: ["authorization_code"],
      redirect_uris: [`${new URL(resource).origin}/oauth/callback`],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
    // An enterprise's agent: users sign in to it (an ID token), and it asks for ID-JAGs.
    {
      client_id: "mcp-agent",
      client_secret: "agent-secret",
      grant_types: ["authorization_code", TOKEN_EXCHANGE],
      redirect_uris: ["http://127.0.0.1:9997/callback"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
    // The gateway's client for an upstream that acts with each user's own account: the
    // user consents once, the gateway keeps (and refreshes) the tokens. Access tokens live
    // 35 s so a test sees a refresh.
    {
      client_id: "gatehouse-saas",
      client_secret: "saas-secret",
      grant_types: ["authorization_code", "refresh_token"],
      redirect_uris: [`${new URL(resource).origin}/oauth/upstream/callback`],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
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
        accessTokenTTL: client.clientId === "svc-short" ? 4 : client.clientId === "gatehouse-saas" ? 35 : 300,
        accessTokenFormat: client.clientId === "svc-opaque" ? "opaque" : "jwt",
        jwt: { sign: { alg: client.clientId === "svc-es256" ? "ES256" : "RS256" } },
      }),
    },
  },
  // Refresh tokens for clients allowed the grant (without asking for offline_access).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  // Service clients by id; users who logged in belong to tenant acme.
  extraTokenClaims: (_ctx, token) =>
    token.gty === "token-exchange"
      ? { tid: token.extra?.tid, act: { sub: token.clientId } }
      : directory[token.clientId] ?? (token.accountId ? { tid: "acme", groups: ["analyst"] } : undefined),
});

// RFC 8693: a JWT this provider issued for the gateway is exchanged, by the gateway's client
// only, for a short token to one upstream (`resource`) naming the same subject, with the
// gateway as the actor (`act`).
provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const { params, client } = ctx.oidc;
    if (params.requested_token_type === ID_JAG_TYPE) {
      return idJag(ctx);
    }
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest("unsupported subject_token_type");
    }
    if (!params.resource) throw new errors.InvalidTarget("resource is required");
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(params.subject_token, ownKeys, {
        issuer: provider.issuer,
        audience: resource,
      }));
    } catch {
      throw new errors.InvalidGrant("subject_token is not valid");
    }
    const token = new provider.AccessToken({
      accountId: claims.sub,
      client,
      gty: "token-exchange",
      grantId: `exchange-${claims.jti ?? "x"}`,
      scope: "mcp:tools",
    });
    token.extra = { tid: claims.tid };
    token.resourceServer = new provider.ResourceServer(params.resource, {
      audience: params.resource,
      scope: "mcp:tools",
      accessTokenTTL: 120,
      accessTokenFormat: "jwt",
      jwt: { sign: { alg: "RS256" } },
    });
    const value = await token.save();
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: token.expiration,
      scope: token.scope,
    };
  },
  ["subject_token", "subject_token_type", "resource", "audience", "scope", "requested_token_type"],
);
// An ID-JAG for the user of a valid ID token this provider issued to the requesting
// client, addressed to `audience` (another authorization server), short-lived, naming the
// client's id there. `audience` "wrong" in tests is simply passed through: the receiving
// server must refuse what is not addressed to it.
async function idJag(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ID_TOKEN_TYPE) throw new errors.InvalidRequest("subject_token_type must be id_token");
  if (!params.audience) throw new errors.InvalidRequest("audience is required");
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(params.subject_token, ownKeys, { issuer: provider.issuer, audience: client.clientId }));
  } catch {
    throw new errors.InvalidGrant("subject_token is not a valid ID token for this client");
  }
  const map = process.env.ID_JAG_CLIENT_MAP ? JSON.parse(readFileSync(process.env.ID_JAG_CLIENT_MAP, "utf8")) : {};
  const clientIdThere = map[client.clientId];
  if (!clientIdThere) throw new errors.InvalidClient("this client may not reach that server");
  const now = Math.floor(Date.now() / 1000);
  const jag = await new SignJWT({
    client_id: clientIdThere,
    jti: randomUUID(),
    scope: "mcp:tools",
    resource: params.resource,
    tid: "acme",
    groups: ["analyst"],
  })
    .setProtectedHeader({ alg: "RS256", kid: rsa.kid, typ: "oauth-id-jag+jwt" })
    .setIssuer(provider.issuer)
    .setSubject(claims.sub)
    .setAudience(params.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .sign(await importJWK(rsa, "RS256"));
  ctx.body = { access_token: jag, issued_token_type: ID_JAG_TYPE, token_type: "N_A", expires_in: 120 };
}

provider.listen(Number(port), "127.0.0.1", () => console.error(`idp listening on ${port}`));
