#!/usr/bin/env python3
"""Browser tests for the Agent Gather room page, in real headless Chromium.

Standard library only: Chromium is driven through chromedriver's W3C WebDriver HTTP API
with urllib. Each run starts a real room server (the `agentgather` binary, from $AG_CMD,
default target/release/agentgather) in a temporary AGENTGATHER_HOME.

No Chromium or chromedriver found: prints a SKIP notice and exits 0, unless
AGENTGATHER_REQUIRE_BROWSER=1, where that is a failure (exit 1).

Screenshots (1280x800 and 375x740, light and dark) go to target/browser-artifacts/.

This file holds the core steps and the runner; harness.py the WebDriver client and the
room under test; steps_reading.py (Markdown, seen-by, long history) and steps_access.py
(assets, accessibility, keyboard, notifications, installing), steps_topics.py (topics,
questions, search) and steps_room_views.py (names, cards, the drawer, the first visit, the
host's invite/brief/remove, the truth after close, the screenshot gallery) and steps_rail.py
(the rail's tab strip at every width) the rest. axe-core is
vendored in vendor/ for the accessibility step only.

    python3 tests/browser/test_browser.py            # run everything
    python3 tests/browser/test_browser.py -k xss     # only steps whose name contains "xss"
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

from harness import (  # noqa: E402 - after the line above
    ARTIFACTS,
    Ctx,
    Driver,
    JS_ROW_TEXTS,
    JS_UNSAFE_DOM,
    REQUIRE,
    ROOT,
    Room,
    VERBOSE,
    assert_eq,
    check_layout,
    composer_send,
    find_browser,
    http,
    log,
    open_as,
    reload,
    row_by_text,
    visible,
    wait_room,
)
from steps_access import step_assets_served, step_accessibility, step_keyboard, step_notifications, step_installable
from steps_reading import step_markdown, step_seen_by, step_long_history
from steps_reach import step_reach_roster
from steps_topics import TOPIC_STEPS
from steps_claims import CLAIM_STEPS
from steps_room_views import OPEN_ROOM_STEPS, step_truth_after_close
from steps_approvals import APPROVAL_STEPS
from steps_rail import RAIL_STEPS


def step_invite_required(d, c):
    d.get(c.room.url + "/")
    d.js("sessionStorage.clear(); localStorage.clear();")
    d.get("about:blank")
    d.get(c.room.url + "/")
    d.wait_for("return !document.getElementById('gate').hidden", what="the gate")
    title = d.js("return document.getElementById('gate-title').textContent")
    assert_eq(title, "Invite required", "gate title")
    help_text = d.js("return document.getElementById('gate').textContent")
    assert "agentgather room invite" in help_text, help_text
    assert not visible(d, "#room"), "room must not show without a token"
    check_layout(d, "gate 1280")
    d.screenshot("gate-invite-required-1280x800")
    # A bad token: the same screen, saying the invite is not valid; the token is dropped.
    d.get("about:blank")
    d.get(c.room.url + "/#token=tgl_not_a_real_token_000000000000")
    d.wait_for("return !document.getElementById('gate').hidden", what="the gate for a bad token")
    text = d.js("return document.getElementById('gate-text').textContent")
    assert "not valid" in text, text
    assert_eq(d.js("return location.hash"), "", "fragment cleared")
    assert_eq(d.js("return Object.keys(sessionStorage).filter(k => k.startsWith('agentgather.token')).length"), 0, "bad token forgotten")


def step_display_name_flow(d, c):
    # The host already goes by "Olivia Operator": a guest may not take it.
    st, v = c.room.api("POST", "profile", c.room.host_token, {"display_name": "Olivia Operator"})
    assert st == 200, (st, v)
    open_as(d, c, c.alice["browser_url"])
    d.wait_for("return !document.getElementById('namer-screen').hidden", what="the display-name picker")
    assert_eq(d.js("return location.hash"), "", "the token fragment is cleared from the address bar")
    assert "#token" not in d.js("return location.href")
    assert d.js("return sessionStorage.length") >= 1
    intro = d.js("return document.getElementById('namer-intro').textContent")
    assert "alice" in intro, intro
    check_layout(d, "namer")
    d.screenshot("display-name-1280x800")
    d.type("#namer-input", "olivia operator")
    d.click("#namer-submit")
    d.wait_for("return !document.getElementById('namer-error').hidden", what="the 409 inline error")
    err = d.js("return document.getElementById('namer-error').textContent")
    assert "already taken" in err, err
    assert visible(d, "#namer"), "still on the picker after a 409"
    d.screenshot("display-name-taken-1280x800")
    d.clear("#namer-input")
    d.type("#namer-input", "Alice Ames")
    d.click("#namer-submit")
    wait_room(d)
    st, v = c.room.api("GET", "profile", c.alice["token"])
    assert_eq(v.get("display_name"), "Alice Ames", "display name stored")
    c.alice_tab = d.handle()


def step_empty_state(d, c):
    d.wait_for("return document.querySelectorAll('#rows .row').length > 0", what="history rows")
    assert visible(d, "#empty"), "empty state shows while only system rows exist"
    rows = d.js(JS_ROW_TEXTS)
    assert all(r["system"] for r in rows), rows
    assert_eq(d.js("return document.getElementById('tb-room').textContent"), c.room.name, "room name in top bar")
    assert_eq(d.js("return document.getElementById('tb-status').textContent"), "open", "status pill")
    ttl = d.js("return document.getElementById('tb-ttl').textContent")
    # The room was started with --ttl 2h a little while ago (how long depends on how fast
    # the browser came up).
    assert re.fullmatch(r"closes in (2h 00m|1h [45]\dm)", ttl), "TTL countdown: %r" % ttl
    people = d.js("return document.getElementById('tb-people').textContent")
    assert people.startswith("4 "), people
    # Guests never get host controls, not even hidden ones.
    assert_eq(d.js("return document.getElementById('host-controls')"), None, "host controls absent for a guest")
    assert_eq(d.js("return [...document.querySelectorAll('button')].filter(b => /close room|export/i.test(b.textContent)).length"), 0, "no close/export buttons")
    # The brief panel shows version 1 with no "updated" mark on arrival.
    d.wait_for("return document.getElementById('brief-ver').textContent === 'v1'", what="brief v1")
    assert not visible(d, "#brief-badge"), "no brief-updated mark on arrival"
    body = d.js("return document.getElementById('brief-body').textContent")
    assert "Ship the 0.2 release" in body, body
    assert_eq(d.js("return [...document.querySelectorAll('#brief-body strong')].map(x => x.textContent)"), ["0.2"], "bold in brief")
    assert_eq(d.js("return [...document.querySelectorAll('#brief-body .h')].map(x => x.textContent)"), ["Launch review"], "heading in brief")
    assert d.js("return document.querySelector('#brief-body a.link') && document.querySelector('#brief-body a.link').href") == "https://example.com/plan"
    check_layout(d, "empty room")
    d.screenshot("empty-room-guest-1280x800")


def step_send_and_receive(d, c):
    composer_send(d, "hello from the browser, @curly please look")
    rid = row_by_text(d, "hello from the browser")
    d.wait_for("return !document.querySelector('#pending .row')", what="the pending echo to resolve")
    assert not visible(d, "#empty"), "empty state gone after the first message"
    pills = d.js("return [...document.querySelectorAll('#m%d .mention')].map(p => p.textContent)" % rid)
    assert_eq(pills, ["@curly"], "mention pill")
    msgs = [m for m in c.room.messages(c.curly["token"]) if "hello from the browser" in m["text"]]
    assert_eq(len(msgs), 1, "server has the message once")
    assert_eq(msgs[0]["from"], "alice", "from derived from the token")
    assert msgs[0].get("client_msg_id"), "the page sends a client_msg_id"
    assert_eq(msgs[0]["mentions"], ["curly"], "server mentions")
    # A curl participant posts; it shows up without a reload, fast (long-poll, not polling).
    d.js("window.__marker = 'same-page';")
    time.sleep(0.3)
    m = c.room.post(c.curly["token"], "hi @alice, run `cargo test` then:\n```\nmake check\n  @alice inside code\n```\nand see https://example.org/x.")
    t0 = time.time()  # from the post's acknowledgement
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="the curl message", interval=0.02)
    latency = time.time() - t0
    log("curl post appeared in the page after %.0f ms" % (latency * 1000))
    # Within a second of the post (plus WebDriver's own polling), never a 3 s poll's wait.
    assert latency < 1.5, "message took %.2fs to appear" % latency
    assert_eq(d.js("return window.__marker"), "same-page", "no reload happened")
    row = "#m%d" % m["id"]
    assert_eq(d.js("return [...document.querySelectorAll('%s .mention')].map(p => p.textContent + '|' + p.className)" % row), ["@alice|mention me"], "only the prose mention is a pill")
    assert_eq(d.js("return document.querySelector('%s code.inline').textContent" % row), "cargo test", "inline code")
    assert_eq(d.js("return document.querySelector('%s pre.code-block').textContent" % row), "make check\n  @alice inside code", "fenced block")
    assert_eq(d.js("return document.querySelector('%s a.link').href" % row), "https://example.org/x", "link (trailing dot trimmed)")
    assert d.js("return document.querySelector('%s').classList.contains('mentions-me')" % row), "row mentioning me is marked"
    who = d.js("return document.querySelector('%s .who').textContent" % row)
    assert_eq(who, "curly", "sender")
    t = d.js("return document.querySelector('%s time').textContent" % row)
    assert len(t) >= 4 and ":" in t, t
    # Shift+Enter makes a newline and does not send.
    d.type("#input", "line one")
    h1 = d.js("return document.getElementById('input').getBoundingClientRect().height")
    d.type("#input", "\ue008\ue007\ue000")
    d.type("#input", "line two")
    assert_eq(d.js("return document.getElementById('input').value"), "line one\nline two", "shift+enter newline")
    h2 = d.js("return document.getElementById('input').getBoundingClientRect().height")
    d.type("#input", "\ue008\ue007\ue007\ue007\ue007\ue007\ue007\ue007\ue007\ue000" + "more")
    h10 = d.js("return document.getElementById('input').getBoundingClientRect().height")
    line = d.js("return parseFloat(getComputedStyle(document.getElementById('input')).lineHeight)")
    assert h1 + line * 0.9 < h2, "composer grows with a second line (%s -> %s)" % (h1, h2)
    assert line * 6 <= h10 < line * 7, "composer stops growing at about six lines (%s, line %s)" % (h10, line)
    assert not d.js("return document.querySelector('#pending .row')"), "nothing sent by shift+enter"
    # Enter during IME composition does not send.
    d.js("""const i = document.getElementById('input');
      i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', keyCode: 229, isComposing: true, bubbles: true, cancelable: true}));""")
    time.sleep(0.2)
    assert "line two" in d.js("return document.getElementById('input').value"), "IME Enter kept the draft"
    assert not d.js("return document.querySelector('#pending .row')"), "IME Enter sent nothing"
    d.clear("#input")
    d.js("document.getElementById('input').dispatchEvent(new Event('input'))")
    # @ autocomplete from the roster.
    d.type("#input", "ping @cu")
    d.wait_for("return !document.getElementById('ac').hidden", what="the autocomplete list")
    items = d.js("return [...document.querySelectorAll('#ac li .ac-alias')].map(x => x.textContent)")
    assert_eq(items, ["@curly"], "autocomplete items")
    d.screenshot("autocomplete-1280x800")
    d.type("#input", "\ue007")
    assert_eq(d.js("return document.getElementById('input').value"), "ping @curly ", "autocomplete accepted")
    assert not d.js("return document.querySelector('#pending .row')"), "accepting a suggestion does not send"
    d.clear("#input")
    # Reply: the reply action sets reply_to and the row shows the reference.
    d.js("document.querySelector('#m%d button.act').click()" % m["id"])
    assert visible(d, "#replying"), "replying chip"
    d.type("#input", "on it, tests ")
    d.screenshot("replying-1280x800")
    d.clear("#input")
    composer_send(d, "on it, tests are green")
    rid2 = row_by_text(d, "on it, tests are green")
    ref = d.js("return document.querySelector('#m%d button.ref').textContent" % rid2)
    assert ("#%d" % m["id"]) in ref and "curly" in ref, ref
    stored = [x for x in c.room.messages(c.curly["token"]) if x["id"] == rid2][0]
    assert_eq(stored.get("reply_to"), m["id"], "reply_to stored")
    c.room.post(c.curly["token"], "Question for the room: do we tag 0.2.0 today?", type="question")
    row_by_text(d, "do we tag 0.2.0 today")


