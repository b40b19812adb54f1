// Seen by: who has read what, from each participant's read_through_id (the highest id the
// server has delivered to them). Shown compactly: a small initial per participant on the
// newest message they have read ("read up to here"), a "seen by" line under your own
// latest message, and on hovering a message's time, who has seen that message.

import { el, fmtFull, parseTs, hashHue } from "./util.js";
import { state } from "./state.js";
import { nameOf, rowsEl } from "./timeline.js";

function others() {
  return [...state.roster.values()].filter((p) => p.alias !== state.me && !p.removed);
}

function readThrough(p) {
  return Number(p.read_through_id || 0);
}

function receiptsBox(row) {
  let box = row.querySelector(":scope > .receipts");
  if (!box) {
    box = el("div", "receipts");
    row.append(box);
  }
  return box;
}

export function updateSeen() {
  for (const old of rowsEl().querySelectorAll(".receipts")) old.remove();
  if (!state.me) return;
  const people = others();
  // Rows that can carry a marker: loaded, not system rows (those may be hidden).
  const ids = [];
  for (const id of state.rendered.keys()) {
    const m = state.byId.get(id);
    if (m && m.type !== "system" && m.from !== "system") ids.push(id);
  }
  ids.sort((a, b) => a - b);

  // "read up to here" markers
  const at = new Map(); // row id -> participants whose newest read message it is
  for (const p of people) {
    const r = readThrough(p);
    if (!r || !ids.length || r < ids[0]) continue;
    let lo = 0;
    let hi = ids.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ids[mid] <= r) lo = mid;
      else hi = mid - 1;
    }
    const id = ids[lo];
    if (!at.has(id)) at.set(id, []);
    at.get(id).push(p);
  }
  for (const [id, list] of at) {
    const names = list.map((p) => nameOf(p.alias));
    const wrap = el("span", "readers");
    wrap.title = "Read up to here: " + names.join(", ");
    wrap.append(el("span", "sr-only", "Read up to here by " + names.join(", ")));
    for (const p of list.slice(0, 6)) {
      const chip = el("span", "reader r" + hashHue(p.alias), (nameOf(p.alias).trim()[0] || "?").toUpperCase());
      chip.setAttribute("aria-hidden", "true");
      wrap.append(chip);
    }
    if (list.length > 6) {
      const more = el("span", "reader more", "+" + (list.length - 6));
      more.setAttribute("aria-hidden", "true");
      wrap.append(more);
    }
    receiptsBox(state.rendered.get(id)).append(wrap);
  }

  // "seen by" under your own latest message
  let latest = 0;
  for (const id of ids) {
    const m = state.byId.get(id);
    if (m.from === state.me && id > latest) latest = id;
  }
  if (!latest || !people.length) return;
  const seen = people.filter((p) => readThrough(p) >= latest);
  let text;
  if (!seen.length) text = "not seen yet";
  else if (seen.length === people.length) text = people.length === 1 ? "seen by " + nameOf(seen[0].alias) : "seen by everyone";
  else text = "seen by " + seen.map((p) => nameOf(p.alias)).join(", ");
  const s = el("span", "seen", text);
  s.title = "From each participant's read-through position (what the server has delivered to them)";
  receiptsBox(state.rendered.get(latest)).prepend(s);
}

// Who has seen one message, for its time's tooltip, worked out when it is hovered.
function describe(row) {
  const id = Number(row.dataset.id);
  const m = state.byId.get(id);
  const t = row.querySelector("time.t");
  if (!m || !t) return;
  const people = others().filter((p) => p.alias !== m.from);
  const seen = people.filter((p) => readThrough(p) >= id).map((p) => nameOf(p.alias));
  const d = parseTs(m.ts);
  const who = !people.length ? "" : seen.length ? " · seen by " + seen.join(", ") : " · not seen by others yet";
  t.title = (d ? fmtFull.format(d) : "") + " · #" + id + who;
}

export function wireReceipts() {
  const rows = rowsEl();
  const on = (e) => {
    const row = e.target instanceof Element && e.target.closest(".row[data-id]");
    if (row) describe(row);
  };
  rows.addEventListener("mouseover", on);
  rows.addEventListener("focusin", on);
}
