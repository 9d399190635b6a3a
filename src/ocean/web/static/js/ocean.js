// ocean.js — the browser client of an ocean server: one ES module, no dependencies.
//
// Served by every ocean server at /ocean.js (no key needed), and used by its
// admin dashboard. From any page (CORS is open):
//
//   import { Ocean } from "http://127.0.0.1:8080/ocean.js";
//   const ocean = new Ocean({ url: "http://127.0.0.1:8080", key: "ok_..." });
//   await ocean.incr("analytics/daily", "2026-02-10", "page_views");   // {page_views: 4522}
//   const stats = await ocean.read("analytics/daily", "2026-02-10");     // {page_views: 4522, ...}
//   const feed = ocean.live("analytics/events", (ev) => show(ev), { onGap, onError });
//
// Calls resolve with the answer or reject with an OceanError carrying the
// server's `code` (and `line`/`column` for parse errors). `exec` resolves with
// one result per command, failures included: the server runs the commands
// after a failed one too. `live` keeps a stream open across dropped
// connections and server restarts, resuming after the last message it saw
// (Last-Event-ID), and says when it could not (a gap) or when the key is
// refused (EventSource itself cannot see a 401 or 403: a probe asks).

/**
 * An error answer, a call that got no answer, or input refused before sending.
 * `code` is the server's machine code ("not_found", "unauthorized", "parse_error", ...),
 * or "unreachable" / "timeout" when nothing came back.
 */
export class OceanError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, status?: number, line?: number|null, column?: number|null}} [info]
   */
  constructor(message, info = {}) {
    super(message);
    this.name = "OceanError";
    /** @type {string} */ this.code = info.code || "error";
    /** @type {number} HTTP status; 0 when there was no answer */ this.status = info.status || 0;
    /** @type {number|null} */ this.line = info.line ?? null;
    /** @type {number|null} */ this.column = info.column ?? null;
    /** @type {boolean} for a live feed's onError: true when the feed stopped (the key was refused) */
    this.fatal = false;
  }
}

/** What a failed request means to a person, by HTTP status (0: no answer at all). */
export function describeProblem(status, body) {
  const said = body && typeof body === "object" && body.error ? body.error : "";
  if (status === 0) return "the server is unreachable (stopped, restarting, or the network dropped)";
  if (status === 401) return "the server rejected this key" + (said ? ` (${said})` : "");
  if (status === 403) return "this key is not allowed to do that" + (said ? `: ${said}` : "");
  if (status === 429) return "too many open streams" + (said ? `: ${said}` : "");
  if (status === 503) return "the server is shutting down or starting" + (said ? ` (${said})` : "");
  return `the server answered ${status}` + (said ? `: ${said}` : "");
}

/** States of a live feed (`onState`); the values are what the dashboard shows. */
export const STATES = Object.freeze({
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  denied: "key rejected",
  forbidden: "not allowed",
  stopped: "stopped",
});

const ROUTE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+){0,9}$/;
const KEY = /^[A-Za-z0-9._-]{1,256}$/;
const PREFIX = /^(\*|[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+){0,9}(\/\*)?)$/;

function checked(kind, value, re, code) {
  if (typeof value !== "string" || !re.test(value)) {
    throw new OceanError(`${kind} ${JSON.stringify(value)} may hold only letters, digits, '.', '_' and '-'` +
      (kind === "route" ? " in 1-10 segments split by '/'" : ""), { code });
  }
  return value;
}

/** The error an answer carries: the server's wire shape `{ok: false, error, code, line?, column?}`. */
function errorOf(res) {
  const b = res.body && typeof res.body === "object" ? res.body : {};
  return new OceanError(b.error || res.problem, {
    code: b.code || res.code || `http_${res.status}`, status: res.status, line: b.line, column: b.column,
  });
}

/**
 * @typedef {{ok: boolean, data?: any, columns?: string[], error?: string, code?: string,
 *            line?: number, column?: number}} Result  one command of a script, as the server answers it
 * @typedef {{ok: boolean, status: number, body: any, problem: string, code: string}} Reply
 *   a raw answer: `body` is parsed JSON (or text); `problem` says what went wrong to a person
 * @typedef {{last?: number, lastEventId?: string|null, probe?: string,
 *            onGap?: (info: object) => void,
 *            onError?: (err: OceanError) => void,
 *            onState?: (state: string, detail: string) => void,
 *            onOpen?: (first: boolean) => void,
 *            onEvent?: (name: string, data: object) => void}} LiveOptions
 */

