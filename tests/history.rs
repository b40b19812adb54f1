//! Long history (`GET /messages?before_id=N&limit=L`), end to end against the real binary:
//! pages read backwards through a log longer than the server's tail cache, its cursor
//! errors, and that reading old pages never moves a reader's `read_through_id`.

mod common;

use std::io::Write;

use common::*;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<u64> {
    v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {v}"))
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// A room whose log holds `extra` more messages than `room start` wrote, appended to
/// `messages.jsonl` before the server starts (posting them would meet the rate limit).
fn long_room(name: &str, extra: u64) -> (TestRoom, u64) {
    let home = TempHome::new(name);
    let port = free_port();
    let v = start_room(&home, name, port, &[]);
    let log = home.log_path(name);
    let first = read_log_lines(&log)
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .max()
        .unwrap_or(0)
        + 1;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut buf = Vec::new();
    for id in first..first + extra {
        let m = json!({
            "id": id, "room": name, "ts": "2026-01-01T00:00:00.000Z", "from": "operator",
            "type": "message", "text": format!("line {id}"), "mentions": [],
        });
        serde_json::to_writer(&mut buf, &m).unwrap();
        buf.push(b'\n');
    }
    f.write_all(&buf).unwrap();
    drop(f);
    let server = Server::spawn(&home, port, &[]);
    let room = TestRoom {
        server,
        room: name.to_string(),
        alias: "operator".into(),
        token: v["token"].as_str().unwrap().to_string(),
        url: format!("http://127.0.0.1:{port}"),
        port,
        home,
    };
    (room, first + extra - 1)
}

fn read_through(r: &TestRoom, alias: &str) -> u64 {
    r.roster_entry(alias)["read_through_id"].as_u64().unwrap()
}

#[test]
fn before_id_pages_back_through_the_whole_log_without_gaps() {
    // More than the 4,096-message tail cache, so pages come from the file, the cache, and
    // both at once.
    let (r, last) = long_room("history-pages", 6_000);
    let alice = r.invite_http("alice", "human");

    // The newest page, then older ones, each ending just before the previous one.
    let mut before = last + 1;
    let mut seen: Vec<u64> = Vec::new();
    let mut pages = 0;
    loop {
        let (s, v) = r.get(
            &format!("/messages?before_id={before}&limit=700"),
            Some(&alice.token),
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["room"], "history-pages", "{v}");
        let page = ids(&v);
        assert!(
            page.len() <= 700,
            "{} messages in a page of 700",
            page.len()
        );
        assert!(
            page.windows(2).all(|w| w[0] + 1 == w[1]),
            "a page is oldest first, without gaps"
        );
        assert!(page.iter().all(|&id| id < before), "ids below the cursor");
        if let Some(&newest) = page.last() {
            assert_eq!(newest, before - 1, "the page ends right below the cursor");
        }
        let more = v["has_more_before"].as_bool().expect("has_more_before");
        assert_eq!(
            more,
            page.first().is_some_and(|&f| f > 1),
            "has_more_before says whether older messages remain"
        );
        seen.splice(0..0, page.iter().copied());
        pages += 1;
        if !more {
            break;
        }
        before = page[0];
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(seen, (1..=last).collect::<Vec<u64>>(), "every message once");
    assert_eq!(pages, (last as usize).div_ceil(700));

    // Reading history is not delivery: alice's read receipt did not move.
    assert_eq!(read_through(&r, "alice"), 0);

    // The default page is the newest 100; the texts are the stored ones.
    let (s, v) = r.get(
        &format!("/messages?before_id={}", last + 1),
        Some(&alice.token),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), (last - 99..=last).collect::<Vec<u64>>());
    assert_eq!(v["messages"][0]["text"], format!("line {}", last - 99));
    assert_eq!(v["has_more_before"], true);

    // A cursor past the end reads the newest page; limit is at least 1, at most 1,000.
    let (_, v) = r.get("/messages?before_id=999999999&limit=2", Some(&alice.token));
    assert_eq!(ids(&v), [last - 1, last]);
    let (_, v) = r.get("/messages?before_id=50&limit=0", Some(&alice.token));
    assert_eq!(ids(&v), [49]);
    let (_, v) = r.get("/messages?before_id=5000&limit=100000", Some(&alice.token));
    assert_eq!(ids(&v), (4_000..5_000).collect::<Vec<u64>>());

    // Once alice has read up to the end, old pages never move her receipt backwards.
    let (s, v) = r.get("/messages?since_id=0&tail=5", Some(&alice.token));
    assert_eq!(s, 200, "{v}");
    assert_eq!(read_through(&r, "alice"), last);
    let (s, _) = r.get("/messages?before_id=10&limit=5", Some(&alice.token));
    assert_eq!(s, 200);
    assert_eq!(read_through(&r, "alice"), last);
}

#[test]
fn before_id_cursor_errors_and_edges() {
    let r = TestRoom::start("history-errors");
    for i in 0..5 {
        r.say(&r.token, &format!("m{i}"));
    }
    let last = r.last_id();
    let t = Some(r.token.as_str());

    // One cursor at a time.
    assert_error(
        r.get("/messages?before_id=3&since_id=1", t),
        400,
        "invalid_cursor",
    );
    assert_error(
        r.get("/messages?since_id=0&before_id=3", t),
        400,
        "invalid_cursor",
    );
    assert_error(
        r.get("/messages?before_id=3&tail=2", t),
        400,
        "invalid_cursor",
    );
    // Not a non-negative integer.
    for bad in ["abc", "-1", "1.5", "", "%20", "99999999999999999999999"] {
        assert_error(
            r.get(&format!("/messages?before_id={bad}"), t),
            400,
            "invalid_query",
        );
    }
    assert_error(
        r.get("/messages?before_id=3&limit=x", t),
        400,
        "invalid_query",
    );
    // Nothing is older than id 1.
    for edge in [0, 1] {
        let (s, v) = r.get(&format!("/messages?before_id={edge}"), t);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["messages"], json!([]), "{v}");
        assert_eq!(v["has_more_before"], false, "{v}");
    }
    let (s, v) = r.get("/messages?before_id=2", t);
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), [1]);
    assert_eq!(v["has_more_before"], false);
    let (_, v) = r.get(&format!("/messages?before_id={last}&limit=2"), t);
    assert_eq!(ids(&v), [last - 2, last - 1]);
    assert_eq!(v["has_more_before"], true);
    // A participant's read like any other: a token is required.
    assert_error(r.get("/messages?before_id=3", None), 401, "unauthorized");
    assert_error(
        r.get("/messages?before_id=3", Some("tgl_not_a_token")),
        401,
        "unauthorized",
    );
    // A closed room's history stays readable.
    let (s, v) = r.post("/close", t, &json!({}));
    assert_eq!(s, 200, "{v}");
    let (s, v) = r.get("/messages?before_id=3", t);
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v), [1, 2]);
    assert_eq!(v["room_status"], "closed");
}
