// The vnfm status board: one page, routed by the URL's hash, reading the gateway's API and
// refreshed from its live feed. Every text from the API goes into the page as text, never as
// markup.
"use strict";

const main = document.getElementById("main");
const state = { me: null, route: null, timer: null, events: null };

// ---- helpers --------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(text) {
  return el("span", { class: `badge ${text}`, text });
}

function short(id) {
  return id ? id.slice(0, 8) : "";
}

function cookie(name) {
  const found = document.cookie.split(";").map((c) => c.trim().split("="))
    .find(([key]) => key === name);
  return found ? found.slice(1).join("=") : "";
}

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = cookie("vnfm_csrf");
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "same-origin",
  });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const message = body && body.TackerError ? body.TackerError.message : `${response.status}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

// ---- sign-in --------------------------------------------------------------------------------

async function whoami() {
  try {
    state.me = await api("/v1.0/board/me");
  } catch (error) {
    if (error.status === 401) { showLogin(); return false; }
    throw error;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("who").textContent =
    `${state.me.user} · ${state.me.project} · ${state.me.roles.join(", ")}`;
  document.getElementById("logout").hidden = false;
  document.body.dataset.mayWrite = state.me.may_write ? "yes" : "no";
  return true;
}

function showLogin() {
  document.getElementById("login").hidden = false;
  document.getElementById("token").focus();
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    await api("/board/login", { method: "POST", body: { token: document.getElementById("token").value } });
    document.getElementById("token").value = "";
    await start();
  } catch (e) {
    error.textContent = e.status === 401 ? "This token is not valid." : e.message;
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  await api("/board/logout", { method: "POST" });
  if (state.events) state.events.close();
  location.hash = "#/";
  location.reload();
});

// ---- routes ---------------------------------------------------------------------------------

function parseRoute() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/").split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "vnfs") return { name: "vnfs", params };
  if (parts[0] === "vnf" && parts[1]) return { name: "vnf", id: parts[1] };
  if (parts[0] === "vnfd" && parts[1]) return { name: "vnfd", id: parts[1] };
  return { name: "overview" };
}

async function render() {
  state.route = parseRoute();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.nav === state.route.name);
  }
  const views = { overview, vnfs, vnf, vnfd };
  try {
    const view = await views[state.route.name](state.route);
    main.replaceChildren(view);
    main.dataset.view = state.route.name;
  } catch (error) {
    if (error.status === 401) { showLogin(); return; }
    main.replaceChildren(el("p", { class: "warn", text: `Cannot show this page: ${error.message}` }));
  }
}

// A VNF's page also redraws its round-trip chart this often: probe results are not table
// changes, so the live feed does not announce them.
const CHART_REFRESH_MS = 5000;
setInterval(() => { if (state.route && state.route.name === "vnf" && !document.hidden) refreshSoon(); },
  CHART_REFRESH_MS);

// A refresh of the page shown, at most once every 300 ms however many changes arrive.
// Not while the user types in a field of the page: it waits until they leave it.
function refreshSoon() {
  if (state.timer) return;
  state.timer = setTimeout(async () => {
    state.timer = null;
    const typing = document.activeElement && main.contains(document.activeElement)
      && ["INPUT", "SELECT"].includes(document.activeElement.tagName);
    if (typing) { refreshSoon(); return; }
    await render();
  }, 300);
}

function follow() {
  if (state.events) state.events.close();
  const live = document.getElementById("live");
  const events = new EventSource("/v1.0/board/live");
  state.events = events;
  events.onopen = () => { live.textContent = "live"; live.classList.add("on"); refreshSoon(); };
  events.onerror = () => { live.textContent = "reconnecting"; live.classList.remove("on"); };
  const relevant = (kind) => (message) => {
    const route = state.route || {};
    if (route.name === "overview" || route.name === "vnfs" || route.id === message.data
      || kind === "resync") refreshSoon();
  };
  for (const kind of ["vnf", "vnfd", "monitor", "resync"]) {
    events.addEventListener(kind, relevant(kind));
  }
}

// ---- views ----------------------------------------------------------------------------------

async function overview() {
  const o = await api("/v1.0/board/overview");
  const statuses = Object.entries(o.vnfs_by_status);
  const latency = o.heal_latency_ms
    ? `p50 ${o.heal_latency_ms.p50} ms · max ${o.heal_latency_ms.max} ms` : "no heal yet";
  const cards = el("div", { class: "grid" },
    el("div", { class: "card" }, el("div", { class: "sub", text: "VNFs" }),
      el("div", { class: "big", text: o.vnfs }),
      el("div", { class: "counts" }, statuses.map(([status, count]) =>
        el("a", { href: `#/vnfs?status=${encodeURIComponent(status)}` }, badge(status), ` ${count}`)))),
    el("div", { class: "card" }, el("div", { class: "sub", text: "VDU instances" }),
      el("div", { class: "counts" },
        el("span", {}, badge("up"), ` ${o.instances.up}`),
        el("span", {}, badge("down"), ` ${o.instances.down}`),
        el("span", {}, badge("pending"), ` ${o.instances.pending}`),
        el("span", { class: "muted", text: `unmonitored ${o.instances.unmonitored}` }))),
    el("div", { class: "card" }, el("div", { class: "sub", text: "Last hour" }),
      el("div", { class: "big", id: "heals-count",
        text: `${o.heals_last_hour.length} heal${o.heals_last_hour.length === 1 ? "" : "s"}` }),
      el("div", { class: "sub", text: `${o.failures_last_hour} failures · ${latency}` })),
    el("div", { class: "card" }, el("div", { class: "sub", text: "Monitors" }),
      el("div", { class: "big", text: o.monitors.length }),
      o.partitions_unheld.length
        ? el("div", { class: "warn", text: `${o.partitions_unheld.length} partitions unmonitored` })
        : el("div", { class: "sub", text: "every partition held" })));
  const heals = el("table", {},
    el("thead", {}, el("tr", {}, ["Failure", "VNF", "VDU", "Action", "Failure → ACTIVE"].map((h) => el("th", { text: h })))),
    el("tbody", {}, o.heals_last_hour.map((heal) => el("tr", {},
      el("td", { text: ago(heal.detected_at) }),
      el("td", {}, el("a", { href: `#/vnf/${heal.vnf_id}`, class: "mono", text: short(heal.vnf_id) })),
      el("td", { text: heal.vdu }),
      el("td", { text: heal.action }),
      el("td", { text: heal.latency_ms === null ? "healing…" : `${heal.latency_ms} ms` })))));
  const monitors = el("table", {},
    el("thead", {}, el("tr", {}, ["Monitor", "Partitions", "Self-report"].map((h) => el("th", { text: h })))),
    el("tbody", {}, o.monitors.map((m) => el("tr", {},
      el("td", { class: "mono", text: m.name }),
      el("td", { text: `${m.partitions.length}` }),
      el("td", { class: m.suspect ? "warn" : "muted", text: m.suspect || "healthy" })))));
  return el("div", {}, el("h1", { text: "Fleet" }), cards,
    el("div", { class: "section" }, el("h2", { text: "Heals in the last hour" }),
      o.heals_last_hour.length ? el("div", { class: "scroll" }, heals) : el("p", { class: "muted", text: "None." })),
    el("div", { class: "section" }, el("h2", { text: "Monitors" }), el("div", { class: "scroll" }, monitors)));
}

