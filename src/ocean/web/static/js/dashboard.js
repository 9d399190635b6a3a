// The dashboard's figures: a snapshot read once, then kept current from the live stream.
//
// The server's accounting writes _admin/daily, _admin/hourly, _admin/endpoints
// and _admin/status with `incr`, and every increment is published on the bus
// with the new totals of the fields it touched. So the page reads the
// entities once (and again after a reconnect), then merges each published
// total as it arrives on /live/_admin/*: no polling. These counters only
// grow, so a merge keeps the larger value, whatever order the snapshot and
// the stream arrive in. The day's p50/p95 come from its dist field `ms` (a
// sketch of every request's time, published as {count, ..., p50, p95}; the one
// with the larger count is the newer). _admin/events messages feed the live
// list, and the p50/p95 of recent requests when the day has no `ms` yet.

import { request, entitiesAfter, parseMetrics, dayKey, hourKey, localParts, setTimeZone, timeZone, HOUR_MS, DAY_MS } from "./client.js";
import { $, el } from "./dom.js";
import { reportQuietly } from "./live.js";

const COUNTER_ROUTES = ["daily", "hourly", "endpoints", "status"];
const RECENT_MAX = 500;       // request events kept for p50/p95
const FEED_MAX = 100;         // rows in the live list
const STORAGE_EVERY_MS = 5000; // storage figures re-read at most this often, and only after activity
const QUIET_PATHS = /^\/(metrics|health|admin\/backup)$|^\/entities\/_admin\//; // the dashboard's own reads trigger no re-read
const BACKUP_TIMEOUT_MS = 3600e3; // a backup answers when it is written: give a large one time


export function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—";
}

