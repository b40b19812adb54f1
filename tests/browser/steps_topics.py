"""Browser-room steps for topics, questions and search (SPEC §9, issue 12): the topics
panel (list, filter, thread, comment, status, a new topic), question cards with answer
buttons only for who may answer, `agentgather ask --wait` and an MCP client's room_ask
answered by a click in Chromium, search, and all of it live through the one /wait; then,
in a room of their own, a GET /topics that fails at page open and is retried, a rename
that keeps a half-typed answer, and the panel's own top-bar button at 375 px."""

import json
import os
import queue
import subprocess
import threading
import time

from harness import (
    Room,
    assert_eq,
    check_layout,
    ensure_host_tab,
    log,
    open_as,
    visible,
    wait_room,
)
from steps_access import axe_check

JS_TOPIC_LIST = """
return [...document.querySelectorAll('#topics-list .tp-open')].map(b => ({
  id: Number(b.dataset.topic), title: b.querySelector('.tp-title').textContent,
  status: b.querySelector('.tp-status').textContent, meta: b.querySelector('.tp-meta').textContent}));
"""

JS_THREAD = """
return [...document.querySelectorAll('#topic-thread .tp-msg')].map(li => ({
  id: Number(li.dataset.id), who: li.querySelector('.tp-who').textContent, text: li.querySelector('.tp-text').textContent}));
"""

# The card of topic arguments[0] in the timeline: its buttons and its answered state.
JS_CARD = """
const c = document.querySelector('#rows .tc[data-topic="' + arguments[0] + '"]');
if (!c) return null;
return {options: [...c.querySelectorAll('.tc-opt')].filter(b => !b.disabled).map(b => b.textContent),
        state: (c.querySelector('.tc-state') || {}).textContent || '', status: c.querySelector('.tp-status').textContent,
        answered: !!c.querySelector('.tc-answered')};
"""


def set_select(d, css, value):
    d.js("const s = document.querySelector(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change'));", css, value)


def topic(c, token, **body):
    st, v = c.room.api("POST", "topics", token, body)
    assert st == 201, (st, v)
    return v["message"]["id"]


def show_topic(c, tid, room=None):
    room = room or c.room
    st, v = room.api("GET", "topics/%d" % tid, room.host_token)
    assert st == 200, (st, v)
    return v


def listed(d, tid, status=None):
    return d.wait_for(
        "return [...document.querySelectorAll('#topics-list .tp-open')].some(b => Number(b.dataset.topic) === arguments[0]"
        " && (!arguments[1] || b.querySelector('.tp-status').textContent === arguments[1]))",
        tid, status, timeout=8, what="topic %d listed%s" % (tid, " as " + status if status else ""))


def show_topics(d):
    """Opens the rail (a drawer on a phone) at its topics tab."""
    if not visible(d, "#rail"):
        d.click("#tb-people")
    if not visible(d, "#topics"):
        d.click("#tab-topics")


def open_thread(d, tid):
    show_topics(d)
    if not visible(d, "#topics-browse"):
        d.click("#topic-back")
    set_select(d, "#topics-filter", "")
    d.click('#topics-list .tp-open[data-topic="%d"]' % tid)
    d.wait_for("return !document.getElementById('topic-view').hidden && document.querySelectorAll('#topic-thread .tp-msg').length > 0"
               " && Number(document.querySelector('#topic-thread .tp-msg').dataset.id) === arguments[0]", tid, what="thread %d" % tid)


