// Safe Markdown: the one renderer for every view (messages, the brief, the composer's echo).
//
// Built by DOM construction only: room text reaches the page through textContent and
// createTextNode, never as HTML. HTML in the source is shown as the text it is, entities
// are not decoded (so `&#106;avascript:` stays text), and a link or image becomes an <a>
// only when its URL parses as http, https or mailto; any other link is shown as typed.
//
// Blocks: ATX and setext headings, paragraphs (line breaks kept, as typed in a chat),
// fenced code with a copy button, block quotes, ordered (keeping their start number) and
// bullet lists, nested, thematic breaks, and GFM tables. Inline: code spans, emphasis,
// strong, ~~strikethrough~~, [links](url), ![images](url) (as links), <autolinks>, bare
// http(s)/mailto URLs, and @mentions of current participants as pills.

import { el } from "./util.js";
import { state } from "./state.js";

const MAX_DEPTH = 12; // nested quotes/lists deeper than this render as plain text

// Aliases a message may mention: the roster, plus whatever the server resolved on write
// (a participant removed since still shows as a pill in old messages).
export function knownAliases(msg) {
  const s = new Set(state.roster.keys());
  if (msg && Array.isArray(msg.mentions)) for (const m of msg.mentions) s.add(String(m));
  return s;
}

export function renderRich(text, into, known) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  renderBlocks(lines, into, known || new Set(), 0);
  outlineHeadings(into);
}

// Screen readers navigate by heading level, so a message's headings must nest under the
// section heading above it (an h2) without skipping a level: "### a" alone is an h3, and
// a heading is at most one level deeper than the one before it. The class keeps the level
// as typed, so the look does not change.
function outlineHeadings(box) {
  let prev = 2;
  for (const h of box.querySelectorAll("h3, h4, h5, h6")) {
    const typed = Number(h.tagName[1]);
    const level = Math.min(typed, prev + 1);
    prev = level;
    if (level === typed) continue;
    const moved = el("h" + level, h.className);
    moved.append(...h.childNodes);
    h.replaceWith(moved);
  }
}

// A message as one line of plain text (what it reads as, without the Markdown marks), for
// previews: reply references, the reply chip, announcements.
export function plainText(text, max) {
  const box = document.createElement("div");
  renderRich(String(text).slice(0, 4000), box, new Set());
  for (const b of box.querySelectorAll("button")) b.remove();
  for (const blk of box.querySelectorAll("div, li, h3, h4, h5, h6, blockquote, pre, tr")) blk.append(document.createTextNode(" "));
  return box.textContent.replace(/\s+/g, " ").trim().slice(0, max);
}

// ---- blocks ----

const FENCE_RE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const ATX_RE = /^ {0,3}(#{1,6})(?:[ \t]|$)/;
const HR_RE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE_RE = /^ {0,3}> ?(.*)$/;
const ITEM_RE = /^( {0,3})([-+*]|\d{1,9}[.)])([ \t]+|$)(.*)$/;
const SETEXT_RE = /^ {0,3}(=+|-+)[ \t]*$/;
const TABLE_DELIM_RE = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

const isBlank = (l) => l.trim() === "";

function openFence(line) {
  const m = FENCE_RE.exec(line);
  if (!m || (m[2][0] === "`" && m[3].includes("`"))) return null;
  return { ch: m[2][0], n: m[2].length, indent: m[1].length, info: m[3].trim().split(/\s+/)[0] || "" };
}

// Whether a line ends the paragraph above it: a list item only when it starts at 1 (for an
// ordered one) and is not empty, as in CommonMark, so "in\n2024. we…" stays prose.
function interrupts(line) {
  if (openFence(line) || ATX_RE.test(line) || HR_RE.test(line) || QUOTE_RE.test(line)) return true;
  const item = listItem(line);
  return !!item && item.first !== "" && (!item.ordered || item.start === 1);
}

// An ATX heading's text, without its optional closing run of #s (no regex: a long run of
// spaces must not make this quadratic).
function atxText(line, m) {
  let t = line.slice(m[0].length).trim();
  let e = t.length;
  while (e > 0 && t[e - 1] === "#") e--;
  if (e === 0) return "";
  if (e < t.length && (t[e - 1] === " " || t[e - 1] === "\t")) t = t.slice(0, e).trimEnd();
  return t;
}