def step_dedupe(d, c):
    # 1) A send whose request never left: shown as failed with retry; retry posts once.
    d.js("""
      window.__realFetch = window.fetch;
      window.__mode = 'drop-request';
      window.fetch = async function (url, init) {
        const post = String(url) === 'messages' && init && init.method === 'POST';
        if (post && window.__mode === 'drop-request') { window.__mode = ''; throw new TypeError('Failed to fetch'); }
        if (post && window.__mode === 'lose-response') {
          window.__mode = '';
          await window.__realFetch(url, init);
          throw new TypeError('Failed to fetch');
        }
        const r = await window.__realFetch(url, init);
        if (String(url).startsWith('wait') && window.__slowWait) await new Promise(ok => setTimeout(ok, window.__slowWait));
        return r;
      };""")
    composer_send(d, "retry probe 51c2")
    d.wait_for("return document.querySelector('#pending .row.failed .link-btn')", what="the failed send with retry")
    st_text = d.js("return document.querySelector('#pending .row.failed .send-state').textContent")
    assert "Not sent" in st_text and "retry" in st_text, st_text
    d.screenshot("send-failed-retry-1280x800")
    assert_eq(len([m for m in c.room.messages(c.curly["token"]) if m["text"] == "retry probe 51c2"]), 0, "nothing stored yet")
    d.js("document.querySelector('#pending .row.failed .link-btn').click()")
    row_by_text(d, "retry probe 51c2")
    d.wait_for("return !document.querySelector('#pending .row')", what="pending cleared")
    assert_eq(len([m for m in c.room.messages(c.curly["token"]) if m["text"] == "retry probe 51c2"]), 1, "stored once")
    # 2) A send stored by the server whose answer was lost: the retry reuses the
    #    client_msg_id (server answers idempotent) and the row shows once, although the
    #    retry's answer and a (slowed) /wait both deliver the same id.
    d.js("window.__slowWait = 2500;")
    warm = c.room.post(c.curly["token"], "warm-up so the next wait runs slow")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", warm["id"], what="warm-up row")
    d.js("window.__mode = 'lose-response';")
    composer_send(d, "dedupe probe 7f3a")
    d.wait_for("return document.querySelector('#pending .row.failed .link-btn')", what="the lost-response failure")
    # On a slow machine the slowed /wait may deliver the stored message first, which
    # resolves the failed row by itself: then there is nothing left to retry.
    d.js("const b = document.querySelector('#pending .row.failed .link-btn'); if (b) b.click();")
    row_by_text(d, "dedupe probe 7f3a")
    d.wait_for("return !document.querySelector('#pending .row')", what="pending cleared")
    time.sleep(3.0)  # let the slowed /wait deliver the same message again
    d.js("window.__slowWait = 0; window.fetch = window.__realFetch;")
    n = d.js("return [...document.querySelectorAll('#rows .row')].filter(r => r.textContent.includes('dedupe probe 7f3a')).length")
    assert_eq(n, 1, "rows with the probe")
    server = [m for m in c.room.messages(c.curly["token"]) if m["text"] == "dedupe probe 7f3a"]
    assert_eq(len(server), 1, "server copies of the probe")
    # A double press of Enter (and a double click on Send) posts once.
    d.type("#input", "double press probe")
    d.type("#input", "\ue007\ue007")
    d.type("#input", "double click probe")
    d.js("const b = document.getElementById('send'); b.click(); b.click();")
    row_by_text(d, "double press probe")
    row_by_text(d, "double click probe")
    time.sleep(0.5)
    for probe in ("double press probe", "double click probe"):
        assert_eq(len([m for m in c.room.messages(c.curly["token"]) if m["text"] == probe]), 1, probe + " on the server")
        assert_eq(d.js("return [...document.querySelectorAll('#rows .row')].filter(r => r.textContent.includes(arguments[0])).length", probe), 1, probe + " rows")
    ids = d.js("return [...document.querySelectorAll('#rows .row')].map(r => r.dataset.id)")
    assert_eq(len(ids), len(set(ids)), "every row id is unique")
    assert_eq(ids, sorted(ids, key=int), "rows are in id order")


