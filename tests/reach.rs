//! SPEC §8.1 and §8.3 end to end: declared reach on /join and /profile with its error
//! codes, the host's requested reach on /invite and in the card, what /status observes
//! (`reachable_now`), the wake report endpoint, and `@all`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn reach_of(r: &TestRoom, alias: &str) -> Value {
    r.roster_entry(alias)
}

#[test]
fn reach_is_declared_on_join_and_profile_with_its_errors() {
    let r = TestRoom::start("reach-declare");
    let a = r.invite_http("alpha", "agent");
    let t = Some(a.token.as_str());
    let e = reach_of(&r, "alpha");
    assert_eq!(e["reach"], "manual", "{e}");
    assert_eq!(e["reach_requested"], Value::Null, "{e}");
    assert_eq!(e["reachable_now"], false, "{e}");
    assert_eq!(e["last_woken_at"], Value::Null, "{e}");
    assert_eq!(e["wake_failing"], 0, "{e}");

    let (s, v) = r.post("/join", t, &json!({"reach": "wake"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(reach_of(&r, "alpha")["reach"], "wake");
    assert_eq!(
        reach_of(&r, "alpha")["reachable_now"],
        false,
        "a declaration alone never makes anyone reachable"
    );

    assert_error(
        r.post("/join", t, &json!({"reach": "sometimes"})),
        400,
        "invalid_reach",
    );
    assert_error(
        r.post("/profile", t, &json!({"reach": "telepathy"})),
        400,
        "invalid_reach",
    );
    assert_error(
        r.post("/profile", t, &json!({"reach": "poll"})),
        400,
        "invalid_body",
    );
    for bad in [4, 3601, 0] {
        assert_error(
            r.post(
                "/profile",
                t,
                &json!({"reach": "poll", "poll_every_s": bad}),
            ),
            400,
            "invalid_body",
        );
    }
    assert_error(r.post("/profile", t, &json!({})), 400, "invalid_body");
    assert_error(
        r.post("/profile", t, &json!({"poll_every_s": 60})),
        400,
        "invalid_body",
    );

    let (s, v) = r.post("/profile", t, &json!({"reach": "poll", "poll_every_s": 5}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["reach"], "poll", "{v}");
    let e = reach_of(&r, "alpha");
    assert_eq!(
        (e["reach"].clone(), e["poll_every_s"].clone()),
        (json!("poll"), json!(5)),
        "{e}"
    );
    assert_eq!(
        e["reachable_now"], true,
        "a poller that just asked is reachable: {e}"
    );

    let (s, v) = r.post(
        "/profile",
        t,
        &json!({"display_name": "Alpha A", "reach": "live"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["display_name"], "Alpha A");
    assert_eq!(v["reach"], "live");
    // A display name alone still works as before.
    let (s, v) = r.post("/profile", t, &json!({"display_name": "Alpha B"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["reach"], "live");

    // Stored in participants.json and loaded again after a restart.
    let parts =
        std::fs::read_to_string(r.home.room_dir(&r.room).join("participants.json")).unwrap();
    assert!(
        parts.contains("\"reach\": \"live\"") || parts.contains("\"reach\":\"live\""),
        "{parts}"
    );
}

#[test]
fn a_poller_is_reachable_only_within_twice_its_period() {
    let r = TestRoom::start("reach-poll");
    let a = r.invite_http("poller", "agent");
    let m = r.invite_http("manual", "agent");
    let (s, _) = r.post(
        "/join",
        Some(&a.token),
        &json!({"reach": "poll", "poll_every_s": 5}),
    );
    assert_eq!(s, 200);
    r.post("/join", Some(&m.token), &json!({}));
    assert_eq!(reach_of(&r, "poller")["reachable_now"], true);
    assert_eq!(reach_of(&r, "manual")["reach"], "manual");
    assert_eq!(reach_of(&r, "manual")["reachable_now"], false);
    std::thread::sleep(Duration::from_millis(10_300));
    assert_eq!(
        reach_of(&r, "poller")["reachable_now"],
        false,
        "10 s after its last request a 5 s poller is overdue"
    );
    r.get("/messages?since_id=0", Some(&a.token));
    assert_eq!(reach_of(&r, "poller")["reachable_now"], true);
}

#[test]
fn invite_requests_a_reach_and_the_card_says_how() {
    let r = TestRoom::start("reach-invite");
    let (s, v) = r.post(
        "/invite",
        Some(&r.token),
        &json!({"alias": "rev", "kind": "agent", "reach": "wake"}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["reach_requested"], "wake", "{v}");
    assert_error(
        r.post(
            "/invite",
            Some(&r.token),
            &json!({"alias": "x2", "reach": "often"}),
        ),
        400,
        "invalid_reach",
    );
    let e = reach_of(&r, "rev");
    assert_eq!(e["reach_requested"], "wake", "{e}");
    assert_eq!(e["reach"], "manual", "{e}");
    let card = r
        .request(Req::get("/card?participant=rev").token(v["token"].as_str().unwrap()))
        .text();
    assert!(card.contains("## How you will be reached"), "{card}");
    assert!(card.contains("agentgather wake --exec"), "{card}");

    // The CLI: --reach on invite, and status warns while the declaration is weaker.
    let v = r.cli_json(&["room", "invite", "liver", "--reach", "live", "--json"]);
    assert_eq!(v["reach_requested"], "live", "{v}");
    let card = r.cli_json(&["room", "invite-card", "liver", "--json"]);
    assert!(
        card["card"]
            .as_str()
            .unwrap()
            .contains("agentgather attend"),
        "{card}"
    );
    let text = stdout(&r.cli(&["room", "status"]));
    assert!(text.contains("REACH"), "{text}");
    assert!(
        text.contains("warning: liver declared reach manual but the host asked for live"),
        "{text}"
    );
    assert!(
        text.contains("warning: rev declared reach manual but the host asked for wake"),
        "{text}"
    );
}

#[test]
fn a_held_wait_makes_a_participant_reachable_and_attend_declares_live() {
    let r = TestRoom::start("reach-live");
    let inv = r.invite("agent-a", "agent");
    let home = inv.join_home("reach-live-a", &["--json"]);
    let mut attend = command(&home, &["attend", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = reach_of(&r, "agent-a");
        if e["reach"] == "live" && e["reachable_now"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "attend never showed live and reachable: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = stdout(&r.cli(&["room", "status"]));
    assert!(text.contains("● live"), "{text}");
    attend.kill().unwrap();
    attend.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reach_of(&r, "agent-a")["reachable_now"] != false {
        assert!(
            Instant::now() < deadline,
            "a dead attend still looks reachable"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        reach_of(&r, "agent-a")["reach"],
        "live",
        "the declaration stays"
    );
}

#[test]
fn cli_join_declares_reach() {
    let r = TestRoom::start("reach-join-cli");
    let inv = r.invite("pol", "agent");
    let home = TempHome::new("reach-join-cli-a");
    let uri = inv.json["invite_uri"].as_str().unwrap();
    let o = cli(
        &home,
        &[
            "room",
            "join",
            uri,
            "--reach",
            "poll",
            "--poll-every",
            "120",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = reach_of(&r, "pol");
    assert_eq!(
        (e["reach"].clone(), e["poll_every_s"].clone()),
        (json!("poll"), json!(120)),
        "{e}"
    );
    let o = cli(
        &home,
        &["room", "join", uri, "--reach", "poll", "--poll-every", "2"],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a period out of range is a usage error"
    );
    let o = cli(&home, &["room", "join", uri, "--reach", "sometimes"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn wake_reports_set_last_woken_and_failing() {
    let r = TestRoom::start("reach-wake-report");
    let a = r.invite_http("w", "agent");
    let t = Some(a.token.as_str());
    let (s, v) = r.post("/wake", t, &json!({"event": "started"}));
    assert_eq!(s, 200, "{v}");
    assert!(v["last_woken_at"].is_string(), "{v}");
    r.post("/wake", t, &json!({"event": "failed"}));
    let (_, v) = r.post("/wake", t, &json!({"event": "failed"}));
    assert_eq!(v["wake_failing"], 2, "{v}");
    let e = reach_of(&r, "w");
    assert_eq!(e["wake_failing"], 2, "{e}");
    assert!(e["last_woken_at"].is_string(), "{e}");
    r.post("/wake", t, &json!({"event": "succeeded"}));
    assert_eq!(reach_of(&r, "w")["wake_failing"], 0);
    assert_error(
        r.post("/wake", t, &json!({"event": "dreamt"})),
        400,
        "invalid_body",
    );
    assert_error(
        r.post("/wake", None, &json!({"event": "started"})),
        401,
        "unauthorized",
    );
}

#[test]
fn at_all_from_the_host_or_a_human_mentions_everyone_but_the_sender() {
    let r = TestRoom::start("reach-at-all");
    let a = r.invite_http("ann", "agent");
    let b = r.invite_http("bob", "agent");
    let h = r.invite_http("hum", "human");
    let gone = r.invite_http("gone", "agent");
    let (s, _) = r.post("/remove", Some(&r.token), &json!({"alias": "gone"}));
    assert_eq!(s, 200);
    let _ = gone;
    let m = |tok: &str, text: &str| -> Vec<String> {
        let mut v: Vec<String> = r.say(tok, text)["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(m(&r.token, "@all please look"), ["ann", "bob", "hum"]);
    assert_eq!(m(&h.token, "hey @all"), ["ann", "bob", "operator"]);
    assert!(m(&a.token, "@all from an agent is plain text").is_empty());
    assert_eq!(m(&a.token, "@all and @bob"), ["bob"]);
    assert!(m(&r.token, "in code `@all` is not a mention").is_empty());
    let _ = b;
}

#[test]
fn the_mcp_adapter_declares_live() {
    let r = TestRoom::start("reach-mcp");
    let inv = r.invite("mcp-agent", "agent");
    let home = inv.join_home("reach-mcp-a", &[]);
    let mut mcp = command(&home, &["mcp"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reach_of(&r, "mcp-agent")["reach"] != "live" {
        assert!(
            Instant::now() < deadline,
            "agentgather mcp never declared live"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        reach_of(&r, "mcp-agent")["reachable_now"],
        false,
        "declared live, but reachable only while a room_wait is held"
    );
    mcp.kill().unwrap();
    mcp.wait().unwrap();
}

/// Inside a wake turn (the runner sets `AGENTGATHER_WAKE_IDS`) the agent may start
/// `agentgather mcp` (the `claude-mcp` recipe): the participant stays `wake`, since it does
/// not listen live between turns.
#[test]
fn the_mcp_adapter_inside_a_wake_turn_leaves_reach_wake() {
    use std::io::{BufRead, BufReader, Write};
    let r = TestRoom::start("reach-mcp-wake");
    let inv = r.invite("woken", "agent");
    let home = inv.join_home("reach-mcp-wake-a", &["--reach", "wake"]);
    assert_eq!(reach_of(&r, "woken")["reach"], "wake");
    let mut mcp = command(&home, &["mcp"])
        .env("AGENTGATHER_WAKE_IDS", "1")
        .env("AGENTGATHER_SINCE_ID", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The handshake's answer: the adapter is up, past where it would declare its reach
    // (a loopback request of a few milliseconds, given half a second more).
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "reach-test", "version": "1"}}});
    let mut stdin = mcp.stdin.take().unwrap();
    writeln!(stdin, "{init}").unwrap();
    let mut line = String::new();
    BufReader::new(mcp.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("\"serverInfo\""),
        "no initialize answer: {line}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        reach_of(&r, "woken")["reach"],
        "wake",
        "agentgather mcp in a wake turn declared another reach"
    );
    mcp.kill().unwrap();
    mcp.wait().unwrap();
}

/// One room with every kind of reach, each run by the real process that provides it:
/// /status must say what is declared, what the host asked for, and what is observed.
#[test]
fn status_tells_the_truth_about_every_kind_of_reach() {
    let r = TestRoom::start("reach-truth");
    // Invited with what the host asks for, joined with the CLI in a home of its own.
    let join = |alias: &str, reach: &str| -> (TempHome, String) {
        let v = r.cli_json(&[
            "room", "invite", alias, "--kind", "agent", "--reach", reach, "--json",
        ]);
        let home = TempHome::new(&format!("reach-truth-{alias}"));
        let o = cli(&home, &["room", "join", v["invite_uri"].as_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        (home, v["token"].as_str().unwrap().to_string())
    };
    let (live_home, _) = join("liver", "live");
    let (wake_home, _) = join("waker", "wake");
    let (_poll_home, poll_tok) = join("poller", "poll");
    let (_short_home, short_tok) = join("short", "live");
    let manual = r.invite_http("manual", "agent");
    r.post("/join", Some(&manual.token), &json!({}));
    let (s, v) = r.post(
        "/profile",
        Some(&poll_tok),
        &json!({"reach": "poll", "poll_every_s": 30}),
    );
    assert_eq!(s, 200, "{v}");
    // Asked for live, declares poll: weaker than requested.
    let (s, v) = r.post(
        "/profile",
        Some(&short_tok),
        &json!({"reach": "poll", "poll_every_s": 60}),
    );
    assert_eq!(s, 200, "{v}");

    let quiet = |c: &mut std::process::Command| {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    };
    let mut attend = command(&live_home, &["attend", "--json"]);
    quiet(&mut attend);
    let mut attend = attend.spawn().unwrap();
    // The runner's turn: marks its start, holds for 4 s, marks its end.
    let dir = wake_home.root.display().to_string();
    let exec = format!("touch {dir}/turn-started; sleep 4; touch {dir}/turn-done");
    let mut runner = command(&wake_home, &["wake", "--exec", &exec, "--json"]);
    quiet(&mut runner);
    let mut runner = runner.spawn().unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (l, w) = (reach_of(&r, "liver"), reach_of(&r, "waker"));
        if l["reachable_now"] == true && w["reachable_now"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "attend and the wake runner never both looked reachable: {l} {w}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // (alias, reach, reach_requested, reachable_now, weaker than requested)
    let want = [
        ("liver", "live", json!("live"), true, false),
        ("waker", "wake", json!("wake"), true, false),
        ("poller", "poll", json!("poll"), true, false),
        ("short", "poll", json!("live"), true, true),
        ("manual", "manual", Value::Null, false, false),
    ];
    let rank = |r: &Value| {
        ["manual", "poll", "wake", "live"]
            .iter()
            .position(|x| r == x)
    };
    for (alias, reach, requested, now, weaker) in &want {
        let e = reach_of(&r, alias);
        assert_eq!(e["reach"], *reach, "{e}");
        assert_eq!(e["reach_requested"], *requested, "{e}");
        assert_eq!(e["reachable_now"], *now, "{e}");
        assert_eq!(
            rank(&e["reach"]) < rank(&e["reach_requested"]) && !e["reach_requested"].is_null(),
            *weaker,
            "{e}"
        );
    }
    let text = stdout(&r.cli(&["room", "status"]));
    assert!(
        text.contains("warning: short declared reach poll but the host asked for live"),
        "{text}"
    );
    assert_eq!(
        text.matches("warning:").count(),
        1,
        "only the weaker declaration warns: {text}"
    );

    // A running turn: the runner keeps its wait held, so it stays reachable throughout.
    let mention = r.say(&r.token, "@waker take a look");
    let started = wake_home.root.join("turn-started");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the turn never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        let e = reach_of(&r, "waker");
        assert_eq!(
            (e["reachable_now"].clone(), e["waiting"].clone()),
            (json!(true), json!(true)),
            "reachable while the turn of #{} runs: {e}",
            mention["id"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = wake_home.root.join("turn-done");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done.exists() {
        assert!(Instant::now() < deadline, "the turn never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = reach_of(&r, "waker");
    assert!(e["last_woken_at"].is_string(), "{e}");

    // Killed (SIGKILL, no goodbye): unreachable within a bounded time; the declaration stays.
    std::thread::sleep(Duration::from_millis(300));
    runner.kill().unwrap();
    runner.wait().unwrap();
    let killed = Instant::now();
    while reach_of(&r, "waker")["reachable_now"] != false {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "a killed wake runner still looks reachable after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "bench: killed wake runner -> reachable_now false in {} ms",
        killed.elapsed().as_millis()
    );
    let e = reach_of(&r, "waker");
    assert_eq!(e["reach"], "wake", "{e}");
    assert_eq!(reach_of(&r, "liver")["reachable_now"], true);
    attend.kill().unwrap();
    attend.wait().unwrap();
}
