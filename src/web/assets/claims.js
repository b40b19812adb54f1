// Claims (SPEC §13): who said they are working on which files, until when. The list is
// loaded once (GET /claims) and then kept current from the same messages as the timeline:
// the loaded pages (claimsReady) and every /wait answer (live.js calls noteClaims). A
// `claim` message adds a claim, a `claim_update` renews or ends it; a claim also drops
// off by the clock at its expires_at, before the server's `expired` row arrives, and all
// end when the room closes. The panel is a tab of the rail (rail.js addPanel); the roster shows each person's
// count (claimBadge) and the timeline draws claim rows compactly (claimRow).

import { $, el, fmtTime, fmtFull } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { nameOf } from "./timeline.js";
import { addPanel } from "./rail.js";

export const claims = new Map(); // id -> {id, by, paths, exclusive, note, expires_at}
const ended = new Set(); // ids seen released, expired or ended: a late `claim` row cannot revive them
let closed = false;

function expiresMs(c) {
  const t = Date.parse(c.expires_at);
  return isNaN(t) ? 0 : t;
}

function live(c) {
  return !closed && expiresMs(c) > Date.now();
}

function viewOf(m) {
  const c = m.claim && typeof m.claim === "object" ? m.claim : {};
  return {
    id: m.id,
    by: String(m.from),
    paths: Array.isArray(c.paths) ? c.paths.map(String) : [],
    exclusive: c.exclusive !== false,
    note: c.note ? String(c.note) : "",
    expires_at: String(c.expires_at || ""),
  };
}

// Folds one message in; true when the list changed. Folding the same message twice, or
// an update before its claim, changes nothing wrong.
function apply(m) {
  if (m.type === "claim" && m.claim) {
    if (ended.has(m.id)) return false;
    const v = viewOf(m);
    const had = claims.get(m.id);
    if (had && expiresMs(had) >= expiresMs(v)) return false;
    claims.set(m.id, v);
    return true;
  }
  if (m.type !== "claim_update" || typeof m.claim_id !== "number" || !m.claim_update) return false;
  const u = m.claim_update;
  const c = claims.get(m.claim_id);
  if (u.action === "renewed") {
    if (!c || !u.expires_at || Date.parse(u.expires_at) <= expiresMs(c)) return false;
    c.expires_at = String(u.expires_at);
    return true;
  }
  ended.add(m.claim_id);
  return claims.delete(m.claim_id);
}

// New messages (a /wait answer, the loaded pages); `roomClosed` when the room is closed.
export function noteClaims(msgs, roomClosed) {
  let changed = false;
  if (Array.isArray(msgs)) {
    for (const m of msgs) if (m && typeof m.id === "number" && apply(m)) changed = true;
  }
  if (roomClosed && !closed) {
    closed = true;
    claims.clear();
    changed = true;
  }
  if (changed) render();
}

// At boot, after GET /claims and the first page: fold what the page holds beyond the list.
export function claimsReady() {
  noteClaims(Array.from(state.byId.values()).sort((a, b) => a.id - b.id), state.closed);
}

export async function loadClaims() {
  try {
    // page after page (by id) until the server says there is no more
    let after = 0;
    do {
      const r = await api("GET", "claims" + (after ? "?after_id=" + after : ""));
      for (const c of r.claims || []) {
        if (!ended.has(c.id)) claims.set(c.id, { ...c, note: c.note ? String(c.note) : "" });
      }
      after = r.has_more && typeof r.next_after_id === "number" && r.next_after_id > after ? r.next_after_id : 0;
    } while (after);
    $("claims-state").hidden = true;
  } catch (e) {
    // the messages still carry every claim made from here on; say the list may be partial
    $("claims-state").textContent = "Could not load the claims (" + e.message + "); showing those seen since.";
    $("claims-state").hidden = false;
  }
  render();
}

// ---- the panel ----
function untilText(c) {
  const t = new Date(expiresMs(c));
  const mins = Math.max(0, Math.round((expiresMs(c) - Date.now()) / 60000));
  const left = mins >= 60 ? Math.floor(mins / 60) + "h " + (mins % 60) + "m" : mins + "m";
  return { short: "until " + fmtTime.format(t) + " (" + left + " left)", full: fmtFull.format(t) };
}