def step_topics_panel(d, c):
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    d.js("window.__noReload = 1")
    show_topics(d)
    assert visible(d, "#topics") and visible(d, "#tb-search"), "the topics panel in the rail, search in the top bar"
    # Topics opened over HTTP show up in the panel, live.
    t1 = topic(c, c.curly["token"], title="Parser bug in 0.2", text="The parser drops **bold** inside lists.", tags=["parser"])
    t2 = topic(c, c.room.host_token, title="Release notes draft", text="Who writes them?")
    st, v = c.room.api("POST", "topics/%d/status" % t2, c.room.host_token, {"status": "resolved", "note": "operator writes them"})
    assert st == 201, (st, v)
    listed(d, t1, "open")
    listed(d, t2, "resolved")
    items = d.js(JS_TOPIC_LIST)
    assert_eq([i["id"] for i in items[:2]], [t2, t1], "latest activity first")
    assert items[1]["meta"].startswith("topic · #%d · by " % t1) and items[1]["meta"].endswith(" · 0 comments"), items[1]
    # The status filter.
    set_select(d, "#topics-filter", "resolved")
    assert_eq([i["id"] for i in d.js(JS_TOPIC_LIST)], [t2], "only resolved topics")
    set_select(d, "#topics-filter", "open")
    assert t2 not in [i["id"] for i in d.js(JS_TOPIC_LIST)] and t1 in [i["id"] for i in d.js(JS_TOPIC_LIST)], "only open topics"
    set_select(d, "#topics-filter", "closed")
    assert_eq(d.js(JS_TOPIC_LIST), [], "no closed topics")
    assert visible(d, "#topics-empty"), "an empty-filter note"
    set_select(d, "#topics-filter", "")
    # Open curly's topic: its thread; alice (neither author nor host) gets no status control.
    open_thread(d, t1)
    assert_eq(d.js("return document.getElementById('topic-title').textContent"), "Parser bug in 0.2", "thread title")
    assert not visible(d, "#topic-status-row"), "no status control for a guest on someone else's topic"
    assert_eq(d.js("return [...document.querySelectorAll('#topic-thread .tp-text strong')].map(x => x.textContent)"), ["bold"], "Markdown in the thread")
    # A comment typed in the browser lands on the server as a comment on that topic.
    d.type("#topic-comment", "Reproduced here with nested lists")
    d.type("#topic-comment", "\ue007")
    deadline = time.time() + 8
    while True:
        msgs = show_topic(c, t1)["messages"]
        comments = [m for m in msgs if m.get("topic_id") == t1 and m["type"] != "topic_update"]
        if comments:
            break
        assert time.time() < deadline, "the comment never reached the server: %r" % msgs
        time.sleep(0.1)
    assert_eq((comments[0]["from"], comments[0]["text"]), ("alice", "Reproduced here with nested lists"), "the comment")
    d.wait_for("return [...document.querySelectorAll('#topic-thread .tp-text')].some(x => x.textContent.includes('Reproduced here'))",
               what="the comment in the thread")
    assert_eq(d.js("return document.getElementById('topic-comment').value"), "", "comment box cleared")
    # The comment also shows in the timeline, linked to its topic.
    d.wait_for("return !!document.querySelector('#m' + arguments[0] + ' .tc-ref')", comments[0]["id"], what="the comment's topic link")
    # A human opens a topic (a participant may, SPEC §9.1) and, as its author, resolves it.
    d.click("#topic-back")
    d.click("#topic-new-btn")
    assert visible(d, "#topic-new"), "new topic form"
    assert_eq(d.js("return document.activeElement.id"), "tn-title", "focus in the title")
    d.type("#tn-title", "Docs for the browser room")
    d.type("#tn-text", "Screenshots at 375 px too.")
    d.type("#tn-tags", "docs, web")
    d.click("#tn-create")
    d.wait_for("return !document.getElementById('topic-view').hidden && document.getElementById('topic-title').textContent === 'Docs for the browser room'",
               what="the new topic's thread")
    st, v = c.room.api("GET", "topics?tag=docs", c.room.host_token)
    mine = [t for t in v["topics"] if t["title"] == "Docs for the browser room"]
    assert mine and mine[0]["from"] == "alice" and mine[0]["tags"] == ["docs", "web"], v
    t3 = mine[0]["id"]
    assert visible(d, "#topic-status-row"), "the author may change the status"
    set_select(d, "#topic-status-select", "resolved")
    d.type("#topic-status-note", "written")
    d.click("#topic-status-apply")
    deadline = time.time() + 8
    while show_topic(c, t3)["topic"]["status"] != "resolved":
        assert time.time() < deadline, "the status change never reached the server"
        time.sleep(0.1)
    upd = [m for m in show_topic(c, t3)["messages"] if m["type"] == "topic_update"]
    assert_eq((upd[-1]["from"], upd[-1]["topic_update"]), ("alice", {"status": "resolved", "note": "written"}), "the update")
    d.wait_for("return document.querySelector('#topic-meta .tp-status').textContent === 'resolved'", what="the new status in the thread")
    listed(d, t3, "resolved")
    c.topics = {"t1": t1, "t2": t2, "t3": t3}
    assert_eq(d.js("return window.__noReload"), 1, "no reload")


