// Topics (SPEC §9.1): every topic of the room with its current status, and the topics
// panel in the rail: a list filtered by status, one topic's thread with a comment box and
// (for its author or the host) a status change, and a form to open a topic or ask a
// question. The index is loaded (GET /topics, again until that succeeds) and then kept
// current from the same /wait answers as the timeline (live.js calls noteTopics): there is
// no second wait.

import { $, el, newClientId, hashHue, fmtFull, parseTs, timeEl } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { knownAliases, renderRich } from "./markdown.js";
import { nameOf } from "./timeline.js";
import { toast } from "./screens.js";
import { topicCard, refreshCards, keepTyped, restoreTyped } from "./questions.js";
import { showInTimeline } from "./search.js";
import { openRail } from "./rail.js";
import { markWaiting } from "./approvals.js";

export const topics = new Map(); // id -> {id, title, status, kind, tags, from, ts, to, options, answer, comments, last_activity_id}
export const STATUSES = ["open", "answered", "resolved", "closed"];

let openId = 0; // the topic whose thread is shown (0: the list is shown)
let thread = []; // that topic's messages (the topic, its comments and updates), by id

// ---- who may do what (the server decides; these only hide what it would refuse) ----
export function mayChangeStatus(t) {
  return !state.closed && t.kind !== "approval" && (state.isHost || t.from === state.me); // an approval's status follows its answer
}
export function mayAnswer(t) {
  if (state.closed || t.kind !== "question" || t.status === "closed") return false;
  if (t.answer && t.status !== "open") return false;
  if (state.isHost) return true;
  return t.to ? t.to === state.me : t.from !== state.me;
}

// A topic as the index keeps it, from its `type: "topic"` message.
export function viewOf(m) {
  const t = m.topic && typeof m.topic === "object" ? m.topic : {};
  return {
    id: m.id,
    title: String(t.title || ""),
    status: STATUSES.includes(t.status) ? t.status : "open",
    kind: t.kind === "question" || t.kind === "approval" ? t.kind : "discussion",
    tags: Array.isArray(t.tags) ? t.tags.map(String) : [],
    from: String(m.from),
    ts: m.ts,
    to: t.to ? String(t.to) : null,
    options: Array.isArray(t.options) ? t.options.map(String) : [],
    answer: null,
    comments: 0,
    last_activity_id: m.id,
    approval: t.approval && typeof t.approval === "object" ? t.approval : null,
  };
}

// Folds one message into the index the way the server's index does. A message the index
// already reflects (its id is not past the topic's last activity) changes nothing, so the
// same message may come from the first page, /wait and a POST answer. Returns the topic
// id it touched, or 0.
function apply(m) {
  if (m.type === "topic" && m.topic) {
    if (topics.has(m.id)) return 0;
    topics.set(m.id, viewOf(m));
    return m.id;
  }
  const t = typeof m.topic_id === "number" ? topics.get(m.topic_id) : null;
  if (!t || m.id <= t.last_activity_id) return 0;
  t.last_activity_id = m.id;
  if (m.type === "topic_update" && m.topic_update && typeof m.topic_update === "object") {
    if (STATUSES.includes(m.topic_update.status)) t.status = m.topic_update.status;
    if (m.topic_update.answer) t.answer = m.topic_update.answer;
  } else {
    t.comments += 1;
  }
  return t.id;
}

// New messages (a /wait answer, a page, a POST answer): the index, the list, the cards
// and the open thread follow.
export function noteTopics(msgs) {
  if (!Array.isArray(msgs) || !msgs.length) return;
  const touched = new Set();
  let threadGrew = false;
  for (const m of msgs) {
    if (!m || typeof m.id !== "number") continue;
    // a comment or update on a topic the index lacks: the index is not loaded yet
    if (!loaded && !replaying && typeof m.topic_id === "number" && !topics.has(m.topic_id)) retryNow();
    const id = apply(m);
    if (id) touched.add(id);
    if (openId && (m.id === openId || m.topic_id === openId) && !thread.some((x) => x.id === m.id)) {
      thread.push(m);
      threadGrew = true;
    }
  }
  if (threadGrew) thread.sort((a, b) => a.id - b.id);
  if (touched.size) {
    renderList();
    refreshCards(touched);
    markWaiting();
  }
  if (openId && (threadGrew || touched.has(openId))) renderThread();
}

// ---- loading the index ----
// At boot, the index as the server has it, then what the loaded pages and /wait hold beyond
// it (the requests may see different moments). Until GET /topics succeeds (a network blip,
// a 5xx) the index has only the topics those messages show, so the panel says so and asks
// again: after a backoff, at once when a live message names a topic it does not know,
// when the browser comes back online, or from the panel's "try again" button.
let loaded = false;
let ready = false; // the first page of history is in (topicsReady ran)
let replaying = false; // topicsReady folds in old messages: no reason to ask again at once
let loading = null; // the GET /topics in flight
let askAgain = false; // a live message named an unknown topic while that GET was out
let retryTimer = 0;
let retryMs = 0;
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 30000;

