//! SPEC §10 on the CLI path (issue 21, points 8 and 11–16): `say` and `send all`, the
//! one cursor rule, `watch --timeout` and `--concerning`, text from a file or stdin,
//! the exit codes at close, `attend --json` lines, and the smaller help fixes.

mod common;

use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A room with an agent `bob` joined through the CLI in its own home.
fn room_with_bob(tag: &str) -> (TestRoom, Invite, TempHome) {
    let r = TestRoom::start(tag);
    let bob = r.invite("bob", "agent");
    let home = bob.join_home(&format!("{tag}-bob"), &[]);
    (r, bob, home)
}

fn ids(v: &Value) -> Vec<u64> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

fn cursor(home: &TempHome) -> u64 {
    cli_json(home, &["room", "current", "--json"])["cursor"]
        .as_u64()
        .unwrap()
}

#[test]
fn say_posts_to_everyone_and_send_all_depends_on_who_sends() {
    let (r, _bob, home) = room_with_bob("cli-say");
    let v = cli_json(&home, &["say", "tests", "pass", "on", "main", "--json"]);
    assert_eq!(v["message"]["text"], "tests pass on main");
    assert_eq!(v["message"]["mentions"], json!([]));
    assert_eq!(v["message"]["from"], "bob");
    // `send all` from an agent is an error naming `say`, and posts nothing.
    let before = r.last_id();
    let o = cli(&home, &["send", "all", "hello everyone"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("agentgather say"), "{}", stderr(&o));
    assert_eq!(r.last_id(), before);
    // From the host it is @all: everyone but the sender is mentioned.
    let v = r.cli_json(&["send", "all", "wrapping up", "--json"]);
    assert_eq!(v["message"]["text"], "@all wrapping up");
    assert_eq!(v["message"]["mentions"], json!(["bob"]));
    let o = cli(&home, &["say", "--help"]);
    assert!(stdout(&o).contains("Examples:"), "{}", stdout(&o));
}

#[test]
fn one_cursor_rule_messages_never_moves_it() {
    let (r, _bob, home) = room_with_bob("cli-cursor");
    cli_json(&home, &["read", "--json"]);
    let start = cursor(&home);
    let a = r.say(&r.token, "first")["id"].as_u64().unwrap();
    let b = r.say(&r.token, "second")["id"].as_u64().unwrap();
    let o = cli(&home, &["messages", "--since", &start.to_string()]);
    assert!(
        stdout(&o).contains("did not move your read cursor"),
        "{}",
        stdout(&o)
    );
    cli_json(
        &home,
        &["messages", "--after", &start.to_string(), "--json"],
    );
    assert_eq!(cursor(&home), start, "messages moved the cursor");
    let w = cli_json(&home, &["watch", "--json"]);
    assert_eq!(ids(&w), vec![a, b], "watch after messages shows them once");
    assert_eq!(cursor(&home), b);
    let w = cli_json(&home, &["watch", "--timeout", "1s", "--json"]);
    assert_eq!(ids(&w), Vec::<u64>::new(), "{w}");
    // The rule is stated where agents look.
    let help = stdout(&cli(&home, &["--help"]));
    assert!(help.contains("`messages` never does"), "{help}");
    let instructions = stdout(&cli(&home, &["instructions"]));
    assert!(
        instructions.contains("`messages` never does"),
        "{instructions}"
    );
    assert!(instructions.contains("in backticks"), "{instructions}");
}

#[test]
fn watch_timeout_returns_on_someone_elses_post_only() {
    let (r, bob, home) = room_with_bob("cli-watch");
    cli_json(&home, &["read", "--json"]);
    let child = command(&home, &["watch", "--timeout", "60s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    r.until_waiting("bob");
    // A heartbeat (here: the held wait superseded by another of bob's) and bob's own
    // post do not end it.
    let (_, hb) = r.get(
        "/wait?participant=bob&since_id=999999&timeout_ms=50",
        Some(&bob.token),
    );
    assert_eq!(hb["heartbeat"], true, "{hb}");
    cli_json(&home, &["say", "my own words", "--json"]);
    r.until_waiting("bob");
    thread::sleep(Duration::from_millis(500));
    let mut child = child;
    assert!(child.try_wait().unwrap().is_none(), "watch ended early");
    let other = r.say(&r.token, "from the host")["id"].as_u64().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&w), vec![other], "{w}");
    assert_eq!(w["heartbeat"], false);
    // D passing with nothing new: a heartbeat, exit 0.
    let t = Instant::now();
    let w = cli_json(&home, &["watch", "--timeout", "2s", "--json"]);
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        (&w["heartbeat"], &w["keep_waiting"]),
        (&json!(true), &json!(true)),
        "{w}"
    );
}

