// The dashboard's only door to the server: the public client (ocean.js) with the key this browser keeps.
//
// Every request goes through `request()`, which never throws: it answers
// {ok, status, body, problem} so callers can say what happened ("the key was
// rejected", "the server is unreachable") instead of leaving a console error.

import { Ocean, describeProblem } from "./ocean.js";

export { describeProblem };

const KEY_STORAGE = "ocean.admin.key";

export const keyStore = {
  get() {
    try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
  },
  set(key) {
    try { localStorage.setItem(KEY_STORAGE, key); } catch (e) { /* private mode: kept in memory only */ }
  },
  clear() {
    try { localStorage.removeItem(KEY_STORAGE); } catch (e) { /* nothing stored */ }
  },
};

/** This page's server, with the stored key. */
export const server = new Ocean({ key: () => keyStore.get() });

/**
 * One request to the server with the current key (or `opts.key`); never throws.
 * @param {string} path e.g. "/entities/_admin/daily?limit=5"
 * @param {{method?: string, body?: string, contentType?: string, key?: string, timeoutMs?: number}} opts
 * @returns {Promise<{ok: boolean, status: number, body: any, problem: string}>}
 */
export function request(path, opts = {}) {
  return server.request(path, opts);
}

/** The entities of a route with keys after `after` (sorted by key), as a Map key -> payload. */
export async function entitiesAfter(route, after, limit = 100) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (after) q.set("after", after);
  const res = await request(`/entities/${route}?${q}`);
  if (!res.ok) return res;
  const map = new Map();
  for (const ent of (res.body && res.body.entities) || []) map.set(ent.key, ent.payload || {});
  return { ...res, map };
}

/** Prometheus text -> {name: number} for unlabelled samples (what /metrics says about the engine). */
export function parseMetrics(text) {
  const out = {};
  for (const line of String(text || "").split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) ([-+0-9.eE]+|NaN|\+Inf)$/.exec(line.trim());
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// UTC keys, as the server's accounting writes them.
const pad = (n) => String(n).padStart(2, "0");
export const dayKey = (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
export const hourKey = (d) => `${dayKey(d)}T${pad(d.getUTCHours())}`;
export const HOUR_MS = 3600e3;
export const DAY_MS = 24 * HOUR_MS;
