//! Public room links end to end (SPEC §7): the real binary three times on loopback, a
//! room server, `broker serve` and `tunnel run`, and every participant request goes
//! through the broker only. Also: the broker's limits and their codes, route ownership
//! (forged secrets, a second host), privacy of the broker's logs (secret canaries), a
//! SIGTERM drain, and the same flow behind Caddy when it is installed.

mod common;
mod tunnel_support;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tunnel_support::*;

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

// ---------------------------------------------------------------------------------------
// Limits.

#[test]
fn each_limit_answers_with_its_code() {
    let room = TestRoom::start("tunnel-limits");
    let broker = Broker::start(
        &room.home,
        &[
            "--max-requests",
            "3",
            "--max-waits",
            "2",
            "--max-request-body",
            "1KB",
            "--max-response",
            "4KB",
            "--ip-rate",
            "8",
            "--route-rate",
            "40",
        ],
    );
    let port = broker.port;
    let slug = "limits";
    let t = tunnel(&room.home, &broker.url(), slug, &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));

    // Unknown slugs: 404, the same bytes whatever the slug, nothing echoed.
    let a = via(port, "no-such-room", Req::get("/status").token(&room.token));
    let b = via(port, "other-missing", Req::get("/").token(&room.token));
    assert_error_resp(&a, 404, "not_found");
    assert_eq!(a.body, b.body);
    assert!(!a.text().contains("no-such-room"));

    // Two waits held: a third is refused.
    let w: Vec<_> = (1..=3)
        .map(|i| room.invite_http(&format!("w{i}"), "agent"))
        .collect();
    let since = room.last_id();
    let holders: Vec<_> = w[..2]
        .iter()
        .map(|inv| {
            let token = inv.token.clone();
            let alias = inv.alias.clone();
            std::thread::spawn(move || {
                via(
                    port,
                    "limits",
                    Req::get(&format!(
                        "/wait?participant={alias}&since_id={since}&timeout_ms=6000"
                    ))
                    .token(&token),
                )
            })
        })
        .collect();
    wait_held(&room, 2);
    let r = get_via(
        port,
        slug,
        &format!("/wait?participant=w3&since_id={since}"),
        &w[2].token,
    );
    assert_error_resp(&r, 503, "route_wait_limit");
    assert!(r.header("retry-after").is_some());

    // A request stalled mid-body takes the third slot: the next request is refused. (The
    // stalled request must win the slot: if a probe overtook it, it was refused; try again.)
    let stall = || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!(
                "POST /messages HTTP/1.1\r\nHost: {slug}.{DOMAIN}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"te",
                room.token
            )
            .as_bytes(),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    };
    let answered = |s: &mut TcpStream| {
        let mut b = [0u8; 1];
        std::io::Read::read(s, &mut b).is_ok()
    };
    let mut stalled = stall();
    let deadline = Instant::now() + Duration::from_secs(5);
    let busy = loop {
        if answered(&mut stalled) {
            stalled = stall();
            continue;
        }
        let r = get_via(port, slug, "/status", &room.token);
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
    };
    assert_error_resp(&busy, 503, "route_busy");
    drop(stalled);
    for h in holders {
        assert_eq!(h.join().unwrap().status, 200);
    }

    // Bodies over the limit, declared or streamed.
    let big = json!({"text": "x".repeat(2000)});
    let r = post_via(port, slug, "/messages", &room.token, &big);
    assert_error_resp(&r, 413, "request_too_large");
    let chunk = format!("{{\"text\": \"{}\"}}", "y".repeat(1500));
    let raw = format!(
        "POST /messages HTTP/1.1\r\nHost: {slug}.{DOMAIN}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        room.token,
        chunk.len()
    );
    let out = send_raw_bytes(port, raw.as_bytes(), Duration::from_secs(10)).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("request_too_large"), "{text}");

    // An answer over the response limit.
    room.say(&room.token, &"z".repeat(5000));
    let r = get_via(port, slug, "/messages?since_id=0", &room.token);
    assert_error_resp(&r, 502, "response_too_large");

    // The route's request rate.
    let mut limited = None;
    for _ in 0..60 {
        let r = get_via(port, slug, "/status", &room.token);
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = limited.expect("the route rate limit never answered");
    assert_error_resp(&r, 429, "route_rate_limited");
    assert!(r.header("retry-after").is_some());

    // Unauthenticated requests per address.
    let mut codes = Vec::new();
    for _ in 0..12 {
        let r = via(port, slug, Req::get("/assets/room.css"));
        let code = if r.status == 200 {
            "ok".to_string()
        } else {
            r.json()["error"].as_str().unwrap_or("?").to_string()
        };
        let done = code == "ip_rate_limited";
        codes.push(code);
        if done {
            break;
        }
    }
    assert_eq!(
        codes.last().map(String::as_str),
        Some("ip_rate_limited"),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| c == "ip_rate_limited" || c == "route_rate_limited" || c == "ok"),
        "{codes:?}"
    );
    let logs = broker.all_logs();
    for code in [
        "route_wait_limit",
        "route_busy",
        "request_too_large",
        "response_too_large",
        "route_rate_limited",
        "ip_rate_limited",
    ] {
        assert!(logs.contains(code), "no {code} in the access log");
    }
}

