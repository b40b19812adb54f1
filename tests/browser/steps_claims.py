"""Browser-room steps for claims (SPEC §13, issue 24): the claims panel in the rail lists
live claims (who, what, until when, note) and follows an agent's claim and release live
through the one /wait, the roster shows each person's claim count, a claim row in the
timeline is one compact line, and the page stays axe-clean with claims shown."""

from harness import assert_eq, ensure_host_tab
from steps_access import axe_check

JS_CLAIMS = """
return [...document.querySelectorAll('#claims-list .cl-item')].map(li => ({
  id: Number(li.dataset.claimId), by: li.dataset.by, who: li.querySelector('.cl-who').textContent,
  paths: [...li.querySelectorAll('.cl-path')].map(p => p.textContent),
  until: li.querySelector('.cl-until').textContent,
  note: (li.querySelector('.cl-note') || {}).textContent || ''}));
"""

JS_BADGE = """
const b = document.querySelector('#roster li[data-alias="' + arguments[0] + '"] .cl-count');
return b && !b.hidden ? b.textContent : '';
"""


def step_claims_live(d, c):
    ensure_host_tab(d, c)
    d.switch(c.host_tab)
    d.viewport(1280, 900)
    d.js("window.__noReload = 1")
    assert d.js("return !!document.getElementById('claims')"), "a claims panel in the rail"
    d.click("#tab-claims")
    d.wait_for("return !document.getElementById('claims').hidden", what="the claims tab shown")
    before = len(d.js(JS_CLAIMS))
    # An agent claims over HTTP: the panel, the roster count and a compact timeline row follow.
    st, v = c.room.api("POST", "claims", c.curly["token"],
                       {"paths": ["src/web/**", "docs/claims.md"], "ttl": "45m", "note": "reworking <b>the rail</b>"})
    assert st == 201, (st, v)
    cid = v["claim"]["id"]
    d.wait_for("return [...document.querySelectorAll('#claims-list .cl-item')].some(li => Number(li.dataset.claimId) === arguments[0])",
               cid, timeout=8, what="the claim listed live")
    got = [x for x in d.js(JS_CLAIMS) if x["id"] == cid][0]
    assert_eq(got["by"], "curly", "holder")
    assert_eq(got["paths"], ["src/web/**", "docs/claims.md"], "paths")
    assert "until" in got["until"] and "left" in got["until"], got
    assert_eq(got["note"], "reworking <b>the rail</b>", "the note as text, never HTML")
    assert_eq(len(d.js(JS_CLAIMS)), before + 1, "one more claim")
    d.wait_for("const b = document.querySelector('#roster li[data-alias=\"curly\"] .cl-count'); return b && !b.hidden",
               timeout=8, what="curly's claim count in the roster")
    assert_eq(d.js(JS_BADGE, "curly"), "1 claim", "roster count")
    row = d.wait_for("const r = document.getElementById('m' + arguments[0]); return r && r.classList.contains('compact') ? r.textContent : null",
                     cid, timeout=8, what="the compact claim row")
    assert "src/web/**" in row, row
    assert_eq(d.js("return document.querySelector('#m' + arguments[0] + ' .cl-who').title", cid), "@curly", "the holder named")
    assert not d.js("return !!document.querySelector('#claims-list b, #rows b')"), "no markup from a note"
    axe_check(d, "claims panel")
    d.screenshot("claims-panel")
    # A second claim, then the first released: each change shows without a reload.
    st, v = c.room.api("POST", "claims", c.curly["token"], {"paths": ["README.md"], "exclusive": False})
    assert st == 201, (st, v)
    d.wait_for("return document.querySelector('#roster li[data-alias=\"curly\"] .cl-count').textContent === '2 claims'",
               timeout=8, what="two claims in the roster")
    second = v["claim"]["id"]
    st, v = c.room.api("POST", "claims/%d/release" % cid, c.curly["token"], {})
    assert st == 201, (st, v)
    d.wait_for("return ![...document.querySelectorAll('#claims-list .cl-item')].some(li => Number(li.dataset.claimId) === arguments[0])",
               cid, timeout=8, what="the released claim gone live")
    assert_eq(d.js(JS_BADGE, "curly"), "1 claim", "roster count after the release")
    # Releasing the last one leaves the list empty again and hides the count.
    st, v = c.room.api("POST", "claims/%d/release" % second, c.curly["token"], {})
    assert st == 201, (st, v)
    d.wait_for("return !document.getElementById('claims-empty').hidden", timeout=8, what="no live claims")
    assert_eq(d.js(JS_BADGE, "curly"), "", "no count without claims")
    assert_eq(d.js("return window.__noReload"), 1, "no reload")


CLAIM_STEPS = [step_claims_live]