function listItem(line) {
  const m = ITEM_RE.exec(line);
  if (!m) return null;
  // "-" followed by nothing but "--" is a rule, not an item
  if (HR_RE.test(line)) return null;
  const marker = m[2];
  const ordered = /\d/.test(marker[0]);
  const spaces = m[3].length;
  const pad = m[4] === "" ? 1 : spaces > 4 ? 1 : spaces; // a code-indented item keeps one space
  return {
    ordered,
    bullet: ordered ? marker[marker.length - 1] : marker,
    start: ordered ? parseInt(marker, 10) : 1,
    indent: m[1].length + marker.length + pad,
    first: m[4] === "" ? "" : (spaces > 4 ? " ".repeat(spaces - 1) : "") + m[4],
  };
}

function renderBlocks(lines, into, known, depth) {
  if (depth > MAX_DEPTH) {
    const p = el("div", "p");
    p.append(document.createTextNode(lines.join("\n")));
    into.append(p);
    return;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }
    const fence = openFence(line);
    if (fence) {
      i = codeBlock(lines, i + 1, fence, into);
      continue;
    }
    let m;
    if ((m = ATX_RE.exec(line))) {
      into.append(heading(m[1].length, atxText(line, m), known));
      i++;
      continue;
    }
    if (HR_RE.test(line)) {
      into.append(el("hr", "rule"));
      i++;
      continue;
    }
    if (QUOTE_RE.test(line)) {
      const inner = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = QUOTE_RE.exec(lines[i]);
        if (q) inner.push(q[1]);
        else if (interrupts(lines[i])) break;
        else inner.push(lines[i]); // lazy continuation of the quoted paragraph
        i++;
      }
      const bq = el("blockquote", "quote");
      renderBlocks(inner, bq, known, depth + 1);
      into.append(bq);
      continue;
    }
    const item = listItem(line);
    if (item) {
      i = list(lines, i, item, into, known, depth);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && lines[i + 1].includes("|") && TABLE_DELIM_RE.test(lines[i + 1])) {
      const t = table(lines, i, known);
      if (t) {
        into.append(t.node);
        i = t.next;
        continue;
      }
    }
    // a paragraph: up to a blank line or the start of another block
    const para = [line];
    i++;
    let level = 0;
    while (i < lines.length && !isBlank(lines[i])) {
      const s = SETEXT_RE.exec(lines[i]);
      if (s) {
        level = s[1][0] === "=" ? 1 : 2;
        i++;
        break;
      }
      if (interrupts(lines[i])) break;
      para.push(lines[i]);
      i++;
    }
    if (level) {
      into.append(heading(level, para.map((l) => l.trim()).join("\n"), known));
    } else {
      const p = el("div", "p");
      renderInline(para.join("\n"), p, known);
      into.append(p);
    }
  }
}

// Headings sit below the page's own h1/h2, so a message's "# Title" is an h3.
function heading(level, text, known) {
  const h = el("h" + Math.min(6, level + 2), "h h" + level);
  renderInline(text.trim(), h, known);
  return h;
}

function codeBlock(lines, i, fence, into) {
  const code = [];
  for (; i < lines.length; i++) {
    const m = FENCE_RE.exec(lines[i]);
    if (m && m[2][0] === fence.ch && m[2].length >= fence.n && m[3].trim() === "") {
      i++;
      break;
    }
    // strip up to the fence's own indentation
    let l = lines[i];
    for (let k = 0; k < fence.indent && l[0] === " "; k++) l = l.slice(1);
    code.push(l);
  }
  const wrap = el("div", "code-wrap");
  const pre = el("pre", "code-block");
  pre.append(el("code", null, code.join("\n")));
  if (fence.info) pre.dataset.lang = fence.info.slice(0, 40);
  pre.tabIndex = 0; // a long line scrolls sideways: the keyboard can reach it too
  const copy = el("button", "copy", "Copy");
  copy.type = "button";
  // its visible text is its name ("Copy", then "Copied"), so a label never contradicts it
  copy.title = "Copy the code" + (fence.info ? " (" + fence.info.slice(0, 40) + ")" : "") + " to the clipboard";
  copy.addEventListener("click", () => copyCode(pre, copy));
  wrap.append(pre, copy);
  into.append(wrap);
  return i;
}

async function copyCode(pre, button) {
  const text = pre.textContent;
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (e) {
    // no clipboard API here (or no permission): copy the selection the old way
    const sel = window.getSelection();
    const range = document.createRange();
    range.selectNodeContents(pre);
    sel.removeAllRanges();
    sel.addRange(range);
    try {
      ok = document.execCommand("copy");
    } catch (e2) {
      ok = false;
    }
    sel.removeAllRanges();
  }
  button.textContent = ok ? "Copied" : "Select and copy by hand";
  button.classList.toggle("done", ok);
  setTimeout(() => {
    button.textContent = "Copy";
    button.classList.remove("done");
  }, 2000);
}