def step_system_rows(d, c):
    d.wait_for("return document.querySelectorAll('#rows .row.system').length >= 2", what="system rows")
    assert d.js("return [...document.querySelectorAll('#rows .row.system')].every(r => getComputedStyle(r).display !== 'none')")
    d.click("#tb-system")
    assert d.js("return [...document.querySelectorAll('#rows .row.system')].every(r => getComputedStyle(r).display === 'none')"), "system rows hidden"
    assert_eq(d.js("return localStorage.getItem('agentgather.hideSystem')"), "1", "remembered")
    # Survives a reload (token from sessionStorage, preference from localStorage).
    reload(d)
    d.wait_for("return document.querySelectorAll('#rows .row.system').length >= 2", what="rows after reload")
    assert d.js("return document.body.classList.contains('hide-system') && [...document.querySelectorAll('#rows .row.system')].every(r => getComputedStyle(r).display === 'none')"), "still hidden after reload"
    assert_eq(d.js("return document.getElementById('tb-system').getAttribute('aria-pressed')"), "true", "toggle state")
    d.click("#tb-system")
    assert d.js("return [...document.querySelectorAll('#rows .row.system')].every(r => getComputedStyle(r).display !== 'none')"), "system rows back"


def step_brief_updated(d, c):
    st, v = c.room.api("POST", "brief", c.room.host_token, {"body": "# Launch review v2\nNow also **update the changelog**. Ping @alice when done."})
    assert st == 200, (st, v)
    d.wait_for("return !document.getElementById('brief-badge').hidden && !document.getElementById('tb-brief-badge').hidden", timeout=5, what="the brief-updated mark")
    assert_eq(d.js("return document.getElementById('brief-ver').textContent"), "v2", "brief version")
    body = d.js("return document.getElementById('brief-body').textContent")
    assert "update the changelog" in body, body
    assert_eq(d.js("return [...document.querySelectorAll('#brief-body .mention')].map(x => x.textContent)"), ["@alice"], "mention in brief")
    d.wait_for("return [...document.querySelectorAll('#rows .row.system')].some(r => r.textContent.includes('Room Brief'))", what="brief system row")
    check_layout(d, "brief updated")
    d.screenshot("brief-updated-1280x800")
    d.click("#tab-brief")  # the rail's Brief tab (the top bar's Brief button would mark it seen)
    d.click("#brief-ack")
    assert not visible(d, "#brief-badge") and not visible(d, "#tb-brief-badge"), "mark cleared"
    # Seen is remembered across a reload.
    reload(d)
    d.wait_for("return document.getElementById('brief-ver').textContent === 'v2'", what="v2 after reload")
    assert not visible(d, "#brief-badge"), "no mark after reload once seen"


