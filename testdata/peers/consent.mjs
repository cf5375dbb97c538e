// Opens a consent link from the gateway as a person in a browser would: follows redirects,
// signs in at the identity provider as USER and answers its consent page, until a page that
// is not the provider's (the gateway's outcome). usage: node consent.mjs URL USER
// Prints {status, url, body} of that last page.
import { cookieJar } from "./idp_login.mjs";

const [start, user] = process.argv.slice(2);
const { cookies, keep } = cookieJar();
let next = start;
for (let i = 0; i < 20; i++) {
  let res = await fetch(next, { redirect: "manual", headers: { cookie: cookies() } });
  keep(res);
  if (res.status === 302 || res.status === 303) {
    next = new URL(res.headers.get("location"), next).toString();
    continue;
  }
  const page = await res.text();
  const form = page.match(/<form[^>]*action="([^"]+)"/);
  const prompt = page.match(/name="prompt" value="([^"]+)"/);
  if (!form || !prompt) {
    console.log(JSON.stringify({ status: res.status, url: next, body: page }));
    process.exit(0);
  }
  const action = new URL(form[1], next).toString();
  const body = new URLSearchParams({ prompt: prompt[1] });
  if (prompt[1] === "login") {
    body.set("login", user);
    body.set("password", "any");
  }
  res = await fetch(action, { method: "POST", body, redirect: "manual", headers: { cookie: cookies() } });
  keep(res);
  next = new URL(res.headers.get("location"), action).toString();
}
throw new Error("the consent flow did not finish");
