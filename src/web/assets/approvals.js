// Approvals (SPEC §12): an agent's pending tool call, put to a person. Its card shows the
// tool and its input as quoted code, who decides and until when, and for whoever may
// answer (the approver, or the host) Allow / Deny with an optional reason. The input is
// whatever the agent's harness sent, so it is only ever text in a <pre> (textContent):
// HTML stays characters, Markdown stays punctuation, and nothing in it can pass for the
// card's own "Allowed" line. The asker's roster row says "waiting for approval" until
// the answer (or the expiry, which the server records as a deny) arrives.

import { $, el, timeEl, parseTs } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { nameOf } from "./timeline.js";
import { toast } from "./screens.js";
import { topics, noteTopics, statusPill } from "./topics.js";

const INPUT_SHOWN_CHARS = 16384; // the server's cap; a card never grows past it

function expired(t) {
  const d = t.approval ? parseTs(t.approval.expires_at) : null;
  return !!d && d.getTime() <= Date.now();
}

// Waiting: no answer yet and not past its expiry (the server's deny is on its way).
export function pending(t) {
  return t.kind === "approval" && !t.answer && !expired(t);
}

// The server decides; this only hides what it would refuse: the host, or the approver.
export function mayApprove(t) {
  if (state.closed || !pending(t)) return false;
  return state.isHost || t.to === state.me;
}

function inputText(input) {
  let s;
  try {
    s = typeof input === "string" ? input : JSON.stringify(input, null, 2);
  } catch (e) {
    s = String(input);
  }
  if (s === undefined) s = "null";
  return s.length > INPUT_SHOWN_CHARS ? s.slice(0, INPUT_SHOWN_CHARS) + "\n…" : s;
}

function outcome(t) {
  const st = el("div", "tc-state ap-outcome");
  st.tabIndex = -1;
  const a = t.answer;
  if (a) {
    const allowed = a.option === "allow" && !a.expired;
    st.classList.add(allowed ? "ap-allowed" : "ap-denied");
    if (a.expired) {
      st.append(el("strong", "tc-choice", "Denied"), el("span", "tc-by", " — expired with no answer"));
    } else {
      st.append(el("strong", "tc-choice", allowed ? "Allowed" : "Denied"));
      st.append(el("span", "tc-by", " by " + nameOf(String(a.by))));
      if (a.text) st.append(el("span", "tc-answer-text", " — " + a.text));
    }
  } else if (expired(t)) {
    st.append(el("strong", "tc-choice", "Denied"), el("span", "tc-by", " — expired with no answer"));
  } else {
    const who = t.to ? nameOf(t.to) + (t.to === state.me ? " (you)" : "") : "the host";
    st.append(el("span", "tc-state-label", mayApprove(t) ? "Your decision:" : "Waiting for " + who + "…"));
  }
  return st;
}

function controls(t) {
  const box = el("div", "tc-opts ap-opts");
  const reason = el("input", "tc-input ap-reason");
  reason.type = "text";
  reason.maxLength = 4000;
  reason.placeholder = "Reason (optional)";
  reason.setAttribute("aria-label", "Reason for your decision on approval #" + t.id);
  const allow = el("button", "ap-btn ap-allow", "Allow");
  allow.type = "button";
  allow.dataset.decide = "allow";
  const deny = el("button", "ap-btn ap-deny", "Deny");
  deny.type = "button";
  deny.dataset.decide = "deny";
  box.append(reason, allow, deny);
  return box;
}

// Fills a topic card (questions.js) for an approval.
export function fillApprovalCard(card, t) {
  const a = t.approval || {};
  card.classList.add("ap");
  card.classList.toggle("tc-done", !pending(t));
  card.setAttribute("aria-label", "Approval #" + t.id + ": " + nameOf(t.from) + " asks to run " + String(a.tool || ""));
  const head = el("div", "tc-head");
  head.append(el("span", "tc-kind ap-kind", "Approval"), statusPill(pending(t) ? "open" : "answered"));
  card.append(head);
  const ask = el("div", "ap-ask");
  ask.append(el("span", "", nameOf(t.from) + " asks to run "), el("code", "ap-tool", String(a.tool || "")));
  card.append(ask);
  if (a.reason) card.append(el("div", "ap-why", "Reason given: " + a.reason));
  const quote = el("blockquote", "ap-quote");
  const pre = el("pre", "ap-input");
  pre.append(el("code", "", inputText(a.input)));
  pre.tabIndex = 0; // scrollable by keyboard
  pre.setAttribute("aria-label", "Tool input");
  quote.append(pre);
  card.append(quote);
  const meta = el("div", "tc-to ap-meta");
  meta.append(document.createTextNode("Decided by " + (t.to ? nameOf(t.to) : "the host") + " · expires "));
  meta.append(timeEl("ap-expires", a.expires_at));
  card.append(meta);
  card.append(outcome(t));
  if (mayApprove(t)) card.append(controls(t));
}

async function decide(card, option) {
  const id = Number(card.dataset.topic);
  const reason = card.querySelector(".ap-reason");
  const text = reason && reason.value.trim() ? reason.value.trim() : undefined;
  const inputs = card.querySelectorAll(".ap-opts button, .ap-opts input");
  for (const b of inputs) b.disabled = true;
  try {
    const r = await api("POST", "topics/" + id + "/answer", text ? { option, text } : { option });
    noteTopics([r.message]);
    const st = card.querySelector(".ap-outcome");
    if (st && card.isConnected) st.focus({ preventScroll: true });
  } catch (e) {
    toast("Could not answer: " + e.message, true);
    for (const b of inputs) b.disabled = false;
    if (e.status === 409) loadAgain(id);
  }
}

// Someone else answered (or it expired) meanwhile: the card shows what the server has.
async function loadAgain(id) {
  try {
    const r = await api("GET", "topics/" + id);
    noteTopics(r.messages || []);
  } catch (e) {
    /* the next /wait brings it */
  }
}

// The asker's roster row says "waiting for approval" while one of theirs is pending.
export function markWaiting() {
  const waiting = new Set();
  for (const t of topics.values()) if (pending(t)) waiting.add(t.from);
  const ul = $("roster");
  if (!ul) return;
  for (const li of ul.querySelectorAll("li.person[data-alias]")) {
    const on = waiting.has(li.dataset.alias);
    let tag = li.querySelector(".ap-waiting");
    if (on && !tag) {
      tag = el("span", "tag ap-waiting", "waiting for approval");
      const line = li.querySelector(".person-line");
      (line || li).append(tag);
    } else if (!on && tag) {
      tag.remove();
    }
  }
}

// An approval asks a person to act, so its notification says so, but like every
// notification it names who and where, never what (no tool, no input).
export function approvalNotice(msgs, where) {
  const mine = msgs.filter((m) => m.type === "topic" && m.topic && m.topic.kind === "approval" && (m.topic.to === state.me || state.isHost));
  if (!mine.length) return null;
  const last = mine[mine.length - 1];
  return "@" + last.from + " is waiting for your approval in " + where;
}

export function wireApprovals() {
  document.addEventListener("click", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    const b = target && target.closest(".ap-btn[data-decide]");
    const card = b && b.closest(".tc[data-topic]");
    if (!card || b.disabled) return;
    decide(card, b.dataset.decide);
  });
  document.addEventListener("keydown", (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (e.key !== "Enter" || e.isComposing || !target || !target.classList.contains("ap-reason")) return;
    e.preventDefault(); // Enter in the reason decides nothing: the person picks a button
  });
  // the roster is redrawn every few seconds and an approval expires on the clock
  setInterval(markWaiting, 5000);
}