def step_reconnecting(d, c):
    c.room.stop_server()
    d.wait_for("return !document.getElementById('tb-conn').hidden", timeout=8, what="the reconnecting state")
    d.screenshot("reconnecting-1280x800")
    c.room.start_server()
    m = c.room.post(c.curly["token"], "back after a restart")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=20, what="a message after the restart")
    d.wait_for("return document.getElementById('tb-conn').hidden", timeout=5, what="reconnected")
    ids = d.js("return [...document.querySelectorAll('#rows .row')].map(r => r.dataset.id)")
    assert_eq(len(ids), len(set(ids)), "no duplicates after a reconnect")


def step_host_view(d, c):
    c.host_tab = d.new_tab()
    open_as(d, c, c.room.url + "/#token=" + c.room.host_token)
    wait_room(d)
    d.wait_for("return document.getElementById('tb-me').textContent === 'Olivia Operator'", what="host name")
    assert visible(d, "#host-controls") and visible(d, "#btn-close") and visible(d, "#btn-export"), "host controls visible"
    composer_send(d, "Thanks all. @alice can you confirm the changelog?")
    hid = row_by_text(d, "can you confirm the changelog")
    # curly reads; the host's latest message then says who has seen it.
    c.room.messages(c.curly["token"])
    seen = d.wait_for("const s = document.querySelector('#m%d .seen'); return s && /curly|Alice|everyone/.test(s.textContent) && s.textContent;" % hid,
                      timeout=12, what="seen-by on the host's latest message")
    log("seen mark: %r" % seen)
    rows = d.js("return document.querySelectorAll('#rows .row .seen').length")
    assert_eq(rows, 1, "only the latest own message carries the seen mark")
    c.room.post(c.curly["token"], "Confirmed: changelog updated in `CHANGELOG.md`.", reply_to=hid)
    row_by_text(d, "changelog updated")


