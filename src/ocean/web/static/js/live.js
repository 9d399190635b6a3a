// One live SSE stream that keeps itself connected and says what state it is in.
//
// The browser's EventSource reconnects by itself after a dropped connection
// and sends Last-Event-ID, so the server replays what was missed. It gives up
// for good when the server answers with an error status (401, 403, 503 while
// draining): then this class asks the server why (health, then the key) and
// either reports a key problem or opens a new EventSource with
// ?last_event_id= after a backoff, so the page recovers without a reload.

import { request } from "./client.js";

export const STATES = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  denied: "key rejected",
  forbidden: "not allowed",
  stopped: "stopped",
};

export class LiveStream {
  /**
   * @param {string} prefix e.g. "_admin/*"
   * @param {{key: () => string, last?: number, probe: string,
   *          onMessage: (data: object, seq: string) => void,
   *          onState: (state: string, detail: string) => void,
   *          onOpen?: (first: boolean) => void, onNamed?: (name: string, data: object) => void}} opts
   */
  constructor(prefix, opts) {
    this.prefix = prefix;
    this.opts = opts;
    this.es = null;
    this.lastId = null;
    this.opened = 0;
    this.retryMs = 1000;
    this.timer = null;
    this.state = STATES.stopped;
    this.stopped = true;
  }

  start() {
    this.stop();
    this.stopped = false;
    this.opened = 0;
    this.lastId = null;
    this.retryMs = 1000;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this._set(STATES.stopped, "");
  }

  _set(state, detail) {
    this.state = state;
    try { this.opts.onState(state, detail || ""); } catch (e) { reportQuietly(e); }
  }

  _url() {
    const q = new URLSearchParams({ _key: this.opts.key() });
    if (this.lastId !== null) q.set("last_event_id", this.lastId);
    else if (this.opts.last) q.set("last", String(this.opts.last));
    return `/live/${this.prefix}?${q}`;
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
      if (this.opts.onOpen) {
        try { this.opts.onOpen(first); } catch (e) { reportQuietly(e); }
      }
    };
    es.onmessage = (e) => {
      if (es !== this.es) return;
      if (e.lastEventId) this.lastId = e.lastEventId;
      let data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      try { this.opts.onMessage(data, e.lastEventId); } catch (err) { reportQuietly(err); }
    };
    for (const name of ["gap", "overflow", "end"]) {
      es.addEventListener(name, (e) => {
        if (es !== this.es) return;
        let data = {};
        try { data = JSON.parse(e.data); } catch (err) { /* keep {} */ }
        if (name !== "gap") this._set(STATES.reconnecting, data.reason || data.error || `the server ended the stream (${name})`);
        if (this.opts.onNamed) {
          try { this.opts.onNamed(name, data); } catch (err) { reportQuietly(err); }
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
      es.close();
      this.es = null;
      this._diagnose();
    };
  }

  async _diagnose() {
    const health = await request("/health", { timeoutMs: 5000 });
    if (this.stopped) return;
    if (health.status === 0 || health.status >= 500) {
      return this._retry(health.status === 0 ? "the server is unreachable" : "the server is not ready");
    }
    const probe = await request(this.opts.probe, { timeoutMs: 5000 });
    if (this.stopped) return;
    if (probe.status === 401) return this._set(STATES.denied, probe.problem);
    if (probe.status === 403) return this._set(STATES.forbidden, probe.problem);
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

/** A bug in a render function must not stop the stream; keep it visible to developers only. */
export function reportQuietly(err) {
  try { console.debug("ocean dashboard:", err); } catch (e) { /* no console */ }
}
