"""Browser-room steps for reading: the Markdown renderer (and Markdown-shaped attacks), seen-by
marks, and long history in a 50,000-message room."""

import json
import os
import time

from harness import (
    JS_UNSAFE_DOM,
    Room,
    WebDriverError,
    assert_eq,
    check_layout,
    free_port,
    http,
    log,
    open_as,
    visible,
    wait_room,
)


MARKDOWN = """## Release plan
Ship it *today*, **not** tomorrow; ~~maybe~~ _certainly_. Ask @alice or @curly.

3. third step
4. fourth step, with `cargo test`
   - nested bullet
   - another, see https://example.com/docs.
     1. deep one
5. fifth

> quoted **advice**
> still quoted

---

| tool | status |
|------|:------:|
| cargo | `ok` |
| npm | *n/a* |

```sh
echo "copy me" && make check
```

[the plan](https://example.com/plan "Plan") and <https://example.org/auto> and [mail](mailto:ops@example.com) and ![diagram](https://img.example/d.png)
"""


# Links in every scheme but http/https/mailto, and Markdown-shaped attacks: all stay text.
MD_ATTACKS = [
    "[a](javascript:window.__xss=30) [b](JaVaScRiPt:window.__xss=31) [c]( javascript:window.__xss=32)",
    "[d](<javascript:window.__xss=33>) <javascript:window.__xss=34> [e](java\tscript:window.__xss=35)",
    "![f](data:image/svg+xml,<svg onload=window.__xss=36>) [g](data:text/html,<script>window.__xss=37</script>)",
    "[h](&#106;avascript:window.__xss=38) [i](jav&#x61;script:window.__xss=39) &lt;img src=x onerror=window.__xss=40&gt;",
    "[j](vbscript:x) [k](file:///etc/passwd) [l](ftp://example.com/x) [m](//evil.example/x) [n](/relative) [o](tel:123) [p](blob:https://x/y)",
    "<div onclick=\"window.__xss=41\">html block</div>\n<details open ontoggle=\"window.__xss=42\">x</details>\n<img src=x onerror=window.__xss=43>",
    "[q](https://ok.example/\"onmouseover=\"window.__xss=44) [r **bold** `code`](https://ok.example/r) [[nested](https://a.example)](https://b.example)",
    "```html\n<script>window.__xss=45</script>\n```\n> <img src=x onerror=window.__xss=46>\n- <svg onload=window.__xss=47>",
]