def step_topic_live(d, c):
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    d.js("window.__noReload = 1")
    t1 = getattr(c, "topics", {}).get("t1") or topic(c, c.curly["token"], title="Parser bug in 0.2", text="lists")
    open_thread(d, t1)
    n = len(d.js(JS_THREAD))
    # Another participant's comment over HTTP: in the open thread and the list, no reload.
    m = c.room.post(c.curly["token"], "fixed in 4f2a, please retest", topic_id=t1)
    d.wait_for("return [...document.querySelectorAll('#topic-thread .tp-msg')].some(li => Number(li.dataset.id) === arguments[0])",
               m["id"], what="curly's comment in the open thread")
    assert_eq(len(d.js(JS_THREAD)), n + 1, "one more thread entry")
    # The host closes it: the status follows, the comment box goes.
    st, v = c.room.api("POST", "topics/%d/status" % t1, c.room.host_token, {"status": "closed"})
    assert st == 201, (st, v)
    d.wait_for("return document.querySelector('#topic-meta .tp-status').textContent === 'closed'", what="closed, live")
    assert not visible(d, "#topic-comment-row") and visible(d, "#topic-closed-note"), "no comments on a closed topic"
    d.click("#topic-back")
    listed(d, t1, "closed")
    # A new topic from someone else appears in the list.
    t4 = topic(c, c.curly["token"], title="Benchmarks on the slow runner", text="p99 looks off")
    listed(d, t4, "open")
    assert_eq(d.js(JS_TOPIC_LIST)[0]["id"], t4, "the newest activity on top")
    # The timeline shows it as a topic card (no answer buttons for a discussion).
    d.wait_for("return !!document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]')", t4, what="the topic card")
    assert_eq(d.js(JS_CARD, t4)["options"], [], "no buttons on a discussion")
    # A new display name reaches the list (read from the roster, not stored in the topic).
    st, v = c.room.api("POST", "profile", c.curly["token"], {"display_name": "Curly Topics"})
    assert st == 200, (st, v)
    d.wait_for("return document.querySelector('#topics-list .tp-open[data-topic=\"' + arguments[0] + '\"] .tp-meta').textContent.includes('by Curly Topics')",
               t4, timeout=12, what="the renamed author in the list")
    assert_eq(d.js("return window.__noReload"), 1, "no reload")


def open_other(d, c, who, name):
    """A tab of another human; picks a display name if they have none yet."""
    tab = d.new_tab()
    open_as(d, c, who["browser_url"])
    d.wait_for("return !document.getElementById('namer-screen').hidden || !document.getElementById('room').hidden", what="namer or room")
    if visible(d, "#namer"):
        d.type("#namer-input", name)
        d.click("#namer-submit")
    wait_room(d)
    return tab


