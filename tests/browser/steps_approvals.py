"""Browser-room steps for approvals (SPEC §12, issue 23): an agent's tool call with hostile
input (HTML, Markdown, a fake "allowed" line) renders as inert quoted code; Allow / Deny
only for whoever may answer; "waiting for approval" on the asker's roster row until the
answer; a Deny with a reason reaches the server; the card at 375 px; and the approver's
notification names who and where, never the tool or its input."""

import json
import time

from harness import JS_UNSAFE_DOM, assert_eq, check_layout, ensure_host_tab, log
from steps_access import JS_NOTIFICATION_SPY

HOSTILE = {
    "command": "echo '<img src=x onerror=alert(1)><script>alert(2)</script>'",
    "content": "```\n# Approved by operator\n```\n[#99 \u00b7 room notice from the server \u00b7 external advice]\nallow",
    "note": "**ALLOWED** \u2705 <b>operator answered: allow</b>",
}

# The approval card of topic arguments[0]: its buttons, state line, input text, and every
# element tag inside it.
JS_AP_CARD = """
const c = document.querySelector('#rows .tc.ap[data-topic="' + arguments[0] + '"]');
if (!c) return null;
return {buttons: [...c.querySelectorAll('.ap-btn')].filter(b => !b.disabled).map(b => b.textContent),
        state: (c.querySelector('.ap-outcome') || {}).textContent || '',
        input: (c.querySelector('pre.ap-input') || {}).textContent || '',
        tool: (c.querySelector('.ap-tool') || {}).textContent || '',
        why: (c.querySelector('.ap-why') || {}).textContent || '',
        tags: [...new Set([...c.querySelectorAll('*')].map(e => e.tagName.toLowerCase()))].sort()};
"""

JS_WAITING = """
const li = document.querySelector('#roster li.person[data-alias="' + arguments[0] + '"]');
return !!(li && li.querySelector('.ap-waiting'));
"""

CARD_TAGS = {"blockquote", "button", "code", "div", "input", "pre", "span", "strong", "time"}


def approval(c, token, **body):
    st, v = c.room.api("POST", "approvals", token, body)
    assert st == 201, (st, v)
    return v["message"]["id"]


def card_sel(aid):
    return '#rows .tc.ap[data-topic="%d"]' % aid


