// Icons and avatars. Icons are inline SVG built from the constant paths below (no file to
// fetch, nothing the CSP has to allow, no room data in them); they are decoration, so every
// one is aria-hidden and its control carries the name. Avatars are a person's initials on
// one of eight colours picked from the alias, so the same person looks the same everywhere.

import { el, hashHue } from "./util.js";

const NS = "http://www.w3.org/2000/svg";
// 24×24, stroked with currentColor.
const PATHS = {
  search: ["M10.5 4a6.5 6.5 0 1 0 0 13a6.5 6.5 0 1 0 0-13z", "M15.5 15.5L20 20"],
  brief: ["M6 3h9l4 4v14H6z", "M14 3v5h5", "M9 12h7M9 16h7"],
  topics: ["M4 5h16v10H9l-4 4v-4H4z", "M8 9h8M8 12h5"],
  people: ["M9 11a3.5 3.5 0 1 0 0-7a3.5 3.5 0 1 0 0 7z", "M2.5 20c.5-4 3.2-6 6.5-6s6 2 6.5 6", "M16 4.5a3.2 3.2 0 0 1 0 6.2", "M18 14.3c2 .7 3.2 2.6 3.5 5.7"],
  system: ["M2.5 12s3.5-6.5 9.5-6.5S21.5 12 21.5 12s-3.5 6.5-9.5 6.5S2.5 12 2.5 12z", "M12 9.5a2.5 2.5 0 1 0 0 5a2.5 2.5 0 1 0 0-5z"],
  invite: ["M9 11a3.5 3.5 0 1 0 0-7a3.5 3.5 0 1 0 0 7z", "M2.5 20c.5-4 3.2-6 6.5-6s6 2 6.5 6", "M19 8v6M16 11h6"],
  export: ["M12 4v11", "M7.5 10.5L12 15l4.5-4.5", "M5 19h14"],
  close: ["M6 11h12v9H6z", "M8.5 11V8a3.5 3.5 0 0 1 7 0v3"],
  x: ["M6 6l12 12M18 6L6 18"],
  reply: ["M10 8L5 12.5L10 17", "M5 12.5h9a5 5 0 0 1 5 5V19"],
  link: ["M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1", "M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1"],
  quote: ["M5 7h5v5H7l-2 4", "M14 7h5v5h-3l-2 4"],
};

// Each icon is built once and cloned after that (a page of 100 messages draws 300).
const built = new Map();
export function icon(name) {
  let svg = built.get(name);
  if (!svg) {
    svg = draw(name);
    built.set(name, svg);
  }
  return svg.cloneNode(true);
}

function draw(name) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of PATHS[name] || []) {
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

// Fills every `<span class="ic" data-icon="…">` of the static page.
export function drawIcons(root) {
  for (const slot of (root || document).querySelectorAll(".ic[data-icon]")) {
    if (!slot.firstChild) slot.append(icon(slot.dataset.icon));
  }
}

// Up to two initials of a display name (or of the alias's parts), upper-cased.
export function initials(name) {
  const parts = String(name || "?")
    .split(/[\s\-_.]+/u)
    .filter(Boolean);
  const first = (s) => Array.from(s)[0] || "";
  const two = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : Array.from(parts[0] || "?").slice(0, 2).join("");
  return two.toUpperCase();
}

export function avatar(alias, name, cls) {
  const a = el("span", "av av" + hashHue(String(alias)) + (cls ? " " + cls : ""), initials(name || alias));
  a.setAttribute("aria-hidden", "true");
  a.dataset.alias = String(alias);
  return a;
}