def step_screenshots_open(d, c):
    for (w, h) in ((1280, 800), (375, 740)):
        d.viewport(w, h, mobile=(w < 500))
        time.sleep(0.4)
        d.js("document.getElementById('timeline').scrollTop = 1e9")
        check_layout(d, "host %dx%d" % (w, h))
        d.screenshot("room-host-%dx%d" % (w, h))
        d.color_scheme("dark")
        time.sleep(0.2)
        d.screenshot("room-host-%dx%d-dark" % (w, h))
        d.color_scheme(None)
    # narrow: the rail opens over the timeline and closes again
    d.viewport(375, 740, mobile=True)
    time.sleep(0.2)
    assert not visible(d, "#rail"), "rail hidden by default on a phone"
    d.click("#tb-people")
    assert visible(d, "#rail"), "rail opens on a phone"
    v = d.js("const r = document.getElementById('rail').getBoundingClientRect(); return [r.left, r.right, innerWidth]")
    assert v[0] >= 0 and v[1] <= v[2] + 1, v
    check_layout(d, "rail 375")
    d.screenshot("room-host-375x740-rail")
    d.click("#tb-people")
    d.viewport(1280, 800)
    time.sleep(0.2)
    # the guest at both widths
    d.switch(c.alice_tab)
    for (w, h) in ((1280, 800), (375, 740)):
        d.viewport(w, h, mobile=(w < 500))
        time.sleep(0.4)
        d.js("document.getElementById('timeline').scrollTop = 1e9")
        check_layout(d, "guest %dx%d" % (w, h))
        d.screenshot("room-guest-%dx%d" % (w, h))
    d.viewport(1280, 800)
    d.switch(c.host_tab)


XSS = [
    "<script>window.__xss = 1</script>",
    "<img src=x onerror=\"window.__xss = 2\">",
    "[click me](javascript:window.__xss=3) and javascript:window.__xss=4 and JaVaScRiPt:alert(1)",
    "<a href=\"javascript:window.__xss=5\">link</a> <iframe src=\"javascript:window.__xss=6\"></iframe>",
    "<svg onload=\"window.__xss=7\"></svg><math><mi xlink:href=\"javascript:window.__xss=8\">x</mi></math>",
    "`<img src=x onerror=window.__xss=9>` and ```\n<script>window.__xss=10</script>\n```",
    "data:text/html,<script>window.__xss=11</script> https://ok.example/<img src=x onerror=window.__xss=12>",
    "\" onmouseover=\"window.__xss=13\" x=\" <style>body{display:none}</style>",
    "@<img src=x onerror=window.__xss=14> mailto:a@example.com?subject=<b>x</b>",
]


