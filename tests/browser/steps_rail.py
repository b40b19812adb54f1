"""Browser-room steps for the rail's tab strip (rail.js): as the host, with every panel's tab
present, the strip fits its rail at every width from 320 to 1920 px. Where the words do
not fit, the tabs show their icons only (the word stays the tab's accessible name and its
tooltip); where even the icons do not fit, the strip scrolls sideways with a fade at the
cut edge, and the selected tab is always scrolled into view. It stays a tablist: arrow
keys, Home and End move along it, one tab selected. Screenshots light and dark."""

import time

from harness import JS_UNSAFE_DOM, assert_eq, check_layout, ensure_host_tab, visible
from steps_room_views import shoot, tap

# WebDriver key codes
END, HOME, LEFT, RIGHT = "\ue010", "\ue011", "\ue012", "\ue014"

# The strip, the rail, and each tab: its box, whether it lies inside the strip's box and
# is what a pointer at its middle would hit, its visible word, tooltip and selection.
JS_STRIP = """
const s = document.getElementById('rail-tabs');
const box = (e) => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
const sb = box(s);
const tabs = [...s.querySelectorAll('[role="tab"]')].map(t => {
  const b = box(t), lab = t.querySelector('.tab-label');
  const inside = b.left >= sb.left - 0.5 && b.right <= sb.right + 0.5 && b.top >= sb.top - 0.5 && b.bottom <= sb.bottom + 0.5 && b.width > 0;
  const hit = inside && document.elementFromPoint((b.left + b.right) / 2, (b.top + b.bottom) / 2);
  return {id: t.id, selected: t.getAttribute('aria-selected') === 'true', tabindex: t.tabIndex, box: b, inside: inside,
          hit: !!hit && t.contains(hit), label: lab ? lab.textContent : null, title: t.title,
          wordShown: !!lab && lab.getBoundingClientRect().width > 2};
});
return {strip: sb, rail: box(document.getElementById('rail')), vw: innerWidth, scrollW: s.scrollWidth, clientW: s.clientWidth,
        overflowX: getComputedStyle(s).overflowX, fit: s.dataset.fit || '', focus: document.activeElement && document.activeElement.id, tabs: tabs};
"""

# Adds a panel through rail.js's own addPanel (the module the page already loaded), as a
# later module would: a stand-in for panels still to come.
JS_ADD_PANEL = """
const list = arguments[0], done = arguments[arguments.length - 1];
import(new URL('assets/rail.js', document.baseURI).href).then(m => {
  for (const [id, label, ic] of list) m.addPanel(id, label, ic).append(document.createTextNode(label));
  done(true);
}, e => done(String(e)));
"""

SIZES = ((1920, 1080), (1280, 800), (761, 700), (760, 700), (375, 740), (320, 640))
SHOTS = ((1280, 800), (375, 740), (320, 640))


def ax_tab_names(d):
    """The accessible name Chromium computes for each tab, in order."""
    nodes = d.cdp("Accessibility.getFullAXTree")["nodes"]
    return [n.get("name", {}).get("value", "") for n in nodes if n.get("role", {}).get("value") == "tab" and not n.get("ignored")]


def open_rail(d, w, h):
    d.viewport(w, h, mobile=(w < 500))
    time.sleep(0.3)
    if not visible(d, "#rail"):
        d.click("#tb-people")
    assert visible(d, "#rail"), "the rail at %d px" % w


def check_strip(d, label, must_fit=True):
    """Every tab inside the strip's box (or, where the strip scrolls, the selected one, with
    the strip scrollable); the strip inside the rail and the rail inside the viewport."""
    v = d.js(JS_STRIP)
    s, r = v["strip"], v["rail"]
    where = "%s (%d px, fit=%s)" % (label, v["vw"], v["fit"])
    assert r["left"] >= -0.5 and r["right"] <= v["vw"] + 0.5, "the rail inside the viewport at %s: %r" % (where, r)
    assert s["left"] >= r["left"] - 0.5 and s["right"] <= r["right"] + 0.5, "the strip inside the rail at %s: %r / %r" % (where, s, r)
    sel = [t for t in v["tabs"] if t["selected"]]
    assert_eq(len(sel), 1, "one selected tab at %s" % where)
    assert sel[0]["inside"] and sel[0]["hit"], "the selected tab in view at %s: %r" % (where, sel[0])
    assert_eq([t["tabindex"] for t in v["tabs"]], [0 if t["selected"] else -1 for t in v["tabs"]], "roving tabindex at %s" % where)
    if must_fit or v["scrollW"] <= v["clientW"] + 1:
        assert v["scrollW"] <= v["clientW"] + 1, "the strip does not overflow at %s: %d > %d" % (where, v["scrollW"], v["clientW"])
        cut = [t["id"] for t in v["tabs"] if not (t["inside"] and t["hit"])]
        assert_eq(cut, [], "tabs cut off or covered at %s" % where)
    else:
        assert v["overflowX"] in ("auto", "scroll"), "a strip wider than its rail scrolls at %s: %r" % (where, v["overflowX"])
    for t in v["tabs"]:
        assert t["label"], "a word for %s at %s" % (t["id"], where)
        if not t["wordShown"]:
            assert_eq(t["title"], t["label"], "the tooltip of icon-only %s at %s" % (t["id"], where))
    names = ax_tab_names(d)
    assert_eq([n.split(" ")[0] for n in names], [t["label"] for t in v["tabs"]], "the tabs' accessible names at %s" % where)
    return v


