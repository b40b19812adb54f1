// Topic cards (SPEC §9.1): a `type: "topic"` message in the timeline (and at the head of
// its thread) shows as a card: title, status, and for a question its options. Whoever
// may answer (the addressee, anyone but the asker when no one is addressed, or the host)
// gets one button per option; everyone sees who answered what once it is answered.
// Cards are redrawn from the topic index (topics.js) whenever a /wait answer touches it.

import { el } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { nameOf } from "./timeline.js";
import { toast } from "./screens.js";
import { topics, viewOf, mayAnswer, noteTopics, openTopic, statusPill } from "./topics.js";
import { fillApprovalCard } from "./approvals.js";

// The card of a topic message (filled from the index, or from the message alone when the
// index does not have it yet).
// `body` (the topic's text, drawn by the caller) sits inside the card, under its title.
export function topicCard(msg, body) {
  const card = el("div", "tc");
  card.dataset.topic = String(msg.id);
  card.setAttribute("role", "group");
  card._msg = msg;
  card._body = body || null;
  fillCard(card);
  return card;
}

// A comment's link to its topic, above the comment's text (`inline`: inside a sentence,
// as in a topic update's line).
export function topicRef(msg, inline) {
  const t = topics.get(msg.topic_id);
  const b = el("button", inline ? "tc-ref tc-ref-inline" : "tc-ref");
  b.type = "button";
  b.dataset.openTopic = String(msg.topic_id);
  if (!inline) b.append(el("span", "tc-ref-mark", "on topic"));
  b.append(el("span", "tc-ref-title", "#" + msg.topic_id + (t ? " " + t.title : "")));
  b.title = "Open topic #" + msg.topic_id;
  return b;
}

// What someone is typing into the written answers of the cards under `root`, by topic id,
// with the caret and whether it had focus: a redraw (a new display name, an update to the
// topic) gives it all back rather than clearing a half-typed answer.
export function keepTyped(root) {
  const kept = new Map();
  for (const input of root.querySelectorAll(".tc[data-topic] .tc-input")) {
    kept.set(input.closest(".tc[data-topic]").dataset.topic, {
      value: input.value,
      start: input.selectionStart,
      end: input.selectionEnd,
      dir: input.selectionDirection,
      focused: input === document.activeElement,
    });
  }
  return kept;
}
export function restoreTyped(root, kept) {
  if (!kept.size) return;
  for (const input of root.querySelectorAll(".tc[data-topic] .tc-input")) {
    const k = kept.get(input.closest(".tc[data-topic]").dataset.topic);
    if (!k) continue;
    input.value = k.value;
    if (k.focused) input.focus({ preventScroll: true });
    if (k.start !== null) input.setSelectionRange(k.start, k.end, k.dir || "none");
  }
}

// Redraws the cards of the given topic ids (all cards when `ids` is null).
export function refreshCards(ids) {
  for (const card of document.querySelectorAll(".tc[data-topic]")) {
    if (ids && !ids.has(Number(card.dataset.topic))) continue;
    const hadFocus = card.contains(document.activeElement);
    const typed = keepTyped(card);
    fillCard(card);
    restoreTyped(card, typed);
    if (hadFocus && !card.contains(document.activeElement)) {
      const next = card.querySelector(".tc-opt:not([disabled])") || card.querySelector(".tc-state");
      if (next) next.focus({ preventScroll: true });
    }
  }
  for (const ref of document.querySelectorAll(".tc-ref[data-open-topic]")) {
    const id = Number(ref.dataset.openTopic);
    if (ids && !ids.has(id)) continue;
    const t = topics.get(id);
    const title = ref.querySelector(".tc-ref-title");
    if (t && title) title.textContent = "#" + id + " " + t.title;
  }
}

