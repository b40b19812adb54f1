//! `/wait`: answered at once when behind, held until a post, heartbeats, several held
//! waits of one participant, and what ends a held wait (close, removal).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::{ids, wait_path};

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
    // Both were still held above; what ends each is the post (a wait that had ended
    // early would carry no message, or another).
    let m = r.say(&r.token, "for both faces");
    for f in faces {
        let (_, v) = f.join().unwrap();
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
