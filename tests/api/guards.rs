//! The room's guards: the per-participant rate limit, the agents' loop guard, the TTL,
//! mentions and display names that cannot impersonate, and the log's size cap.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::wait_path;

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
