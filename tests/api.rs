//! Every endpoint and error code of SPEC §4, end to end: the real release binary serves a
//! room on loopback in a temp home and these tests talk HTTP to it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn texts(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

fn ids(msgs: &[Value]) -> Vec<u64> {
    msgs.iter().map(|m| m["id"].as_u64().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------
// GET /, /card, /join

#[test]
fn index_is_a_shell_with_csp_and_no_secrets() {
    let r = TestRoom::start("index-shell");
    let resp = r.request(Req::get("/"));
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        resp.headers
    );
    let csp = resp
        .header("content-security-policy")
        .expect("a Content-Security-Policy header");
    assert!(csp.contains("default-src"), "{csp}");
    assert!(csp.contains("script-src"), "{csp}");
    assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    let html = resp.text();
    assert!(html.to_lowercase().contains("<html"), "{html}");
    assert!(!html.contains("tgl_"), "the shell must not embed a token");
    assert!(!html.contains(&r.token));
    assert!(
        !html.contains(DEFAULT_BRIEF),
        "the shell must hold no room data"
    );
    // Its assets are served without a token too.
    for asset in ["/assets/room.js", "/assets/room.css"] {
        let a = r.request(Req::get(asset));
        assert_eq!(a.status, 200, "{asset}");
        assert!(!a.text().contains(&r.token));
    }
    assert_error_resp(&r.request(Req::get("/assets/nope.js")), 404, "not_found");
}

#[test]
fn card_by_bearer_and_by_query_token() {
    let r = TestRoom::start("card");
    let bob = r.invite("bob", "agent");
    // Bearer.
    let resp = r.request(Req::get("/card?participant=bob").token(&bob.token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        resp.headers
    );
    let card = resp.text();
    assert!(
        card.contains(DEFAULT_BRIEF),
        "the card carries the brief:\n{card}"
    );
    assert!(card.contains("/wait"), "{card}");
    assert!(card.contains("/join"), "{card}");
    assert!(card.contains("/messages"), "{card}");
    assert!(
        card.contains(&bob.token),
        "the card holds its owner's commands"
    );
    assert!(!card.contains(&r.token), "never the host's token");
    // ?token= (the onboarding URL from card_command).
    let path = format!("/card?participant=bob&token={}", bob.token);
    let resp = r.request(Req::get(&path));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains(DEFAULT_BRIEF));
    // The card_command printed by `room invite` points at the same URL.
    let cmd = bob.json["card_command"].as_str().unwrap();
    assert!(
        cmd.contains(&format!("{}/card?participant=bob&token=", r.url)),
        "{cmd}"
    );
    // Without participant it is still the token's own card.
    let resp = r.request(Req::get("/card").token(&bob.token));
    assert_eq!(resp.status, 200);
    // Participant mismatch: bob's token, alice's card.
    r.invite("alice", "agent");
    assert_error_resp(
        &r.request(Req::get("/card?participant=alice").token(&bob.token)),
        403,
        "participant_mismatch",
    );
    let path = format!("/card?participant=alice&token={}", bob.token);
    assert_error_resp(&r.request(Req::get(&path)), 403, "participant_mismatch");
    // No or a wrong token.
    assert_error_resp(
        &r.request(Req::get("/card?participant=bob")),
        401,
        "unauthorized",
    );
    assert_error_resp(
        &r.request(Req::get("/card?participant=bob&token=tgl_nope")),
        401,
        "unauthorized",
    );
}

#[test]
fn join_marks_attending_and_posts_system_message() {
    let r = TestRoom::start("join");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.post("/join", Some(&bob.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["participant"], "bob");
    assert_eq!(v["attention"], "attending");
    let last = r.last_message();
    assert_eq!(last["type"], "system", "{last}");
    assert_eq!(last["from"], "system", "{last}");
    assert!(
        last["text"].as_str().unwrap().contains("bob joined"),
        "{last}"
    );
    let p = r.roster_entry("bob");
    assert_eq!(p["attention"], "attending", "{p}");
    assert!(p["last_seen_age_ms"].as_u64().is_some(), "{p}");
    // An empty body (no JSON at all) is fine too.
    let resp = r.request(Req::post("/join").token(&bob.token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_error(r.post("/join", None, &json!({})), 401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// /brief, /attendance, /profile

#[test]
fn brief_get_and_set() {
    let r = TestRoom::start("brief");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.get("/brief", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["brief"]["body"], DEFAULT_BRIEF);
    assert_eq!(v["brief"]["brief_version"], 1);
    assert_eq!(v["brief"]["brief_updated_by"], "operator");
    assert!(v["brief"]["brief_updated_at"].is_string(), "{v}");

    // Host only.
    assert_error(
        r.post("/brief", Some(&bob.token), &json!({"body": "mine now"})),
        403,
        "host_required",
    );
    // Version bump and a system message.
    let before = r.last_id();
    let (s, v) = r.post("/brief", Some(&r.token), &json!({"body": "Goal v2"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["brief"]["body"], "Goal v2");
    assert_eq!(v["brief"]["brief_version"], 2);
    let (_, v) = r.get("/brief", Some(&bob.token));
    assert_eq!(v["brief"]["body"], "Goal v2");
    assert_eq!(v["brief"]["brief_version"], 2);
    let last = r.last_message();
    assert!(last["id"].as_u64().unwrap() > before);
    assert_eq!(last["type"], "system", "{last}");
    assert!(
        last["text"].as_str().unwrap().contains("version 2"),
        "{last}"
    );
    assert_eq!(r.status(&bob.token)["brief_version"], 2);

    // 16,000 chars is fine, 16,001 is 413 brief_too_large (and nothing changes).
    let (s, v) = r.post(
        "/brief",
        Some(&r.token),
        &json!({"body": "b".repeat(16_000)}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["brief"]["brief_version"], 3);
    assert_error(
        r.post(
            "/brief",
            Some(&r.token),
            &json!({"body": "b".repeat(16_001)}),
        ),
        413,
        "brief_too_large",
    );
    let (_, v) = r.get("/brief", Some(&r.token));
    assert_eq!(v["brief"]["brief_version"], 3);
    // The brief is on disk as brief.md.
    let on_disk = std::fs::read_to_string(r.home.room_dir(&r.room).join("brief.md")).unwrap();
    assert_eq!(on_disk, "b".repeat(16_000));

    // Malformed bodies.
    assert_error(
        r.post("/brief", Some(&r.token), &json!({"body": 5})),
        400,
        "invalid_body",
    );
    assert_error(
        r.post("/brief", Some(&r.token), &json!({})),
        400,
        "invalid_body",
    );
    assert_error_resp(
        &r.request(Req::post("/brief").token(&r.token).body("{nope")),
        400,
        "invalid_json",
    );
    assert_error(r.get("/brief", None), 401, "unauthorized");
}

#[test]
fn attendance_policy() {
    let r = TestRoom::start("attendance");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.get("/attendance", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["policy"], "manual-ok");
    assert_eq!(r.status(&bob.token)["attendance_policy"], "manual-ok");
    for policy in [
        "agents-foreground",
        "all-foreground",
        "host-directed",
        "manual-ok",
    ] {
        let before = r.last_id();
        let (s, v) = r.post("/attendance", Some(&r.token), &json!({"policy": policy}));
        assert_eq!(s, 200, "{policy}: {v}");
        assert_eq!(v["policy"], policy);
        assert_eq!(r.status(&bob.token)["attendance_policy"], policy);
        let last = r.last_message();
        assert!(
            last["id"].as_u64().unwrap() > before,
            "a system message for {policy}"
        );
        assert_eq!(last["type"], "system");
        assert!(last["text"].as_str().unwrap().contains(policy), "{last}");
    }
    // agents-foreground makes bob's attendance required in the roster.
    r.post(
        "/attendance",
        Some(&r.token),
        &json!({"policy": "agents-foreground"}),
    );
    let p = r.roster_entry("bob");
    assert_eq!(p["attendance_required"], true, "{p}");
    assert_eq!(p["attendance_state"], "not_attending", "{p}");

    assert_error(
        r.post("/attendance", Some(&r.token), &json!({"policy": "always"})),
        400,
        "invalid_policy",
    );
    assert_error(
        r.post("/attendance", Some(&r.token), &json!({"policy": 3})),
        400,
        "invalid_body",
    );
    assert_error(
        r.post(
            "/attendance",
            Some(&bob.token),
            &json!({"policy": "manual-ok"}),
        ),
        403,
        "host_required",
    );
    assert_eq!(
        r.status(&bob.token)["attendance_policy"],
        "agents-foreground"
    );
}

#[test]
fn profile_display_names() {
    let r = TestRoom::start("profile");
    let bob = r.invite("bob", "human");
    let eve = r.invite("eve", "human");
    let (s, v) = r.get("/profile", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alias"], "bob");
    assert!(v["display_name"].is_null(), "{v}");

    let (s, v) = r.post(
        "/profile",
        Some(&bob.token),
        &json!({"display_name": "Bob B."}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["display_name"], "Bob B.");
    let (_, v) = r.get("/profile", Some(&bob.token));
    assert_eq!(v["display_name"], "Bob B.");
    assert_eq!(r.roster_entry("bob")["display_name"], "Bob B.");
    // Setting it again to the same value is fine.
    assert_eq!(
        r.post(
            "/profile",
            Some(&bob.token),
            &json!({"display_name": "Bob B."})
        )
        .0,
        200
    );

    // Unique per room (case-insensitively), and not another participant's alias.
    assert_error(
        r.post(
            "/profile",
            Some(&eve.token),
            &json!({"display_name": "Bob B."}),
        ),
        409,
        "display_name_taken",
    );
    assert_error(
        r.post(
            "/profile",
            Some(&eve.token),
            &json!({"display_name": "bob b."}),
        ),
        409,
        "display_name_taken",
    );
    // Invalid names.
    for bad in [
        json!(""),
        json!("   "),
        json!("a\u{7}b"),
        json!("line\nbreak"),
        json!("x".repeat(61)),
    ] {
        assert_error(
            r.post("/profile", Some(&eve.token), &json!({"display_name": bad})),
            400,
            "invalid_display_name",
        );
    }
    assert_error(
        r.post("/profile", Some(&eve.token), &json!({"display_name": 7})),
        400,
        "invalid_body",
    );
    // 60 characters (multi-byte) is fine.
    let sixty = "é".repeat(60);
    let (s, v) = r.post(
        "/profile",
        Some(&eve.token),
        &json!({"display_name": sixty}),
    );
    assert_eq!(s, 200, "{v}");
    // A display name never changes `from`.
    let m = r.say(&bob.token, "hello with a display name");
    assert_eq!(m["from"], "bob", "{m}");
}

// ---------------------------------------------------------------------------------------
// GET /messages

#[test]
fn messages_since_id_and_limit() {
    let r = TestRoom::start("messages-get");
    for i in 1..=5 {
        r.say(&r.token, &format!("m{i}"));
    }
    let all = r.all_messages();
    let all_ids = ids(&all);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "{all_ids:?}");
    assert_eq!(all_ids[0], 1, "ids start at 1");
    let (s, v) = r.get("/messages", Some(&r.token));
    assert_eq!(s, 200);
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        all_ids,
        "no since_id = 0"
    );

    // Exclusive since_id.
    let mid = all_ids[2];
    let (s, v) = r.get(&format!("/messages?since_id={mid}"), Some(&r.token));
    assert_eq!(s, 200, "{v}");
    let got = ids(v["messages"].as_array().unwrap());
    assert_eq!(got, all_ids[3..].to_vec());
    assert_eq!(v["next_since_id"], *all_ids.last().unwrap());
    // Past the end: empty, next_since_id unchanged.
    let last = *all_ids.last().unwrap();
    let (s, v) = r.get(&format!("/messages?since_id={}", last + 10), Some(&r.token));
    assert_eq!(s, 200);
    assert_eq!(v["messages"], json!([]));
    assert_eq!(v["next_since_id"], last + 10);

    // limit.
    let (s, v) = r.get("/messages?since_id=0&limit=2", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        all_ids[..2].to_vec()
    );
    assert_eq!(v["next_since_id"], all_ids[1]);
    assert_eq!(v["has_more"], true);

    // tail: the newest N, oldest first; the cursor moves to the end.
    let (s, v) = r.get("/messages?since_id=0&tail=2", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        all_ids[all_ids.len() - 2..].to_vec()
    );
    assert_eq!(v["next_since_id"], last);
    assert_eq!(v["has_more"], false);
    assert_error(
        r.get("/messages?tail=x", Some(&r.token)),
        400,
        "invalid_query",
    );

    // Message shape.
    let m = all.iter().find(|m| m["text"] == "m1").unwrap();
    for f in ["id", "room", "ts", "from", "type", "text", "mentions"] {
        assert!(m.get(f).is_some(), "message lacks {f}: {m}");
    }
    assert_eq!(m["room"], "messages-get");
    assert_eq!(m["type"], "message");
    assert_eq!(m["from"], "operator");

    for bad in ["-1", "abc", "1.5", "1e3", "%20"] {
        assert_error(
            r.get(&format!("/messages?since_id={bad}"), Some(&r.token)),
            400,
            "invalid_since_id",
        );
    }
    let (s, _) = r.get("/messages?since_id=0&limit=abc", Some(&r.token));
    assert_eq!(s, 400);
    assert_error(r.get("/messages", None), 401, "unauthorized");
    assert_error(r.get("/messages", Some("tgl_bogus")), 401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// POST /messages

#[test]
fn post_message_binds_from_and_ignores_client_identity_fields() {
    let r = TestRoom::start("messages-post");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.post(
        "/messages",
        Some(&bob.token),
        &json!({
            "text": "hi @operator", "from": "operator", "room": "elsewhere", "id": 999,
            "ts": "1999-01-01T00:00:00Z", "surprise": {"nested": [1, 2]}, "type": "question"
        }),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["ok"], true);
    let m = &v["message"];
    assert_eq!(m["from"], "bob", "{m}");
    assert_eq!(m["room"], "messages-post");
    assert_ne!(m["id"], 999);
    assert_ne!(m["ts"], "1999-01-01T00:00:00Z");
    assert_eq!(m["type"], "question");
    assert_eq!(m["mentions"], json!(["operator"]));
    assert!(m.get("surprise").is_none(), "{m}");
    // Every client type is accepted.
    for t in [
        "message",
        "question",
        "reply",
        "status",
        "request_review",
        "request_debug",
        "handoff",
    ] {
        let (s, v) = r.post(
            "/messages",
            Some(&r.token),
            &json!({"text": format!("a {t}"), "type": t}),
        );
        assert_eq!(s, 201, "{t}: {v}");
        assert_eq!(v["message"]["type"], t);
    }
    // reply_to an existing message.
    let id = m["id"].as_u64().unwrap();
    let (s, v) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "answer", "type": "reply", "reply_to": id}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["reply_to"], id);
    // `to` counts as a mention; an unknown `@word` stays plain text.
    let (s, v) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "for you, and @nobody", "to": ["bob"]}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["mentions"], json!(["bob"]));
    // Mentions inside code do not count.
    let m = r.say(&r.token, "see `@bob` and\n```\n@bob\n```\nok");
    assert_eq!(m["mentions"], json!([]), "{m}");
}

#[test]
fn post_message_idempotent_client_msg_id() {
    let r = TestRoom::start("idempotent");
    let bob = r.invite("bob", "agent");
    let body = json!({"text": "once", "client_msg_id": "c-1"});
    let (s, first) = r.post("/messages", Some(&bob.token), &body);
    assert_eq!(s, 201, "{first}");
    assert!(
        first.get("idempotent").is_none_or(|v| v == false),
        "{first}"
    );
    let count = r.all_messages().len();
    let (s, again) = r.post("/messages", Some(&bob.token), &body);
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["idempotent"], true, "{again}");
    assert_eq!(again["message"], first["message"], "the original message");
    // Even with a different text, the key wins.
    let (s, again) = r.post(
        "/messages",
        Some(&bob.token),
        &json!({"text": "changed", "client_msg_id": "c-1"}),
    );
    assert_eq!(s, 200);
    assert_eq!(again["message"]["text"], "once");
    assert_eq!(r.all_messages().len(), count, "nothing appended");
    // The key is per participant: the host may use the same one.
    let (s, v) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "host's own", "client_msg_id": "c-1"}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["from"], "operator");
    assert_eq!(v["message"]["client_msg_id"], "c-1");
    // Survives a restart (recovered from the log).
    let mut r = r;
    r.restart();
    let (s, again) = r.post("/messages", Some(&bob.token), &body);
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["idempotent"], true);
    assert_eq!(again["message"], first["message"]);
}

#[test]
fn post_message_validation_errors() {
    let r = TestRoom::start("post-errors");
    let t = r.token.clone();
    let before = r.all_messages().len();
    let raw = |body: &[u8]| r.request(Req::post("/messages").token(&t).body(body.to_vec()));

    assert_error_resp(&raw(b"{\"text\": "), 400, "invalid_json");
    assert_error_resp(&raw(b"not json at all"), 400, "invalid_json");
    assert_error_resp(&raw(b"{\"text\": \"a\"} trailing"), 400, "invalid_json");
    for body in [
        json!({"text": ""}),
        json!({"text": "   \n\t "}),
        json!({"text": 42}),
        json!({"text": ["a"]}),
        json!({"text": null}),
        json!({}),
        json!({"txt": "typo"}),
        json!("just a string"),
        json!([{"text": "in an array"}]),
        json!(null),
        json!({"text": "x", "client_msg_id": ""}),
        json!({"text": "x", "client_msg_id": 5}),
        json!({"text": "x", "client_msg_id": "x".repeat(129)}),
        json!({"text": "x", "to": 5}),
    ] {
        assert_error(r.post("/messages", Some(&t), &body), 400, "invalid_body");
    }
    // An empty body reads as {} (no text).
    assert_error_resp(&raw(b""), 400, "invalid_body");
    for ty in [json!("system"), json!("shout"), json!(""), json!(3)] {
        assert_error(
            r.post("/messages", Some(&t), &json!({"text": "x", "type": ty})),
            400,
            "invalid_type",
        );
    }
    for reply_to in [json!(999_999), json!(0), json!(-1), json!("1"), json!(1.5)] {
        assert_error(
            r.post(
                "/messages",
                Some(&t),
                &json!({"text": "x", "reply_to": reply_to}),
            ),
            400,
            "invalid_reply_to",
        );
    }
    assert_error(
        r.post(
            "/messages",
            Some(&t),
            &json!({"text": "x", "to": ["ghost"]}),
        ),
        400,
        "unknown_participant",
    );
    assert_eq!(r.all_messages().len(), before, "nothing was appended");
    let lines = read_log_lines(&r.log_path());
    assert_eq!(lines.len(), before);
}

#[test]
fn post_message_size_limits() {
    let r = TestRoom::start("sizes");
    let t = r.token.clone();
    // 24,000 characters (multi-byte, to count chars not bytes) is fine; 24,001 is 413.
    let (s, v) = r.post("/messages", Some(&t), &json!({"text": "é".repeat(24_000)}));
    assert_eq!(s, 201, "{}", v["error"]);
    assert_error(
        r.post("/messages", Some(&t), &json!({"text": "x".repeat(24_001)})),
        413,
        "message_too_large",
    );
    // handoff may carry up to 64,000.
    let (s, v) = r.post(
        "/messages",
        Some(&t),
        &json!({"text": "h".repeat(64_000), "type": "handoff"}),
    );
    assert_eq!(s, 201, "{}", v["error"]);
    assert_eq!(v["message"]["text"].as_str().unwrap().len(), 64_000);
    assert_error(
        r.post(
            "/messages",
            Some(&t),
            &json!({"text": "h".repeat(64_001), "type": "handoff"}),
        ),
        413,
        "message_too_large",
    );
    // Over 256 KB of body: 413 body_too_large, whatever the JSON says.
    let big = json!({"text": "x", "pad": "p".repeat(300 * 1024)});
    assert_error(r.post("/messages", Some(&t), &big), 413, "body_too_large");
    // Just under the body limit with unknown padding: accepted.
    let ok = json!({"text": "padded", "pad": "p".repeat(250 * 1024)});
    assert_eq!(r.post("/messages", Some(&t), &ok).0, 201);
    // A body with no Content-Length (chunked) over the limit is refused too.
    let mut chunked = Vec::new();
    let payload = format!("{{\"text\":\"x\",\"pad\":\"{}\"}}", "p".repeat(300 * 1024));
    for piece in payload.as_bytes().chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut head = format!(
        "POST /messages HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        r.port
    )
    .into_bytes();
    head.extend_from_slice(&chunked);
    let raw = send_raw_bytes(r.port, &head, Duration::from_secs(20)).expect("chunked post");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("body_too_large"), "{text}");
    // The server still serves and the log parses.
    assert_eq!(r.status(&t)["ok"], true);
    read_log_lines(&r.log_path());
}

#[test]
fn hostile_bodies_do_not_break_the_room() {
    let r = TestRoom::start("hostile");
    let t = r.token.clone();
    let before = r.all_messages().len();
    // Non-UTF-8 bytes inside a JSON string, and as the whole body.
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .body(b"{\"text\": \"caf\xff\xfe\"}".to_vec()),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["ok"], false);
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .body(vec![0xff, 0x00, 0xc3, 0x28]),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Deeply nested JSON.
    let depth = 100_000;
    let mut nested = "[".repeat(depth);
    nested.push_str(&"]".repeat(depth));
    let resp = r.request(Req::post("/messages").token(&t).body(nested.into_bytes()));
    assert_eq!(resp.status, 400, "{}", resp.text());
    let mut nested = String::from("{\"text\":\"deep\",\"x\":");
    nested.push_str(&"{\"a\":".repeat(20_000));
    nested.push('1');
    nested.push_str(&"}".repeat(20_000));
    nested.push('}');
    let resp = r.request(Req::post("/messages").token(&t).body(nested.into_bytes()));
    assert_eq!(resp.status, 400, "{}", resp.text());
    // 10,000 unknown fields: accepted (ignored) or refused, but answered.
    let mut obj = serde_json::Map::new();
    obj.insert("text".into(), json!("many fields"));
    for i in 0..10_000 {
        obj.insert(format!("f{i}"), json!(i));
    }
    let resp = r.request(Req::post("/messages").token(&t).json(&Value::Object(obj)));
    assert!(
        resp.status == 201 || (400..500).contains(&resp.status),
        "{} {}",
        resp.status,
        resp.text()
    );
    if resp.status == 201 {
        let m = resp.json()["message"].clone();
        assert!(m.get("f1").is_none(), "unknown fields are not stored");
    }
    // Wrong Content-Type is still JSON to us, or refused cleanly.
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .header("Content-Type", "text/plain")
            .body(b"{\"text\":\"typed plain\"}".to_vec()),
    );
    assert!(resp.status == 201 || resp.status == 400 || resp.status == 415);
    // A bogus Content-Length and garbage request lines.
    for garbage in [
        format!(
            "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t}\r\nContent-Length: abc\r\n\r\n{{}}"
        ),
        "GARBAGE\r\n\r\n".to_string(),
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n".to_string(),
        "\u{0}\u{1}\u{2}\r\n\r\n".to_string(),
    ] {
        let out = send_raw_bytes(r.port, garbage.as_bytes(), Duration::from_secs(15));
        if let Ok(out) = out {
            let head = String::from_utf8_lossy(&out);
            assert!(
                out.is_empty() || head.starts_with("HTTP/1.1 4"),
                "{garbage:?} -> {head}"
            );
        }
    }
    // A client that sends headers and then never the promised body times out cleanly, so
    // check the room meanwhile still answers others.
    let slow = std::net::TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    use std::io::Write;
    (&slow)
        .write_all(
            format!(
                "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {t}\r\nContent-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    // The server keeps serving and nothing bad reached the log.
    let m = r.say(&t, "still alive");
    assert_eq!(m["text"], "still alive");
    drop(slow);
    let msgs = r.all_messages();
    assert!(msgs.len() > before);
    let lines = read_log_lines(&r.log_path());
    assert_eq!(lines.len(), msgs.len());
    let log_ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert!(log_ids.windows(2).all(|w| w[0] < w[1]));
}

// ---------------------------------------------------------------------------------------
// /wait

fn wait_path(alias: &str, since: u64, timeout_ms: u64) -> String {
    format!("/wait?participant={alias}&since_id={since}&timeout_ms={timeout_ms}")
}

#[test]
fn wait_answers_at_once_when_behind_with_mentions_and_next_cmd() {
    let r = TestRoom::start("wait-now");
    let bob = r.invite("bob", "agent");
    r.say(&r.token, "hello @bob, please look");
    let last = r.last_id();
    let started = Instant::now();
    let (s, v) = r.get(&wait_path("bob", 0, 20_000), Some(&bob.token));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    assert_eq!(s, 200, "{v}");
    for f in [
        "ok",
        "room",
        "room_status",
        "participant",
        "heartbeat",
        "messages",
        "mentioned",
        "next_since_id",
        "keep_waiting",
        "next_cmd",
    ] {
        assert!(v.get(f).is_some(), "wait answer lacks {f}: {v}");
    }
    assert_eq!(v["ok"], true);
    assert_eq!(v["room"], "wait-now");
    assert_eq!(v["room_status"], "open");
    assert_eq!(v["participant"], "bob");
    assert_eq!(v["heartbeat"], false);
    assert_eq!(v["mentioned"], true);
    assert_eq!(v["keep_waiting"], true);
    assert_eq!(v["next_since_id"], last);
    assert_eq!(
        *ids(v["messages"].as_array().unwrap()).last().unwrap(),
        last
    );
    let cmd = v["next_cmd"].as_str().unwrap();
    assert!(cmd.contains(&format!("since_id={last}")), "{cmd}");
    assert!(cmd.contains(&r.url), "uses the public URL: {cmd}");
    assert!(cmd.contains("participant=bob"), "{cmd}");
    // since_id is exclusive: from just before the mention, only the mention.
    let (_, v) = r.get(&wait_path("bob", last - 1, 20_000), Some(&bob.token));
    assert_eq!(ids(v["messages"].as_array().unwrap()), vec![last]);
    assert_eq!(v["mentioned"], true);
    // A message that does not mention bob.
    r.say(&r.token, "general note");
    let (_, v) = r.get(&wait_path("bob", last, 20_000), Some(&bob.token));
    assert_eq!(v["mentioned"], false, "{v}");
    // participant is optional; since_id validation.
    let (s, _) = r.get("/wait?since_id=0&timeout_ms=100", Some(&bob.token));
    assert_eq!(s, 200);
    for bad in ["-1", "abc", "1.5"] {
        assert_error(
            r.get(
                &format!("/wait?participant=bob&since_id={bad}"),
                Some(&bob.token),
            ),
            400,
            "invalid_since_id",
        );
    }
    assert_error(
        r.get(&wait_path("operator", 0, 100), Some(&bob.token)),
        403,
        "participant_mismatch",
    );
    assert_error(r.get(&wait_path("bob", 0, 100), None), 401, "unauthorized");
}

#[test]
fn held_wait_returns_promptly_on_a_post() {
    let r = TestRoom::start("wait-held");
    let bob = r.invite("bob", "agent");
    let last = r.last_id();
    let port = r.port;
    let token = bob.token.clone();
    let waiter = std::thread::spawn(move || {
        let resp = Req::get(&wait_path("bob", last, 20_000))
            .token(&token)
            .send(port);
        (Instant::now(), resp.status, resp.json())
    });
    // While held, the roster shows bob attending and waiting.
    r.until_waiting("bob");
    let p = r.roster_entry("bob");
    assert_eq!(p["attention"], "attending", "{p}");
    assert_eq!(p["waiting"], true, "{p}");
    let m = r.say(&r.token, "wake up @bob");
    let posted_at = Instant::now();
    let (answered_at, s, v) = waiter.join().unwrap();
    assert_eq!(s, 200, "{v}");
    let lag = answered_at.saturating_duration_since(posted_at);
    assert!(
        lag < Duration::from_secs(1),
        "the wait answered {lag:?} after the post"
    );
    assert_eq!(v["heartbeat"], false);
    assert_eq!(v["mentioned"], true);
    assert_eq!(
        ids(v["messages"].as_array().unwrap()),
        vec![m["id"].as_u64().unwrap()]
    );
    assert_eq!(v["next_since_id"], m["id"]);
    // A brief change also wakes a held wait (with its system message).
    let last = m["id"].as_u64().unwrap();
    let token = bob.token.clone();
    let waiter = std::thread::spawn(move || {
        Req::get(&wait_path("bob", last, 20_000))
            .token(&token)
            .send(port)
            .json()
    });
    r.until_waiting("bob");
    let t0 = Instant::now();
    r.post("/brief", Some(&r.token), &json!({"body": "new goal"}));
    let v = waiter.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(v["messages"][0]["type"], "system", "{v}");
}

#[test]
fn wait_heartbeat_with_timeout_ms() {
    let r = TestRoom::start("wait-heartbeat");
    let bob = r.invite("bob", "agent");
    let last = r.last_id();
    let t0 = Instant::now();
    let (s, v) = r.get(&wait_path("bob", last, 500), Some(&bob.token));
    let took = t0.elapsed();
    assert_eq!(s, 200, "{v}");
    assert!(
        took >= Duration::from_millis(400),
        "held about 500 ms, took {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(v["heartbeat"], true);
    assert_eq!(v["keep_waiting"], true);
    assert_eq!(v["messages"], json!([]));
    assert_eq!(v["mentioned"], false);
    assert_eq!(v["next_since_id"], last, "unchanged on a heartbeat");
    assert!(
        v["next_cmd"]
            .as_str()
            .unwrap()
            .contains(&format!("since_id={last}"))
    );
    assert_error(
        r.get(
            "/wait?participant=bob&since_id=0&timeout_ms=soon",
            Some(&bob.token),
        ),
        400,
        "invalid_query",
    );
}

#[test]
fn two_faces_of_one_participant_hold_waits_side_by_side() {
    // Audit round two, NL4: a wake runner and `attend` (or the MCP adapter and a model's
    // room_wait) of one participant superseded each other in a tight loop. Both waits now
    // stay held until there is news, and a post answers both.
    let r = TestRoom::start("wait-two-faces");
    let bob = r.invite("bob", "agent");
    let last = r.last_id();
    let faces: Vec<_> = (0..2)
        .map(|_| hold_wait(r.port, bob.token.clone(), "bob", last))
        .collect();
    r.until_waiting("bob");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        faces.iter().all(|f| !f.is_finished()),
        "a wait of one face ended the other's"
    );
    let m = r.say(&r.token, "for both faces");
    for f in faces {
        let (took, v) = f.join().unwrap();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert_eq!(v["messages"][0]["id"], m["id"], "{v}");
    }
}

/// A `/wait` of `alias` after `last`, held on a thread: how long it took, and its answer.
fn hold_wait(
    port: u16,
    token: String,
    alias: &'static str,
    last: u64,
) -> std::thread::JoinHandle<(Duration, Value)> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let v = Req::get(&wait_path(alias, last, 15_000))
            .token(&token)
            .send(port)
            .json();
        (t0.elapsed(), v)
    })
}