export function loadTopics() {
  if (loaded || state.stopped) return Promise.resolve();
  if (!loading) loading = fetchTopics().finally(() => (loading = null));
  return loading;
}

async function fetchTopics() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  askAgain = false;
  if (retryMs) showLoadState("Loading the topics again…", false);
  try {
    // page after page (latest activity first) until the server says there is no more
    let before = null;
    do {
      const r = await api("GET", "topics" + (before == null ? "" : "?before_activity=" + before));
      for (const t of r.topics || []) if (t && typeof t.id === "number") topics.set(t.id, t);
      before = r.has_more && typeof r.next_before_activity === "number" && r.next_before_activity !== before ? r.next_before_activity : null;
    } while (before != null);
    loaded = true;
    retryMs = 0;
    showLoadState("", false);
    if (ready) topicsReady();
  } catch (e) {
    if (e.status === 401 || e.status === 410 || state.stopped) return; // the page shows its gate
    retryMs = Math.min(retryMs ? retryMs * 2 : RETRY_FIRST_MS, RETRY_MAX_MS);
    const secs = Math.round(retryMs / 1000);
    showLoadState("Could not load the topics (" + e.message + "); the list may be incomplete. Trying again in " + secs + " s.", true);
    // news of an unknown topic came while this GET was out (it may have failed just
    // before the network healed): once more at once, else after the backoff
    retryTimer = setTimeout(loadTopics, askAgain ? 0 : retryMs + Math.random() * 500);
  }
}

function retryNow() {
  if (loaded || !retryMs) return; // the first GET at boot is still out, or it worked
  if (loading) askAgain = true;
  else loadTopics();
}

function showLoadState(text, canRetry) {
  $("topics-state").textContent = text;
  $("topics-state").hidden = !text;
  $("topics-retry").hidden = !canRetry;
}

// After the first page of history (and again after a late GET /topics): every loaded
// message folds in (the index skips what it already reflects), then lists and cards redraw.
export function topicsReady() {
  ready = true;
  const page = [...state.byId.values()].sort((a, b) => a.id - b.id);
  replaying = true;
  try {
    noteTopics(page);
  } finally {
    replaying = false;
  }
  renderList();
  refreshCards(null);
}

// Names shown in the list, the thread and the cards follow the roster: redrawn when a
// display name changes (the roster is refreshed every few seconds; most of the time
// nothing changed and nothing is redrawn).
let namesSeen = "";
export function namesChanged() {
  const sig = [...state.roster.values()].map((p) => p.alias + "\u0000" + (p.display_name || "")).join("\u0001");
  if (sig === namesSeen) return;
  namesSeen = sig;
  if (!topics.size) return;
  renderList();
  refreshCards(null);
  if (openId) renderThread();
}

// ---- the list ----
// In a closed room an open topic can no longer be answered: it says "unresolved".
function statusPill(status) {
  const shown = status === "open" && state.closed ? "unresolved" : status;
  const p = el("span", "tp-status s-" + status, shown);
  p.title = "Status: " + shown + (shown !== status ? " (the room closed while it was open)" : "");
  return p;
}
export { statusPill };

function renderList() {
  const filter = $("topics-filter").value;
  const all = [...topics.values()].sort((a, b) => b.last_activity_id - a.last_activity_id);
  const shown = all.filter((t) => !filter || t.status === filter);
  const ul = $("topics-list");
  ul.textContent = "";
  for (const t of shown) {
    const li = el("li", "tp-item");
    li.dataset.topic = String(t.id);
    const b = el("button", "tp-open");
    b.type = "button";
    b.dataset.topic = String(t.id);
    const line = el("span", "tp-line");
    line.append(statusPill(t.status), el("span", "tp-title", t.title));
    const meta = [t.kind === "discussion" ? "topic" : t.kind, "#" + t.id, "by " + nameOf(t.from)];
    if (t.to) meta.push("to " + nameOf(t.to));
    meta.push(t.comments + (t.comments === 1 ? " comment" : " comments"));
    b.append(line, el("span", "tp-meta", meta.join(" · ")));
    li.append(b);
    ul.append(li);
  }
  const open = all.filter((t) => t.status === "open").length;
  const count = !all.length ? "" : state.closed ? all.length + (all.length === 1 ? " topic" : " topics") + " · room closed" : open + " open · " + all.length;
  $("topics-count").textContent = count;
  $("tab-topics-n").textContent = open && !state.closed ? String(open) : "";
  $("tab-topics-n").title = open && !state.closed ? open + " open" : "";
  const empty = $("topics-empty");
  empty.hidden = shown.length > 0 || (!loaded && !all.length); // unknown yet: the load state says so
  empty.textContent = all.length ? "No " + filter + " topics." : "No topics yet.";
}

