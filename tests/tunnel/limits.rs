//! The broker's limits: each one refuses with its own code, and routes end at their
//! lifetime and when idle. What a participant or host meets when they ask for too much.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;
use crate::tunnel_support::*;

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
