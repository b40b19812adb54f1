// A message's hover actions, Slack-style: reply, copy a link to it, quote it into the
// composer. The toolbar is in the row's header line (never over its text); it shows on
// hover and focus, and on a phone always. A copied link (#msg=N) carries no token: it
// opens the message for whoever already has the room open in that browser tab.

import { $, el } from "./util.js";
import { state } from "./state.js";
import { takeLinked } from "./session.js";
import { plainText } from "./markdown.js";
import { icon } from "./icons.js";
import { nameOf, rowsEl } from "./timeline.js";
import { setReply, autogrow } from "./composer.js";
import { revealMessage } from "./history.js";
import { toast } from "./screens.js";

function actButton(cls, iconName, label, id) {
  const b = el("button", cls);
  b.type = "button";
  b.dataset.msg = String(id);
  b.title = label;
  b.setAttribute("aria-label", label + " (message " + id + ")");
  b.append(icon(iconName));
  return b;
}

export function rowActions(msg) {
  const box = el("span", "acts");
  const reply = actButton("act", "reply", "Reply", msg.id);
  reply.dataset.reply = String(msg.id);
  box.append(reply, actButton("act-link", "link", "Copy link", msg.id), actButton("act-quote", "quote", "Quote", msg.id));
  return box;
}

export function messageLink(id) {
  return location.origin + location.pathname + location.search + "#msg=" + id;
}

async function copyLink(id) {
  const link = messageLink(id);
  let ok = false;
  try {
    await navigator.clipboard.writeText(link);
    ok = true;
  } catch (e) {
    /* no clipboard here: the toast shows the link to copy by hand */
  }
  toast(ok ? "Link to #" + id + " copied." : "Link to #" + id + ": " + link);
}

function quote(id) {
  const m = state.byId.get(id);
  if (!m || state.closed) return;
  const lines = plainText(m.text, 280).split("\n");
  const input = $("input");
  const q = "> " + nameOf(m.from) + ": " + lines.join("\n> ") + "\n\n";
  input.value = q + input.value;
  autogrow();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

export function wireActions() {
  rowsEl().addEventListener("click", (e) => {
    const b = e.target instanceof Element && e.target.closest(".acts button");
    if (!b) return;
    const id = Number(b.dataset.msg);
    if (b.classList.contains("act")) setReply(id);
    else if (b.classList.contains("act-link")) copyLink(id);
    else if (b.classList.contains("act-quote")) quote(id);
  });
  window.addEventListener("agentgather:linked", showLinked);
}

// The message a #msg=N link named, shown in the timeline (older pages loaded back to it).
export function showLinked() {
  const id = takeLinked();
  if (id > 0) revealMessage(id);
}
