// The top bar and the people list, both drawn from /status.

import { $, el, fmtFull, ago } from "./util.js";
import { state, HIDE_SYSTEM_KEY } from "./state.js";
import { api } from "./session.js";
import { nameOf, renameSenders } from "./timeline.js";
import { updateSeen } from "./receipts.js";
import { showGate, setClosed, updateTitle, toast } from "./screens.js";
import { avatar } from "./icons.js";
import { loadBrief } from "./brief.js";
import { claimBadge } from "./claims.js";
import { markWaiting } from "./approvals.js";

// ---- top bar, roster, brief ----
export function setHideSystem(on) {
  document.body.classList.toggle("hide-system", on);
  const b = $("tb-system");
  b.setAttribute("aria-pressed", on ? "true" : "false");
  $("tb-system-label").textContent = on ? "Show system" : "Hide system";
  b.setAttribute("aria-label", on ? "Show system rows" : "Hide system rows");
  try {
    localStorage.setItem(HIDE_SYSTEM_KEY, on ? "1" : "0");
  } catch (e) {
    /* storage may be off */
  }
}

export function renderStatus(s) {
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
  const attending = open ? active.filter((p) => p.attendance_state === "attending").length : 0;
  const word = active.length === 1 ? " person" : " people";
  const people = active.length + word;
  $("tb-people-n").textContent = String(active.length);
  $("tb-people-n").append(el("span", "tb-label", word));
  const btn = $("tb-people");
  btn.title = (open ? attending + " attending now" : "the room is closed") + " · show or hide the people list";
  btn.setAttribute("aria-label", people + (open ? ", " + attending + " attending" : "") + ": people list");
  // a closed room has no one attending: the count says the room is closed instead
  $("people-count").textContent = active.length + " · " + (open ? attending + " attending" : "room closed");
  $("tab-people-n").textContent = String(active.length);
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
  const closed = s.room_status !== "open";
  const list = (s.participants || []).filter((p) => !p.removed).map((p) => truthOf(p, closed));
  list.sort((a, b) => (b.is_host - a.is_host) || (a.alias === state.me ? -1 : b.alias === state.me ? 1 : 0));
  for (const p of list) {
    const li = el("li", "person");
    const stateName = String(closed ? "room_closed" : p.attendance_state || p.attention || "");
    li.dataset.alias = p.alias;
    li.dataset.state = stateName;
    // The dot is observed reach only (SPEC §8.1): filled when the server sees them reachable now.
    const dot = el("span", "dot " + (p.reachable_now ? "reach-now" : "reach-not"));
    dot.title = p.reachable_now ? "reachable now" : "not reachable now";
    li.dataset.reach = reachOf(p);
    li.dataset.reachable = p.reachable_now ? "true" : "false";
    const main = el("div", "person-main");
    const line1 = el("div", "person-line");
    const nameEl = el("span", "person-name", p.display_name || p.alias);
    nameEl.title = "@" + p.alias;
    line1.append(nameEl);
    if (p.alias === state.me) line1.append(el("span", "tag you", "you"));
    if (p.is_host) line1.append(el("span", "tag host", "host"));
    line1.append(claimBadge(p.alias));
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
    main.append(line1, line2, reachLine(p));
    const warn = reachWarning(p);
    if (warn) main.append(warn);
    li.title = "@" + p.alias + " · " + p.kind + " · " + (p.location || "") + " · attention: " + p.attention +
      (p.attendance_required ? " (required by policy)" : "") + " · last seen " + ago(p.last_seen_age_ms) +
      " · reach " + reachOf(p) + (p.reachable_now ? ", reachable now" : ", not reachable now");
    const av = avatar(p.alias, p.display_name || p.alias);
    av.append(dot);
    li.append(av, main);
    if (mayRemove(p)) li.append(removeButton(p));
    ul.append(li);
  }
  markWaiting();
}

// What the roster shows is what is true now: in a closed room no one attends or is
// reachable; this page's own participant is reachable while the page follows the room
// live (its tab, or its leader tab, holds the /wait: a /status taken between two waits
// would say otherwise).
function truthOf(p, closed) {
  if (closed) return { ...p, reachable_now: false };
  if (p.alias === state.me && state.liveStarted && state.connOk && !p.reachable_now) {
    return { ...p, reachable_now: true, self_live: true };
  }
  return p;
}

// ---- the host removes a participant (two presses, like closing the room) ----
function mayRemove(p) {
  return state.isHost && !state.closed && !p.is_host && p.alias !== state.me;
}

function removeButton(p) {
  const b = el("button", "link-btn person-remove", "remove");
  b.type = "button";
  b.dataset.remove = p.alias;
  b.setAttribute("aria-label", "Remove " + (p.display_name || p.alias) + " (@" + p.alias + ") from the room");
  return b;
}

let armedRemove = null;
async function onRemoveClick(e) {
  const b = e.target instanceof Element && e.target.closest(".person-remove");
  if (!b) return;
  const alias = b.dataset.remove;
  if (armedRemove !== alias) {
    armedRemove = alias;
    b.textContent = "confirm remove";
    b.classList.add("armed");
    setTimeout(() => {
      if (armedRemove === alias) armedRemove = null;
      if (b.isConnected) {
        b.textContent = "remove";
        b.classList.remove("armed");
      }
    }, 5000);
    return;
  }
  armedRemove = null;
  b.disabled = true;
  try {
    await api("POST", "remove", { alias });
    toast(nameOf(alias) + " was removed from the room.");
    refreshStatus();
  } catch (x) {
    toast("Could not remove " + alias + ": " + x.message, true);
    b.disabled = false;
  }
}

export function wireRoster() {
  $("roster").addEventListener("click", onRemoveClick);
}

// ---- reach (SPEC §8): declared, requested, observed ----
const REACH_RANK = { manual: 0, poll: 1, wake: 2, live: 3 };

function reachOf(p) {
  const r = String(p.reach || "manual");
  return r in REACH_RANK ? r : "manual";
}

// "reach: wake · reachable now · woken 3m ago · wake failing ×2", all as text.
function reachLine(p) {
  const reach = reachOf(p);
  const line = el("div", "person-reach muted");
  const every = reach === "poll" && Number(p.poll_every_s) > 0 ? " every " + Number(p.poll_every_s) + "s" : "";
  line.append(el("span", "reach-kind", "reach: " + reach + every), document.createTextNode(" · "));
  line.append(p.reachable_now ? el("span", "reach-now-text", p.self_live ? "reachable now (this page)" : "reachable now") : el("span", "reach-not-text", "not reachable now"));
  if (p.last_woken_at) {
    const at = Date.parse(p.last_woken_at);
    if (!isNaN(at)) {
      const woken = el("span", "reach-woken", "woken " + ago(Math.max(0, Date.now() - at)));
      woken.title = "last woken " + fmtFull.format(new Date(at));
      line.append(document.createTextNode(" · "), woken);
    }
  }
  const failing = Number(p.wake_failing) || 0;
  if (failing > 0) {
    line.append(document.createTextNode(" · "), el("span", "reach-failing", "wake failing ×" + failing));
  }
  return line;
}

// A visible line (words, not only colour) when the declared reach is weaker than requested.
function reachWarning(p) {
  const asked = String(p.reach_requested || "");
  if (!(asked in REACH_RANK) || REACH_RANK[reachOf(p)] >= REACH_RANK[asked]) return null;
  return el("div", "reach-warn", "Warning: declared " + reachOf(p) + ", the host asked for " + asked);
}

let statusBusy = false;
export async function refreshStatus() {
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

export function tickTtl() {
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
