// Plays a user at the test OpenID provider's development login and consent pages, keeping
// its cookies, from an authorization URL until the redirect to `redirectPrefix`; returns the
// authorization code. Shared by the OAuth test clients.
/** A browser's cookie jar: `cookies()` for a request's header, `keep(res)` after each answer. */
export function cookieJar() {
  const jar = new Map();
  const cookies = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const keep = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  return { cookies, keep };
}

export async function signIn(start, redirectPrefix, user = "bob") {
  const { cookies, keep } = cookieJar();
  let next = start.toString();
  for (let i = 0; i < 12; i++) {
    if (next.startsWith(redirectPrefix)) {
      return new URL(next).searchParams.get("code");
    }
    let res = await fetch(next, { redirect: "manual", headers: { cookie: cookies() } });
    keep(res);
    if (res.status === 302 || res.status === 303) {
      next = new URL(res.headers.get("location"), next).toString();
      continue;
    }
    const page = await res.text();
    const action = new URL(page.match(/<form[^>]*action="([^"]+)"/)[1], next).toString();
    const prompt = page.match(/name="prompt" value="([^"]+)"/)[1];
    const form = new URLSearchParams({ prompt });
    if (prompt === "login") {
      form.set("login", user);
      form.set("password", "any");
    }
    res = await fetch(action, { method: "POST", body: form, redirect: "manual", headers: { cookie: cookies() } });
    keep(res);
    next = new URL(res.headers.get("location"), action).toString();
  }
  throw new Error("authorization did not complete");
}