def step_markdown(d, c):
    d.switch(c.alice_tab)
    m = c.room.post(c.curly["token"], MARKDOWN)
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="the Markdown message")
    row = "#m%d .text" % m["id"]
    q = lambda js: d.js("const r = document.querySelector('%s'); return %s;" % (row, js))
    # "## Release plan" keeps its look (class h2) but nests as an h3 under the page's h2:
    # a message's headings never skip a level, so screen-reader outlines stay whole.
    assert_eq(q("[...r.querySelectorAll('h3.h.h2')].map(h => h.textContent)"), ["Release plan"], "an h2 heading (an h3 under the page's own)")
    o = c.room.post(c.curly["token"], "# Top\n\n#### Deep\n\n## Middle")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", o["id"], timeout=5, what="the outline message")
    outline = d.js("return [...document.querySelectorAll('#m%d .text h3, #m%d .text h4, #m%d .text h5, #m%d .text h6')].map(h => h.tagName + ' ' + h.className + ' ' + h.textContent)" % ((o["id"],) * 4))
    assert_eq(outline, ["H3 h h1 Top", "H4 h h4 Deep", "H4 h h2 Middle"], "headings nest one level at a time")
    assert_eq(q("[...r.querySelectorAll('em')].map(x => x.textContent)"), ["today", "certainly", "n/a"], "emphasis")
    assert_eq(q("[...r.querySelectorAll(':scope strong')].map(x => x.textContent)"), ["not", "advice"], "strong")
    assert_eq(q("[...r.querySelectorAll('del')].map(x => x.textContent)"), ["maybe"], "strikethrough")
    assert_eq(q("[...r.querySelectorAll('.mention')].map(x => x.textContent)"), ["@alice", "@curly"], "mention pills")
    # The ordered list keeps its number, and nests a bullet list that nests an ordered one.
    ol = q("(() => { const o = r.querySelector(':scope > ol'); return o && [o.start, o.children.length, o.children[1].querySelector(':scope > ul').children.length, o.children[1].querySelector('ul ol').start]; })()")
    assert_eq(ol, [3, 3, 2, 1], "ol start=3, 3 items, nested ul of 2, nested ol")
    nums = q("[...r.querySelectorAll(':scope > ol > li')].map(li => li.firstElementChild.textContent)")
    assert_eq(nums, ["third step", "fourth step, with cargo test", "fifth"], "list items")
    assert q("getComputedStyle(r.querySelector(':scope > ol')).listStyleType") == "decimal"
    assert_eq(q("r.querySelector('blockquote').textContent"), "quoted advice\nstill quoted", "block quote")
    assert q("!!r.querySelector('hr')"), "rule"
    assert_eq(q("[...r.querySelectorAll('table th')].map(x => x.textContent)"), ["tool", "status"], "table head")
    assert_eq(q("[...r.querySelectorAll('table td')].map(x => x.textContent)"), ["cargo", "ok", "npm", "n/a"], "table cells")
    assert_eq(q("r.querySelector('pre.code-block').textContent"), 'echo "copy me" && make check', "fenced code")
    assert_eq(q("r.querySelector('pre.code-block').dataset.lang"), "sh", "code language")
    links = q("[...r.querySelectorAll('a')].map(a => [a.textContent, a.href, a.title, a.rel, a.target])")
    assert_eq(links, [
        ["https://example.com/docs", "https://example.com/docs", "example.com", "noopener noreferrer", "_blank"],
        ["the plan", "https://example.com/plan", "example.com", "noopener noreferrer", "_blank"],
        ["https://example.org/auto", "https://example.org/auto", "example.org", "noopener noreferrer", "_blank"],
        ["mail", "mailto:ops@example.com", "ops@example.com", "noopener noreferrer", "_blank"],
        ["diagram", "https://img.example/d.png", "image \u00b7 img.example", "noopener noreferrer", "_blank"],
    ], "links: text, href, the host on hover")
    # The copy button copies the code block (the clipboard is granted to this origin).
    try:
        d.cdp("Browser.grantPermissions", {"origin": c.room.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    except WebDriverError as e:
        log("clipboard permission not granted: %s" % e)
    d.js("document.querySelector('%s .copy').scrollIntoView({block: 'center'})" % row)
    d.click(row + " .copy")
    d.wait_for("return document.querySelector('%s .copy').textContent !== 'Copy'" % row, timeout=3, what="the copy button's answer")
    assert_eq(d.js("return document.querySelector('%s .copy').textContent" % row), "Copied", "copy reported")
    got = d.js_async("const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, e => done('ERR ' + e))")
    assert_eq(got, 'echo "copy me" && make check', "clipboard holds the code")
    d.js("document.querySelector('%s').scrollIntoView({block: 'start'})" % ("#m%d" % m["id"]))
    d.screenshot("markdown-1280x800")
    d.color_scheme("dark")
    time.sleep(0.2)
    d.screenshot("markdown-1280x800-dark")
    d.color_scheme(None)
    d.viewport(375, 740, mobile=True)
    time.sleep(0.3)
    d.js("document.querySelector('%s').scrollIntoView({block: 'start'})" % ("#m%d" % m["id"]))
    check_layout(d, "markdown 375")
    d.screenshot("markdown-375x740")
    d.viewport(1280, 800)
    # A reply's reference previews the original as plain text, without Markdown marks.
    r = c.room.post(c.curly["token"], "noted", reply_to=m["id"])
    d.wait_for("return !!document.getElementById('m' + arguments[0])", r["id"], timeout=5, what="the reply")
    preview = d.js("return document.querySelector('#m%d .ref-text').textContent" % r["id"])
    assert preview.startswith("Release plan Ship it today, not tomorrow; maybe certainly."), preview
    assert "*" not in preview and "#" not in preview and "Copy" not in preview, preview
    # Attacks: no script runs, no unsafe element or URL, and the inert links read as typed.
    ids = [c.room.post(c.mallory["token"], p)["id"] for p in MD_ATTACKS]
    st, v = c.room.api("POST", "brief", c.room.host_token, {"body": "1. first\n2. [x](javascript:window.__xss=48)\n\n```\ncode\n```\n" + MD_ATTACKS[5]})
    assert st == 200, (st, v)
    d.wait_for("return !!document.getElementById('m' + arguments[0])", ids[-1], timeout=5, what="the attack rows")
    d.wait_for("return !!document.querySelector('#brief-body ol') && document.getElementById('brief-body').textContent.includes('__xss=48')", timeout=8, what="the Markdown brief")
    d.js("for (const e of document.querySelectorAll('#room *')) { e.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); e.dispatchEvent(new Event('toggle')); }")
    time.sleep(0.3)
    assert_eq(d.js("return typeof window.__xss"), "undefined", "no payload ran")
    assert_eq(d.js(JS_UNSAFE_DOM), [], "unsafe DOM")
    texts = [d.js("return document.querySelector('#m%d .text').textContent" % i) for i in ids]
    for needle in ["[a](javascript:window.__xss=30)", "[c]( javascript:window.__xss=32)", "<javascript:window.__xss=34>",
                   "![f](data:image/svg+xml,<svg onload=window.__xss=36>)", "[h](&#106;avascript:window.__xss=38)",
                   "&lt;img src=x onerror=window.__xss=40&gt;", "[k](file:///etc/passwd)", "[m](//evil.example/x)",
                   "<div onclick=\"window.__xss=41\">html block</div>"]:
        assert any(needle in t for t in texts), "shown as typed: %r" % needle
    hrefs = d.js("return [...document.querySelectorAll(arguments[0])].map(a => a.href)", ", ".join("#m%d a" % i for i in ids))
    assert_eq(hrefs, ["https://ok.example/%22onmouseover=%22window.__xss=44", "https://ok.example/r", "https://b.example/"], "only http(s) links became links")
    assert_eq(d.js("return document.querySelector('#m%d a[href=\"https://ok.example/r\"] strong').textContent" % ids[6]), "bold", "inline Markdown inside link text")
    assert_eq(d.js("return [...document.querySelectorAll('#brief-body ol > li')].length"), 2, "the brief uses the same renderer")
    assert_eq(d.js("return document.querySelectorAll('#brief-body .code-wrap .copy').length"), 1, "code with copy in the brief")


def step_seen_by(d, c):
    # curly has read up to one message and not the next: a "read up to here" mark on the
    # first for curly, and each message's time says who has seen it.
    d.switch(c.alice_tab)
    one = c.room.post(c.mallory["token"], "receipt probe one")
    two = c.room.post(c.mallory["token"], "receipt probe two")
    st, v = c.room.api("GET", "messages?since_id=%d&limit=1" % (one["id"] - 1), c.curly["token"])
    assert st == 200 and v["next_since_id"] == one["id"], v
    d.wait_for("const r = document.querySelector('#m%d .readers'); return r && r.title.includes('curly')" % one["id"], timeout=10, what="curly's read mark")
    assert not d.js("const r = document.querySelector('#m%d .readers'); return r && r.title.includes('curly')" % two["id"]), "curly has not read the second probe"
    marks = d.js("return [...document.querySelectorAll('#rows .readers')].filter(r => r.title.includes('curly')).length")
    assert_eq(marks, 1, "one read mark per participant")
    assert_eq(d.js("return [...document.querySelectorAll('#m%d .reader')].map(x => x.textContent).includes('C')" % one["id"]), True, "curly's initial")
    assert not d.js("return [...document.querySelectorAll('#rows .readers')].some(r => r.title.includes('Alice Ames'))"), "no mark for yourself"
    for mid, expect in ((one["id"], True), (two["id"], False)):
        d.js("document.getElementById('m%d').dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))" % mid)
        title = d.js("return document.querySelector('#m%d time').title" % mid)
        assert ("#%d" % mid) in title and ("seen by" in title or "not seen" in title), title
        assert_eq("curly" in title, expect, "who has seen #%d: %r" % (mid, title))
    d.js("document.getElementById('m%d').scrollIntoView({block: 'center'})" % one["id"])
    d.screenshot("seen-by-1280x800")


class LongRoom(Room):
    """A second room whose log already holds 50,000 messages (written to messages.jsonl
    before the server starts; posting them would meet the rate limit)."""

    def __init__(self, ag, workdir, n):
        self.ag = ag
        self.home = os.path.join(workdir, "home-long")
        os.makedirs(self.home, mode=0o700)
        self.env = dict(os.environ, AGENTGATHER_HOME=self.home)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.serve_log = open(os.path.join(workdir, "serve-long.log"), "ab")
        self.proc = None
        self.name = "long-history"
        started = self.cli("room", "start", self.name, "--alias", "operator", "--url", self.url, "--json")
        self.host_token = started["token"]
        self.reader = self.invite("reader", "human")
        log_path = os.path.join(self.home, "rooms", self.name, "messages.jsonl")
        with open(log_path) as f:
            first = max(json.loads(l)["id"] for l in f if l.strip()) + 1
        lines = []
        for i in range(first, n + 1):
            text = ("status %d: build **green** on `main`, see https://ci.example/run/%d" % (i, i)) if i % 3 else \
                   ("step %d of the long plan, nothing to do for @reader yet" % i)
            lines.append(json.dumps({"id": i, "room": self.name, "ts": "2026-01-%02dT%02d:%02d:00.000Z" % (1 + i // 5000, (i // 60) % 24, i % 60),
                                     "from": "operator" if i % 2 else "builder", "type": "message", "text": text,
                                     "mentions": ["reader"] if i % 3 == 0 else []}, separators=(",", ":")))
        last = json.loads(lines[-1])
        last.update({"text": "about that old status", "type": "reply", "reply_to": n - 1000})
        lines[-1] = json.dumps(last, separators=(",", ":"))
        with open(log_path, "a") as f:
            f.write("\n".join(lines) + "\n")
        self.last = n
        self.start_server()


JS_SCROLL_UP_ONE_PAGE = """
const done = arguments[arguments.length - 1];
const t = document.getElementById('timeline');
t.scrollTop = 0;
const rows = () => document.querySelectorAll('#rows .row');
const anchor = rows()[0];
const y0 = anchor.getBoundingClientRect().top;
const n0 = rows().length;
let worst = 0;
const started = performance.now();
(function frame() {
  worst = Math.max(worst, Math.abs(anchor.getBoundingClientRect().top - y0));
  if (rows().length > n0 || performance.now() - started > 8000) {
    done({n0: n0, n1: rows().length, worst: worst, ms: performance.now() - started, anchor: anchor.dataset.id,
          y: anchor.getBoundingClientRect().top - y0, top: t.scrollTop});
  } else requestAnimationFrame(frame);
})();
"""


def step_long_history(d, c):
    n = 50000
    t0 = time.time()
    room = LongRoom(c.room.ag, c.workdir, n)
    c.rooms.append(room)
    log("a room of %d messages ready in %.1fs" % (n, time.time() - t0))
    tok = room.reader["token"]
    st, v = room.api("POST", "profile", tok, {"display_name": "Rhea Reader"})
    assert st == 200, (st, v)
    # The reader last looked at message n-30: everything after it is new to them.
    st, v = room.api("GET", "messages?since_id=%d&limit=1" % (n - 31), tok)
    assert st == 200 and v["next_since_id"] == n - 30, v
    tab = d.new_tab()
    try:
        open_as(d, c, room.reader["browser_url"])
        wait_room(d, timeout=15)
        d.wait_for("return performance.getEntriesByName('agentgather:first-message').length > 0", what="the first-message mark")
        first_ms = d.js("return performance.getEntriesByName('agentgather:first-message')[0].startTime")
        kb = d.js("""const at = performance.getEntriesByName('agentgather:first-message')[0].startTime;
            const nav = performance.getEntriesByType('navigation')[0];
            let bytes = nav.transferSize;
            for (const e of performance.getEntriesByType('resource')) if (e.startTime < at) bytes += e.transferSize;
            return bytes / 1024;""")
        log("50,000-message room: first message after %.0f ms, %.1f KB transferred until then" % (first_ms, kb))
        assert kb <= 200, "opening transferred %.1f KB (budget 200 KB)" % kb
        # Timing is the machine's: a generous bound, the figure is in the log.
        assert first_ms < 5000, "first message after %.0f ms" % first_ms
        shown = d.js("return [...document.querySelectorAll('#rows .row')].map(r => Number(r.dataset.id))")
        assert n in shown and shown[-1] - n <= 1, "opens at the newest message (and the reader's own join): %r" % shown[-3:]
        assert len(shown) <= 150, "only a page is loaded at first (%d rows)" % len(shown)
        assert d.js("const t = document.getElementById('timeline'); return t.scrollHeight - t.scrollTop - t.clientHeight < 4"), "opened at the bottom"
        # The unread line sits right above the first message after the read position.
        after = d.js("const l = document.getElementById('unread-line'); let n = l && l.nextElementSibling; while (n && !n.dataset.id) n = n.nextElementSibling; return n && Number(n.dataset.id)")
        assert_eq(after, n - 29, "the unread line is above the first new message")
        assert_eq(d.js("return document.getElementById('unread-line').textContent"), "New since you last looked", "unread line text")
        d.screenshot("long-history-unread-1280x800")
        # Scrolling up loads older pages above, and what was on screen does not move.
        for k in range(3):
            r = d.js_async(JS_SCROLL_UP_ONE_PAGE)
            log("older page %d: %d -> %d rows in %.0f ms, anchor moved %.1f px (worst frame %.1f px)" % (k + 1, r["n0"], r["n1"], r["ms"], r["y"], r["worst"]))
            assert r["n1"] > r["n0"], "an older page loaded: %r" % r
            assert r["worst"] <= 2, "the rows on screen jumped: %r" % r
            assert r["top"] > 0, "the view stays on the rows it showed: %r" % r
        ids = d.js("return [...document.querySelectorAll('#rows .row')].map(r => Number(r.dataset.id))")
        assert ids == list(range(ids[0], ids[-1] + 1)) and ids[-1] >= n, "rows are contiguous, in order, without duplicates: %r" % (ids[:3] + ids[-3:],)
        assert ids[0] <= n - 399, ids[0]
        pages = d.js("return performance.getEntriesByType('resource').map(e => e.name).filter(u => u.includes('before_id='))")
        assert len(pages) >= 3 and all("since_id" not in p and "token" not in p for p in pages), pages
        # Far from the bottom: a jump-to-latest button, which goes back down.
        d.wait_for("return !document.getElementById('jump').hidden", what="the jump-to-latest button")
        assert_eq(d.js("return document.getElementById('jump').textContent"), "Jump to latest \u2193", "jump label")
        d.screenshot("long-history-scrolled-1280x800")
        d.click("#jump")
        d.wait_for("const t = document.getElementById('timeline'); return t.scrollHeight - t.scrollTop - t.clientHeight < 4", what="back at the bottom")
        assert not visible(d, "#jump"), "the jump button hides at the bottom"
        # The newest message replies to one far above what is loaded: its reference loads the
        # pages back to it. (The log is at its 50,000 cap: no more posts.)
        target = n - 1000
        assert not d.js("return !!document.getElementById('m%d')" % target), "the original is not loaded yet"
        d.js("document.querySelector('#m%d button.ref').click()" % n)
        d.wait_for("const r = document.getElementById('m%d'); return !!r && r.classList.contains('flash')" % target, timeout=20, what="the original loaded and shown")
        ids = d.js("return [...document.querySelectorAll('#rows .row')].map(r => Number(r.dataset.id))")
        assert ids == list(range(ids[0], ids[-1] + 1)) and ids[0] <= target, "contiguous after loading back: %r" % (ids[:3] + ids[-3:],)
        inview = d.js("const r = document.getElementById('m%d').getBoundingClientRect(); const t = document.getElementById('timeline').getBoundingClientRect(); return r.top >= t.top && r.bottom <= t.bottom" % target)
        assert inview, "the original is on screen"
        # The server kept the reader's receipt where the first page put it (old pages are not delivery).
        st, v = room.api("GET", "status", room.host_token)
        me = [p for p in v["participants"] if p["alias"] == "reader"][0]
        assert me["read_through_id"] >= n, "read_through_id after opening: %r" % me
    finally:
        d.s("DELETE", "/window")
        d.switch(getattr(c, "host_tab", None) or c.alice_tab)
        room.stop_server()