def step_topic_question_cards(d, c):
    ensure_host_tab(d, c)
    # curly asks alice; and asks the host something alice may not answer.
    q = topic(c, c.curly["token"], title="Which port for the demo?", text="The **demo** box has both free.", options=["8787", "8080"], to="alice")
    q_host = topic(c, c.curly["token"], title="Approve the budget?", text="Needs the host.", options=["approve", "reject"], to="operator")
    mallory_tab = open_other(d, c, c.mallory, "Mallory Moss")
    try:
        # Someone else (neither addressee nor host): no buttons, a waiting state.
        d.wait_for("const c = document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]'); return !!c", q, what="the card for mallory")
        card = d.js(JS_CARD, q)
        assert_eq(card["options"], [], "no answer buttons for a bystander")
        assert "Waiting for" in card["state"], card
        # The host may answer any question: buttons.
        d.switch(c.host_tab)
        d.wait_for("return !!document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"] .tc-opt')", q, what="the host's buttons")
        assert_eq(d.js(JS_CARD, q)["options"], ["8787", "8080"], "host buttons")
        # Alice, the addressee: one button per option; none on the host's question.
        d.switch(c.alice_tab)
        d.wait_for("return !!document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"] .tc-opt')", q, what="alice's buttons")
        assert_eq(d.js(JS_CARD, q)["options"], ["8787", "8080"], "alice's buttons")
        d.wait_for("return !!document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]')", q_host, what="the host's question")
        assert_eq(d.js(JS_CARD, q_host)["options"], [], "no buttons on a question to someone else")
        check_layout(d, "question cards 1280")
        d.screenshot("topics-question-card-1280x800")
        d.viewport(375, 740, mobile=True)
        time.sleep(0.2)
        d.js("document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]').scrollIntoView({block: 'center'})", q)
        check_layout(d, "question cards 375")
        assert_eq(d.js("return document.scrollingElement.scrollTop"), 0, "only the timeline scrolls")
        d.screenshot("topics-question-card-375x740")
        d.viewport(1280, 800)
        # Alice answers by keyboard: focus the second option, Enter.
        d.js("document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"] .tc-opt[data-option=\"8080\"]').focus()", q)
        d.keys("\ue007")
        deadline = time.time() + 8
        while not show_topic(c, q)["topic"]["answer"]:
            assert time.time() < deadline, "the answer never reached the server"
            time.sleep(0.1)
        assert_eq(show_topic(c, q)["topic"]["answer"], {"option": "8080", "by": "alice"}, "the stored answer")
        d.wait_for("const c = document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]'); return c && !c.querySelector('.tc-opt') && !!c.querySelector('.tc-answered')",
                   q, what="alice's card answered")
        card = d.js(JS_CARD, q)
        assert "8080" in card["state"] and "Alice" in card["state"], card
        assert_eq(card["status"], "answered", "card status")
        assert d.js("return document.activeElement && document.activeElement.classList.contains('tc-state')"), "focus stays on the card"
        # The others see it answered, live: the host's buttons go, mallory sees who chose what.
        for tab in (c.host_tab, mallory_tab):
            d.switch(tab)
            d.wait_for("const c = document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]'); return c && !c.querySelector('.tc-opt') && !!c.querySelector('.tc-answered')",
                       q, what="the answered state in another tab")
            st = d.js(JS_CARD, q)["state"]
            assert st.startswith("Answered: 8080") and "by Alice" in st, st
        # A second answer is refused by the server; the page never offered one.
        st, v = c.room.api("POST", "topics/%d/answer" % q, c.room.host_token, {"option": "8787"})
        assert_eq((st, v.get("error")), (409, "already_answered"), "second answer")
    finally:
        d.switch(mallory_tab)
        d.s("DELETE", "/window")
        d.switch(c.alice_tab)