#[test]
fn a_wait_past_the_bound_supersedes_the_participants_oldest() {
    let r = TestRoom::start("wait-supersede");
    let bob = r.invite("bob", "agent");
    let last = r.last_id();
    let hold = |token: String| hold_wait(r.port, token, "bob", last);
    let first = hold(bob.token.clone());
    r.until_waiting("bob");
    // Three more fill the bound of four; give each time to register, in order.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(hold(bob.token.clone()));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!first.is_finished(), "four waits fit");
    others.push(hold(bob.token.clone()));
    let (took, v) = first.join().unwrap();
    assert!(
        took < Duration::from_secs(5),
        "the oldest wait answered after {took:?}, not when superseded"
    );
    assert_eq!(v["heartbeat"], true, "{v}");
    assert_eq!(v["keep_waiting"], true, "{v}");
    assert_eq!(v["messages"], json!([]));
    // The newer ones are still held: a post answers them.
    let m = r.say(&r.token, "for the newer waits");
    for o in others {
        let (_, v) = o.join().unwrap();
        assert_eq!(v["heartbeat"], false, "{v}");
        assert_eq!(v["messages"][0]["id"], m["id"]);
    }
}

#[test]
fn close_releases_held_waits() {
    let r = TestRoom::start("wait-close");
    let bob = r.invite("bob", "agent");
    let last = r.last_id();
    let port = r.port;
    let token = bob.token.clone();
    let waiter = std::thread::spawn(move || {
        let resp = Req::get(&wait_path("bob", last, 20_000))
            .token(&token)
            .send(port);
        (Instant::now(), resp.status, resp.json())
    });
    r.until_waiting("bob");
    let (s, v) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    let closed_at = Instant::now();
    let (at, s, v) = waiter.join().unwrap();
    assert!(at.saturating_duration_since(closed_at) < Duration::from_secs(1));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["room_status"], "closed", "{v}");
    assert_eq!(v["keep_waiting"], false, "{v}");
    assert!(v["next_cmd"].is_null(), "{v}");
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "system" && m["text"].as_str().unwrap().contains("closed")),
        "{v}"
    );
    // A later wait on the closed room answers at once, even when caught up.
    let next = v["next_since_id"].as_u64().unwrap();
    let t0 = Instant::now();
    let (s, v) = r.get(&wait_path("bob", next, 20_000), Some(&bob.token));
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(s, 200);
    assert_eq!(v["room_status"], "closed");
    assert_eq!(v["keep_waiting"], false);
    assert!(v["next_cmd"].is_null());
}

