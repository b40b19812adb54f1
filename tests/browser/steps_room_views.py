"""Browser-room steps for the third pass (issue 26): full display names everywhere, a
topic's body inside its card and updates as one line, the mobile drawer's scrim and the
one-row top bar, the code Copy button beside (not over) the code, the hover actions, the
first visit naming the room and the inviter, the host inviting, editing the brief and
removing someone from the browser, the truth after close, and a gallery of the main views
(both themes, both widths) for CI to keep."""

import time

from harness import (
    JS_UNSAFE_DOM,
    assert_eq,
    check_layout,
    ensure_host_tab,
    http,
    open_as,
    row_by_text,
    visible,
    wait_room,
)
from steps_access import axe_check

LONG_NAME = "Samantha Rivera-Montgomery Okonkwo"

# The box of `sel` and whether its text is cut (wider than its box).
JS_BOX = """
const e = document.querySelector(arguments[0]);
if (!e) return null;
const r = e.getBoundingClientRect();
return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height, cut: e.scrollWidth > e.clientWidth + 1, w: innerWidth, h: innerHeight};
"""

JS_OVERLAP = """
const a = document.querySelector(arguments[0]).getBoundingClientRect(), b = document.querySelector(arguments[1]).getBoundingClientRect();
return a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
"""


def tap(d, x, y):
    """A real pointer click at a point of the viewport."""
    d.s("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
        {"type": "pointerMove", "origin": "viewport", "x": int(x), "y": int(y)},
        {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}]})


def shoot(d, name, label):
    """A screenshot and an axe-core check of what is on screen, light and dark."""
    for scheme in ("light", "dark"):
        d.color_scheme(scheme)
        time.sleep(0.2)
        d.screenshot("%s-%s" % (name, scheme))
        axe_check(d, "%s %s" % (label, scheme))
    d.color_scheme(None)


def both_widths(d):
    for (w, h) in ((1280, 800), (375, 740)):
        d.viewport(w, h, mobile=(w < 500))
        time.sleep(0.3)
        yield w, h
    d.viewport(1280, 800)
    time.sleep(0.2)


def step_names_and_cards(d, c):
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    c.sam = c.room.invite("sam", "human")
    st, v = c.room.api("POST", "profile", c.sam["token"], {"display_name": LONG_NAME})
    assert st == 200, (st, v)
    st, v = c.room.api("POST", "join", c.sam["token"], {})
    assert st == 200, (st, v)
    said = c.room.post(c.sam["token"], "a line from someone with a long name")
    rid = row_by_text(d, "a line from someone with a long name")
    assert_eq(rid, said["id"], "the row")
    # The join line names sam by display name, the alias in its tooltip.
    join = d.wait_for("const r = [...document.querySelectorAll('#rows .row.system')].find(r => r.textContent.includes('joined') && r.querySelector('.who-ref[data-alias=\"sam\"]'));"
                      " return r && [r.querySelector('.text').textContent, r.querySelector('.who-ref').title];", what="sam's join line")
    assert_eq(join, [LONG_NAME + " joined.", "@sam"], "a system line uses the display name")
    # A topic with a body: the body is inside the card. A question answered: one line.
    st, v = c.room.api("POST", "topics", c.curly["token"], {"title": "Soak time", "text": "How long should the **soak** run?", "kind": "question",
                                                              "options": ["run longer", "ship now"], "to": "sam"})
    assert st == 201, (st, v)
    tid = v["message"]["id"]
    d.wait_for("return !!document.querySelector('#m' + arguments[0] + ' .tc .text strong')", tid, what="the body inside the card")
    assert_eq(d.js("return document.querySelector('#m%d .tc .text').textContent" % tid), "How long should the soak run?", "card body")
    assert_eq(d.js("return document.querySelectorAll('#m%d .body > .text').length" % tid), 0, "no body under the card")
    st, v = c.room.api("POST", "topics/%d/answer" % tid, c.sam["token"], {"option": "run longer"})
    assert st in (200, 201), (st, v)
    uid = v["message"]["id"]
    d.wait_for("return !!document.getElementById('m' + arguments[0])", uid, what="the update row")
    line = d.js("const r = document.getElementById('m%d'); return [r.classList.contains('compact'), r.querySelector('.text').textContent]" % uid)
    assert line[0], "an update is a compact row"
    assert_eq(line[1], "%s answered \u201crun longer\u201d on #%d Soak time" % (LONG_NAME, tid), "the update's one line")
    for w, h in both_widths(d):
        d.js("document.getElementById('m%d').scrollIntoView({block: 'center'})" % rid)
        who = d.js(JS_BOX, "#m%d .who" % rid)
        assert_eq(d.js("return document.querySelector('#m%d .who').textContent" % rid), LONG_NAME, "full name")
        assert not who["cut"] and who["right"] <= who["w"], "the long name is fully visible at %d px: %r" % (w, who)
        # the line itself (a read receipt may hang under the row and make the row taller)
        upd = d.js(JS_BOX, "#m%d .text" % uid)
        if w > 500:
            assert upd["height"] < 30, "the update is one line at %d px: %r" % (w, upd)
        check_layout(d, "names and cards %d" % w)
        shoot(d, "names-and-cards-%dx%d" % (w, h), "names and cards %d" % w)
    c.soak_topic = tid