function claimItem(c) {
  const li = el("li", "cl-item");
  li.dataset.claimId = String(c.id);
  li.dataset.by = c.by;
  const head = el("div", "cl-head");
  head.append(el("span", "cl-who", nameOf(c.by)));
  head.append(el("span", "tag " + (c.exclusive ? "cl-ex" : "cl-sh"), c.exclusive ? "exclusive" : "shared"));
  const paths = el("div", "cl-paths");
  for (const p of c.paths) paths.append(el("code", "cl-path", p));
  const until = untilText(c);
  const meta = el("div", "cl-meta muted small");
  const time = el("time", "cl-until", until.short);
  time.dateTime = new Date(expiresMs(c)).toISOString();
  time.title = "Claim " + c.id + " ends " + until.full;
  meta.append(time);
  li.append(head, paths, meta);
  if (c.note) li.append(el("div", "cl-note small", c.note));
  return li;
}

function render() {
  const list = $("claims-list");
  if (!list) return;
  const shown = Array.from(claims.values()).filter(live).sort((a, b) => a.id - b.id);
  list.textContent = "";
  for (const c of shown) list.append(claimItem(c));
  $("claims-count").textContent = shown.length ? String(shown.length) : "";
  $("claims-empty").textContent = closed ? "The room is closed; its claims ended." : "No live claims.";
  $("claims-empty").hidden = shown.length > 0;
  updateBadges();
}

// ---- the roster's counts ----
function countOf(alias) {
  let n = 0;
  for (const c of claims.values()) if (c.by === alias && live(c)) n++;
  return n;
}

function setBadge(b) {
  const n = countOf(b.dataset.claimsFor);
  b.textContent = n === 1 ? "1 claim" : n + " claims";
  b.hidden = n === 0;
}

// A roster row's claim count (kept current as claims change).
export function claimBadge(alias) {
  const b = el("span", "tag cl-count");
  b.dataset.claimsFor = alias;
  setBadge(b);
  return b;
}

function updateBadges() {
  for (const b of document.querySelectorAll("#roster .cl-count")) setBadge(b);
}

// ---- the timeline's compact rows ----
const ACTION_TEXT = { renewed: "renewed", released: "released", expired: "expired", ended: "ended" };

// The body of a claim or claim_update row, or null for any other message.
export function claimRow(m) {
  if (m.type === "claim" && m.claim) {
    const v = viewOf(m);
    const line = el("div", "text cl-row");
    const who = el("span", "cl-who", nameOf(v.by));
    who.title = "@" + v.by;
    line.append(who, el("span", "tag", v.exclusive ? "claim" : "shared claim"));
    for (const p of v.paths) line.append(el("code", "cl-path", p));
    const t = Date.parse(v.expires_at);
    if (!isNaN(t)) line.append(el("span", "muted", "until " + fmtTime.format(new Date(t))));
    if (v.note) line.append(el("span", "cl-note", v.note));
    return line;
  }
  if (m.type === "claim_update" && m.claim_update && typeof m.claim_id === "number") {
    const u = m.claim_update;
    const line = el("div", "text cl-row");
    line.append(el("span", "tag", "claim " + (ACTION_TEXT[u.action] || "update")));
    line.append(el("span", "", String(m.text || "")));
    return line;
  }
  return null;
}

// Adds the claims tab to the rail and drops claims at their time.
export function wireClaims() {
  const sec = addPanel("claims", "Claims", "claims", render);
  sec.classList.add("claims");
  const h = el("h2");
  const title = el("span", "", "Claims");
  title.id = "claims-h";
  const count = el("span", "muted");
  count.id = "claims-count";
  h.append(title, document.createTextNode(" "), count);
  const st = el("p", "small");
  st.id = "claims-state";
  st.setAttribute("role", "status");
  st.hidden = true;
  const list = el("ul", "cl-list");
  list.id = "claims-list";
  list.setAttribute("aria-labelledby", "claims-h");
  const empty = el("p", "muted small", "No live claims.");
  empty.id = "claims-empty";
  const help = el("p", "muted small", "Agents claim files before editing them: agentgather claim PATH…");
  sec.append(h, st, list, empty, help);
  // the "left" times move on, and a claim past its time drops off
  setInterval(() => {
    if (claims.size) render();
  }, 5000);
}