/** A client of one ocean server. */
export class Ocean {
  /**
   * @param {{url?: string, key?: string | (() => string), timeoutMs?: number}} [opts]
   *   `url`: the server ("" or none: this page's own origin); `key`: the API key, or a
   *   function that returns the current one; `timeoutMs`: how long a call may take (15 s).
   */
  constructor(opts = {}) {
    this.url = String(opts.url || "").replace(/\/+$/, "");
    this.key = opts.key || "";
    this.timeoutMs = opts.timeoutMs || 15000;
  }

  /** The key to send now. */
  currentKey() {
    return typeof this.key === "function" ? this.key() || "" : this.key;
  }

  /**
   * One request; never rejects: `{ok, status, body, problem, code}` (status 0: no answer).
   * @param {string} path e.g. "/entities/analytics/daily?limit=5"
   * @param {{method?: string, body?: string, json?: any, contentType?: string, key?: string,
   *          accept?: string, timeoutMs?: number}} [opts]
   * @returns {Promise<Reply>}
   */
  async request(path, opts = {}) {
    const key = opts.key !== undefined ? opts.key : this.currentKey();
    const headers = {};
    if (key) headers["X-Ocean-Key"] = key;
    if (opts.accept) headers.Accept = opts.accept;
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["Content-Type"] = "application/json";
    } else if (body !== undefined) {
      headers["Content-Type"] = opts.contentType || "text/plain; charset=utf-8";
    }
    const ms = opts.timeoutMs || this.timeoutMs;
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; ctrl.abort(); }, ms);
    let resp;
    try {
      resp = await fetch(this.url + path, { method: opts.method || "GET", headers, body, cache: "no-store", signal: ctrl.signal });
    } catch (e) {
      clearTimeout(timer);
      const problem = timedOut ? `the server did not answer within ${ms / 1000} s` : describeProblem(0);
      return { ok: false, status: 0, body: null, problem, code: timedOut ? "timeout" : "unreachable" };
    }
    let parsed = null;
    try {
      const text = await resp.text();
      const type = resp.headers.get("Content-Type") || "";
      parsed = type.includes("json") && text ? JSON.parse(text) : text;
    } catch (e) {
      parsed = null;
    } finally {
      clearTimeout(timer);
    }
    const code = resp.ok ? "" : (parsed && parsed.code) || `http_${resp.status}`;
    return { ok: resp.ok, status: resp.status, body: parsed, problem: resp.ok ? "" : describeProblem(resp.status, parsed), code };
  }

  /**
   * One request whose answer is wanted: resolves with the parsed body, rejects with an OceanError.
   * @param {string} method @param {string} path
   * @param {{body?: string, json?: any, contentType?: string}} [opts]
   */
  async call(method, path, opts = {}) {
    const res = await this.request(path, { ...opts, method });
    if (!res.ok) throw errorOf(res);
    return res.body;
  }

  /**
   * Add to counters atomically; resolves with the new totals, `{field: total}`.
   * `incr(route, key, "page_views")` adds 1; `incr(route, key, {"POST /drop": 1, bytes: 512})` adds those.
   * @param {string} route @param {string} key
   * @param {...(string|Object<string, number>)} fields
   * @returns {Promise<Object<string, number>>}
   */
  async incr(route, key, ...fields) {
    checked("route", route, ROUTE, "invalid_route");
    checked("key", key, KEY, "invalid_key");
    const amounts = new Map();
    for (const f of fields) {
      const pairs = typeof f === "string" ? [[f, 1]] : Object.entries(f || {});
      for (const [name, n] of pairs) {
        if (typeof n !== "number" || !Number.isFinite(n)) {
          throw new OceanError(`amount for ${JSON.stringify(name)} must be a finite number`, { code: "invalid_amount" });
        }
        amounts.set(name, (amounts.get(name) || 0) + n);
      }
    }
    if (!amounts.size) throw new OceanError("incr needs at least one field", { code: "invalid_field" });
    const parts = [...amounts].map(([name, n]) => `.${JSON.stringify(String(name))} ${n}`);
    const [res] = await this.exec(`incr ${route} @${key} ${parts.join(" ")}`, { check: true });
    return res.data;
  }

  /**
   * Add values to uniq (distinct-count) fields; resolves with the new estimates, `{visitors: 2}`.
   * `uniq(route, key, {visitors: "u-123"})` or `uniq(route, key, {visitors: ["u-1", "u-2"]})`.
   * @param {string} route @param {string} key @param {Object<string, *>} values
   * @returns {Promise<Object<string, number>>}
   */
  async uniq(route, key, values) {
    return this._addToSketches("uniq", route, key, values);
  }

  /**
   * Add numbers to dist (distribution) fields; resolves with the new summaries,
   * `{ms: {count, sum, min, max, p50, p90, p95, p99}}`. `observe(route, key, {ms: 12.5})`.
   * @param {string} route @param {string} key @param {Object<string, number|number[]>} values
   * @returns {Promise<object>}
   */
  async observe(route, key, values) {
    return this._addToSketches("observe", route, key, values);
  }

  async _addToSketches(command, route, key, values) {
    checked("route", route, ROUTE, "invalid_route");
    checked("key", key, KEY, "invalid_key");
    const parts = Object.entries(values || {}).map(
      ([name, v]) => `.${JSON.stringify(String(name))} ${JSON.stringify(Array.isArray(v) ? v : [v])}`);
    if (!parts.length) throw new OceanError(`${command} needs at least one field`, { code: "invalid_field" });
    const [res] = await this.exec(`${command} ${route} @${key} ${parts.join(" ")}`, { check: true });
    return res.data;
  }

  /**
   * An entity's fields, counters merged in; rejects with code "not_found" when it does not exist.
   * @param {string} route @param {string} key @returns {Promise<object>}
   */
  async read(route, key) {
    return (await this.entity(route, key)).payload;
  }

  /**
   * An entity's record: `{route, key, payload, created_at, updated_at, version}`.
   * @param {string} route @param {string} key @returns {Promise<object>}
   */
  entity(route, key) {
    checked("route", route, ROUTE, "invalid_route");
    checked("key", key, KEY, "invalid_key");
    return this.call("GET", `/entity/${route}/${key}`);
  }

  /**
   * Replace an entity's plain fields (Drops `save`); a `null` key appends an event instead.
   * @param {string} route @param {string|null} key @param {any} payload @param {{keep?: number}} [opts]
   * @returns {Promise<{drop_id: string, seq: number, route: string, key: string|null, created_at: string}>}
   */
  save(route, key, payload, opts = {}) {
    return this.drop(route, payload, { ...opts, key });
  }

  /**
   * One drop: an event (no key), or an entity write where `"+field": n` entries increment.
   * @param {string} route @param {any} payload @param {{key?: string|null, keep?: number}} [opts]
   */
  drop(route, payload, opts = {}) {
    const doc = { route, payload };
    if (opts.key !== undefined && opts.key !== null) doc.key = opts.key;
    if (opts.keep !== undefined) doc.keep = opts.keep;
    return this.call("POST", "/drop", { json: doc });
  }

  /**
   * Run a Drops script: resolves with one result per command, failures included
   * (`{ok: false, error, code, line, column}`); `{check: true}` rejects with the first failure.
   * @param {string} script @param {{check?: boolean}} [opts] @returns {Promise<Result[]>}
   */
  async exec(script, opts = {}) {
    const results = await this.call("POST", "/exec", { body: script });
    if (opts.check) {
      const bad = results.find((r) => !r.ok);
      if (bad) throw new OceanError(bad.error, { code: bad.code, status: 200, line: bad.line, column: bad.column });
    }
    return results;
  }

  /**
   * Run a SQL query: resolves with the rows as objects (keys in column order), `rows.columns` naming them.
   * @param {string} query @returns {Promise<Array<object> & {columns: string[]}>}
   */
  async sql(query) {
    const body = await this.call("POST", "/sql", { body: query });
    const rows = body.rows || [];
    Object.defineProperty(rows, "columns", { value: body.columns || [], enumerable: false });
    return rows;
  }

  /**
   * Watch the drops under `prefix` ("analytics/events", "analytics/*", "*") live.
   * `onMessage(data, id)` gets each drop's fields plus `_route`, `_key`, `_id`, `_at`.
   * The feed resumes after the last message it saw whenever the connection drops;
   * `onGap` is called when the server could not replay everything missed (read
   * your figures again); `onError(err)` when the key is refused (`err.code`
   * "unauthorized" or "forbidden", `err.fatal`: the feed stops) or the server is
   * away ("unreachable", not fatal: the feed keeps retrying, 1 s doubling to 5 s).
   * @param {string} prefix @param {(data: object, id: string) => void} onMessage
   * @param {LiveOptions} [opts] @returns {LiveFeed}
   */
  live(prefix, onMessage, opts = {}) {
    checked("prefix", prefix, PREFIX, "invalid_route");
    return new LiveFeed(this, prefix, onMessage, opts).start();
  }
}

