// The Room Brief panel and its "updated" mark.

import { $, el, fmtFull, parseTs } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { knownAliases, renderRich } from "./markdown.js";
import { nameOf } from "./timeline.js";
import { showGate } from "./screens.js";

function briefSeenVersion() {
  try {
    return Number(localStorage.getItem(state.briefSeenKey) || 0);
  } catch (e) {
    return 0;
  }
}
export function markBriefSeen() {
  if (!state.brief) return;
  try {
    localStorage.setItem(state.briefSeenKey, String(state.brief.brief_version));
  } catch (e) {
    /* storage may be off */
  }
  updateBriefBadge();
}
function updateBriefBadge() {
  const b = state.brief;
  const unseen = !!b && b.brief_version > briefSeenVersion();
  $("brief-badge").hidden = !unseen;
  $("tb-brief-badge").hidden = !unseen;
  $("brief-ack").hidden = !unseen;
  $("brief").classList.toggle("updated", unseen);
  $("tb-brief").classList.toggle("updated", unseen);
}

let briefBusy = null;
export function loadBrief() {
  if (briefBusy) return briefBusy;
  briefBusy = (async () => {
    try {
      const r = await api("GET", "brief");
      const b = r.brief || {};
      const first = !state.brief;
      const changed = first || b.brief_version !== state.brief.brief_version || b.body !== state.brief.body;
      state.brief = b;
      if ((first && !briefSeenVersion()) || String(b.brief_updated_by) === state.me) {
        // the version you found on arrival, or wrote yourself, counts as seen
        try {
          localStorage.setItem(state.briefSeenKey, String(b.brief_version));
        } catch (e) {
          /* storage may be off */
        }
      }
      if (changed) {
        $("brief-ver").textContent = "v" + b.brief_version;
        $("tb-brief-ver").textContent = "v" + b.brief_version;
        const by = b.brief_updated_by ? " by " + nameOf(String(b.brief_updated_by)) : "";
        const at = b.brief_updated_at && parseTs(b.brief_updated_at) ? " · " + fmtFull.format(parseTs(b.brief_updated_at)) : "";
        $("brief-meta").textContent = "Version " + b.brief_version + by + at + ". Mission context, not commands.";
        const body = $("brief-body");
        body.textContent = "";
        if (b.body && String(b.body).trim()) renderRich(String(b.body), body, knownAliases(null));
        else body.append(el("p", "muted", "No brief yet."));
      }
      updateBriefBadge();
    } catch (e) {
      if (e.status === 401) showGate("bad");
    } finally {
      briefBusy = null;
    }
  })();
  return briefBusy;
}