function fillCard(card) {
  const id = Number(card.dataset.topic);
  const t = topics.get(id) || (card._msg ? viewOf(card._msg) : null);
  card.textContent = "";
  if (!t) return;
  if (t.kind === "approval") return fillApprovalCard(card, t);
  const question = t.kind === "question";
  card.classList.toggle("tc-question", question);
  card.classList.toggle("tc-done", t.status !== "open");
  card.setAttribute("aria-label", (question ? "Question" : "Topic") + " #" + id + ": " + t.title);
  const head = el("div", "tc-head");
  head.append(el("span", "tc-kind", (question ? "Question" : "Topic") + " #" + id), statusPill(t.status), el("strong", "tc-title", t.title));
  card.append(head);
  if (card._body) card.append(card._body); // (empty when the text only repeated the title)
  if (question && t.to) card.append(el("div", "tc-to", "Asked to " + nameOf(t.to) + (t.to === state.me ? " (you)" : "")));
  if (question) {
    const st = el("div", "tc-state");
    st.tabIndex = -1;
    if (t.answer) {
      st.classList.add("tc-answered");
      st.append(el("span", "tc-state-label", "Answered: "));
      if (t.answer.option) st.append(el("strong", "tc-choice", t.answer.option));
      if (t.answer.text) st.append(el("span", "tc-answer-text", (t.answer.option ? " — " : "") + t.answer.text));
      st.append(el("span", "tc-by", " by " + nameOf(String(t.answer.by))));
    } else if (state.closed) {
      st.append(el("span", "tc-state-label", "Not answered; the room is closed."));
    } else if (t.status === "open") {
      st.append(el("span", "tc-state-label", mayAnswer(t) ? "Your answer:" : "Waiting for " + (t.to ? nameOf(t.to) : "an answer") + "…"));
    } else {
      st.append(el("span", "tc-state-label", "Not answered; " + t.status + "."));
    }
    card.append(st);
    if (mayAnswer(t)) card.append(answerControls(t));
  }
  const foot = el("div", "tc-foot");
  const open = el("button", "link-btn tc-thread", t.comments ? "thread · " + t.comments + (t.comments === 1 ? " comment" : " comments") : "open thread");
  open.type = "button";
  open.dataset.openTopic = String(id);
  open.title = "Open the thread of topic #" + id;
  foot.append(open);
  card.append(foot);
}

function answerControls(t) {
  const box = el("div", "tc-opts");
  if (t.options.length) {
    for (const o of t.options) {
      const b = el("button", "tc-opt", o);
      b.type = "button";
      b.dataset.option = o;
      b.title = "Answer “" + o + "”";
      box.append(b);
    }
    return box;
  }
  // A question without options takes a written answer.
  const input = el("input", "tc-input");
  input.type = "text";
  input.maxLength = 4000;
  input.setAttribute("aria-label", "Your answer to: " + t.title);
  input.placeholder = "Your answer";
  const send = el("button", "tc-opt tc-send", "Answer");
  send.type = "button";
  box.append(input, send);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) {
      e.preventDefault();
      send.click();
    }
  });
  return box;
}

async function answer(card, body) {
  const id = Number(card.dataset.topic);
  const buttons = card.querySelectorAll(".tc-opts button, .tc-opts input");
  for (const b of buttons) b.disabled = true;
  try {
    const r = await api("POST", "topics/" + id + "/answer", body);
    noteTopics([r.message]);
    // the pressed button is gone: focus stays on the card, on its answered state
    const st = card.querySelector(".tc-state");
    if (st && card.isConnected) st.focus({ preventScroll: true });
  } catch (e) {
    toast("Could not answer: " + e.message, true);
    for (const b of buttons) b.disabled = false;
  }
}

// One listener for every card, wherever it is drawn (timeline or thread).
export function wireCards() {
  document.addEventListener("click", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const open = target.closest("[data-open-topic]");
    if (open) {
      openTopic(Number(open.dataset.openTopic));
      return;
    }
    const opt = target.closest(".tc-opt");
    const card = opt && opt.closest(".tc[data-topic]");
    if (!card || opt.disabled) return;
    if (opt.dataset.option !== undefined) {
      answer(card, { option: opt.dataset.option });
    } else {
      const input = card.querySelector(".tc-input");
      if (input && input.value.trim()) answer(card, { text: input.value });
    }
  });
}
