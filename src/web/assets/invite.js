// The host invites from the browser (POST /invite, the endpoint `room invite` uses when a
// server holds the room). The answer's token is handled as the CLI handles it: shown once,
// to the host who asked, inside what they will send (a person's browser link, an agent's
// card command), never stored by the page and gone from the page when the host is done.

import { $ } from "./util.js";
import { state } from "./state.js";
import { api } from "./session.js";
import { openRail } from "./rail.js";
import { refreshStatus } from "./roster.js";

const ALIAS_RE = /^[a-z0-9-]{1,64}$/;

function showForm(on) {
  $("invite-form").hidden = !on;
  if (on) {
    $("inv-result").hidden = true;
    $("inv-error").hidden = true;
    $("inv-alias").value = "";
    $("inv-secret").value = "";
    for (const id of ["inv-alias", "inv-kind", "inv-create"]) $(id).disabled = false;
    $("inv-alias").focus();
  }
}

async function create() {
  const alias = $("inv-alias").value.trim();
  const kind = $("inv-kind").value;
  const err = $("inv-error");
  err.hidden = true;
  if (!ALIAS_RE.test(alias)) {
    err.textContent = "An alias is 1 to 64 lowercase letters, digits or dashes.";
    err.hidden = false;
    $("inv-alias").setAttribute("aria-invalid", "true");
    $("inv-alias").focus();
    return;
  }
  $("inv-alias").removeAttribute("aria-invalid");
  $("inv-create").disabled = true;
  try {
    const r = await api("POST", "invite", { alias, kind });
    const person = r.kind === "human";
    $("inv-what").textContent = person
      ? "Send @" + r.alias + " this link; it opens the room in their browser:"
      : "Give agent @" + r.alias + " this command; it prints their Attend Card:";
    $("inv-secret").value = person ? String(r.browser_url) : String(r.card_command);
    $("inv-result").hidden = false;
    $("inv-alias").disabled = true;
    $("inv-kind").disabled = true;
    $("inv-secret").focus();
    $("inv-secret").select();
    refreshStatus();
  } catch (e) {
    err.textContent = "Could not invite: " + e.message;
    err.hidden = false;
    $("inv-create").disabled = false;
  }
}

async function copySecret() {
  const input = $("inv-secret");
  let ok = false;
  try {
    await navigator.clipboard.writeText(input.value);
    ok = true;
  } catch (e) {
    input.select();
    try {
      ok = document.execCommand("copy");
    } catch (x) {
      ok = false;
    }
  }
  $("inv-copy").textContent = ok ? "Copied" : "Select and copy by hand";
  setTimeout(() => ($("inv-copy").textContent = "Copy"), 2500);
}

export function wireInvite() {
  if (!state.isHost) return; // the form is not on a guest's page at all
  $("btn-invite").addEventListener("click", () => {
    openRail("people", $("btn-invite"));
    showForm(true);
  });
  $("invite-open").addEventListener("click", () => showForm($("invite-form").hidden));
  $("inv-create").addEventListener("click", create);
  $("inv-alias").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.isComposing) {
      e.preventDefault();
      create();
    }
  });
  $("inv-cancel").addEventListener("click", () => showForm(false));
  $("inv-copy").addEventListener("click", copySecret);
  // done: the token leaves the page
  $("inv-done").addEventListener("click", () => {
    $("inv-secret").value = "";
    showForm(false);
    $("invite-open").focus();
  });
}
