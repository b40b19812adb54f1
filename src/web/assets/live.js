// Live updates: one long-polled /wait per participant, shared by that participant's tabs.

import { state, WAIT_ABORT_MS } from "./state.js";
import { api } from "./session.js";
import { ingest } from "./timeline.js";
import { loadBrief } from "./brief.js";
import { refreshStatus } from "./roster.js";
import { showGate, setClosed, setConn } from "./screens.js";
import { noteTopics } from "./topics.js";

// ---- live: long-poll /wait with backoff ----
let wake = null;
window.addEventListener("online", () => wake && wake());
function nap(ms) {
  return new Promise((r) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      wake = null;
      r();
    }
    wake = done;
  });
}

// Applies a /wait answer (this tab's own, or the leader tab's); true when live updates end.
function applyWait(r) {
  noteTopics(r.messages); // the topic index first: new rows draw their cards from it
  ingest(r.messages);
  if (typeof r.next_since_id === "number" && r.next_since_id > state.cursor) state.cursor = r.next_since_id;
  if (state.brief && typeof r.brief_version === "number" && r.brief_version !== state.brief.brief_version) loadBrief();
  if (r.participant_status === "removed") {
    showGate("removed");
    return true;
  }
  if (r.room_status === "closed" || r.keep_waiting === false) {
    setClosed();
    refreshStatus();
    return true;
  }
  return false;
}

// The server holds at most four /waits per participant, so a person's many tabs would
// supersede each other, and each would cost a connection. Tabs of a participant elect a leader with a Web Lock: the
// leader long-polls and shares every answer on a BroadcastChannel, the others apply
// what it shares, and the next in line takes over as soon as the leader's tab goes.
export function startLive() {
  state.liveStarted = true; // this participant's page follows the room from here on
  if (!navigator.locks || typeof BroadcastChannel !== "function") return waitLoop();
  const key = "agentgather.wait:" + location.pathname + ":" + state.room + ":" + state.me;
  state.tabs = new BroadcastChannel(key);
  state.tabs.onmessage = (ev) => {
    if (!state.leader && ev.data && typeof ev.data === "object") followWait(ev.data);
  };
  navigator.locks.request(key, () => {
    state.leader = true;
    document.documentElement.dataset.waitLeader = "1";
    return waitLoop();
  });
}

let catchingUp = false;
async function followWait(r) {
  if (r.offline) return setConn(false, r.retryMs); // the leader lost the server
  if (!state.connOk) setConn(true);
  const first = Array.isArray(r.messages) && r.messages.length ? r.messages[0].id : null;
  if (first !== null && first > state.cursor + 1 && !catchingUp) {
    // The leader was further ahead than this tab (it shared a batch before this tab
    // listened): fetch the gap first so no message is skipped.
    catchingUp = true;
    try {
      const page = await api("GET", "messages?since_id=" + state.cursor);
      applyWait({ messages: page.messages, next_since_id: page.next_since_id, room_status: page.room_status });
    } catch (e) {
      /* the next shared batch tries again */
    } finally {
      catchingUp = false;
    }
  }
  applyWait(r);
}

async function waitLoop() {
  let backoff = 0;
  while (!state.stopped && !state.closed) {
    const started = Date.now();
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), WAIT_ABORT_MS);
    try {
      const r = await api("GET", "wait?since_id=" + state.cursor, undefined, ctrl.signal);
      clearTimeout(timer);
      if (!state.connOk) {
        setConn(true);
        refreshStatus();
      }
      backoff = 0;
      if (state.tabs) state.tabs.postMessage(r);
      if (applyWait(r)) return;
      // A heartbeat long before the hold time means another tab of this participant
      // (one without tab leadership) took over the wait; slow down rather than ping-pong.
      if (r.heartbeat && Date.now() - started < 2000) await nap(1500 + Math.random() * 1000);
    } catch (e) {
      clearTimeout(timer);
      if (e.status === 401) return showGate("bad");
      if (e.status === 410) return showGate("removed");
      backoff = Math.min(backoff ? backoff * 2 : 1000, 15000);
      const delay = backoff + Math.random() * 500;
      setConn(false, delay);
      if (state.tabs) state.tabs.postMessage({ offline: true, retryMs: delay });
      await nap(delay);
    }
  }
}
