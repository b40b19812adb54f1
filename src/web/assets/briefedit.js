// The host edits the Room Brief in the browser: Markdown in a text box, a preview drawn by
// the one safe renderer, saved with POST /brief (a new version, announced to the room).

import { $, el } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { knownAliases, renderRich } from "./markdown.js";
import { loadBrief } from "./brief.js";
import { toast } from "./screens.js";

const MAX = 16000;

function setView(preview) {
  $("be-write").setAttribute("aria-pressed", preview ? "false" : "true");
  $("be-preview-btn").setAttribute("aria-pressed", preview ? "true" : "false");
  $("be-text").hidden = preview;
  $("be-preview").hidden = !preview;
  if (preview) {
    const box = $("be-preview");
    box.textContent = "";
    const text = $("be-text").value;
    if (text.trim()) renderRich(text, box, knownAliases(null));
    else box.append(el("p", "muted", "Nothing to preview."));
  }
}

function count() {
  const n = $("be-text").value.length;
  $("be-count").textContent = n + " / " + MAX;
}

function open(on) {
  $("brief-editor").hidden = !on;
  $("brief-body").hidden = on;
  $("brief-edit-btn").hidden = on || state.closed;
  if (on) {
    $("be-text").value = state.brief && state.brief.body ? String(state.brief.body) : "";
    $("be-error").hidden = true;
    setView(false);
    count();
    $("be-text").focus();
  } else {
    $("brief-edit-btn").focus();
  }
}

async function save() {
  const body = $("be-text").value;
  const err = $("be-error");
  err.hidden = true;
  $("be-save").disabled = true;
  try {
    const r = await api("POST", "brief", { body });
    await loadBrief();
    open(false);
    toast("Brief saved as version " + (r.brief ? r.brief.brief_version : "") + ".");
  } catch (e) {
    err.textContent = "Could not save the brief: " + e.message;
    err.hidden = false;
  } finally {
    $("be-save").disabled = false;
  }
}

export function wireBriefEditor() {
  if (!state.isHost) return; // a guest's page has no editor at all
  $("brief-edit-btn").addEventListener("click", () => open(true));
  $("be-write").addEventListener("click", () => setView(false));
  $("be-preview-btn").addEventListener("click", () => setView(true));
  $("be-text").addEventListener("input", count);
  $("be-save").addEventListener("click", save);
  $("be-cancel").addEventListener("click", () => open(false));
  document.addEventListener("agentgather:closed", () => {
    $("brief-edit-btn").hidden = true;
    $("brief-editor").hidden = true;
    $("brief-body").hidden = false;
  });
}
