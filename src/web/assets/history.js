// Long history: the page opens at the newest page of the room and loads older pages
// (GET messages?before_id=) as the reader scrolls up, keeping what is on screen where it
// is; the "new since you last looked" line, from the read cursor the page found on
// arrival; and the jump-to-latest button.

import { $, el, parseTs } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { buildRow, dayDivider, rowsEl, timeline, nearBottom, scrollToBottom, updateEmpty, flash } from "./timeline.js";
import { updateSeen } from "./receipts.js";
import { toast } from "./screens.js";

const PAGE = 100; // messages per page: the first one and every older one
const LOAD_AHEAD_PX = 800; // an older page starts loading this far from the top

// Rows for messages in id order (skipping any already shown), with day dividers.
function rowsFragment(msgs) {
  const frag = document.createDocumentFragment();
  let prevDay = null;
  for (const m of msgs) {
    if (state.rendered.has(m.id)) continue;
    const li = buildRow(m);
    if (li._day && li._day !== prevDay) frag.append(dayDivider(parseTs(m.ts)));
    prevDay = li._day;
    frag.append(li);
    state.rendered.set(m.id, li);
  }
  return { frag, lastDay: prevDay };
}

// The newest page, once, when the page opens.
export async function loadHistory() {
  const r = await api("GET", "messages?since_id=" + state.cursor + "&tail=" + PAGE);
  const msgs = (r.messages || []).filter((m) => m && typeof m.id === "number");
  for (const m of msgs) state.byId.set(m.id, m);
  if (typeof r.next_since_id === "number" && r.next_since_id > state.cursor) state.cursor = r.next_since_id;
  state.openedAt = state.cursor;
  rowsEl().append(rowsFragment(msgs).frag);
  state.oldestId = msgs.length ? msgs[0].id : state.cursor + 1;
  state.hasMoreBefore = msgs.length > 0 && msgs[0].id > 1;
  updateOlderNote(false);
  placeUnreadLine();
  updateEmpty();
  updateSeen();
  scrollToBottom();
}

let loading = null; // the page being fetched, shared by every caller
let retryAt = 0; // after a failure, scrolling does not retry before this

// The page before the oldest shown row, put above it without moving what is on screen.
// Resolves to whether a page was added.
function loadOlder() {
  if (loading) return loading;
  if (!state.hasMoreBefore || state.stopped || Date.now() < retryAt) return Promise.resolve(false);
  loading = fetchOlder().finally(() => {
    loading = null;
    updateOlderNote(false);
  });
  return loading;
}

async function fetchOlder() {
  updateOlderNote(true);
  let r;
  try {
    r = await api("GET", "messages?before_id=" + state.oldestId + "&limit=" + PAGE);
  } catch (e) {
    retryAt = Date.now() + 5000;
    toast("Could not load earlier messages: " + e.message, true);
    return false;
  }
  const msgs = (r.messages || []).filter((m) => m && typeof m.id === "number" && m.id < state.oldestId);
  for (const m of msgs) if (!state.byId.has(m.id)) state.byId.set(m.id, m);
  const t = timeline();
  const height = t.scrollHeight;
  const top = t.scrollTop;
  const { frag, lastDay } = rowsFragment(msgs);
  const list = rowsEl();
  // The old first row's day divider is redundant when the new page ends on that day.
  const head = firstRowish(list);
  if (head && head.classList.contains("day") && head.nextElementSibling && head.nextElementSibling._day === lastDay) head.remove();
  list.prepend(frag);
  if (msgs.length) state.oldestId = msgs[0].id;
  state.hasMoreBefore = !!r.has_more_before && msgs.length > 0;
  placeUnreadLine();
  updateSeen();
  // Everything above changed height by the same amount: keep the rows on screen in place.
  t.scrollTop = top + (t.scrollHeight - height);
  // Still near the top (a short page, or a fast reader): keep going.
  if (state.hasMoreBefore && t.scrollTop < LOAD_AHEAD_PX) requestAnimationFrame(() => loadOlder());
  return msgs.length > 0;
}

// Shows a message that may be older than what is loaded (a reply's original): loads pages
// back to it, a bounded number, then scrolls to it.
export async function revealMessage(id) {
  for (let pages = 0; !state.rendered.has(id) && state.hasMoreBefore && id < state.oldestId && pages < 50; pages++) {
    if (!(await loadOlder())) break;
  }
  flash(id);
}

function firstRowish(list) {
  let n = list.firstElementChild;
  while (n && n.id === "unread-line") n = n.nextElementSibling;
  return n;
}

// Rows were dropped from the top to keep the DOM small: they can be loaded again.
export function droppedOlder() {
  const first = rowsEl().querySelector(".row[data-id]");
  if (first) state.oldestId = Number(first.dataset.id);
  state.hasMoreBefore = true;
  updateOlderNote(false);
}

function updateOlderNote(busy) {
  const note = $("older-note");
  if (!state.rendered.size) {
    note.hidden = true;
    return;
  }
  note.hidden = false;
  note.classList.toggle("busy", !!busy);
  if (busy) note.textContent = "Loading earlier messages…";
  else if (state.hasMoreBefore) note.textContent = "Scroll up for earlier messages";
  else note.textContent = "This is the start of the room.";
}

// "New since you last looked": above the first message from someone else after the read
// position the page found on arrival (read_through_id), among what was there then.
function placeUnreadLine() {
  const old = $("unread-line");
  if (old) old.remove();
  const from = state.readFrom;
  if (!from) return; // a first visit: nothing was read before
  let first = 0;
  for (const [id, m] of state.byId) {
    if (id > from && id <= state.openedAt && m.from !== state.me && m.type !== "system" && (!first || id < first)) first = id;
  }
  if (!first || !state.rendered.has(first)) return;
  const exact = state.oldestId <= from + 1 || !state.hasMoreBefore;
  const line = el("li", "unread-line");
  line.id = "unread-line";
  line.dataset.after = String(from);
  const label = exact ? "New since you last looked" : "New since you last looked (more above)";
  line.append(el("span", null, label));
  const list = rowsEl();
  if (exact) state.rendered.get(first).before(line);
  else list.prepend(line);
}

// The jump button: "New messages" when some arrived below, otherwise "Jump to latest"
// once the reader is more than a screen up.
let freshBelow = false;
export function noteFresh() {
  freshBelow = true;
  updateJump();
}
function updateJump() {
  const t = timeline();
  const jump = $("jump");
  if (nearBottom()) {
    freshBelow = false;
    jump.hidden = true;
    return;
  }
  const far = t.scrollHeight - t.scrollTop - t.clientHeight > t.clientHeight;
  jump.textContent = freshBelow ? "New messages ↓" : "Jump to latest ↓";
  jump.hidden = !(freshBelow || far);
}

export function wireHistory() {
  const t = timeline();
  t.addEventListener(
    "scroll",
    () => {
      if (state.hasMoreBefore && t.scrollTop < LOAD_AHEAD_PX) loadOlder();
      updateJump();
    },
    { passive: true }
  );
  $("jump").addEventListener("click", () => {
    freshBelow = false;
    scrollToBottom();
    $("input").focus({ preventScroll: true });
  });
}
