// The composer: local echo of sends with retry, auto-grow, replies, @ autocomplete.

import { $, el, newClientId, hashHue } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { knownAliases, renderRich, plainText } from "./markdown.js";
import { nameOf, scrollToBottom, ingest, updateEmpty, rowsEl } from "./timeline.js";
import { revealMessage } from "./history.js";
import { avatar } from "./icons.js";
import { showGate, setClosed } from "./screens.js";

// ---- pending sends (local echo, retry) ----
function addPending(item) {
  const li = el("li", "row mine pending-row");
  const t = el("time", "t", "");
  const who = el("span", "who c" + hashHue(state.me), nameOf(state.me));
  who.dataset.alias = state.me;
  const body = el("div", "body");
  const text = el("div", "text rich");
  renderRich(item.text, text, knownAliases(null));
  const st = el("div", "send-state");
  body.append(text, st);
  const head = el("div", "head");
  head.append(who, t);
  li.append(avatar(state.me, nameOf(state.me)), head, body);
  $("pending").append(li);
  state.pending.set(item.cid, { item, el: li, st });
  updateEmpty();
  scrollToBottom();
  return li;
}
export function dropPending(cid) {
  const p = state.pending.get(cid);
  if (!p) return;
  p.el.remove();
  state.pending.delete(cid);
  updateEmpty();
}
function setPendingState(cid, kind, message) {
  const p = state.pending.get(cid);
  if (!p) return;
  p.st.textContent = "";
  p.el.classList.toggle("failed", kind === "failed");
  if (kind === "sending") {
    p.st.textContent = "sending…";
    return;
  }
  p.st.append(el("span", "err", "Not sent: " + message + " "));
  const retry = el("button", "link-btn", "retry");
  retry.type = "button";
  retry.addEventListener("click", () => postItem(p.item));
  const discard = el("button", "link-btn", "discard");
  discard.type = "button";
  discard.addEventListener("click", () => {
    const input = $("input");
    if (!input.value.trim()) {
      input.value = p.item.text;
      autogrow();
    }
    dropPending(cid);
  });
  p.st.append(retry, document.createTextNode(" · "), discard);
}
async function postItem(item) {
  if (item.inflight) return;
  item.inflight = true;
  setPendingState(item.cid, "sending");
  const body = { text: item.text, client_msg_id: item.cid };
  if (item.reply_to) {
    body.reply_to = item.reply_to;
    body.type = "reply";
  }
  try {
    const r = await api("POST", "messages", body);
    item.inflight = false;
    dropPending(item.cid);
    if (r.message) ingest([r.message]);
  } catch (e) {
    item.inflight = false;
    if (e.status === 401) return showGate("bad");
    if (e.status === 410) return showGate("removed");
    if (e.code === "room_closed") setClosed();
    setPendingState(item.cid, "failed", e.message);
  }
}

function send() {
  const input = $("input");
  const text = input.value;
  if (!text.trim() || state.closed) return;
  const item = { cid: newClientId(), text, reply_to: state.replyTo };
  input.value = "";
  autogrow();
  closeAc();
  setReply(null);
  addPending(item);
  postItem(item);
}

// ---- composer ----
export function autogrow() {
  const input = $("input");
  if (!input.offsetParent) return; // not laid out (hidden); sized when shown
  input.style.height = "auto";
  const cs = getComputedStyle(input);
  const line = parseFloat(cs.lineHeight) || 20;
  const pad = parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom) + parseFloat(cs.borderTopWidth) + parseFloat(cs.borderBottomWidth);
  const max = line * 6 + pad;
  const h = Math.min(input.scrollHeight + parseFloat(cs.borderTopWidth) + parseFloat(cs.borderBottomWidth), max);
  input.style.height = Math.ceil(h) + "px";
  input.style.overflowY = input.scrollHeight + 2 > max ? "auto" : "hidden";
}

