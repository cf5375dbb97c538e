// Gatehouse console: one page, no framework, no inline code (the CSP allows none).
// Every value from the server is placed with textContent, never parsed as HTML.
"use strict";

const state = { me: null, timer: null };
const ROLE_RANK = { viewer: 1, approver: 2, admin: 3 };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function when(ms) {
  if (!ms) return "";
  return new Date(Number(ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function badge(text) { return el("span", { class: "badge " + text }, text); }

async function api(path, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  o.credentials = "same-origin";
  if (o.body !== undefined) {
    o.method = o.method || "POST";
    o.headers["Content-Type"] = "application/json";
    o.body = JSON.stringify(o.body);
  }
  if (o.method && o.method !== "GET" && state.me) o.headers["X-Gatehouse-CSRF"] = state.me.csrf;
  const r = await fetch(path, o);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
  return data;
}

function view(...children) {
  const v = document.getElementById("view");
  v.replaceChildren(...children.flat());
}

function errorLine(e) { return el("p", { class: "error" }, String(e.message || e)); }

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

function every(ms, fn) {
  if (state.timer) clearInterval(state.timer);
  state.timer = setInterval(fn, ms);
}

// ---------------------------------------------------------------- sign-in
async function whoami() {
  state.me = await api("/console/api/me");
  const signedIn = !!(state.me && state.me.operator);
  document.getElementById("signin").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  document.getElementById("sso-line").hidden = !(state.me && state.me.sso);
  document.getElementById("who").textContent = signedIn ? `${state.me.operator} · ${state.me.role}` : "";
  if (!signedIn) { view(); return false; }
  for (const a of document.querySelectorAll("#nav a")) {
    a.hidden = ROLE_RANK[state.me.role] < ROLE_RANK[a.dataset.role];
  }
  return true;
}

async function signIn(ev) {
  ev.preventDefault();
  const out = document.getElementById("signin-error");
  out.textContent = "";
  try {
    await api("/console/api/login", { body: { token: document.getElementById("token").value } });
    document.getElementById("token").value = "";
    await route();
  } catch (e) { out.textContent = e.message; }
}

async function signOut() {
  try { await api("/console/api/logout", { method: "POST" }); } catch (_) { /* signed out anyway */ }
  location.hash = "";
  await route();
}

// ---------------------------------------------------------------- approvals
async function approvals() {
  const status = el("select", { id: "approval-status" }, ["pending", "approved", "denied", "expired", "used", "all"].map((s) => el("option", { value: s }, s)));
  const list = el("div", {});
  const load = async () => {
    try {
      const data = await api("/console/api/approvals?status=" + encodeURIComponent(status.value));
      const rows = data.approvals.map((a) => {
        const reason = el("input", { placeholder: "reason", size: 18 });
        const act = a.status === "pending" ? el("td", {},
          el("button", { class: "primary", onclick: () => decide(a.id, "approve", reason.value) }, "Approve"), " ",
          reason, " ",
          el("button", { class: "danger", onclick: () => decide(a.id, "deny", reason.value) }, "Deny")) : el("td", {}, badge(a.status));
        return el("tr", { "data-id": a.id },
          el("td", {}, a.principal, el("div", { class: "muted" }, a.tenant || "")),
          el("td", {}, a.tool, el("div", { class: "muted" }, a.upstream + " · " + a.classification)),
          el("td", {}, el("pre", {}, JSON.stringify(a.arguments, null, 2))),
          el("td", {}, a.reason),
          el("td", {}, when(a.expires_ms)),
          el("td", {}, `${a.decisions.filter((d) => d.approve).length} of ${a.required}`),
          act);
      });
      list.replaceChildren(rows.length ? table(["Who", "Tool", "Arguments", "Why it waits", "Expires", "Approvals", ""], rows) : el("p", { class: "muted" }, "Nothing waits."));
    } catch (e) { list.replaceChildren(errorLine(e)); }
  };
  const decide = async (id, verb, reason) => {
    try { await api(`/console/api/approvals/${encodeURIComponent(id)}/${verb}`, { body: { reason } }); }
    catch (e) { alert(e.message); }
    await load();
  };
  status.addEventListener("change", load);
  view(el("h1", {}, "Approvals"), el("label", {}, "Status ", status), el("span", { class: "muted" }, "Updates every 3 s."), list);
  await load();
  every(3000, load);
}

// ---------------------------------------------------------------- pins
function highlighted(text, findings) {
  const spans = (findings || []).filter((f) => Number.isInteger(f.start) && Number.isInteger(f.end) && f.end > f.start);
  if (!text || !spans.length) return el("pre", {}, text || "");
  spans.sort((a, b) => a.start - b.start);
  const chars = Array.from(text);
  const parts = [];
  let at = 0;
  for (const s of spans) {
    if (s.start < at) continue;
    parts.push(chars.slice(at, s.start).join(""), el("mark", { title: `${s.stage || ""} ${s.rule}` }, chars.slice(s.start, s.end).join("")));
    at = s.end;
  }
  parts.push(chars.slice(at).join(""));
  return el("pre", {}, parts);
}

async function pins() {
  const box = el("div", {});
  const detail = el("div", {});
  const load = async () => {
    try {
      const data = await api("/console/api/pins?status=held");
      const rows = data.pins.map((p) => el("tr", { class: "clickable", onclick: () => show(p) },
        el("td", {}, p.upstream), el("td", {}, p.kind), el("td", {}, p.name), el("td", {}, badge(p.status)),
        el("td", {}, p.findings && Array.isArray(p.findings.rules) ? [...new Set(p.findings.rules)].join(", ") : ""),
        el("td", {}, when(p.updated_ms))));
      box.replaceChildren(rows.length ? table(["Upstream", "Kind", "Name", "Status", "Findings", "Updated"], rows) : el("p", { class: "muted" }, "No definition is held for review."));
    } catch (e) { box.replaceChildren(errorLine(e)); }
  };
  const show = async (p) => {
    try {
      const d = await api(`/console/api/pins/${encodeURIComponent(p.upstream)}/${encodeURIComponent(p.kind)}/${encodeURIComponent(p.name)}`);
      const findings = Array.isArray(d.spans) ? d.spans : [];
      const stored = d.findings && Array.isArray(d.findings.rules) ? d.findings.rules : [];
      const reason = el("input", { placeholder: "reason", size: 30 });
      const proposed = d.proposed || {};
      detail.replaceChildren(el("div", { class: "card" },
        el("h2", {}, `${d.upstream} · ${d.kind} · ${d.name}`),
        el("p", {}, "Held for: ", (d.findings && d.findings.reason) || "review", stored.length ? ` (${[...new Set(stored)].join(", ")})` : ""),
        table(["Where", "Stage", "Rule", "Severity", "Span"], findings.map((f) => el("tr", {}, el("td", {}, f.at), el("td", {}, f.stage), el("td", {}, f.rule), el("td", {}, f.severity), el("td", {}, f.start !== null ? `${f.start}–${f.end}` : "")))),
        el("div", { class: "diff" },
          el("div", {}, el("h2", {}, "Trusted"), el("pre", {}, d.definition ? JSON.stringify(d.definition, null, 2) : "(none: first sight)")),
          el("div", {}, el("h2", {}, "Proposed"), highlighted(proposed.description || "", findings.filter((f) => f.at === "/description")), el("pre", {}, JSON.stringify(proposed, null, 2)))),
        el("p", {},
          el("button", { class: "primary", onclick: () => decide(d, "approve", reason.value) }, "Approve"), " ", reason, " ",
          el("button", { class: "danger", onclick: () => decide(d, "reject", reason.value) }, "Reject"))));
    } catch (e) { detail.replaceChildren(errorLine(e)); }
  };
  const decide = async (d, verb, reason) => {
    try {
      await api(`/console/api/pins/${encodeURIComponent(d.upstream)}/${encodeURIComponent(d.kind)}/${encodeURIComponent(d.name)}/${verb}`, { body: { hash: d.proposed_hash, reason } });
      detail.replaceChildren(el("p", { class: "ok" }, `${d.name}: ${verb}d.`));
    } catch (e) { alert(e.message); }
    await load();
  };
  view(el("h1", {}, "Quarantine and pins"), box, detail);
  await load();
}

// ---------------------------------------------------------------- audit
async function audit() {
  const f = {
    principal: el("input", { size: 14 }), target: el("input", { size: 14 }),
    status: el("select", {}, ["", "ok", "denied", "error", "unknown_tool"].map((s) => el("option", { value: s }, s || "any"))),
    tenant: el("input", { size: 10 }), since: el("input", { type: "datetime-local" }), until: el("input", { type: "datetime-local" }),
  };
  const rows = el("tbody", {});
  const detail = el("div", {});
  const more = el("button", { hidden: true }, "Older records");
  const verify = el("span", { class: "muted" }, "");
  const exportCsv = el("a", { href: "#" }, "Export CSV");
  const exportJsonl = el("a", { href: "#" }, "Export JSON lines");
  let cursor = null;
  const params = () => {
    const p = new URLSearchParams();
    for (const k of ["principal", "target", "status", "tenant"]) if (f[k].value) p.set(k, f[k].value);
    if (f.since.value) p.set("since_ms", String(new Date(f.since.value).getTime()));
    if (f.until.value) p.set("until_ms", String(new Date(f.until.value).getTime()));
    return p;
  };
  const load = async (next) => {
    const p = params();
    p.set("limit", "50");
    if (next) p.set("cursor", next); else rows.replaceChildren();
    exportCsv.href = "/console/api/audit/export?" + params() + "&format=csv";
    exportJsonl.href = "/console/api/audit/export?" + params() + "&format=jsonl";
    try {
      const data = await api("/console/api/audit?" + p);
      for (const r of data.records) {
        const e = r.event;
        rows.append(el("tr", { class: "clickable", onclick: () => detail.replaceChildren(el("div", { class: "card" }, el("h2", {}, `${r.chain} #${r.seq}`), el("pre", {}, JSON.stringify(e, null, 2)))) },
          el("td", {}, when(e.time_ms)), el("td", {}, e.principal || ""), el("td", {}, e.method || ""), el("td", {}, e.target || ""),
          el("td", {}, badge(e.status || "")), el("td", {}, e.rule || ""), el("td", {}, e.tenant || r.chain)));
      }
      cursor = data.next;
      more.hidden = !cursor;
    } catch (e) { detail.replaceChildren(errorLine(e)); }
  };
  const check = async () => {
    verify.textContent = "verifying…";
    try {
      const v = await api("/console/api/audit/verify");
      verify.replaceChildren(...v.chains.map((c) => el("span", { class: c.ok ? "ok" : "error" }, c.ok ? `${c.chain}: ${c.records} records verified ` : `${c.chain}: BROKEN (${c.error}) `)));
    } catch (e) { verify.textContent = e.message; }
  };
  more.addEventListener("click", () => load(cursor));
  view(el("h1", {}, "Audit explorer"),
    el("form", { onsubmit: (ev) => { ev.preventDefault(); load(null); } },
      el("label", {}, "Principal", f.principal), el("label", {}, "Tool", f.target), el("label", {}, "Status", f.status),
      el("label", {}, "Tenant", f.tenant), el("label", {}, "From", f.since), el("label", {}, "To", f.until),
      el("button", { type: "submit", class: "primary" }, "Search")),
    el("p", {}, exportCsv, " · ", exportJsonl, " · ", el("button", { onclick: check }, "Verify chains"), " ", verify),
    el("table", {}, el("thead", {}, el("tr", {}, ["Time", "Principal", "Method", "Target", "Status", "Rule", "Chain"].map((h) => el("th", {}, h)))), rows),
    more, detail);
  await load(null);
}

// ---------------------------------------------------------------- inventory
async function inventory() {
  try {
    const data = await api("/console/api/inventory");
    view(el("h1", {}, "Inventory"),
      table(["Upstream", "Health", "Protocol", "Transport", "Classification", "Tools"], data.upstreams.map((u) => el("tr", {},
        el("td", {}, u.name), el("td", {}, u.up ? el("span", { class: "ok" }, "up") : el("span", { class: "error" }, "down")),
        el("td", {}, u.protocol || ""), el("td", {}, u.transport), el("td", {}, u.classification), el("td", {}, String(u.tools.length))))),
      data.upstreams.map((u) => [el("h2", {}, u.name),
        table(["Tool", "Verb", "Classification", "Roles that may call it"], u.tools.map((t) => el("tr", {},
          el("td", {}, t.name), el("td", {}, t.verb), el("td", {}, t.classification), el("td", {}, t.roles.join(", ")))))]));
  } catch (e) { view(errorLine(e)); }
}

// ---------------------------------------------------------------- keys
async function keys() {
  const shown = el("div", {});
  const list = el("div", {});
  const f = { principal: el("input", { required: true, size: 16 }), app: el("input", { required: true, size: 12, value: "gatehouse-console" }), roles: el("input", { size: 16 }), days: el("input", { type: "number", value: "90", min: "1", max: "3650" }) };
  const once = (k) => shown.replaceChildren(el("div", { class: "card" }, el("p", {}, "The key, shown once:"), el("div", { class: "secret" }, k.key)));
  const load = async () => {
    try {
      const data = await api("/console/api/keys");
      list.replaceChildren(table(["Id", "Principal", "App", "Roles", "Created", "Expires", "Last used", ""], data.keys.map((k) => el("tr", {},
        el("td", {}, k.id), el("td", {}, k.principal), el("td", {}, k.app), el("td", {}, k.roles.join(", ")),
        el("td", {}, when(k.created_at * 1000)), el("td", {}, k.expires_at ? when(k.expires_at * 1000) : "never"),
        el("td", {}, k.last_used_at ? when(k.last_used_at * 1000) : ""),
        el("td", {}, k.revoked_at ? badge("revoked") : [
          el("button", { onclick: async () => { try { once(await api(`/console/api/keys/${k.id}/rotate`, { method: "POST" })); } catch (e) { alert(e.message); } load(); } }, "Rotate"), " ",
          el("button", { class: "danger", onclick: async () => { try { await api(`/console/api/keys/${k.id}/revoke`, { method: "POST" }); } catch (e) { alert(e.message); } load(); } }, "Revoke")])))));
    } catch (e) { list.replaceChildren(errorLine(e)); }
  };
  const create = async (ev) => {
    ev.preventDefault();
    try {
      once(await api("/console/api/keys", { body: { principal: f.principal.value, app: f.app.value, roles: f.roles.value, days: Number(f.days.value) } }));
    } catch (e) { shown.replaceChildren(errorLine(e)); }
    await load();
  };
  view(el("h1", {}, "API keys"),
    el("form", { onsubmit: create }, el("label", {}, "Principal", f.principal), el("label", {}, "Application", f.app), el("label", {}, "Roles (comma-separated)", f.roles), el("label", {}, "Days", f.days), el("button", { type: "submit", class: "primary" }, "Create")),
    shown, list);
  await load();
}

// ---------------------------------------------------------------- policy
async function policy() {
  const out = el("div", {});
  const wout = el("div", {});
  let tools = [];
  try { tools = (await api("/console/api/inventory")).upstreams.flatMap((u) => u.tools.map((t) => t.name)); } catch (_) { /* typed by hand */ }
  const f = { principal: el("input", { size: 14, value: "someone" }), roles: el("input", { size: 16 }), groups: el("input", { size: 12 }), tenant: el("input", { size: 8 }),
    tool: el("select", {}, tools.map((t) => el("option", { value: t }, t))), args: el("textarea", { rows: 4 }, "{}") };
  const explain = async (ev) => {
    ev.preventDefault();
    let args;
    try { args = JSON.parse(f.args.value || "{}"); } catch (e) { out.replaceChildren(errorLine("arguments: " + e.message)); return; }
    try {
      const r = await api("/console/api/explain", { body: { principal: f.principal.value, roles: f.roles.value, groups: f.groups.value, tenant: f.tenant.value, tool: f.tool.value, arguments: args } });
      out.replaceChildren(el("div", { class: "card" }, el("p", {}, "Decision: ", badge(r.outcome.decision === "allow" ? "ok" : "denied"), " ", r.outcome.decision),
        el("p", {}, "Effective roles: ", r.effective_roles.join(", ") || "(none)"), el("pre", {}, r.outcome.detail)));
    } catch (e) { out.replaceChildren(errorLine(e)); }
  };
  const draft = el("textarea", { rows: 12, placeholder: "roles:\n  analyst:\n    tools: [demo.read_database]" });
  const limit = el("input", { type: "number", value: "1000", min: "1", max: "5000" });
  const whatif = async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("/console/api/whatif", { body: { authorization: draft.value, limit: Number(limit.value) } });
      wout.replaceChildren(el("p", {}, `${r.replayed} calls replayed, ${r.changed.length} would change, ${r.skipped} not replayable.`),
        table(["Time", "Principal", "Tool", "Was", "Would be"], r.changed.map((c) => el("tr", {}, el("td", {}, when(c.time_ms)), el("td", {}, c.principal), el("td", {}, c.tool), el("td", {}, c.was), el("td", {}, c.would_be.decision)))));
    } catch (e) { wout.replaceChildren(errorLine(e)); }
  };
  const parts = [el("h1", {}, "Policy"), el("h2", {}, "Explain a decision"),
    el("form", { onsubmit: explain }, el("label", {}, "Principal", f.principal), el("label", {}, "Roles", f.roles), el("label", {}, "Groups", f.groups), el("label", {}, "Tenant", f.tenant), el("label", {}, "Tool", f.tool),
      el("div", {}, el("label", {}, "Arguments (JSON)")), f.args, el("p", {}, el("button", { type: "submit", class: "primary" }, "Explain"))), out];
  if (state.me.role === "admin") {
    parts.push(el("h2", {}, "What if: replay recent calls against a draft authorization section"),
      el("form", { onsubmit: whatif }, draft, el("p", {}, el("label", {}, "Recent calls", limit), el("button", { type: "submit", class: "primary" }, "Replay"))), wout);
  }
  view(parts);
}

// ---------------------------------------------------------------- live
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function sum(ms, name, pred) { return ms.filter((m) => m.name === name && (!pred || pred(m.labels))).reduce((a, m) => a + m.value, 0); }

function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!total) return null;
  for (const b of buckets) if (b.count >= q * total) return b.le;
  return null;
}