#[test]
fn routes_expire_at_their_lifetime_and_when_idle() {
    // Lifetime: the tunnel is told, stops with the code, and restores the room's URL.
    let room = TestRoom::start("tunnel-lifetime");
    let broker = Broker::start(&room.home, &["--max-lifetime", "2s"]);
    let mut t = tunnel(&room.home, &broker.url(), "short-lived", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let status = t
        .wait_exit(Duration::from_secs(15))
        .expect("the tunnel should stop at the route's lifetime");
    assert!(!status.success());
    let last = t.lines().pop().unwrap();
    assert_eq!(last["error"], "route_lifetime_expired", "{last}");
    assert_eq!(t.events("public_url_restored")[0]["url"], room.url.as_str());
    let r = via(broker.port, "short-lived", Req::get("/"));
    assert_error_resp(&r, 404, "not_found");

    // Idle: a host that registers and then says nothing loses the route.
    let idle = Broker::start(&room.home, &["--idle-timeout", "1s"]);
    let mut ws = ws_connect(idle.port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "sleepy"}),
    );
    assert_eq!(ws_next(&mut ws)["type"], "registered");
    let started = Instant::now();
    let closed = ws_next(&mut ws);
    assert_eq!(closed["type"], "closed", "{closed}");
    assert_eq!(closed["code"], "route_idle_expired", "{closed}");
    assert!(started.elapsed() < Duration::from_secs(6));
    let r = via(idle.port, "sleepy", Req::get("/"));
    assert_error_resp(&r, 404, "not_found");
}

// ---------------------------------------------------------------------------------------
// Ownership.

