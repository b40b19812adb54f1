//! SPEC §10 on the curl path (issue 21, points 1–10): plain-text posts, own messages in
//! `/wait`, the token printed once, the card's examples, compact status, the served
//! port, `concerns_you` and the answers after close; and a new agent that follows its
//! card from the first line with nothing but a shell and curl.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn wait_path(alias: &str, since: u64, timeout_ms: u64) -> String {
    format!("/wait?participant={alias}&since_id={since}&timeout_ms={timeout_ms}")
}

/// A plain-text post of `body` to `path` as `token`.
fn post_plain(r: &TestRoom, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let resp = r.request(
        Req::post(path)
            .token(token)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.to_vec()),
    );
    (resp.status, resp.json())
}

/// Runs `script` in `sh` with `HOME` at `home` and the working directory `dir`.
fn sh(home: &std::path::Path, dir: &std::path::Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .env("HOME", home)
        .current_dir(dir)
        .output()
        .expect("run sh")
}

fn card_of(r: &TestRoom, token: &str, alias: &str) -> String {
    r.request(Req::get(&format!("/card?participant={alias}")).token(token))
        .text()
}

/// The card's command lines of the curl section, in order (indented, not prose).
fn curl_section_commands(card: &str) -> Vec<String> {
    let start = card.find("## Take part with curl").expect("a curl section");
    let rest = &card[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end]
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn plain_text_posts_are_stored_byte_for_byte() {
    let r = TestRoom::start("plain-post");
    let bob = r.invite_http("bob", "agent");
    let text = "Review of `parse()`:\n  - \"quotes\" and 'single' ones\n  - regex ^\\d+(\\.\\d+)?$ and $HOME\n  - é ✓ 漢字\n\n```\n{\"json\": true}\n```\n";
    let (s, v) = post_plain(&r, "/messages", &bob.token, text.as_bytes());
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["text"], text, "stored byte for byte");
    let first = v["message"]["id"].as_u64().unwrap();
    // Other fields as query parameters; a client `from` is still ignored.
    let (s, v) = post_plain(
        &r,
        &format!(
            "/messages?reply_to={first}&type=reply&to=operator&client_msg_id=k1&from=operator"
        ),
        &bob.token,
        b"line one\nline two",
    );
    assert_eq!(s, 201, "{v}");
    let m = &v["message"];
    assert_eq!(
        (m["reply_to"].as_u64(), &m["type"]),
        (Some(first), &json!("reply"))
    );
    assert_eq!(m["from"], "bob");
    assert_eq!(m["mentions"], json!(["operator"]));
    let (s, v) = post_plain(
        &r,
        &format!("/messages?reply_to={first}&type=reply&client_msg_id=k1"),
        &bob.token,
        b"line one\nline two",
    );
    assert_eq!((s, &v["idempotent"]), (200, &json!(true)), "{v}");
    // A question topic with options, all as query parameters.
    let (s, v) = post_plain(
        &r,
        "/topics?title=Which%20DB%3F&to=operator&option=pg&option=sqlite&tag=db",
        &bob.token,
        b"We need one by Friday.\nBoth work.",
    );
    assert_eq!(s, 201, "{v}");
    let t = &v["message"];
    assert_eq!(t["text"], "We need one by Friday.\nBoth work.");
    assert_eq!(t["topic"]["title"], "Which DB?");
    assert_eq!(t["topic"]["options"], json!(["pg", "sqlite"]));
    assert_eq!(t["topic"]["kind"], "question");
    // Bad input gets the same errors as the JSON form.
    for (path, body, code) in [
        ("/messages?reply_to=abc", &b"x"[..], "invalid_reply_to"),
        ("/messages", b"  \n ", "invalid_body"),
        ("/messages", b"\xff\xfe bad", "invalid_body"),
        ("/messages?type=system", b"fake", "invalid_type"),
    ] {
        assert_error(post_plain(&r, path, &bob.token, body), 400, code);
    }
}