export function setReply(id) {
  state.replyTo = id;
  const box = $("replying");
  if (!id) {
    box.hidden = true;
    return;
  }
  const m = state.byId.get(id);
  $("replying-text").textContent =
    "Replying to #" + id + (m ? " · " + nameOf(m.from) + ": " + plainText(m.text, 80) : "");
  box.hidden = false;
  $("input").focus();
}

// @ autocomplete
const ac = { open: false, items: [], index: 0, start: 0 };
function acQuery() {
  const input = $("input");
  if (input.selectionStart !== input.selectionEnd) return null;
  const before = input.value.slice(0, input.selectionStart);
  const m = /(^|[^\p{L}\p{N}_@])@([A-Za-z0-9-]{0,64})$/u.exec(before);
  if (!m) return null;
  return { q: m[2].toLowerCase(), start: before.length - m[2].length - 1 };
}
function updateAc() {
  const q = acQuery();
  if (!q) return closeAc();
  const items = [...state.roster.values()]
    .filter((p) => !p.removed && p.alias !== state.me)
    .filter((p) => p.alias.startsWith(q.q) || (p.display_name && p.display_name.toLowerCase().includes(q.q)))
    .slice(0, 8);
  if (!items.length) return closeAc();
  ac.items = items;
  ac.start = q.start;
  ac.index = Math.min(ac.index, items.length - 1);
  ac.open = true;
  const list = $("ac");
  list.textContent = "";
  items.forEach((p, i) => {
    const li = el("li", i === ac.index ? "active" : "");
    li.id = "ac-" + i;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", i === ac.index ? "true" : "false");
    li.append(el("span", "ac-alias", "@" + p.alias));
    if (p.display_name) li.append(el("span", "ac-name", p.display_name));
    li.append(el("span", "ac-kind", p.kind));
    li.addEventListener("mousedown", (e) => {
      e.preventDefault();
      ac.index = i;
      acceptAc();
    });
    list.append(li);
  });
  list.hidden = false;
  $("input").setAttribute("aria-activedescendant", "ac-" + ac.index);
}
export function closeAc() {
  ac.open = false;
  ac.index = 0;
  $("ac").hidden = true;
  $("input").removeAttribute("aria-activedescendant");
}
function acceptAc() {
  const p = ac.items[ac.index];
  if (!p) return closeAc();
  const input = $("input");
  const end = input.selectionStart;
  const insert = "@" + p.alias + " ";
  input.value = input.value.slice(0, ac.start) + insert + input.value.slice(end);
  const caret = ac.start + insert.length;
  input.setSelectionRange(caret, caret);
  closeAc();
  autogrow();
}

export function wireComposer() {
  const input = $("input");
  let composing = false;
  input.addEventListener("compositionstart", () => (composing = true));
  input.addEventListener("compositionend", () => (composing = false));
  input.addEventListener("input", () => {
    autogrow();
    updateAc();
  });
  input.addEventListener("click", updateAc);
  input.addEventListener("blur", () =>
    setTimeout(() => {
      if (document.activeElement !== input) closeAc();
    }, 150)
  );
  input.addEventListener("keydown", (e) => {
    const ime = e.isComposing || composing || e.keyCode === 229;
    if (ac.open && !ime) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const n = ac.items.length;
        ac.index = (ac.index + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
        updateAc();
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        acceptAc();
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        closeAc();
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !ime) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape" && state.replyTo) {
      setReply(null);
    }
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  $("replying-cancel").addEventListener("click", () => setReply(null));
  rowsEl().addEventListener("click", (e) => {
    const ref = e.target.closest("button.ref");
    if (ref) return revealMessage(Number(ref.dataset.target));
  });
  const narrow = window.matchMedia("(max-width: 520px)");
  const placeholder = () => {
    input.placeholder = narrow.matches ? "Message · @ to mention" : "Message the room · @ mentions · Shift+Enter for a new line";
  };
  narrow.addEventListener("change", placeholder);
  window.addEventListener("resize", autogrow);
  placeholder();
  autogrow();
}