function list(lines, i, first, into, known, depth) {
  const node = el(first.ordered ? "ol" : "ul", "list");
  if (first.ordered && first.start !== 1) node.start = first.start;
  let item = first;
  let loose = false;
  const items = [];
  while (item) {
    const body = [item.first];
    i++;
    let blankBefore = false;
    let lazyOk = item.first !== "";
    while (i < lines.length) {
      const l = lines[i];
      if (isBlank(l)) {
        body.push("");
        blankBefore = true;
        i++;
        continue;
      }
      const ind = l.length - l.trimStart().length;
      if (ind >= item.indent) {
        body.push(l.slice(item.indent));
        blankBefore = false;
        lazyOk = true;
        i++;
        continue;
      }
      if (!blankBefore && lazyOk && !interrupts(l) && !listItem(l)) {
        body.push(l); // lazy continuation of the item's paragraph
        i++;
        continue;
      }
      break;
    }
    while (body.length && body[body.length - 1] === "") body.pop();
    items.push(body);
    // the next sibling: same kind of marker, after at most blank lines
    const next = i < lines.length ? listItem(lines[i]) : null;
    if (next && next.ordered === item.ordered && next.bullet === item.bullet) {
      if (blankBefore) loose = true;
      item = next;
    } else item = null;
  }
  for (const body of items) {
    const li = el("li");
    if (body.includes("")) loose = true;
    renderBlocks(body, li, known, depth + 1);
    node.append(li);
  }
  if (loose) node.classList.add("loose");
  into.append(node);
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells = [];
  let cur = "";
  let tick = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === "\\" && s[k + 1] === "|") {
      cur += "|";
      k++;
    } else if (c === "`") {
      tick ^= 1;
      cur += c;
    } else if (c === "|" && !tick) {
      cells.push(cur.trim());
      cur = "";
    } else cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

function table(lines, i, known) {
  const head = splitRow(lines[i]);
  const aligns = splitRow(lines[i + 1]).map((d) => (/^:-+:$/.test(d) ? "center" : /-:$/.test(d) ? "right" : /^:-/.test(d) ? "left" : ""));
  if (head.length !== aligns.length || head.length > 50) return null;
  const wrap = el("div", "table-wrap");
  const t = el("table", "md-table");
  const thead = el("thead");
  const tr = el("tr");
  head.forEach((h, k) => tr.append(cell("th", h, aligns[k], known)));
  thead.append(tr);
  t.append(thead);
  const tbody = el("tbody");
  i += 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|") && !interrupts(lines[i])) {
    const cells = splitRow(lines[i]);
    const r = el("tr");
    for (let k = 0; k < head.length; k++) r.append(cell("td", cells[k] || "", aligns[k], known));
    tbody.append(r);
    i++;
  }
  if (tbody.childNodes.length) t.append(tbody);
  wrap.append(t);
  return { node: wrap, next: i };
}

function cell(tag, text, align, known) {
  const c = el(tag);
  if (tag === "th") c.scope = "col";
  if (align) c.classList.add("al-" + align);
  renderInline(text, c, known);
  return c;
}

// ---- inline ----