def agent_home(c):
    """curly, joined with the CLI in its own AGENTGATHER_HOME (once)."""
    if getattr(c, "curly_home", None):
        return c.curly_home
    home = os.path.join(c.workdir, "curly-home")
    os.makedirs(home, mode=0o700, exist_ok=True)
    env = dict(os.environ, AGENTGATHER_HOME=home)
    p = subprocess.run([c.room.ag, "room", "join", c.curly["invite_uri"], "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)
    c.curly_home = home
    return home


def click_option(d, title, option, timeout=15):
    """In alice's tab: waits for the card of the question titled `title` and clicks `option`."""
    tid = d.wait_for(
        "const c = [...document.querySelectorAll('#rows .tc[data-topic]')].find(c => c.querySelector('.tc-title').textContent === arguments[0]"
        " && c.querySelector('.tc-opt')); return c ? Number(c.dataset.topic) : 0;",
        title, timeout=timeout, what="the question card %r" % title)
    d.click('#rows .tc[data-topic="%d"] .tc-opt[data-option="%s"]' % (tid, option))
    return tid


def step_topic_ask_cli(d, c):
    # The acceptance test of issue 12: an agent asks a person and blocks; the person clicks.
    d.switch(c.alice_tab)
    home = agent_home(c)
    env = dict(os.environ, AGENTGATHER_HOME=home)
    p = subprocess.Popen([c.room.ag, "ask", "alice", "Ship 1.2 now?", "--option", "yes", "--option", "no", "--wait", "--timeout", "60s"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tid = click_option(d, "Ship 1.2 now?", "yes")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert_eq(p.returncode, 0, "ask --wait exit status (stderr %r)" % err)
    assert_eq(out.strip(), "Answered by alice: yes", "what ask --wait prints")
    log("ask --wait printed %r after the click on topic #%d" % (out.strip(), tid))
    assert_eq(show_topic(c, tid)["topic"]["answer"], {"option": "yes", "by": "alice"}, "the stored answer")
    d.wait_for("const c = document.querySelector('#rows .tc[data-topic=\"' + arguments[0] + '\"]'); return c && !!c.querySelector('.tc-answered')",
               tid, what="answered card")


def step_topic_ask_mcp(d, c):
    # The same through MCP: a client's room_ask (JSON-RPC over `agentgather mcp` stdio)
    # returns the option clicked in the browser.
    d.switch(c.alice_tab)
    home = agent_home(c)
    env = dict(os.environ, AGENTGATHER_HOME=home)
    err = open(os.path.join(c.workdir, "mcp.log"), "wb")
    p = subprocess.Popen([c.room.ag, "mcp"], env=env, cwd=home, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    lines = queue.Queue()

    def pump():
        for line in p.stdout:
            if line.strip():
                lines.put(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()

    def send(obj):
        p.stdin.write(json.dumps(obj) + "\n")
        p.stdin.flush()

    def response(rid, timeout):
        deadline = time.time() + timeout
        while True:
            v = lines.get(timeout=max(0.1, deadline - time.time()))
            if v.get("id") == rid and "method" not in v:
                return v

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "browser-test", "version": "0"}}})
        assert "result" in response(1, 20), "initialize"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "room_ask", "arguments": {
            "to": "alice", "title": "Tag the release?", "options": ["tag it", "wait"], "timeout_seconds": 60}}})
        tid = click_option(d, "Tag the release?", "tag it")
        r = response(2, 30)
        assert "error" not in r, r
        res = r["result"]
        assert res.get("isError") is not True, res
        assert_eq(res["structuredContent"]["answer"], {"option": "tag it", "by": "alice"}, "room_ask's answer")
        log("room_ask returned %r for topic #%d" % (res["structuredContent"]["answer"], tid))
    finally:
        try:
            p.stdin.close()
            p.wait(10)
        except Exception:
            p.kill()
            p.wait(5)
        err.close()


def step_topic_search(d, c):
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    old = c.room.post(c.curly["token"], "the zebraquartz migration is half done")
    new = c.room.post(c.room.host_token, "ZebraQuartz migration finished, thanks")
    c.room.post(c.curly["token"], "unrelated chatter about zebras")
    # Search is its own overlay, opened from the top bar, its input focused.
    d.click("#tb-search")
    d.wait_for("return document.activeElement && document.activeElement.id === 'search-input'", what="the search overlay")
    d.type("#search-input", "zebraquartz migration")
    d.keys("\ue007")
    ids = d.wait_for("const r = [...document.querySelectorAll('#search-results .sr-hit')].map(b => Number(b.dataset.id)); return r.length ? r : null",
                     what="search results")
    assert_eq(ids, [new["id"], old["id"]], "both words, any case, newest first")
    marks = d.js("return [...document.querySelectorAll('#search-results mark')].map(m => m.textContent.toLowerCase())")
    assert "zebraquartz" in marks and "migration" in marks, marks
    # In view at 1280x800 without scrolling anything: every result's box is inside the window.
    boxes = d.js("return [...document.querySelectorAll('#search-results .sr-hit')].map(b => { const r = b.getBoundingClientRect(); return [r.top, r.bottom, innerHeight]; })")
    assert all(0 <= t and b <= h for (t, b, h) in boxes), "search results in view: %r" % boxes
    check_layout(d, "search overlay 1280")
    for scheme in ("light", "dark"):
        d.color_scheme(scheme)
        time.sleep(0.2)
        d.screenshot("search-overlay-1280x800-%s" % scheme)
        axe_check(d, "search overlay %s" % scheme)
    d.color_scheme(None)
    assert "2 messages" in d.js("return document.getElementById('search-state').textContent")
    # A topic title is searchable too.
    d.js("document.getElementById('search-input').value = ''")
    d.type("#search-input", "which port demo")
    d.click("#search-go")
    d.wait_for("return [...document.querySelectorAll('#search-results .sr-title')].some(t => t.textContent === 'Which port for the demo?')"
               " || document.getElementById('search-state').textContent.startsWith('No')", what="the topic result")
    # Choosing a result shows the message in the timeline.
    d.js("document.getElementById('search-input').value = ''")
    d.type("#search-input", "zebraquartz")
    d.keys("\ue007")
    d.wait_for("return document.getElementById('search-state').textContent.includes('match \u201czebraquartz\u201d')"
               " && document.querySelectorAll('#search-results .sr-hit').length === 2", what="two results")
    d.click('#search-results .sr-hit[data-id="%d"]' % old["id"])
    d.wait_for("return document.getElementById('m' + arguments[0]).classList.contains('flash')", old["id"], what="the message flashed")
    assert not visible(d, "#search-overlay"), "choosing a result closes the overlay"
    none = "no-such-word-%d" % int(time.time())
    d.click("#tb-search")
    d.js("document.getElementById('search-input').value = ''")
    d.type("#search-input", none)
    d.keys("\ue007")
    d.wait_for("return document.getElementById('search-state').textContent.startsWith('No messages match')", what="no results")
    d.click("#search-clear")
    assert_eq(d.js("return document.querySelectorAll('#search-results li').length"), 0, "cleared")
    d.keys("\ue00c")
    assert not visible(d, "#search-overlay"), "Esc closes the overlay"
    assert_eq(d.js("return document.activeElement.id"), "tb-search", "focus back on the search button")


