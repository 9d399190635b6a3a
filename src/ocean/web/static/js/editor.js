// The live Drops editor: run a script through POST /exec and show one result per command.
//
// The text area sits over a "backdrop" that repeats the text invisibly, so
// an error can be painted behind its line and column. Completion and the
// hint line come from the command declarations, which the server prints
// for the `help` command (the same declarations its parser reads).

import { request, dayKey } from "./client.js";
import { $, el } from "./dom.js";
import { reportQuietly } from "./live.js";

const HISTORY_STORAGE = "ocean.drops.history";
const HISTORY_MAX = 20;
const ROWS_SHOWN = 50;
const LINE_PX = 20; // must match --code-line in admin.css
const PAD_PX = 10;  // must match the code area's padding


/** The 1-based line where each command starts (blank, comment and continuation lines start none). */
export function commandStarts(text) {
  const starts = [];
  let inBacktick = false;
  text.split("\n").forEach((line, i) => {
    const trimmed = line.trim();
    if (!inBacktick && trimmed && !/^\s/.test(line) && !trimmed.startsWith("--")) starts.push(i + 1);
    let inString = false;
    for (let j = 0; j < line.length; j += 1) {
      const c = line[j];
      if (inBacktick) { if (c === "`") inBacktick = false; continue; }
      if (inString) { if (c === "\\") j += 1; else if (c === '"') inString = false; continue; }
      if (c === '"') inString = true;
      else if (c === "`") inBacktick = true;
      else if (c === "-" && line[j + 1] === "-") break;
    }
  });
  return starts;
}

/** The note over the editor after 403s: what was refused (a read, a write or both) and what to do. */
export function accessNote(refused) {
  const parts = [];
  if (refused.write) parts.push(`This key may not write here: ${refused.write} (403 forbidden). Use a key that may write to change data.`);
  if (refused.read) parts.push(`This key may not read here: ${refused.read} (403 forbidden). Use a key whose read scopes cover it.`);
  return parts.join(" ");
}

/** Rough tokens of a command's text so far (enough to tell the command word and clause words apart). */
function tokensOf(text) {
  return text.match(/"(?:\\.|[^"\\])*"?|`[^`]*`?|[^\s]+/g) || [];
}

export class Editor {
  /** @param {{onKeyRejected: (problem: string) => void}} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    this.ta = $("#drops-input");
    this.backdrop = $("#drops-backdrop");
    this.gutter = $("#drops-gutter");
    this.popup = $("#drops-complete");
    this.hint = $("#drops-hint");
    this.results = $("#drops-results");
    this.runBtn = $("#drops-run");
    this.historySel = $("#drops-history");
    this.helpPanel = $("#drops-help");
    this.accessNote = $("#editor-access");
    this.decls = [];
    this.byWord = new Map();
    this.marks = [];
    this.choices = [];
    this.choice = 0;
    this.running = false;
    if (!this.ta) return;
    const today = dayKey(new Date());
    this.ta.value = `-- Ctrl+Enter runs the script: one result per command.\nincr analytics/daily @${today} .page_views\nread analytics/daily @${today}\n`;
    this._wire();
    this._renderHistory();
    this.paint();
    this.updateHint();
  }

  _wire() {
    const ta = this.ta;
    ta.addEventListener("input", () => {
      this.marks = [];
      this.paint();
      this.complete(false);
      this.updateHint();
    });
    ta.addEventListener("scroll", () => this._syncScroll());
    ta.addEventListener("keydown", (e) => this._onKey(e));
    ta.addEventListener("click", () => { this.updateHint(); this.closePopup(); });
    ta.addEventListener("keyup", (e) => { if (e.key.startsWith("Arrow") && this.popup.hidden) this.updateHint(); });
    // Close the popup once focus has really left (a click on a completion lands first); a blur
    // followed by a quick return (a result's location button puts the caret back) keeps it.
    ta.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== ta) this.closePopup(); }, 150));
    this.runBtn.addEventListener("click", () => this.run());
    $("#drops-help-btn").addEventListener("click", () => this.toggleHelp());
    this.historySel.addEventListener("change", () => {
      const i = Number(this.historySel.value);
      const item = this._history()[i];
      if (item) {
        ta.value = item.text;
        this.marks = [];
        this.paint();
        this.updateHint();
        ta.focus();
      }
      this.historySel.value = "";
    });
    this.popup.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li[data-i]");
      if (!li) return;
      e.preventDefault();
      this.choice = Number(li.dataset.i);
      this.accept();
    });
    this.results.addEventListener("click", (e) => {
      const loc = e.target.closest("[data-line]");
      if (loc && loc.tagName === "BUTTON") this.goTo(Number(loc.dataset.line), Number(loc.dataset.column || 1));
    });
  }

  /** Load the command declarations (run `help`, then `help NAME` for each command). */
  async loadDeclarations() {
    const list = await request("/exec", { method: "POST", body: "help" });
    if (!list.ok || !Array.isArray(list.body) || !list.body[0] || !list.body[0].ok) return false;
    let decls = list.body[0].data;
    const more = await request("/exec", { method: "POST", body: decls.map((d) => `help ${d.name}`).join("\n") });
    if (more.ok && Array.isArray(more.body)) {
      const full = new Map(more.body.filter((r) => r.ok && r.data && r.data.name).map((r) => [r.data.name, r.data]));
      decls = decls.map((d) => full.get(d.name) || d);
    }
    this.decls = decls;
    this.byWord = new Map();
    for (const d of decls) {
      this.byWord.set(d.name, d);
      for (const a of d.aliases || []) this.byWord.set(a, d);
    }
    this._renderHelp();
    this.updateHint();
    return true;
  }