function drawChart(canvas, points, unit) {
  const w = canvas.width = canvas.clientWidth * devicePixelRatio;
  const h = canvas.height = canvas.clientHeight * devicePixelRatio;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  const vals = points.map((p) => p ?? 0);
  const max = Math.max(1e-9, ...vals);
  g.strokeStyle = "#0b5cad"; g.lineWidth = 2 * devicePixelRatio; g.beginPath();
  vals.forEach((v, i) => { const x = (i / Math.max(1, vals.length - 1)) * w; const y = h - (v / max) * (h - 14 * devicePixelRatio); i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
  g.fillStyle = "#6a737d"; g.font = `${11 * devicePixelRatio}px system-ui`;
  g.fillText(`max ${max.toFixed(unit === "ms" ? 1 : 2)} ${unit}`, 4, 12 * devicePixelRatio);
}

async function live() {
  const series = { calls: [], errors: [], denials: [], detections: [] };
  const latency = {};
  let prev = null;
  const charts = {};
  const chartBox = el("div", { class: "charts" });
  const feed = el("div", {});
  const chart = (key, title) => {
    if (!charts[key]) { charts[key] = el("canvas", {}); chartBox.append(el("div", {}, el("div", {}, title), charts[key])); }
    return charts[key];
  };
  const tick = async () => {
    let data;
    try { data = await api("/console/api/live"); } catch (e) { feed.replaceChildren(errorLine(e)); return; }
    const ms = parseMetrics(data.metrics);
    const now = { t: Date.now(), calls: sum(ms, "gatehouse_requests_total"), errors: sum(ms, "gatehouse_requests_total", (l) => l.outcome === "error"),
      denials: sum(ms, "gatehouse_requests_total", (l) => l.outcome === "denied"), detections: sum(ms, "gatehouse_detections_total"), buckets: {} };
    for (const m of ms.filter((m) => m.name === "gatehouse_upstream_latency_seconds_bucket")) {
      (now.buckets[m.labels.upstream] ||= []).push({ le: m.labels.le === "+Inf" ? Infinity : Number(m.labels.le), count: m.value });
    }
    if (prev) {
      const dt = (now.t - prev.t) / 1000;
      for (const k of Object.keys(series)) { series[k].push(Math.max(0, now[k] - prev[k]) / dt); if (series[k].length > 60) series[k].shift(); }
      for (const [up, bs] of Object.entries(now.buckets)) {
        const before = prev.buckets[up] || [];
        const delta = bs.map((b, i) => ({ le: b.le, count: b.count - (before[i] ? before[i].count : 0) }));
        const l = (latency[up] ||= { p50: [], p99: [] });
        const p50 = quantile(delta, 0.5), p99 = quantile(delta, 0.99);
        l.p50.push(p50 === null || p50 === Infinity ? null : p50 * 1000); l.p99.push(p99 === null || p99 === Infinity ? null : p99 * 1000);
        if (l.p50.length > 60) { l.p50.shift(); l.p99.shift(); }
      }
      drawChart(chart("calls", "Calls/s"), series.calls, "/s");
      drawChart(chart("errors", "Errors/s"), series.errors, "/s");
      drawChart(chart("denials", "Denials/s"), series.denials, "/s");
      drawChart(chart("detections", "Detections/s"), series.detections, "/s");
      for (const [up, l] of Object.entries(latency)) {
        drawChart(chart("p50-" + up, `${up}: p50 latency (bucket bound)`), l.p50, "ms");
        drawChart(chart("p99-" + up, `${up}: p99 latency (bucket bound)`), l.p99, "ms");
      }
    }
    prev = now;
    feed.replaceChildren(table(["Time", "Principal", "Target", "Status", "Rule", "Detections"], data.feed.map((f) => el("tr", {},
      el("td", {}, when(f.time_ms)), el("td", {}, f.principal || ""), el("td", {}, f.target || ""), el("td", {}, badge(f.status || "")), el("td", {}, f.rule || ""),
      el("td", {}, (f.detections || []).map((d) => `${d.place} stage ${d.stage} ${d.rule} → ${d.action}`).join("; "))))));
  };
  view(el("h1", {}, "Live"), chartBox, el("h2", {}, "Refusals and detections"), feed);
  await tick();
  every(2000, tick);
}

// ---------------------------------------------------------------- routing
const PAGES = { approvals, pins, audit, inventory, keys, policy, live };

async function route() {
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
  let signedIn = false;
  try { signedIn = await whoami(); } catch (e) { view(errorLine(e)); return; }
  if (!signedIn) return;
  let page = location.hash.replace("#", "");
  const allowed = (p) => { const a = document.querySelector(`#nav a[href="#${p}"]`); return a && !a.hidden; };
  if (!PAGES[page] || !allowed(page)) page = state.me.role === "viewer" ? "inventory" : "approvals";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === "#" + page);
  await PAGES[page]();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", signIn);
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  route();
});
