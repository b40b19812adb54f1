"""Browser-room steps for access: how the assets are served, the axe-core accessibility check,
the keyboard, notifications, and installing the room as an app."""

import json
import os
import re
import time
import urllib.request

from harness import (
    ROOT,
    assert_eq,
    ensure_host_tab,
    http,
    log,
    visible,
)


def step_assets_served(d, c):
    # The page is ES modules: the entry module and everything it imports, transitively,
    # is served as JavaScript under the same strict CSP; an unknown asset is a 404.
    st, html = http("GET", c.room.url + "/", headers={"Accept": "text/html"})
    assert st == 200, st
    assert '<script type="module" src="assets/room.js"></script>' in html, html[:400]
    assert "<script>" not in html, "no inline script"
    seen, todo = set(), ["room.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        req = urllib.request.Request(c.room.url + "/assets/" + name)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read().decode()
            ctype = r.headers.get("Content-Type", "")
            csp = r.headers.get("Content-Security-Policy", "")
            assert ctype.startswith("text/javascript"), (name, ctype)
            assert "script-src 'self'" in csp and "unsafe" not in csp, (name, csp)
            assert r.headers.get("X-Content-Type-Options") == "nosniff", name
            assert r.headers.get("Cache-Control") == "no-cache", name
        for imp in re.findall(r'^import .* from "\./([a-z]+\.js)";$', body, re.M):
            todo.append(imp)
        assert "innerHTML" not in body and "insertAdjacentHTML" not in body and "outerHTML" not in body, name
    assert len(seen) >= 8, seen
    preloads = set(re.findall(r'<link rel="modulepreload" href="assets/([a-z]+\.js)">', html))
    assert_eq(preloads, seen - {"room.js"}, "every imported module is preloaded")
    for bad in ("nope.js", "room.js.map", "..%2Froom.js", "index.html"):
        st, v = http("GET", c.room.url + "/assets/" + bad)
        assert_eq(st, 404, "unknown asset " + bad)
    log("modules served: %s" % ", ".join(sorted(seen)))


AXE = os.path.join(ROOT, "tests", "browser", "vendor", "axe.min.js")


JS_AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').split('\\n').slice(0, 2).join(' '))
})))).catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""


def axe_check(d, label):
    """Runs axe-core (vendored for the test, injected over WebDriver) on the page."""
    if not d.js("return typeof window.axe === 'object'"):
        d.js(open(AXE, encoding="utf-8").read() + "\n;return true;")
    found = d.js_async(JS_AXE_RUN)
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    for v in found:
        if v not in bad:
            log("axe %s (%s): %s" % (label, v["impact"], v["id"]))
    if bad:
        raise AssertionError("axe at %s: %s" % (label, "; ".join("%s [%s] %s: %s" % (v["id"], v["impact"], v["help"], " | ".join(v["nodes"])) for v in bad)))
    return found


def step_accessibility(d, c):
    # Light and dark, 1280 and 375 px, for a guest and for the host (whose page has more
    # controls), with the Markdown corpus and the XSS rows on the timeline.
    ensure_host_tab(d, c)
    for tab, who in ((c.alice_tab, "guest"), (c.host_tab, "host")):
        d.switch(tab)
        for (w, h) in ((1280, 800), (375, 740)):
            d.viewport(w, h, mobile=(w < 500))
            for scheme in ("light", "dark"):
                d.color_scheme(scheme)
                time.sleep(0.2)
                axe_check(d, "%s %dx%d %s" % (who, w, h, scheme))
        d.color_scheme(None)
        d.viewport(1280, 800)


TAB, SHIFT, ENTER, ESC = "\ue004", "\ue008", "\ue007", "\ue00c"


JS_FOCUSED = """
const e = document.activeElement;
if (!e || e === document.body) return null;
const cs = getComputedStyle(e);
return {id: e.id, cls: e.className, tag: e.tagName.toLowerCase(), text: (e.textContent || '').trim().slice(0, 30),
        outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 1, opacity: cs.opacity};
"""