#[test]
fn watch_concerning_waits_for_what_concerns_you() {
    let (r, _bob, home) = room_with_bob("cli-concerning");
    let mine = cli_json(&home, &["say", "proposal: use sqlite", "--json"])["message"]["id"]
        .as_u64()
        .unwrap();
    cli_json(&home, &["read", "--json"]);
    let child = command(
        &home,
        &["watch", "--timeout", "60s", "--concerning", "--json"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    r.until_waiting("bob");
    let noise = r.say(&r.token, "unrelated chatter")["id"].as_u64().unwrap();
    r.until_waiting("bob");
    thread::sleep(Duration::from_millis(300));
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "ended on a message for no one"
    );
    let (s, v) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "agreed", "reply_to": mine}),
    );
    assert_eq!(s, 201, "{v}");
    let reply = v["message"]["id"].as_u64().unwrap();
    let out = child.wait_with_output().unwrap();
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["concerns_you"], true, "{w}");
    assert_eq!(w["mentioned"], false);
    assert_eq!(ids(&w), vec![noise, reply], "nothing passed unseen");
    assert_eq!(cursor(&home), reply);
}

#[test]
fn text_comes_from_a_file_or_standard_input() {
    let (r, _bob, home) = room_with_bob("cli-file");
    let text = "Review:\n- \"quoted\" and 'single'\n- $(not run) `code`";
    let file = home.root.join("review.md");
    std::fs::write(&file, format!("{text}\n")).unwrap();
    let f = file.to_str().unwrap();
    let piped = |args: &[&str]| -> Value {
        let out = cli_stdin(&home, args, text.as_bytes());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = cli_json(&home, &["say", "--file", f, "--json"]);
    assert_eq!(v["message"]["text"], text);
    let v = piped(&["say", "-", "--json"]);
    assert_eq!(v["message"]["text"], text);
    let v = cli_json(&home, &["send", "operator", "--file", f, "--json"]);
    assert_eq!(v["message"]["text"], format!("@operator {text}"));
    let id = v["message"]["id"].as_u64().unwrap().to_string();
    let v = piped(&["reply", &id, "--file", "-", "--json"]);
    assert_eq!(v["message"]["text"], text);
    let t = r.cli_json(&["topic", "new", "Plan", "--text", "ideas?", "--json"]);
    let topic = t["message"]["id"].as_u64().unwrap().to_string();
    let v = cli_json(&home, &["topic", "comment", &topic, "--file", f, "--json"]);
    assert_eq!(v["message"]["text"], text);
    assert_eq!(v["message"]["topic_id"], topic.parse::<u64>().unwrap());
    let o = cli(&home, &["topic", "comment", &topic, "--file", f]);
    assert!(
        stdout(&o).contains(&format!("on topic #{topic}")),
        "{}",
        stdout(&o)
    );
    let v = cli_json(
        &home,
        &[
            "ask",
            "operator",
            "Which one?",
            "--option",
            "a",
            "--option",
            "b",
            "--file",
            f,
            "--json",
        ],
    );
    assert_eq!(v["message"]["text"], text);
    // Words and a file at once, or nothing at all: a clear refusal.
    let o = cli(&home, &["say", "words", "--file", f]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = cli(&home, &["say"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--file"), "{}", stderr(&o));
}

#[test]
fn exit_codes_at_close_follow_one_rule() {
    let (r, _bob, home) = room_with_bob("cli-close");
    let help = stdout(&cli(&home, &["--help"]));
    assert!(help.contains("a write to a closed room"), "{help}");
    r.cli_json(&["room", "close", "--json"]);
    for args in [
        &["say", "hello"][..],
        &["send", "operator", "hello"],
        &["reply", "1", "hello"],
    ] {
        let o = cli(&home, args);
        assert_eq!(o.status.code(), Some(6), "{args:?}: {}", stderr(&o));
    }
    let o = cli(&home, &["watch", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let w: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w["room_status"], "closed");
    let o = cli(&home, &["watch", "--timeout", "30s", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = cli(&home, &["attend", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\"room_status\":\"closed\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn attend_json_lines_carry_the_fields_of_watch_json() {
    let (r, _bob, home) = room_with_bob("cli-attend");
    cli_json(&home, &["read", "--json"]);
    let child = command(&home, &["attend", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    r.until_waiting("bob");
    r.say(&r.token, "@bob first");
    r.until_waiting("bob");
    r.cli_json(&["room", "close", "--json"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let batch = lines
        .iter()
        .find(|l| l["messages"].as_array().is_some_and(|m| !m.is_empty()))
        .expect("a batch line");
    let (r2, _b2, home2) = room_with_bob("cli-attend-watch");
    r2.say(&r2.token, "@bob hi");
    let w = cli_json(&home2, &["watch", "--json"]);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(batch), keys(&w), "attend: {batch}\nwatch: {w}");
    assert_eq!(batch["mentioned"], true);
}

#[test]
fn smaller_points_help_join_and_aliases() {
    let r = TestRoom::start("cli-small");
    let bob = r.invite("bob", "agent");
    let home = TempHome::new("cli-small-bob");
    let uri = bob.json["invite_uri"].as_str().unwrap();
    let o = cli(&home, &["room", "join", uri]);
    let text = stdout(&o);
    assert!(text.contains("watch --timeout"), "{text}");
    assert!(text.contains("attend"), "{text}");
    let help = stdout(&cli(&home, &["topic", "--help"]));
    assert!(help.contains("Topic ids are message ids"), "{help}");
    let o = cli(&home, &["messages", "--after", "0", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
