/// The live dashboard at `/_tapper/dashboard`: one self-contained page (inline CSS and JS, no
/// build step, nothing fetched from elsewhere) that polls `/_tapper/status`, `/_tapper/traffic`
/// and `/_tapper/routes` every second and asks `/_tapper/explain` which service gets a path.
///
/// Behind the admin token like the rest of `/_tapper/`: a browser logs in with the token as the
/// password of its Basic prompt (any user name), or opens `/_tapper/dashboard#token=TOKEN`; the
/// page's own requests carry the same credentials.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tapper dashboard</title>
<style>
:root { --bg: #f6f7f9; --card: #fff; --ink: #1d2430; --mute: #667085; --line: #e4e7ec; --ok: #12805c; --bad: #c4320a; --warn: #b54708; --accent: #2e5aac; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: baseline; gap: 18px; padding: 14px 22px; background: #1d2430; color: #fff; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: #c9d1dd; font-size: 13px; }
header .live { margin-left: auto; font-size: 12px; color: #9fb3c8; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; padding: 16px 22px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow: auto; }
section h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: var(--mute); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
th { font-weight: 600; color: var(--mute); font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.healthy { background: var(--ok); } .unhealthy { background: var(--bad); } .ejected { background: var(--warn); } .other { background: var(--mute); }
.svc { font-weight: 600; }
.svc .muted, .sub { font-weight: 400; font-size: 12px; }
.sub { color: var(--mute); display: block; }
.muted { color: var(--mute); }
.err { color: var(--bad); }
form { display: flex; gap: 6px; margin-bottom: 8px; }
input, select, button { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 5px; }
input { flex: 1; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
#explain-result { white-space: pre-wrap; font: 12px ui-monospace, monospace; background: var(--bg); padding: 8px; border-radius: 5px; min-height: 2em; }
#problem { display: none; background: #fef3f2; color: var(--bad); padding: 8px 22px; }
</style>
</head>
<body>
<header>
  <h1>Tapper gateway</h1>
  <span class="meta" id="summary">loading…</span>
  <span class="live" id="updated"></span>
</header>
<div id="problem"></div>
<main>
  <section id="services-card"><h2>Services and instances</h2>
    <table><thead><tr><th>service</th><th>instance</th><th>version</th><th>state</th><th class="num">heartbeat</th></tr></thead>
    <tbody id="services"></tbody></table></section>
  <section id="traffic-card"><h2>Traffic per route (last seconds)</h2>
    <table><thead><tr><th>service</th><th>route</th><th class="num">req/s</th><th class="num">5xx/s</th><th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">total</th></tr></thead>
    <tbody id="traffic"></tbody></table></section>
  <section id="explain-card"><h2>Which service gets this path?</h2>
    <form id="explain-form">
      <select id="explain-method"><option>GET</option><option>POST</option><option>PUT</option><option>PATCH</option><option>DELETE</option><option>HEAD</option><option>OPTIONS</option></select>
      <input id="explain-path" placeholder="/users/42" value="/">
      <button type="submit">Explain</button>
    </form>
    <div id="explain-result" class="muted">Type a path and press Explain: the same answer as <code>tapper route test</code>.</div></section>
  <section id="errors-card"><h2>Recent errors (5xx)</h2>
    <table><thead><tr><th class="num">ago</th><th>status</th><th>request</th><th>service</th><th>instance</th></tr></thead>
    <tbody id="errors"></tbody></table></section>
  <section id="routes-card"><h2>Routing table</h2>
    <table><thead><tr><th>method</th><th>template</th><th>service</th><th class="num">instances</th></tr></thead>
    <tbody id="routes"></tbody></table></section>
</main>
<script>
"use strict";
const token = (new URLSearchParams(location.hash.slice(1))).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const base = location.pathname.replace(/\/dashboard\/?$/, "");
function get(path) {
  return fetch(base + path, { headers, credentials: "same-origin", cache: "no-store" }).then(r => {
    if (!r.ok) throw new Error(path + " answered " + r.status);
    return r.json();
  });
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
function fill(id, rows, empty, columns) {
  const body = document.getElementById(id);
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "muted", colSpan: columns }, empty))]));
}
function badge(state) {
  const kind = state === "healthy" ? "healthy" : state === "unhealthy" ? "unhealthy" : state === "ejected" ? "ejected" : "other";
  return el("span", { class: "badge " + kind, "data-state": state }, state);
}
function num(v, digits) { return v == null ? "–" : Number(v).toFixed(digits); }
function renderStatus(s) {
  const g = s.gateway || {};
  const healthy = s.services.filter(x => x.healthy > 0).length;
  document.getElementById("summary").textContent =
    s.services.length + " services (" + healthy + " healthy) · table index " + (g.table_index ?? "?") +
    " · registry " + (g.registry && g.registry.reachable ? "reachable" : "unreachable") +
    " · " + (g.requests_in_flight ?? 0) + " in flight · " + (g.open_connections ?? 0) + " connections · up " + Math.round(g.uptime_seconds || 0) + " s";
  const rows = [];
  for (const svc of s.services) {
    const first = svc.instances.length ? svc.instances : [null];
    first.forEach((i, n) => {
      rows.push(el("tr", { "data-service": svc.name, "data-instance": i ? svc.name + "/" + i.id : "" },
        n === 0 ? el("td", { class: "svc", rowSpan: first.length }, svc.name, el("div", { class: "muted" }, svc.healthy + "/" + svc.total + " healthy · " + svc.routes + " routes")) : "",
        el("td", {}, i ? el("code", {}, i.id) : "–", i ? el("span", { class: "sub" }, i.url) : ""),
        el("td", {}, i ? i.version : ""),
        el("td", {}, i ? badge(i.state) : ""),
        el("td", { class: "num" }, i && i.last_heartbeat_age_seconds != null ? num(i.last_heartbeat_age_seconds, 1) + " s ago" : "–")));
      if (n > 0) rows[rows.length - 1].firstChild.remove();
    });
  }
  fill("services", rows, "no service is registered", 5);
}
function renderTraffic(t) {
  fill("traffic", t.routes.map(r => el("tr", { "data-route": r.method + " " + r.route },
    el("td", { class: "svc" }, r.service), el("td", {}, el("code", {}, r.method + " " + r.route)),
    el("td", { class: "num" }, num(r.requests_per_second, 1)), el("td", { class: "num" + (r.errors_per_second > 0 ? " err" : "") }, num(r.errors_per_second, 1)),
    el("td", { class: "num" }, num(r.p50_ms, 1)), el("td", { class: "num" }, num(r.p99_ms, 1)), el("td", { class: "num" }, r.requests_total))),
    "no request yet", 7);
  fill("errors", t.recent_errors.slice(0, 15).map(e => el("tr", {},
    el("td", { class: "num" }, num(e.age_seconds, 0) + " s"), el("td", { class: "err" }, e.status),
    el("td", {}, el("code", {}, e.method + " " + e.path)), el("td", {}, e.service), el("td", {}, e.instance || "–"))),
    "none", 5);
}
function renderRoutes(r) {
  fill("routes", r.routes.map(x => el("tr", {},
    el("td", {}, x.method), el("td", {}, el("code", {}, x.template)), el("td", { class: "svc" }, x.service), el("td", { class: "num" }, x.instances.length))),
    "no route", 4);
}
async function tick() {
  try {
    const [s, t, r] = await Promise.all([get("/status"), get("/traffic"), get("/routes")]);
    renderStatus(s); renderTraffic(t); renderRoutes(r);
    document.getElementById("problem").style.display = "none";
    document.getElementById("updated").textContent = "live · updated " + new Date().toLocaleTimeString();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  } catch (e) {
    const p = document.getElementById("problem");
    p.textContent = "Cannot read the gateway: " + e.message + " (is the admin token right?)";
    p.style.display = "block";
  }
}
document.getElementById("explain-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const method = document.getElementById("explain-method").value;
  const path = document.getElementById("explain-path").value;
  const out = document.getElementById("explain-result");
  try {
    const res = await fetch(base + "/explain?method=" + encodeURIComponent(method) + "&path=" + encodeURIComponent(path), { headers, credentials: "same-origin" });
    const r = await res.json();
    if (!res.ok) { out.textContent = (r.error && r.error.message) || ("answered " + res.status); out.className = "err"; return; }
    out.className = "";
    out.dataset.result = r.result;
    out.dataset.service = r.service || "";
    let text;
    if (r.result === "matched") {
      text = r.method + " " + r.path + " → " + r.service + " " + (r.version || "") + " via " + r.template;
      const params = Object.entries(r.parameters || {});
      if (params.length) text += "\n  parameters: " + params.map(([k, v]) => k + "=" + v).join(" ");
      const routable = r.instances.filter(i => i.state === "healthy" || i.state === "registered");
      text += routable.length ? "\n  instances: " + routable.length + " of " + r.instances.length + " routable" : "\n  no healthy instance: the gateway would answer 503";
      for (const i of r.instances) text += "\n    " + i.id + "  " + i.url + "  " + i.state;
      if (r.traffic) text += "\n  traffic split: " + r.traffic.map(s => s.version + " " + s.percent + "%").join(", ");
      for (const c of r.candidates.slice(1)) text += "\n  " + c.reason + " [" + c.service + "]";
    } else if (r.result === "method_not_allowed") {
      text = r.method + " " + r.path + " → 405; allowed: " + r.allowed.join(", ");
    } else {
      text = r.method + " " + r.path + " → 404: no route matches" + (r.nearby.length ? "; nearby: " + r.nearby.join(", ") : "");
    }
    out.textContent = text;
  } catch (e) { out.textContent = String(e); out.className = "err"; }
});
tick();
setInterval(tick, 1000);
</script>
</body>
</html>
"""#
}