#[test]
fn removed_participant_wait() {
    let r = TestRoom::start("wait-removed");
    let bob = r.invite("bob", "agent");
    let last = r.last_id();
    let port = r.port;
    let token = bob.token.clone();
    let waiter = std::thread::spawn(move || {
        Req::get(&wait_path("bob", last, 20_000))
            .token(&token)
            .send(port)
            .json()
    });
    r.until_waiting("bob");
    let t0 = Instant::now();
    let (s, v) = r.post("/remove", Some(&r.token), &json!({"alias": "bob"}));
    assert_eq!(s, 200, "{v}");
    let v = waiter.join().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "removal releases a held wait"
    );
    assert_eq!(v["participant_status"], "removed", "{v}");
    assert_eq!(v["keep_waiting"], false, "{v}");
    // And a new wait answers the same at once.
    let (s, v) = r.get(&wait_path("bob", 0, 20_000), Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["participant_status"], "removed");
    assert_eq!(v["keep_waiting"], false);
    assert!(v["next_cmd"].is_null());
}

// ---------------------------------------------------------------------------------------
// /leave, /close

#[test]
fn leave_sets_away_with_a_system_message() {
    let r = TestRoom::start("leave");
    let bob = r.invite("bob", "agent");
    r.post("/join", Some(&bob.token), &json!({}));
    let (s, v) = r.post("/leave", Some(&bob.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["attention"], "away");
    let last = r.last_message();
    assert_eq!(last["type"], "system");
    assert!(
        last["text"].as_str().unwrap().contains("bob left"),
        "{last}"
    );
    let p = r.roster_entry("bob");
    assert_eq!(p["attention"], "away", "{p}");
    // Leaving is not being removed: bob can still post and join again.
    r.say(&bob.token, "back again");
    let (s, _) = r.post("/join", Some(&bob.token), &json!({}));
    assert_eq!(s, 200);
    assert_eq!(r.roster_entry("bob")["attention"], "attending");
    assert_error(r.post("/leave", None, &json!({})), 401, "unauthorized");
}

#[test]
fn close_is_host_only_and_stops_posts_but_not_reads() {
    let r = TestRoom::start("close");
    let bob = r.invite("bob", "agent");
    r.say(&bob.token, "before close");
    assert_error(
        r.post("/close", Some(&bob.token), &json!({})),
        403,
        "host_required",
    );
    let (s, v) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["room_status"], "closed");
    let last = r.last_message();
    assert_eq!(last["type"], "system");
    assert!(last["text"].as_str().unwrap().contains("closed"), "{last}");
    // Closing again is harmless.
    let (s, v) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    // Writes are refused.
    assert_error(
        r.post("/messages", Some(&bob.token), &json!({"text": "too late"})),
        403,
        "room_closed",
    );
    assert_error(
        r.post("/messages", Some(&r.token), &json!({"text": "too late"})),
        403,
        "room_closed",
    );
    assert_error(
        r.post("/brief", Some(&r.token), &json!({"body": "late"})),
        403,
        "room_closed",
    );
    // Reads still work.
    let (s, v) = r.get("/messages?since_id=0", Some(&bob.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["room_status"], "closed");
    assert!(texts(v["messages"].as_array().unwrap()).contains(&"before close".to_string()));
    let st = r.status(&bob.token);
    assert_eq!(st["room_status"], "closed");
    assert_eq!(r.get("/brief", Some(&bob.token)).0, 200);
    assert_eq!(r.request(Req::get("/card").token(&bob.token)).status, 200);
    assert_eq!(r.get("/export?format=json", Some(&r.token)).0, 200);
    // The closed state is on disk.
    let meta: Value =
        serde_json::from_slice(&std::fs::read(r.home.room_dir(&r.room).join("room.json")).unwrap())
            .unwrap();
    assert_eq!(meta["status"], "closed", "{meta}");
}

// ---------------------------------------------------------------------------------------
// /status

#[test]
fn status_fields_read_receipts_and_no_secrets() {
    let r = TestRoom::start_with("status", &["--ttl", "1m"]);
    let bob = r.invite("bob", "agent");
    let alice = r.invite("alice", "human");
    let resp = r.request(Req::get("/status").token(&bob.token));
    assert_eq!(resp.status, 200);
    let st = resp.json();
    for f in [
        "ok",
        "room",
        "me",
        "is_host",
        "room_status",
        "attendance_policy",
        "brief_version",
        "brief_updated_at",
        "brief_updated_by",
        "expires_at",
        "stale_after_ms",
        "participants",
    ] {
        assert!(st.get(f).is_some(), "/status lacks {f}: {st}");
    }
    assert_eq!(st["room"], "status");
    assert_eq!(st["me"], "bob");
    assert_eq!(st["is_host"], false);
    assert_eq!(st["room_status"], "open");
    assert_eq!(st["stale_after_ms"], 90_000);
    assert_eq!(r.status(&r.token)["is_host"], true);
    // TTL: expires_at is about a minute from now (RFC 3339 text).
    let expires = st["expires_at"].as_str().expect("expires_at with --ttl");
    assert!(expires.len() >= 20 && expires.contains('T'), "{expires}");
    let roster = st["participants"].as_array().unwrap();
    assert_eq!(roster.len(), 3);
    for p in roster {
        for f in [
            "alias",
            "display_name",
            "kind",
            "location",
            "install",
            "attention",
            "is_host",
            "last_seen_age_ms",
            "attendance_required",
            "attendance_state",
            "read_through_id",
        ] {
            assert!(p.get(f).is_some(), "participant lacks {f}: {p}");
        }
    }
    let host = roster.iter().find(|p| p["alias"] == "operator").unwrap();
    assert_eq!(host["is_host"], true);
    assert_eq!(host["kind"], "human");
    assert_eq!(host["install"], "host");
    let a = roster.iter().find(|p| p["alias"] == "alice").unwrap();
    assert_eq!(a["kind"], "human");
    assert_eq!(a["read_through_id"], 0);
    assert!(a["last_seen_age_ms"].is_null(), "alice was never seen: {a}");
    // No secret anywhere in the answer.
    let body = resp.text();
    for secret in [&r.token, &bob.token, &alice.token] {
        assert!(
            !body.contains(secret.as_str()),
            "a token leaked into /status"
        );
    }
    assert!(!body.contains("tgl_"));
    assert!(!body.contains("token"), "{body}");
    // Token hashes stay on disk only (and raw tokens never reach the room directory).
    let parts =
        std::fs::read_to_string(r.home.room_dir(&r.room).join("participants.json")).unwrap();
    assert!(parts.contains("token_hash"));
    for secret in [&r.token, &bob.token, &alice.token] {
        assert!(!parts.contains(secret.as_str()));
    }
    let parts: Value = serde_json::from_str(&parts).unwrap();
    for p in parts["participants"].as_array().unwrap() {
        let h = p["token_hash"].as_str().unwrap();
        assert!(!body.contains(h), "a token hash leaked into /status");
    }

    // read_through_id advances with what /messages and /wait deliver.
    r.say(&r.token, "one");
    let m2 = r.say(&r.token, "two");
    let (_, v) = r.get("/messages?since_id=0&limit=1", Some(&bob.token));
    let first = v["next_since_id"].as_u64().unwrap();
    assert_eq!(r.roster_entry("bob")["read_through_id"], first);
    let (_, _) = r.get("/messages?since_id=0", Some(&bob.token));
    assert_eq!(r.roster_entry("bob")["read_through_id"], m2["id"]);
    // Reading old messages again never moves it back.
    r.get("/messages?since_id=0&limit=1", Some(&bob.token));
    assert_eq!(r.roster_entry("bob")["read_through_id"], m2["id"]);
    let (_, v) = r.get(&wait_path("alice", 0, 1000), Some(&alice.token));
    assert_eq!(
        r.roster_entry("alice")["read_through_id"],
        v["next_since_id"]
    );
    assert!(r.roster_entry("alice")["last_seen_age_ms"].is_u64());
    assert_error(r.get("/status", None), 401, "unauthorized");
}

// ---------------------------------------------------------------------------------------
// /invite, /remove

/// The first visit of an invited person names who invited them: `/profile` says so.
#[test]
fn profile_names_the_inviter() {
    let r = TestRoom::start("inviter");
    let carol = r.invite_http("carol", "human").token;
    let (s, v) = r.get("/profile", Some(&carol));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["invited_by"], "operator", "{v}");
    // The host was invited by no one: the field is absent.
    let (s, v) = r.get("/profile", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert!(v.get("invited_by").is_none(), "{v}");
}

#[test]
fn invite_and_remove_over_http() {
    let r = TestRoom::start("invite-remove");
    let (s, v) = r.post(
        "/invite",
        Some(&r.token),
        &json!({"alias": "carol", "kind": "human"}),
    );
    assert_eq!(s, 201, "{v}");
    let carol = v["token"].as_str().unwrap().to_string();
    assert!(carol.starts_with("tgl_"));
    assert_eq!(v["kind"], "human");
    assert!(
        v["browser_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/#token={carol}"))
    );
    assert!(
        v["invite_uri"]
            .as_str()
            .unwrap()
            .starts_with("agentgather://join?")
    );
    assert!(
        v["card_command"]
            .as_str()
            .unwrap()
            .contains("/card?participant=carol")
    );
    assert_eq!(r.status(&carol)["me"], "carol");
    // Errors.
    assert_error(
        r.post("/invite", Some(&r.token), &json!({"alias": "carol"})),
        409,
        "alias_taken",
    );
    assert_error(
        r.post("/invite", Some(&r.token), &json!({"alias": "operator"})),
        409,
        "alias_taken",
    );
    for bad in ["Bad", "a.b", "../x", "-x", "", "system"] {
        assert_error(
            r.post("/invite", Some(&r.token), &json!({"alias": bad})),
            400,
            "invalid_alias",
        );
    }
    assert_error(
        r.post(
            "/invite",
            Some(&r.token),
            &json!({"alias": "d", "kind": "robot"}),
        ),
        400,
        "invalid_kind",
    );
    assert_error(
        r.post(
            "/invite",
            Some(&r.token),
            &json!({"alias": "d", "kind": "system"}),
        ),
        400,
        "invalid_kind",
    );
    assert_error(
        r.post("/invite", Some(&carol), &json!({"alias": "mallory"})),
        403,
        "host_required",
    );
    assert_error(
        r.post("/remove", Some(&carol), &json!({"alias": "operator"})),
        403,
        "host_required",
    );
    assert_error(
        r.post("/remove", Some(&r.token), &json!({"alias": "operator"})),
        409,
        "cannot_remove_host",
    );
    assert_error(
        r.post("/remove", Some(&r.token), &json!({"alias": "ghost"})),
        404,
        "not_found",
    );

    // The CLI invite (through the server) shows the same shape.
    let dave = r.invite("dave", "agent");
    for f in ["token", "card_command", "browser_url", "invite_uri"] {
        assert!(dave.json[f].is_string(), "room invite --json lacks {f}");
    }
    let m = r.say(&dave.token, "dave was here");

    // Remove dave: a system message; his writes are 410, reads refused too.
    let (s, v) = r.post("/remove", Some(&r.token), &json!({"alias": "dave"}));
    assert_eq!(s, 200, "{v}");
    let last = r.last_message();
    assert_eq!(last["type"], "system");
    assert!(
        last["text"].as_str().unwrap().contains("dave was removed"),
        "{last}"
    );
    for (path, body) in [
        ("/messages", json!({"text": "still here?"})),
        ("/join", json!({})),
        ("/leave", json!({})),
        ("/profile", json!({"display_name": "Dave"})),
    ] {
        assert_error(
            r.post(path, Some(&dave.token), &body),
            410,
            "participant_removed",
        );
    }
    assert_error(
        r.get("/messages", Some(&dave.token)),
        410,
        "participant_removed",
    );
    assert_error_resp(
        &r.request(Req::get("/card").token(&dave.token)),
        410,
        "participant_removed",
    );
    assert_error(
        r.post("/remove", Some(&r.token), &json!({"alias": "dave"})),
        409,
        "already_removed",
    );
    // The alias stays taken, his message stays in the log, the roster marks him removed.
    assert_error(
        r.post("/invite", Some(&r.token), &json!({"alias": "dave"})),
        409,
        "alias_taken",
    );
    assert!(r.all_messages().iter().any(|x| x["id"] == m["id"]));
    let p = r.roster_entry("dave");
    assert_eq!(p["attendance_state"], "removed", "{p}");
    // A mention of a removed participant no longer counts.
    assert_eq!(
        r.say(&r.token, "@dave are you there")["mentions"],
        json!([])
    );
}

