// The session: the participant's token and the one way to call the room's API.
//
// The token arrives in the URL fragment (#token=…), moves into sessionStorage (this tab
// only) and the fragment is cleared; it goes out only in the Authorization header, never
// in a URL. All paths are relative so the page works under a tunnel prefix (/<slug>/).

const TOKEN_KEY = "agentgather.token:" + location.pathname;
let linked = 0; // a message named by the link that opened the page (#msg=N)

// ---- admission: token from the fragment into sessionStorage, fragment cleared ----
(function takeFragmentToken() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  const params = new URLSearchParams(hash);
  const t = params.get("token");
  if (t) sessionStorage.setItem(TOKEN_KEY, t.trim());
  linked = Number(params.get("msg")) || 0;
  history.replaceState(null, "", location.pathname + location.search);
})();
let token = sessionStorage.getItem(TOKEN_KEY);
// A new invite link opened in this tab only changes the fragment: take it and restart.
window.addEventListener("hashchange", () => {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const t = params.get("token");
  if (!t) {
    // a message link (#msg=N) opened in the tab already showing the room
    linked = Number(params.get("msg")) || 0;
    if (linked) {
      history.replaceState(null, "", location.pathname + location.search);
      window.dispatchEvent(new Event("agentgather:linked"));
    }
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, t.trim());
  history.replaceState(null, "", location.pathname + location.search);
  location.reload();
});

// The message a link named, once (0: none).
export function takeLinked() {
  const id = linked;
  linked = 0;
  return id;
}

export function getToken() {
  return token;
}

// An invalid token is forgotten, so a reload shows the invite screen, not the error again.
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || "request failed");
    this.status = status;
    this.code = code || "";
  }
}

export async function api(method, path, body, signal) {
  const headers = { Authorization: "Bearer " + token, Accept: "application/json" };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    if (e && e.name === "AbortError") throw new ApiError(0, "timeout", "the server did not answer in time");
    throw new ApiError(0, "network", "the room server cannot be reached");
  }
  let data = null;
  try {
    data = await r.json();
  } catch (e) {
    data = null;
  }
  if (!r.ok || !data || data.ok === false) {
    const code = data && typeof data.error === "string" ? data.error : "http_" + r.status;
    const msg = data && typeof data.message === "string" ? data.message : "HTTP " + r.status;
    throw new ApiError(r.status, code, msg);
  }
  return data;
}

