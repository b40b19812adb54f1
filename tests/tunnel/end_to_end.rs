//! The whole flow, once directly and once behind Caddy: one long scenario walked by both
//! fronts, so they share it and nothing else.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::tunnel_support::*;

const SLUG_CANARY: &str = "slugcanary-e2e";

fn end_to_end(front: Front) {
    let room = TestRoom::start("tunnel-e2e");
    let slug = SLUG_CANARY;
    // Generous per-IP rate: every request of this test comes from 127.0.0.1. Each room
    // is its own origin, https://<slug>.rooms.example.test (requests carry that Host).
    // A short restart grace: right after the broker restarts, unknown slugs answer 503.
    let mut broker = Broker::start(
        &room.home,
        &["--ip-rate", "100000", "--restart-grace", "3s"],
    );
    let caddy = match front {
        Front::Direct => None,
        Front::Caddy => Some(start_caddy(&room.home, broker.port)),
    };
    let port = caddy.as_ref().map_or(broker.port, |c| c.port);
    let front_url = format!("http://127.0.0.1:{port}");
    let public = room_origin(slug);

    let mut t = tunnel(&room.home, &front_url, slug, &[]);
    let reg = t.wait_event("registered", 1, Duration::from_secs(15));
    assert_eq!(reg["public_url"], public.as_str(), "{reg}");
    assert_eq!(reg["reclaimed"], false);
    let set = t.wait_event("public_url_set", 1, Duration::from_secs(15));
    assert_eq!(set["url"], public.as_str());

    // --- invite, card, join, post, read: all through the front.
    let r = post_via(
        port,
        slug,
        "/invite",
        &room.token,
        &json!({"alias": "alice", "kind": "agent"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let inv = r.json();
    let alice = inv["token"].as_str().unwrap().to_string();
    assert_eq!(inv["url"], public.as_str());
    assert_eq!(
        inv["browser_url"],
        format!("{public}/#token={alice}").as_str()
    );
    assert!(
        inv["card_command"]
            .as_str()
            .unwrap()
            .contains(&format!("{public}/card?")),
        "{inv}"
    );
    let card = via(
        port,
        slug,
        Req::get(&format!("/card?participant=alice&token={alice}")),
    );
    assert_eq!(card.status, 200, "{}", card.text());
    assert!(
        card.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let card_text = card.text();
    assert!(card_text.contains(&format!("{public}/wait")), "{card_text}");

    let r = post_via(port, slug, "/join", &alice, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let body_canary = "BODYCANARY-7f3a the plan is in the brief";
    let r = post_via(
        port,
        slug,
        "/messages",
        &alice,
        &json!({"text": body_canary}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let first_id = r.json()["message"]["id"].as_u64().unwrap();
    let r = get_via(port, slug, "/messages?since_id=0", &alice);
    assert_eq!(r.status, 200);
    let msgs = r.json()["messages"].as_array().unwrap().clone();
    assert!(msgs.iter().any(|m| m["text"] == body_canary), "{msgs:?}");

    // A browser on the public origin may write; another origin may not.
    let r = via(
        port,
        slug,
        Req::post("/messages")
            .token(&alice)
            .header("Origin", &public)
            .json(&json!({"text": "from the browser room"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = via(
        port,
        slug,
        Req::post("/messages")
            .token(&alice)
            .header("Origin", "https://evil.example")
            .json(&json!({"text": "csrf"})),
    );
    assert_error_resp(&r, 403, "bad_origin");

    // Secrets sent in places the broker must never log.
    let r = via(
        port,
        slug,
        Req::get("/messages?since_id=0&note=QUERYCANARY-91c2")
            .token(&alice)
            .header("Cookie", "session=COOKIECANARY-44d1"),
    );
    assert_eq!(r.status, 200);
    let r = via(
        port,
        slug,
        Req::get("/status").token("tgl_AUTHCANARY-0000000000000000000000"),
    );
    assert_error_resp(&r, 401, "unauthorized");

    // --- the browser room: the page and assets load at the root of the room's origin.
    let page = via(port, slug, Req::get("/"));
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.header("content-security-policy").is_some());
    assert!(page.text().contains("assets/room.js"));
    assert!(!page.text().contains(&alice));
    for (asset, ctype) in [
        ("/assets/room.js", "text/javascript"),
        ("/assets/room.css", "text/css"),
    ] {
        let r = via(port, slug, Req::get(asset));
        assert_eq!(r.status, 200, "{asset}");
        assert!(
            r.header("content-type").unwrap().starts_with(ctype),
            "{asset}"
        );
        assert!(r.body.len() > 100, "{asset}");
    }

    // --- 50 held waits, released together by one post, while other traffic flows.
    let mut waiters = Vec::new();
    for i in 0..50 {
        let inv = room.invite_http(&format!("w{i}"), "agent");
        waiters.push((inv.alias, inv.token));
    }
    let since = room.last_id();
    let handles: Vec<_> = waiters
        .iter()
        .cloned()
        .map(|(alias, token)| {
            std::thread::spawn(move || {
                let r = via(
                    port,
                    SLUG_CANARY,
                    Req::get(&format!("/wait?participant={alias}&since_id={since}"))
                        .token(&token)
                        .timeout(Duration::from_secs(40)),
                );
                (r, Instant::now())
            })
        })
        .collect();
    wait_held(&room, 50);
    let quick = Instant::now();
    let r = get_via(port, slug, "/status", &alice);
    assert_eq!(r.status, 200);
    // Blocked behind the held waits, it would take their whole 25 s hold.
    assert!(
        quick.elapsed() < Duration::from_secs(5),
        "held waits slowed other traffic: {:?}",
        quick.elapsed()
    );
    let r = post_via(
        port,
        slug,
        "/messages",
        &alice,
        &json!({"text": "wake up, all fifty"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // "Within 1 s of the post": from its acknowledgement, not from before the request.
    let posted_at = Instant::now();
    let woken_id = r.json()["message"]["id"].as_u64().unwrap();
    for h in handles {
        let (r, at) = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["heartbeat"], false, "{v}");
        assert!(
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == woken_id),
            "{v}"
        );
        assert!(
            v["next_cmd"].as_str().unwrap().contains(&public),
            "next_cmd should use the public URL: {v}"
        );
        let lag = at.saturating_duration_since(posted_at);
        assert!(
            lag < Duration::from_secs(1),
            "a wait returned {lag:?} after the post"
        );
    }

    // --- the broker dies mid-session (a wait held through it), comes back, traffic resumes.
    let held_token = alice.clone();
    let last = room.last_id();
    let held = std::thread::spawn(move || {
        at(
            SLUG_CANARY,
            Req::get(&format!("/wait?participant=alice&since_id={last}")),
        )
        .token(&held_token)
        .timeout(Duration::from_secs(40))
        .try_send(port)
    });
    wait_held(&room, 1);
    broker.crash_and_restart(&room.home);
    // The held wait ends: cut, or answered by the new broker if a proxy retried it
    // (Caddy retries an idempotent request whose upstream connection broke).
    let cut = held.join().unwrap();
    if let Ok(r) = &cut {
        assert!(
            matches!(r.status, 200 | 502 | 503 | 504),
            "a wait through a dead broker: {} {}",
            r.status,
            r.text()
        );
    }
    t.wait_event("disconnected", 1, Duration::from_secs(15));
    let back = t.wait_event("registered", 2, Duration::from_secs(20));
    // The restarted broker verifies the old route secret against its route key.
    assert_eq!(back["reclaimed"], true, "{back}");
    assert_eq!(back["public_url"], public.as_str());
    wait_route_up(port, slug, &alice, Duration::from_secs(15));
    let r = post_via(
        port,
        slug,
        "/messages",
        &alice,
        &json!({"text": "back after the broker restart"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = get_via(
        port,
        slug,
        &format!("/messages?since_id={first_id}"),
        &alice,
    );
    assert!(r.text().contains("back after the broker restart"));

    // --- what the broker holds in memory: route metadata only (the operator's view).
    let table = Req::get("/_agentgather/routes").send(broker.port);
    assert_eq!(table.status, 200, "{}", table.text());
    let v = table.json();
    let routes = v["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{v}");
    let mut keys: Vec<&str> = routes[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "expires_at",
            "host_connection",
            "last_seen_at",
            "requests_in_flight",
            "route_hash",
            "route_id",
            "slug",
            "status"
        ]
    );
    assert_eq!(routes[0]["slug"], slug);
    assert_eq!(routes[0]["status"], "connected");
    for s in [
        room.token.as_str(),
        alice.as_str(),
        "AUTHCANARY",
        "COOKIECANARY",
        "QUERYCANARY",
        "BODYCANARY",
        "since_id",
        "rts_",
    ] {
        assert!(!table.text().contains(s), "route metadata holds {s:?}: {v}");
    }
    // Only for an operator on the broker machine: via a proxy it does not exist.
    let r = Req::get("/_agentgather/routes")
        .header("X-Forwarded-For", "203.0.113.7")
        .send(broker.port);
    assert_error_resp(&r, 404, "not_found");
    if caddy.is_some() {
        assert_error_resp(
            &Req::get("/_agentgather/routes").send(port),
            404,
            "not_found",
        );
    }

    // --- the host closes the room through the link; the tunnel releases and restores.
    let r = post_via(port, slug, "/close", &room.token, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let status = t
        .wait_exit(Duration::from_secs(20))
        .expect("the tunnel should stop when the room closes");
    assert!(status.success(), "{status:?}: {}", t.stderr());
    let lines = t.lines();
    assert!(lines.iter().any(|v| v["event"] == "released"), "{lines:?}");
    let restored = t.events("public_url_restored");
    assert_eq!(restored[0]["url"], room.url.as_str());
    let last = lines.last().unwrap();
    assert_eq!(last["reason"], "room_closed", "{last}");
    assert_eq!(room.status(&room.token)["url"], room.url.as_str());
    // Within the restart grace an unknown slug is 503; after it, 404.
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = loop {
        let r = get_via(port, slug, "/status", &alice);
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        assert_error_resp(&r, 503, "route_unavailable");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_error_resp(&gone, 404, "not_found");

    // --- privacy: the broker printed no secret, header, query, body or slug.
    let logs = broker.all_logs();
    let mut secrets = vec![
        room.token.clone(),
        alice.clone(),
        "AUTHCANARY".to_string(),
        "COOKIECANARY".to_string(),
        "QUERYCANARY".to_string(),
        "BODYCANARY".to_string(),
        "since_id".to_string(),
        "wake up".to_string(),
        SLUG_CANARY.to_string(),
        "Bearer".to_string(),
    ];
    secrets.extend(waiters.iter().take(5).map(|(_, t)| t.clone()));
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "the broker log holds {s:?}:\n{logs}"
        );
    }
    let allowed = [
        "ts",
        "route",
        "method",
        "class",
        "status",
        "duration_ms",
        "bytes_in",
        "bytes_out",
        "code",
        "aborted",
        "event",
    ];
    let access = broker.access_lines();
    assert!(access.len() > 60, "{} access lines", access.len());
    for line in &access {
        for k in line.as_object().unwrap().keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "unexpected log field {k}: {line}"
            );
        }
    }
    let classes: Vec<&str> = access.iter().filter_map(|l| l["class"].as_str()).collect();
    for c in [
        "wait", "messages", "card", "asset", "page", "tunnel", "status",
    ] {
        assert!(classes.contains(&c), "no {c} line in {classes:?}");
    }
    let waits: Vec<&Value> = access.iter().filter(|l| l["class"] == "wait").collect();
    assert!(
        waits
            .iter()
            .all(|l| l["route"].as_str().is_some_and(|r| r.len() == 16))
    );
    drop(caddy);
}

#[test]
fn a_room_works_end_to_end_through_the_broker() {
    end_to_end(Front::Direct);
}

#[test]
fn a_room_works_end_to_end_behind_caddy() {
    if !proxy_installed("caddy", "the Caddy end-to-end test") {
        return;
    }
    end_to_end(Front::Caddy);
}
