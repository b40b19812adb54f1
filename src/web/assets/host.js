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

/** One page of the export; an error carries the server's message. */
async function exportPage(query) {
  const r = await fetch("export?" + query, {
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
  return r;
}

/** The whole export as one file, page after page (no answer of the room passes its
 *  page bound), and how many pages it took. */
async function wholeExport(format) {
  if (format === "md") {
    const parts = [];
    let next = "";
    do {
      const r = await exportPage("format=md" + (next ? "&" + next : ""));
      parts.push(await r.blob());
      next = r.headers.get("x-agentgather-next") || "";
    } while (next);
    return { blob: new Blob(parts, { type: "text/markdown" }), pages: parts.length };
  }
  let doc = null;
  let next = "";
  let pages = 0;
  do {
    const page = await (await exportPage("format=json" + (next ? "&" + next : ""))).json();
    pages += 1;
    if (doc) {
      doc.topics.push(...page.topics);
      doc.messages.push(...page.messages);
    } else {
      doc = page;
    }
    next =
      page.next_after_topic != null
        ? "after_topic=" + page.next_after_topic
        : page.next_after_id != null
          ? "after_id=" + page.next_after_id
          : "";
  } while (next);
  for (const k of ["ok", "has_more", "next_after_topic", "next_after_id"]) delete doc[k];
  if (!doc.topics.length) delete doc.topics;
  doc.message_count = doc.messages.length;
  return { blob: new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }), pages };
}

async function doExport(format) {
  try {
    const { blob, pages } = await wholeExport(format);
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
    document.body.dataset.lastExport = name + ":" + blob.size + ":" + pages;
    toast("Exported " + name + " (" + Math.max(1, Math.round(blob.size / 1024)) + " KB).");
  } catch (e) {
    toast("Export failed: " + e.message, true);
  }
}