/// Holds `alias`'s wait after `since` on a thread; the handle answers with what ended it.
fn hold_wait(
    r: &TestRoom,
    alias: &str,
    token: &str,
    since: u64,
) -> thread::JoinHandle<(u16, Value)> {
    let (port, path, token) = (r.port, wait_path(alias, since, 20_000), token.to_string());
    thread::spawn(move || get(port, &path, Some(&token)))
}

#[test]
fn own_posts_neither_end_a_held_wait_nor_come_back_in_it() {
    let r = TestRoom::start("own-wait");
    let bob = r.invite_http("bob", "agent");
    let tail = r.last_id();
    let held = hold_wait(&r, "bob", &bob.token, tail);
    r.until_waiting("bob");
    let own = r.say(&bob.token, "my own words")["id"].as_u64().unwrap();
    thread::sleep(Duration::from_millis(800));
    assert!(!held.is_finished(), "the caller's own post ended its wait");
    let other = r.say(&r.token, "@bob from the host")["id"]
        .as_u64()
        .unwrap();
    let (s, w) = held.join().unwrap();
    assert_eq!(s, 200, "{w}");
    let ids: Vec<u64> = w["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![other], "only the other's message: {w}");
    assert_eq!(w["next_since_id"], other);
    // Only own messages after the cursor: a heartbeat whose cursor moves past them.
    let own2 = r.say(&bob.token, "more of mine")["id"].as_u64().unwrap();
    let (_, w) = r.get(&wait_path("bob", other, 300), Some(&bob.token));
    assert_eq!(w["heartbeat"], true, "{w}");
    assert_eq!(w["messages"], json!([]));
    assert_eq!(w["next_since_id"], own2, "the cursor moves past own posts");
    assert!(
        w["next_cmd"]
            .as_str()
            .unwrap()
            .contains(&format!("since_id={own2}"))
    );
    // include_own=1 keeps the old behaviour.
    let (_, w) = r.get(
        &format!("/wait?participant=bob&since_id={tail}&include_own=1"),
        Some(&bob.token),
    );
    let ids: Vec<u64> = w["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![own, other, own2], "{w}");
    // /messages is unchanged: everyone reads everything.
    let (_, page) = r.get(&format!("/messages?since_id={tail}"), Some(&bob.token));
    assert_eq!(page["messages"].as_array().unwrap().len(), 3);
    // A note to oneself (an own post that @mentions oneself) ends a held wait and is in it.
    let held = hold_wait(&r, "bob", &bob.token, own2);
    r.until_waiting("bob");
    let note = r.say(&bob.token, "@bob remember the migration")["id"]
        .as_u64()
        .unwrap();
    let (_, w) = held.join().unwrap();
    assert_eq!(w["messages"][0]["id"], note, "{w}");
    assert_eq!(w["mentioned"], true, "{w}");
}

#[test]
fn the_token_appears_only_in_the_card_and_next_cmd_runs_after_its_set_up_step() {
    if !curl_or_skip("the_token_appears_only_in_the_card_and_next_cmd_runs_after_its_set_up_step") {
        return;
    }
    let r = TestRoom::start("token-once");
    let bob = r.invite_http("bob", "agent");
    let card = card_of(&r, &bob.token, "bob");
    assert!(card.contains(&bob.token));
    // No other answer carries the raw token.
    r.say(&r.token, "@bob hello");
    let answers = [
        r.post("/join", Some(&bob.token), &json!({})).1,
        r.get(&wait_path("bob", 0, 300), Some(&bob.token)).1,
        r.get("/messages?since_id=0", Some(&bob.token)).1,
        r.get("/status", Some(&bob.token)).1,
        r.get("/status?compact=1", Some(&bob.token)).1,
        r.get("/profile", Some(&bob.token)).1,
        r.get("/topics", Some(&bob.token)).1,
        r.post("/messages", Some(&bob.token), &json!({"text": "hi"}))
            .1,
    ];
    for a in &answers {
        assert!(a["ok"] == true, "{a}");
        assert!(!a.to_string().contains(&bob.token), "the token leaked: {a}");
    }
    // The card's set-up step, in a fresh HOME, then next_cmd verbatim.
    let home = TempHome::new("token-once-agent");
    let setup = curl_section_commands(&card)
        .into_iter()
        .next()
        .expect("a first step");
    assert!(setup.contains(&bob.token), "{setup}");
    let o = sh(&home.root, &home.root, &setup);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = home
        .root
        .join(".agentgather-curl")
        .join(format!("{}.bob", r.room));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let dir_mode = std::fs::metadata(file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let (_, w) = r.get(&wait_path("bob", 0, 300), Some(&bob.token));
    let next = w["next_cmd"].as_str().unwrap();
    assert!(!next.contains(&bob.token), "{next}");
    let next = next.replace("/wait?", "/wait?timeout_ms=300&");
    let o = sh(&home.root, &home.root, &next);
    assert!(o.status.success(), "{next}: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{next} printed no JSON ({e}): {}", stdout(&o)));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["participant"], "bob");
    // The card says how to do without the file.
    assert!(card.contains("If you cannot write files"), "{card}");
}

#[test]
fn the_cards_reply_example_never_names_a_system_row() {
    let r = TestRoom::start("card-reply");
    let bob = r.invite_http("bob", "agent");
    // Only system rows so far: no runnable reply line, the card says where ids come from.
    let card = card_of(&r, &bob.token, "bob");
    assert!(
        !curl_section_commands(&card)
            .iter()
            .any(|c| c.contains("reply_to")),
        "{card}"
    );
    assert!(card.contains("reply_to=ID"), "{card}");
    let said = r.say(&r.token, "please review")["id"].as_u64().unwrap();
    r.invite_http("carol", "agent");
    let (s, _) = r.post("/remove", Some(&r.token), &json!({"alias": "carol"}));
    assert_eq!(s, 200);
    let last = r.last_message();
    assert_eq!(last["type"], "system", "{last}");
    let card = card_of(&r, &bob.token, "bob");
    let reply = curl_section_commands(&card)
        .into_iter()
        .find(|c| c.contains("reply_to"))
        .expect("a reply line");
    assert!(reply.contains(&format!("reply_to={said}&")), "{reply}");
    // Mentions, questions with options and the compact status are on the card.
    assert!(card.contains("in backticks"), "{card}");
    assert!(card.contains("/topics?to=operator&title="), "{card}");
    assert!(card.contains("option="), "{card}");
    assert!(card.contains("/status?compact=1"), "{card}");
}

#[test]
fn compact_status_is_smaller_and_leaves_out_removed_participants() {
    let r = TestRoom::start("compact");
    for a in ["a1", "a2", "a3"] {
        r.invite_http(a, "agent");
    }
    let (s, _) = r.post("/remove", Some(&r.token), &json!({"alias": "a2"}));
    assert_eq!(s, 200);
    let full = r.status(&r.token);
    let (s, compact) = r.get("/status?compact=1", Some(&r.token));
    assert_eq!(s, 200, "{compact}");
    assert!(compact.to_string().len() * 2 < full.to_string().len());
    let aliases: Vec<&str> = compact["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["operator", "a1", "a3"]);
    let p = &compact["participants"][1];
    for k in ["alias", "kind", "reach", "reachable_now", "attention"] {
        assert!(p.get(k).is_some(), "{k} missing: {p}");
    }
    assert_eq!(compact["room_status"], "open");
    assert!(full.to_string().contains("\"a2\""));
    // The CLI's --compact is the same answer.
    let v = r.cli_json(&["room", "status", "--compact", "--json"]);
    assert_eq!(v["participants"].as_array().unwrap().len(), 3, "{v}");
    let o = r.cli(&["room", "status", "--compact"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stdout(&o));
}

#[test]
fn concerns_you_flags_replies_and_comments_on_your_topic() {
    let r = TestRoom::start("concerns");
    let bob = r.invite_http("bob", "agent");
    let mine = r.say(&bob.token, "my proposal")["id"].as_u64().unwrap();
    // A reply to bob, with no @: concerns bob.
    let (_, v) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "agreed", "reply_to": mine}),
    );
    assert_eq!(v["message"]["mentions"], json!([]));
    let (_, w) = r.get(&wait_path("bob", mine, 300), Some(&bob.token));
    assert_eq!(
        (&w["mentioned"], &w["concerns_you"]),
        (&json!(false), &json!(true)),
        "{w}"
    );
    let cursor = w["next_since_id"].as_u64().unwrap();
    // Something for nobody in particular: no flag.
    r.say(&r.token, "lunch break");
    let (_, w) = r.get(&wait_path("bob", cursor, 300), Some(&bob.token));
    assert_eq!(w["concerns_you"], false, "{w}");
    let cursor = w["next_since_id"].as_u64().unwrap();
    // A comment on bob's topic concerns bob.
    let (_, t) = r.post(
        "/topics",
        Some(&bob.token),
        &json!({"title": "API shape", "text": "thoughts?"}),
    );
    let topic = t["message"]["id"].as_u64().unwrap();
    let (s, _) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "looks fine", "topic_id": topic}),
    );
    assert_eq!(s, 201);
    let (_, w) = r.get(&wait_path("bob", cursor, 300), Some(&bob.token));
    assert_eq!(
        w["messages"].as_array().unwrap().len(),
        1,
        "own topic skipped: {w}"
    );
    assert_eq!(w["concerns_you"], true, "{w}");
}

