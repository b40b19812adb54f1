"""Shared harness of the browser-room tests: finding Chromium, a minimal W3C WebDriver
client over urllib, the room server under test, and page-level helpers. Standard library
only. See test_browser.py for how to run the tests."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, "target", "browser-artifacts")
REQUIRE = os.environ.get("AGENTGATHER_REQUIRE_BROWSER") == "1"
VERBOSE = os.environ.get("AG_BROWSER_VERBOSE") == "1"


def log(*a):
    print("[browser]", *a, flush=True)


# --------------------------------------------------------------------------------------
# discovery


def find_exe(env_name, names, extra_paths=()):
    v = os.environ.get(env_name)
    if v:
        return v if os.path.exists(v) or shutil.which(v) else None
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    for p in extra_paths:
        if os.path.exists(p):
            return p
    return None


def find_browser():
    chrome = find_exe(
        "CHROME_BIN",
        ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"],
        ["/usr/bin/chromium", "/usr/lib/chromium/chromium", "/snap/bin/chromium"],
    )
    driver = find_exe("CHROMEDRIVER", ["chromedriver"], ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
    return chrome, driver


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --------------------------------------------------------------------------------------
# tiny HTTP helpers


def http(method, url, body=None, token=None, headers=None, timeout=30):
    data = None
    h = {"Accept": "application/json"}
    if headers:
        h.update(headers)
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    try:
        return status, json.loads(raw.decode() or "null")
    except ValueError:
        return status, raw.decode(errors="replace")


class WebDriverError(Exception):
    pass


class Driver:
    """Just enough W3C WebDriver."""

    def __init__(self, chrome, chromedriver, workdir):
        self.port = free_port()
        self.downloads = os.path.join(workdir, "downloads")
        os.makedirs(self.downloads, exist_ok=True)
        self.profile = tempfile.mkdtemp(prefix="ag-chrome-", dir=workdir)
        self.log = open(os.path.join(workdir, "chromedriver.log"), "wb")
        self.proc = subprocess.Popen(
            [chromedriver, "--port=%d" % self.port],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 20
        while True:
            try:
                st, v = http("GET", self.base + "/status", timeout=2)
                if st == 200 and v.get("value", {}).get("ready"):
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.1)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--disable-renderer-backgrounding",
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--password-store=basic",
            "--window-size=1280,800",
            "--lang=en-US",
            "--user-data-dir=" + self.profile,
        ]
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chrome,
                        "args": args,
                        "prefs": {
                            "download.default_directory": self.downloads,
                            "download.prompt_for_download": False,
                            "download.directory_upgrade": True,
                        },
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "unhandledPromptBehavior": "dismiss",
                }
            }
        }
        v = self._call("POST", "/session", caps, timeout=60)
        self.sid = v["sessionId"]
        self.viewport(1280, 800)
        # Allow downloads in headless mode explicitly.
        try:
            self.cdp("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": self.downloads})
        except WebDriverError:
            pass

    def _call(self, method, path, body=None, timeout=30):
        st, v = http(method, self.base + path, body if body is not None else ({} if method == "POST" else None), timeout=timeout)
        if not isinstance(v, dict):
            raise WebDriverError("bad webdriver answer %s: %r" % (st, v))
        if st != 200:
            val = v.get("value", {})
            raise WebDriverError("%s %s -> %s %s: %s" % (method, path, st, val.get("error"), str(val.get("message", ""))[:400]))
        return v.get("value") if path != "/session" else v["value"]

    def s(self, method, path, body=None, timeout=30):
        return self._call(method, "/session/%s%s" % (self.sid, path), body, timeout)

    def quit(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except Exception:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except Exception:
                pass
        self.log.close()

    # navigation / windows
    def get(self, url):
        self.s("POST", "/url", {"url": url}, timeout=60)

    def new_tab(self):
        v = self.s("POST", "/window/new", {"type": "tab"})
        self.s("POST", "/window", {"handle": v["handle"]})
        self.viewport(1280, 800)
        return v["handle"]

    def switch(self, handle):
        self.s("POST", "/window", {"handle": handle})

    def handle(self):
        return self.s("GET", "/window")

    def cdp(self, cmd, params=None):
        return self.s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params or {}})

    def viewport(self, w, h, mobile=False):
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
        )

    def color_scheme(self, scheme):
        feats = [{"name": "prefers-color-scheme", "value": scheme}] if scheme else []
        self.cdp("Emulation.setEmulatedMedia", {"features": feats})

    # scripts
    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        return self.s("POST", "/execute/async", {"script": script, "args": list(args)}, timeout=60)

    # elements
    def find(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        return list(v.values())[0]

    def click(self, css):
        self.s("POST", "/element/%s/click" % self.find(css))

    def type(self, css, text):
        self.s("POST", "/element/%s/value" % self.find(css), {"text": text})

    def clear(self, css):
        self.s("POST", "/element/%s/clear" % self.find(css))

    def keys(self, *seq):
        """Real key presses (WebDriver actions) to the focused element; a tuple is a chord."""
        acts = []
        for k in seq:
            ks = k if isinstance(k, tuple) else (k,)
            acts += [{"type": "keyDown", "value": x} for x in ks] + [{"type": "keyUp", "value": x} for x in reversed(ks)]
        self.s("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": acts}]})

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        data = self.s("GET", "/screenshot")
        path = os.path.join(ARTIFACTS, name + ".png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def screenshot_scaled(self, name, scale):
        """The viewport at `scale` (a smaller PNG, for the README)."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        w, h = self.js("return [innerWidth, innerHeight]")
        v = self.cdp("Page.captureScreenshot", {"format": "png", "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": scale}})
        path = os.path.join(ARTIFACTS, name + ".png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(v["data"]))
        return path

    def console(self):
        try:
            return self.s("POST", "/se/log", {"type": "browser"})
        except WebDriverError:
            return []

    def wait_for(self, script, *args, timeout=8.0, what=None, interval=0.05):
        """Polls a JS expression body (`return ...`) until it is truthy."""
        deadline = time.time() + timeout
        last = None
        while True:
            last = self.js(script, *args)
            if last:
                return last
            if time.time() > deadline:
                raise AssertionError("timed out waiting for %s" % (what or script))
            time.sleep(interval)


# --------------------------------------------------------------------------------------
# the room server under test


class Room:
    def __init__(self, ag, workdir):
        self.ag = ag
        self.home = os.path.join(workdir, "home")
        os.makedirs(self.home, mode=0o700)
        self.env = dict(os.environ, AGENTGATHER_HOME=self.home)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.serve_log = open(os.path.join(workdir, "serve.log"), "ab")
        self.proc = None
        self.name = "launch-review"
        started = self.cli(
            "room", "start", self.name, "--alias", "operator",
            "--brief", "# Launch review\nShip the **0.2** release. Owners: @operator.\n\nSee https://example.com/plan for the plan.",
            "--ttl", "2h", "--url", self.url, "--json",
        )
        assert started.get("ok") and started.get("token"), started
        self.host_token = started["token"]
        self.start_server()

    def cli(self, *args):
        p = subprocess.run([self.ag, *args], env=self.env, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("agentgather %s failed (%d): %s %s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return json.loads(p.stdout)

    def start_server(self):
        self.proc = subprocess.Popen(
            [self.ag, "room", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self.serve_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("room serve exited early (%s); see serve.log" % self.proc.returncode)
            try:
                st, _ = http("GET", self.url + "/status", token=self.host_token, timeout=2)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("room serve did not come up")

    def stop_server(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def invite(self, alias, kind):
        v = self.cli("room", "invite", alias, "--kind", kind, "--json")
        assert v.get("token") and v.get("browser_url"), v
        assert v["browser_url"].endswith("#token=" + v["token"]), v
        return v

    def api(self, method, path, token, body=None):
        return http(method, self.url + "/" + path, body=body, token=token)

    def post(self, token, text, **extra):
        body = {"text": text}
        body.update(extra)
        st, v = self.api("POST", "messages", token, body)
        assert st in (200, 201), (st, v)
        return v["message"]

    def messages(self, token, since=0):
        st, v = self.api("GET", "messages?since_id=%d" % since, token)
        assert st == 200, (st, v)
        return v["messages"]


# --------------------------------------------------------------------------------------
# page helpers (all checks read the DOM; nothing here trusts the page's own claims)

JS_VISIBLE = """
const e = document.querySelector(arguments[0]);
if (!e) return false;
const r = e.getBoundingClientRect();
const st = getComputedStyle(e);
return !e.closest('[hidden]') && st.display !== 'none' && st.visibility !== 'hidden' && r.width > 0 && r.height > 0;
"""

JS_ROW_TEXTS = """
return [...document.querySelectorAll('#rows .row')].map(r => ({
  id: Number(r.dataset.id), text: r.querySelector('.text').textContent, who: r.querySelector('.who').textContent,
  system: r.classList.contains('system'), visible: getComputedStyle(r).display !== 'none'}));
"""

JS_LAYOUT = """
const out = {w: innerWidth, h: innerHeight, sw: document.documentElement.scrollWidth, bw: document.body.scrollWidth, problems: []};
const vis = (e) => { if (!e) return null; const st = getComputedStyle(e); if (e.closest('[hidden]') || st.display === 'none') return null;
  const r = e.getBoundingClientRect(); return (r.width && r.height) ? r : null; };
for (const sel of ['.topbar', '#timeline', '#composer', '#closed-note', '.tb-main', '.tb-tools', '#rail', '#gate', '#namer']) {
  const r = vis(document.querySelector(sel));
  if (r && (r.left < -1 || r.right > innerWidth + 1)) out.problems.push(sel + ' spills horizontally: ' + r.left + '..' + r.right);
}
const top = vis(document.querySelector('.topbar')), tl = vis(document.querySelector('#timeline')), cp = vis(document.querySelector('#composer'));
if (top && tl && tl.top < top.bottom - 1) out.problems.push('timeline under topbar');
if (tl && cp && cp.top < tl.bottom - 1) out.problems.push('composer overlaps timeline');
if (cp && cp.bottom > innerHeight + 1) out.problems.push('composer below the fold: ' + cp.bottom);
const inp = vis(document.querySelector('#input'));
if (cp && (!inp || inp.height < 30)) out.problems.push('composer input too small: ' + (inp && inp.height));
// topbar children must not overlap each other
const kids = [...document.querySelectorAll('.topbar .tb-main > *, .topbar .tb-tools > *')].map(vis).filter(Boolean);
for (let i = 0; i < kids.length; i++) for (let j = i + 1; j < kids.length; j++) {
  const a = kids[i], b = kids[j];
  if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) out.problems.push('topbar items overlap ' + i + '/' + j);
}
for (const row of document.querySelectorAll('#rows .row')) {
  const r = vis(row); if (!r) continue;
  if (r.right > innerWidth + 1) out.problems.push('row ' + row.dataset.id + ' wider than the viewport');
  for (const s of ['.t', '.who', '.act']) {
    const e = row.querySelector(s);
    if (vis(e) && e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).textOverflow !== 'ellipsis') out.problems.push('row ' + row.dataset.id + ' ' + s + ' text overflows its box');
  }
  const parts = ['.t', '.who', '.body', '.act'].map(s => vis(row.querySelector(s))).filter(Boolean);
  for (let i = 0; i < parts.length; i++) for (let j = i + 1; j < parts.length; j++) {
    const a = parts[i], b = parts[j];
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) out.problems.push('row ' + row.dataset.id + ' parts overlap');
  }
}
if (out.sw > innerWidth + 1 || out.bw > innerWidth + 1) out.problems.push('horizontal scroll: ' + out.sw + '/' + out.bw + ' > ' + innerWidth);
return out;
"""

JS_UNSAFE_DOM = """
const found = [];
for (const e of document.querySelectorAll('body *')) {
  const tag = e.tagName.toLowerCase();
  // the page's own icons are inline SVG (class icon, aria-hidden, no room data in them)
  const ownIcon = tag === 'svg' && e.getAttribute('class') === 'icon' && e.getAttribute('aria-hidden') === 'true'
      && [...e.children].every(k => k.tagName.toLowerCase() === 'path' && k.attributes.length === 1);
  if (['script', 'img', 'iframe', 'object', 'embed', 'svg', 'math', 'style', 'link', 'meta', 'base', 'form', 'video', 'audio', 'source'].includes(tag)
      && !(tag === 'form' && (e.id === 'composer' || e.id === 'namer')) && !ownIcon) found.push(tag + (e.id ? '#' + e.id : ''));
  for (const a of e.attributes) {
    if (/^on/i.test(a.name)) found.push(tag + '[' + a.name + ']');
    if (a.name === 'style' && e.id !== 'input') found.push(tag + '[style]'); // the composer's height is set through CSSOM
    if ((a.name === 'href' || a.name === 'src' || a.name === 'action' || a.name === 'formaction') && /^\\s*(javascript|data|vbscript):/i.test(a.value)) found.push(tag + '[' + a.name + '=' + a.value + ']');
  }
  if (tag === 'a' && e.hasAttribute('href')) {
    const u = new URL(e.href);
    if (!['http:', 'https:', 'mailto:'].includes(u.protocol)) found.push('a with protocol ' + u.protocol);
    if (e.target !== '_blank' || !/noopener/.test(e.rel) || !/noreferrer/.test(e.rel)) found.push('a without target/rel: ' + e.href);
  }
}
return found;
"""


class Ctx:
    pass


def visible(d, css):
    return d.js(JS_VISIBLE, css)


def assert_eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%s: expected %r, got %r" % (msg, b, a))


def check_layout(d, label):
    v = d.js(JS_LAYOUT)
    if v["problems"]:
        raise AssertionError("layout problems at %s (%dx%d): %s" % (label, v["w"], v["h"], "; ".join(v["problems"][:8])))
    return v


def open_as(d, c, browser_url):
    """Opens an invite link in the current tab as a fresh page load."""
    d.get("about:blank")
    d.get(browser_url)


def wait_room(d, timeout=10):
    d.wait_for("return !document.getElementById('room').hidden && document.querySelector('#tb-room').textContent.length > 0",
               timeout=timeout, what="the room view")


def reload(d):
    """Reloads the page and waits for the new document's room view (not the old one's)."""
    d.js("window.__oldDocument = true; location.reload();")
    d.wait_for("return document.readyState === 'complete' && window.__oldDocument === undefined", what="the reload")
    wait_room(d)


def composer_send(d, text):
    d.type("#input", text)
    d.type("#input", "\ue007")


def row_by_text(d, needle, timeout=8):
    return d.wait_for(
        "const n = arguments[0]; const r = [...document.querySelectorAll('#rows .row')].find(r => r.querySelector('.text').textContent.includes(n));"
        " return r ? Number(r.dataset.id) : 0;",
        needle, timeout=timeout, what="a row containing %r" % needle,
    )


def ensure_host_tab(d, c):
    if not getattr(c, "host_tab", None):  # a step running alone (-k)
        c.host_tab = d.new_tab()
        open_as(d, c, c.room.url + "/#token=" + c.room.host_token)
        wait_room(d)
