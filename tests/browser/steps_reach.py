"""Browser-room step for reach (SPEC §8): the people list shows each participant's declared
reach, a filled dot only when the server observes them reachable now, when they were last
woken, a failing wake runner, and a warning in words when the declared reach is weaker than
what the host asked for. Real processes hold the waits: `attend` and `agentgather wake`."""

import os
import signal
import subprocess
import time

from harness import Room, assert_eq, check_layout, log, open_as, wait_room
from steps_access import axe_check


JS_PEOPLE = """
const out = {};
for (const li of document.querySelectorAll('#roster .person')) {
  const dot = li.querySelector('.dot');
  const warn = li.querySelector('.reach-warn');
  out[li.dataset.alias] = {
    reach: li.dataset.reach, reachable: li.dataset.reachable,
    filled: dot.classList.contains('reach-now'), hollow: dot.classList.contains('reach-not'),
    line: (li.querySelector('.person-reach') || {}).textContent || '',
    warn: warn ? warn.textContent : null,
  };
}
return out;
"""


def _agent(room, workdir, alias, reach):
    """Invites `alias` asking for `reach` and joins it with the CLI in a home of its own."""
    v = room.cli("room", "invite", alias, "--kind", "agent", "--reach", reach, "--json")
    assert v.get("reach_requested") == reach, v
    home = os.path.join(workdir, "home-" + alias)
    os.makedirs(home, mode=0o700)
    env = dict(os.environ, AGENTGATHER_HOME=home)
    p = subprocess.run([room.ag, "room", "join", v["invite_uri"], "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return env, v["token"]


def _spawn(room, env, *args):
    return subprocess.Popen([room.ag, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _until_status(room, what, ok, timeout=15):
    deadline = time.time() + timeout
    while True:
        st, v = room.api("GET", "status", room.host_token)
        people = {p["alias"]: p for p in v.get("participants", [])}
        if st == 200 and ok(people):
            return people
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s: %r" % (what, people))
        time.sleep(0.1)


def step_reach_roster(d, c):
    workdir = os.path.join(c.workdir, "reach")
    os.makedirs(workdir)
    room = Room(c.room.ag, workdir)
    c.rooms.append(room)
    procs = []
    try:
        live_env, _ = _agent(room, workdir, "live-agent", "live")
        wake_env, _ = _agent(room, workdir, "waker", "wake")
        dead_env, dead_tok = _agent(room, workdir, "dead-waker", "wake")
        _, poll_tok = _agent(room, workdir, "poller", "poll")
        _, short_tok = _agent(room, workdir, "shortfall", "wake")
        manual = room.invite("manual-bot", "agent")
        procs.append(_spawn(room, live_env, "attend"))
        procs.append(_spawn(room, wake_env, "wake", "--exec", "true"))
        dead = _spawn(room, dead_env, "wake", "--exec", "true")
        procs.append(dead)
        for tok, body in ((poll_tok, {"reach": "poll", "poll_every_s": 60}), (short_tok, {}), (manual["token"], {})):
            st, v = room.api("POST", "join", tok, body)
            assert st == 200, (st, v)
        _until_status(room, "the live and wake runners", lambda p: all(
            p[a]["reachable_now"] for a in ("live-agent", "waker", "dead-waker")))
        # One runner's turns are reported woken and failing, then it dies (SIGKILL).
        for event in ("started", "failed", "started", "failed"):
            st, v = room.api("POST", "wake", dead_tok, {"event": event})
            assert st == 200, (st, v)
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        _until_status(room, "the dead runner to look unreachable", lambda p: not p["dead-waker"]["reachable_now"])

        st, v = room.api("POST", "profile", room.host_token, {"display_name": "Reach Host"})
        assert st == 200, (st, v)
        tab = d.handle()
        d.switch(d.new_tab())
        open_as(d, c, room.url + "/#token=" + room.host_token)
        wait_room(d)
        want = {
            "live-agent": ("live", True, None),
            "waker": ("wake", True, None),
            "dead-waker": ("wake", False, None),
            "poller": ("poll", True, None),
            "manual-bot": ("manual", False, None),
            "shortfall": ("manual", False, "Warning: declared manual, the host asked for wake"),
        }

        def settled():
            got = d.js(JS_PEOPLE)
            ok = all(a in got and got[a]["reach"] == r and got[a]["reachable"] == ("true" if n else "false")
                     for a, (r, n, _) in want.items())
            return got if ok else None
        # One snapshot of the list is checked whole: the next /status redraw may catch a
        # live agent between two of its waits.
        deadline = time.time() + 15
        got = settled()
        while not got:
            assert time.time() < deadline, "the roster never showed every reach: %r" % d.js(JS_PEOPLE)
            time.sleep(0.2)
            got = settled()
        for alias, (reach, now, warn) in want.items():
            g = got[alias]
            assert_eq(g["filled"], now, "%s: a filled dot only when reachable now" % alias)
            assert_eq(g["hollow"], not now, "%s: a hollow dot when not reachable" % alias)
            assert ("reach: " + reach) in g["line"], (alias, g)
            assert (("reachable now" in g["line"]) and ("not reachable now" not in g["line"])) == now, (alias, g)
            assert_eq(g["warn"], warn, "%s: the warning" % alias)
        assert "every 60s" in got["poller"]["line"], got["poller"]
        assert "woken " in got["dead-waker"]["line"] and "wake failing ×2" in got["dead-waker"]["line"], got["dead-waker"]
        assert "woken" not in got["waker"]["line"], got["waker"]
        assert got["operator"]["warn"] is None, got["operator"]
        d.js("document.getElementById('roster').scrollIntoView()")
        check_layout(d, "reach roster 1280")
        d.screenshot("reach-roster-1280x800")
        for scheme in ("light", "dark"):
            d.color_scheme(scheme)
            time.sleep(0.2)
            axe_check(d, "reach roster %s" % scheme)
        d.color_scheme(None)
        log("      reach roster: %s" % ", ".join("%s=%s/%s" % (a, got[a]["reach"], got[a]["reachable"]) for a in want))
        d.switch(tab)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