#[test]
fn room_serve_on_another_port_moves_a_stored_loopback_url() {
    let home = TempHome::new("serve-port");
    let first = free_port();
    start_room(&home, "moved", first, &[]);
    let port = free_port();
    let server = Server::spawn(&home, port, &[]);
    let said = std::fs::read_to_string(&server.log).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    assert!(said.contains(&format!("it is now {url}")), "{said}");
    let inv = cli_json(&home, &["room", "invite", "bob", "--json"]);
    assert!(
        inv["card_command"].as_str().unwrap().contains(&url),
        "{inv}"
    );
    let token = inv["token"].as_str().unwrap();
    let (_, w) = get(port, &wait_path("bob", 0, 300), Some(token));
    assert!(w["next_cmd"].as_str().unwrap().contains(&url), "{w}");
    drop(server);
    // A public URL is left alone.
    let home = TempHome::new("serve-public");
    let first = free_port();
    start_room(&home, "public", first, &[]);
    let room = cli_json(&home, &["room", "current", "--json"]);
    assert_eq!(room["room"], "public");
    let port = free_port();
    let server = Server::spawn(&home, port, &["--url", "https://room.example.test"]);
    drop(server);
    let server = Server::spawn(&home, port, &[]);
    let said = std::fs::read_to_string(&server.log).unwrap();
    assert!(!said.contains("it is now"), "{said}");
    assert!(said.contains("https://room.example.test"), "{said}");
}

