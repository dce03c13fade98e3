// The Centile dashboard: plain modern JS over the /v1 JSON API (docs/api.md),
// charts by the vendored Chart.js (global `Chart`). No framework and no build
// step, so what the binary serves is this file as written.
"use strict";

const KEY_STORE = "centile.key";
const TENANT_STORE = "centile.tenant";
const TAB_STORE = "centile.tab";
const TOOLS_STORE = "centile.tools";
const TABS = ["top", "daily", "feature", "perf", "live", "status"];
// Endpoints that take `tenant_id`; the others refuse unknown parameters.
const TENANT_SCOPED = ["v1/usage/", "v1/performance/", "v1/realtime"];
const AUTO_REFRESH_MS = 60_000;

// ------------------------------------------------------------ formatting
// en-US on purpose: the same digits whatever the browser's locale, so what
// is on screen can be checked against the API's numbers.
const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const msFmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const usdBig = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
// Small costs (cents and less) would all read $0.00 with two decimals.
const usdSmall = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4,
});

const none = (v) => v === null || v === undefined || Number.isNaN(v);
const fmtInt = (v) => (none(v) ? "—" : intFmt.format(v));
const fmtMs = (v) => (none(v) ? "—" : msFmt.format(v));
const fmtUsd = (v) => (none(v) ? "—" : (Math.abs(v) < 1 ? usdSmall : usdBig).format(v));
const fmtPct = (v) => (none(v) ? "—" : `${(v * 100).toFixed(v !== 0 && Math.abs(v) < 0.1 ? 2 : 1)}%`);
// Answers carry RFC 3339 UTC times; the dashboard shows UTC throughout.
const isoUtc = (t) => new Date(t).toISOString();
const fmtTime = (t) => (none(t) ? "—" : isoUtc(t).slice(0, 19).replace("T", " "));
const fmtDate = (t) => isoUtc(t).slice(0, 10);
const fmtBucket = (t, granularity) =>
  granularity === "day" || granularity === "week" ? fmtDate(t) : isoUtc(t).slice(5, 16).replace("T", " ");

function ago(t) {
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

// The first UTC day of "the last n days, today included".
function daysBack(n) {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() - (n - 1));
  return fmtDate(d);
}