#[test]
fn a_second_host_cannot_take_or_close_a_live_slug() {
    let room = TestRoom::start("tunnel-owner");
    let broker = Broker::start(&room.home, &["--public-url", "https://rooms.example.test/"]);
    let port = broker.port;
    let slug = "shared-slug";
    let t = tunnel(&room.home, &broker.url(), slug, &[]);
    let set = t.wait_event("public_url_set", 1, Duration::from_secs(15));
    assert_eq!(set["url"], "https://shared-slug.rooms.example.test");
    assert_eq!(
        room.status(&room.token)["url"],
        "https://shared-slug.rooms.example.test"
    );

    // Another host's real tunnel client is refused and says why.
    let other = TestRoom::start("tunnel-intruder");
    let mut t2 = tunnel(&other.home, &broker.url(), slug, &[]);
    let status = t2.wait_exit(Duration::from_secs(15)).expect("should stop");
    assert!(!status.success());
    let last = t2.lines().pop().unwrap();
    assert_eq!(last["error"], "route_slug_taken", "{last}");
    assert_eq!(other.status(&other.token)["url"], other.url.as_str());

    // Raw peers: a plain claim, a forged reclaim, and the owner's route id with a forged secret.
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": slug}),
    );
    assert_refused(&mut ws, 409, "route_slug_taken");
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": slug,
                "reclaim": {"route_id": "rt_forged", "route_secret": "rts_forged"}}),
    );
    assert_refused(&mut ws, 403, "route_auth_failed");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(room.home.home.join("tunnel").join("tunnel-owner.json"))
            .expect("the tunnel keeps its route credentials"),
    )
    .unwrap();
    let route_id = saved["route"]["route_id"].as_str().unwrap().to_string();
    let real_secret = saved["route"]["route_secret"].as_str().unwrap().to_string();
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": slug,
                "reclaim": {"route_id": route_id, "route_secret": "rts_forged-secret"}}),
    );
    assert_refused(&mut ws, 403, "route_auth_failed");

    // A peer that skips registration gets nowhere.
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "release", "route": {"route_id": route_id, "route_secret": real_secret}}),
    );
    assert_refused(&mut ws, 400, "register_required");

    // A registered peer cannot release or heartbeat someone else's route.
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "intruder"}),
    );
    let mine = ws_next(&mut ws);
    assert_eq!(mine["type"], "registered", "{mine}");
    ws_send(
        &mut ws,
        &json!({"type": "release", "route": {"route_id": route_id, "route_secret": "rts_forged"}}),
    );
    let e = ws_next(&mut ws);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("route_auth_failed")),
        "{e}"
    );
    ws_send(
        &mut ws,
        &json!({"type": "release", "route": {"route_id": route_id, "route_secret": real_secret}}),
    );
    let e = ws_next(&mut ws);
    assert_eq!(e["code"], "route_auth_failed", "{e}");
    ws_send(
        &mut ws,
        &json!({"type": "heartbeat", "route": {"route_id": mine["route"]["route_id"], "route_secret": "rts_forged"}}),
    );
    assert_eq!(ws_next(&mut ws)["code"], "route_auth_failed");
    // Its own secret releases its own route.
    ws_send(&mut ws, &json!({"type": "release", "route": mine["route"]}));
    let c = ws_next(&mut ws);
    assert_eq!(
        (c["type"].as_str(), c["code"].as_str()),
        (Some("closed"), Some("route_released")),
        "{c}"
    );

    // The owner's route is untouched.
    let r = get_via(port, slug, "/status", &room.token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(t.events("disconnected").len(), 0, "{}", t.stdout());
    let logs = broker.all_logs();
    assert!(!logs.contains(&real_secret));
    assert!(!logs.contains("rts_forged"));

    // SIGTERM: the owner releases its route and gives the room its own URL back.
    let mut t = t;
    t.signal(libc::SIGTERM);
    let status = t
        .wait_exit(Duration::from_secs(10))
        .expect("the tunnel stops");
    assert!(status.success(), "{status:?}: {}", t.stderr());
    assert_eq!(t.events("released").len(), 1, "{}", t.stdout());
    assert_eq!(t.events("public_url_restored")[0]["url"], room.url.as_str());
    assert_eq!(room.status(&room.token)["url"], room.url.as_str());
    assert!(
        !room
            .home
            .home
            .join("tunnel")
            .join("tunnel-owner.json")
            .exists()
    );
    let r = get_via(port, slug, "/status", &room.token);
    assert_error_resp(&r, 404, "not_found");
}

#[test]
fn a_restarted_broker_keeps_slugs_for_their_hosts() {
    let room = TestRoom::start("tunnel-restart");
    // The grace must outlast the checks made during it, however slow the machine.
    let mut broker = Broker::start(&room.home, &["--restart-grace", "8s"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "kept", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    // The broker keeps which slugs it holds (by MAC, never in clear) across restarts.
    let kept = room.home.home.join("broker").join("routes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&kept).is_ok_and(|t| t.contains("reserved") && t.len() > 20) {
        assert!(
            Instant::now() < deadline,
            "the broker kept no record of its slugs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!std::fs::read_to_string(&kept).unwrap().contains("kept"));
    broker.crash_and_restart(&room.home);
    // Right after the restart a slug held before is refused to anyone but its host, and
    // made-up credentials prove nothing; other slugs register at once.
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "kept",
                "reclaim": {"route_id": "rt_forged-ffffffffffff", "route_secret": "rts_forged"}}),
    );
    let f = ws_next(&mut ws);
    assert_eq!(f["type"], "refused", "{f}");
    // Refused in any case: bad credentials, or (kept for its host, or back) taken.
    assert!(
        ["route_auth_failed", "route_slug_taken"].contains(&f["code"].as_str().unwrap_or("")),
        "{f}"
    );
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "kept"}),
    );
    assert_refused(&mut ws, 409, "route_slug_taken");
    let mut ws = ws_connect(port);
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "newcomer"}),
    );
    let f = ws_next(&mut ws);
    assert_eq!(f["type"], "registered", "{f}");
    assert_eq!(f["reclaimed"], false, "{f}");
    let back = t.wait_event("registered", 2, Duration::from_secs(15));
    assert_eq!(back["reclaimed"], true, "{back}");
    wait_route_up(port, "kept", &room.token, Duration::from_secs(10));
}

