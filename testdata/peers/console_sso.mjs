// Signs in to the Gatehouse console through single sign-on: starts at /console/login/sso,
// signs in at the test OpenID provider as `user`, and completes at the gateway's callback,
// either in the browser that started (mode `same`) or in another one without its nonce
// cookie (mode `other`, as a login CSRF would). Prints {status, location, me} as JSON.
import { cookieJar, signIn } from "./idp_login.mjs";

const [gw, mode = "same", user = "carol"] = process.argv.slice(2);
const browser = cookieJar();
const start = await fetch(`${gw}/console/login/sso`, { redirect: "manual" });
browser.keep(start);
const idpUrl = new URL(start.headers.get("location"));
const state = idpUrl.searchParams.get("state");
const code = await signIn(idpUrl, `${gw}/oauth/callback`, user);
const finisher = mode === "same" ? browser : cookieJar();
const done = await fetch(`${gw}/oauth/callback?code=${encodeURIComponent(code)}&state=${encodeURIComponent(state)}`, {
  redirect: "manual",
  headers: { cookie: finisher.cookies() },
});
finisher.keep(done);
const me = await fetch(`${gw}/console/api/me`, { headers: { cookie: finisher.cookies() } });
console.log(JSON.stringify({ status: done.status, location: done.headers.get("location"), me: await me.json() }));
