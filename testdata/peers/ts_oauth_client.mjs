// TypeScript SDK client completing OAuth 2.1 against a gateway protected by an OpenID
// provider, with no browser: the SDK finds the protected-resource metadata from the 401,
// registers itself (dynamic client registration) and runs authorization code + PKCE; the
// provider's login and consent pages (oidc-provider development interactions) are answered
// over HTTP here. usage: node ts_oauth_client.mjs URL TOOL ARGS_JSON
// GATEHOUSE_CLIENT_METADATA_URL names the client by its metadata document instead of
// registering it (Client ID Metadata Documents).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { signIn } from "./idp_login.mjs";

const [url, tool, argsJson] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9998/callback";
let code;

/** Plays the user at the provider's pages. */
async function authorize(start) {
  code = await signIn(start, REDIRECT, "bob");
}

const store = {};
const provider = {
  clientMetadataUrl: process.env.GATEHOUSE_CLIENT_METADATA_URL,
  get redirectUrl() {
    return REDIRECT;
  },
  get clientMetadata() {
    return {
      client_name: "gatehouse-ts-oauth-test",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation: () => store.client,
  saveClientInformation: (c) => {
    store.client = c;
  },
  tokens: () => store.tokens,
  saveTokens: (t) => {
    store.tokens = t;
  },
  redirectToAuthorization: (u) => authorize(u),
  saveCodeVerifier: (v) => {
    store.verifier = v;
  },
  codeVerifier: () => store.verifier,
};

const connect = async () => {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: "gatehouse-ts-oauth-test", version: "1.0.0" });
  try {
    await client.connect(transport);
    return client;
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    await transport.finishAuth(code);
    const again = new Client({ name: "gatehouse-ts-oauth-test", version: "1.0.0" });
    await again.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
    return again;
  }
};

const client = await connect();
const result = await client.callTool({ name: tool, arguments: JSON.parse(argsJson) });
const payload = JSON.parse(Buffer.from(store.tokens.access_token.split(".")[1], "base64url").toString());
console.log(JSON.stringify({ result, aud: payload.aud, sub: payload.sub, iss: payload.iss, client_id: store.client?.client_id }));
await client.close();
