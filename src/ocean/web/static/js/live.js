// The dashboard's live stream: the public client's live feed (ocean.js), restartable, with named events.
//
// `LiveFeed` in ocean.js does the work: the browser's EventSource resumes with
// Last-Event-ID after a dropped connection; when the server refuses the stream
// (401, 403, 503 while draining) the feed asks the server why (health, then the
// key) and either reports a key problem or reopens with ?last_event_id= after
// a backoff, so the page recovers without a reload.

import { server } from "./client.js";
import { STATES, quietly } from "./ocean.js";

export { STATES };

export class LiveStream {
  /**
   * @param {string} prefix e.g. "_admin/*"
   * @param {{last?: number, probe?: string,
   *          onMessage: (data: object, seq: string) => void,
   *          onState: (state: string, detail: string) => void,
   *          onOpen?: (first: boolean) => void, onNamed?: (name: string, data: object) => void}} opts
   */
  constructor(prefix, opts) {
    this.prefix = prefix;
    this.opts = opts;
    this.feed = null;
    this.state = STATES.stopped;
  }

  /** (Re)start from the last `opts.last` messages (a new key, or back online). */
  start() {
    this.stop();
    const o = this.opts;
    this.feed = server.live(this.prefix, o.onMessage, {
      last: o.last,
      probe: o.probe,
      onState: (state, detail) => this._set(state, detail),
      onOpen: o.onOpen,
      onEvent: o.onNamed,
    });
  }

  stop() {
    const feed = this.feed;
    this.feed = null;
    if (feed) {
      feed.opts.onState = null; // its "stopped" is said once, below
      feed.close();
    }
    this._set(STATES.stopped, "");
  }

  _set(state, detail) {
    this.state = state;
    try { this.opts.onState(state, detail || ""); } catch (e) { reportQuietly(e); }
  }
}

/** A bug in a render function must not stop the stream; keep it visible to developers only. */
export function reportQuietly(err) {
  quietly(err);
}
