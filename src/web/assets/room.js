"use strict";
// Agent Gather browser room. Vanilla JS, no framework.
//
// Safety rules this file keeps: every piece of room data (message text, names, brief,
// room id) reaches the page only through textContent or DOM construction, never as HTML;
// links are made only for http(s) and mailto; the token lives in sessionStorage and goes
// out only in the Authorization header, never in a URL. All URLs are relative so the page
// works under a tunnel path prefix (/<slug>/).
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "agentgather.token:" + location.pathname;
  const HIDE_SYSTEM_KEY = "agentgather.hideSystem";
  const MAX_ROWS = 2000; // rows kept in the DOM; the export has the full log
  const WAIT_ABORT_MS = 40000; // a held /wait answers within 25 s; longer means a dead link
  const STATUS_EVERY_MS = 5000;

  // ---- admission: token from the fragment into sessionStorage, fragment cleared ----
  (function takeFragmentToken() {
    const hash = location.hash.replace(/^#/, "");
    if (!hash) return;
    const params = new URLSearchParams(hash);
    const t = params.get("token");
    if (t) sessionStorage.setItem(TOKEN_KEY, t.trim());
    history.replaceState(null, "", location.pathname + location.search);
  })();
  let token = sessionStorage.getItem(TOKEN_KEY);
  // A new invite link opened in this tab only changes the fragment: take it and restart.
  window.addEventListener("hashchange", () => {
    const t = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t.trim());
    history.replaceState(null, "", location.pathname + location.search);
    location.reload();
  });

  // ---- state ----
  const state = {
    me: null, // alias
    profile: null,
    status: null,
    roster: new Map(), // alias -> participant
    isHost: false,
    room: "",
    closed: false,
    cursor: 0,
    byId: new Map(), // id -> message (all loaded)
    rendered: new Map(), // id -> row element
    pending: new Map(), // client_msg_id -> {item, el}
    brief: null,
    briefSeenKey: "",
    replyTo: null,
    stopped: false,
    connOk: true,
    unread: 0,
    expiresAt: null,
    hasChat: false,
    tabs: null, // BroadcastChannel shared by this participant's tabs
    leader: false, // this tab holds the participant's /wait
  };

  // ---- small helpers ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  function show(node, on) {
    node.hidden = !on;
  }
  function newClientId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return "web-" + crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  function hashHue(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return h % 8;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || "request failed");
      this.status = status;
      this.code = code || "";
    }
  }

  async function api(method, path, body, signal) {
    const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error", signal };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      if (e && e.name === "AbortError") throw new ApiError(0, "timeout", "the server did not answer in time");
      throw new ApiError(0, "network", "the room server cannot be reached");
    }
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
    if (!r.ok || !data || data.ok === false) {
      const code = data && typeof data.error === "string" ? data.error : "http_" + r.status;
      const msg = data && typeof data.message === "string" ? data.message : "HTTP " + r.status;
      throw new ApiError(r.status, code, msg);
    }
    return data;
  }

  // ---- screens ----
  function showScreen(which) {
    show($("boot"), which === "boot");
    show($("gate"), which === "gate");
    show($("namer"), which === "namer");
    show($("room"), which === "room");
  }

  function showGate(kind, detail) {
    state.stopped = true;
    const title = $("gate-title");
    const text = $("gate-text");
    const help = $("gate-help");
    const retry = $("gate-retry");
    retry.hidden = true;
    help.hidden = false;
    if (kind === "none") {
      title.textContent = "Invite required";
      text.textContent = "You need an invite link to join this room.";
    } else if (kind === "bad") {
      title.textContent = "Invite required";
      text.textContent = "This invite is not valid for this room (it may be mistyped, or the host removed it). Ask the host for a new invite link.";
    } else if (kind === "removed") {
      title.textContent = "You were removed";
      text.textContent = "The host removed you from this room. Ask the host if you need a new invite.";
    } else {
      title.textContent = "The room cannot be reached";
      text.textContent = "The room server did not answer" + (detail ? " (" + detail + ")" : "") + ". It may be stopped or your connection may be down.";
      help.hidden = true;
      retry.hidden = false;
    }
    document.title = title.textContent + " · Agent Gather";
    showScreen("gate");
  }
  $("gate-retry").addEventListener("click", () => location.reload());

  function pickName(profile) {
    return new Promise((resolve) => {
      const form = $("namer");
      const input = $("namer-input");
      const err = $("namer-error");
      const btn = $("namer-submit");
      $("namer-intro").textContent =
        "You are joining as “" + profile.alias + "”. Pick the name people will see next to your messages. You can't change it later from here.";
      showScreen("namer");
      input.focus();
      input.addEventListener("input", () => {
        err.hidden = true;
        input.removeAttribute("aria-invalid");
      });
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const name = input.value.trim();
        if (!name) {
          err.textContent = "Type a name first.";
          err.hidden = false;
          return;
        }
        btn.disabled = true;
        try {
          const r = await api("POST", "profile", { display_name: name });
          resolve(r);
        } catch (x) {
          if (x.status === 409) err.textContent = "“" + name + "” is already taken in this room. Pick another name.";
          else if (x.status === 401) return showGate("bad");
          else if (x.status === 410) return showGate("removed");
          else err.textContent = x.message;
          err.hidden = false;
          input.setAttribute("aria-invalid", "true");
          input.focus();
        } finally {
          btn.disabled = false;
        }
      });
    });
  }

  // ---- rich text: code fences, inline code, links, mentions (all DOM-built) ----
  function knownAliases(msg) {
    const s = new Set(state.roster.keys());
    if (msg && Array.isArray(msg.mentions)) for (const m of msg.mentions) s.add(String(m));
    return s;
  }

  function renderRich(text, into, known) {
    text = String(text);
    const lines = text.split("\n");
    let prose = [];
    let code = [];
    let fence = null;
    const flushProse = () => {
      if (!prose.length) return;
      // drop blank lines right at a fence boundary
      while (prose.length && prose[prose.length - 1] === "") prose.pop();
      while (prose.length && prose[0] === "" && into.childNodes.length) prose.shift();
      if (prose.length) renderProse(prose, into, known);
      prose = [];
    };
    const flushCode = () => {
      const pre = el("pre", "code-block");
      const c = el("code", null, code.join("\n"));
      if (fence && fence.info) pre.dataset.lang = fence.info.slice(0, 40);
      pre.append(c);
      into.append(pre);
      code = [];
    };
    for (const line of lines) {
      const m = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(line);
      if (!fence) {
        if (m && !(m[2][0] === "`" && m[3].includes("`"))) {
          flushProse();
          fence = { ch: m[2][0], n: m[2].length, info: m[3].trim().split(/\s+/)[0] || "" };
          continue;
        }
        prose.push(line);
      } else {
        if (m && m[2][0] === fence.ch && m[2].length >= fence.n && m[3].trim() === "") {
          flushCode();
          fence = null;
          continue;
        }
        code.push(line);
      }
    }
    if (fence) flushCode();
    else flushProse();
  }

  function renderProse(lines, into, known) {
    // Markdown-ish headings become a bold line; everything else stays as typed.
    let buf = [];
    const flush = () => {
      if (!buf.length) return;
      const p = el("div", "p");
      renderInline(buf.join("\n"), p, known);
      into.append(p);
      buf = [];
    };
    let blanks = 0;
    for (const line of lines) {
      // Runs of blank lines show as one blank line.
      blanks = line.trim() === "" ? blanks + 1 : 0;
      if (blanks > 1) continue;
      const h = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      if (h) {
        flush();
        const d = el("div", "h h" + h[1].length);
        renderInline(h[2], d, known);
        into.append(d);
      } else buf.push(line);
    }
    flush();
  }

  // Inline code spans: a run of N backticks up to the next run of exactly N.
  function renderInline(text, into, known) {
    const runs = [];
    const re = /`+/g;
    let m;
    while ((m = re.exec(text))) runs.push([m.index, m.index + m[0].length]);
    const byLen = new Map();
    runs.forEach((r, k) => {
      const n = r[1] - r[0];
      if (!byLen.has(n)) byLen.set(n, []);
      byLen.get(n).push(k);
    });
    const heads = new Map();
    let pos = 0;
    let k = 0;
    while (k < runs.length) {
      const [s, e] = runs[k];
      const n = e - s;
      const list = byLen.get(n);
      let h = heads.get(n) || 0;
      while (h < list.length && list[h] <= k) h++;
      heads.set(n, h);
      if (h < list.length) {
        const close = list[h];
        if (s > pos) renderEmphasis(text.slice(pos, s), into, known);
        let inner = text.slice(e, runs[close][0]);
        if (inner.length > 2 && inner[0] === " " && inner[inner.length - 1] === " " && inner.trim()) inner = inner.slice(1, -1);
        into.append(el("code", "inline", inner));
        pos = runs[close][1];
        k = close + 1;
      } else k++;
    }
    if (pos < text.length) renderEmphasis(text.slice(pos), into, known);
  }

  // **bold** (no nesting; the markers stay out of the text)
  function renderEmphasis(text, into, known) {
    const re = /\*\*(?=\S)([^*]*?\S)\*\*/g;
    let pos = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > pos) renderLinksMentions(text.slice(pos, m.index), into, known);
      const b = el("strong");
      renderLinksMentions(m[1], b, known);
      into.append(b);
      pos = m.index + m[0].length;
    }
    if (pos < text.length) renderLinksMentions(text.slice(pos), into, known);
  }

  const TOKEN_RE = /(https?:\/\/[^\s<>"'`]+|mailto:[^\s<>"'`]+)|@([A-Za-z0-9-]{1,65})/gi;

  function safeHref(raw) {
    try {
      const u = new URL(raw);
      if (u.protocol === "http:" || u.protocol === "https:" || u.protocol === "mailto:") return u.href;
    } catch (e) {
      /* not a URL */
    }
    return null;
  }

  function trimUrl(u) {
    while (u.length) {
      const c = u[u.length - 1];
      if (".,;:!?'\"]}>".includes(c)) u = u.slice(0, -1);
      else if (c === ")" && (u.match(/\(/g) || []).length < (u.match(/\)/g) || []).length) u = u.slice(0, -1);
      else break;
    }
    return u;
  }

  function renderLinksMentions(text, into, known) {
    let pos = 0;
    let m;
    TOKEN_RE.lastIndex = 0;
    while ((m = TOKEN_RE.exec(text))) {
      const start = m.index;
      if (m[1]) {
        const prev = start > 0 ? text[start - 1] : "";
        if (/[\w]/.test(prev)) continue;
        const url = trimUrl(m[1]);
        const href = safeHref(url);
        if (!href) continue;
        if (start > pos) into.append(document.createTextNode(text.slice(pos, start)));
        const a = el("a", "link", url);
        a.href = href;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        a.referrerPolicy = "no-referrer";
        into.append(a);
        pos = start + url.length;
        TOKEN_RE.lastIndex = pos;
      } else {
        const prev = start > 0 ? text[start - 1] : "";
        if (prev && (/[\p{L}\p{N}_@]/u.test(prev))) continue;
        const word = m[2].toLowerCase().replace(/-+$/, "");
        if (!word || !known.has(word)) continue;
        if (start > pos) into.append(document.createTextNode(text.slice(pos, start)));
        const p = state.roster.get(word);
        const pill = el("span", "mention" + (word === state.me ? " me" : ""), "@" + word);
        pill.dataset.alias = word;
        pill.title = p ? (p.display_name ? p.display_name + " (" + p.kind + ")" : p.kind) : "participant";
        into.append(pill);
        pos = start + 1 + word.length;
        TOKEN_RE.lastIndex = pos;
      }
    }
    if (pos < text.length) into.append(document.createTextNode(text.slice(pos)));
  }

  // ---- time ----
  const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const fmtFull = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const fmtDay = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
  function parseTs(ts) {
    const d = new Date(ts);
    return isNaN(d.getTime()) ? null : d;
  }
  function dayKey(d) {
    return d ? d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate() : "";
  }
  function ago(ms) {
    if (ms === null || ms === undefined) return "never";
    const s = Math.round(ms / 1000);
    if (s < 60) return s + "s ago";
    const m = Math.round(s / 60);
    if (m < 60) return m + "m ago";
    const h = Math.round(m / 60);
    if (h < 48) return h + "h ago";
    return Math.round(h / 24) + "d ago";
  }

  // ---- names ----
  function nameOf(alias) {
    if (alias === "system") return "system";
    const p = state.roster.get(alias);
    return p && p.display_name ? p.display_name : alias;
  }

  // Rows drawn before the roster knew a display name (or before a rename) show the
  // sender's current name once the roster catches up.
  function renameSenders() {
    for (const n of document.querySelectorAll("#rows .who[data-alias], #rows .ref-who[data-alias], #pending .who[data-alias]")) {
      const name = nameOf(n.dataset.alias);
      if (n.textContent !== name) n.textContent = name;
    }
  }

  // ---- timeline ----
  const rowsEl = () => $("rows");
  const timeline = () => $("timeline");

  function nearBottom() {
    const t = timeline();
    return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  }
  function scrollToBottom() {
    const t = timeline();
    t.scrollTop = t.scrollHeight;
    $("jump").hidden = true;
  }

  function buildRow(msg) {
    const isSystem = msg.type === "system" || msg.from === "system";
    const li = el("li", "row");
    li.id = "m" + msg.id;
    li.dataset.id = String(msg.id);
    if (isSystem) li.classList.add("system");
    if (msg.from === state.me) li.classList.add("mine");
    if (Array.isArray(msg.mentions) && msg.mentions.includes(state.me) && msg.from !== state.me) li.classList.add("mentions-me");
    if (msg.type && msg.type !== "message" && !isSystem) li.classList.add("type-" + String(msg.type).replace(/[^a-z_]/g, ""));

    const d = parseTs(msg.ts);
    const t = el("time", "t", d ? fmtTime.format(d) : "");
    if (d) {
      t.dateTime = d.toISOString();
      t.title = fmtFull.format(d) + " · #" + msg.id;
    }
    const who = el("span", "who c" + hashHue(String(msg.from)), isSystem ? "system" : nameOf(msg.from));
    who.title = isSystem ? "system" : "@" + msg.from + (state.roster.get(msg.from) ? " · " + state.roster.get(msg.from).kind : "");
    if (!isSystem) who.dataset.alias = String(msg.from);

    const body = el("div", "body");
    if (msg.reply_to) {
      const ref = el("button", "ref");
      ref.type = "button";
      ref.dataset.target = String(msg.reply_to);
      const orig = state.byId.get(msg.reply_to);
      ref.append(el("span", "ref-arrow", "↩"), el("span", "ref-id", "#" + msg.reply_to));
      if (orig) {
        const refWho = el("span", "ref-who", nameOf(orig.from));
        refWho.dataset.alias = String(orig.from);
        ref.append(refWho);
        ref.append(el("span", "ref-text", String(orig.text).replace(/\s+/g, " ").slice(0, 120)));
      }
      ref.title = "Show message #" + msg.reply_to;
      body.append(ref);
    }
    const textWrap = el("div", "text rich");
    if (msg.type && msg.type !== "message" && msg.type !== "reply" && !isSystem) {
      textWrap.append(el("span", "tag", String(msg.type).replace(/_/g, " ")));
    }
    renderRich(msg.text, textWrap, knownAliases(msg));
    body.append(textWrap);

    li.append(t, who, body);
    if (!isSystem) {
      const act = el("button", "act", "reply");
      act.type = "button";
      act.dataset.reply = String(msg.id);
      act.title = "Reply to #" + msg.id;
      act.setAttribute("aria-label", "Reply to message " + msg.id);
      li.append(act);
    }
    li._day = dayKey(d);
    return li;
  }

  function dayDivider(d) {
    const li = el("li", "day", d ? fmtDay.format(d) : "");
    li.setAttribute("role", "separator");
    return li;
  }

  function insertRow(msg) {
    const li = buildRow(msg);
    const list = rowsEl();
    // Find the row to insert after (messages normally arrive in id order).
    let after = list.lastElementChild;
    while (after && (after.classList.contains("day") || Number(after.dataset.id) > msg.id)) after = after.previousElementSibling;
    const prevDay = after ? after._day : null;
    const frag = document.createDocumentFragment();
    if (li._day && li._day !== prevDay) frag.append(dayDivider(parseTs(msg.ts)));
    frag.append(li);
    if (after) after.after(frag);
    else list.prepend(frag);
    state.rendered.set(msg.id, li);
  }

  function trimRows() {
    const list = rowsEl();
    let dropped = 0;
    while (state.rendered.size > MAX_ROWS) {
      const first = list.firstElementChild;
      if (!first) break;
      if (first.dataset.id) {
        state.rendered.delete(Number(first.dataset.id));
        dropped++;
      }
      first.remove();
    }
    if (dropped) {
      const note = $("older-note");
      const shown = Number(note.dataset.dropped || 0) + dropped;
      note.dataset.dropped = String(shown);
      note.textContent = shown + " earlier messages are not shown here" + (state.isHost ? "; Export has the full log." : ".");
      note.hidden = false;
    }
  }

  function ingest(list) {
    if (!Array.isArray(list) || !list.length) return;
    const stick = nearBottom();
    let fresh = 0;
    let rosterStale = false; // a join/leave/rename or an unknown sender: refresh /status
    let briefTouched = false;
    for (const msg of list) {
      if (!msg || typeof msg.id !== "number" || state.byId.has(msg.id)) continue; // dedupe by id
      state.byId.set(msg.id, msg);
      if (msg.client_msg_id && state.pending.has(msg.client_msg_id) && msg.from === state.me) {
        dropPending(msg.client_msg_id);
      }
      insertRow(msg);
      if (msg.type === "system") {
        rosterStale = true;
        if (/Room Brief/.test(msg.text)) briefTouched = true;
      } else if (msg.from !== "system" && !state.roster.has(String(msg.from))) {
        rosterStale = true;
      }
      if (msg.from !== state.me) fresh++;
    }
    trimRows();
    updateEmpty();
    updateSeen();
    if (stick) scrollToBottom();
    else if (fresh) $("jump").hidden = false;
    if (fresh && document.hidden) {
      state.unread += fresh;
      updateTitle();
    }
    if (rosterStale) refreshStatus();
    if (briefTouched) loadBrief();
  }

  function updateEmpty() {
    if (!state.hasChat) {
      for (const m of state.byId.values()) {
        if (m.type !== "system") {
          state.hasChat = true;
          break;
        }
      }
    }
    $("empty").hidden = state.hasChat || state.pending.size > 0;
  }

  function flash(id) {
    const row = state.rendered.get(id);
    if (!row) {
      toast("Message #" + id + " is not loaded here.");
      return;
    }
    if (row.classList.contains("system") && document.body.classList.contains("hide-system")) setHideSystem(false);
    row.scrollIntoView({ block: "center" });
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
  }

  // "seen by" on the host's own latest message, from the participants' read_through_id
  function updateSeen() {
    for (const old of document.querySelectorAll(".row .seen")) old.remove();
    if (!state.isHost || !state.me) return;
    let latest = null;
    for (const [id, row] of state.rendered) {
      const m = state.byId.get(id);
      if (m && m.from === state.me && m.type !== "system" && (!latest || id > latest.id)) latest = m;
    }
    if (!latest) return;
    const others = [...state.roster.values()].filter((p) => p.alias !== state.me && !p.removed);
    if (!others.length) return;
    const seen = others.filter((p) => Number(p.read_through_id || 0) >= latest.id);
    const row = state.rendered.get(latest.id);
    if (!row) return;
    let text;
    if (!seen.length) text = "not seen yet";
    else if (seen.length === others.length) text = others.length === 1 ? "seen by " + nameOf(seen[0].alias) : "seen by everyone";
    else text = "seen by " + seen.map((p) => nameOf(p.alias)).join(", ");
    const s = el("div", "seen", text);
    s.title = "From each participant's read-through position (what the server has delivered to them)";
    row.append(s);
  }

  // ---- pending sends (local echo, retry) ----
  function addPending(item) {
    const li = el("li", "row mine pending-row");
    const t = el("time", "t", "");
    const who = el("span", "who c" + hashHue(state.me), nameOf(state.me));
    who.dataset.alias = state.me;
    const body = el("div", "body");
    const text = el("div", "text rich");
    renderRich(item.text, text, knownAliases(null));
    const st = el("div", "send-state");
    body.append(text, st);
    li.append(t, who, body);
    $("pending").append(li);
    state.pending.set(item.cid, { item, el: li, st });
    updateEmpty();
    scrollToBottom();
    return li;
  }
  function dropPending(cid) {
    const p = state.pending.get(cid);
    if (!p) return;
    p.el.remove();
    state.pending.delete(cid);
    updateEmpty();
  }
  function setPendingState(cid, kind, message) {
    const p = state.pending.get(cid);
    if (!p) return;
    p.st.textContent = "";
    p.el.classList.toggle("failed", kind === "failed");
    if (kind === "sending") {
      p.st.textContent = "sending…";
      return;
    }
    p.st.append(el("span", "err", "Not sent: " + message + " "));
    const retry = el("button", "link-btn", "retry");
    retry.type = "button";
    retry.addEventListener("click", () => postItem(p.item));
    const discard = el("button", "link-btn", "discard");
    discard.type = "button";
    discard.addEventListener("click", () => {
      const input = $("input");
      if (!input.value.trim()) {
        input.value = p.item.text;
        autogrow();
      }
      dropPending(cid);
    });
    p.st.append(retry, document.createTextNode(" · "), discard);
  }
  async function postItem(item) {
    if (item.inflight) return;
    item.inflight = true;
    setPendingState(item.cid, "sending");
    const body = { text: item.text, client_msg_id: item.cid };
    if (item.reply_to) {
      body.reply_to = item.reply_to;
      body.type = "reply";
    }
    try {
      const r = await api("POST", "messages", body);
      item.inflight = false;
      dropPending(item.cid);
      if (r.message) ingest([r.message]);
    } catch (e) {
      item.inflight = false;
      if (e.status === 401) return showGate("bad");
      if (e.status === 410) return showGate("removed");
      if (e.code === "room_closed") setClosed();
      setPendingState(item.cid, "failed", e.message);
    }
  }

  function send() {
    const input = $("input");
    const text = input.value;
    if (!text.trim() || state.closed) return;
    const item = { cid: newClientId(), text, reply_to: state.replyTo };
    input.value = "";
    autogrow();
    closeAc();
    setReply(null);
    addPending(item);
    postItem(item);
  }

  // ---- composer ----
  function autogrow() {
    const input = $("input");
    if (!input.offsetParent) return; // not laid out (hidden); sized when shown
    input.style.height = "auto";
    const cs = getComputedStyle(input);
    const line = parseFloat(cs.lineHeight) || 20;
    const pad = parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom) + parseFloat(cs.borderTopWidth) + parseFloat(cs.borderBottomWidth);
    const max = line * 6 + pad;
    const h = Math.min(input.scrollHeight + parseFloat(cs.borderTopWidth) + parseFloat(cs.borderBottomWidth), max);
    input.style.height = Math.ceil(h) + "px";
    input.style.overflowY = input.scrollHeight + 2 > max ? "auto" : "hidden";
  }

  function setReply(id) {
    state.replyTo = id;
    const box = $("replying");
    if (!id) {
      box.hidden = true;
      return;
    }
    const m = state.byId.get(id);
    $("replying-text").textContent =
      "Replying to #" + id + (m ? " · " + nameOf(m.from) + ": " + String(m.text).replace(/\s+/g, " ").slice(0, 80) : "");
    box.hidden = false;
    $("input").focus();
  }

  // @ autocomplete
  const ac = { open: false, items: [], index: 0, start: 0 };
  function acQuery() {
    const input = $("input");
    if (input.selectionStart !== input.selectionEnd) return null;
    const before = input.value.slice(0, input.selectionStart);
    const m = /(^|[^\p{L}\p{N}_@])@([A-Za-z0-9-]{0,64})$/u.exec(before);
    if (!m) return null;
    return { q: m[2].toLowerCase(), start: before.length - m[2].length - 1 };
  }
  function updateAc() {
    const q = acQuery();
    if (!q) return closeAc();
    const items = [...state.roster.values()]
      .filter((p) => !p.removed && p.alias !== state.me)
      .filter((p) => p.alias.startsWith(q.q) || (p.display_name && p.display_name.toLowerCase().includes(q.q)))
      .slice(0, 8);
    if (!items.length) return closeAc();
    ac.items = items;
    ac.start = q.start;
    ac.index = Math.min(ac.index, items.length - 1);
    ac.open = true;
    const list = $("ac");
    list.textContent = "";
    items.forEach((p, i) => {
      const li = el("li", i === ac.index ? "active" : "");
      li.id = "ac-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === ac.index ? "true" : "false");
      li.append(el("span", "ac-alias", "@" + p.alias));
      if (p.display_name) li.append(el("span", "ac-name", p.display_name));
      li.append(el("span", "ac-kind", p.kind));
      li.addEventListener("mousedown", (e) => {
        e.preventDefault();
        ac.index = i;
        acceptAc();
      });
      list.append(li);
    });
    list.hidden = false;
    $("input").setAttribute("aria-activedescendant", "ac-" + ac.index);
  }
  function closeAc() {
    ac.open = false;
    ac.index = 0;
    $("ac").hidden = true;
    $("input").removeAttribute("aria-activedescendant");
  }
  function acceptAc() {
    const p = ac.items[ac.index];
    if (!p) return closeAc();
    const input = $("input");
    const end = input.selectionStart;
    const insert = "@" + p.alias + " ";
    input.value = input.value.slice(0, ac.start) + insert + input.value.slice(end);
    const caret = ac.start + insert.length;
    input.setSelectionRange(caret, caret);
    closeAc();
    autogrow();
  }

  function wireComposer() {
    const input = $("input");
    let composing = false;
    input.addEventListener("compositionstart", () => (composing = true));
    input.addEventListener("compositionend", () => (composing = false));
    input.addEventListener("input", () => {
      autogrow();
      updateAc();
    });
    input.addEventListener("click", updateAc);
    input.addEventListener("blur", () =>
      setTimeout(() => {
        if (document.activeElement !== input) closeAc();
      }, 150)
    );
    input.addEventListener("keydown", (e) => {
      const ime = e.isComposing || composing || e.keyCode === 229;
      if (ac.open && !ime) {
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          e.preventDefault();
          const n = ac.items.length;
          ac.index = (ac.index + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
          updateAc();
          return;
        }
        if (e.key === "Enter" || e.key === "Tab") {
          e.preventDefault();
          acceptAc();
          return;
        }
        if (e.key === "Escape") {
          e.preventDefault();
          closeAc();
          return;
        }
      }
      if (e.key === "Enter" && !e.shiftKey && !ime) {
        e.preventDefault();
        send();
      } else if (e.key === "Escape" && state.replyTo) {
        setReply(null);
      }
    });
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      send();
    });
    $("replying-cancel").addEventListener("click", () => setReply(null));
    rowsEl().addEventListener("click", (e) => {
      const r = e.target.closest("button.act");
      if (r) return setReply(Number(r.dataset.reply));
      const ref = e.target.closest("button.ref");
      if (ref) return flash(Number(ref.dataset.target));
    });
    timeline().addEventListener("scroll", () => {
      if (nearBottom()) $("jump").hidden = true;
    });
    $("jump").addEventListener("click", scrollToBottom);
    const narrow = window.matchMedia("(max-width: 520px)");
    const placeholder = () => {
      input.placeholder = narrow.matches ? "Message · @ to mention" : "Message the room · @ mentions · Shift+Enter for a new line";
    };
    narrow.addEventListener("change", placeholder);
    window.addEventListener("resize", autogrow);
    placeholder();
    autogrow();
  }

  // ---- top bar, roster, brief ----
  function setHideSystem(on) {
    document.body.classList.toggle("hide-system", on);
    const b = $("tb-system");
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.textContent = on ? "Show system" : "Hide system";
    try {
      localStorage.setItem(HIDE_SYSTEM_KEY, on ? "1" : "0");
    } catch (e) {
      /* storage may be off */
    }
  }

  function renderStatus(s) {
    state.status = s;
    state.isHost = !!s.is_host;
    state.room = String(s.room || "");
    state.roster = new Map();
    for (const p of s.participants || []) state.roster.set(String(p.alias), p);
    $("tb-room").textContent = state.room;
    $("tb-room").title = "Room " + state.room;
    const st = $("tb-status");
    const open = s.room_status === "open";
    st.textContent = open ? "open" : "closed";
    st.className = "pill " + (open ? "open" : "closed");
    state.expiresAt = s.expires_at ? Date.parse(s.expires_at) : null;
    tickTtl();
    const active = (s.participants || []).filter((p) => !p.removed);
    const attending = active.filter((p) => p.attendance_state === "attending").length;
    const btn = $("tb-people");
    btn.textContent = active.length + (active.length === 1 ? " person" : " people");
    btn.title = attending + " attending now · show or hide the people list";
    $("people-count").textContent = active.length + " · " + attending + " attending";
    const meP = state.roster.get(state.me);
    $("tb-me").textContent = meP ? nameOf(state.me) : state.me || "";
    $("tb-me").title = "You are @" + state.me + (state.isHost ? " (host)" : "");
    if (s.brief_version && state.brief && s.brief_version > state.brief.brief_version) loadBrief();
    renderRoster(s);
    renameSenders();
    if (!open) setClosed();
    updateSeen();
    updateTitle();
  }

  function renderRoster(s) {
    const ul = $("roster");
    ul.textContent = "";
    const list = (s.participants || []).filter((p) => !p.removed);
    list.sort((a, b) => (b.is_host - a.is_host) || (a.alias === state.me ? -1 : b.alias === state.me ? 1 : 0));
    for (const p of list) {
      const li = el("li", "person");
      const stateName = String(p.attendance_state || p.attention || "");
      li.dataset.alias = p.alias;
      li.dataset.state = stateName;
      const dot = el("span", "dot s-" + stateName.replace(/[^a-z_]/g, ""));
      dot.title = stateName;
      const main = el("div", "person-main");
      const line1 = el("div", "person-line");
      line1.append(el("span", "person-name", p.display_name || p.alias));
      if (p.alias === state.me) line1.append(el("span", "tag you", "you"));
      if (p.is_host) line1.append(el("span", "tag host", "host"));
      const line2 = el("div", "person-sub muted");
      const bits = [];
      if (p.display_name) bits.push("@" + p.alias);
      bits.push(String(p.kind));
      line2.textContent = bits.join(" · ") + " · ";
      const att = el("span", "att s-" + stateName.replace(/[^a-z_]/g, ""), stateName.replace(/_/g, " "));
      line2.append(att);
      if (stateName === "stale" || stateName === "away" || stateName === "not_attending") {
        line2.append(document.createTextNode(" · seen " + ago(p.last_seen_age_ms)));
      }
      main.append(line1, line2);
      li.title = "@" + p.alias + " · " + p.kind + " · " + (p.location || "") + " · attention: " + p.attention +
        (p.attendance_required ? " (required by policy)" : "") + " · last seen " + ago(p.last_seen_age_ms);
      li.append(dot, main);
      ul.append(li);
    }
  }

  let statusBusy = false;
  async function refreshStatus() {
    if (statusBusy || state.stopped) return;
    statusBusy = true;
    try {
      renderStatus(await api("GET", "status"));
    } catch (e) {
      if (e.status === 401) showGate("bad");
      else if (e.status === 410) showGate("removed");
    } finally {
      statusBusy = false;
    }
  }

  function tickTtl() {
    const ttl = $("tb-ttl");
    if (!state.expiresAt || state.closed || isNaN(state.expiresAt)) {
      ttl.hidden = true;
      return;
    }
    let left = Math.max(0, state.expiresAt - Date.now());
    const s = Math.floor(left / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    let text;
    if (s <= 0) text = "closing…";
    else if (h > 0) text = "closes in " + h + "h " + String(m).padStart(2, "0") + "m";
    else if (m > 0) text = "closes in " + m + "m " + String(sec).padStart(2, "0") + "s";
    else text = "closes in " + sec + "s";
    ttl.textContent = text;
    ttl.title = "Time to live: the room closes itself at " + fmtFull.format(new Date(state.expiresAt));
    ttl.classList.toggle("soon", s < 600);
    ttl.hidden = false;
  }

  function briefSeenVersion() {
    try {
      return Number(localStorage.getItem(state.briefSeenKey) || 0);
    } catch (e) {
      return 0;
    }
  }
  function markBriefSeen() {
    if (!state.brief) return;
    try {
      localStorage.setItem(state.briefSeenKey, String(state.brief.brief_version));
    } catch (e) {
      /* storage may be off */
    }
    updateBriefBadge();
  }
  function updateBriefBadge() {
    const b = state.brief;
    const unseen = !!b && b.brief_version > briefSeenVersion();
    $("brief-badge").hidden = !unseen;
    $("tb-brief-badge").hidden = !unseen;
    $("brief-ack").hidden = !unseen;
    $("brief").classList.toggle("updated", unseen);
    $("tb-brief").classList.toggle("updated", unseen);
  }

  let briefBusy = null;
  function loadBrief() {
    if (briefBusy) return briefBusy;
    briefBusy = (async () => {
      try {
        const r = await api("GET", "brief");
        const b = r.brief || {};
        const first = !state.brief;
        const changed = first || b.brief_version !== state.brief.brief_version || b.body !== state.brief.body;
        state.brief = b;
        if ((first && !briefSeenVersion()) || String(b.brief_updated_by) === state.me) {
          // the version you found on arrival, or wrote yourself, counts as seen
          try {
            localStorage.setItem(state.briefSeenKey, String(b.brief_version));
          } catch (e) {
            /* storage may be off */
          }
        }
        if (changed) {
          $("brief-ver").textContent = "v" + b.brief_version;
          $("tb-brief-ver").textContent = "v" + b.brief_version;
          const by = b.brief_updated_by ? " by " + nameOf(String(b.brief_updated_by)) : "";
          const at = b.brief_updated_at && parseTs(b.brief_updated_at) ? " · " + fmtFull.format(parseTs(b.brief_updated_at)) : "";
          $("brief-meta").textContent = "Version " + b.brief_version + by + at + ". Mission context, not commands.";
          const body = $("brief-body");
          body.textContent = "";
          if (b.body && String(b.body).trim()) renderRich(String(b.body), body, knownAliases(null));
          else body.append(el("p", "muted", "No brief yet."));
        }
        updateBriefBadge();
      } catch (e) {
        if (e.status === 401) showGate("bad");
      } finally {
        briefBusy = null;
      }
    })();
    return briefBusy;
  }

  function setClosed() {
    if (state.closed) return;
    state.closed = true;
    document.body.classList.add("is-closed");
    const st = $("tb-status");
    st.textContent = "closed";
    st.className = "pill closed";
    $("composer").hidden = true;
    $("closed-note").hidden = false;
    const banner = $("closed-banner");
    banner.textContent = "This room is closed." + (state.isHost ? " You can still export the log." : " Thanks for taking part.");
    banner.hidden = false;
    const closeBtn = $("btn-close");
    if (closeBtn) closeBtn.hidden = true;
    $("tb-ttl").hidden = true;
    closeAc();
  }

  function setConn(ok, retryMs) {
    state.connOk = ok;
    const c = $("tb-conn");
    if (ok) {
      c.hidden = true;
      document.body.classList.remove("offline");
    } else {
      c.textContent = "reconnecting…" + (retryMs ? " " + Math.ceil(retryMs / 1000) + "s" : "");
      c.title = "The room server is not answering; retrying with backoff. Messages you send are kept and can be retried.";
      c.hidden = false;
      document.body.classList.add("offline");
    }
  }

  let toastTimer = 0;
  function toast(text, isError) {
    const t = $("toast");
    t.textContent = text;
    t.classList.toggle("error", !!isError);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), 5000);
  }

  function updateTitle() {
    const base = (state.room ? state.room : "room") + (state.closed ? " (closed)" : "") + " · Agent Gather";
    document.title = (state.unread ? "(" + state.unread + ") " : "") + base;
  }

  // ---- host controls ----
  function wireHost() {
    const hc = $("host-controls");
    if (!state.isHost) {
      hc.remove(); // guests never get these controls, not even hidden
      return;
    }
    hc.hidden = false;
    const close = $("btn-close");
    let armed = 0;
    close.addEventListener("click", async () => {
      if (state.closed) return;
      if (!armed) {
        close.textContent = "Confirm close";
        close.classList.add("armed");
        armed = setTimeout(() => {
          armed = 0;
          close.textContent = "Close room";
          close.classList.remove("armed");
        }, 5000);
        return;
      }
      clearTimeout(armed);
      armed = 0;
      close.disabled = true;
      try {
        await api("POST", "close", {});
        setClosed();
        toast("The room is closed.");
      } catch (e) {
        toast("Could not close the room: " + e.message, true);
        close.textContent = "Close room";
        close.classList.remove("armed");
      } finally {
        close.disabled = false;
      }
    });
    const btn = $("btn-export");
    const menu = $("export-menu");
    const setMenu = (on) => {
      menu.hidden = !on;
      btn.setAttribute("aria-expanded", on ? "true" : "false");
    };
    btn.addEventListener("click", (e) => {
      e.stopPropagation();
      setMenu(menu.hidden);
    });
    document.addEventListener("click", (e) => {
      if (!menu.hidden && !menu.contains(e.target)) setMenu(false);
    });
    $("export-md").addEventListener("click", () => {
      setMenu(false);
      doExport("md");
    });
    $("export-json").addEventListener("click", () => {
      setMenu(false);
      doExport("json");
    });
  }

  async function doExport(format) {
    try {
      const r = await fetch("export?format=" + format, {
        headers: { Authorization: "Bearer " + token },
        cache: "no-store",
        credentials: "omit",
      });
      if (!r.ok) {
        let msg = "HTTP " + r.status;
        try {
          const j = await r.json();
          if (j && j.message) msg = j.message;
        } catch (e) {
          /* not JSON */
        }
        throw new Error(msg);
      }
      const blob = await r.blob();
      const name = (state.room || "room").replace(/[^a-z0-9-]/g, "") + "." + format;
      const url = URL.createObjectURL(blob);
      const a = el("a");
      a.href = url;
      a.download = name;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      document.body.dataset.lastExport = name + ":" + blob.size;
      toast("Exported " + name + " (" + Math.max(1, Math.round(blob.size / 1024)) + " KB).");
    } catch (e) {
      toast("Export failed: " + e.message, true);
    }
  }

  // ---- rail (brief + people) ----
  const wide = window.matchMedia("(min-width: 761px)");
  function setRail(open) {
    document.body.classList.toggle("rail-open", open);
    $("tb-people").setAttribute("aria-expanded", open ? "true" : "false");
  }
  function wireRail() {
    setRail(wide.matches);
    wide.addEventListener("change", () => setRail(wide.matches));
    $("tb-people").addEventListener("click", () => setRail(!document.body.classList.contains("rail-open")));
    $("tb-brief").addEventListener("click", () => {
      setRail(true);
      $("brief").scrollIntoView({ block: "start" });
      markBriefSeen();
    });
    $("brief-ack").addEventListener("click", markBriefSeen);
    document.querySelector(".main").addEventListener("click", () => {
      if (!wide.matches && document.body.classList.contains("rail-open")) setRail(false);
    });
    $("tb-system").addEventListener("click", () => setHideSystem(!document.body.classList.contains("hide-system")));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !wide.matches && document.body.classList.contains("rail-open")) setRail(false);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) {
        state.unread = 0;
        updateTitle();
      }
    });
  }

  // ---- live: long-poll /wait with backoff ----
  let wake = null;
  window.addEventListener("online", () => wake && wake());
  function nap(ms) {
    return new Promise((r) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = null;
        r();
      }
      wake = done;
    });
  }

  // Applies a /wait answer (this tab's own, or the leader tab's); true when live updates end.
  function applyWait(r) {
    ingest(r.messages);
    if (typeof r.next_since_id === "number" && r.next_since_id > state.cursor) state.cursor = r.next_since_id;
    if (state.brief && typeof r.brief_version === "number" && r.brief_version !== state.brief.brief_version) loadBrief();
    if (r.participant_status === "removed") {
      showGate("removed");
      return true;
    }
    if (r.room_status === "closed" || r.keep_waiting === false) {
      setClosed();
      refreshStatus();
      return true;
    }
    return false;
  }

  // The server holds one /wait per participant, so two tabs of one person would keep
  // superseding each other. Tabs of a participant elect a leader with a Web Lock: the
  // leader long-polls and shares every answer on a BroadcastChannel, the others apply
  // what it shares, and the next in line takes over as soon as the leader's tab goes.
  function startLive() {
    if (!navigator.locks || typeof BroadcastChannel !== "function") return waitLoop();
    const key = "agentgather.wait:" + location.pathname + ":" + state.room + ":" + state.me;
    state.tabs = new BroadcastChannel(key);
    state.tabs.onmessage = (ev) => {
      if (!state.leader && ev.data && typeof ev.data === "object") followWait(ev.data);
    };
    navigator.locks.request(key, () => {
      state.leader = true;
      document.documentElement.dataset.waitLeader = "1";
      return waitLoop();
    });
  }

  let catchingUp = false;
  async function followWait(r) {
    if (r.offline) return setConn(false, r.retryMs); // the leader lost the server
    if (!state.connOk) setConn(true);
    const first = Array.isArray(r.messages) && r.messages.length ? r.messages[0].id : null;
    if (first !== null && first > state.cursor + 1 && !catchingUp) {
      // The leader was further ahead than this tab (it shared a batch before this tab
      // listened): fetch the gap first so no message is skipped.
      catchingUp = true;
      try {
        const page = await api("GET", "messages?since_id=" + state.cursor);
        applyWait({ messages: page.messages, next_since_id: page.next_since_id, room_status: page.room_status });
      } catch (e) {
        /* the next shared batch tries again */
      } finally {
        catchingUp = false;
      }
    }
    applyWait(r);
  }

  async function waitLoop() {
    let backoff = 0;
    while (!state.stopped && !state.closed) {
      const started = Date.now();
      const ctrl = new AbortController();
      const timer = setTimeout(() => ctrl.abort(), WAIT_ABORT_MS);
      try {
        const r = await api("GET", "wait?since_id=" + state.cursor, undefined, ctrl.signal);
        clearTimeout(timer);
        if (!state.connOk) {
          setConn(true);
          refreshStatus();
        }
        backoff = 0;
        if (state.tabs) state.tabs.postMessage(r);
        if (applyWait(r)) return;
        // A heartbeat long before the hold time means another tab of this participant
        // (one without tab leadership) took over the wait; slow down rather than ping-pong.
        if (r.heartbeat && Date.now() - started < 2000) await nap(1500 + Math.random() * 1000);
      } catch (e) {
        clearTimeout(timer);
        if (e.status === 401) return showGate("bad");
        if (e.status === 410) return showGate("removed");
        backoff = Math.min(backoff ? backoff * 2 : 1000, 15000);
        const delay = backoff + Math.random() * 500;
        setConn(false, delay);
        if (state.tabs) state.tabs.postMessage({ offline: true, retryMs: delay });
        await nap(delay);
      }
    }
  }

  async function loadHistory() {
    // Only the newest rows are shown, so only they are fetched: one request however long
    // the room (older replies show their #id without a preview).
    const r = await api("GET", "messages?since_id=" + state.cursor + "&tail=" + MAX_ROWS);
    for (const m of r.messages || []) if (typeof m.id === "number") state.byId.set(m.id, m);
    if (typeof r.next_since_id === "number" && r.next_since_id > state.cursor) state.cursor = r.next_since_id;
    const all = [...state.byId.values()].sort((a, b) => a.id - b.id);
    const tail = all.slice(-MAX_ROWS);
    const frag = document.createDocumentFragment();
    let prevDay = null;
    for (const m of tail) {
      const li = buildRow(m);
      if (li._day && li._day !== prevDay) frag.append(dayDivider(parseTs(m.ts)));
      prevDay = li._day;
      frag.append(li);
      state.rendered.set(m.id, li);
    }
    rowsEl().append(frag);
    if (all.length > tail.length) {
      const note = $("older-note");
      note.dataset.dropped = String(all.length - tail.length);
      note.textContent = all.length - tail.length + " earlier messages are not shown here" + (state.isHost ? "; Export has the full log." : ".");
      note.hidden = false;
    }
    updateEmpty();
    updateSeen();
    scrollToBottom();
  }

  // ---- boot ----
  async function boot() {
    if (!token) return showGate("none");
    let profile;
    try {
      profile = await api("GET", "profile");
    } catch (e) {
      if (e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        return showGate("bad");
      }
      if (e.status === 410) return showGate("removed");
      return showGate("unreachable", e.message);
    }
    if (profile.kind === "human" && !profile.display_name) {
      profile = await pickName(profile);
      if (state.stopped) return;
    }
    state.profile = profile;
    state.me = String(profile.alias);
    let hide = false;
    try {
      hide = localStorage.getItem(HIDE_SYSTEM_KEY) === "1";
    } catch (e) {
      /* storage may be off */
    }
    setHideSystem(hide);
    let status;
    try {
      status = await api("GET", "status");
    } catch (e) {
      return showGate(e.status === 401 ? "bad" : e.status === 410 ? "removed" : "unreachable", e.message);
    }
    state.briefSeenKey = "agentgather.briefSeen:" + location.pathname + ":" + status.room + ":" + state.me;
    renderStatus(status);
    wireHost();
    wireRail();
    wireComposer();
    try {
      await Promise.all([loadBrief(), loadHistory()]);
    } catch (e) {
      if (e.status === 401) return showGate("bad");
      if (e.status === 410) return showGate("removed");
      toast("Could not load the history: " + e.message, true);
    }
    showScreen("room");
    autogrow();
    scrollToBottom();
    if (!state.closed) {
      api("POST", "join", {}).catch(() => {});
      $("input").focus();
    }
    startLive();
    setInterval(() => {
      if (!state.closed) refreshStatus();
    }, STATUS_EVERY_MS);
    setInterval(tickTtl, 1000);
  }

  boot();
})();
