//! SPEC §9.1 topics and §9.2 search end to end: every endpoint and error code, the
//! permissions, wake-ups, restarts and old logs, against the real binary on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn open_topic(r: &TestRoom, token: &str, body: Value) -> Value {
    let (s, v) = r.post("/topics", Some(token), &body);
    assert_eq!(s, 201, "{v}");
    v["message"].clone()
}

fn wait_path(alias: &str, since: u64) -> String {
    format!("/wait?participant={alias}&since_id={since}&timeout_ms=10000")
}

/// Holds `alias`'s wait after `since` on a thread, runs `act`, and returns what woke it
/// and how long after the act it answered.
fn woken_by(r: &TestRoom, alias: &str, token: &str, act: impl FnOnce()) -> Value {
    let since = r.last_id();
    let port = r.port;
    let (path, tok) = (wait_path(alias, since), token.to_string());
    let waiter = std::thread::spawn(move || get(port, &path, Some(&tok)));
    r.until_waiting(alias);
    let started = Instant::now();
    act();
    let (s, v) = waiter.join().unwrap();
    assert_eq!(s, 200, "{v}");
    assert!(started.elapsed() < Duration::from_secs(5), "woke promptly");
    assert_eq!(v["heartbeat"], false, "{v}");
    v
}

#[test]
fn topics_open_list_show_comment_status_and_answer() {
    let r = TestRoom::start("topics-flow");
    let bob = r.invite("bob", "agent");
    let carol = r.invite("carol", "agent");
    let t = open_topic(
        &r,
        &bob.token,
        json!({"title": "Ship on Friday?", "text": "Can we ship?", "options": ["yes", "no"],
               "to": "operator", "tags": ["release"]}),
    );
    let id = t["id"].as_u64().unwrap();
    assert_eq!(t["type"], "topic");
    assert_eq!(t["topic"]["status"], "open");
    assert_eq!(t["topic"]["kind"], "question");
    assert_eq!(t["mentions"], json!(["operator"]));
    let d = open_topic(&r, &r.token, json!({"title": "Naming", "text": "ideas?"}));
    let did = d["id"].as_u64().unwrap();
    assert_eq!(d["topic"]["kind"], "discussion");

    // A comment carries topic_id; the listing counts it and moves it to the top.
    let (s, c) = r.post(
        "/messages",
        Some(&carol.token),
        &json!({"text": "I think yes", "topic_id": id}),
    );
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["message"]["topic_id"], id);
    let (s, list) = r.get("/topics", Some(&carol.token));
    assert_eq!(s, 200, "{list}");
    let topics = list["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics[0]["id"], id, "latest activity first: {list}");
    assert_eq!(topics[0]["comments"], 1);
    assert_eq!(topics[0]["options"], json!(["yes", "no"]));
    assert_eq!(topics[0]["to"], "operator");
    for f in [
        "title",
        "status",
        "kind",
        "tags",
        "from",
        "ts",
        "answer",
        "last_activity_id",
    ] {
        assert!(topics[0].get(f).is_some(), "{f} missing: {list}");
    }
    // Filters.
    let (_, l) = r.get("/topics?kind=discussion", Some(&bob.token));
    assert_eq!(l["topics"].as_array().unwrap().len(), 1);
    let (_, l) = r.get("/topics?tag=release&status=open", Some(&bob.token));
    assert_eq!(l["topics"][0]["id"], id);
    assert_error(
        r.get("/topics?status=maybe", Some(&bob.token)),
        400,
        "invalid_query",
    );

    // Only the addressee (or host) answers; the option must be offered.
    assert_error(
        r.post(
            &format!("/topics/{id}/answer"),
            Some(&carol.token),
            &json!({"option": "yes"}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        r.post(
            &format!("/topics/{id}/answer"),
            Some(&r.token),
            &json!({"option": "maybe"}),
        ),
        400,
        "invalid_option",
    );
    assert_error(
        r.post(
            &format!("/topics/{did}/answer"),
            Some(&bob.token),
            &json!({"text": "x"}),
        ),
        409,
        "not_a_question",
    );
    assert_error(
        r.post("/topics/999/answer", Some(&r.token), &json!({"text": "x"})),
        404,
        "topic_not_found",
    );
    let woke = woken_by(&r, "bob", &bob.token, || {
        let (s, a) = r.post(
            &format!("/topics/{id}/answer"),
            Some(&r.token),
            &json!({"option": "yes", "text": "go"}),
        );
        assert_eq!(s, 201, "{a}");
        let u = &a["message"];
        assert_eq!(u["type"], "topic_update");
        assert_eq!(u["topic_id"], id);
        assert_eq!(u["topic_update"]["status"], "answered");
        assert_eq!(
            u["topic_update"]["answer"],
            json!({"option": "yes", "text": "go", "by": "operator"})
        );
    });
    assert_eq!(
        woke["mentioned"], true,
        "the answer mentions the asker: {woke}"
    );
    assert_error(
        r.post(
            &format!("/topics/{id}/answer"),
            Some(&r.token),
            &json!({"option": "no"}),
        ),
        409,
        "already_answered",
    );

    // Only the author or the host sets the status; a closed topic takes no comments.
    assert_error(
        r.post(
            &format!("/topics/{id}/status"),
            Some(&carol.token),
            &json!({"status": "closed"}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        r.post(
            &format!("/topics/{id}/status"),
            Some(&bob.token),
            &json!({"status": "later"}),
        ),
        400,
        "invalid_body",
    );
    let (s, u) = r.post(
        &format!("/topics/{id}/status"),
        Some(&bob.token),
        &json!({"status": "closed", "note": "done"}),
    );
    assert_eq!(s, 201, "{u}");
    assert_eq!(
        u["message"]["topic_update"],
        json!({"status": "closed", "note": "done"})
    );
    assert_error(
        r.post(
            "/messages",
            Some(&carol.token),
            &json!({"text": "late", "topic_id": id}),
        ),
        409,
        "topic_closed",
    );
    assert_error(
        r.post(
            "/messages",
            Some(&carol.token),
            &json!({"text": "x", "topic_id": 999}),
        ),
        404,
        "topic_not_found",
    );
    let plain = r.say(&r.token, "not a topic")["id"].as_u64().unwrap();
    assert_error(
        r.post(
            "/messages",
            Some(&carol.token),
            &json!({"text": "x", "topic_id": plain}),
        ),
        404,
        "topic_not_found",
    );

    // The thread, by id; the answer stays after closing.
    let (s, page) = r.get(&format!("/topics/{id}"), Some(&carol.token));
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["topic"]["status"], "closed");
    assert_eq!(page["topic"]["answer"]["option"], "yes");
    let kinds: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["topic", "message", "topic_update", "topic_update"]);
    assert_error(
        r.get("/topics/999", Some(&carol.token)),
        404,
        "topic_not_found",
    );
    assert_error(
        r.get("/topics/abc", Some(&carol.token)),
        404,
        "topic_not_found",
    );
}

#[test]
fn topic_validation_and_plain_posts_of_topic_types() {
    let r = TestRoom::start("topics-invalid");
    let t = Some(r.token.as_str());
    for body in [
        json!({"title": "", "text": "x"}),
        json!({"title": "x".repeat(201), "text": "x"}),
        json!({"title": "t", "text": "  "}),
        json!({"title": "t", "text": "x", "tags": ["Bad Tag"]}),
        json!({"title": "t", "text": "x", "tags": (0..13).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
        json!({"title": "t", "text": "x", "options": []}),
        json!({"title": "t", "text": "x", "options": (0..11).map(|i| format!("o{i}")).collect::<Vec<_>>()}),
        json!({"title": "t", "text": "x", "options": ["o".repeat(81)]}),
        json!({"title": "t", "text": "x", "kind": "poll"}),
        json!({"text": "no title"}),
    ] {
        assert_error(r.post("/topics", t, &body), 400, "invalid_body");
    }
    assert_error(
        r.post(
            "/topics",
            t,
            &json!({"title": "t", "text": "x", "to": "nobody"}),
        ),
        400,
        "unknown_participant",
    );
    assert_error(
        r.post("/messages", t, &json!({"text": "x", "type": "topic"})),
        400,
        "invalid_type",
    );
    assert_error(
        r.post(
            "/messages",
            t,
            &json!({"text": "x", "type": "topic_update"}),
        ),
        400,
        "invalid_type",
    );
    assert_error(
        r.post("/topics", None, &json!({"title": "t", "text": "x"})),
        401,
        "unauthorized",
    );
    // Idempotent by client_msg_id like any post.
    let body = json!({"title": "t", "text": "x", "client_msg_id": "k1"});
    let (s1, a) = r.post("/topics", t, &body);
    let (s2, b) = r.post("/topics", t, &body);
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(a["message"]["id"], b["message"]["id"]);
    assert_eq!(b["idempotent"], true);
}

#[test]
fn answers_without_addressee_and_wake_on_topic_comment_and_status() {
    let r = TestRoom::start("topics-wake");
    let bob = r.invite("bob", "agent");
    let carol = r.invite("carol", "agent");
    let mut id = 0;
    // A new topic wakes a waiter.
    let v = woken_by(&r, "carol", &carol.token, || {
        id = open_topic(
            &r,
            &bob.token,
            json!({"title": "Who knows?", "text": "anyone", "kind": "question"}),
        )["id"]
            .as_u64()
            .unwrap();
    });
    assert_eq!(v["messages"][0]["type"], "topic");
    let v = woken_by(&r, "bob", &bob.token, || {
        r.post(
            "/messages",
            Some(&carol.token),
            &json!({"text": "thinking", "topic_id": id}),
        );
    });
    assert_eq!(v["messages"][0]["topic_id"], id);
    // No addressee: the asker cannot answer, anyone else can.
    assert_error(
        r.post(
            &format!("/topics/{id}/answer"),
            Some(&bob.token),
            &json!({"text": "me"}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        r.post(
            &format!("/topics/{id}/answer"),
            Some(&carol.token),
            &json!({}),
        ),
        400,
        "invalid_body",
    );
    assert_error(
        r.post(
            &format!("/topics/{id}/answer"),
            Some(&carol.token),
            &json!({"option": "a"}),
        ),
        400,
        "invalid_option",
    );
    let (s, _) = r.post(
        &format!("/topics/{id}/answer"),
        Some(&carol.token),
        &json!({"text": "I do"}),
    );
    assert_eq!(s, 201);
    let v = woken_by(&r, "carol", &carol.token, || {
        let (s, _) = r.post(
            &format!("/topics/{id}/status"),
            Some(&bob.token),
            &json!({"status": "resolved"}),
        );
        assert_eq!(s, 201);
    });
    assert_eq!(v["messages"][0]["topic_update"]["status"], "resolved");
    // Reopened, it can be answered again.
    let (s, _) = r.post(
        &format!("/topics/{id}/status"),
        Some(&r.token),
        &json!({"status": "open"}),
    );
    assert_eq!(s, 201, "the host may set any topic's status");
    let (s, _) = r.post(
        &format!("/topics/{id}/answer"),
        Some(&carol.token),
        &json!({"text": "still me"}),
    );
    assert_eq!(s, 201);
}

#[test]
fn topics_survive_a_restart_and_old_logs_open_unchanged() {
    let mut r = TestRoom::start("topics-restart");
    let bob = r.invite("bob", "agent");
    r.say(&r.token, "an old-style message");
    let id = open_topic(
        &r,
        &r.token,
        json!({"title": "Kept", "text": "body", "options": ["a"], "to": "bob"}),
    )["id"]
        .as_u64()
        .unwrap();
    let (s, _) = r.post(
        &format!("/topics/{id}/answer"),
        Some(&bob.token),
        &json!({"option": "a"}),
    );
    assert_eq!(s, 201);
    // A line written by an older version (no topic fields at all) next to the new ones.
    let lines = read_log_lines(&r.log_path());
    let plain = lines
        .iter()
        .find(|l| l["text"] == "an old-style message")
        .unwrap();
    for f in ["topic", "topic_id", "topic_update"] {
        assert!(
            plain.get(f).is_none(),
            "plain messages serialize as before: {plain}"
        );
    }
    let (_, before) = r.get("/topics", Some(&r.token));
    r.restart();
    let (s, after) = r.get("/topics", Some(&r.token));
    assert_eq!(s, 200, "{after}");
    assert_eq!(before, after, "the index is rebuilt from the log");
    assert_eq!(after["topics"][0]["status"], "answered");
    let next = r.say(&r.token, "after restart")["id"].as_u64().unwrap();
    assert!(next > id);
}

#[test]
fn search_finds_words_in_text_and_titles_newest_first() {
    let r = TestRoom::start("search-api");
    let bob = r.invite("bob", "agent");
    let t = Some(r.token.as_str());
    let first = r.say(&r.token, "The Deploy pipeline is RED today")["id"]
        .as_u64()
        .unwrap();
    r.say(&bob.token, "deploy fixed; pipeline green");
    r.say(&bob.token, "unrelated chatter");
    let topic = open_topic(
        &r,
        &r.token,
        json!({"title": "Grüße from the pipeline", "text": "body"}),
    )["id"]
        .as_u64()
        .unwrap();
    let long = format!("{} needle {}", "x".repeat(400), "y".repeat(400));
    r.say(&bob.token, &long);

    let (s, v) = r.get("/search?q=PIPELINE%20deploy", t);
    assert_eq!(s, 200, "{v}");
    let ids: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{v}");
    assert!(ids[0] > ids[1], "newest first");
    assert_eq!(ids[1], first);
    assert_eq!(v["has_more"], false);
    // A topic title matches; case folding beyond ASCII.
    let (_, v) = r.get("/search?q=GR%C3%9C%C3%9FE", t);
    assert_eq!(v["results"][0]["message"]["id"], topic, "{v}");
    assert!(
        v["results"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("Grüße")
    );
    // Snippets are short, around the match.
    let (_, v) = r.get("/search?q=needle", t);
    let snip = v["results"][0]["snippet"].as_str().unwrap();
    assert!(
        snip.chars().count() <= 200 && snip.contains("needle"),
        "{snip}"
    );
    // Filters and paging.
    let (_, v) = r.get("/search?q=pipeline&from=bob", t);
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    let (_, v) = r.get("/search?q=pipeline&type=topic", t);
    assert_eq!(v["results"][0]["message"]["id"], topic);
    let (_, v) = r.get("/search?q=pipeline&limit=1", t);
    assert_eq!(
        (
            v["results"].as_array().unwrap().len(),
            v["has_more"].clone()
        ),
        (1, json!(true))
    );
    let (_, v) = r.get(&format!("/search?q=pipeline&before_id={topic}"), t);
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    // System rows are searchable too.
    let (_, v) = r.get("/search?q=joined&type=system", t);
    assert!(v["results"].as_array().is_some(), "{v}");
    let (_, v) = r.get("/search?q=opened%20by", t);
    assert_eq!(v["results"][0]["message"]["from"], "system", "{v}");
    // Errors.
    assert_error(r.get("/search?q=", t), 400, "invalid_query");
    assert_error(r.get("/search", t), 400, "invalid_query");
    assert_error(
        r.get(&format!("/search?q={}", "a".repeat(201)), t),
        400,
        "invalid_query",
    );
    assert_error(r.get("/search?q=a&limit=0", t), 400, "invalid_query");
    assert_error(r.get("/search?q=a&limit=201", t), 400, "invalid_query");
    assert_error(r.get("/search?q=a", None), 401, "unauthorized");
    // New posts are found at once.
    r.say(&bob.token, "brand new needle");
    let (_, v) = r.get("/search?q=brand%20needle", t);
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
}

#[test]
fn cli_ask_waits_for_an_http_answer_and_times_out_with_exit_7() {
    let r = TestRoom::start("topics-cli");
    let bob = r.invite("bob", "agent");
    let child = command(
        &r.home,
        &[
            "ask",
            "bob",
            "Ship on Friday?",
            "--option",
            "yes",
            "--option",
            "no",
            "--wait",
            "--timeout",
            "30s",
            "--json",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let (_, v) = r.get("/topics", Some(&bob.token));
        if let Some(id) = v["topics"][0]["id"].as_u64() {
            break id;
        }
        assert!(Instant::now() < deadline, "the question never appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (s, _) = r.post(
        &format!("/topics/{id}/answer"),
        Some(&bob.token),
        &json!({"option": "no", "text": "flaky CI"}),
    );
    assert_eq!(s, 201);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"ok": true, "topic_id": id, "answer": {"option": "no", "text": "flaky CI", "by": "bob"}})
    );

    // No answer in time: exit 7 with error `timeout`.
    let out = r.cli(&[
        "ask",
        "bob",
        "Anyone there?",
        "--wait",
        "--timeout",
        "1s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        (v["ok"].clone(), v["error"].clone()),
        (json!(false), json!("timeout"))
    );

    // The other commands, with --json.
    let v = r.cli_json(&[
        "topic", "new", "Naming", "--text", "ideas?", "--tag", "release", "--json",
    ]);
    let tid = v["message"]["id"].as_u64().unwrap();
    let v = r.cli_json(&[
        "topic",
        "comment",
        &tid.to_string(),
        "how",
        "about",
        "Gather",
        "--json",
    ]);
    assert_eq!(v["message"]["topic_id"], tid);
    let v = r.cli_json(&["topic", "list", "--tag", "release", "--json"]);
    assert_eq!(v["topics"][0]["comments"], 1, "{v}");
    let v = r.cli_json(&[
        "topic",
        "status",
        &tid.to_string(),
        "resolved",
        "--note",
        "Gather it is",
        "--json",
    ]);
    assert_eq!(v["message"]["topic_update"]["status"], "resolved");
    let v = r.cli_json(&["topic", "show", &tid.to_string(), "--json"]);
    assert_eq!(v["messages"].as_array().unwrap().len(), 3);
    let v = r.cli_json(&["search", "GATHER", "--json"]);
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v}");
    let out = r.cli(&["topic", "answer", &tid.to_string(), "--text", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a question"), "{}", stderr(&out));
    // Text output marks topics.
    let text = stdout(&r.cli(&["messages"]));
    assert!(
        text.contains("\"Naming\" (open)") && text.contains("on topic #"),
        "{text}"
    );
}

#[test]
fn exports_list_topics_with_status_answer_and_thread() {
    let r = TestRoom::start("topics-export");
    let bob = r.invite("bob", "agent");
    open_topic(
        &r,
        &bob.token,
        json!({"title": "```end``` fence", "text": "q"}),
    );
    let id = open_topic(
        &r,
        &bob.token,
        json!({"title": "Ship?", "text": "q", "options": ["yes"], "to": "operator"}),
    )["id"]
        .as_u64()
        .unwrap();
    r.post(
        "/messages",
        Some(&bob.token),
        &json!({"text": "ping", "topic_id": id}),
    );
    let (s, _) = r.post(
        &format!("/topics/{id}/answer"),
        Some(&r.token),
        &json!({"option": "yes", "text": "<b>go</b>"}),
    );
    assert_eq!(s, 201);
    let v = r.cli_json(&["export", "--format", "json", "--json"]);
    let v = if v.get("topics").is_some() {
        v
    } else {
        v["export"].clone()
    };
    let topics = v["topics"].as_array().unwrap_or_else(|| panic!("{v}"));
    let t = topics.iter().find(|t| t["id"] == id).unwrap();
    assert_eq!(
        (t["status"].clone(), t["answer"]["option"].clone()),
        (json!("answered"), json!("yes"))
    );
    assert_eq!(t["thread"].as_array().unwrap().len(), 2);
    let md = stdout(&r.cli(&["export"]));
    assert!(
        md.contains("## Topics")
            && md.contains(&format!("### Topic #{id} · answered · question · bob")),
        "{md}"
    );
    assert!(
        md.contains("```text\n<b>go</b>") || md.contains("````text\n"),
        "answers are fenced: {md}"
    );
    assert!(
        md.contains("````text\n```end``` fence\n````"),
        "titles are fenced past their backticks: {md}"
    );
}

#[test]
fn a_log_written_before_topics_opens_and_takes_topics() {
    let mut r = TestRoom::start("topics-old-log");
    r.server.kill();
    // Lines exactly as an older version wrote them (no topic fields), one mentioning
    // "topic in its text so the start-up filter has to parse and skip it.
    let old = r#"{"id":900,"room":"topics-old-log","ts":"2026-11-25T12:00:00.000Z","from":"operator","type":"message","text":"the \"topic of the day\"","mentions":[]}"#;
    let mut log = std::fs::read_to_string(r.log_path()).unwrap();
    log.push_str(old);
    log.push('\n');
    std::fs::write(r.log_path(), log).unwrap();
    r.restart();
    let (s, v) = r.get("/topics", Some(&r.token));
    assert_eq!((s, v["topics"].as_array().unwrap().len()), (200, 0), "{v}");
    let (_, v) = r.get("/search?q=topic%20DAY", Some(&r.token));
    assert_eq!(v["results"][0]["message"]["id"], 900, "{v}");
    let t = open_topic(&r, &r.token, json!({"title": "New", "text": "x"}));
    assert_eq!(t["id"], 901);
    assert_error(
        r.post(
            "/messages",
            Some(&r.token),
            &json!({"text": "x", "topic_id": 900}),
        ),
        404,
        "topic_not_found",
    );
}
