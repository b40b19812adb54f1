// Small DOM, id and time helpers shared by every module. Nothing here touches room state.

export const $ = (id) => document.getElementById(id);

// Room data enters the DOM only as text: `text` goes through textContent.
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
export function show(node, on) {
  node.hidden = !on;
}
export function newClientId() {
  if (window.crypto && typeof crypto.randomUUID === "function") return "web-" + crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
export function hashHue(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h % 8;
}


// ---- time ----
export const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
export const fmtFull = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
export const fmtDay = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
export function parseTs(ts) {
  const d = new Date(ts);
  return isNaN(d.getTime()) ? null : d;
}
// A message's time: the short clock as text, the instant in `datetime`, the full date in
// the tooltip (with `note` after it, e.g. the message id).
export function timeEl(cls, ts, note) {
  const d = parseTs(ts);
  const t = el("time", cls, d ? fmtTime.format(d) : "");
  if (d) {
    t.dateTime = d.toISOString();
    t.title = fmtFull.format(d) + (note ? " · " + note : "");
  }
  return t;
}
export function dayKey(d) {
  return d ? d.getFullYear() + "-" + d.getMonth() + "-" + d.getDate() : "";
}
export function ago(ms) {
  if (ms === null || ms === undefined) return "never";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + "s ago";
  const m = Math.round(s / 60);
  if (m < 60) return m + "m ago";
  const h = Math.round(m / 60);
  if (h < 48) return h + "h ago";
  return Math.round(h / 24) + "d ago";
}

