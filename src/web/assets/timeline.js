// The timeline: message rows, day dividers, live arrivals, "seen by", and the names shown
// for senders. (Loading history, older pages and the unread line: history.js.)

import { $, el, hashHue, fmtDay, parseTs, dayKey, timeEl } from "./util.js";
import { state, MAX_ROWS } from "./state.js";
import { knownAliases, renderRich, plainText } from "./markdown.js";
import { toast, updateTitle } from "./screens.js";
import { loadBrief } from "./brief.js";
import { dropPending } from "./composer.js";
import { setHideSystem, refreshStatus } from "./roster.js";
import { droppedOlder, noteFresh } from "./history.js";
import { arrived } from "./alerts.js";
import { updateSeen } from "./receipts.js";
import { topicCard, topicRef } from "./questions.js";
import { avatar, initials } from "./icons.js";
import { rowActions } from "./actions.js";
import { namesChanged } from "./topics.js";
import { claimRow } from "./claims.js";

// ---- names ----
export function nameOf(alias) {
  if (alias === "system") return "system";
  const p = state.roster.get(alias);
  return p && p.display_name ? p.display_name : alias;
}

let aliasesSeen = "";

// Rows drawn before the roster knew a display name (or before a rename) show the
// sender's current name once the roster catches up.
export function renameSenders() {
  for (const n of document.querySelectorAll("#rows .who[data-alias], #rows .ref-who[data-alias], #rows .who-ref[data-alias], #pending .who[data-alias]")) {
    const name = nameOf(n.dataset.alias);
    if (n.textContent !== name) n.textContent = name;
    markAlias(n);
  }
  // a system line drawn before the roster knew someone named them by alias: drawn again
  const aliases = [...state.roster.keys()].join(" ");
  if (aliases !== aliasesSeen) {
    aliasesSeen = aliases;
    for (const t of document.querySelectorAll("#rows .row.system .text")) {
      if (typeof t._raw !== "string") continue;
      t.textContent = "";
      namedText(t._raw, t);
    }
  }
  for (const a of document.querySelectorAll("#rows .av[data-alias], #pending .av[data-alias]")) {
    const ini = initials(nameOf(a.dataset.alias));
    if (a.textContent !== ini) a.textContent = ini;
  }
  namesChanged();
}

// A display name that is not the alias shows the alias beside it (drawn by CSS from
// data-alias), so a look-alike name cannot pass for someone else.
function markAlias(n) {
  n.toggleAttribute("data-renamed", nameOf(n.dataset.alias) !== n.dataset.alias);
}

// ---- timeline ----
export const rowsEl = () => $("rows");
export const timeline = () => $("timeline");

export function nearBottom() {
  const t = timeline();
  return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
}
export function scrollToBottom() {
  const t = timeline();
  t.scrollTop = t.scrollHeight;
  $("jump").hidden = true;
}

export function buildRow(msg) {
  const isSystem = msg.type === "system" || msg.from === "system";
  const isUpdate = msg.type === "topic_update" && typeof msg.topic_id === "number";
  const li = el("li", "row");
  li.id = "m" + msg.id;
  li.dataset.id = String(msg.id);
  if (isSystem) li.classList.add("system");
  if (isUpdate) li.classList.add("compact");
  if (msg.from === state.me) li.classList.add("mine");
  if (Array.isArray(msg.mentions) && msg.mentions.includes(state.me) && msg.from !== state.me) li.classList.add("mentions-me");
  if (msg.type && msg.type !== "message" && !isSystem) li.classList.add("type-" + String(msg.type).replace(/[^a-z_]/g, ""));

  const d = parseTs(msg.ts);
  const t = timeEl("t", msg.ts, "#" + msg.id);
  const who = el("span", "who c" + hashHue(String(msg.from)), isSystem ? "system" : nameOf(msg.from));
  who.title = isSystem ? "system" : "@" + msg.from + (state.roster.get(msg.from) ? " · " + state.roster.get(msg.from).kind : "");
  if (!isSystem) {
    who.dataset.alias = String(msg.from);
    markAlias(who);
  }
  const body = el("div", "body");
  li._day = dayKey(d);
  // a claim or a change to one is one compact line (claims.js); the claims tab has the detail
  const claimLine = claimRow(msg);
  if (claimLine) {
    li.classList.add("compact");
    body.append(claimLine);
    li.append(body, t, who);
    return li;
  }
  // A system line or a topic update reads as one quiet sentence with people's names in it.
  if (isSystem || isUpdate) {
    const text = el("div", "text");
    if (isSystem) {
      text._raw = String(msg.text);
      namedText(text._raw, text);
    }
    else updateLine(msg, text);
    body.append(text);
    li.append(body, t, who);
    return li;
  }
  const head = el("div", "head");
  head.append(who, t);
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
      ref.append(el("span", "ref-text", plainText(orig.text, 120)));
    }
    ref.title = "Show message #" + msg.reply_to;
    body.append(ref);
  }
  const textWrap = el("div", "text rich");
  const isTopic = msg.type === "topic" && !!msg.topic; // its card says what it is
  if (msg.type && msg.type !== "message" && msg.type !== "reply" && !isTopic) {
    textWrap.append(el("span", "tag", String(msg.type).replace(/_/g, " ")));
  }
  // a question asked with no details repeats its title as its text: the card shows it
  // an approval's card shows its tool and input; its text repeats them for the log
  const cardSays = isTopic && (msg.topic.kind === "approval" || String(msg.text).trim() === String(msg.topic.title));
  if (!cardSays) renderRich(msg.text, textWrap, knownAliases(msg));
  // a topic's body sits inside its card; a comment links its topic above its text
  if (isTopic) body.append(topicCard(msg, textWrap));
  else {
    if (typeof msg.topic_id === "number") body.append(topicRef(msg));
    body.append(textWrap);
  }
  li.append(avatar(msg.from, nameOf(msg.from)), head, body, rowActions(msg));
  return li;
}

