// Rich text: code fences, inline code, links and mentions, all built as DOM nodes.
// Room text reaches the page here only through textContent and createTextNode; links are
// made only for http, https and mailto.

import { el } from "./util.js";
import { state } from "./state.js";

// ---- rich text: code fences, inline code, links, mentions (all DOM-built) ----
export function knownAliases(msg) {
  const s = new Set(state.roster.keys());
  if (msg && Array.isArray(msg.mentions)) for (const m of msg.mentions) s.add(String(m));
  return s;
}

export function renderRich(text, into, known) {
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

export function renderProse(lines, into, known) {
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
export function renderInline(text, into, known) {
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
export function renderEmphasis(text, into, known) {
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

export function safeHref(raw) {
  try {
    const u = new URL(raw);
    if (u.protocol === "http:" || u.protocol === "https:" || u.protocol === "mailto:") return u.href;
  } catch (e) {
    /* not a URL */
  }
  return null;
}

export function trimUrl(u) {
  while (u.length) {
    const c = u[u.length - 1];
    if (".,;:!?'\"]}>".includes(c)) u = u.slice(0, -1);
    else if (c === ")" && (u.match(/\(/g) || []).length < (u.match(/\)/g) || []).length) u = u.slice(0, -1);
    else break;
  }
  return u;
}

export function renderLinksMentions(text, into, known) {
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
