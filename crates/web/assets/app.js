// mynah's live dashboard. Plain JavaScript, no build step, no network access beyond this server.
// Updates arrive over Server-Sent Events once a second; the statistics table keeps one row
// element per endpoint and only rewrites cells whose text changed, so 200+ endpoints stay cheap.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);

let setup = null;
let last = null; // the latest update
let runNumber = -1;
let points = [];
let sortKey = "requests";
let sortAsc = false;
const rows = new Map(); // "METHOD name" -> { tr, cells }
let rowOrder = [];
let activeTab = "stats";

const COLS = ["method", "name", "requests", "failures", "rps", "fps", "p50", "p90", "p95", "p99", "max", "avg"];

// Number formatters are costly to create: one per precision, made once.
const formats = new Map();
function fmt(v, digits) {
  if (v === null || v === undefined) return "-";
  if (typeof v !== "number") return String(v);
  const d = digits === undefined ? -1 : digits;
  let f = formats.get(d);
  if (!f) {
    f = d < 0 ? new Intl.NumberFormat("en-US") : new Intl.NumberFormat("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
    formats.set(d, f);
  }
  return f.format(v);
}

function cellText(key, v) {
  if (key === "rps" || key === "fps") return fmt(v, 1);
  if (["p50", "p90", "p95", "p99", "max", "avg"].includes(key)) return v === null ? "-" : fmt(v, v < 10 ? 2 : v < 100 ? 1 : 0);
  return fmt(v);
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m${String(sec).padStart(2, "0")}s`;
  if (m) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

function fmtBytes(b) {
  if (b === null || b === undefined) return "-";
  if (b >= 1 << 30) return (b / (1 << 30)).toFixed(2) + " GiB";
  return (b / (1 << 20)).toFixed(1) + " MiB";
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    showMessage(msg);
    return false;
  }
  showMessage(null);
  return true;
}

function showMessage(text) {
  const m = $("message");
  m.hidden = !text;
  m.textContent = text || "";
}

// ---- statistics table -------------------------------------------------------------------

function makeRow() {
  const tr = document.createElement("tr");
  const cells = {};
  for (const k of COLS) {
    const td = document.createElement("td");
    if (k === "name") td.className = "name";
    else if (k !== "method") td.className = "num";
    tr.appendChild(td);
    cells[k] = td;
  }
  return { tr, cells, data: null, key: "" };
}

function fillRow(row, e) {
  row.data = e;
  row.key = e.method + " " + e.name;
  for (const k of COLS) {
    const text = cellText(k, e[k]);
    const td = row.cells[k];
    if (td.textContent !== text) td.textContent = text;
    if (k === "name" && td.title !== e.name) td.title = e.name;
  }
  const failing = e.failures > 0;
  if (row.cells.failures.classList.contains("fail") !== failing) row.cells.failures.classList.toggle("fail", failing);
}

function compare(a, b) {
  let x = a.data[sortKey], y = b.data[sortKey];
  if (x === null || x === undefined) x = -Infinity;
  if (y === null || y === undefined) y = -Infinity;
  let c = typeof x === "string" ? (x < y ? -1 : x > y ? 1 : 0) : x - y;
  if (c === 0) c = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  return sortAsc ? c : -c;
}

function renderTable(stats) {
  const body = $("stats-body");
  const seen = new Set();
  for (const e of stats.endpoints) {
    const key = e.method + " " + e.name;
    seen.add(key);
    let row = rows.get(key);
    if (!row) { row = makeRow(); rows.set(key, row); }
    fillRow(row, e);
  }
  for (const [key, row] of rows) {
    if (!seen.has(key)) { row.tr.remove(); rows.delete(key); }
  }
  const sorted = [...rows.values()].sort(compare);
  const changed = sorted.length !== rowOrder.length || sorted.some((r, i) => r !== rowOrder[i]);
  if (changed) {
    const frag = document.createDocumentFragment();
    for (const r of sorted) frag.appendChild(r.tr);
    body.appendChild(frag);
    rowOrder = sorted;
  }
  let total = $("stats-total").firstChild;
  if (!total) {
    const r = makeRow();
    $("stats-total").appendChild(r.tr);
    total = r.tr;
    total._row = r;
  }
  fillRow(total._row, stats.total);
}

function resort() {
  rowOrder = [];
  document.querySelectorAll("#stats-table th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.key === sortKey);
    th.classList.toggle("asc", th.dataset.key === sortKey && sortAsc);
  });
  if (last && last.stats) renderTable(last.stats);
}

document.querySelectorAll("#stats-table th").forEach((th) => {
  th.addEventListener("click", () => {
    const k = th.dataset.key;
    if (sortKey === k) sortAsc = !sortAsc;
    else { sortKey = k; sortAsc = k === "method" || k === "name"; }
    resort();
  });
});

// ---- charts (hand-drawn on canvas) ------------------------------------------------------

function drawChart(canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const left = 56, right = 12, top = 22, bottom = 22;
  const pw = w - left - right, ph = h - top - bottom;
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? Math.max(points[points.length - 1].t, t0 + 1) : 1;
  let ymax = 0;
  for (const s of series) for (const p of points) { const v = p[s.key]; if (v !== null && v > ymax) ymax = v; }
  ymax = niceMax(ymax);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#d0d7de";
  ctx.fillStyle = "#656d76";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(fmtAxis((ymax * i) / 4), left - 6, y + 4);
  }
  ctx.textAlign = "center";
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    ctx.fillText(fmtDuration(t), left + (pw * i) / 4, h - 6);
  }
  let lx = left;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    for (const p of points) {
      const v = p[s.key];
      if (v === null || v === undefined) { pen = false; continue; }
      const x = left + ((p.t - t0) / (t1 - t0)) * pw;
      const y = top + ph - (v / ymax) * ph;
      if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
    }
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillRect(lx, 6, 10, 10);
    ctx.fillStyle = "#1f2328";
    ctx.textAlign = "left";
    ctx.fillText(s.label, lx + 14, 15);
    lx += ctx.measureText(s.label).width + 32;
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtAxis(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return v % 1 === 0 ? String(v) : v.toFixed(1);
}

function drawCharts() {
  if (activeTab !== "charts") return;
  drawChart($("chart-rps"), [
    { key: "rps", label: "requests/s", color: "#1f6feb" },
    { key: "fps", label: "failures/s", color: "#cf222e" },
  ]);
  drawChart($("chart-latency"), [
    { key: "p50", label: "p50", color: "#1a7f37" },
    { key: "p95", label: "p95", color: "#9a6700" },
    { key: "p99", label: "p99", color: "#8250df" },
  ]);
  drawChart($("chart-users"), [{ key: "users", label: unitLabel(), color: "#1f6feb" }]);
}

function unitLabel() {
  return (last && last.stats && last.stats.unit) || "users";
}

// ---- the other tabs -------------------------------------------------------------------------

function renderFailures(stats) {
  $("failures-count").textContent = stats.failure_groups ? `(${stats.failure_groups})` : "";
  if (activeTab !== "failures") return;
  const body = $("failures-body");
  const frag = document.createDocumentFragment();
  for (const f of stats.failures) {
    const tr = document.createElement("tr");
    for (const [v, cls] of [[f.method, ""], [f.name, "name"], [f.kind, ""], [f.message, "name"], [fmt(f.count), "num"]]) {
      const td = document.createElement("td");
      td.textContent = v;
      if (cls) td.className = cls;
      if (cls === "name") td.title = v;
      tr.appendChild(td);
    }
    frag.appendChild(tr);
  }
  body.replaceChildren(frag);
  const more = stats.failure_groups - stats.failures.length;
  $("failures-more").hidden = more <= 0;
  $("failures-more").textContent = `${more} more failure groups are in the failures CSV.`;
}

function renderErrors(stats) {
  if (activeTab !== "errors") return;
  const frag = document.createDocumentFragment();
  for (const e of stats.errors) {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td></td><td class=num></td>";
    tr.children[0].textContent = e.kind;
    tr.children[1].textContent = fmt(e.count);
    frag.appendChild(tr);
  }
  $("errors-body").replaceChildren(frag);
}

function renderRatios(stats) {
  if (activeTab !== "ratios") return;
  const box = $("ratios");
  if (!stats.ratios) { box.textContent = "This run has no user classes (a replay): the recording sets what is sent."; return; }
  const frag = document.createDocumentFragment();
  for (const c of stats.ratios) {
    const div = document.createElement("div");
    div.className = "ratio-class";
    const h = document.createElement("div");
    h.innerHTML = `<span class="bar"></span><b></b> <span></span>`;
    h.children[0].style.width = Math.round(c.share * 200) + "px";
    h.children[1].textContent = c.name;
    h.children[2].textContent = `${fmt(c.users)} users (${(c.share * 100).toFixed(1)}%)` + (c.recorded ? ", recorded sessions" : "");
    div.appendChild(h);
    const ul = document.createElement("ul");
    for (const t of c.tasks) {
      const li = document.createElement("li");
      li.textContent = `${(t.share * 100).toFixed(1)}%  ${t.name}`;
      ul.appendChild(li);
    }
    div.appendChild(ul);
    frag.appendChild(div);
  }
  box.replaceChildren(frag);
}

// ---- header, health, panels -----------------------------------------------------------------

function render() {
  const u = last;
  if (!u) return;
  const phase = u.phase;
  const badge = $("phase");
  badge.textContent = phase;
  badge.className = "badge " + phase;
  const running = phase === "running" || phase === "stopping" || phase === "starting";
  const controls = setup && setup.mode === "run";
  $("start-panel").hidden = !controls || running;
  $("start-title").textContent = phase === "finished" ? "Start a new load test" : "Start a load test";
  $("edit-panel").hidden = !controls || phase !== "running" || u.open_model;
  $("stop").hidden = !(phase === "running" || phase === "starting");
  $("reset").hidden = phase !== "running" || !controls;
  const watch = $("watch-note");
  watch.hidden = !(setup && setup.mode === "replay") && !u.open_model;
  watch.textContent = setup && setup.mode === "replay"
    ? "Replay: the recording sets the load. This page watches it and can stop it; start a new replay from the command line."
    : "Open model: the scenario's arrival rate sets the load, so the user count cannot be changed here; stop and reset work.";
  if (u.message) showMessage(u.message);

  const h = u.health || {};
  $("cpu").textContent = h.cpu_percent === null || h.cpu_percent === undefined ? "-" : `${h.cpu_percent.toFixed(0)}% of ${h.cores * 100}% (${h.cores} core${h.cores === 1 ? "" : "s"})`;
  $("rss").textContent = fmtBytes(h.rss_bytes);
  $("lag-box").hidden = h.lag_ms === null || h.lag_ms === undefined;
  $("lag").textContent = h.lag_ms === null || h.lag_ms === undefined ? "-" : h.lag_ms.toFixed(1) + " ms";
  const sat = h.saturated || (!running && u.generator_warning);
  $("saturated").hidden = !sat;
  $("saturated").textContent = sat ? "Generator saturated: " + sat + " — the numbers describe mynah, not the target" : "";

  const s = u.stats;
  if (!s) return;
  $("users-label").textContent = s.unit || "users";
  $("users").textContent = s.arrival_rate !== null && s.arrival_rate !== undefined
    ? `${fmt(s.users)} (${fmt(s.arrival_rate, 1)}/s)`
    : `${fmt(s.users)}${s.target_users !== s.users ? " → " + fmt(s.target_users) : ""}`;
  $("rps").textContent = fmt(s.total.rps, 1);
  $("fail-rate").textContent = s.total.requests ? ((100 * s.total.failures) / s.total.requests).toFixed(2) + "%" : "0%";
  $("total-requests").textContent = fmt(s.total.requests);
  $("elapsed").textContent = fmtDuration(s.elapsed_s) + (s.planned_s ? " / " + fmtDuration(s.planned_s) : "");
  const unit = unitLabel();
  $("chart-users-title").textContent = unit.charAt(0).toUpperCase() + unit.slice(1);
  if (document.activeElement !== $("edit-users") && document.activeElement !== $("edit-rate") && !$("edit-users").dataset.touched) {
    $("edit-users").value = s.target_users;
  }
  if (activeTab === "stats") renderTable(s);
  renderFailures(s);
  renderErrors(s);
  renderRatios(s);
}

function onUpdate(u) {
  const started = performance.now();
  if (u.run !== runNumber) {
    runNumber = u.run;
    points = [];
    for (const [, r] of rows) r.tr.remove();
    rows.clear();
    rowOrder = [];
    $("edit-users").dataset.touched = "";
  }
  const p = u.point;
  if (p && (!points.length || p.t > points[points.length - 1].t)) {
    points.push(p);
    if (points.length > 3600) points.shift();
  }
  last = u;
  render();
  drawCharts();
  // How long the page spent on this update (the browser test prints it).
  window.mynahUpdateMs = performance.now() - started;
}

function connect() {
  const es = new EventSource(withToken("api/events"));
  es.addEventListener("history", (ev) => {
    const h = JSON.parse(ev.data);
    runNumber = h.run;
    points = h.points;
  });
  es.addEventListener("update", (ev) => onUpdate(JSON.parse(ev.data)));
  es.onerror = () => {
    const b = $("phase");
    b.textContent = "reconnecting";
    b.className = "badge";
  };
}

// ---- wiring -----------------------------------------------------------------------------------

document.querySelectorAll(".tabs button").forEach((b) => {
  b.addEventListener("click", () => {
    activeTab = b.dataset.tab;
    document.querySelectorAll(".tabs button").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll(".tab").forEach((t) => (t.hidden = t.id !== "tab-" + activeTab));
    if (activeTab === "stats") resort();
    render();
    drawCharts();
  });
});

document.querySelectorAll(".downloads a").forEach((a) => {
  a.href = withToken("download/" + a.dataset.file);
  a.setAttribute("download", a.dataset.file);
});

$("start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const num = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  const text = (id) => ($(id).value.trim() === "" ? null : $(id).value.trim());
  await post("api/start", {
    users: num("users-input"),
    spawn_rate: num("spawn-rate"),
    host: text("host"),
    run_time: text("run-time"),
  });
});

$("edit-users").addEventListener("input", () => ($("edit-users").dataset.touched = "1"));
$("edit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const users = Number($("edit-users").value);
  const rate = $("edit-rate").value.trim() === "" ? null : Number($("edit-rate").value);
  if (await post("api/users", { users, spawn_rate: rate })) $("edit-users").dataset.touched = "";
});

$("stop").addEventListener("click", () => post("api/stop", {}));
$("reset").addEventListener("click", () => post("api/reset", {}));
window.addEventListener("resize", drawCharts);

async function init() {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch("api/setup", { headers });
  if (r.status === 401) {
    showMessage("This dashboard needs its token: open it as " + location.origin + "/?token=SECRET (the --web-auth token).");
    return;
  }
  setup = await r.json();
  document.title = "mynah: " + setup.title;
  $("title").textContent = setup.title;
  if (setup.users !== null) $("users-input").value = setup.users;
  if (setup.spawn_rate !== null) { $("spawn-rate").value = setup.spawn_rate; $("edit-rate").value = setup.spawn_rate; }
  if (setup.host !== null) $("host").value = setup.host;
  if (setup.run_time_s !== null) $("run-time").value = setup.run_time_s + "s";
  if (setup.shape) {
    $("shape-note").hidden = false;
    $("shape-note").textContent = "The scenario's load shape: " + setup.shape + ". Leave Users empty to run it; a user count replaces it.";
  }
  resort();
  connect();
}

init();