#[test]
fn an_operator_key_restricts_registration() {
    let room = TestRoom::start("tunnel-key");
    let keys = room.home.root.join("host-keys");
    std::fs::write(&keys, "# operator keys\nKEYCANARY-right-key\n").unwrap();
    let broker = Broker::start(&room.home, &["--host-key-file", keys.to_str().unwrap()]);
    let mut t = tunnel(&room.home, &broker.url(), "keyed", &[]);
    assert!(!t.wait_exit(Duration::from_secs(15)).unwrap().success());
    assert_eq!(t.lines().pop().unwrap()["error"], "host_key_required");
    let wrong = room.home.root.join("wrong-key");
    std::fs::write(&wrong, "KEYCANARY-wrong\n").unwrap();
    let mut t = tunnel(
        &room.home,
        &broker.url(),
        "keyed",
        &["--host-key-file", wrong.to_str().unwrap()],
    );
    assert!(!t.wait_exit(Duration::from_secs(15)).unwrap().success());
    assert_eq!(t.lines().pop().unwrap()["error"], "host_key_invalid");
    let t = tunnel(
        &room.home,
        &broker.url(),
        "keyed",
        &["--host-key-file", keys.to_str().unwrap()],
    );
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let r = get_via(broker.port, "keyed", "/status", &room.token);
    assert_eq!(r.status, 200);
    assert!(!broker.all_logs().contains("KEYCANARY"));
}

// ---------------------------------------------------------------------------------------
// Shutdown.

#[test]
fn sigterm_drains_held_waits_and_hosts_reconnect() {
    let room = TestRoom::start("tunnel-drain");
    let mut broker = Broker::start(&room.home, &[]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "draining", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let since = room.last_id();
    let token = room.token.clone();
    let held = std::thread::spawn(move || {
        let started = Instant::now();
        let r = at(
            "draining",
            Req::get(&format!("/wait?since_id={since}&timeout_ms=3000")),
        )
        .token(&token)
        .send(port);
        (r, started.elapsed())
    });
    wait_held(&room, 1);
    broker.proc.signal(libc::SIGTERM);
    let (r, took) = held.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["heartbeat"], true);
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    let status = broker
        .proc
        .wait_exit(Duration::from_secs(15))
        .expect("the broker should stop after draining");
    assert!(status.success(), "{status:?}");
    assert!(broker.proc.stderr().contains("broker stopped"));
    let d = t.wait_event("disconnected", 1, Duration::from_secs(10));
    assert!(
        d["reason"].as_str().unwrap().contains("broker_shutdown"),
        "{d}"
    );
    drop(t);
    assert!(Path::new(&broker.logs[0].0).exists());
}

// ---------------------------------------------------------------------------------------
// The operators' view.