def step_keyboard(d, c):
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    m = c.room.post(c.curly["token"], "something to reply to, by keyboard")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="a row to reply to")
    # "/" goes to the composer from anywhere but a text field.
    d.js("document.activeElement.blur()")
    d.keys("/")
    assert_eq(d.js("return document.activeElement.id"), "input", "/ focuses the composer")
    assert_eq(d.js("return document.getElementById('input').value"), "", "the / is not typed")
    # Focus order from the top: the top bar's controls, then the timeline; focus is visible.
    d.js("document.activeElement.blur(); window.getSelection().removeAllRanges(); document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute('tabindex');")
    stops = []
    for _ in range(5):
        d.keys(TAB)
        f = d.js(JS_FOCUSED)
        assert f and f["outline"], "a visible focus ring on %r" % f
        stops.append(f["id"])
    assert_eq(stops, ["tb-search", "tb-topics", "tb-brief", "tb-people", "tb-system"], "tab order")
    # The reply action is reachable by keyboard (Shift+Tab back from the composer), shows
    # when focused, and Enter starts a reply; Esc in the composer cancels it.
    d.click("#input")
    for _ in range(12):
        d.keys((SHIFT, TAB))
        f = d.js(JS_FOCUSED)
        if f and "act" in f["cls"].split():
            break
    assert f and "act" in f["cls"].split(), "a reply button before the composer: %r" % f
    assert_eq(f["opacity"], "1", "a focused reply button is shown")
    assert f["outline"], "visible focus on the reply button"
    d.keys(ENTER)
    assert visible(d, "#replying"), "Enter on reply starts a reply"
    assert_eq(d.js("return document.activeElement.id"), "input", "focus moves to the composer")
    d.keys(ESC)
    assert not visible(d, "#replying"), "Esc cancels the reply"
    # Phone width: Esc closes the people/brief rail and focus returns to its button.
    d.viewport(375, 740, mobile=True)
    time.sleep(0.2)
    d.click("#tb-people")
    assert visible(d, "#rail"), "rail open"
    assert_eq(d.js("return document.activeElement.id"), "people", "focus moves into the drawer that covers the timeline")
    d.keys(ESC)
    assert not visible(d, "#rail"), "Esc closes the rail"
    assert_eq(d.js("return document.activeElement.id"), "tb-people", "focus back on the rail's button")
    d.viewport(1280, 800)
    # The host's export menu closes on Esc too.
    ensure_host_tab(d, c)
    d.switch(c.host_tab)
    d.click("#btn-export")
    assert visible(d, "#export-menu"), "export menu open"
    d.keys(ESC)
    assert not visible(d, "#export-menu"), "Esc closes the export menu"
    assert_eq(d.js("return document.activeElement.id"), "btn-export", "focus back on Export")
    # New messages are announced politely; a mention of you assertively.
    d.switch(c.alice_tab)
    assert_eq(d.js("return document.getElementById('timeline').getAttribute('aria-live')"), "off", "rows are not read out wholesale (older pages load there)")
    c.room.post(c.curly["token"], "a plain update for the room")
    d.wait_for("return document.getElementById('announce').textContent.startsWith('curly: a plain update')", timeout=5, what="the polite announcement")
    c.room.post(c.curly["token"], "@alice please check the **release**")
    d.wait_for("return document.getElementById('announce-mention').textContent.startsWith('curly mentioned you: @alice please check')", timeout=5, what="the mention announcement")
    assert_eq(d.js("return [document.getElementById('announce').getAttribute('aria-live'), document.getElementById('announce-mention').getAttribute('aria-live')]"), ["polite", "assertive"], "live regions")


JS_NOTIFICATION_SPY = """
// Records every notification the page raises (the real one is still raised) and, the
// moment the tab becomes visible again (before the page resets them), the title and icon.
window.__notes = [];
window.__hiddenView = null;
const Real = window.Notification;
window.Notification = new Proxy(Real, {
  construct(target, args) {
    const n = Reflect.construct(target, args);
    const rec = {title: args[0], body: (args[1] || {}).body, hidden: document.hidden, shown: false, error: false};
    n.addEventListener('show', () => { rec.shown = true; });
    n.addEventListener('error', () => { rec.error = true; });
    window.__notes.push(rec);
    return n;
  }
});
window.addEventListener('visibilitychange', () => {
  if (!document.hidden) window.__hiddenView = {title: document.title, icon: document.querySelector('link[rel=icon]').href,
                                               badge: document.documentElement.dataset.unreadBadge};
}, true);
return Real.permission;
"""


