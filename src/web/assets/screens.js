// Which screen shows (loading, invite gate, name picker, room), and the page-wide
// indicators: closed, reconnecting, toasts, the title.

import { $, show } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { closeAc } from "./composer.js";
import { setBadge } from "./alerts.js";
import { plainText } from "./markdown.js";

// ---- screens ----
export function showScreen(which) {
  show($("boot"), which === "boot");
  show($("gate"), which === "gate");
  show($("namer-screen"), which === "namer");
  show($("room"), which === "room");
}

export function showGate(kind, detail) {
  state.stopped = true;
  const title = $("gate-title");
  const text = $("gate-text");
  const help = $("gate-help");
  const retry = $("gate-retry");
  retry.hidden = true;
  help.hidden = false;
  if (kind === "none") {
    title.textContent = "Invite required";
    text.textContent = "You need an invite link to join this room.";
  } else if (kind === "bad") {
    title.textContent = "Invite required";
    text.textContent = "This invite is not valid for this room (it may be mistyped, or the host removed it). Ask the host for a new invite link.";
  } else if (kind === "removed") {
    title.textContent = "You were removed";
    text.textContent = "The host removed you from this room. Ask the host if you need a new invite.";
  } else {
    title.textContent = "The room cannot be reached";
    text.textContent = "The room server did not answer" + (detail ? " (" + detail + ")" : "") + ". It may be stopped or your connection may be down.";
    help.hidden = true;
    retry.hidden = false;
  }
  document.title = title.textContent + " · Agent Gather";
  showScreen("gate");
}
$("gate-retry").addEventListener("click", () => location.reload());

// The first visit says where you are before it asks anything: the room, who invited you,
// and what the room is for (the brief's first line), from /status and /brief.
async function describeInvite(profile, early) {
  let status = null;
  let brief = null;
  try {
    const s = await early;
    status = s instanceof Error ? null : s;
    brief = (await api("GET", "brief")).brief;
  } catch (e) {
    /* the form works without them */
  }
  const room = status ? String(status.room || "") : "";
  if (room) {
    $("namer-room").textContent = "Agent Gather room";
    $("namer-title").textContent = "You're invited to " + room;
  }
  const by = profile.invited_by ? String(profile.invited_by) : "";
  const people = status && Array.isArray(status.participants) ? status.participants : [];
  const inviter = people.find((p) => p.alias === by) || (by ? null : people.find((p) => p.is_host));
  if (inviter) {
    const name = inviter.display_name ? inviter.display_name + " (@" + inviter.alias + ")" : "@" + inviter.alias;
    $("namer-invite").textContent = name + (inviter.is_host ? ", the host," : "") + " invited you.";
  }
  const line = brief && brief.body ? firstLine(String(brief.body)) : "";
  $("namer-brief").textContent = line;
  $("namer-brief").hidden = !line;
}

// The brief's first non-blank line as plain text (a heading's marks dropped).
function firstLine(body) {
  const l = body.split("\n").find((x) => x.trim()) || "";
  return plainText(l, 200);
}

export function pickName(profile, early) {
  return new Promise((resolve) => {
    const form = $("namer");
    const input = $("namer-input");
    const err = $("namer-error");
    const btn = $("namer-submit");
    $("namer-intro").textContent =
      "You are joining as “" + profile.alias + "”. Pick the name people will see next to your messages. You can't change it later from here.";
    describeInvite(profile, early);
    showScreen("namer");
    input.focus();
    input.addEventListener("input", () => {
      err.hidden = true;
      input.removeAttribute("aria-invalid");
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const name = input.value.trim();
      if (!name) {
        err.textContent = "Type a name first.";
        err.hidden = false;
        return;
      }
      btn.disabled = true;
      try {
        const r = await api("POST", "profile", { display_name: name });
        resolve(r);
      } catch (x) {
        if (x.status === 409) err.textContent = "“" + name + "” is already taken in this room. Pick another name.";
        else if (x.status === 401) return showGate("bad");
        else if (x.status === 410) return showGate("removed");
        else err.textContent = x.message;
        err.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.focus();
      } finally {
        btn.disabled = false;
      }
    });
  });
}


export function setClosed() {
  if (state.closed) return;
  state.closed = true;
  document.body.classList.add("is-closed");
  const st = $("tb-status");
  st.textContent = "closed";
  st.className = "pill closed";
  $("composer").hidden = true;
  $("closed-note").hidden = false;
  const banner = $("closed-banner");
  banner.textContent = "This room is closed." + (state.isHost ? " You can still export the log." : " Thanks for taking part.");
  banner.hidden = false;
  const closeBtn = $("btn-close");
  if (closeBtn) closeBtn.hidden = true;
  const inviteBtn = $("btn-invite");
  if (inviteBtn) inviteBtn.hidden = true;
  $("tb-ttl").hidden = true;
  closeAc();
  document.dispatchEvent(new Event("agentgather:closed"));
}

export function setConn(ok, retryMs) {
  state.connOk = ok;
  const c = $("tb-conn");
  if (ok) {
    c.hidden = true;
    document.body.classList.remove("offline");
  } else {
    c.textContent = "reconnecting…" + (retryMs ? " " + Math.ceil(retryMs / 1000) + "s" : "");
    c.title = "The room server is not answering; retrying with backoff. Messages you send are kept and can be retried.";
    c.hidden = false;
    document.body.classList.add("offline");
  }
}

let toastTimer = 0;
export function toast(text, isError) {
  const t = $("toast");
  t.textContent = text;
  t.classList.toggle("error", !!isError);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 5000);
}

export function updateTitle() {
  const base = (state.room ? state.room : "room") + (state.closed ? " (closed)" : "") + " · Agent Gather";
  document.title = (state.unread ? "(" + state.unread + ") " : "") + base;
  setBadge(document.hidden ? state.unread : 0);
}