const PUNCT_RE = /[\p{P}\p{S}]/u;
const SPACE_RE = /\s/;
const ESCAPABLE = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const BARE_URL_RE = /(?:https?:\/\/|mailto:)[^\s<>"'`]+/iy;
const AUTOLINK_RE = /<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>/y;
const MENTION_RE = /@([A-Za-z0-9-]{1,65})/y;

// The URL only if it parses as http, https or mailto (URL parsing also strips the tabs,
// newlines and case tricks that would hide another scheme).
function safeUrl(raw) {
  try {
    const u = new URL(raw);
    if (u.protocol === "http:" || u.protocol === "https:" || u.protocol === "mailto:") return u;
  } catch (e) {
    /* not an absolute URL */
  }
  return null;
}

function trimUrl(u) {
  while (u.length) {
    const c = u[u.length - 1];
    if (".,;:!?'\"]}>*_~".includes(c)) u = u.slice(0, -1);
    else if (c === ")" && (u.match(/\(/g) || []).length < (u.match(/\)/g) || []).length) u = u.slice(0, -1);
    else break;
  }
  return u;
}

function linkNode(url, isImage) {
  const a = el("a", "link" + (isImage ? " image-link" : ""));
  a.href = url.href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  a.referrerPolicy = "no-referrer";
  // the destination's host (or mail address) shows on hover, whatever the link text says
  a.title = (isImage ? "image · " : "") + (url.protocol === "mailto:" ? url.pathname : url.host);
  return a;
}

// The backtick runs of a text, by length, so finding where a code span closes is a binary
// search, not a rescan (a text of many unmatched runs stays linear-ish).
function backtickRuns(text) {
  const byLen = new Map();
  const re = /`+/g;
  let m;
  while ((m = re.exec(text))) {
    const n = m[0].length;
    if (!byLen.has(n)) byLen.set(n, []);
    byLen.get(n).push(m.index);
  }
  // the start of the next run of exactly n backticks after position i, or -1
  return (i, n) => {
    const list = byLen.get(n);
    if (!list) return -1;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] <= i) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length ? list[lo] : -1;
  };
}

const LINK_SCAN = 1000; // a link's text and destination are searched this far, no further

// [text](dest "title") starting at `i` (the "["): {textEnd, dest, end} or null.
function parseLink(text, i, codeEnd, nextClose) {
  const lim = Math.min(text.length, i + LINK_SCAN);
  const closeAt = nextClose(i);
  if (closeAt < 0 || closeAt > lim) return null;
  let depth = 0;
  let k = i;
  for (; k < lim; k++) {
    const c = text[k];
    if (c === "\\") k++;
    else if (c === "`") {
      let n = 0;
      while (text[k + n] === "`") n++;
      const e = codeEnd(k, n);
      k = e < 0 ? k + n - 1 : e + n - 1;
    } else if (c === "[") depth++;
    else if (c === "]" && --depth === 0) break;
  }
  if (k >= lim || text[k + 1] !== "(") return null;
  const textEnd = k;
  k += 2;
  while (text[k] === " " || text[k] === "\t" || text[k] === "\n") k++;
  let dest = "";
  if (text[k] === "<") {
    const e = text.indexOf(">", k);
    if (e < 0 || e > lim || text.slice(k + 1, e).includes("\n")) return null;
    dest = text.slice(k + 1, e);
    k = e + 1;
  } else {
    let parens = 0;
    const s = k;
    for (; k < lim; k++) {
      const c = text[k];
      if (c === "\\" && k + 1 < text.length) k++;
      else if (c === "(") parens++;
      else if (c === ")") {
        if (parens === 0) break;
        parens--;
      } else if (c === " " || c === "\t" || c === "\n") break;
    }
    dest = text.slice(s, k);
  }
  while (text[k] === " " || text[k] === "\t" || text[k] === "\n") k++;
  const q = text[k];
  if (q === '"' || q === "'" || q === "(") {
    const close = q === "(" ? ")" : q;
    const e = text.indexOf(close, k + 1);
    if (e < 0 || e > lim) return null;
    k = e + 1;
    while (text[k] === " " || text[k] === "\t" || text[k] === "\n") k++;
  }
  if (text[k] !== ")") return null;
  return { textEnd, dest: dest.replace(/\\([!-/:-@[-`{-~])/g, "$1"), end: k + 1 };
}

// Inline content as a flat list of text, nodes and emphasis delimiter runs, then the runs
// are matched (CommonMark's flanking rules, simplified) and the DOM is built.
function renderInline(text, into, known, inLink) {
  const codeEnd = backtickRuns(text);
  // where the next "](" is, remembered so that many "[" stay linear
  let closeAt = -2;
  const nextClose = (from) => {
    if (closeAt !== -1 && closeAt < from) closeAt = text.indexOf("](", from);
    return closeAt;
  };
  const items = [];
  let buf = "";
  const flush = () => {
    if (buf) items.push({ t: "text", s: buf });
    buf = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      let n = 0;
      while (text[i + n] === "`") n++;
      const e = codeEnd(i + n - 1, n);
      if (e < 0) {
        buf += text.slice(i, i + n);
        i += n;
        continue;
      }
      let inner = text.slice(i + n, e).replace(/\n/g, " ");
      if (inner.length > 2 && inner[0] === " " && inner[inner.length - 1] === " " && inner.trim()) inner = inner.slice(1, -1);
      flush();
      items.push({ t: "node", n: el("code", "inline", inner) });
      i = e + n;
      continue;
    }
    if (c === "<" && !inLink) {
      AUTOLINK_RE.lastIndex = i;
      const m = AUTOLINK_RE.exec(text);
      const u = m && safeUrl(m[1]);
      if (u) {
        flush();
        const a = linkNode(u, false);
        a.textContent = m[1];
        items.push({ t: "node", n: a });
        i += m[0].length;
        continue;
      }
    }
    if (!inLink && (c === "[" || (c === "!" && text[i + 1] === "["))) {
      const img = c === "!";
      const l = parseLink(text, img ? i + 1 : i, codeEnd, nextClose);
      if (l) {
        const src = text.slice(i, l.end);
        const u = safeUrl(l.dest);
        flush();
        if (u) {
          const a = linkNode(u, img);
          const label = text.slice(img ? i + 2 : i + 1, l.textEnd);
          if (img) a.textContent = label.trim() ? label : "image";
          else if (label.trim()) renderInline(label, a, known, true);
          else a.textContent = l.dest;
          items.push({ t: "node", n: a });
        } else {
          items.push({ t: "text", s: src }); // another scheme: shown as typed, inert
        }
        i = l.end;
        continue;
      }
    }
    if (c === "*" || c === "_" || c === "~") {
      let n = 0;
      while (text[i + n] === c) n++;
      const before = i > 0 ? text[i - 1] : " ";
      const after = i + n < text.length ? text[i + n] : " ";
      const bs = SPACE_RE.test(before);
      const as = SPACE_RE.test(after);
      const bp = PUNCT_RE.test(before);
      const ap = PUNCT_RE.test(after);
      const left = !as && (!ap || bs || bp);
      const right = !bs && (!bp || as || ap);
      let open = left;
      let close = right;
      if (c === "_") {
        open = left && (!right || bp);
        close = right && (!left || ap);
      }
      if (c === "~" && n !== 2) open = close = false;
      flush();
      items.push({ t: "delim", ch: c, n, open, close, orig: n });
      i += n;
      continue;
    }
    if (!inLink && (c === "h" || c === "H" || c === "m" || c === "M") && !(i > 0 && /\w/.test(text[i - 1]))) {
      BARE_URL_RE.lastIndex = i;
      const m = BARE_URL_RE.exec(text);
      if (m) {
        const raw = trimUrl(m[0]);
        const u = safeUrl(raw);
        if (u && raw.length > 8) {
          flush();
          const a = linkNode(u, false);
          a.textContent = raw;
          items.push({ t: "node", n: a });
          i += raw.length;
          continue;
        }
      }
    }
    if (c === "@" && !(i > 0 && /[\p{L}\p{N}_@]/u.test(text[i - 1]))) {
      MENTION_RE.lastIndex = i;
      const m = MENTION_RE.exec(text);
      if (m) {
        const word = m[1].toLowerCase().replace(/-+$/, "");
        if (word && known.has(word)) {
          flush();
          items.push({ t: "node", n: mentionPill(word) });
          i += 1 + word.length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flush();
  matchEmphasis(items);
  build(items, into);
}

function mentionPill(word) {
  const p = state.roster.get(word);
  const pill = el("span", "mention" + (word === state.me ? " me" : ""), "@" + word);
  pill.dataset.alias = word;
  pill.title = p ? (p.display_name ? p.display_name + " (" + p.kind + ")" : p.kind) : "participant";
  return pill;
}

function matchEmphasis(items) {
  const bottom = new Map(); // no opener below this index for a closer of this kind
  for (let i = 0; i < items.length; i++) {
    const c = items[i];
    if (c.t !== "delim" || !c.close || c.n === 0) continue;
    const key = c.ch + (c.open ? "1" : "0") + (c.orig % 3);
    const floor = bottom.get(key) || 0;
    let found = false;
    for (let j = i - 1; j >= floor; j--) {
      const o = items[j];
      if (o.t !== "delim" || o.ch !== c.ch || !o.open || o.n === 0) continue;
      if (c.ch !== "~" && (o.close || c.open) && (o.orig + c.orig) % 3 === 0 && !(o.orig % 3 === 0 && c.orig % 3 === 0)) continue;
      if (c.ch === "~" && o.n !== c.n) continue;
      const use = c.ch === "~" ? 2 : o.n >= 2 && c.n >= 2 ? 2 : 1;
      const tag = c.ch === "~" ? "del" : use === 2 ? "strong" : "em";
      o.n -= use;
      c.n -= use;
      const wrapped = { t: "wrap", tag, kids: items.slice(j + 1, i) };
      items.splice(j + 1, i - j - 1, wrapped);
      for (const [k, v] of bottom) if (v > j + 1) bottom.set(k, j + 1);
      i = c.n > 0 ? j + 1 : j + 2; // a closer with delimiters left is tried again
      found = true;
      break;
    }
    if (!found) bottom.set(key, i);
  }
}

function build(items, into) {
  for (const it of items) {
    if (it.t === "text") into.append(document.createTextNode(it.s));
    else if (it.t === "node") into.append(it.n);
    else if (it.t === "delim") {
      if (it.n) into.append(document.createTextNode(it.ch.repeat(it.n)));
    } else {
      const w = el(it.tag);
      build(it.kids, w);
      into.append(w);
    }
  }
}
