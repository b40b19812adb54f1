// Host-only controls in the top bar: close the room, export the log. (Inviting is
// invite.js, editing the brief briefedit.js, removing someone roster.js.)

import { $, el } from "./util.js";
import { state } from "./state.js";
import { api, getToken } from "./session.js";
import { setClosed, toast } from "./screens.js";

// ---- host controls ----
export function wireHost() {
  const hc = $("host-controls");
  if (!state.isHost) {
    // guests never get these controls, not even hidden
    hc.remove();
    for (const n of document.querySelectorAll(".host-only, #invite-form, #brief-editor")) n.remove();
    return;
  }
  hc.hidden = false;
  for (const n of document.querySelectorAll(".host-only")) n.hidden = false;
  const close = $("btn-close");
  const label = $("btn-close-label");
  let armed = 0;
  close.addEventListener("click", async () => {
    if (state.closed) return;
    if (!armed) {
      label.textContent = "Confirm close";
      close.classList.add("armed");
      armed = setTimeout(() => {
        armed = 0;
        label.textContent = "Close room";
        close.classList.remove("armed");
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = 0;
    close.disabled = true;
    try {
      await api("POST", "close", {});
      setClosed();
      toast("The room is closed.");
    } catch (e) {
      toast("Could not close the room: " + e.message, true);
      label.textContent = "Close room";
      close.classList.remove("armed");
    } finally {
      close.disabled = false;
    }
  });
  const btn = $("btn-export");
  const menu = $("export-menu");
  const setMenu = (on) => {
    menu.hidden = !on;
    btn.setAttribute("aria-expanded", on ? "true" : "false");
  };
  btn.addEventListener("click", (e) => {
    e.stopPropagation();
    setMenu(menu.hidden);
  });
  document.addEventListener("click", (e) => {
    if (!menu.hidden && !menu.contains(e.target)) setMenu(false);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !menu.hidden) {
      setMenu(false);
      btn.focus();
    }
  });
  $("export-md").addEventListener("click", () => {
    setMenu(false);
    doExport("md");
  });
  $("export-json").addEventListener("click", () => {
    setMenu(false);
    doExport("json");
  });
}

async function doExport(format) {
  try {
    const r = await fetch("export?format=" + format, {
      headers: { Authorization: "Bearer " + getToken() },
      cache: "no-store",
      credentials: "omit",
    });
    if (!r.ok) {
      let msg = "HTTP " + r.status;
      try {
        const j = await r.json();
        if (j && j.message) msg = j.message;
      } catch (e) {
        /* not JSON */
      }
      throw new Error(msg);
    }
    const blob = await r.blob();
    const name = (state.room || "room").replace(/[^a-z0-9-]/g, "") + "." + format;
    const url = URL.createObjectURL(blob);
    const a = el("a");
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    document.body.dataset.lastExport = name + ":" + blob.size;
    toast("Exported " + name + " (" + Math.max(1, Math.round(blob.size / 1024)) + " KB).");
  } catch (e) {
    toast("Export failed: " + e.message, true);
  }
}