// ---------------------------------------------------------------------------------------
// /export

#[test]
fn export_markdown_and_json() {
    let r = TestRoom::start("export");
    let bob = r.invite("bob", "agent");
    r.say(&bob.token, "exported line with **markdown**");
    let log_before = std::fs::read(r.log_path()).unwrap();

    let resp = r.request(Req::get("/export?format=md").token(&r.token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/markdown")),
        "{:?}",
        resp.headers
    );
    let md = resp.text();
    assert!(md.contains("exported line with **markdown**"), "{md}");
    assert!(md.contains(DEFAULT_BRIEF), "{md}");
    assert!(!md.contains(&bob.token) && !md.contains(&r.token));

    let (s, v) = r.get("/export?format=json", Some(&r.token));
    assert_eq!(s, 200, "{v}");
    assert!(v["version"].is_u64(), "{v}");
    assert_eq!(v["room"], "export");
    let msgs = v["messages"].as_array().expect("messages");
    assert!(texts(msgs).contains(&"exported line with **markdown**".to_string()));
    assert!(!v.to_string().contains("tgl_"));
    assert!(!v.to_string().contains("token_hash"));
    // Default format is JSON.
    let (s, v2) = r.get("/export", Some(&r.token));
    assert_eq!(s, 200);
    assert_eq!(v2["messages"], v["messages"]);

    assert_error(
        r.get("/export?format=xml", Some(&r.token)),
        400,
        "invalid_format",
    );
    assert_error(
        r.get("/export?format=json", Some(&bob.token)),
        403,
        "host_required",
    );
    assert_error(r.get("/export", None), 401, "unauthorized");
    assert_eq!(
        std::fs::read(r.log_path()).unwrap(),
        log_before,
        "export never changes the log"
    );
}

// ---------------------------------------------------------------------------------------
// Routing, auth, exposure

#[test]
fn unknown_paths_wrong_methods_and_auth() {
    let r = TestRoom::start("routing");
    let resp = r.request(Req::get("/nope").token(&r.token));
    assert_error_resp(&resp, 404, "not_found");
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.contains("json"))
    );
    assert_error_resp(&r.request(Req::get("/messages/1")), 404, "not_found");
    assert_error_resp(&r.request(Req::post("/nope").body("{}")), 404, "not_found");

    for (method, path) in [
        ("GET", "/join"),
        ("GET", "/close"),
        ("GET", "/leave"),
        ("DELETE", "/messages"),
        ("PUT", "/brief"),
        ("POST", "/wait"),
        ("POST", "/status"),
        ("GET", "/invite"),
        ("PATCH", "/profile"),
    ] {
        let resp = r.request(Req::new(method, path).token(&r.token));
        assert_eq!(resp.status, 405, "{method} {path}: {}", resp.text());
        let v = resp.json();
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }

    // 401 without a token, with a wrong token, with a malformed header.
    for (method, path) in [
        ("GET", "/brief"),
        ("POST", "/brief"),
        ("GET", "/messages"),
        ("POST", "/messages"),
        ("GET", "/wait"),
        ("POST", "/join"),
        ("POST", "/leave"),
        ("POST", "/close"),
        ("GET", "/status"),
        ("GET", "/profile"),
        ("POST", "/attendance"),
        ("POST", "/invite"),
        ("POST", "/remove"),
        ("GET", "/export"),
        ("GET", "/card"),
    ] {
        let mk = || {
            let q = Req::new(method, path);
            if method == "POST" { q.body("{}") } else { q }
        };
        assert_error_resp(&r.request(mk()), 401, "unauthorized");
        assert_error_resp(
            &r.request(mk().token("tgl_not-a-real-token")),
            401,
            "unauthorized",
        );
        assert_error_resp(
            &r.request(mk().header("Authorization", &format!("Basic {}", r.token))),
            401,
            "unauthorized",
        );
    }
    // The bearer scheme is case-insensitive; the token itself is exact.
    let resp =
        r.request(Req::get("/status").header("Authorization", &format!("bearer {}", r.token)));
    assert_eq!(resp.status, 200);
    let upper = r.token.to_uppercase();
    if upper != r.token {
        assert_error_resp(
            &r.request(Req::get("/status").token(&upper)),
            401,
            "unauthorized",
        );
    }
}