// ------------------------------------------------------------ the API
class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title} (${status}): ${detail}` : `${title} (${status})`);
    this.status = status;
  }
}

function apiUrl(path, params = {}) {
  // Relative to the page, so a path prefix in front of the API keeps working.
  const url = new URL(path, document.baseURI);
  const tenant = sessionStorage.getItem(TENANT_STORE);
  if (tenant && TENANT_SCOPED.some((p) => path.startsWith(p))) params = { tenant_id: tenant, ...params };
  for (const [k, v] of Object.entries(params)) {
    if (!none(v) && v !== "") url.searchParams.set(k, v);
  }
  return url;
}

function authHeaders(accept) {
  const headers = { Accept: accept };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

// Turns a failed answer into an ApiError carrying the problem+json detail.
async function problem(res) {
  let title = res.statusText || "Error";
  let detail = "";
  try {
    const body = await res.json();
    title = body.title || title;
    detail = body.detail || "";
  } catch {
    // Not JSON (a proxy's page, say): the status line is all there is.
  }
  if (res.status === 401) showAuth(sessionStorage.getItem(KEY_STORE) ? "The key was refused." : "This API needs a key.");
  return new ApiError(res.status, title, detail);
}

async function getJson(path, params, signal) {
  let res;
  try {
    res = await fetch(apiUrl(path, params), { headers: authHeaders("application/json"), signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new Error(`Cannot reach the API: ${e.message}`);
  }
  if (!res.ok) throw await problem(res);
  return res.json();
}

// ------------------------------------------------------------ key handling
function takeKeyFromUrl() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const key = hash.get("key");
  if (key === null) return;
  if (key) sessionStorage.setItem(KEY_STORE, key);
  hash.delete("key");
  // Off the address bar and the history, so it is not shared or bookmarked.
  const rest = hash.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

function showAuth(reason) {
  document.getElementById("auth-reason").textContent = reason;
  document.getElementById("auth").hidden = false;
  document.getElementById("key-input").focus();
}

function hideAuth() {
  document.getElementById("auth").hidden = true;
  document.getElementById("key-input").value = "";
}

// ------------------------------------------------------------ panels
const controllers = {};

function panel(tab) {
  const el = document.getElementById(`panel-${tab}`);
  return {
    el,
    error: el.querySelector(".error"),
    state: el.querySelector(".state"),
    content: el.querySelector(".content"),
    range: el.querySelector(".range"),
    canvas: el.querySelector("canvas"),
  };
}

function setState(p, state, text = "") {
  p.el.dataset.state = state; // loading | ready | empty | error: a hook for tests
  p.state.textContent = text;
  p.content.hidden = state !== "ready";
}

function showError(p, e) {
  p.error.textContent = e.message || String(e);
  p.error.hidden = false;
}

// Loads one panel: cancels its previous load, shows loading, then the data,
// the empty state or the error.
async function load(tab) {
  controllers[tab]?.abort();
  const ctl = new AbortController();
  controllers[tab] = ctl;
  const p = panel(tab);
  p.el.setAttribute("aria-busy", "true");
  // A reload keeps what is on screen until the new answer is in.
  if (p.el.dataset.state !== "ready") setState(p, "loading", "Loading…");
  try {
    const empty = await LOADERS[tab](p, ctl.signal);
    if (ctl.signal.aborted) return;
    p.error.hidden = true;
    if (empty) setState(p, "empty", empty);
    else setState(p, "ready");
  } catch (e) {
    if (e.name === "AbortError") return;
    setState(p, "error");
    showError(p, e);
  } finally {
    if (controllers[tab] === ctl) p.el.removeAttribute("aria-busy");
  }
}

// Table rows from [{key, cells: [[col, text, numeric?]]}], built with
// textContent only: model ids and features come from events.
function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  const out = rows.map(({ key, cells, cls }) => {
    const tr = document.createElement("tr");
    if (key !== undefined) tr.dataset.key = key;
    if (cls) tr.className = cls;
    for (const [col, text, numeric] of cells) {
      const td = document.createElement("td");
      td.dataset.col = col;
      td.textContent = text;
      if (numeric) td.className = "num";
      tr.append(td);
    }
    return tr;
  });
  body.replaceChildren(...out);
}

// ------------------------------------------------------------ charts
const charts = {};
const COLORS = { p50: "#2f6fdf", p95: "#e08a1e", p99: "#c23b3b", calls: "rgba(120,130,150,.35)", cost: "#1e7b3a" };

function draw(tab, canvas, config) {
  if (typeof Chart === "undefined") throw new Error("The chart library did not load (assets/chart.umd.min.js).");
  charts[tab]?.destroy();
  charts[tab] = new Chart(canvas, config);
}

function chartDefaults() {
  if (typeof Chart === "undefined") return;
  Chart.defaults.animation = false; // redraws every few seconds on Live
  Chart.defaults.locale = "en-US"; // axis numbers as in the tables, whatever the browser's locale
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
}

// Horizontal time labels, thinned out, rather than a slanted wall of dates.
const flatTicks = { ticks: { maxRotation: 0, autoSkipPadding: 16 } };

const msAxis = (position = "left") => ({
  type: "linear", position, beginAtZero: true, title: { display: true, text: "ms" },
});

// ------------------------------------------------------------ Top Models
async function loadTop(p, signal) {
  const days = document.getElementById("top-days").value;
  const limit = document.getElementById("top-limit").value;
  const d = await getJson("v1/usage/top-models", { days, limit }, signal);
  p.range.textContent = `${fmtTime(d.start)} – ${fmtTime(d.end)} UTC`;
  if (!d.rows.length) return `No model calls in the last ${days} days.`;
  fillTable("top-table", d.rows.map((r) => ({
    key: r.model_id,
    cells: [
      ["model", r.model_id], ["provider", r.provider ?? "—"],
      ["requests", fmtInt(r.requests), 1], ["calls", fmtInt(r.calls), 1],
      ["error_rate", fmtPct(r.error_rate), 1], ["cost", fmtUsd(r.cost_usd), 1],
      ["reported", fmtUsd(r.reported_cost_usd), 1], ["computed", fmtUsd(r.computed_cost_usd), 1],
      ["input_tokens", fmtInt(r.input_tokens), 1], ["output_tokens", fmtInt(r.output_tokens), 1],
      ["p50", fmtMs(r.p50_response_time), 1], ["p95", fmtMs(r.p95_response_time), 1],
      ["p99", fmtMs(r.p99_response_time), 1],
    ],
  })));
  const pct = (k, label) => ({ label, data: d.rows.map((r) => r[k]), backgroundColor: COLORS[label] });
  draw("top", p.canvas, {
    type: "bar",
    data: {
      labels: d.rows.map((r) => r.model_id),
      datasets: [pct("p50_response_time", "p50"), pct("p95_response_time", "p95"), pct("p99_response_time", "p99")],
    },
    options: { scales: { y: msAxis() }, plugins: { title: { display: true, text: "Response time percentiles per model" } } },
  });
  return null;
}

// ------------------------------------------------------------ Daily Usage
async function loadDaily(p, signal) {
  const days = Number(document.getElementById("daily-days").value);
  const d = await getJson("v1/usage/stats", { group_by: "day", start: daysBack(days) }, signal);
  p.range.textContent = `${fmtTime(d.start)} – ${fmtTime(d.end)} UTC`;
  if (!d.rows.length) return `No usage in the last ${days} days.`;
  // Days without calls are not in the answer; the trend shows them as zero.
  const byDate = new Map(d.rows.map((r) => [r.date, r]));
  const labels = [];
  for (let t = new Date(`${fmtDate(d.start)}T00:00:00Z`); t < new Date(d.end); t.setUTCDate(t.getUTCDate() + 1)) {
    labels.push(fmtDate(t));
    if (labels.length > 800) break;
  }
  fillTable("daily-table", [...d.rows].reverse().map((r) => ({
    key: r.date,
    cells: [
      ["date", r.date], ["count", fmtInt(r.count), 1], ["cost", fmtUsd(r.cost_usd), 1],
      ["reported", fmtUsd(r.reported_cost_usd), 1], ["computed", fmtUsd(r.computed_cost_usd), 1],
    ],
  })));
  draw("daily", p.canvas, {
    data: {
      labels,
      datasets: [
        // order: the cost line is drawn over the bars, not hidden behind them.
        {
          type: "bar", label: "calls", data: labels.map((l) => byDate.get(l)?.count ?? 0),
          backgroundColor: COLORS.p50, yAxisID: "y", order: 1,
        },
        {
          type: "line", label: "cost (USD)", data: labels.map((l) => byDate.get(l)?.cost_usd ?? 0),
          borderColor: COLORS.cost, backgroundColor: COLORS.cost, yAxisID: "y1", order: 0,
        },
      ],
    },
    options: {
      scales: {
        x: flatTicks,
        y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "calls" } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "USD" } },
      },
    },
  });
  return null;
}

// ------------------------------------------------------------ By Feature
async function loadFeature(p, signal) {
  const days = Number(document.getElementById("feature-days").value);
  const d = await getJson("v1/usage/stats", { group_by: "feature", start: daysBack(days) }, signal);
  p.range.textContent = `${fmtTime(d.start)} – ${fmtTime(d.end)} UTC`;
  if (!d.rows.length) return `No usage in the last ${days} days.`;
  const total = d.rows.reduce((s, r) => s + r.count, 0);
  fillTable("feature-table", d.rows.map((r) => ({
    key: r.feature,
    cells: [
      ["feature", r.feature], ["count", fmtInt(r.count), 1], ["share", fmtPct(total ? r.count / total : 0), 1],
      ["cost", fmtUsd(r.cost_usd), 1], ["reported", fmtUsd(r.reported_cost_usd), 1],
      ["computed", fmtUsd(r.computed_cost_usd), 1],
    ],
  })));
  draw("feature", p.canvas, {
    type: "bar",
    data: {
      labels: d.rows.map((r) => r.feature),
      datasets: [{ label: "calls", data: d.rows.map((r) => r.count), backgroundColor: COLORS.p50 }],
    },
    options: {
      indexAxis: "y",
      plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
  return null;
}

// ------------------------------------------------------------ Performance
let modelsLoaded = false;

async function loadModels(signal) {
  if (modelsLoaded) return;
  const d = await getJson("v1/models", {}, signal);
  const select = document.getElementById("perf-model");
  const current = select.value;
  select.replaceChildren(new Option("All models", ""), ...d.models.map((m) =>
    new Option(m.name && m.name !== m.id ? `${m.name} (${m.id})` : m.id, m.id)));
  select.value = current;
  modelsLoaded = true;
}

function rememberTool(tool) {
  const tools = JSON.parse(sessionStorage.getItem(TOOLS_STORE) || "[]").filter((t) => t !== tool);
  if (tool) tools.unshift(tool);
  sessionStorage.setItem(TOOLS_STORE, JSON.stringify(tools.slice(0, 20)));
  document.getElementById("perf-tools").replaceChildren(...tools.map((t) => new Option(t)));
}

const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3, week: 7 * 86400e3 };

// Every bucket of the range, so a gap shows as a gap rather than a straight
// line across it; only buckets with calls are in the answer.
function buckets(d) {
  const step = BUCKET_MS[d.granularity];
  const start = new Date(d.start).getTime();
  const end = new Date(d.end).getTime();
  if (!step || !(end > start) || (end - start) / step > 2000) return null;
  const all = [];
  for (let t = start; t < end; t += step) all.push(t);
  const known = new Set(all);
  return d.rows.every((r) => known.has(new Date(r.time_bucket).getTime())) ? all : null;
}

async function loadPerf(p, signal) {
  await loadModels(signal);
  const model = document.getElementById("perf-model").value;
  const tool = document.getElementById("perf-tool").value.trim();
  const granularity = document.getElementById("perf-granularity").value;
  const d = await getJson("v1/performance/trends", { model_id: model, tool, granularity }, signal);
  p.range.textContent = `${fmtTime(d.start)} – ${fmtTime(d.end)} UTC`;
  if (!d.rows.length) return "No calls for this model and tool in this range.";
  fillTable("perf-table", [...d.rows].reverse().map((r) => ({
    key: r.time_bucket,
    cls: r.is_final ? "" : "open",
    cells: [
      ["time", fmtBucket(r.time_bucket, d.granularity)], ["calls", fmtInt(r.call_count), 1],
      ["success_rate", fmtPct(r.success_rate), 1], ["p50", fmtMs(r.p50_response_time), 1],
      ["p95", fmtMs(r.p95_response_time), 1], ["p99", fmtMs(r.p99_response_time), 1],
      ["max", fmtMs(r.max_response_time), 1], ["final", r.is_final ? "final" : "open"],
    ],
  })));
  const times = buckets(d) ?? d.rows.map((r) => new Date(r.time_bucket).getTime());
  const byTime = new Map(d.rows.map((r) => [new Date(r.time_bucket).getTime(), r]));
  const series = (k) => times.map((t) => byTime.get(t)?.[k] ?? null);
  // Open buckets (not final yet) are drawn hollow: they may still change.
  const open = times.map((t) => byTime.get(t)?.is_final === false);
  const line = (k, label) => ({
    type: "line", label, data: series(k), borderColor: COLORS[label], backgroundColor: COLORS[label],
    pointBackgroundColor: open.map((o) => (o ? "#fff" : COLORS[label])), spanGaps: false, yAxisID: "y",
  });
  draw("perf", p.canvas, {
    data: {
      labels: times.map((t) => fmtBucket(t, d.granularity)),
      datasets: [
        line("p50_response_time", "p50"), line("p95_response_time", "p95"), line("p99_response_time", "p99"),
        { type: "bar", label: "calls", data: series("call_count"), backgroundColor: COLORS.calls, yAxisID: "y1" },
      ],
    },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: {
        x: flatTicks,
        y: msAxis(),
        y1: {
          beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { precision: 0 },
          title: { display: true, text: "calls" },
        },
      },
      plugins: {
        title: {
          display: true,
          text: `${model || "all models"} · ${tool || "all tools"} · per ${d.granularity} (hollow points: not final yet)`,
        },
      },
    },
  });
  return null;
}

// ------------------------------------------------------------ Live (SSE)
// EventSource cannot send an Authorization header, so the stream is read
// with fetch() and parsed here; it reconnects with backoff on any failure.
let live = null;
const LIVE_SILENCE_MS = 20_000; // pushes come at least every 5 s

function setConn(state, text) {
  const el = document.getElementById("live-conn");
  el.dataset.state = state;
  el.textContent = text;
}

function startLive() {
  stopLive();
  const ctl = new AbortController();
  live = ctl;
  liveLoop(ctl.signal);
}

function stopLive() {
  live?.abort();
  live = null;
  setConn("idle", "not connected");
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

async function liveLoop(signal) {
  const p = panel("live");
  if (p.el.dataset.state !== "ready") setState(p, "loading", "Connecting…");
  let delay = 1000;
  while (!signal.aborted) {
    setConn("connecting", "connecting…");
    // One connection: aborted by the tab closing or by a silent stream.
    const conn = new AbortController();
    const stop = () => conn.abort();
    signal.addEventListener("abort", stop, { once: true });
    let watchdog = setTimeout(stop, LIVE_SILENCE_MS);
    try {
      let res;
      try {
        res = await fetch(apiUrl("v1/realtime/stream"), {
          headers: authHeaders("text/event-stream"), signal: conn.signal, cache: "no-store",
        });
      } catch (e) {
        if (e.name === "AbortError") throw e;
        throw new Error(`Cannot reach the API: ${e.message}`);
      }
      if (!res.ok) {
        const err = await problem(res);
        if (res.status === 401) { setState(p, "error"); showError(p, err); setConn("idle", "needs a key"); return; }
        throw err;
      }
      setConn("live", "live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(watchdog);
        watchdog = setTimeout(stop, LIVE_SILENCE_MS);
        buf += value;
        // Events end with a blank line; CRLF and CR are allowed line ends.
        let end;
        while ((end = buf.search(/\r\n\r\n|\n\n|\r\r/)) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + (buf.startsWith("\r\n\r\n", end) ? 4 : 2));
          onSseEvent(p, block);
          delay = 1000; // a working stream resets the backoff
        }
      }
      throw new Error("The live stream ended.");
    } catch (e) {
      if (signal.aborted) return;
      const why = e.name === "AbortError" ? "No data from the live stream for 20 s." : e.message;
      showError(p, new Error(`${why} Reconnecting in ${delay / 1000} s…`));
      if (p.el.dataset.state !== "ready") setState(p, "error");
      setConn("retrying", `reconnecting in ${delay / 1000} s`);
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 15_000);
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", stop);
    }
  }
}

function onSseEvent(p, block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alives
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  const body = JSON.parse(data.join("\n"));
  if (event === "realtime") renderLive(p, body);
  else if (event === "error") {
    // The server could not compute this push; the stream stays open and
    // the next good push clears the banner. What was shown stays.
    showError(p, new Error(`Live view: ${body.error || body.detail || "no answer"}`));
    if (p.el.dataset.state !== "ready") setState(p, "error");
  }
}

function renderLive(p, d) {
  p.error.hidden = true;
  setState(p, "ready");
  p.el.dataset.updates = String(Number(p.el.dataset.updates || 0) + 1);
  document.getElementById("live-asof").textContent = `as of ${fmtTime(d.as_of)} UTC · window ${d.window_seconds} s`;
  document.getElementById("live-total").textContent = fmtInt(d.total_events);
  document.getElementById("live-users").textContent = fmtInt(d.active_users);
  const minutes = d.events_per_minute || [];
  document.getElementById("live-rate").textContent = fmtInt(minutes.at(-1)?.count);
  fillTable("live-table", (d.top_pairs || []).map((r) => ({
    key: `${r.model_id}\u0000${r.feature}`,
    cells: [["model", r.model_id], ["feature", r.feature], ["count", fmtInt(r.count), 1]],
  })));
  if (!d.top_pairs?.length) p.state.textContent = "No events in the last 5 minutes.";
  const labels = minutes.map((m) => fmtBucket(m.minute, "minute").slice(6));
  const counts = minutes.map((m) => m.count);
  const chart = charts.live;
  if (chart && chart.canvas === p.canvas) {
    // Updated in place: a new chart every push would flicker.
    chart.data.labels = labels;
    chart.data.datasets[0].data = counts;
    chart.update("none");
  } else {
    draw("live", p.canvas, {
      type: "bar",
      data: { labels, datasets: [{ label: "events per minute", data: counts, backgroundColor: COLORS.p50 }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }
}

// ------------------------------------------------------------ Completeness
async function loadStatus(p, signal) {
  const d = await getJson("v1/windows/status", {}, signal);
  document.getElementById("status-watermark").textContent = d.low_watermark
    ? `Low watermark ${fmtTime(d.low_watermark)} UTC (${ago(d.low_watermark)})`
    : "No watermark yet: no source partition has reported.";
  if (!d.tiers.length || d.tiers.every((t) => !t.windows)) return "No windows stored yet.";
  fillTable("status-table", d.tiers.map((t) => ({
    key: t.tier,
    cells: [
      ["tier", t.tier], ["since", fmtTime(t.since)], ["windows", fmtInt(t.windows), 1],
      ["final", fmtInt(t.final), 1], ["open", fmtInt(t.open), 1],
      ["final_pct", fmtPct(t.windows ? t.final / t.windows : null), 1],
      ["latest_final_end", fmtTime(t.latest_final_end)], ["oldest_open_start", fmtTime(t.oldest_open_start)],
    ],
  })));
  draw("status", p.canvas, {
    type: "bar",
    data: {
      labels: d.tiers.map((t) => t.tier),
      datasets: [
        { label: "final", data: d.tiers.map((t) => t.final), backgroundColor: COLORS.cost },
        { label: "open", data: d.tiers.map((t) => t.open), backgroundColor: COLORS.p95 },
      ],
    },
    options: {
      indexAxis: "y",
      scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } },
    },
  });
  return null;
}

// ------------------------------------------------------------ wiring
const LOADERS = { top: loadTop, daily: loadDaily, feature: loadFeature, perf: loadPerf, status: loadStatus };

function currentTab() {
  return document.querySelector('.tabs [aria-selected="true"]').dataset.tab;
}

function activate(tab) {
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  for (const t of TABS) panel(t).el.hidden = t !== tab;
  sessionStorage.setItem(TAB_STORE, tab);
  refresh();
}

function refresh() {
  const tab = currentTab();
  if (tab === "live") startLive();
  else {
    stopLive();
    load(tab);
  }
}

function init() {
  takeKeyFromUrl();
  // A #key=… link pasted into an open tab changes only the hash.
  window.addEventListener("hashchange", () => {
    if (!new URLSearchParams(location.hash.slice(1)).has("key")) return;
    takeKeyFromUrl();
    hideAuth();
    refresh();
  });
  chartDefaults();
  const tenant = document.getElementById("tenant");
  tenant.value = sessionStorage.getItem(TENANT_STORE) || "";
  tenant.addEventListener("change", () => {
    sessionStorage.setItem(TENANT_STORE, tenant.value.trim());
    refresh();
  });
  rememberTool("");
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => activate(b.dataset.tab));
  for (const [id, tab] of [["top-days", "top"], ["top-limit", "top"], ["daily-days", "daily"], ["feature-days", "feature"],
    ["perf-model", "perf"], ["perf-granularity", "perf"]]) {
    document.getElementById(id).addEventListener("change", () => load(tab));
  }
  document.getElementById("perf-tool").addEventListener("change", (e) => {
    rememberTool(e.target.value.trim());
    load("perf");
  });
  document.getElementById("refresh").addEventListener("click", refresh);
  document.getElementById("change-key").addEventListener("click", () => showAuth("Enter a Centile API key."));
  document.getElementById("key-cancel").addEventListener("click", hideAuth);
  document.getElementById("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORE, document.getElementById("key-input").value.trim());
    hideAuth();
    modelsLoaded = false;
    refresh();
  });
  // Views other than Live are re-read now and then while someone looks.
  setInterval(() => {
    if (document.visibilityState === "visible" && currentTab() !== "live" && document.getElementById("auth").hidden) refresh();
  }, AUTO_REFRESH_MS);
  const saved = sessionStorage.getItem(TAB_STORE);
  activate(TABS.includes(saved) ? saved : "top");
}

init();
