// The rail: one panel at a time behind a row of tabs (brief, topics, people, and whatever a
// later module adds with addPanel), so each panel opens at its top, in view, instead of all
// of them stacked in one long scroll. Wide screens keep it beside the timeline; on a phone
// it is a drawer over the timeline with a scrim behind it, closed by the scrim, Esc, or
// choosing something that lives in the timeline.
//
// The tab strip fits its rail (320 px wide, or the drawer's 88% of a phone): the tabs show
// their words while all of them fit, then the same a little tighter, then their icons only
// (the word stays in the tab, hidden from sight, as its accessible name, and becomes its
// tooltip). Only if even the icons do not fit does the strip scroll sideways, with a thin
// scrollbar and a shade at the cut edge; the selected tab is always scrolled into view.
// Measured (not a fixed breakpoint) because the tabs are whatever modules add, with counts.

import { $, el } from "./util.js";
import { icon } from "./icons.js";

export const wide = window.matchMedia("(min-width: 761px)");
let current = "people";
let opener = null; // the control that opened the rail: Esc gives focus back to it
const listeners = new Map(); // panel id -> called when it is shown

const tabs = () => [...$("rail-tabs").querySelectorAll('[role="tab"]')];

export function isRailOpen() {
  return document.body.classList.contains("rail-open");
}

function setOpen(open) {
  document.body.classList.toggle("rail-open", open);
  $("tb-people").setAttribute("aria-expanded", open ? "true" : "false");
  $("scrim").hidden = !(open && !wide.matches);
  if (!open) opener = null;
}

// Shows panel `id` (its tab selected, the others hidden).
export function selectPanel(id) {
  if (!$(id)) return;
  current = id;
  for (const t of tabs()) {
    const on = t.dataset.panel === id;
    t.setAttribute("aria-selected", on ? "true" : "false");
    t.tabIndex = on ? 0 : -1;
    $(t.dataset.panel).hidden = !on;
  }
  fitTabs(); // the selected tab's word is bold, so a little wider
  $(id).scrollTop = 0;
  const cb = listeners.get(id);
  if (cb) cb();
}

// Opens the rail at panel `id`; `from` is the control that asked (focus returns to it).
export function openRail(id, from) {
  setOpen(true);
  if (from) opener = from;
  selectPanel(id || current);
  if (!wide.matches || from) $(current).focus({ preventScroll: true });
}

export function closeRail() {
  const back = opener;
  setOpen(false);
  if (back && back.isConnected) back.focus();
}

// Closes the drawer on a phone (where it covers the timeline); on a wide screen it stays.
export function closeDrawer() {
  if (!wide.matches && isRailOpen()) setOpen(false);
}

// A new panel with its tab: what an approvals or claims module calls once at start-up.
// Returns the panel's section, empty, for the module to fill; `onShow` runs each time the
// panel is shown.
export function addPanel(id, label, iconName, onShow) {
  const tab = el("button", "rail-tab");
  tab.type = "button";
  tab.id = "tab-" + id;
  tab.setAttribute("role", "tab");
  tab.setAttribute("aria-controls", id);
  tab.dataset.panel = id;
  const slot = el("span", "ic");
  slot.append(icon(iconName));
  tab.append(slot, el("span", "tab-label", label));
  $("rail-tabs").append(tab);
  const section = el("section", "panel");
  section.id = id;
  section.setAttribute("role", "tabpanel");
  section.setAttribute("aria-labelledby", tab.id);
  section.tabIndex = -1;
  section.hidden = true;
  $("rail").append(section);
  if (onShow) listeners.set(id, onShow);
  selectPanel(current);
  return section;
}

// The steps the strip goes through until its tabs fit (see the top of this file).
const FITS = ["words", "tight", "icons", "scroll"];

function fitTabs() {
  const strip = $("rail-tabs");
  if (!strip.clientWidth) return; // the rail is closed: measured again when it opens
  for (const fit of FITS) {
    strip.dataset.fit = fit;
    if (strip.scrollWidth <= strip.clientWidth + 1) break;
  }
  const iconsOnly = strip.dataset.fit === "icons" || strip.dataset.fit === "scroll";
  for (const t of tabs()) {
    const word = t.querySelector(".tab-label");
    t.title = iconsOnly && word ? word.textContent : "";
  }
  keepInView();
}

// Scrolls the strip (only it, never the page) so the selected tab shows whole, with room
// beside it for the shade that marks a cut edge.
function keepInView() {
  const strip = $("rail-tabs");
  const t = tabs().find((x) => x.dataset.panel === current);
  if (!t || strip.scrollWidth <= strip.clientWidth + 1) return;
  const room = 28;
  const left = t.offsetLeft - room;
  const right = t.offsetLeft + t.offsetWidth + room;
  if (left < strip.scrollLeft) strip.scrollLeft = left;
  else if (right > strip.scrollLeft + strip.clientWidth) strip.scrollLeft = right - strip.clientWidth;
}

export function wireRail() {
  const strip = $("rail-tabs");
  // refitted when the rail changes size (or opens) and when a tab or a count changes; the
  // rail, not the strip, is watched, as a strip that comes to scroll grows a scrollbar
  new ResizeObserver(fitTabs).observe($("rail"));
  new MutationObserver(fitTabs).observe(strip, { childList: true, subtree: true, characterData: true });
  // a vertical wheel scrolls a strip that scrolls sideways
  strip.addEventListener(
    "wheel",
    (e) => {
      if (strip.scrollWidth <= strip.clientWidth + 1 || Math.abs(e.deltaX) >= Math.abs(e.deltaY)) return;
      strip.scrollLeft += e.deltaY;
      e.preventDefault();
    },
    { passive: false },
  );
  setOpen(wide.matches);
  selectPanel(current);
  wide.addEventListener("change", () => setOpen(wide.matches));
  $("tb-people").addEventListener("click", () => {
    const b = $("tb-people");
    if (isRailOpen() && current === "people") closeRail();
    else openRail("people", b);
  });
  $("tb-topics").addEventListener("click", () => openRail("topics", $("tb-topics")));
  $("tb-brief").addEventListener("click", () => openRail("brief", $("tb-brief")));
  $("scrim").addEventListener("click", () => closeRail());
  $("rail-tabs").addEventListener("click", (e) => {
    const t = e.target instanceof Element && e.target.closest('[role="tab"]');
    if (t) selectPanel(t.dataset.panel);
  });
  // the tabs pattern: arrows move along the tabs, Home/End to the ends
  $("rail-tabs").addEventListener("keydown", (e) => {
    const list = tabs();
    const i = list.findIndex((t) => t.dataset.panel === current);
    let j = -1;
    if (e.key === "ArrowRight") j = (i + 1) % list.length;
    else if (e.key === "ArrowLeft") j = (i + list.length - 1) % list.length;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = list.length - 1;
    if (j < 0) return;
    e.preventDefault();
    selectPanel(list[j].dataset.panel);
    list[j].focus();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !wide.matches && isRailOpen() && !e.defaultPrevented) closeRail();
  });
}