def step_notifications(d, c):
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    d.cdp("Browser.grantPermissions", {"origin": c.room.url, "permissions": ["notifications"]})
    assert_eq(d.js(JS_NOTIFICATION_SPY), "granted", "permission granted in the test profile")
    assert_eq(d.js("return document.getElementById('notify-mode').value"), "off", "off until opted in")
    assert_eq(d.js("return document.getElementById('notify-sound').checked"), False, "sound off by default")
    # Opt in by keyboard: "when mentioned".
    d.js("document.getElementById('notify-mode').focus()")
    d.keys("\ue015")  # ArrowDown
    d.wait_for("return document.getElementById('notify-mode').value === 'mentions'", what="mentions mode")
    d.wait_for("return JSON.parse(localStorage.getItem(Object.keys(localStorage).find(k => k.startsWith('agentgather.notify:'))) || '{}').mode === 'mentions'", what="the saved choice")
    # Visible tab: no notification.
    m = c.room.post(c.curly["token"], "@alice visible ping, secret-word-visible")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="the visible mention")
    assert_eq(d.js("return window.__notes.length"), 0, "no notification while the tab is visible")
    # Hide alice's tab behind another one; a plain message, then a mention.
    other = d.new_tab()
    d.get("about:blank")
    time.sleep(0.5)
    plain = c.room.post(c.curly["token"], "plain news, secret-word-plain")
    mention = c.room.post(c.curly["token"], "@alice the **release** is blocked: secret-word-mention <b>x</b>")
    time.sleep(1.5)
    d.s("DELETE", "/window")
    d.switch(c.alice_tab)
    d.wait_for("return window.__hiddenView !== null", timeout=5, what="the tab visible again")
    notes = d.js("return window.__notes")
    view = d.js("return window.__hiddenView")
    log("notifications: %r; while hidden: title %r, badge %r" % (notes, view["title"], view["badge"]))
    assert_eq(len(notes), 1, "one notification: the mention, not the plain message")
    n = notes[0]
    assert n["hidden"], "raised while the tab was hidden"
    assert_eq(n["body"], "@curly mentioned you in " + c.room.name, "who and where only")
    assert_eq(n["title"], "Agent Gather \u00b7 " + c.room.name, "notification title")
    for text in (plain["text"], mention["text"], "secret-word", "release", "<b>"):
        assert text not in n["body"] and text not in n["title"], "room text in a notification: %r" % text
    assert n["error"] is False, "the notification failed: %r" % n
    assert n["shown"], "the notification was shown: %r" % n
    assert view["title"].startswith("(2) "), "unread count in the title while hidden: %r" % view["title"]
    assert_eq(view["badge"], "2", "unread count on the tab icon")
    assert view["icon"].startswith("data:image/png"), "a drawn badge icon: %r" % view["icon"][:40]
    d.wait_for("return !document.title.startsWith('(')", timeout=3, what="the count cleared when visible")
    assert_eq(d.js("return document.documentElement.dataset.unreadBadge"), "0", "badge cleared")
    # Turn it off again: nothing more.
    d.js("const s = document.getElementById('notify-mode'); s.value = 'off'; s.dispatchEvent(new Event('change'));")


def step_installable(d, c):
    # A web manifest and an icon make the room installable; no service worker, so nothing
    # of the room is cached for offline use.
    d.switch(c.alice_tab)
    for name, ctype in (("manifest.webmanifest", "application/manifest+json"), ("icon.svg", "image/svg+xml")):
        with urllib.request.urlopen(c.room.url + "/assets/" + name, timeout=10) as r:
            assert r.headers.get("Content-Type", "").startswith(ctype), (name, r.headers.get("Content-Type"))
            assert "manifest-src 'self'" in r.headers.get("Content-Security-Policy", ""), name
            body = r.read().decode()
        assert c.room.host_token not in body and "tgl_" not in body, "no secret in " + name
        if name == "icon.svg":
            assert "<script" not in body.lower() and " on" not in body.lower(), "a static icon"
    m = d.cdp("Page.getAppManifest")
    assert_eq(m.get("errors"), [], "manifest parse errors")
    man = json.loads(m["data"])
    assert_eq((man["display"], man["start_url"]), ("standalone", "../"), "manifest fields")
    log("manifest %s parsed with no errors; installable" % m["url"])
    inst = d.cdp("Page.getInstallabilityErrors")
    errs = [e["errorId"] for e in inst.get("installabilityErrors", [])]
    assert_eq(errs, [], "installability errors")
    regs = d.js_async("const done = arguments[arguments.length - 1]; navigator.serviceWorker ? navigator.serviceWorker.getRegistrations().then(r => done(r.length)) : done(0)")
    assert_eq(regs, 0, "no service worker")
    assert_eq(d.js("return !!(navigator.serviceWorker && navigator.serviceWorker.controller)"), False, "page not controlled by a worker")
    assert d.js("return document.querySelector('link[rel=icon]').getAttribute('href')") == "assets/icon.svg"