// Text that names participants by alias (a system line): each alias of the roster, as a
// whole word, is shown as its display name with the alias in the tooltip.
const WORD_RE = /[a-z0-9][a-z0-9_-]*/g;
export function namedText(text, into) {
  let at = 0;
  for (const m of text.matchAll(WORD_RE)) {
    const before = m.index > 0 ? text[m.index - 1] : "";
    if (/[A-Za-z0-9_-]/.test(before) || !state.roster.has(m[0])) continue;
    if (m.index > at) into.append(document.createTextNode(text.slice(at, m.index)));
    into.append(personRef(m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) into.append(document.createTextNode(text.slice(at)));
}

function personRef(alias) {
  const n = el("span", "who-ref", nameOf(alias));
  n.dataset.alias = alias;
  n.title = "@" + alias;
  return n;
}

// "Sam answered “run longer” on #9 Title" / "Sam marked #9 resolved: note", from the
// update's fields (its text, written for agents, is in the thread).
function updateLine(msg, into) {
  const u = msg.topic_update && typeof msg.topic_update === "object" ? msg.topic_update : {};
  const a = u.answer && typeof u.answer === "object" ? u.answer : null;
  if (a) {
    const said = a.option ? String(a.option) : plainText(String(a.text || ""), 120);
    into.append(personRef(String(a.by || msg.from)), document.createTextNode(" answered “" + said + "” on "));
  } else {
    into.append(personRef(String(msg.from)), document.createTextNode(" marked "));
  }
  into.append(topicRef(msg, true));
  if (!a && u.status) into.append(document.createTextNode(" " + String(u.status)));
  const note = a ? (a.option && a.text ? String(a.text) : "") : String(u.note || "");
  if (note) into.append(el("span", "upd-note", ": " + plainText(note, 160)));
}

export function dayDivider(d) {
  const li = el("li", "day", d ? fmtDay.format(d) : "");
  return li;
}

function insertRow(msg) {
  const li = buildRow(msg);
  const list = rowsEl();
  // Find the row to insert after (messages normally arrive in id order).
  let after = list.lastElementChild;
  while (after && (!after.dataset.id || Number(after.dataset.id) > msg.id)) after = after.previousElementSibling;
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
  if (dropped) droppedOlder();
}

export function ingest(list) {
  if (!Array.isArray(list) || !list.length) return;
  const stick = nearBottom();
  let fresh = 0;
  let rosterStale = false; // a join/leave/rename or an unknown sender: refresh /status
  let briefTouched = false;
  const added = [];
  for (const msg of list) {
    if (!msg || typeof msg.id !== "number" || state.byId.has(msg.id)) continue; // dedupe by id
    state.byId.set(msg.id, msg);
    if (msg.client_msg_id && state.pending.has(msg.client_msg_id) && msg.from === state.me) {
      dropPending(msg.client_msg_id);
    }
    insertRow(msg);
    added.push(msg);
    if (msg.type === "system") {
      rosterStale = true;
      if (/Room Brief/.test(msg.text)) briefTouched = true;
    } else if (msg.from !== "system" && !state.roster.has(String(msg.from))) {
      rosterStale = true;
    }
    if (msg.from !== state.me) fresh++;
  }
  if (added.length) arrived(added);
  // rows leave the top only while the reader is at the bottom, never under their eyes
  if (stick) trimRows();
  updateEmpty();
  updateSeen();
  if (stick) scrollToBottom();
  else if (fresh) noteFresh();
  if (fresh && document.hidden) {
    state.unread += fresh;
    updateTitle();
  }
  if (rosterStale) refreshStatus();
  if (briefTouched) loadBrief();
}

export function updateEmpty() {
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

export function flash(id) {
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
