// Search (SPEC §9.2): a box in the rail; results come newest first from GET /search,
// each with its sender, time and snippet (the matched words marked); choosing one shows
// the message in the timeline, loading older pages back to it when needed.

import { $, el, hashHue, timeEl } from "./util.js";
import { api } from "./session.js";
import { nameOf } from "./timeline.js";
import { revealMessage } from "./history.js";

const PAGE = 20;
let query = ""; // the query the results are for
let lastId = 0; // the oldest result shown: the next page is before it
let busy = false; // a page is being fetched
let generation = 0; // bumped by every new query and by clearing: stale answers are dropped

// Shows message `id` in the timeline; on a phone the rail covering it closes first.
export function showInTimeline(id) {
  if (!window.matchMedia("(min-width: 761px)").matches && document.body.classList.contains("rail-open")) {
    document.body.classList.remove("rail-open");
    $("tb-people").setAttribute("aria-expanded", "false");
  }
  revealMessage(id);
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
      list.append(resultItem(m, String(hit.snippet || ""), words));
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
  head.append(t, el("span", "sr-who c" + hashHue(String(m.from)), nameOf(String(m.from))), el("span", "sr-id", "#" + m.id));
  if (m.type && m.type !== "message") head.append(el("span", "sr-type", String(m.type).replace(/_/g, " ")));
  if (m.type === "topic" && m.topic && m.topic.title) head.append(el("span", "sr-title", String(m.topic.title)));
  b.append(head, marked(snippet, words));
  li.append(b);
  return li;
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