def step_xss_corpus(d, c):
    # A human whose display name is HTML, a brief with HTML, and message payloads.
    st, v = c.room.api("POST", "profile", c.mallory["token"], {"display_name": "<img src=x onerror=window.__xss=20>"})
    assert st == 200, (st, v)
    st, v = c.room.api("POST", "brief", c.room.host_token, {"body": "<script>window.__xss=21</script>\n<img src=x onerror=window.__xss=22>\n[x](javascript:window.__xss=23)"})
    assert st == 200, (st, v)
    ids = []
    for p in XSS:
        ids.append(c.room.post(c.mallory["token"], p)["id"])
        ids.append(c.room.post(c.curly["token"], "re: " + p)["id"])
    last = ids[-1]
    for tab in (c.host_tab, c.alice_tab):
        d.switch(tab)
        d.wait_for("return !!document.getElementById('m' + arguments[0])", last, timeout=8, what="the XSS rows")
        d.wait_for("return document.getElementById('brief-body').textContent.includes('__xss=21')", timeout=8, what="the hostile brief")
        d.wait_for("return [...document.querySelectorAll('#roster .person-name')].some(n => n.textContent.includes('onerror'))", timeout=10, what="the hostile name in the roster")
        # hover/focus everything to give any handler a chance to run
        d.js("for (const e of document.querySelectorAll('#room *')) { e.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); }")
        time.sleep(0.5)
        assert_eq(d.js("return typeof window.__xss"), "undefined", "no payload ran")
        bad = d.js(JS_UNSAFE_DOM)
        assert_eq(bad, [], "unsafe DOM")
        # the payloads are shown literally
        for i, p in zip(ids[::2], XSS):
            text = d.js("return document.querySelector('#m%d .text').textContent" % i)
            if "```" not in p and "`" not in p:
                assert_eq(text, p, "payload shown as text")
        who = d.js("return document.querySelector('#m%d .who').textContent" % ids[0])
        assert_eq(who, "<img src=x onerror=window.__xss=20>", "hostile display name shown as text")
        links = d.js("return [...document.querySelectorAll('#rows a')].map(a => a.href)")
        assert all(l.startswith(("https://", "http://", "mailto:")) for l in links), links
        assert any(l.startswith("mailto:a@example.com") for l in links), links
    d.switch(c.host_tab)
    d.screenshot("xss-corpus-host-1280x800")


def step_rename_updates_rows(d, c):
    # Rows drawn under an alias pick up the sender's display name once the roster knows it,
    # without a reload (rows are not re-fetched: the page renames them in place).
    d.switch(c.alice_tab)
    m = c.room.post(c.curly["token"], "a line before curly has a display name")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="curly's row")
    assert_eq(d.js("return document.querySelector('#m%d .who').textContent" % m["id"]), "curly", "alias before a name")
    r = c.room.post(c.curly["token"], "a reply", reply_to=m["id"])
    d.wait_for("return !!document.getElementById('m' + arguments[0])", r["id"], timeout=5, what="curly's reply")
    st, v = c.room.api("POST", "profile", c.curly["token"], {"display_name": "Curly Quinn"})
    assert st == 200, (st, v)
    d.wait_for("return document.querySelector('#m' + arguments[0] + ' .who').textContent === 'Curly Quinn'", m["id"],
               timeout=10, what="the earlier row renamed")
    assert_eq(d.js("return document.querySelector('#m%d .ref-who').textContent" % r["id"]), "Curly Quinn", "reply reference renamed")
    # A display name that differs from the alias shows the alias beside it (audit: look-alike
    # names), drawn by CSS so the name itself stays plain text.
    after = d.js("return getComputedStyle(document.querySelector('#m%d .who'), '::after').content" % m["id"])
    assert "@curly" in after, after


def step_two_tabs_one_wait(d, c):
    # The server holds a few /waits per participant, but tabs need not each hold one:
    # one leads (holds the wait), the other follows through the leader, and
    # takes over when the leader's tab closes.
    d.switch(c.alice_tab)
    d.wait_for("return document.documentElement.dataset.waitLeader === '1'", what="the only tab leading")
    second = d.new_tab()
    open_as(d, c, c.alice["browser_url"])
    wait_room(d)
    time.sleep(1.0)
    assert_eq(d.js("return document.documentElement.dataset.waitLeader"), None, "the second tab follows")
    waits = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/wait?')).length"
    assert_eq(d.js(waits), 0, "a following tab holds no /wait")
    m = c.room.post(c.curly["token"], "for both of alice's tabs")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="the post in the following tab")
    d.switch(c.alice_tab)
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="the post in the leading tab")
    # Across both tabs, alice keeps a held wait.
    deadline = time.time() + 5
    while True:
        st, v = c.room.api("GET", "status", c.room.host_token)
        me = [p for p in v["participants"] if p["alias"] == "alice"][0]
        if me["waiting"]:
            break
        assert time.time() < deadline, "alice holds no wait: %r" % me
        time.sleep(0.05)
    # The follower learns from the leader that the server is away, and that it is back.
    d.switch(second)
    c.room.stop_server()
    d.wait_for("return !document.getElementById('tb-conn').hidden", timeout=8, what="reconnecting in the follower")
    c.room.start_server()
    m = c.room.post(c.curly["token"], "back, for both tabs")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=20, what="the post after the restart in the follower")
    d.wait_for("return document.getElementById('tb-conn').hidden", timeout=5, what="the follower reconnected")
    d.switch(c.alice_tab)
    d.s("DELETE", "/window")  # close the leader's tab
    d.switch(second)
    d.wait_for("return document.documentElement.dataset.waitLeader === '1'", timeout=8, what="the follower taking over")
    m = c.room.post(c.curly["token"], "after the leader tab closed")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], timeout=5, what="the post in the new leader")
    c.alice_tab = second


