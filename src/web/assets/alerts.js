// Telling the reader that something arrived: screen-reader announcements (a polite live
// region for new messages, an assertive one for mentions of you), and while the tab is in
// the background, opt-in OS notifications, the unread count on the tab's icon, a sound.

import { $ } from "./util.js";
import { state } from "./state.js";
import { nameOf } from "./timeline.js";
import { plainText } from "./markdown.js";
import { approvalNotice } from "./approvals.js";

const SAY_CHARS = 160; // an announcement reads the start of a message, not all of it

function plain(text) {
  return plainText(text, SAY_CHARS);
}

// Live regions announce a change of their text; the same text twice in a row would be
// silent, so a counter alternates a zero-width suffix.
let flip = false;
function say(id, text) {
  const region = $(id);
  flip = !flip;
  region.textContent = text + (flip ? "\u200b" : "");
}

// Messages that just arrived live (not history pages), from others.
export function arrived(msgs) {
  const fresh = msgs.filter((m) => m.from !== state.me && m.type !== "system");
  if (!fresh.length) return;
  const mentions = fresh.filter((m) => Array.isArray(m.mentions) && m.mentions.includes(state.me));
  if (mentions.length) {
    const m = mentions[mentions.length - 1];
    say("announce-mention", nameOf(m.from) + " mentioned you: " + plain(m.text));
  }
  if (notify(fresh) && prefs.sound) chime();
  const rest = fresh.filter((m) => !mentions.includes(m));
  if (rest.length === 1) say("announce", nameOf(rest[0].from) + ": " + plain(rest[0].text));
  else if (rest.length > 1) say("announce", rest.length + " new messages, the last from " + nameOf(rest[rest.length - 1].from));
}

// ---- OS notifications (opt in), the unread badge on the tab's icon, sound (off by default)
//
// A notification says who and where, never what: its body holds no room text, because it
// leaves the page (lock screens, notification centres, other people's eyes).

const MODES = ["off", "mentions", "all"];
const prefs = { mode: "off", sound: false };
let prefsKey = "";
let audio = null;

function savePrefs() {
  try {
    localStorage.setItem(prefsKey, JSON.stringify(prefs));
  } catch (e) {
    /* storage may be off */
  }
}

function permission() {
  return typeof window.Notification === "function" ? window.Notification.permission : "unsupported";
}

function showPrefs() {
  $("notify-mode").value = prefs.mode;
  $("notify-sound").checked = prefs.sound;
  const p = permission();
  let text = "";
  if (p === "unsupported") text = "This browser cannot show notifications.";
  else if (prefs.mode !== "off" && p === "denied") text = "Notifications are blocked for this site in the browser's settings.";
  else if (prefs.mode !== "off" && p === "default") text = "The browser will ask to allow notifications.";
  else if (prefs.mode !== "off") text = "Shown while this tab is in the background. They say who and where, never the message.";
  $("notify-state").textContent = text;
}

export function wireAlerts() {
  prefsKey = "agentgather.notify:" + location.pathname + ":" + state.room + ":" + state.me;
  try {
    const saved = JSON.parse(localStorage.getItem(prefsKey) || "{}");
    if (MODES.includes(saved.mode)) prefs.mode = saved.mode;
    prefs.sound = saved.sound === true;
  } catch (e) {
    /* no saved preference */
  }
  $("notify-mode").addEventListener("change", async (e) => {
    prefs.mode = MODES.includes(e.target.value) ? e.target.value : "off";
    savePrefs();
    if (prefs.mode !== "off" && permission() === "default") {
      try {
        await window.Notification.requestPermission();
      } catch (x) {
        /* the answer shows below */
      }
    }
    showPrefs();
  });
  $("notify-sound").addEventListener("change", (e) => {
    prefs.sound = e.target.checked;
    savePrefs();
    if (prefs.sound) chime(); // a sample, and it unlocks audio in this tab
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) setBadge(0);
  });
  showPrefs();
}

function notify(msgs) {
  if (prefs.mode === "off" || !document.hidden || permission() !== "granted") return false;
  const mine = msgs.filter((m) => Array.isArray(m.mentions) && m.mentions.includes(state.me));
  const pick = prefs.mode === "mentions" ? mine : msgs;
  if (!pick.length) return false;
  const last = pick[pick.length - 1];
  const where = state.room || "the room";
  let body;
  // "who" is the sender's alias (a slug the host gave), not their free-text display name
  if (mine.length) body = "@" + mine[mine.length - 1].from + " mentioned you in " + where;
  else if (pick.length === 1) body = "@" + last.from + " posted in " + where;
  else body = pick.length + " new messages in " + where;
  body = approvalNotice(pick, where) || body;
  try {
    const n = new window.Notification("Agent Gather · " + where, { body, tag: "agentgather:" + where, silent: !prefs.sound });
    n.onclick = () => {
      window.focus();
      n.close();
    };
  } catch (e) {
    return false; // some platforms allow notifications only from a service worker
  }
  return true;
}

function chime() {
  try {
    if (!audio) audio = new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.26);
  } catch (e) {
    /* no audio here */
  }
}

// The tab's icon with the unread count on it (while the tab is hidden), or the plain icon.
let plainIcon = null;
export function setBadge(count) {
  const link = document.querySelector('link[rel="icon"]');
  if (!link) return;
  if (plainIcon === null) plainIcon = link.getAttribute("href");
  document.documentElement.dataset.unreadBadge = String(count);
  if (!count) {
    link.setAttribute("href", plainIcon);
    return;
  }
  const c = document.createElement("canvas");
  c.width = c.height = 32;
  const g = c.getContext("2d");
  if (!g) return;
  g.fillStyle = "#2557c7";
  g.fillRect(2, 6, 24, 20);
  g.fillStyle = "#d92d20";
  g.beginPath();
  g.arc(22, 10, 10, 0, 2 * Math.PI);
  g.fill();
  g.fillStyle = "#ffffff";
  g.font = "bold 13px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText(count > 99 ? "99+" : String(count), 22, 11);
  link.setAttribute("href", c.toDataURL("image/png"));
}
