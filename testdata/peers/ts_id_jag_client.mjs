// Enterprise-managed authorization with the TypeScript SDK: the user signs in to an agent
// at the enterprise IdP (an ID token), the agent exchanges it there for an identity
// assertion authorization grant (ID-JAG) addressed to the gateway's authorization server,
// and the SDK's non-interactive token flow presents it (RFC 7523 jwt-bearer) for a gateway
// token — no sign-in page at the gateway, no consent screen.
// usage: node ts_id_jag_client.mjs IDP_ISSUER MCP_URL CLIENT_ID MODE [AUDIENCE]
// MODE "call": the SDK signs in with the grant and calls demo__search_files; prints the
// result and the token's claims. MODE "grant": prints only the grant ({"id_jag": …}), for
// the attack tests. AUDIENCE overrides the grant's audience (default: the gateway's issuer).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createHash, randomBytes } from "node:crypto";
import { signIn } from "./idp_login.mjs";

const [idp, mcpUrl, clientId, mode, audienceArg] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9997/callback";
const AGENT = "Basic " + Buffer.from("mcp-agent:agent-secret").toString("base64");
const b64url = (b) => b.toString("base64url");

// 1. The user signs in to the agent at the IdP: authorization code + PKCE, an ID token.
const verifier = b64url(randomBytes(32));
const start = new URL(`${idp}/auth`);
for (const [k, v] of Object.entries({
  response_type: "code",
  client_id: "mcp-agent",
  redirect_uri: REDIRECT,
  scope: "openid",
  code_challenge: b64url(createHash("sha256").update(verifier).digest()),
  code_challenge_method: "S256",
  state: "s",
})) start.searchParams.set(k, v);
const code = await signIn(start, REDIRECT, "dave");
const post = async (url, form) => {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: AGENT, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${url}: ${JSON.stringify(body)}`);
  return body;
};
const { id_token } = await post(`${idp}/token`, {
  grant_type: "authorization_code",
  code,
  redirect_uri: REDIRECT,
  code_verifier: verifier,
});

// 2. The agent exchanges it at the IdP for an ID-JAG addressed to the gateway.
const gatewayIssuer = new URL(mcpUrl).origin;
const { access_token: idJag } = await post(`${idp}/token`, {
  grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
  requested_token_type: "urn:ietf:params:oauth:token-type:id-jag",
  subject_token: id_token,
  subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
  audience: audienceArg ?? gatewayIssuer,
  resource: mcpUrl,
});
if (mode === "grant") {
  console.log(JSON.stringify({ id_jag: idJag }));
  process.exit(0);
}

// 3. The SDK's non-interactive flow: no redirect URL, the token request carries the grant.
const store = { client: { client_id: clientId } };
const provider = {
  get redirectUrl() {
    return undefined;
  },
  get clientMetadata() {
    return { client_name: "id-jag agent", redirect_uris: [], grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"], token_endpoint_auth_method: "none" };
  },
  clientInformation: () => store.client,
  saveClientInformation: (c) => {
    store.client = c;
  },
  tokens: () => store.tokens,
  saveTokens: (t) => {
    store.tokens = t;
  },
  redirectToAuthorization: () => {
    throw new Error("no interactive sign-in in this flow");
  },
  saveCodeVerifier: () => {},
  codeVerifier: () => {
    throw new Error("no PKCE in this flow");
  },
  prepareTokenRequest: () =>
    new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: idJag }),
};
const client = new Client({ name: "id-jag-agent", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
const result = await client.callTool({ name: "demo__search_files", arguments: { query: "vpn" } });
const payload = JSON.parse(Buffer.from(store.tokens.access_token.split(".")[1], "base64url").toString());
console.log(JSON.stringify({ result, sub: payload.sub, iss: payload.iss, client_id: payload.client_id, refresh: store.tokens.refresh_token ?? null }));
await client.close();