#[test]
fn after_close_wait_says_how_things_are_and_leave_appends_nothing() {
    let r = TestRoom::start("after-close");
    let bob = r.invite_http("bob", "agent");
    let carol = r.invite_http("carol", "agent");
    let tail = r.last_id();
    let held = hold_wait(&r, "bob", &bob.token, tail);
    r.until_waiting("bob");
    let (s, _) = r.post("/remove", Some(&r.token), &json!({"alias": "carol"}));
    assert_eq!(s, 200);
    let (_, w) = held.join().unwrap();
    let cursor = w["next_since_id"].as_u64().unwrap();
    let held = hold_wait(&r, "bob", &bob.token, cursor);
    r.until_waiting("bob");
    let (s, _) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200);
    let (_, w) = held.join().unwrap();
    assert_eq!(w["room_status"], "closed", "{w}");
    assert_eq!(
        w["participant_status"], "left",
        "never active after close: {w}"
    );
    assert_eq!(w["keep_waiting"], false);
    let (_, w) = r.get(&wait_path("carol", 0, 300), Some(&carol.token));
    assert_eq!(w["participant_status"], "removed", "{w}");
    let before = read_log_lines(&r.log_path()).len();
    let (s, v) = r.post("/leave", Some(&bob.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["room_status"], "closed", "{v}");
    assert_eq!(
        read_log_lines(&r.log_path()).len(),
        before,
        "leave appended to a closed room"
    );
}