def step_topic_layout(d, c):
    # Phone width, light and dark, guest and host: the panel and its thread lay out, and
    # axe-core finds nothing serious with topics, cards and search results on screen.
    ensure_host_tab(d, c)
    t = getattr(c, "topics", {}).get("t3") or topic(c, c.alice["token"], title="Layout check", text="x")
    for tab, who in ((c.alice_tab, "guest"), (c.host_tab, "host")):
        d.switch(tab)
        for (w, h) in ((1280, 800), (375, 740)):
            d.viewport(w, h, mobile=(w < 500))
            time.sleep(0.2)
            assert_eq(d.js("return document.scrollingElement.scrollTop"), 0, "the page itself never scrolls")
            show_topics(d)
            listed(d, t)
            open_thread(d, t)
            check_layout(d, "%s thread %dx%d" % (who, w, h))
            for scheme in ("light", "dark"):
                d.color_scheme(scheme)
                time.sleep(0.2)
                if who == "guest":
                    d.screenshot("topics-thread-%dx%d-%s" % (w, h, scheme))
                axe_check(d, "%s topics %dx%d %s" % (who, w, h, scheme))
            d.color_scheme(None)
            d.click("#topic-back")
            if w < 500:
                # Esc inside the panel leaves the thread first; the rail stays open.
                open_thread(d, t)
                d.keys("\ue00c")
                assert visible(d, "#topics-browse") and visible(d, "#rail"), "Esc backs out of the thread"
                d.keys("\ue00c")
                d.wait_for("return document.getElementById('rail').offsetParent === null", timeout=3, what="the rail closed")
        d.viewport(1280, 800)


def retry_room(c):
    """A room of its own (once) for the steps below, so what they post stays clear of the
    main room's write budgets: rita (a human, already named) and bob (an agent)."""
    if getattr(c, "retry_room", None):
        return c.retry_room
    workdir = os.path.join(c.workdir, "topics-retry")
    os.makedirs(workdir)
    room = Room(c.room.ag, workdir)
    c.rooms.append(room)
    room.rita = room.invite("rita", "human")
    room.bob = room.invite("bob", "agent")
    st, v = room.api("POST", "profile", room.rita["token"], {"display_name": "Rita Reyes"})
    assert st == 200, (st, v)
    c.retry_room = room
    return room


def block_topics_list(d, room, on):
    """Makes this tab's GET /topics fail (as a network error) or work again, through the
    DevTools protocol. The pattern is the whole URL: nothing else is blocked ('/topics/7',
    '/topics?…' and '/assets/topics.js' pass; a '*/topics' pattern would catch the last)."""
    d.cdp("Network.enable")
    d.cdp("Network.setBlockedURLs", {"urls": [room.url + "/topics"] if on else []})