export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return "—";
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function fmtDuration(s) {
  if (!Number.isFinite(s)) return "—";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** The q-quantile (0..1) of sorted numbers, nearest-rank. */
export function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function mergeMax(map, key, fields) {
  const cur = map.get(key) || {};
  for (const [name, value] of Object.entries(fields)) {
    if (name.startsWith("_")) continue;
    if (value && typeof value === "object" && typeof value.count === "number") {  // a dist field's summary
      if (!(name in cur) || !(cur[name].count > value.count)) cur[name] = value;
      continue;
    }
    if (typeof value !== "number") continue;
    if (!(name in cur) || value > cur[name]) cur[name] = value;
  }
  map.set(key, cur);
}

export class Dashboard {
  /** @param {(kind: string, text: string) => void} notify shows a message at the top of the page */
  constructor(notify) {
    this.notify = notify;
    this.charts = {};
    this.reset();
    this._renderQueued = false;
    this._storageTimer = null;
    this._storageAt = 0;
    setInterval(() => this._tickUptime(), 1000);
  }

  reset() {
    this.counters = Object.fromEntries(COUNTER_ROUTES.map((r) => [r, new Map()]));
    this.recent = [];
    this.seen = new Set();
    this.health = null;
    this.metrics = {};
    this.healthAt = 0;
    this.startedAt = null;
    this.backupInfo = null;     // GET /admin/backup's last backup (it says where); admin keys only
    this.backupDenied = false;  // the key is not an admin key: /health's figures only
    const feed = $("#feed");
    if (feed) feed.replaceChildren(el("li", "feed-empty", "No requests yet. They appear here as they happen."));
    this.render();
  }

  /** Read the counters (last 48 h, 30 days, today) and the storage figures; false if the key is refused. */
  async resync() {
    await this.refreshStorage(); // first: /health names the time zone the keys are in
    const now = new Date();
    const reads = await Promise.all([
      entitiesAfter("_admin/hourly", hourKey(new Date(now - 48 * HOUR_MS)), 100),
      entitiesAfter("_admin/daily", dayKey(new Date(now - 30 * DAY_MS)), 100),
      entitiesAfter("_admin/endpoints", dayKey(new Date(now - DAY_MS)), 5),
      entitiesAfter("_admin/status", dayKey(new Date(now - DAY_MS)), 5),
    ]);
    const failed = reads.find((r) => !r.ok);
    if (failed) return failed;
    ["hourly", "daily", "endpoints", "status"].forEach((route, i) => {
      for (const [key, fields] of reads[i].map) mergeMax(this.counters[route], key, fields);
    });
    this.render();
    return { ok: true };
  }

  /** Re-read /health and /metrics (uptime, SSE clients, entities, events, log size). */
  async refreshStorage() {
    this._storageAt = Date.now();
    const [health, metrics] = await Promise.all([request("/health"), request("/metrics")]);
    if (health.ok && health.body) {
      const started = Date.now() - health.body.uptime_s * 1000;
      if (this.startedAt !== null && started - this.startedAt > 2000) {
        this.notify("info", `The server restarted ${fmtDuration(health.body.uptime_s)} ago; figures were read again.`);
      }
      this.startedAt = started;
      setTimeZone(health.body.timezone || "UTC");
      setText("#today-zone", timeZone());
      this.health = health.body;
      this.healthAt = Date.now();
    }
    if (metrics.ok) this.metrics = parseMetrics(metrics.body);
    await this.refreshBackup();
    this.renderStorage();
  }

  /** Ask where the last backup is when /health reports one this page has not seen (admin keys only). */
  async refreshBackup() {
    const last = this.health && this.health.last_backup;
    if (!last || this.backupDenied || (this.backupInfo && this.backupInfo.created_at === last.created_at)) return;
    const res = await request("/admin/backup");
    if (res.status === 403) this.backupDenied = true;
    else if (res.ok && res.body) this.backupInfo = res.body.last_backup;
  }

  /** The button: make a backup into the server's backup_dir, then show it.
   *
   * The button is restored in the same step that shows the outcome, so a page never shows the
   * result beside a button still saying "Backing up…" (the storage refresh comes after). */
  async runBackup() {
    const button = $("#backup-run");
    if (button) {
      button.disabled = true;
      button.textContent = "Backing up…";
    }
    let res;
    try {
      res = await request("/admin/backup", { method: "POST", timeoutMs: BACKUP_TIMEOUT_MS });
    } finally {
      if (button) {
        button.disabled = false;
        button.textContent = "Back up now";
      }
    }
    if (res.ok && res.body) {
      this.backupInfo = res.body;
      this.backupDenied = false;
      this.notify("info", `Backup written: ${res.body.path} (seq ${fmtInt(res.body.seq)}, ${fmtBytes(res.body.bytes)}, writes paused ${fmtMs(res.body.pause_ms)}).`);
    } else if (res.status === 403) {
      this.notify("error", "Backups need an admin key; this key is not one.");
    } else {
      this.notify("error", `The backup failed: ${res.problem}.`);
    }
    await this.refreshStorage();
  }

  _storageSoon() {
    if (this._storageTimer) return;
    const wait = Math.max(0, this._storageAt + STORAGE_EVERY_MS - Date.now());
    this._storageTimer = setTimeout(() => {
      this._storageTimer = null;
      this.refreshStorage().catch(reportQuietly);
    }, wait);
  }

  /** One message from /live/_admin/*. */
  onMessage(data) {
    const route = data._route || "";
    if (route === "_admin/events") {
      if (data._id && this.seen.has(data._id)) return;
      if (data._id) {
        this.seen.add(data._id);
        if (this.seen.size > 4 * RECENT_MAX) this.seen = new Set([...this.seen].slice(-RECENT_MAX));
      }
      this.recent.push(data);
      if (this.recent.length > RECENT_MAX) this.recent.splice(0, this.recent.length - RECENT_MAX);
      this.addFeedRow(data);
      if (!QUIET_PATHS.test(data.path || "")) this._storageSoon();
      this.queueRender();
      return;
    }
    const name = route.slice("_admin/".length);
    if (route.startsWith("_admin/") && this.counters[name] && data._key) {
      // an admin may also remove or overwrite these entities: then the stream's value wins
      if (data._op === "remove" || data._op === "save") this.counters[name].delete(data._key);
      if (data._op !== "remove") mergeMax(this.counters[name], data._key, data);
      this.queueRender();
    }
  }

  queueRender() {
    if (this._renderQueued) return;
    this._renderQueued = true;
    requestAnimationFrame(() => {
      this._renderQueued = false;
      try { this.render(); } catch (e) { reportQuietly(e); }
    });
  }

  render() {
    this.renderTotals();
    this.renderCharts();
    this.renderEndpoints();
    this.renderStatus();
  }

  renderTotals() {
    const today = this.counters.daily.get(dayKey(new Date())) || {};
    const req = today.requests || 0, errs = today.errors || 0;
    setText("#stat-requests", fmtInt(req));
    setText("#stat-errors", fmtInt(errs));
    setText("#stat-errors-rate", req ? `${((100 * errs) / req).toFixed(1)}% of requests` : "no requests yet");
    setFigure("#stat-avg", req ? fmtMs((today.ms_total || 0) / req) : "—");
    if (today.ms && today.ms.count) {  // the day's dist field: every request of the day
      setFigure("#stat-p50", fmtMs(today.ms.p50));
      setFigure("#stat-p95", fmtMs(today.ms.p95));
      setText("#stat-pwindow", `today, ${fmtInt(today.ms.count)} requests`);
      setText("#stat-p95-note", "today");
      return;
    }
    const ms = this.recent.map((e) => Number(e.ms)).filter(Number.isFinite).sort((a, b) => a - b);
    setFigure("#stat-p50", fmtMs(quantile(ms, 0.5)));
    setFigure("#stat-p95", fmtMs(quantile(ms, 0.95)));
    setText("#stat-pwindow", ms.length ? `last ${fmtInt(ms.length)} requests` : "waiting for live requests");
    setText("#stat-p95-note", "live window");
  }

  renderStorage() {
    const m = this.metrics, h = this.health || {};
    setText("#stat-entities", fmtInt(m.ocean_engine_entities));
    setText("#stat-events", fmtInt(m.ocean_engine_events));
    setText("#stat-routes", fmtInt(m.ocean_engine_routes));
    setFigure("#stat-log", fmtBytes(m.ocean_engine_log_bytes));
    const clients = Number.isFinite(h.sse_clients) ? h.sse_clients : m.ocean_sse_clients;
    setText("#stat-clients", fmtInt(clients));
    setText("#stat-seq", fmtInt(Number.isFinite(h.seq) ? h.seq : m.ocean_engine_seq));
    setText("#server-version", h.version ? `v${h.version} · ${h.implementation || "?"} core · fsync ${h.fsync || "?"}` : "");
    this.renderBackup();
    this._tickUptime();
  }

  renderBackup() {
    const last = (this.health && this.health.last_backup) || this.backupInfo;
    if (!last) {
      setText("#backup-when", "none yet");
      setText("#backup-meta", "");
      setText("#backup-where", "");
      return;
    }
    const at = new Date(last.created_at);
    const ago = fmtDuration((Date.now() - at.getTime()) / 1000);
    setText("#backup-when", `${last.created_at.replace("T", " ").slice(0, 19)} UTC (${ago} ago)`);
    setText("#backup-meta", `seq ${fmtInt(last.seq)} · ${fmtBytes(last.bytes)} · took ${Number(last.seconds).toFixed(2)} s`);
    const info = this.backupInfo && this.backupInfo.created_at === last.created_at ? this.backupInfo : null;
    setText("#backup-where", info ? info.path : this.backupDenied ? "where: an admin key can see" : "");
    const where = $("#backup-where");
    if (where) where.title = info ? info.path : "";
  }

  _tickUptime() {
    if (!this.health) return;
    setText("#stat-uptime", fmtDuration(this.health.uptime_s + (Date.now() - this.healthAt) / 1000));
  }

  renderCharts() {
    if (typeof uPlot === "undefined") return;
    this._chart("hourly", HOUR_MS, chartHours(48));
    this._chart("daily", DAY_MS, chartDays(30));
  }

  _chart(name, step, slots) {
    const xs = [], reqs = [], errs = [];
    for (const [key, x] of slots) {
      const f = this.counters[name].get(key) || {};
      xs.push(x / 1000);
      reqs.push(f.requests || null); // null, not 0: no bar outline along the axis
      errs.push(f.errors || null);
    }
    const data = [xs, reqs, errs];
    const box = $(`#chart-${name}`);
    if (!box) return;
    let chart = this.charts[name];
    if (chart && chart.oceanZone !== timeZone()) { // the zone became known: labels name it
      chart.destroy();
      chart = null;
    }
    if (!chart) {
      box.replaceChildren();
      chart = new uPlot(chartOptions(box, step), data, box);
      chart.oceanZone = timeZone();
      const first = !this.charts[name] && !this._observed?.[name];
      this.charts[name] = chart;
      if (first) {
        this._observed = { ...(this._observed || {}), [name]: true };
        new ResizeObserver(() => {
          const current = this.charts[name];
          const w = Math.floor(box.clientWidth);
          if (current && w > 0 && w !== current.width) current.setSize({ width: w, height: chartHeight(box) });
        }).observe(box);
      }
    } else {
      chart.setData(data);
    }
    const total = reqs.reduce((a, b) => a + (b || 0), 0);
    setText(`#chart-${name}-total`, `${fmtInt(total)} requests`);
  }

  renderEndpoints() {
    const body = $("#endpoints-body");
    if (!body) return;
    const fields = this.counters.endpoints.get(dayKey(new Date())) || {};
    const rows = Object.entries(fields).sort((a, b) => b[1] - a[1]).slice(0, 10);
    const top = rows.length ? rows[0][1] : 1;
    const total = Object.values(fields).reduce((a, b) => a + b, 0);
    body.replaceChildren(...rows.map(([name, n]) => {
      const tr = el("tr");
      const cell = el("td", "endpoint");
      const sp = name.indexOf(" ");
      cell.append(el("span", `method m-${name.slice(0, sp).toLowerCase()}`, name.slice(0, sp)), el("span", "tmpl", name.slice(sp + 1)));
      const bar = el("td", "bar-cell");
      const fill = el("span", "bar");
      fill.style.width = `${Math.max(2, (100 * n) / top)}%`;
      bar.append(fill);
      tr.append(cell, bar, el("td", "num", fmtInt(n)), el("td", "num dim", total ? `${((100 * n) / total).toFixed(0)}%` : ""));
      return tr;
    }));
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "empty", "No requests today yet.");
      td.colSpan = 4;
      tr.append(td);
      body.append(tr);
    }
  }

  renderStatus() {
    const list = $("#status-list");
    if (!list) return;
    const fields = this.counters.status.get(dayKey(new Date())) || {};
    const rows = Object.entries(fields).sort((a, b) => a[0].localeCompare(b[0]));
    const total = rows.reduce((a, [, n]) => a + n, 0);
    const strip = $("#status-strip");
    if (strip) {
      strip.replaceChildren(...rows.map(([code, n]) => {
        const seg = el("span", `seg s${code[0]}xx`);
        seg.style.flexGrow = String(n);
        seg.title = `${code}: ${n}`;
        return seg;
      }));
    }
    list.replaceChildren(...rows.map(([code, n]) => {
      const li = el("li", `status-row s${code[0]}xx`);
      li.append(el("span", "code", code), el("span", "num", fmtInt(n)), el("span", "num dim", total ? `${((100 * n) / total).toFixed(1)}%` : ""));
      return li;
    }));
    if (!rows.length) list.append(el("li", "empty", "No requests today yet."));
  }

  addFeedRow(ev) {
    const feed = $("#feed");
    if (!feed) return;
    const empty = feed.querySelector(".feed-empty");
    if (empty) empty.remove();
    const li = el("li", `feed-row s${String(ev.status || "0")[0]}xx fresh`);
    const at = typeof ev._at === "string" ? ev._at.slice(11, 19) : "";
    li.append(
      el("span", "time", at),
      el("span", `method m-${String(ev.method || "").toLowerCase()}`, ev.method || "?"),
      el("span", "path", ev.path || ""),
      el("span", "status", String(ev.status ?? "")),
      el("span", "ms", fmtMs(Number(ev.ms))),
    );
    li.title = `${ev.method} ${ev.path} → ${ev.status} in ${ev.ms} ms at ${ev._at}`;
    feed.prepend(li);
    setTimeout(() => li.classList.remove("fresh"), 1200);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  }
}