// ---- one topic's thread ----
export async function openTopic(id) {
  openRail("topics");
  openId = id;
  thread = [];
  $("topic-new").hidden = true;
  $("topics-browse").hidden = true;
  $("topic-view").hidden = false;
  renderThread();
  $("topic-title").focus({ preventScroll: true });
  try {
    // The thread comes a page at a time (each at most 512 KB): follow next_after_id.
    let r = { has_more: true, next_after_id: 0 };
    while (r.has_more && typeof r.next_after_id === "number") {
      r = await api("GET", "topics/" + id + "?after_id=" + r.next_after_id);
      if (openId !== id) return;
      const known = new Set(thread.map((m) => m.id));
      for (const m of r.messages || []) if (m && typeof m.id === "number" && !known.has(m.id)) thread.push(m);
    }
    thread.sort((a, b) => a.id - b.id);
    if (r.topic && typeof r.topic.id === "number") {
      const cur = topics.get(id);
      if (!cur || r.topic.last_activity_id >= cur.last_activity_id) topics.set(id, r.topic);
    }
    renderThread();
  } catch (e) {
    if (openId === id) $("topic-meta").textContent = "Could not load this topic: " + e.message;
  }
}

function closeTopic() {
  const was = openId;
  openId = 0;
  thread = [];
  $("topic-view").hidden = true;
  $("topics-browse").hidden = false;
  renderList();
  const back = document.querySelector('#topics-list .tp-open[data-topic="' + was + '"]');
  (back || $("topics-filter")).focus();
}

function renderThread() {
  const t = topics.get(openId);
  $("topic-title").textContent = t ? t.title : "Topic #" + openId;
  const meta = $("topic-meta");
  meta.textContent = "";
  if (t) {
    const d = parseTs(t.ts);
    const parts = [({ question: "Question", approval: "Approval" }[t.kind] || "Topic") + " #" + t.id, "by " + nameOf(t.from)];
    if (t.to) parts.push("to " + nameOf(t.to));
    if (d) parts.push(fmtFull.format(d));
    if (t.tags.length) parts.push("tags: " + t.tags.join(", "));
    meta.append(statusPill(t.status), document.createTextNode(" " + parts.join(" · ")));
  }
  const canStatus = !!t && mayChangeStatus(t);
  $("topic-status-row").hidden = !canStatus;
  if (canStatus && document.activeElement !== $("topic-status-select")) $("topic-status-select").value = t.status;
  const closed = !!t && t.status === "closed";
  $("topic-comment-row").hidden = closed || state.closed;
  $("topic-closed-note").hidden = !closed;
  const ol = $("topic-thread");
  const typed = keepTyped(ol);
  const focus = focusIn(ol);
  ol.textContent = "";
  for (const m of thread) ol.append(threadItem(m));
  restoreTyped(ol, typed);
  if (focus && !ol.contains(document.activeElement)) {
    const li = ol.querySelector('.tp-msg[data-id="' + focus.id + '"]');
    const again = li && li.querySelectorAll(focus.sel)[focus.nth];
    if (again) again.focus({ preventScroll: true });
  }
}

// Where focus is inside the thread (its message and which control), to put it back after
// a redraw; null when it is elsewhere.
function focusIn(ol) {
  const a = document.activeElement;
  const li = a && ol.contains(a) ? a.closest(".tp-msg[data-id]") : null;
  if (!li || !a.classList.length) return null;
  const sel = "." + [...a.classList].map((c) => CSS.escape(c)).join(".");
  return { id: li.dataset.id, sel, nth: [...li.querySelectorAll(sel)].indexOf(a) };
}

function threadItem(m) {
  const li = el("li", "tp-msg" + (m.type === "topic_update" ? " tp-update" : ""));
  li.dataset.id = String(m.id);
  const head = el("div", "tp-head");
  const time = timeEl("tp-time", m.ts, "#" + m.id);
  const who = el("span", "tp-who c" + hashHue(String(m.from)), nameOf(String(m.from)));
  who.title = "@" + m.from;
  const jump = el("button", "link-btn tp-jump", "#" + m.id);
  jump.type = "button";
  jump.dataset.jump = String(m.id);
  jump.setAttribute("aria-label", "Show message " + m.id + " in the timeline");
  head.append(time, who, jump);
  li.append(head);
  const body = el("div", "tp-text rich");
  renderRich(String(m.text || ""), body, knownAliases(m));
  // a topic's text is inside its card
  li.append(m.type === "topic" ? topicCard(m, body) : body);
  return li;
}