def step_hover_actions(d, c):
    d.switch(c.alice_tab)
    m = c.room.post(c.curly["token"], "quote me: `make soak`")
    d.wait_for("return !!document.getElementById('m' + arguments[0])", m["id"], what="the row")
    d.js("document.getElementById('m%d').scrollIntoView({block: 'center'})" % m["id"])
    assert_eq(d.js("return getComputedStyle(document.querySelector('#m%d .acts')).opacity" % m["id"]), "0", "actions hidden until hover")
    d.s("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "actions": [
        {"type": "pointerMove", "origin": {"element-6066-11e4-a52e-4f735466cecf": d.find("#m%d .body" % m["id"])}, "x": 0, "y": 0}]}]})
    d.wait_for("return getComputedStyle(document.querySelector('#m%d .acts')).opacity === '1'" % m["id"], what="actions on hover")
    names = d.js("return [...document.querySelectorAll('#m%d .acts button')].map(b => b.title)" % m["id"])
    assert_eq(names, ["Reply", "Copy link", "Quote"], "hover actions")
    assert not d.js(JS_OVERLAP, "#m%d .acts" % m["id"], "#m%d .text" % m["id"]), "the actions are not over the text"
    d.screenshot("hover-actions-1280x800")
    d.click("#m%d .act-quote" % m["id"])
    name = d.js("return document.querySelector('#m%d .who').textContent" % m["id"])
    assert_eq(d.js("return document.getElementById('input').value"), "> %s: quote me: make soak\n\n" % name, "quoted into the composer")
    d.clear("#input")
    d.js("document.getElementById('input').dispatchEvent(new Event('input'))")
    # A link to a message (#msg=N) carries no token and shows that message.
    d.click("#m%d .act-link" % m["id"])
    d.wait_for("return !document.getElementById('toast').hidden && document.getElementById('toast').textContent.includes('#%d')" % m["id"], what="the link toast")
    d.js("document.getElementById('timeline').scrollTop = 0; location.hash = 'msg=%d'" % m["id"])
    d.wait_for("return document.getElementById('m%d').classList.contains('flash')" % m["id"], what="the linked message shown")
    assert_eq(d.js("return location.hash"), "", "the link's fragment is cleared")


def step_mobile_drawer_and_code(d, c):
    ensure_host_tab(d, c)
    d.switch(c.host_tab)
    m = c.room.post(c.curly["token"], "```sh\n" + "echo " + "x" * 120 + " && make check\n```")
    d.wait_for("return !!document.querySelector('#m%d pre.code-block')" % m["id"], what="the code row")
    for w, h in both_widths(d):
        top = d.js(JS_BOX, ".topbar")
        assert top["height"] <= 48, "the host's top bar is one row at %d px: %r" % (w, top)
        d.js("document.querySelector('#m%d pre').scrollIntoView({block: 'center'})" % m["id"])
        assert not d.js(JS_OVERLAP, "#m%d .copy" % m["id"], "#m%d pre.code-block" % m["id"]), "Copy is not over the code at %d px" % w
        if w < 500:
            assert not visible(d, "#rail") and not visible(d, "#scrim"), "drawer closed"
            d.click("#tb-people")
            assert visible(d, "#rail") and visible(d, "#scrim"), "the drawer and its scrim"
            # The scrim covers the chat: what is under a point of the timeline is the scrim.
            hit = d.js("const e = document.elementFromPoint(8, innerHeight / 2); return e && e.id")
            assert_eq(hit, "scrim", "the scrim covers the timeline")
            op = d.js("return getComputedStyle(document.getElementById('scrim')).backgroundColor")
            assert op.startswith("rgba") and float(op.split(",")[3].strip(" )")) >= 0.4, op
            shoot(d, "drawer-%dx%d" % (w, h), "drawer")
            tap(d, 8, h / 2)
            assert not visible(d, "#rail") and not visible(d, "#scrim"), "a tap on the scrim closes the drawer"
        check_layout(d, "host %d" % w)