/// One Prometheus sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses Prometheus text exposition (0.0.4) strictly enough to catch a malformed line:
/// returns each sample as (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let ident = |s: &str, colon: bool| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic()
                    || c == '_'
                    || (colon && c == ':')
                    || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(ident(name, true), "bad metric name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line:?}"
                );
                typed.insert(name.to_string());
            } else {
                assert_eq!(kind, "HELP", "{line:?}");
            }
            continue;
        }
        assert!(!line.is_empty(), "an empty line in the exposition");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        assert!(ident(name, true), "bad metric name in {line:?}");
        assert!(typed.contains(name), "{name} has no TYPE line before it");
        let mut pairs = Vec::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("label=value");
            assert!(ident(k, false), "bad label name in {line:?}");
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .expect("quoted label value");
            assert!(!v.contains('"') && !v.contains('\n'), "{line:?}");
            pairs.push((k.to_string(), v.to_string()));
        }
        samples.push((name.to_string(), pairs, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_name_no_room() {
    let room = TestRoom::start("tunnel-metrics");
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let broker = Broker::start(&room.home, &["--metrics-addr", &maddr]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "metered", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    for _ in 0..3 {
        let r = get_via(port, "metered", "/status", &room.token);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = via(port, "no-such-slug", Req::get("/status").token(&room.token));
    assert_error_resp(&r, 404, "not_found");

    assert_eq!(Req::get("/healthz").send(mport).status, 200);
    assert_eq!(Req::get("/readyz").send(mport).status, 200);
    let r = Req::get("/metrics").send(mport);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text();
    let samples = parse_prometheus(&text);
    assert_eq!(
        sample(
            &samples,
            "agentgather_broker_routes",
            &[("status", "connected")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&samples, "agentgather_broker_host_connections", &[]),
        1.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "agentgather_broker_requests_total",
            &[("class", "status"), ("status", "200")]
        ) >= 3.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "agentgather_broker_refusals_total",
            &[("code", "not_found")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "agentgather_broker_relayed_bytes_total",
            &[("direction", "out")]
        ) > 0.0,
        "{text}"
    );
    assert_eq!(
        sample(&samples, "agentgather_broker_registrations_total", &[]),
        1.0,
        "{text}"
    );
    // The tunnel and the requests above came over HTTP/1.1, none over h2c.
    assert!(
        sample(
            &samples,
            "agentgather_broker_connections_total",
            &[("protocol", "http1")]
        ) >= 5.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            "agentgather_broker_connections_total",
            &[("protocol", "h2c")]
        ),
        0.0,
        "{text}"
    );
    for secret in ["metered", "no-such-slug", room.token.as_str(), "/status"] {
        assert!(
            !text.contains(secret),
            "the metrics name {secret:?}:\n{text}"
        );
    }
    // Only on its own listener: the public port has no /metrics.
    let r = Req::get("/metrics").send(port);
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------
// One origin per room behind Caddy: on-demand TLS from Caddy's internal CA, asking the
// broker whether a name is a room.

#[test]
fn caddy_gets_a_certificate_for_each_live_room_and_no_other_name() {
    if !proxy_installed("caddy", "the Caddy TLS test") {
        return;
    }
    let room = TestRoom::start("tunnel-tls");
    let cport = free_port();
    let broker = Broker::start(
        &room.home,
        &["--public-url", &format!("https://localhost:{cport}")],
    );
    let dir = room.home.root.join("caddy-tls");
    let bport = broker.port;
    let config = format!(
        "{{\n\tadmin off\n\tskip_install_trust\n\tstorage file_system {data}\n\ton_demand_tls {{\n\t\task http://127.0.0.1:{bport}/_agentgather/tls-ask\n\t}}\n}}\n\nhttps://*.localhost:{cport} {{\n\ttls internal {{\n\t\ton_demand\n\t}}\n\treverse_proxy 127.0.0.1:{bport} {{\n\t\tflush_interval -1\n\t}}\n}}\n",
        data = dir.join("data").display()
    );
    let _caddy = until_caddy_listens(spawn_caddy(&room.home, &dir, &config), cport)
        .expect("caddy did not start");
    let t = tunnel(&room.home, &broker.url(), "secure", &[]);
    let set = t.wait_event("public_url_set", 1, Duration::from_secs(15));
    assert_eq!(
        set["url"],
        format!("https://secure.localhost:{cport}").as_str()
    );

    let curl = |name: &str| {
        let root = dir.join("data/pki/authorities/local/root.crt");
        let mut args = vec![
            "-sS".to_string(),
            "--max-time".into(),
            "20".into(),
            "--resolve".into(),
            format!("{name}.localhost:{cport}:127.0.0.1"),
            "-H".into(),
            format!("Authorization: Bearer {}", room.token),
        ];
        if root.exists() {
            args.extend(["--cacert".into(), root.display().to_string()]);
        } else {
            args.push("--insecure".into());
        }
        args.push(format!("https://{name}.localhost:{cport}/status"));
        std::process::Command::new("curl")
            .args(&args)
            .output()
            .expect("run curl")
    };
    // The first handshake makes Caddy ask the broker, then issue from its internal CA;
    // the second is checked against that CA's root.
    let first = curl("secure");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = curl("secure");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["room"], "tunnel-tls", "{v}");
    // A name that is no room gets no certificate: the handshake fails.
    let out = curl("no-such-room");
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !dir.join("data/certificates").exists()
            || !std::fs::read_dir(dir.join("data/certificates"))
                .unwrap()
                .flatten()
                .any(|d| walk_contains(&d.path(), "no-such-room")),
        "caddy holds a certificate for a name that is no room"
    );
}

fn walk_contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name().to_string_lossy().contains(needle) || walk_contains(&e.path(), needle)
        })
    })
}