/** A live feed from `Ocean.live`: `close()` ends it; `lastEventId` and `state` say where it is. */
export class LiveFeed {
  constructor(ocean, prefix, onMessage, opts) {
    this.ocean = ocean;
    this.prefix = prefix;
    this.onMessage = onMessage;
    this.opts = opts;
    /** @type {string|null} the id of the last message delivered */
    this.lastEventId = opts.lastEventId ?? null;
    this.state = STATES.stopped;
    this.es = null;
    this.opened = 0;
    this.retryMs = 1000;
    this.timer = null;
    this.stopped = true;
  }

  /** @returns {LiveFeed} */
  start() {
    this.stopped = false;
    this._connect();
    return this;
  }

  /** Stop for good (no more callbacks). */
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this._set(STATES.stopped, "");
  }

  _call(name, ...args) {
    const fn = this.opts[name];
    if (!fn) return;
    try { fn(...args); } catch (e) { quietly(e); }
  }

  _set(state, detail) {
    this.state = state;
    this._call("onState", state, detail || "");
  }

  _url() {
    const q = new URLSearchParams();
    const key = this.ocean.currentKey();
    if (key) q.set("_key", key);
    if (this.lastEventId !== null) q.set("last_event_id", this.lastEventId);
    else if (this.opts.last) q.set("last", String(this.opts.last));
    return `${this.ocean.url}/live/${this.prefix}?${q}`;
  }

  _connect() {
    this._set(this.opened ? STATES.reconnecting : STATES.connecting, this.opened ? "opening a new stream" : "");
    const es = new EventSource(this._url());
    this.es = es;
    es.onopen = () => {
      if (es !== this.es) return;
      const first = this.opened === 0;
      this.opened += 1;
      this.retryMs = 1000;
      this._set(STATES.live, "");
      this._call("onOpen", first);
    };
    es.onmessage = (e) => {
      if (es !== this.es) return;
      if (e.lastEventId) this.lastEventId = e.lastEventId;
      let data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      try { this.onMessage(data, e.lastEventId); } catch (err) { quietly(err); }
    };
    for (const name of ["gap", "overflow", "end"]) {
      es.addEventListener(name, (e) => {
        if (es !== this.es) return;
        let data = {};
        try { data = JSON.parse(e.data); } catch (err) { /* keep {} */ }
        if (name === "gap") this._call("onGap", data);
        else this._set(STATES.reconnecting, data.reason || data.error || `the server ended the stream (${name})`);
        this._call("onEvent", name, data);
        if (name === "end" && data.code === "unauthorized") {
          // the key was revoked: the browser would only meet a 401 it cannot read; ask now
          es.close();
          this.es = null;
          this._diagnose();
        }
      });
    }
    es.onerror = () => {
      if (es !== this.es) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser retries by itself (the server asked for 3 s) and resumes with Last-Event-ID.
        this._set(STATES.reconnecting, "connection lost; the browser is reconnecting");
        return;
      }
      es.close(); // refused with an error status: the browser gives up; find out why
      this.es = null;
      this._diagnose();
    };
  }

  async _diagnose() {
    const health = await this.ocean.request("/health", { timeoutMs: 5000 });
    if (this.stopped) return;
    if (health.status === 0 || health.status >= 500) {
      this._call("onError", Object.assign(errorOf(health), { fatal: false }));
      return this._retry(health.status === 0 ? "the server is unreachable" : "the server is not ready");
    }
    // The same key check as the stream's, without opening one.
    const probe = await this.ocean.request(this.opts.probe || `/stream/${this.prefix}?last=0`,
                                           { timeoutMs: 5000, accept: "application/json" });
    if (this.stopped) return;
    if (probe.status === 401 || probe.status === 403) {
      this._set(probe.status === 401 ? STATES.denied : STATES.forbidden, probe.problem);
      this.stopped = true;
      this._call("onError", Object.assign(errorOf(probe), { fatal: true }));
      return;
    }
    return this._retry(probe.ok ? "the stream closed" : probe.problem);
  }

  _retry(why) {
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 5000);
    this._set(STATES.reconnecting, `${why}; retrying in ${Math.round(wait / 1000)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this._connect();
    }, wait);
  }
}

/** A bug in a callback must not stop a feed; keep it visible to developers only. */
export function quietly(err) {
  try { console.debug("ocean:", err); } catch (e) { /* no console */ }
}