def step_host_export_and_close(d, c):
    d.switch(c.host_tab)
    # more than one page of export (pages stop at 512 KB): the page puts the pages together
    marker = "export-bulk "
    for i in range(30):
        c.room.post(c.room.host_token, marker + str(i) + " " + "e" * 23900)
    for fmt in ("md", "json"):
        before = set(os.listdir(c.driver.downloads))
        d.click("#btn-export")
        assert visible(d, "#export-menu"), "export menu"
        d.click("#export-" + fmt)
        got = d.wait_for("return document.body.dataset.lastExport && document.body.dataset.lastExport.startsWith(arguments[0]) && document.body.dataset.lastExport", c.room.name + "." + fmt, timeout=8, what="the export")
        size, pages = int(got.split(":")[1]), int(got.split(":")[2])
        assert size > 30 * 23900, got
        assert pages > 1, got
        # the file lands in the download directory
        deadline = time.time() + 8
        path = None
        while time.time() < deadline:
            new = [f for f in set(os.listdir(c.driver.downloads)) - before if f.endswith("." + fmt)]
            if new:
                path = os.path.join(c.driver.downloads, new[0])
                break
            time.sleep(0.1)
        if path:
            data = open(path, "rb").read().decode("utf-8", "replace")
            assert "changelog" in data, data[:300]
            assert_eq(data.count(marker), 30, "every bulk message once in the %s export" % fmt)
            if fmt == "json":
                j = json.loads(data)
                ids = [m["id"] for m in j["messages"]]
                assert ids == sorted(set(ids)), "the pages' messages in order, none twice"
                assert_eq(j["message_count"], len(ids), "the count of the whole")
                assert "has_more" not in j and "ok" not in j, "no paging fields in the file"
            log("export %s downloaded (%d bytes)" % (fmt, len(data)))
        else:
            log("export %s: no file in the download dir (headless downloads off?); the fetch succeeded with %d bytes" % (fmt, size))
        d.js("delete document.body.dataset.lastExport")
    # close: two clicks (arm, confirm)
    d.click("#btn-close")
    assert_eq(d.js("return document.getElementById('btn-close').textContent"), "Confirm close", "close arms first")
    st, v = c.room.api("GET", "status", c.room.host_token)
    assert_eq(v["room_status"], "open", "one click does not close")
    d.click("#btn-close")
    d.wait_for("return !document.getElementById('closed-banner').hidden", timeout=6, what="closed banner (host)")
    st, v = c.room.api("GET", "status", c.room.host_token)
    assert_eq(v["room_status"], "closed", "room closed on the server")
    assert_eq(d.js("return document.getElementById('tb-status').textContent"), "closed", "status pill")
    assert not visible(d, "#composer") and visible(d, "#closed-note"), "composer replaced"
    assert visible(d, "#btn-export"), "export still available after close"
    for (w, h) in ((1280, 800), (375, 740)):
        d.viewport(w, h, mobile=(w < 500))
        time.sleep(0.3)
        check_layout(d, "closed %dx%d" % (w, h))
        d.screenshot("room-closed-host-%dx%d" % (w, h))
    d.viewport(1280, 800)


def step_room_closed_guest(d, c):
    d.switch(c.alice_tab)
    d.wait_for("return !document.getElementById('closed-banner').hidden", timeout=8, what="closed banner (guest)")
    assert_eq(d.js("return document.getElementById('tb-status').textContent"), "closed", "status pill")
    assert not visible(d, "#composer") and visible(d, "#closed-note"), "composer gone for the guest"
    # The status refresh may show the banner before /wait delivers the closing row.
    d.wait_for("return [...document.querySelectorAll('#rows .row.system')].some(r => r.textContent.includes('Room closed'))", timeout=8, what="closed system row")
    # A fresh load of a closed room shows the same state.
    reload(d)
    d.wait_for("return !document.getElementById('closed-banner').hidden", timeout=8, what="closed banner after reload")
    # Topics stay readable, but nothing offers to write to them: no new topic, comment,
    # status change or answer controls on screen.
    writes = d.js("const w = [...document.querySelectorAll('.topic-write, .tc-opts, .tp-comment, .tp-status-row, .tp-new')];"
                  " return [w.length, w.filter(e => e.getClientRects().length > 0).map(e => e.id || e.className)];")
    assert writes[0] > 0 and writes[1] == [], "topic write controls in a closed room: %r" % (writes,)
    d.click("#tab-topics")
    assert visible(d, "#topics"), "the topics panel stays readable"
    shown = d.js("return [...document.querySelectorAll('.topic-write, .tc-opts, .tp-comment, .tp-status-row, .tp-new')].filter(e => e.getClientRects().length > 0).length")
    assert_eq(shown, 0, "no topic write controls with the topics panel shown")
    d.viewport(375, 740, mobile=True)
    time.sleep(0.3)
    check_layout(d, "closed guest 375")
    d.screenshot("room-closed-guest-375x740")
    d.viewport(1280, 800)