function setText(sel, text) {
  const node = $(sel);
  if (node && node.textContent !== text) node.textContent = text;
}

/** A figure like "0.74 ms" with its unit in a smaller span. */
function setFigure(sel, text) {
  const node = $(sel);
  if (!node || node.textContent === text) return;
  const m = /^(\S+) (ms|B|KiB|MiB|GiB|TiB)$/.exec(text);
  if (!m) {
    node.textContent = text;
    return;
  }
  node.replaceChildren(document.createTextNode(m[1]), el("span", "unit", m[2]));
}

// A chart's x axis is the server zone's wall clock drawn as if it were UTC (uPlot's tzDate is
// UTC), so a bar sits at its local hour or date. Hours come from the real hours of the last 48
// (a repeated local hour is one bar, as it is one key; a skipped one is no bar); days step back
// through the calendar from today's local date (a 23- or 25-hour day is one bar).
function chartHours(n) {
  const slots = [];
  const last = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  for (let i = n - 1; i >= 0; i -= 1) {
    const date = new Date(last - i * HOUR_MS);
    const p = localParts(date);
    const key = hourKey(date);
    if (slots.length && slots[slots.length - 1][0] === key) continue;
    slots.push([key, Date.UTC(p.y, p.m - 1, p.d, p.h)]);
  }
  return slots;
}