async function vnfs(route) {
  const q = route.params.get("q") || "";
  const status = route.params.get("status") || "";
  const page = Number(route.params.get("page") || 1);
  const query = new URLSearchParams({ q, status, page, per_page: 50 });
  const list = await api(`/v1.0/board/vnfs?${query}`);
  const go = (changes) => {
    const next = new URLSearchParams({ q, status, page: 1, ...changes });
    location.hash = `#/vnfs?${next}`;
  };
  const search = el("input", { type: "search", placeholder: "Search by name or id", value: q, id: "search" });
  search.addEventListener("change", () => go({ q: search.value }));
  const statusSelect = el("select", { id: "status-filter" },
    ["", "ACTIVE", "ERROR", "PENDING_CREATE", "PENDING_SCALE_OUT", "PENDING_SCALE_IN", "PENDING_HEAL", "PENDING_DELETE"]
      .map((s) => el("option", { value: s, selected: s === status, text: s || "any status" })));
  statusSelect.addEventListener("change", () => go({ status: statusSelect.value }));
  const pages = Math.max(1, Math.ceil(list.total / list.per_page));
  const table = el("table", { id: "vnf-list" },
    el("thead", {}, el("tr", {}, [["Name"], ["Id", "wide"], ["Status"], ["Instances"], ["Down"], ["Created", "wide"]]
      .map(([h, cls]) => el("th", { class: cls, text: h })))),
    el("tbody", {}, list.vnfs.map((v) => el("tr", { "data-vnf": v.id },
      el("td", {}, el("a", { href: `#/vnf/${v.id}`, text: v.name })),
      el("td", { class: "mono wide", text: short(v.id) }),
      el("td", {}, badge(v.status)),
      el("td", { text: v.instances }),
      el("td", { class: v.down ? "warn" : "", text: v.down }),
      el("td", { class: "wide muted", text: ago(v.created_at) })))));
  return el("div", {}, el("h1", { text: `VNFs (${list.total})` }),
    el("div", { class: "filters" }, search, statusSelect),
    el("div", { class: "scroll" }, table),
    el("div", { class: "pager" },
      el("button", { disabled: page <= 1, onclick: () => go({ page: page - 1 }), text: "Previous" }),
      el("span", { text: `page ${page} of ${pages}` }),
      el("button", { disabled: page >= pages, onclick: () => go({ page: page + 1 }), text: "Next" })));
}