def step_first_visit(d, c):
    nora = c.room.invite("nora", "human")
    st, v = c.room.api("GET", "profile", nora["token"])
    assert_eq(v.get("invited_by"), "operator", "the profile names the inviter")
    tab = d.new_tab()
    try:
        for w, h in both_widths(d):
            open_as(d, c, nora["browser_url"])
            d.wait_for("return !document.getElementById('namer-screen').hidden && document.getElementById('namer-invite').textContent", what="the first visit")
            title = d.js("return document.getElementById('namer-title').textContent")
            assert_eq(title, "You're invited to " + c.room.name, "names the room")
            inv = d.js("return document.getElementById('namer-invite').textContent")
            assert "Olivia Operator (@operator)" in inv and "invited you" in inv, inv
            brief = d.js("return document.getElementById('namer-brief').textContent")
            assert brief and "<" not in brief and "#" not in brief, "the brief's first line as text: %r" % brief
            check_layout(d, "first visit %d" % w)
            shoot(d, "first-visit-%dx%d" % (w, h), "first visit %d" % w)
    finally:
        d.s("DELETE", "/window")
        d.switch(c.alice_tab)


def step_host_invites_edits_removes(d, c):
    ensure_host_tab(d, c)
    d.switch(c.host_tab)
    d.viewport(1280, 800)
    # Invite a person: the link is shown once, and it opens the room for them.
    d.click("#btn-invite")
    d.wait_for("return document.activeElement && document.activeElement.id === 'inv-alias'", what="the invite form")
    d.type("#inv-alias", "pia")
    d.click("#inv-create")
    link = d.wait_for("return !document.getElementById('inv-result').hidden && document.getElementById('inv-secret').value", what="the invite link")
    assert link.startswith(c.room.url + "/#token=tgl_"), link
    d.screenshot("host-invite-1280x800")
    axe_check(d, "host invite")
    st, v = c.room.api("GET", "status", c.room.host_token)
    pia = [p for p in v["participants"] if p["alias"] == "pia"]
    assert pia and pia[0]["kind"] == "human", v["participants"]
    d.click("#inv-done")
    assert_eq(d.js("return document.getElementById('inv-secret').value"), "", "the token leaves the page when done")
    assert not visible(d, "#invite-form"), "form closed"
    tab = d.new_tab()
    open_as(d, c, link)
    d.wait_for("return !document.getElementById('namer-screen').hidden", what="the invite opens the room for pia")
    d.type("#namer-input", "Pia Park")
    d.click("#namer-submit")
    wait_room(d)
    st, v = http("GET", c.room.url + "/profile", token=link.split("#token=")[1])
    assert_eq(v.get("display_name"), "Pia Park", "pia joined with her link")
    d.s("DELETE", "/window")
    d.switch(c.host_tab)
    # Invite an agent: the card command.
    d.click("#invite-open")
    d.type("#inv-alias", "builder")
    d.js("document.getElementById('inv-kind').value = 'agent'")
    d.click("#inv-create")
    cmd = d.wait_for("return !document.getElementById('inv-result').hidden && document.getElementById('inv-secret').value", what="the card command")
    assert "curl" in cmd and "builder" in cmd and "tgl_" in cmd, cmd
    st, v = http("GET", c.room.url + "/card?participant=builder&token=" + cmd.split("token=")[1].rstrip("'"))
    assert st == 200, (st, v)
    d.click("#inv-done")
    # Edit the brief: Markdown, a preview, saved as a new version.
    st, v = c.room.api("GET", "brief", c.room.host_token)
    before = v["brief"]["brief_version"]
    d.click("#tb-brief")
    d.click("#brief-edit-btn")
    d.clear("#be-text")
    d.type("#be-text", "# Launch review v3\nShip on **Friday**.")
    d.click("#be-preview-btn")
    assert_eq(d.js("return [...document.querySelectorAll('#be-preview strong')].map(x => x.textContent)"), ["Friday"], "the preview renders")
    d.screenshot("host-brief-preview-1280x800")
    axe_check(d, "brief editor")
    d.click("#be-save")
    d.wait_for("return document.getElementById('brief-editor').hidden && document.getElementById('brief-body').textContent.includes('Ship on Friday')", what="the saved brief")
    st, v = c.room.api("GET", "brief", c.room.host_token)
    assert_eq((v["brief"]["brief_version"], v["brief"]["body"]), (before + 1, "# Launch review v3\nShip on **Friday**."), "the brief saved")
    # Remove someone: two presses.
    d.click("#tb-people")
    if not visible(d, "#people"):
        d.click("#tab-people")
    d.wait_for("return !!document.querySelector('.person-remove[data-remove=\"builder\"]')", what="builder's remove button")
    d.click('.person-remove[data-remove="builder"]')
    st, v = c.room.api("GET", "status", c.room.host_token)
    assert not [p for p in v["participants"] if p["alias"] == "builder"][0]["removed"], "one press does not remove"
    d.click('.person-remove[data-remove="builder"]')
    d.wait_for("return !document.querySelector('#roster [data-alias=\"builder\"]')", what="builder gone from the list")
    st, v = c.room.api("GET", "status", c.room.host_token)
    assert [p for p in v["participants"] if p["alias"] == "builder"][0]["removed"], "builder removed on the server"
    assert_eq(d.js(JS_UNSAFE_DOM), [], "unsafe DOM")