// ---- writing: comment, status, a new topic ----
async function sendComment() {
  const input = $("topic-comment");
  const text = input.value;
  if (!text.trim() || !openId) return;
  const btn = $("topic-comment-send");
  btn.disabled = true;
  try {
    const r = await api("POST", "messages", { text, topic_id: openId, client_msg_id: newClientId() });
    input.value = "";
    noteTopics([r.message]);
  } catch (e) {
    toast("Could not comment: " + e.message, true);
  } finally {
    btn.disabled = false;
  }
}

async function setStatus() {
  const t = topics.get(openId);
  const status = $("topic-status-select").value;
  if (!t || !STATUSES.includes(status) || status === t.status) return;
  const note = $("topic-status-note").value.trim();
  const btn = $("topic-status-apply");
  btn.disabled = true;
  try {
    const r = await api("POST", "topics/" + t.id + "/status", note ? { status, note } : { status });
    $("topic-status-note").value = "";
    noteTopics([r.message]);
    toast("Topic #" + t.id + " is now " + status + ".");
  } catch (e) {
    toast("Could not change the status: " + e.message, true);
  } finally {
    btn.disabled = false;
  }
}

function showNew(on) {
  $("topic-new").hidden = !on;
  $("topics-browse").hidden = on;
  $("topic-view").hidden = true;
  openId = 0;
  if (on) {
    fillAskSelect();
    syncKind();
    $("tn-title").focus();
  } else {
    $("topic-new-btn").focus();
  }
}

function fillAskSelect() {
  const sel = $("tn-to");
  const keep = sel.value;
  sel.textContent = "";
  const any = el("option", null, "anyone");
  any.value = "";
  sel.append(any);
  for (const [alias, p] of state.roster) {
    if (alias === state.me || p.removed) continue;
    const o = el("option", null, nameOf(alias) + (nameOf(alias) !== alias ? " (@" + alias + ")" : ""));
    o.value = alias;
    sel.append(o);
  }
  sel.value = keep;
}

function syncKind() {
  const q = $("tn-kind").value === "question";
  $("tn-question").hidden = !q;
}

async function createTopic() {
  const title = $("tn-title").value.trim();
  const err = $("tn-error");
  err.hidden = true;
  if (!title) {
    err.textContent = "A topic needs a title.";
    err.hidden = false;
    $("tn-title").focus();
    return;
  }
  const body = { title, text: $("tn-text").value.trim() ? $("tn-text").value : title, client_msg_id: newClientId() };
  const tags = $("tn-tags").value.split(/[\s,]+/).filter(Boolean);
  if (tags.length) body.tags = tags;
  if ($("tn-kind").value === "question") {
    body.kind = "question";
    const options = $("tn-options").value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (options.length) body.options = options;
    if ($("tn-to").value) body.to = $("tn-to").value;
  }
  const btn = $("tn-create");
  btn.disabled = true;
  try {
    const r = await api("POST", "topics", body);
    for (const id of ["tn-title", "tn-text", "tn-tags", "tn-options"]) $(id).value = "";
    noteTopics([r.message]);
    $("topic-new").hidden = true;
    openTopic(r.message.id);
  } catch (e) {
    err.textContent = "Could not open the topic: " + e.message;
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
}


// Enter sends (Shift+Enter: a new line; never during IME composition).
function enterSends(input, send) {
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });
}

export function wireTopics() {
  document.addEventListener("agentgather:closed", () => {
    renderList();
    refreshCards(null);
    if (openId) renderThread();
  });
  $("topics-retry").addEventListener("click", () => loadTopics());
  window.addEventListener("online", retryNow);
  $("topics-filter").addEventListener("change", renderList);
  $("topics-list").addEventListener("click", (e) => {
    const b = e.target instanceof Element && e.target.closest(".tp-open");
    if (b) openTopic(Number(b.dataset.topic));
  });
  $("topic-back").addEventListener("click", closeTopic);
  $("topic-thread").addEventListener("click", (e) => {
    const b = e.target instanceof Element && e.target.closest(".tp-jump");
    if (b) showInTimeline(Number(b.dataset.jump));
  });
  $("topic-comment-send").addEventListener("click", sendComment);
  enterSends($("topic-comment"), sendComment);
  $("topic-status-apply").addEventListener("click", setStatus);
  $("topic-new-btn").addEventListener("click", () => showNew(true));
  $("tn-cancel").addEventListener("click", () => showNew(false));
  $("tn-create").addEventListener("click", createTopic);
  $("tn-kind").addEventListener("change", syncKind);
  $("tn-title").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) {
      e.preventDefault();
      createTopic();
    }
  });
  $("topics").addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (!$("topic-view").hidden) {
      e.stopPropagation();
      closeTopic();
    } else if (!$("topic-new").hidden) {
      e.stopPropagation();
      showNew(false);
    }
  });
  renderList();
}