function sparkline(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 140 28");
  if (!points || points.length === 0) return svg;
  const rtts = points.map(([, rtt]) => rtt).filter((r) => r !== null);
  const max = Math.max(1, ...rtts);
  const step = points.length > 1 ? 140 / (points.length - 1) : 0;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  const coords = [];
  points.forEach(([, rtt], i) => {
    if (rtt === null) {
      const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      dot.setAttribute("cx", i * step); dot.setAttribute("cy", 26); dot.setAttribute("r", 2);
      svg.append(dot);
    } else {
      coords.push(`${(i * step).toFixed(1)},${(26 - (rtt / max) * 24).toFixed(1)}`);
    }
  });
  line.setAttribute("points", coords.join(" "));
  svg.append(line);
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = rtts.length ? `round trips up to ${(max / 1000).toFixed(2)} ms` : "no answer";
  svg.append(title);
  return svg;
}

// A story line's colour: bad news red, recoveries green, the rest neutral.
function storyClass(text) {
  if (/^(ACTIVE|scaled|deleted)|: up\b/.test(text)) return "good";
  if (/\b(down|failed|failure|refused|skipped|no automatic action)\b/.test(text)) return "bad";
  return "";
}

async function act(description, request) {
  if (!window.confirm(description)) return;
  try {
    await request();
    refreshSoon();
  } catch (error) {
    window.alert(`${description} failed: ${error.message}`);
  }
}

async function vnf(route) {
  const data = await api(`/v1.0/board/vnfs/${route.id}`);
  const v = data.vnf;
  const rows = [];
  for (const [vdu, instances] of Object.entries(v.monitor || {})) {
    for (const i of instances) {
      // The newest probe the chart has, else the one the monitor stored with the state.
      const series = data.rtts[i.instance_id] || [];
      const newest = series.length ? series[series.length - 1][1] : undefined;
      const last = newest !== undefined
        ? (newest === null ? "no answer" : `${(newest / 1000).toFixed(2)} ms`)
        : i.last_result
          ? (i.last_result.rtt_us !== undefined ? `${(i.last_result.rtt_us / 1000).toFixed(2)} ms` : i.last_result.reason)
          : "";
      rows.push(el("tr", { "data-instance": i.instance_id, "data-state": i.state },
        el("td", { text: vdu }),
        el("td", { class: "mono", text: i.mgmt_ip }),
        el("td", {}, badge(i.state)),
        el("td", { class: "wide", text: ago(i.since) }),
        el("td", { text: last }),
        el("td", {}, sparkline(data.rtts[i.instance_id])),
        el("td", { class: "mono wide", text: i.monitor || "" })));
    }
  }
  const instances = el("table", { id: "instances" },
    el("thead", {}, el("tr", {}, [["VDU"], ["IP"], ["State"], ["Since", "wide"], ["Last result"], ["Round trips"], ["Monitor", "wide"]]
      .map(([h, cls]) => el("th", { class: cls, text: h })))),
    el("tbody", {}, rows));
  const buttons = [];
  if (state.me && state.me.may_write) {
    for (const policy of data.policies || []) {
      for (const type of ["out", "in"]) {
        buttons.push(el("button", {
          "data-action": `scale-${type}`,
          text: `Scale ${type} (${policy.name})`,
          onclick: () => act(`Scale ${type} ${v.name} by ${policy.name}?`, () =>
            api(`/v1.0/vnfs/${v.id}/actions`, { method: "POST", body: { scale: { type, policy: policy.name } } })),
        }));
      }
    }
    buttons.push(el("button", {
      class: "danger", "data-action": "delete", text: "Delete",
      onclick: () => act(`Delete ${v.name}? Its VDUs are removed.`, async () => {
        await api(`/v1.0/vnfs/${v.id}`, { method: "DELETE" });
      }),
    }));
  }
  const story = el("ol", { class: "timeline", id: "timeline" }, data.story.slice().reverse().map((line) =>
    el("li", { class: storyClass(line.text) },
      el("div", { class: "when", text: `${line.at} · +${(line.since_first_ms / 1000).toFixed(3)} s · ${line.who}` }),
      el("div", { text: line.text }))));
  return el("div", {},
    el("h1", {}, `${v.name} `, badge(v.status)),
    el("p", { class: "muted" },
      el("span", { class: "mono", text: v.id }), " · VNFD ",
      el("a", { href: `#/vnfd/${v.vnfd_id}`, class: "mono", text: short(v.vnfd_id) }),
      v.action_id ? el("span", {}, " · monitor action ", el("span", { class: "mono", text: v.action_id })) : null),
    v.error_reason ? el("p", { class: "warn", text: v.error_reason }) : null,
    el("div", { class: "actions" }, buttons),
    el("div", { class: "section" }, el("h2", { text: "VDU instances" }),
      rows.length ? el("div", { class: "scroll" }, instances) : el("p", { class: "muted", text: "No monitored instance." })),
    el("div", { class: "section" }, el("h2", { text: "Story" }), story));
}

