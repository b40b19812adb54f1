//! `POST /messages`: who a message is from, idempotent retries (one at a time and at
//! once), validation, size limits and hostile bodies.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

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