function chartDays(n) {
  const today = localParts(new Date());
  const slots = [];
  for (let i = n - 1; i >= 0; i -= 1) {
    const x = Date.UTC(today.y, today.m - 1, today.d - i);
    const d = new Date(x);
    slots.push([`${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`, x]);
  }
  return slots;
}

function chartHeight(box) {
  return Math.max(140, Math.min(220, Math.floor(box.clientWidth * 0.38)));
}

function chartOptions(box, step) {
  const bars = uPlot.paths.bars({ size: [0.72, 48], gap: 1 });
  const hourly = step < 86400e3;
  return {
    width: Math.max(200, Math.floor(box.clientWidth)),
    height: chartHeight(box),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    padding: [8, 26, 0, 0], // room on the right for the last tick label
    scales: { x: { time: true, range: (u, min, max) => [min - step / 2000, max + step / 2000] }, y: { range: (u, min, max) => [0, Math.max(4, max * 1.1)] } },
    legend: { live: true },
    cursor: { points: { show: false }, drag: { x: false, y: false } },
    series: [
      { label: `${hourly ? "hour" : "day"} (${timeZone()})`, value: hourly ? "{YYYY}-{MM}-{DD} {HH}:00" : "{YYYY}-{MM}-{DD}" },
      { label: "requests", stroke: "#1c6dd0", fill: "rgba(28,109,208,0.55)", paths: bars, points: { show: false }, value: (u, v) => fmtInt(v || 0) },
      { label: "errors", stroke: "rgba(209,73,91,0.9)", width: 0, fill: "rgba(209,73,91,0.9)", paths: bars, points: { show: false }, value: (u, v) => fmtInt(v || 0) },
    ],
    axes: [
      { stroke: "#5b6577", grid: { show: false }, ticks: { stroke: "#d8dee8" }, values: hourly ? "{HH}:00\n{MMM} {D}" : "{MMM} {D}" },
      { stroke: "#5b6577", size: 48, grid: { stroke: "#eef1f6" }, ticks: { show: false },
        values: (u, ticks) => ticks.map((v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : String(v))) },
    ],
  };
}