function monitoringText(m) {
  const probe = m.driver === "http_ping"
    ? `http_ping on port ${m.port}, ${m.timeout_ms} ms timeout`
    : `ping: ${m.count} echo(es) ${m.interval_ms} ms apart, ${m.timeout_ms} ms timeout`;
  return `${probe}; failed after ${m.retry} attempt(s); from ${m.monitoring_delay_ms / 1000} s after boot`;
}

// An alarm trigger's action as Tacker names it: respawn, log, log_and_kill, SP1-out, SP1-in.
function alarmActionName(a) {
  return typeof a === "string" ? a : `${a.scale.policy}-${a.scale.direction}`;
}

const COMPARISONS = { gt: ">", ge: "≥", lt: "<", le: "≤", eq: "=", ne: "≠" };

async function vnfd(route) {
  const data = await api(`/v1.0/board/vnfds/${route.id}`);
  const d = data.vnfd;
  const spec = data.spec;
  const vdus = el("table", {},
    el("thead", {}, el("tr", {}, ["VDU", "Image", "Flavor", "Monitoring", "On failure"].map((h) => el("th", { text: h })))),
    el("tbody", {}, spec.vdus.map((vdu) => {
      const m = vdu.monitoring_policy;
      return el("tr", {},
        el("td", { text: vdu.name }),
        el("td", { text: vdu.image || "" }),
        el("td", { text: vdu.flavor || "" }),
        el("td", { text: m ? monitoringText(m) : "not monitored" }),
        el("td", { text: m ? m.failure_action : "" }));
    })));
  const policies = el("table", {},
    el("thead", {}, el("tr", {}, ["Scaling policy", "Targets", "Instances", "Step", "Cooldown"].map((h) => el("th", { text: h })))),
    el("tbody", {}, spec.scaling_policies.map((p) => el("tr", {},
      el("td", { text: p.name }),
      el("td", { text: p.targets.join(", ") }),
      el("td", { text: `${p.min_instances}–${p.max_instances} (start ${p.default_instances})` }),
      el("td", { text: p.increment }),
      el("td", { text: `${p.cooldown_s} s` })))));
  const triggers = spec.alarm_triggers || [];
  const alarms = el("table", {},
    el("thead", {}, el("tr", {}, ["Alarm trigger", "Condition", "For", "Actions", "VDUs"].map((h) => el("th", { text: h })))),
    el("tbody", {}, triggers.map((t) => el("tr", {},
      el("td", { text: t.name }),
      el("td", { class: "mono", text: `${t.aggregation}(${t.metric}) ${COMPARISONS[t.comparison]} ${t.threshold}` }),
      el("td", { text: `${t.evaluations} × ${t.period_s} s` }),
      el("td", { text: t.actions.map(alarmActionName).join(", ") }),
      el("td", { text: t.vdus.length ? t.vdus.join(", ") : "all" })))));
  return el("div", {},
    el("h1", { text: d.name }),
    el("p", { class: "muted", text: d.description }),
    el("p", { class: "muted" }, el("span", { class: "mono", text: d.id }),
      ` · ${d.template_source} · used by ${data.users} VNF(s)`),
    el("div", { class: "section" }, el("h2", { text: "VDUs" }), el("div", { class: "scroll" }, vdus)),
    spec.scaling_policies.length
      ? el("div", { class: "section" }, el("h2", { text: "Scaling" }), el("div", { class: "scroll" }, policies)) : null,
    triggers.length
      ? el("div", { class: "section" }, el("h2", { text: "Alarms" }), el("div", { class: "scroll" }, alarms)) : null,
    el("div", { class: "section" }, el("h2", { text: "TOSCA" }),
      el("pre", { class: "template mono", text: d.attributes.vnfd })));
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  if (!(await whoami())) return;
  follow();
  await render();
}

window.addEventListener("hashchange", render);
start();