def step_topics_load_retry(d, c):
    # GET /topics fails when the page opens: the panel says so, keeps trying, and once the
    # list loads it is complete and current (a status change to a topic older than the
    # first page of history shows, live).
    room = retry_room(c)
    bob = room.bob["token"]
    st, v = room.api("POST", "topics", bob, {"title": "Old topic before the page", "text": "from long ago"})
    assert st == 201, (st, v)
    old = v["message"]["id"]
    # Push it out of the first page of history (100 messages): the page can learn of it
    # only from GET /topics.
    for i in range(105):
        room.post(room.host_token if i % 2 else bob, "filler %d" % i)
    tab = d.new_tab()
    try:
        block_topics_list(d, room, True)
        open_as(d, c, room.rita["browser_url"])
        wait_room(d)
        d.wait_for("return !document.getElementById('topics-state').hidden && !document.getElementById('topics-retry').hidden",
                   what="the topics load state")
        note = d.js("return document.getElementById('topics-state').textContent")
        assert note.startswith("Could not load the topics") and "Trying again in" in note, note
        assert_eq(d.js("return document.getElementById('topics-state').getAttribute('role')"), "status", "the state is announced")
        assert not d.js("return !!document.querySelector('#topics-list .tp-open[data-topic=\"%d\"]')" % old), "not listed yet"
        assert not visible(d, "#topics-empty"), "no 'No topics yet.' while the list is unknown"
        # Still failing: a live update naming the unknown topic tries again at once (and fails).
        st, v = room.api("POST", "topics/%d/status" % old, bob, {"status": "resolved"})
        assert st == 201, (st, v)
        d.wait_for("return /Trying again in (4|8|16) s/.test(document.getElementById('topics-state').textContent)",
                   what="another failed try, with a longer backoff")
        # The network heals; the next change to the old topic (made over HTTP) shows.
        block_topics_list(d, room, False)
        st, v = room.api("POST", "topics/%d/status" % old, room.host_token, {"status": "open", "note": "reopened"})
        assert st == 201, (st, v)
        listed(d, old, "open")
        d.wait_for("return document.getElementById('topics-state').hidden && document.getElementById('topics-retry').hidden",
                   what="the load state gone")
        items = d.js(JS_TOPIC_LIST)
        assert_eq([i["id"] for i in items], [old], "the whole list")
        assert items[0]["meta"].endswith(" · 0 comments"), items[0]
        # Complete and current from here on: a comment and a status change follow live.
        room.post(bob, "one more note", topic_id=old)
        d.wait_for("return document.querySelector('#topics-list .tp-open[data-topic=\"' + arguments[0] + '\"] .tp-meta').textContent.endsWith(' 1 comment')",
                   old, what="the comment counted")
        st, v = room.api("POST", "topics/%d/status" % old, bob, {"status": "closed"})
        assert st == 201, (st, v)
        listed(d, old, "closed")
    finally:
        block_topics_list(d, room, False)
        d.s("DELETE", "/window")
        d.switch(c.alice_tab)


def open_rita(d, c, room):
    tab = d.new_tab()
    d.viewport(1280, 800)
    open_as(d, c, room.rita["browser_url"])
    wait_room(d)
    return tab


def step_topic_rename_keeps_answer(d, c):
    # A display name changes while rita is writing an answer: the cards and the open thread
    # are redrawn with the new name, and what she typed, her caret and her focus survive.
    room = retry_room(c)
    st, v = room.api("POST", "topics", room.bob["token"],
                     {"title": "What should the changelog say?", "text": "In your words.", "kind": "question", "to": "rita"})
    assert st == 201, (st, v)
    q = v["message"]["id"]
    tab = open_rita(d, c, room)
    try:
        card_input = '#rows .tc[data-topic="%d"] .tc-input' % q
        thread_input = '#topic-thread .tc[data-topic="%d"] .tc-input' % q
        d.wait_for("return !!document.querySelector(arguments[0])", card_input, what="the written-answer box")
        listed(d, q, "open")
        open_thread(d, q)
        d.type(thread_input, "draft in the thread")
        d.type(card_input, "Faster topic loading, fewer lost drafts")
        d.js("document.querySelector(arguments[0]).setSelectionRange(7, 12)", card_input)
        st, v = room.api("POST", "profile", room.bob["token"], {"display_name": "Bob Builder"})
        assert st == 200, (st, v)
        d.wait_for("return document.querySelector('#topics-list .tp-open[data-topic=\"' + arguments[0] + '\"] .tp-meta').textContent.includes('by Bob Builder')"
                   " && [...document.querySelectorAll('#topic-thread .tp-who')].some(w => w.textContent === 'Bob Builder')",
                   q, timeout=12, what="the new name in the list and the thread")
        typed = d.js("const i = document.querySelector(arguments[0]), t = document.querySelector(arguments[1]);"
                     " return {value: i.value, start: i.selectionStart, end: i.selectionEnd, focused: document.activeElement === i,"
                     " thread: t && t.value};", card_input, thread_input)
        assert_eq(typed, {"value": "Faster topic loading, fewer lost drafts", "start": 7, "end": 12, "focused": True,
                          "thread": "draft in the thread"}, "the typed answers after the rename")
        # and it still sends what was typed
        d.keys("\ue010", "\ue007")
        deadline = time.time() + 8
        while not show_topic(c, q, room)["topic"]["answer"]:
            assert time.time() < deadline, "the answer never reached the server"
            time.sleep(0.1)
        assert_eq(show_topic(c, q, room)["topic"]["answer"], {"text": "Faster topic loading, fewer lost drafts", "by": "rita"}, "the answer")
    finally:
        d.s("DELETE", "/window")
        d.switch(c.alice_tab)