  // ---- painting: line numbers and error marks -------------------------------------------

  paint() {
    const lines = this.ta.value.split("\n");
    const byLine = new Map(this.marks.map((m) => [m.line, m]));
    this.gutter.replaceChildren(...lines.map((_, i) => {
      const m = byLine.get(i + 1);
      const n = el("div", m ? `ln ${m.kind}` : "ln", String(i + 1));
      if (m) n.title = m.message;
      return n;
    }));
    this.backdrop.replaceChildren(...lines.map((line, i) => {
      const m = byLine.get(i + 1);
      const row = el("div", m ? `bl ${m.kind}` : "bl");
      if (!m) {
        row.textContent = line || " ";
        return row;
      }
      const col = Math.max(1, m.column || 1) - 1;
      const at = line.slice(col, col + 1) || " ";
      const mark = el("mark", "", at);
      mark.title = m.message;
      row.append(document.createTextNode(line.slice(0, col)), mark, document.createTextNode(line.slice(col + 1)));
      return row;
    }));
    this._syncScroll();
  }

  _syncScroll() {
    this.backdrop.scrollTop = this.ta.scrollTop;
    this.backdrop.scrollLeft = this.ta.scrollLeft;
    this.gutter.scrollTop = this.ta.scrollTop;
  }

  goTo(line, column) {
    const lines = this.ta.value.split("\n");
    let pos = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) pos += lines[i].length + 1;
    pos += Math.max(0, Math.min((column || 1) - 1, (lines[line - 1] || "").length));
    this.ta.focus();
    this.ta.setSelectionRange(pos, pos);
    const top = (line - 1) * LINE_PX;
    if (top < this.ta.scrollTop || top > this.ta.scrollTop + this.ta.clientHeight - 2 * LINE_PX) {
      this.ta.scrollTop = Math.max(0, top - this.ta.clientHeight / 2);
    }
    this.updateHint();
  }

  // ---- completion and the hint line ------------------------------------------------------

  /** Where the caret is: the current command's text so far and the word being typed. */
  _context() {
    const ta = this.ta;
    const before = ta.value.slice(0, ta.selectionStart);
    const lines = before.split("\n");
    let i = lines.length - 1;
    while (i > 0 && /^\s/.test(lines[i]) && lines[i].trim() !== "") i -= 1; // continuation lines
    const cmdText = lines.slice(i).join("\n").replace(/^\s+/, "");
    const word = /[A-Za-z_]*$/.exec(before)[0];
    return { cmdText, word, atCommand: !/\s/.test(cmdText), lineIndex: lines.length - 1, column: lines[lines.length - 1].length };
  }

  /** Show completions for the word at the caret (`force`: even for an empty word, from Ctrl+Space). */
  complete(force) {
    if (!this.decls.length) return this.closePopup();
    const ctx = this._context();
    if (ctx.cmdText.trimStart().startsWith("--")) return this.closePopup();
    let items = [];
    const w = ctx.word.toLowerCase();
    if (ctx.atCommand) {
      if (!w && !force) return this.closePopup();
      for (const [word, d] of this.byWord) {
        if (word.startsWith(w)) items.push({ text: word, detail: d.syntax, doc: d.help });
      }
    } else {
      const toks = tokensOf(ctx.cmdText);
      const d = this.byWord.get((toks[0] || "").toLowerCase());
      const typingWord = ctx.word.length === 0 ? /\s$/.test(ctx.cmdText) : true;
      const prev = ctx.cmdText.slice(0, ctx.cmdText.length - ctx.word.length);
      const plain = /(^|\s)$/.test(prev); // not after "@", "." or inside a token
      if (d && d.keywords && toks.length >= 2 && typingWord && plain && (w || force)) {
        for (const k of d.keywords) if (k.startsWith(w)) items.push({ text: k, detail: d.name, doc: d.syntax });
      }
    }
    items.sort((a, b) => a.text.localeCompare(b.text));
    if (items.length === 1 && items[0].text === w && !force) items = [];
    if (!items.length) return this.closePopup();
    this.choices = items;
    this.choice = 0;
    this.wordLen = ctx.word.length;
    this._renderPopup(ctx);
  }

  _renderPopup(ctx) {
    const p = this.popup;
    p.replaceChildren(...this.choices.map((c, i) => {
      const li = el("li", i === this.choice ? "active" : "");
      li.dataset.i = String(i);
      li.setAttribute("role", "option");
      li.append(el("span", "word", c.text), el("span", "detail", c.detail));
      li.title = c.doc || "";
      return li;
    }));
    const charW = this._charWidth();
    const wrap = p.parentElement.getBoundingClientRect();
    let left = PAD_PX + (ctx.column - ctx.word.length) * charW - this.ta.scrollLeft;
    const top = PAD_PX + (ctx.lineIndex + 1) * LINE_PX - this.ta.scrollTop + 2;
    p.hidden = false;
    left = Math.max(0, Math.min(left, wrap.width - p.offsetWidth - 4));
    p.style.left = `${left}px`;
    p.style.top = `${top}px`;
  }

  _charWidth() {
    if (!this._cw) {
      const probe = el("span", "", "M".repeat(20));
      probe.style.visibility = "hidden";
      probe.style.position = "absolute";
      this.backdrop.append(probe);
      this._cw = probe.getBoundingClientRect().width / 20 || 7.8;
      probe.remove();
    }
    return this._cw;
  }

  closePopup() {
    this.popup.hidden = true;
    this.choices = [];
  }

  accept() {
    const c = this.choices[this.choice];
    if (!c) return this.closePopup();
    const ta = this.ta;
    const end = ta.selectionStart;
    const start = end - this.wordLen;
    const after = ta.value.slice(end);
    const insert = c.text + (/^\s/.test(after) ? "" : " ");
    ta.setRangeText(insert, start, end, "end");
    this.closePopup();
    this.marks = [];
    this.paint();
    this.updateHint();
  }

  _onKey(e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      this.run();
      return;
    }
    if (e.ctrlKey && e.key === " ") {
      e.preventDefault();
      this.complete(true);
      return;
    }
    if (this.popup.hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = this.choices.length;
      this.choice = (this.choice + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      [...this.popup.children].forEach((li, i) => li.classList.toggle("active", i === this.choice));
    } else if (e.key === "Tab" || e.key === "Enter") {
      e.preventDefault();
      this.accept();
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.closePopup();
    }
  }

  updateHint() {
    if (!this.hint) return;
    const ctx = this._context();
    const word = (tokensOf(ctx.cmdText)[0] || "").toLowerCase();
    const d = this.byWord.get(word);
    this.hint.replaceChildren();
    if (d) {
      this.hint.append(el("code", "syntax", d.syntax), el("span", "doc", ` — ${d.help}`));
    } else if (!this.decls.length) {
      this.hint.append(el("span", "doc", "Ctrl+Enter runs the script. Help and completion load once a key is set."));
    } else if (word && !word.startsWith("--") && !word.includes("/") && ctx.atCommand) {
      const starting = [...this.byWord.keys()].filter((k) => k.startsWith(word)).sort();
      const close = [...this.byWord.keys()].filter((k) => k[0] === word[0]).sort();
      this.hint.append(el("span", "doc", starting.length
        ? `Tab completes: ${starting.join(", ")}`
        : `“${word}” is not a command${close.length ? `; did you mean ${close.join(", ")}?` : "; a route alone lists its entities."}`));
    } else {
      this.hint.append(el("span", "doc", "Type a command (incr, read, find, sql …). Ctrl+Space completes, Ctrl+Enter runs."));
    }
  }

  toggleHelp() {
    this.helpPanel.hidden = !this.helpPanel.hidden;
    $("#drops-help-btn").setAttribute("aria-expanded", String(!this.helpPanel.hidden));
  }

  _renderHelp() {
    const items = this.decls.map((d) => {
      const item = el("div", "help-item");
      const head = el("div", "help-head");
      head.append(el("code", "name", d.name));
      if (d.aliases && d.aliases.length) head.append(el("span", "aliases", `also ${d.aliases.join(", ")}`));
      item.append(head, el("code", "syntax", d.syntax), el("p", "doc", d.help));
      if (d.example) {
        const ex = el("button", "example", d.example);
        ex.type = "button";
        ex.title = "Add this example to the script";
        ex.addEventListener("click", () => {
          const v = this.ta.value;
          this.ta.value = v + (v && !v.endsWith("\n") ? "\n" : "") + d.example + "\n";
          this.marks = [];
          this.paint();
          this.ta.focus();
        });
        item.append(ex);
      }
      return item;
    });
    this.helpPanel.replaceChildren(...items);
  }

  // ---- running ---------------------------------------------------------------------------

  async run() {
    if (this.running) return;
    const text = this.ta.value;
    if (!text.trim()) {
      this.results.replaceChildren(el("p", "empty", "Nothing to run: type a Drops command first."));
      return;
    }
    this.running = true;
    this.runBtn.disabled = true;
    this.runBtn.classList.add("busy");
    this.results.setAttribute("aria-busy", "true");
    try {
      const res = await request("/exec", { method: "POST", body: text, timeoutMs: 60000 });
      if (!res.ok || !Array.isArray(res.body)) {
        this._requestFailed(res);
      } else {
        this._pushHistory(text);
        this.show(text, res.body);
      }
    } catch (e) {
      reportQuietly(e);
    } finally {
      this.running = false;
      this.runBtn.disabled = false;
      this.runBtn.classList.remove("busy");
      this.results.removeAttribute("aria-busy");
    }
  }

  _requestFailed(res) {
    const box = el("div", "result err request");
    const head = el("div", "result-head");
    head.append(el("span", "badge", res.status ? `HTTP ${res.status}` : "NO ANSWER"), el("span", "msg", `The script was not run: ${res.problem}.`));
    box.append(head);
    const b = res.body;
    if (b && typeof b === "object" && b.line) {
      this.marks = [{ line: b.line, column: b.column || 1, message: b.error, kind: "err" }];
      this.paint();
    }
    this.results.replaceChildren(box);
    if (res.status === 401) this.hooks.onKeyRejected(res.problem);
  }

  /** Render the answers of POST /exec for `text` (one per command) and mark the errors in the text. */
  show(text, answers) {
    const lines = text.split("\n");
    const starts = commandStarts(text);
    const aligned = starts.length === answers.length;
    this.marks = [];
    const refused = { read: null, write: null }; // the first 403 of each kind, to say what was refused
    const nodes = answers.map((r, i) => {
      const line = r.line || (aligned ? starts[i] : null);
      const forb = !r.ok && r.code === "forbidden";
      const box = el("div", `result ${r.ok ? "ok" : forb ? "err forbidden" : "err"}`);
      const head = el("div", "result-head");
      head.append(el("span", "badge", r.ok ? "OK" : forb ? "NOT ALLOWED" : "ERROR"));
      if (line) {
        const loc = el("button", "loc", r.column && !r.ok ? `line ${line}, col ${r.column}` : `line ${line}`);
        loc.type = "button";
        loc.dataset.line = String(line);
        loc.dataset.column = String(r.column || 1);
        loc.title = "Show in the script";
        head.append(loc);
        head.append(el("code", "cmd", (lines[line - 1] || "").trim().slice(0, 90)));
      } else {
        head.append(el("span", "loc dim", `#${i + 1}`));
      }
      box.append(head);
      if (r.ok) {
        box.append(renderData(r.data, r.columns));
      } else {
        const msg = el("div", "err-msg");
        msg.append(el("span", "text", r.error || "failed"), el("code", "code", r.code || "error"));
        box.append(msg);
        if (line && r.column) {
          const src = lines[line - 1] || "";
          box.append(el("pre", "err-src", `${src}\n${" ".repeat(Math.max(0, r.column - 1))}^`));
        }
        if (line) this.marks.push({ line, column: r.column || 1, message: r.error || r.code, kind: forb ? "forbidden" : "err" });
        if (forb) {
          const kind = this.accessOf(line ? lines[line - 1] || "" : null, r.error);
          if (!refused[kind]) refused[kind] = r.error;
        }
      }
      return box;
    });
    if (!nodes.length) nodes.push(el("p", "empty", "No commands ran (only blank or comment lines)."));
    const okCount = answers.filter((r) => r.ok).length;
    const summary = el("p", "summary", `${answers.length} command${answers.length === 1 ? "" : "s"}: ${okCount} ok, ${answers.length - okCount} failed`);
    this.results.replaceChildren(summary, ...nodes);
    this.paint();
    this.setAccess(accessNote(refused));
  }

  /** "read" or "write": the scope a refused command needed, from its declaration (a bare route reads). */
  accessOf(line, error) {
    if (line !== null && this.byWord.size) {
      const d = this.byWord.get((tokensOf(line.trim())[0] || "").toLowerCase());
      if (!d) return "read"; // `ROUTE` or `ROUTE @KEY`
      if (d.access === "read" || d.access === "write") return d.access;
    }
    return /\bwrites?\b/.test(error || "") ? "write" : "read"; // declarations not loaded: the server's words
  }

  setAccess(text) {
    if (!this.accessNote) return;
    this.accessNote.textContent = text || "";
    this.accessNote.hidden = !text;
  }

  // ---- history of recent scripts (localStorage) ------------------------------------------

  _history() {
    try {
      const items = JSON.parse(localStorage.getItem(HISTORY_STORAGE) || "[]");
      return Array.isArray(items) ? items.filter((x) => x && typeof x.text === "string") : [];
    } catch (e) {
      return [];
    }
  }

  _pushHistory(text) {
    const items = this._history().filter((x) => x.text !== text);
    items.unshift({ text, at: new Date().toISOString() });
    try { localStorage.setItem(HISTORY_STORAGE, JSON.stringify(items.slice(0, HISTORY_MAX))); } catch (e) { /* full */ }
    this._renderHistory();
  }

  _renderHistory() {
    const items = this._history();
    const first = el("option", "", items.length ? `Recent scripts (${items.length})` : "No recent scripts");
    first.value = "";
    this.historySel.replaceChildren(first, ...items.map((x, i) => {
      const firstLine = x.text.split("\n").find((l) => l.trim() && !l.trim().startsWith("--")) || x.text.split("\n")[0];
      const o = el("option", "", `${x.at.slice(11, 16)} · ${firstLine.trim().slice(0, 48)}`);
      o.value = String(i);
      return o;
    }));
    this.historySel.disabled = !items.length;
  }
}

