// Signs a user in through the gateway's authorization-server façade, as a client and its
// user would, with no browser: registers a public client, sends the user to the gateway's
// /oauth/authorize (PKCE S256), answers the identity provider's login and consent pages,
// and takes the code from the redirect. usage: node facade_login.mjs GATEWAY_ORIGIN MODE [USER]
// MODE `code` prints {client_id, redirect_uri, code, verifier}; `tokens` also redeems the
// code and prints the token response under `tokens`. USER (default carol) signs in.
import { createHash, randomBytes } from "node:crypto";
import { cookieJar } from "./idp_login.mjs";

const [origin, mode = "tokens", user = "carol"] = process.argv.slice(2);
const REDIRECT = "http://127.0.0.1:9997/cb";
const b64url = (b) => Buffer.from(b).toString("base64url");

const meta = await (await fetch(`${origin}/.well-known/oauth-authorization-server`)).json();
const reg = await fetch(meta.registration_endpoint, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    client_name: "gatehouse-facade-test",
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "none",
  }),
});
if (reg.status !== 201) throw new Error(`registration: ${reg.status} ${await reg.text()}`);
const client = await reg.json();

const verifier = b64url(randomBytes(32));
const challenge = b64url(createHash("sha256").update(verifier).digest());
const state = b64url(randomBytes(12));
const start = new URL(meta.authorization_endpoint);
for (const [k, v] of Object.entries({
  response_type: "code",
  client_id: client.client_id,
  redirect_uri: REDIRECT,
  code_challenge: challenge,
  code_challenge_method: "S256",
  state,
  scope: "mcp:tools",
})) {
  start.searchParams.set(k, v);
}

// Plays the user, keeping the provider's cookies.
const { cookies, keep } = cookieJar();
let next = start.toString();
let code;
for (let i = 0; i < 12 && !code; i++) {
  if (next.startsWith(REDIRECT)) {
    const u = new URL(next);
    if (u.searchParams.get("state") !== state) throw new Error("state was not echoed");
    if (u.searchParams.get("iss") !== meta.issuer) throw new Error("iss is not the gateway");
    code = u.searchParams.get("code");
    if (!code) throw new Error(`no code: ${next}`);
    break;
  }
  let res = await fetch(next, { redirect: "manual", headers: { cookie: cookies() } });
  keep(res);
  if (res.status === 302 || res.status === 303) {
    next = new URL(res.headers.get("location"), next).toString();
    continue;
  }
  const page = await res.text();
  const form = page.match(/<form[^>]*action="([^"]+)"/);
  if (!form) throw new Error(`unexpected page ${res.status} at ${next}: ${page.slice(0, 200)}`);
  const action = new URL(form[1], next).toString();
  const prompt = page.match(/name="prompt" value="([^"]+)"/)[1];
  const body = new URLSearchParams({ prompt });
  if (prompt === "login") {
    body.set("login", user);
    body.set("password", "any");
  }
  res = await fetch(action, { method: "POST", body, redirect: "manual", headers: { cookie: cookies() } });
  keep(res);
  next = new URL(res.headers.get("location"), action).toString();
}
if (!code) throw new Error("sign-in did not complete");

const out = { client_id: client.client_id, redirect_uri: REDIRECT, code, verifier, token_endpoint: meta.token_endpoint };
if (mode === "tokens") {
  const res = await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
      client_id: client.client_id,
    }),
  });
  out.tokens = await res.json();
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(out.tokens)}`);
}
console.log(JSON.stringify(out));