def walk_tabs(d, label, must_fit=True):
    """End, Home, then ArrowRight along every tab and ArrowLeft back round: each time the
    focused tab is the selected one and in view."""
    v = d.js(JS_STRIP)
    ids = [t["id"] for t in v["tabs"]]
    start = [t["id"] for t in v["tabs"] if t["selected"]][0]
    d.js("document.getElementById(arguments[0]).focus()", start)
    order = [(END, ids[-1]), (HOME, ids[0])] + [(RIGHT, i) for i in ids[1:]] + [(RIGHT, ids[0]), (LEFT, ids[-1])]
    for key, want in order:
        d.keys(key)
        got = check_strip(d, "%s after a key to %s" % (label, want), must_fit)
        assert_eq(got["focus"], want, "focus after the key at %s" % label)
        assert_eq([t["id"] for t in got["tabs"] if t["selected"]], [want], "selected after the key at %s" % label)
    d.click("#" + start)


def step_rail_tabs_fit(d, c):
    ensure_host_tab(d, c)
    d.switch(c.host_tab)
    ids = d.js("return [...document.querySelectorAll('#rail-tabs [role=\"tab\"]')].map(t => t.id)")
    assert "tab-claims" in ids and len(ids) >= 4, "the host's tabs: %r" % ids
    for w, h in SIZES:
        open_rail(d, w, h)
        d.click("#" + ids[-1])  # the far end selected: the hardest one to keep in view
        v = check_strip(d, "the host's tabs")
        if w >= 761:
            assert_eq(v["rail"]["width"], 320, "the wide rail's width")
        if (w, h) in SHOTS:
            walk_tabs(d, "the host's tabs at %d" % w)
            check_layout(d, "rail tabs %d" % w)
            shoot(d, "rail-tabs-host-%dx%d" % (w, h), "rail tabs %d" % w)
        if w < 761:
            tap(d, 8, h / 2)
    d.viewport(1280, 800)
    time.sleep(0.2)
    assert_eq(d.js(JS_UNSAFE_DOM), [], "unsafe DOM")


def step_rail_tabs_more_panels(d, c):
    """Panels still to come (approvals, notifications…) added through addPanel in a
    throwaway host tab: six tabs still fit as icons at 320 px; twelve scroll, and the
    keyboard and the selected tab still reach every one."""
    c.host_tab2 = d.new_tab()
    try:
        d.get(c.room.url + "/#token=" + c.room.host_token)
        d.wait_for("return !document.getElementById('room').hidden && !!document.getElementById('tab-claims')", what="the host's room")
        d.js("window.__errors = []; addEventListener('error', (e) => window.__errors.push(String(e.message)))")
        more = [("x-approvals", "Approvals", "system"), ("x-notifications", "Notifications", "topics")]
        assert_eq(d.js_async(JS_ADD_PANEL, more), True, "two more panels")
        for w, h in SIZES:
            open_rail(d, w, h)
            d.click("#tab-x-notifications")
            check_strip(d, "six tabs")
            if (w, h) in SHOTS[1:]:
                shoot(d, "rail-tabs-six-%dx%d" % (w, h), "six tabs %d" % w)
            if w < 761:
                tap(d, 8, h / 2)
        extra = [("x-more-%d" % i, "Extra%d" % i, "claims") for i in range(6)]
        assert_eq(d.js_async(JS_ADD_PANEL, extra), True, "six more panels")
        for w, h in ((1280, 800), (320, 640)):
            open_rail(d, w, h)
            d.click("#tab-brief")
            v = check_strip(d, "twelve tabs", must_fit=False)
            assert v["scrollW"] > v["clientW"], "twelve tabs overflow and scroll at %d" % w
            walk_tabs(d, "twelve tabs at %d" % w, must_fit=False)
            d.click("#tab-x-more-5")  # the last one, clicked: it and its fade in view
            check_strip(d, "twelve tabs, the last selected", must_fit=False)
            shoot(d, "rail-tabs-twelve-%dx%d" % (w, h), "twelve tabs %d" % w)
            if w < 761:
                tap(d, 8, h / 2)
        assert_eq(d.js("return window.__errors"), [], "errors on the page (a ResizeObserver loop, say)")
    finally:
        d.s("DELETE", "/window")
        d.switch(c.host_tab)


RAIL_STEPS = [step_rail_tabs_fit, step_rail_tabs_more_panels]