/** A command's `data` as a table, a field list or one value. */
export function renderData(data, columns) {
  const cell = (v) => {
    if (v === null || v === undefined) return el("td", "null", "null");
    if (typeof v === "object") return el("td", "json", JSON.stringify(v).slice(0, 200));
    if (typeof v === "number") return el("td", "num", String(Number.isInteger(v) ? v : Number(v.toPrecision(12))));
    return el("td", "", String(v));
  };
  if (Array.isArray(data) && data.length && data.every((r) => r && typeof r === "object" && !Array.isArray(r))) {
    const cols = columns && columns.length ? columns : [...new Set(data.flatMap((r) => Object.keys(r)))].slice(0, 12);
    const wrap = el("div", "table-wrap");
    const table = el("table", "data");
    const head = el("tr");
    head.append(...cols.map((c) => el("th", "", c)));
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    for (const row of data.slice(0, ROWS_SHOWN)) {
      const tr = el("tr");
      tr.append(...cols.map((c) => cell(row[c])));
      table.tBodies[0].append(tr);
    }
    wrap.append(table);
    if (data.length > ROWS_SHOWN) wrap.append(el("p", "dim", `… ${data.length - ROWS_SHOWN} more rows`));
    return wrap;
  }
  if (Array.isArray(data)) {
    return el("div", "scalar", data.length ? JSON.stringify(data).slice(0, 500) : "[] (no rows)");
  }
  if (data && typeof data === "object") {
    const wrap = el("div", "table-wrap");
    const table = el("table", "data fields");
    for (const [k, v] of Object.entries(data)) {
      const tr = el("tr");
      tr.append(el("th", "", k), cell(v));
      table.append(tr);
    }
    wrap.append(table);
    return wrap;
  }
  return el("div", "scalar", data === null ? "null" : String(data));
}
