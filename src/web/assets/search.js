// Search (SPEC §9.2): its own overlay over the room (the top bar's button, or Ctrl+K);
// results come newest first from GET /search, each with its sender, time and the message
// as plain text (Markdown rendered, then flattened) around the first matched word, with
// the matched words marked; choosing one closes the overlay and shows the message in the
// timeline, loading older pages back to it when needed.

import { $, el, hashHue, timeEl } from "./util.js";
import { api } from "./session.js";
import { nameOf } from "./timeline.js";
import { revealMessage } from "./history.js";
import { plainText } from "./markdown.js";
import { closeDrawer } from "./rail.js";
import { avatar } from "./icons.js";

const PAGE = 20;
let query = ""; // the query the results are for
let lastId = 0; // the oldest result shown: the next page is before it
let busy = false; // a page is being fetched
let generation = 0; // bumped by every new query and by clearing: stale answers are dropped

// Shows message `id` in the timeline; the overlay, and on a phone the drawer, close first.
export function showInTimeline(id) {
  closeSearch(false);
  closeDrawer();
  revealMessage(id);
}

let opener = null;
export function openSearch() {
  opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  $("search-overlay").hidden = false;
  document.body.classList.add("search-open");
  const input = $("search-input");
  input.focus();
  input.select();
}

function closeSearch(refocus) {
  if ($("search-overlay").hidden) return;
  $("search-overlay").hidden = true;
  document.body.classList.remove("search-open");
  if (refocus && opener && opener.isConnected) opener.focus();
  opener = null;
}

// A new query always runs (the answer to an older one is dropped when it arrives);
// "more results" waits for the page in hand.
async function run(more) {
  const q = more ? query : $("search-input").value.trim();
  if (more && busy) return;
  const note = $("search-state");
  if (!q) {
    clear();
    return;
  }
  if (!more) {
    generation++;
    query = q;
    lastId = 0;
  }
  const mine = generation;
  busy = true;
  note.textContent = "Searching…";
  let path = "search?q=" + encodeURIComponent(q) + "&limit=" + PAGE;
  if (more && lastId) path += "&before_id=" + lastId;
  try {
    const r = await api("GET", path);
    if (mine !== generation) return;
    const list = $("search-results");
    if (!more) list.textContent = "";
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    for (const hit of r.results || []) {
      const m = hit && hit.message;
      if (!m || typeof m.id !== "number") continue;
      list.append(resultItem(m, around(plainText(String(m.text || ""), 4000), words), words));
      lastId = m.id;
    }
    const n = list.children.length;
    note.textContent = n ? n + (r.has_more ? "+" : "") + (n === 1 ? " message" : " messages") + " match “" + q + "”, newest first." : "No messages match “" + q + "”.";
    $("search-more").hidden = !r.has_more;
    $("search-clear").hidden = false;
  } catch (e) {
    if (mine === generation) note.textContent = "Search failed: " + e.message;
  } finally {
    if (mine === generation) busy = false;
  }
}

function clear() {
  generation++;
  busy = false;
  query = "";
  lastId = 0;
  $("search-input").value = "";
  $("search-results").textContent = "";
  $("search-state").textContent = "";
  $("search-more").hidden = true;
  $("search-clear").hidden = true;
}

function resultItem(m, snippet, words) {
  const li = el("li", "sr-item");
  const b = el("button", "sr-hit");
  b.type = "button";
  b.dataset.id = String(m.id);
  const head = el("span", "sr-head");
  const t = timeEl("sr-time", m.ts);
  head.append(avatar(String(m.from), nameOf(String(m.from)), "av-sm"), el("span", "sr-who c" + hashHue(String(m.from)), nameOf(String(m.from))), t, el("span", "sr-id", "#" + m.id));
  if (m.type && m.type !== "message") head.append(el("span", "sr-type", String(m.type).replace(/_/g, " ")));
  if (m.type === "topic" && m.topic && m.topic.title) head.append(el("span", "sr-title", String(m.topic.title)));
  b.append(head, marked(snippet, words));
  li.append(b);
  return li;
}

// About 220 characters of the message's plain text around its first matched word.
function around(text, words) {
  const lower = text.toLowerCase();
  let at = -1;
  for (const w of words) {
    const j = lower.indexOf(w);
    if (j !== -1 && (at === -1 || j < at)) at = j;
  }
  if (text.length <= 220 || at < 80) return text.length <= 220 ? text : text.slice(0, 220) + "…";
  const start = Math.max(0, at - 80);
  return "…" + text.slice(start, start + 220) + (start + 220 < text.length ? "…" : "");
}

// The snippet as text, with each occurrence of a query word in a <mark>.
function marked(text, words) {
  const out = el("span", "sr-snippet");
  const lower = text.toLowerCase();
  // lowercasing can change lengths outside ASCII-like scripts; then no marks, just text
  if (lower.length !== text.length || !words.length) {
    out.textContent = text;
    return out;
  }
  let i = 0;
  while (i < text.length) {
    let at = -1;
    let len = 0;
    for (const w of words) {
      const j = lower.indexOf(w, i);
      if (j !== -1 && (at === -1 || j < at || (j === at && w.length > len))) {
        at = j;
        len = w.length;
      }
    }
    if (at === -1) break;
    if (at > i) out.append(document.createTextNode(text.slice(i, at)));
    out.append(el("mark", null, text.slice(at, at + len)));
    i = at + len;
  }
  if (i < text.length) out.append(document.createTextNode(text.slice(i)));
  return out;
}

export function wireSearch() {
  const input = $("search-input");
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) {
      e.preventDefault();
      run(false);
    } else if (e.key === "Escape" && input.value) {
      e.preventDefault();
      e.stopPropagation();
      clear();
    }
  });
  $("tb-search").addEventListener("click", openSearch);
  $("search-close").addEventListener("click", () => closeSearch(true));
  // Esc (with an empty box) or a click on the backdrop closes; Tab stays in the dialog
  $("search-overlay").addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      closeSearch(true);
    } else if (e.key === "Tab") {
      const f = [...$("search").querySelectorAll("button, input")].filter((x) => !x.hidden && !x.disabled && x.getClientRects().length);
      if (!f.length) return;
      const first = f[0];
      const last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  });
  $("search-overlay").addEventListener("click", (e) => {
    if (e.target === $("search-overlay")) closeSearch(true);
  });
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === "k" || e.key === "K")) {
      e.preventDefault();
      openSearch();
    }
  });
  $("search-go").addEventListener("click", () => run(false));
  $("search-more").addEventListener("click", () => run(true));
  $("search-clear").addEventListener("click", () => {
    clear();
    input.focus();
  });
  $("search-results").addEventListener("click", (e) => {
    const b = e.target instanceof Element && e.target.closest(".sr-hit");
    if (b) showInTimeline(Number(b.dataset.id));
  });
}