/// Issue 21's acceptance: a new agent with only a shell and curl follows its card from
/// the first line: sets up, joins, asks a question with options, gets it answered,
/// posts a multi-line reply and leaves, writing no JSON by hand.
#[test]
fn a_new_agent_follows_its_card_with_curl_alone() {
    if !curl_or_skip("a_new_agent_follows_its_card_with_curl_alone") {
        return;
    }
    let r = TestRoom::start("new-agent");
    let inv = r.invite("newbie", "agent");
    r.say(
        &r.token,
        "Welcome: read the brief, then ask me what you need.",
    );
    let home = TempHome::new("new-agent-home");
    std::fs::create_dir_all(&home.root).unwrap();
    let run = |cmd: &str| -> Value {
        let o = sh(&home.root, &home.root, cmd);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{cmd} printed no JSON ({e}): {}", stdout(&o)))
    };
    // The card, from the command the host handed over.
    let o = sh(
        &home.root,
        &home.root,
        inv.json["card_command"].as_str().unwrap(),
    );
    assert!(o.status.success());
    let card = stdout(&o);
    let cmds = curl_section_commands(&card);
    let find = |needle: &str| -> String {
        cmds.iter()
            .find(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in the card: {card}"))
            .clone()
    };
    // 1. Set up, exactly the card's first line.
    let o = sh(&home.root, &home.root, &cmds[0]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 2. Join.
    assert_eq!(run(&find("/join"))["participant"], "newbie");
    // 3. Ask the host a question with options: the card's two lines, as printed.
    let write_q = cmds
        .iter()
        .position(|c| c.contains("> question.txt"))
        .expect("the question's text line");
    let o = sh(&home.root, &home.root, &cmds[write_q]);
    assert!(o.status.success());
    let asked = run(&cmds[write_q + 1]);
    let topic = asked["message"]["id"].as_u64().unwrap();
    let options = asked["message"]["topic"]["options"].clone();
    assert!(options.as_array().unwrap().len() >= 2, "{asked}");
    assert_eq!(asked["message"]["mentions"], json!(["operator"]));
    // 4. Wait as the card says, then follow next_cmd; the host answers meanwhile.
    let first = options[0].as_str().unwrap().to_string();
    let is_answer = |m: &Value| m["type"] == "topic_update" && m["topic_id"] == topic;
    let w = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(500));
            r.cli_json(&[
                "topic",
                "answer",
                &topic.to_string(),
                "--option",
                &first,
                "--json",
            ])
        });
        let mut w = run(&find("/wait?"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !w["messages"].as_array().unwrap().iter().any(is_answer) {
            assert!(Instant::now() < deadline, "the answer never came: {w}");
            let next = w["next_cmd"].as_str().expect("next_cmd").to_string();
            assert!(!next.contains(&inv.token), "{next}");
            w = run(&next);
        }
        w
    });
    assert_eq!(w["concerns_you"], true, "{w}");
    let answer = w["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| is_answer(m))
        .unwrap();
    assert_eq!(answer["topic_update"]["answer"]["option"], first.as_str());
    let answer_id = answer["id"].as_u64().unwrap();
    // 5. A multi-line reply to the answer: the agent writes its text to reply.txt (as
    // the card's line before does) and runs the card's reply line with that id.
    let reply_text = "Thanks, going with that.\nPlan:\n  1. \"tests\" first\n  2. then `code`\n";
    std::fs::write(home.root.join("reply.txt"), reply_text).unwrap();
    let line = find("reply_to=");
    let at = line.find("reply_to=").unwrap() + "reply_to=".len();
    let end = at + line[at..].find('&').unwrap();
    let line = format!("{}{answer_id}{}", &line[..at], &line[end..]);
    let posted = run(&line);
    assert_eq!(posted["message"]["text"], reply_text, "{posted}");
    assert_eq!(posted["message"]["reply_to"], answer_id);
    assert_eq!(posted["message"]["from"], "newbie");
    // 6. Compact status, then leave.
    let st = run(&find("/status?compact=1"));
    assert!(
        st["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["alias"] == "newbie")
    );
    let left = run(&find("/leave"));
    assert_eq!(left["attention"], "away", "{left}");
    assert!(
        r.all_messages()
            .iter()
            .any(|m| m["text"].as_str() == Some("newbie left.")),
    );
}
