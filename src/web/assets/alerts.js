// Telling the reader that something arrived: screen-reader announcements (a polite live
// region for new messages, an assertive one for mentions of you).

import { $ } from "./util.js";
import { state } from "./state.js";
import { nameOf } from "./timeline.js";

const SAY_CHARS = 160; // an announcement reads the start of a message, not all of it

function plain(text) {
  return String(text).replace(/\s+/g, " ").trim().slice(0, SAY_CHARS);
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
  const rest = fresh.filter((m) => !mentions.includes(m));
  if (rest.length === 1) say("announce", nameOf(rest[0].from) + ": " + plain(rest[0].text));
  else if (rest.length > 1) say("announce", rest.length + " new messages, the last from " + nameOf(rest[rest.length - 1].from));
}