def step_own_row_reachable(d, c):
    d.switch(c.alice_tab)
    if not visible(d, "#rail"):
        d.click("#tb-people")
    d.wait_for("const r = document.querySelector('#roster .person[data-alias=\"alice\"]'); return r && r.dataset.reachable === 'true'",
               timeout=12, what="alice's own row reachable while her page holds its /wait")
    text = d.js("return document.querySelector('#roster .person[data-alias=\"alice\"] .person-reach').textContent")
    assert "reachable now" in text and "not reachable" not in text, text


def step_truth_after_close(d, c):
    # Runs after the host closed the room: nothing on alice's page says anyone attends,
    # that a question waits for an answer, or that topics are open.
    d.switch(c.alice_tab)
    d.wait_for("return document.body.classList.contains('is-closed')", what="the closed room")
    d.wait_for("return !/attending/i.test(document.getElementById('roster').textContent + document.getElementById('people-count').textContent)",
               timeout=10, what="no attending after close")
    assert "room closed" in d.js("return document.getElementById('people-count').textContent")
    assert not d.js("return [...document.querySelectorAll('.tc-state')].some(s => /Waiting/.test(s.textContent))"), "no question waits"
    assert "open" not in d.js("return document.getElementById('topics-count').textContent"), "no open count"
    assert_eq(d.js("return [...document.querySelectorAll('#roster .person')].filter(p => p.dataset.reachable === 'true').length"), 0, "no one reachable")


def step_gallery(d, c):
    """The main views, light and dark, 1280 and 375 px, for the README and CI's artifacts."""
    ensure_host_tab(d, c)
    for tab, who in ((c.host_tab, "host"), (c.alice_tab, "guest")):
        d.switch(tab)
        for w, h in both_widths(d):
            if w < 500 and visible(d, "#rail"):
                tap(d, 8, h / 2)
            d.js("document.getElementById('timeline').scrollTop = 1e9")
            for scheme in ("light", "dark"):
                d.color_scheme(scheme)
                time.sleep(0.25)
                d.screenshot("gallery-%s-%dx%d-%s" % (who, w, h, scheme))
                if who == "host" and w > 500 and scheme == "light":
                    d.screenshot_scaled("readme-room-1280-light", 0.7)
            d.color_scheme(None)


# In the order they run (the last one after the host closed the room).
OPEN_ROOM_STEPS = [
    step_names_and_cards,
    step_hover_actions,
    step_mobile_drawer_and_code,
    step_first_visit,
    step_host_invites_edits_removes,
    step_own_row_reachable,
    step_gallery,
]