def step_topics_top_bar(d, c):
    # The topics panel has its own top-bar control: a button named "Topics", reached by Tab,
    # that opens the rail at the topics panel and moves focus there; at 375 px Esc closes
    # the rail and gives focus back to it. axe finds nothing serious, light and dark.
    room = retry_room(c)
    tab = open_rita(d, c, room)
    try:
        assert_eq(d.js("const b = document.getElementById('tb-topics'); return b && [b.tagName, b.textContent.trim(), b.tabIndex, b.closest('.topbar') !== null]"),
                  ["BUTTON", "Topics", 0, True], "a topics button in the top bar")
        for (w, h) in ((375, 740), (1280, 800)):
            d.viewport(w, h, mobile=(w < 500))
            time.sleep(0.2)
            if w < 500:
                d.wait_for("return !document.body.classList.contains('rail-open')", what="the rail closed at 375 px")
                assert not visible(d, "#topics"), "the panel is hidden until asked for"
            assert visible(d, "#tb-topics"), "the button shows at %d px" % w
            check_layout(d, "top bar %dx%d" % (w, h))
            # by keyboard: Tab from the search button, then Enter
            d.js("document.getElementById('tb-search').focus()")
            d.keys("\ue004")
            assert_eq(d.js("return document.activeElement.id"), "tb-topics", "Tab reaches the topics button")
            d.keys("\ue007")
            d.wait_for("return document.activeElement && document.activeElement.id === 'topics'", what="focus in the topics panel")
            assert visible(d, "#topics") and visible(d, "#topics-filter"), "the topics panel shows"
            top = d.js("const r = document.getElementById('topics').getBoundingClientRect(); return [r.top, r.bottom, innerHeight]")
            assert 0 <= top[0] < top[2] / 2, "the panel is scrolled into view: %r" % top
            assert_eq(d.js("return document.scrollingElement.scrollTop"), 0, "only the rail scrolls")
            check_layout(d, "topics from the top bar %dx%d" % (w, h))
            if w < 500:
                for scheme in ("light", "dark"):
                    d.color_scheme(scheme)
                    time.sleep(0.2)
                    d.screenshot("topics-top-bar-%dx%d-%s" % (w, h, scheme))
                    axe_check(d, "topics from the top bar %dx%d %s" % (w, h, scheme))
                d.color_scheme(None)
                d.keys("\ue00c")
                d.wait_for("return !document.body.classList.contains('rail-open')", timeout=3, what="Esc closes the rail")
                assert_eq(d.js("return document.activeElement.id"), "tb-topics", "focus back on the topics button")
    finally:
        d.color_scheme(None)
        d.viewport(1280, 800)
        d.s("DELETE", "/window")
        d.switch(c.alice_tab)


TOPIC_STEPS = [
    step_topics_panel,
    step_topic_live,
    step_topic_question_cards,
    step_topic_ask_cli,
    step_topic_ask_mcp,
    step_topic_search,
    step_topic_layout,
    step_topics_load_retry,
    step_topic_rename_keeps_answer,
    step_topics_top_bar,
]
