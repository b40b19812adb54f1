// Agent Gather browser room: the entry module. Vanilla JS modules, no framework.
//
// Safety rules every module keeps: room data (message text, names, brief, room id) reaches
// the page only through textContent or DOM construction, never as HTML; links are made
// only for http(s) and mailto; the token lives in sessionStorage and goes out only in the
// Authorization header, never in a URL (session.js).

import { $ } from "./util.js";
import { state, HIDE_SYSTEM_KEY, STATUS_EVERY_MS } from "./state.js";
import { api, getToken, forgetToken } from "./session.js";
import { showScreen, showGate, pickName, toast, updateTitle } from "./screens.js";
import { scrollToBottom } from "./timeline.js";
import { loadHistory, wireHistory } from "./history.js";
import { wireReceipts } from "./receipts.js";
import { wireAlerts } from "./alerts.js";
import { startLive } from "./live.js";
import { markBriefSeen, loadBrief } from "./brief.js";
import { autogrow, wireComposer } from "./composer.js";
import { setHideSystem, renderStatus, refreshStatus, tickTtl, wireRoster } from "./roster.js";
import { wireHost } from "./host.js";
import { loadTopics, topicsReady, wireTopics } from "./topics.js";
import { wireCards } from "./questions.js";
import { wireApprovals } from "./approvals.js";
import { wireSearch } from "./search.js";
import { wireClaims, loadClaims, claimsReady } from "./claims.js";
import { wireRail } from "./rail.js";
import { drawIcons } from "./icons.js";
import { wireActions, showLinked } from "./actions.js";

// ---- page-wide keys and wiring of the top bar's own buttons ----
function wirePage() {
  wireRail();
  drawIcons();
  $("tb-brief").addEventListener("click", markBriefSeen);
  $("brief-ack").addEventListener("click", markBriefSeen);
  $("tb-system").addEventListener("click", () => setHideSystem(!document.body.classList.contains("hide-system")));
  // "/" goes to the composer (unless typing somewhere)
  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof Element && e.target.closest("input, textarea, select, [contenteditable]");
    if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !typing && !state.closed && !$("room").hidden && $("search-overlay").hidden) {
      e.preventDefault();
      $("input").focus();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      state.unread = 0;
      updateTitle();
    }
  });
}

// ---- boot ----
async function boot() {
  if (!getToken()) return showGate("none");
  // /status goes out with /profile (one round trip less before the first message); it is
  // asked again if the name picker runs, so the roster has the new name.
  const early = api("GET", "status").catch((e) => e);
  let profile;
  try {
    profile = await api("GET", "profile");
  } catch (e) {
    if (e.status === 401) {
      forgetToken();
      return showGate("bad");
    }
    if (e.status === 410) return showGate("removed");
    return showGate("unreachable", e.message);
  }
  let named = false;
  if (profile.kind === "human" && !profile.display_name) {
    profile = await pickName(profile, early);
    if (state.stopped) return;
    named = true;
  }
  state.profile = profile;
  state.me = String(profile.alias);
  let hide = false;
  try {
    hide = localStorage.getItem(HIDE_SYSTEM_KEY) === "1";
  } catch (e) {
    /* storage may be off */
  }
  setHideSystem(hide);
  let status;
  try {
    status = named ? null : await early;
    if (!status || status instanceof Error) status = await api("GET", "status");
  } catch (e) {
    return showGate(e.status === 401 ? "bad" : e.status === 410 ? "removed" : "unreachable", e.message);
  }
  state.briefSeenKey = "agentgather.briefSeen:" + location.pathname + ":" + status.room + ":" + state.me;
  // where this participant had read up to before this visit (the "new since" line)
  const mine = (status.participants || []).find((p) => p.alias === state.me);
  state.readFrom = mine ? Number(mine.read_through_id || 0) : 0;
  renderStatus(status);
  wireHost();
  wirePage();
  wireActions();
  wireRoster();
  wireComposer();
  wireHistory();
  wireReceipts();
  wireAlerts();
  wireTopics();
  wireCards();
  wireApprovals();
  wireSearch();
  wireClaims();
  try {
    await Promise.all([loadBrief(), loadHistory(), loadTopics(), loadClaims()]);
  } catch (e) {
    if (e.status === 401) return showGate("bad");
    if (e.status === 410) return showGate("removed");
    toast("Could not load the history: " + e.message, true);
  }
  topicsReady();
  claimsReady();
  showScreen("room");
  autogrow();
  scrollToBottom();
  if (state.rendered.size) performance.mark("agentgather:first-message");
  if (!state.closed) {
    api("POST", "join", {}).catch(() => {});
    $("input").focus();
  }
  startLive();
  showLinked();
  // the host's invite form and brief editor load after the first message (a guest's page
  // never loads them)
  if (state.isHost) {
    Promise.all([import("./invite.js"), import("./briefedit.js")])
      .then(([invite, editor]) => {
        invite.wireInvite();
        editor.wireBriefEditor();
      })
      .catch((e) => toast("Could not load the host's tools: " + e.message, true));
  }
  setInterval(() => {
    if (!state.closed) refreshStatus();
  }, STATUS_EVERY_MS);
  setInterval(tickTtl, 1000);
}

boot();
