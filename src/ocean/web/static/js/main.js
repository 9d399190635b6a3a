// Wiring: the key prompt, the live stream, the figures and the editor.

import { keyStore, request } from "./client.js";
import { LiveStream, STATES, reportQuietly } from "./live.js";
import { Dashboard } from "./dashboard.js";
import { Editor } from "./editor.js";
import { $ } from "./dom.js";

const PROBE = "/entities/_admin/daily?limit=1"; // what the dashboard must be able to read

let noticeTimer = null;

/** Say something at the top of the page; "info" fades after a while, warnings stay until replaced. */
function notify(kind, text) {
  const box = $("#notice");
  clearTimeout(noticeTimer);
  if (!text) {
    box.hidden = true;
    return;
  }
  box.dataset.kind = kind;
  $("#notice-text").textContent = text;
  box.hidden = false;
  if (kind === "info") noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

const dash = new Dashboard(notify);
const editor = new Editor({ onKeyRejected: (problem) => askKey(`The server rejected this key (${problem}). Enter another one.`) });
let hadTrouble = false;
let synced = false; // the counters were read since the key was set

const live = new LiveStream("_admin/*", {
  last: 300,
  probe: PROBE,
  onMessage: (data) => dash.onMessage(data),
  onState: showState,
  onOpen: (first) => {
    if (hadTrouble) notify("info", "Reconnected: live again.");
    hadTrouble = false;
    // after a reconnect: increments missed while away, or a restarted server; or the first read failed
    if (!first || !synced) resync();
    if (!editor.decls.length) editor.loadDeclarations().catch(reportQuietly);
  },
  onNamed: (name) => {
    if (name === "gap") {
      notify("warn", "Some live updates were missed (the server's replay history moved on); figures were read again.");
      resync();
    }
  },
});

const STATE_TEXT = {
  [STATES.connecting]: "connecting…",
  [STATES.live]: "live",
  [STATES.reconnecting]: "reconnecting…",
  [STATES.denied]: "key rejected",
  [STATES.forbidden]: "not allowed",
  [STATES.stopped]: "no key",
};

function showState(state, detail) {
  const pill = $("#conn");
  pill.dataset.state = state;
  pill.title = detail || "";
  $("#conn-text").textContent = STATE_TEXT[state] || state;
  $("#feed-state").textContent = state === STATES.live ? "live over SSE /live/_admin/*" : `${STATE_TEXT[state] || state}${detail ? ` — ${detail}` : ""}`;
  if (state === STATES.reconnecting) {
    hadTrouble = true;
    notify("warn", `Live connection lost: ${detail || "reconnecting"}. The page reconnects by itself.`);
  } else if (state === STATES.denied) {
    askKey(`The server rejected this key (${detail}). Enter another one.`);
  } else if (state === STATES.forbidden) {
    notify("error", "This key may not read _admin/*: the figures and the live feed need read access to _admin/*. The editor still works.");
  }
}

let resyncing = null;

/** Read the counters again (one read at a time); says what went wrong if it cannot. */
function resync() {
  if (!resyncing) resyncing = resyncOnce().finally(() => { resyncing = null; });
  return resyncing;
}

async function resyncOnce() {
  const res = await dash.resync();
  synced = res.ok;
  if (res.ok) return true;
  if (res.status === 401) askKey(`The server rejected this key (${res.problem}). Enter another one.`);
  else if (res.status === 403) notify("error", "This key may not read _admin/*: the figures need read access to _admin/*. The editor still works.");
  else notify("warn", `Could not read the figures: ${res.problem}. They refresh when the live stream reconnects.`);
  return false;
}

function keyLabel(key) {
  return key ? `Key …${key.slice(-4)}` : "Set key";
}

function askKey(message) {
  const dlg = $("#key-dialog");
  const stored = keyStore.get();
  $("#key-error").textContent = message || "";
  $("#key-forget").hidden = !stored;
  $("#key-cancel").hidden = !stored || Boolean(message);
  dlg.hidden = false;
  const input = $("#key-input");
  input.value = "";
  input.focus();
}

function closeKeyDialog() {
  $("#key-dialog").hidden = true;
}

/** Check `key` with one read, then keep it and start everything; false (and a message) if refused. */
async function connect(key, fromPrompt) {
  const check = await request(PROBE, { key });
  if (check.status === 401) {
    if (fromPrompt) $("#key-error").textContent = `The server rejected this key: ${check.body && check.body.error ? check.body.error : "unauthorized"}.`;
    else askKey("The stored key was rejected by the server. Enter another one.");
    return false;
  }
  keyStore.set(key);
  closeKeyDialog();
  $("#key-button").textContent = keyLabel(key);
  editor.setAccess("");
  dash.reset();
  synced = false;
  if (check.status === 0) {
    notify("warn", `Could not reach the server (${check.problem}); retrying in the background.`);
  } else if (check.status === 403) {
    notify("error", "This key may not read _admin/*: the figures and the live feed need read access to _admin/*. The editor still works.");
  } else {
    notify("", "");
  }
  if (check.status !== 403) live.start();
  else live.stop();
  resync().catch(reportQuietly);
  editor.loadDeclarations().catch(reportQuietly);
  return true;
}

$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("#key-input").value.trim();
  if (!key) {
    $("#key-error").textContent = "Enter a key.";
    return;
  }
  $("#key-submit").disabled = true;
  $("#key-error").textContent = "Checking…";
  connect(key, true)
    .catch(reportQuietly)
    .finally(() => { $("#key-submit").disabled = false; });
});
$("#key-button").addEventListener("click", () => askKey(""));
$("#key-cancel").addEventListener("click", closeKeyDialog);
$("#key-forget").addEventListener("click", () => {
  keyStore.clear();
  live.stop();
  dash.reset();
  $("#key-button").textContent = keyLabel("");
  askKey("The key was removed from this browser.");
  $("#key-cancel").hidden = true;
  $("#key-forget").hidden = true;
});
$("#notice-close").addEventListener("click", () => notify("", ""));
$("#backup-run").addEventListener("click", () => { dash.runBackup().catch(reportQuietly); });
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !$("#key-dialog").hidden && keyStore.get() && !$("#key-cancel").hidden) closeKeyDialog();
});
window.addEventListener("online", () => { if (keyStore.get() && live.state !== STATES.live) live.start(); });

const stored = keyStore.get();
if (stored) connect(stored, false).catch(reportQuietly);
else askKey("");