def step_no_token_in_urls(d, c):
    # Every request the page made, in every tab: no token in any URL.
    tokens = [c.room.host_token, c.alice["token"], c.mallory["token"]]
    for tab in (c.host_tab, c.alice_tab):
        d.switch(tab)
        urls = d.js("return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
        for u in urls:
            for t in tokens:
                assert t not in u, "token in a request URL: " + u
            assert "token=" not in u, u
        # No CSP violations and no script errors (failed resource loads are expected:
        # the bad-token 401, the 409 name clash, the server restart).
        bad = [e.get("message", "") for e in d.console()
               if e.get("level") == "SEVERE" and "Failed to load resource" not in e.get("message", "")]
        assert_eq(bad, [], "console errors")


STEPS = [
    step_assets_served,
    step_invite_required,
    step_display_name_flow,
    step_empty_state,
    step_send_and_receive,
    step_dedupe,
    step_system_rows,
    step_brief_updated,
    step_reconnecting,
    step_host_view,
    step_screenshots_open,
    step_xss_corpus,
    step_markdown,
    step_accessibility,
    step_keyboard,
    step_seen_by,
    step_notifications,
    step_installable,
    step_rename_updates_rows,
    step_two_tabs_one_wait,
    step_reach_roster,
    *TOPIC_STEPS,
    *CLAIM_STEPS,
    *OPEN_ROOM_STEPS,
    *APPROVAL_STEPS,
    *RAIL_STEPS,
    step_host_export_and_close,
    step_room_closed_guest,
    step_truth_after_close,
    step_long_history,
    step_no_token_in_urls,
]


def main():
    only = None
    if len(sys.argv) > 2 and sys.argv[1] == "-k":
        only = sys.argv[2]
    chrome, chromedriver = find_browser()
    if not chrome or not chromedriver:
        missing = ", ".join(n for n, p in (("chromium", chrome), ("chromedriver", chromedriver)) if not p)
        if REQUIRE:
            log("FAIL: AGENTGATHER_REQUIRE_BROWSER=1 but %s not found (install: apt-get install -y chromium chromium-driver)" % missing)
            return 1
        log("SKIP: browser tests skipped: %s not found. Install with `apt-get install -y chromium chromium-driver`," % missing)
        log("SKIP: or set CHROME_BIN/CHROMEDRIVER; set AGENTGATHER_REQUIRE_BROWSER=1 to make this a failure.")
        return 0
    ag = os.environ.get("AG_CMD") or os.path.join(ROOT, "target", "release", "agentgather")
    if not os.path.isabs(ag) and os.path.exists(os.path.join(ROOT, ag)):
        ag = os.path.join(ROOT, ag)
    if not (os.path.exists(ag) or shutil.which(ag)):
        log("FAIL: the agentgather binary %s does not exist; run `cargo build --release` or set AG_CMD" % ag)
        return 1
    os.makedirs(ARTIFACTS, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ag-browser-")
    c = Ctx()
    c.workdir = workdir
    c.rooms = []
    c.room = None
    c.driver = None
    failures = []
    started = time.time()
    try:
        c.room = Room(ag, workdir)
        c.alice = c.room.invite("alice", "human")
        c.curly = c.room.invite("curly", "agent")
        c.mallory = c.room.invite("mallory", "human")
        c.driver = Driver(chrome, chromedriver, workdir)
        d = c.driver
        log("chromium %s, server %s" % (d.js("return navigator.userAgent").split("Chrome/")[-1].split(" ")[0], c.room.url))
        for step in STEPS:
            name = step.__name__[5:]
            if only and only not in name and name not in ("assets_served", "invite_required", "display_name_flow"):
                continue
            t0 = time.time()
            try:
                step(d, c)
                log("ok    %-26s %5.1fs" % (name, time.time() - t0))
            except Exception as e:  # noqa: BLE001 - report and keep going
                failures.append(name)
                log("FAIL  %-26s %s" % (name, e))
                if VERBOSE or not isinstance(e, AssertionError):
                    traceback.print_exc()
                try:
                    d.screenshot("FAILED-" + name)
                except Exception:
                    pass
                for entry in d.console()[-20:]:
                    log("   console:", entry.get("level"), entry.get("message", "")[:300])
    except Exception as e:  # setup failed
        log("FAIL  setup: %s" % e)
        traceback.print_exc()
        failures.append("setup")
    finally:
        if c.driver:
            c.driver.quit()
        for r in ([c.room] if c.room else []) + c.rooms:
            r.stop_server()
            r.serve_log.close()
        if failures and os.environ.get("AG_BROWSER_KEEP") != "1":
            # keep the logs next to the screenshots
            for f in ("serve.log", "chromedriver.log"):
                p = os.path.join(workdir, f)
                if os.path.exists(p):
                    shutil.copy(p, os.path.join(ARTIFACTS, f))
        if os.environ.get("AG_BROWSER_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    log("%d failed, %.1fs; screenshots in %s" % (len(failures), time.time() - started, os.path.relpath(ARTIFACTS, ROOT)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