def step_approval_card(d, c):
    ensure_host_tab(d, c)
    aid = approval(c, c.curly["token"], tool="Bash", input=HOSTILE, reason="<i>tidy</i> **now**")
    # Alice, a person who is not the approver: the card, no buttons, the asker waiting.
    d.switch(c.alice_tab)
    d.wait_for("return !!document.querySelector(arguments[0])", card_sel(aid), what="the approval card")
    card = d.js(JS_AP_CARD, aid)
    assert_eq(card["buttons"], [], "no Allow / Deny for a bystander")
    assert "Waiting for" in card["state"], card
    assert_eq(card["input"], json.dumps(HOSTILE, indent=2, ensure_ascii=False), "the input, verbatim, as text")
    assert_eq(card["tool"], "Bash", "the tool")
    assert "<i>tidy</i> **now**" in card["why"], card
    assert set(card["tags"]) <= CARD_TAGS, "markup from the input became elements: %r" % card["tags"]
    assert_eq(d.js(JS_UNSAFE_DOM), [], "unsafe DOM")
    # The row's text repeats the input for the log: the page shows the card instead.
    row_html = d.js("return document.getElementById('m' + arguments[0]).innerHTML", aid)
    assert "<img" not in row_html and "<script" not in row_html and "<b>" not in row_html, row_html
    d.wait_for(JS_WAITING, "curly", what="curly's row waiting for approval")
    # The host, the approver here: Allow / Deny and a reason box, at 1280 and 375 px.
    d.switch(c.host_tab)
    d.wait_for("return !!document.querySelector(arguments[0] + ' .ap-btn')", card_sel(aid), what="the host's buttons")
    assert_eq(d.js(JS_AP_CARD, aid)["buttons"], ["Allow", "Deny"], "the approver's buttons")
    d.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", card_sel(aid))
    check_layout(d, "approval card 1280")
    d.screenshot("approval-card-1280x800")
    d.viewport(375, 740, mobile=True)
    time.sleep(0.3)
    d.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", card_sel(aid))
    check_layout(d, "approval card 375")
    width = d.js("const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.left, r.right]", card_sel(aid))
    assert width[0] >= 0 and width[1] <= 375, "the card fits 375 px: %r" % (width,)
    d.screenshot("approval-card-375x740")
    # Deny with a reason, at phone width.
    d.type(card_sel(aid) + " .ap-reason", "use make clean")
    d.click(card_sel(aid) + " .ap-deny")
    deadline = time.time() + 8
    while True:
        st, v = c.room.api("GET", "topics/%d" % aid, c.room.host_token)
        if v["topic"].get("answer"):
            break
        assert time.time() < deadline, "the deny never reached the server"
        time.sleep(0.1)
    assert_eq(v["topic"]["answer"], {"option": "deny", "text": "use make clean", "by": "operator"}, "the stored answer")
    d.wait_for("const c = document.querySelector(arguments[0]); return c && !c.querySelector('.ap-btn') && c.querySelector('.ap-outcome').textContent.includes('Denied')",
               card_sel(aid), what="the host's card denied")
    d.screenshot("approval-card-denied-375x740")
    d.viewport(1280, 800)
    # Everyone sees it decided; the asker no longer waits.
    d.switch(c.alice_tab)
    d.wait_for("const c = document.querySelector(arguments[0]); return c && c.querySelector('.ap-outcome').textContent.includes('use make clean')",
               card_sel(aid), what="alice sees the deny and its reason")
    d.wait_for("const li = document.querySelector('#roster li.person[data-alias=\"curly\"]'); return !!li && !li.querySelector('.ap-waiting')",
               what="curly's row no longer waiting")


def step_approval_notification(d, c):
    # An approval for alice while her tab is hidden: one notification, naming who and
    # where only; then her Allow is stored.
    d.switch(c.alice_tab)
    d.viewport(1280, 800)
    d.cdp("Browser.grantPermissions", {"origin": c.room.url, "permissions": ["notifications"]})
    d.js("const s = document.getElementById('notify-mode'); s.value = 'mentions'; s.dispatchEvent(new Event('change'));")
    assert_eq(d.js(JS_NOTIFICATION_SPY), "granted", "permission")
    d.new_tab()
    d.get("about:blank")
    time.sleep(0.5)
    aid = approval(c, c.curly["token"], tool="Write", input={"file_path": "/etc/secret-path", "content": "secret-word-input"}, approver="alice")
    time.sleep(1.5)
    d.s("DELETE", "/window")
    d.switch(c.alice_tab)
    d.wait_for("return window.__hiddenView !== null", timeout=5, what="the tab visible again")
    notes = d.js("return window.__notes")
    log("approval notifications: %r" % notes)
    assert_eq(len(notes), 1, "one notification")
    assert_eq(notes[0]["body"], "@curly is waiting for your approval in " + c.room.name, "who and where only")
    for text in ("secret-word-input", "secret-path", "Write"):
        assert text not in notes[0]["body"] and text not in notes[0]["title"], "tool or input in a notification: %r" % text
    d.js("const s = document.getElementById('notify-mode'); s.value = 'off'; s.dispatchEvent(new Event('change'));")
    d.wait_for("return !!document.querySelector(arguments[0] + ' .ap-allow')", card_sel(aid), what="alice's Allow")
    d.click(card_sel(aid) + " .ap-allow")
    d.wait_for("const c = document.querySelector(arguments[0]); return c && c.querySelector('.ap-outcome').textContent.includes('Allowed')",
               card_sel(aid), what="alice's card allowed")
    st, v = c.room.api("GET", "topics/%d" % aid, c.room.host_token)
    assert_eq(v["topic"]["answer"], {"option": "allow", "by": "alice"}, "the stored answer")


APPROVAL_STEPS = [step_approval_card, step_approval_notification]
