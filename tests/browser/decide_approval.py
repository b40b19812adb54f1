#!/usr/bin/env python3
"""A person at the browser room, for tests outside the browser suite (tests/approvals_e2e.rs):
opens the room in headless Chromium as the participant of $AG_BROWSER_URL (an invite's
browser URL, `…/#token=…`, passed in the environment so the token is not in argv), waits
for the first approval card with Allow / Deny, optionally types a reason, clicks the button
like a person would, and waits until the card shows the decision.

    AG_BROWSER_URL=http://127.0.0.1:8787/#token=… decide_approval.py deny [reason]

Prints one JSON line {"ok": true, "id": N, "outcome": "..."} and exits 0; exits 3 with a
SKIP line when Chromium or chromedriver is missing; 1 on any failure."""

import json
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

from harness import ARTIFACTS, Driver, find_browser, log, visible, wait_room  # noqa: E402

CARD_WAIT_S = float(os.environ.get("AG_CARD_WAIT_S", "120"))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("allow", "deny"):
        log("usage: decide_approval.py allow|deny [reason]")
        return 2
    decision = sys.argv[1]
    reason = sys.argv[2] if len(sys.argv) > 2 else ""
    url = os.environ.get("AG_BROWSER_URL", "")
    if "#token=" not in url:
        log("AG_BROWSER_URL must be a browser URL with #token=")
        return 2
    chrome, chromedriver = find_browser()
    if not chrome or not chromedriver:
        print("SKIP: chromium or chromedriver not found", flush=True)
        return 3
    workdir = tempfile.mkdtemp(prefix="ag-decide-")
    d = None
    try:
        d = Driver(chrome, chromedriver, workdir)
        d.viewport(375, 740, mobile=True)  # a phone, as on the broker's public link
        d.get(url)
        d.wait_for("return !document.getElementById('namer-screen').hidden || !document.getElementById('room').hidden",
                   timeout=20, what="the name picker or the room")
        if visible(d, "#namer"):
            d.type("#namer-input", "Person At Phone")
            d.click("#namer-submit")
        wait_room(d, timeout=20)
        sel = "#rows .tc.ap .ap-btn[data-decide='%s']:not([disabled])" % decision
        card_id = d.wait_for(
            "const b = document.querySelector(arguments[0]); return b ? Number(b.closest('.tc').dataset.topic) : 0;",
            sel, timeout=CARD_WAIT_S, interval=0.2, what="an approval card with " + decision)
        card = "#rows .tc.ap[data-topic='%d']" % card_id
        d.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", card)
        if reason:
            d.type(card + " .ap-reason", reason)
        d.screenshot("e2e-approval-before-%s" % decision)
        d.click(card + " .ap-btn[data-decide='%s']" % decision)
        word = "Allowed" if decision == "allow" else "Denied"
        outcome = d.wait_for(
            "const o = document.querySelector(arguments[0] + ' .ap-outcome'); return o && o.textContent.includes(arguments[1]) ? o.textContent : '';",
            card, word, timeout=20, what="the card showing " + word)
        d.screenshot("e2e-approval-after-%s" % decision)
        print(json.dumps({"ok": True, "id": card_id, "outcome": outcome}), flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - one line for the calling test
        log("FAIL: %s" % e)
        try:
            if d:
                os.makedirs(ARTIFACTS, exist_ok=True)
                d.screenshot("FAILED-e2e-approval-%s" % decision)
        except Exception:
            pass
        return 1
    finally:
        if d:
            d.quit()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