#[test]
fn exposure_rules_host_and_origin() {
    let r = TestRoom::start("exposure");
    let t = r.token.clone();
    // A non-loopback Host is refused, even with a valid token and even for GET /.
    for host in [
        "example.com",
        "example.com:80",
        "10.0.0.1",
        "127.0.0.1.evil.com",
    ] {
        assert_error_resp(
            &r.request(Req::get("/status").token(&t).header("Host", host)),
            403,
            "insecure_remote",
        );
        assert_error_resp(
            &r.request(Req::get("/").header("Host", host)),
            403,
            "insecure_remote",
        );
    }
    assert_error_resp(
        &r.request(
            Req::post("/messages")
                .token(&t)
                .header("Host", "example.com")
                .json(&json!({"text": "via a foreign host"})),
        ),
        403,
        "insecure_remote",
    );
    // Loopback names are fine.
    for host in [
        "localhost",
        &format!("localhost:{}", r.port),
        "127.0.0.1",
        "[::1]",
    ] {
        let resp = r.request(Req::get("/status").token(&t).header("Host", host));
        assert_eq!(resp.status, 200, "{host}: {}", resp.text());
    }
    // Cross-origin writes are refused; same-origin and no-origin writes pass.
    let before = r.all_messages().len();
    for (h, v) in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", "http://127.0.0.1:1"),
        ("Referer", "http://evil.example/page"),
    ] {
        assert_error_resp(
            &r.request(
                Req::post("/messages")
                    .token(&t)
                    .header(h, v)
                    .json(&json!({"text": "csrf"})),
            ),
            403,
            "bad_origin",
        );
    }
    assert_error_resp(
        &r.request(
            Req::post("/close")
                .token(&t)
                .header("Origin", "http://evil.example")
                .body("{}"),
        ),
        403,
        "bad_origin",
    );
    assert_eq!(
        r.all_messages().len(),
        before,
        "nothing was posted cross-origin"
    );
    assert_eq!(r.status(&t)["room_status"], "open");
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .header("Origin", &r.url)
            .json(&json!({"text": "same origin"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = r.request(
        Req::post("/messages")
            .token(&t)
            .header("Referer", &format!("{}/#token=x", r.url))
            .json(&json!({"text": "same origin referer"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    // Reads with a foreign Origin are not writes.
    let resp = r.request(
        Req::get("/status")
            .token(&t)
            .header("Origin", "http://evil.example"),
    );
    assert_eq!(resp.status, 200);
}

// ---------------------------------------------------------------------------------------
// Guards: rate limit, loop guard

#[test]
fn rate_limit_per_participant() {
    let r = TestRoom::start("rate-limit");
    let hum = r.invite("hum", "human");
    for i in 0..120 {
        let (s, v) = r.post(
            "/messages",
            Some(&hum.token),
            &json!({"text": format!("r{i}")}),
        );
        assert_eq!(s, 201, "post {i}: {v}");
    }
    assert_error(
        r.post(
            "/messages",
            Some(&hum.token),
            &json!({"text": "one too many"}),
        ),
        429,
        "rate_limited",
    );
    // Per participant: the host can still post.
    r.say(&r.token, "the host is not limited by hum");
    // A new client_msg_id is a new post, so it is limited too.
    let (s, v) = r.post(
        "/messages",
        Some(&hum.token),
        &json!({"text": "x", "client_msg_id": "never-sent"}),
    );
    assert_eq!(s, 429, "{v}");
}

#[test]
fn loop_guard_for_agents_reset_by_a_human() {
    let r = TestRoom::start("loop-guard");
    let bot = r.invite("bot", "agent");
    let bot2 = r.invite("bot2", "agent");
    for i in 0..30 {
        let (s, v) = r.post(
            "/messages",
            Some(&bot.token),
            &json!({"text": format!("b{i}")}),
        );
        assert_eq!(s, 201, "post {i}: {v}");
    }
    assert_error(
        r.post("/messages", Some(&bot.token), &json!({"text": "31st"})),
        429,
        "loop_guard",
    );
    // Another agent is counted on its own.
    assert_eq!(
        r.post(
            "/messages",
            Some(&bot2.token),
            &json!({"text": "other agent"})
        )
        .0,
        201
    );
    // A human post (the host is human) resets it.
    r.say(&r.token, "human says: carry on");
    for i in 0..30 {
        let (s, v) = r.post(
            "/messages",
            Some(&bot.token),
            &json!({"text": format!("c{i}")}),
        );
        assert_eq!(s, 201, "after reset, post {i}: {v}");
    }
    assert_error(
        r.post(
            "/messages",
            Some(&bot.token),
            &json!({"text": "again 31st"}),
        ),
        429,
        "loop_guard",
    );
    // An invited human resets it as well.
    let hum = r.invite("hum", "human");
    r.say(&hum.token, "a human guest");
    assert_eq!(
        r.post("/messages", Some(&bot.token), &json!({"text": "ok again"}))
            .0,
        201
    );
}

#[test]
fn ttl_is_reported() {
    let r = TestRoom::start_with("ttl", &["--ttl", "1m"]);
    let st = r.status(&r.token);
    let exp = st["expires_at"].as_str().expect("expires_at");
    let created = st["created_at"].as_str().unwrap_or("");
    assert!(exp > created, "{exp} after {created}");
    assert_eq!(st["room_status"], "open");
    let card = r.request(Req::get("/card").token(&r.token)).text();
    assert!(!card.is_empty());
    // Without a TTL there is no expiry.
    let r2 = TestRoom::start("no-ttl");
    assert!(r2.status(&r2.token)["expires_at"].is_null());
    // A TTL under the minimum is refused before anything is created.
    let home = TempHome::new("ttl-short");
    let o = cli(
        &home,
        &[
            "room",
            "start",
            "short",
            "--ttl",
            "1s",
            "--url",
            "http://127.0.0.1:1",
        ],
    );
    assert!(!o.status.success());
    assert!(!home.room_dir("short").exists());
}

#[test]
fn ttl_timer_closes_the_room_and_releases_waits() {
    // `--ttl 1m` is the minimum, so move the stored expiry (room.json is the
    // human-inspectable source of truth) to a moment from now before serving.
    let home = TempHome::new("ttl-timer");
    let port = free_port();
    let v = start_room(&home, "ttl-timer", port, &["--ttl", "1m"]);
    let token = v["token"].as_str().unwrap().to_string();
    let meta_path = home.room_dir("ttl-timer").join("room.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert!(meta["expires_at"].is_string(), "{meta}");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(5000);
    meta["expires_at"] = json!(
        soon.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let _server = Server::spawn(&home, port, &[]);
    let (_, st) = get(port, "/status", Some(&token));
    assert_eq!(st["room_status"], "open", "{st}");
    let last = st["last_id"].as_u64().unwrap();
    // A held wait is released by the timer alone: no request arrives meanwhile.
    let t0 = Instant::now();
    let (s, w) = get(port, &wait_path("operator", last, 20_000), Some(&token));
    assert_eq!(s, 200, "{w}");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(w["room_status"], "closed", "{w}");
    assert_eq!(w["keep_waiting"], false);
    assert!(w["next_cmd"].is_null());
    let sys = &w["messages"][0];
    assert_eq!(sys["type"], "system", "{w}");
    assert_eq!(sys["from"], "system", "{w}");
    assert_error(
        post(port, "/messages", Some(&token), &json!({"text": "late"})),
        403,
        "room_closed",
    );
}

#[test]
fn expired_room_closes_on_start() {
    let home = TempHome::new("ttl-past");
    let port = free_port();
    let v = start_room(&home, "ttl-past", port, &["--ttl", "1m"]);
    let token = v["token"].as_str().unwrap().to_string();
    let meta_path = home.room_dir("ttl-past").join("room.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["expires_at"] = meta["created_at"].clone();
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let _server = Server::spawn(&home, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, st) = get(port, "/status", Some(&token));
        if st["room_status"] == "closed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an expired room stays open: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mentions_are_resolved_against_current_participants() {
    let r = TestRoom::start("mentions");
    r.invite("bob", "agent");
    r.invite("bob-2", "agent");
    let cases: &[(&str, &[&str])] = &[
        ("@bob hi", &["bob"]),
        ("hi @bob, and (@bob-2)", &["bob", "bob-2"]),
        ("mail me at me@bob", &[]),
        ("@bobby is nobody", &[]),
        ("`@bob` in code", &[]),
        ("```\n@bob in a fence\n```", &[]),
        ("@nobody @operator", &["operator"]),
        ("@bob @bob twice", &["bob"]),
    ];
    for (text, want) in cases {
        let m = r.say(&r.token, text);
        let mut got: Vec<String> = m["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "mentions of {text:?}");
        assert_eq!(m["text"], *text, "text is stored as sent");
    }
}

#[test]
fn display_name_cannot_impersonate_an_alias() {
    let r = TestRoom::start("impersonate");
    let eve = r.invite("eve", "human");
    r.invite("bob", "agent");
    for name in ["bob", "BOB", "operator", " Operator "] {
        assert_error(
            r.post("/profile", Some(&eve.token), &json!({"display_name": name})),
            409,
            "display_name_taken",
        );
    }
    // Your own alias as your display name is fine.
    let (s, v) = r.post(
        "/profile",
        Some(&eve.token),
        &json!({"display_name": "Eve"}),
    );
    assert_eq!(s, 200, "{v}");
}

#[test]
fn log_over_cap_still_opens_and_reads_but_refuses_posts() {
    let home = TempHome::new("log-cap");
    let port = free_port();
    let v = start_room(&home, "log-cap", port, &[]);
    let token = v["token"].as_str().unwrap().to_string();
    // Fill the log past the 50,000-message cap while no server runs.
    let log = home.log_path("log-cap");
    let mut bytes = std::fs::read(&log).unwrap();
    let existing = read_log_lines(&log);
    let mut id = existing.last().unwrap()["id"].as_u64().unwrap();
    while id < 50_005 {
        id += 1;
        let line = json!({
            "id": id, "room": "log-cap", "ts": "2026-01-01T00:00:00.000Z", "from": "operator",
            "type": "message", "text": format!("filler {id}"), "mentions": []
        });
        bytes.extend_from_slice(line.to_string().as_bytes());
        bytes.push(b'\n');
    }
    std::fs::write(&log, &bytes).unwrap();
    let _server = Server::spawn(&home, port, &[]);
    let (s, v) = get(port, "/messages?since_id=50000", Some(&token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 5);
    let (_, st) = get(port, "/status", Some(&token));
    assert_eq!(st["last_id"], 50_005, "{st}");
    assert_error(
        post(
            port,
            "/messages",
            Some(&token),
            &json!({"text": "one more"}),
        ),
        507,
        "room_log_full",
    );
    // The host can still close it, and it says so.
    let (s, _) = post(port, "/close", Some(&token), &json!({}));
    assert_eq!(s, 200);
    let (_, v) = get(port, "/messages?since_id=50005", Some(&token));
    assert_eq!(v["messages"][0]["type"], "system", "{v}");
    assert_eq!(v["messages"][0]["id"], 50_006);
    assert!(std::fs::read(&log).unwrap().len() > bytes.len());
    read_log_lines(&log);
}

#[test]
fn same_origin_write_via_localhost_is_allowed() {
    // The browser room opened at http://localhost:PORT (Host is loopback, so GET / is
    // served) posts with Origin: http://localhost:PORT, which is its own origin.
    let r = TestRoom::start("localhost-origin");
    let origin = format!("http://localhost:{}", r.port);
    let host = format!("localhost:{}", r.port);
    assert_eq!(r.request(Req::get("/").header("Host", &host)).status, 200);
    let resp = r.request(
        Req::post("/messages")
            .token(&r.token)
            .header("Host", &host)
            .header("Origin", &origin)
            .json(&json!({"text": "from the localhost page"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
}

#[test]
fn concurrent_retries_with_one_client_msg_id_append_once() {
    let r = TestRoom::start("idem-race");
    let bob = r.invite("bob", "human");
    let before = r.all_messages().len();
    let port = r.port;
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let token = bob.token.clone();
            std::thread::spawn(move || {
                let resp = Req::post("/messages")
                    .token(&token)
                    .json(&json!({"text": "exactly once", "client_msg_id": "race-1"}))
                    .send(port);
                (resp.status, resp.json())
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let repeated = answers
        .iter()
        .filter(|(s, v)| *s == 200 && v["idempotent"] == true)
        .count();
    assert_eq!((created, repeated), (1, 15), "{answers:?}");
    let id = &answers.iter().find(|(s, _)| *s == 201).unwrap().1["message"]["id"];
    assert!(answers.iter().all(|(_, v)| &v["message"]["id"] == id));
    assert_eq!(r.all_messages().len(), before + 1);
}

#[test]
fn oversized_headers_are_refused_and_the_server_keeps_serving() {
    let r = TestRoom::start("big-headers");
    let huge = "x".repeat(1024 * 1024);
    let req = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nX-Big: {huge}\r\n\r\n",
        r.token
    );
    if let Ok(out) = send_raw_bytes(r.port, req.as_bytes(), Duration::from_secs(15)) {
        let head = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        assert!(
            out.is_empty() || head.starts_with("HTTP/1.1 4"),
            "a 1 MB header got: {head}"
        );
    }
    let many: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n{many}\r\n",
        r.token
    );
    if let Ok(out) = send_raw_bytes(r.port, req.as_bytes(), Duration::from_secs(15)) {
        let head = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        assert!(
            out.is_empty() || head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 200"),
            "5000 headers got: {head}"
        );
    }
    assert_eq!(r.status(&r.token)["ok"], true);
}

#[test]
fn card_commands_work_as_printed() {
    // The card is the no-install interface: its curl lines must run as they are.
    if !curl_or_skip("card_commands_work_as_printed") {
        return;
    }
    let r = TestRoom::start("card-curl");
    let bob = r.invite("bob", "agent");
    // The card_command itself, through a shell.
    let card_cmd = bob.json["card_command"].as_str().unwrap();
    let o = std::process::Command::new("sh")
        .args(["-c", card_cmd])
        .output()
        .unwrap();
    assert!(o.status.success());
    let card = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(card.contains(DEFAULT_BRIEF), "{card}");
    assert!(
        !card.contains("\"from\""),
        "the card never tells a client to send from"
    );
    // SPEC §10: the curl section's lines run in order, verbatim, in a shell whose HOME
    // is the agent's (the first line stores the token there; the others read it).
    let section = &card[card.find("## Take part with curl").unwrap()..];
    let section = &section[..section[3..].find("\n## ").unwrap() + 3];
    let commands: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(str::trim)
        .collect();
    assert!(commands.len() >= 8, "{card}");
    assert!(
        commands[0].contains("umask 077"),
        "the set-up comes first: {card}"
    );
    let agent = TempHome::new("card-curl-agent");
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .env("HOME", &agent.root)
            .current_dir(&agent.root)
            .output()
            .unwrap()
    };
    let mut ran = 0;
    for cmd in &commands {
        // Leave runs last.
        if cmd.contains("/leave") {
            continue;
        }
        let cmd = cmd.replace("/wait?", "/wait?timeout_ms=500&");
        let o = sh(&cmd);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        if !cmd.starts_with("curl ") {
            continue;
        }
        assert!(
            !cmd.contains(&bob.token),
            "only the set-up carries the token: {cmd}"
        );
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{cmd} printed no JSON ({e}): {}", stdout(&o)));
        assert_eq!(v["ok"], true, "{cmd} -> {v}");
        ran += 1;
    }
    assert!(ran >= 6);
    let msgs = r.all_messages();
    assert!(
        msgs.iter()
            .any(|m| m["from"] == "bob" && m["type"] != "system")
    );
    assert!(
        msgs.iter()
            .any(|m| m["text"].as_str().unwrap().contains("bob joined"))
    );
    let leave = commands.iter().find(|c| c.contains("/leave")).unwrap();
    let o = sh(leave);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["attention"], "away");
    // The wait's next_cmd runs as printed too.
    let (_, w) = r.get(&wait_path("bob", 0, 500), Some(&bob.token));
    let next = w["next_cmd"]
        .as_str()
        .unwrap()
        .replace("/wait?", "/wait?timeout_ms=300&");
    let o = sh(&next);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["heartbeat"], true, "{v}");
}
