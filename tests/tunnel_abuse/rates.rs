//! Per-address budgets: a junk token buys nothing, one address (or one IPv6 /64) cannot
//! use up a room's request rate, and one address or operator key cannot fill the route
//! table.

use std::time::Duration;

use crate::common::*;
use crate::tunnel_support::*;

// ---------------------------------------------------------------------------------------
// Rates: a token is no pass, and one address cannot use up a room's budget.

/// `req` as if it came from `ip` through a proxy on the broker's machine.
fn from(ip: &str, req: Req) -> Req {
    req.header("X-Forwarded-For", ip)
}

#[test]
fn a_junk_token_buys_nothing_and_a_flood_leaves_the_room_to_others() {
    let room = TestRoom::start("abuse-rates");
    // A route budget of 400/min: one address may use half of it.
    let broker = Broker::start(&room.home, &["--route-rate", "400"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "flooded", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));

    // The replay: 100 requests with `Bearer junk` from one address. The room answers 401
    // to what reaches it, and each of those is charged like a request without a token.
    let mut reached = 0;
    let mut limited = 0;
    for _ in 0..100 {
        let r = via(
            port,
            "flooded",
            from("198.51.100.66", Req::get("/status").token("junk")),
        );
        match r.status {
            401 => reached += 1,
            429 => {
                assert_eq!(r.json()["error"], "ip_rate_limited", "{}", r.text());
                assert!(r.header("retry-after").is_some());
                limited += 1;
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(
        reached <= 61,
        "{reached} junk-token requests reached the room"
    );
    assert_eq!(reached + limited, 100);

    // A flood with a real token from one address takes at most its share of the route's
    // budget; a participant at another address is still served every time.
    let mallory = room.invite_http("mallory", "agent");
    let alice = room.invite_http("alice", "agent");
    let mut flood_ok = 0;
    for _ in 0..260 {
        let r = via(
            port,
            "flooded",
            from("198.51.100.67", Req::get("/status").token(&mallory.token)),
        );
        match r.status {
            200 => flood_ok += 1,
            429 => assert_eq!(r.json()["error"], "route_rate_limited", "{}", r.text()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(flood_ok <= 201, "one address used {flood_ok} of 400/min");
    for i in 0..45 {
        let r = via(
            port,
            "flooded",
            from("203.0.113.5", Req::get("/status").token(&alice.token)),
        );
        assert_eq!(
            r.status,
            200,
            "request {i} of the real participant: {}",
            r.text()
        );
    }
}

#[test]
fn one_ipv6_64_is_one_address_for_the_rate_limits() {
    let home = TempHome::new("abuse-v6");
    let broker = Broker::start(&home, &["--ip-rate", "5"]);
    // The replay: a client with a /64 sends each request from another address in it.
    let mut served = 0;
    for i in 1..=12 {
        let r = via(
            broker.port,
            "nobody",
            from(&format!("2001:db8:1:2::{i:x}"), Req::get("/status")),
        );
        match r.status {
            404 => served += 1,
            429 => assert_eq!(r.json()["error"], "ip_rate_limited", "{}", r.text()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(served <= 6, "one /64 was served {served} times at 5/min");
    // Another /64 is another client.
    let r = via(
        broker.port,
        "nobody",
        from("2001:db8:1:3::1", Req::get("/status")),
    );
    assert_error_resp(&r, 404, "not_found");
}

// ---------------------------------------------------------------------------------------
// The route table: one address (or one operator key) holds only so many routes.

#[test]
fn one_address_or_key_cannot_fill_the_route_table() {
    let home = TempHome::new("abuse-table");
    let broker = Broker::start(
        &home,
        &["--ip-rate", "1000", "--max-routes-per-address", "3"],
    );
    let port = broker.port;
    // The replay: one address registers slug after slug.
    let mut held = Vec::new();
    for i in 0..3 {
        let (f, ws) = register_from(port, "198.51.100.9", &format!("grab-{i}"), None);
        assert_eq!(f["type"], "registered", "{f}");
        held.push(ws);
    }
    let (f, _) = register_from(port, "198.51.100.9", "grab-3", None);
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("refused"), Some("too_many_routes")),
        "{f}"
    );
    assert_eq!(f["status"], 429);
    // Hanging up does not free the address's places: the routes stay reserved.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (f, _) = register_from(port, "198.51.100.9", "grab-4", None);
    assert_eq!(f["code"], "too_many_routes", "{f}");
    // Other addresses are not affected.
    let (f, _ws) = register_from(port, "198.51.100.10", "honest", None);
    assert_eq!(f["type"], "registered", "{f}");

    // Per operator key, whatever the address.
    let keys = home.root.join("host-keys");
    std::fs::write(&keys, "key-one\nkey-two\n").unwrap();
    let keyed = Broker::start(
        &home,
        &[
            "--ip-rate",
            "1000",
            "--host-key-file",
            keys.to_str().unwrap(),
            "--max-routes-per-key",
            "2",
        ],
    );
    let mut held = Vec::new();
    for i in 0..2 {
        let (f, ws) = register_from(
            keyed.port,
            &format!("198.51.100.{}", 20 + i),
            &format!("k-{i}"),
            Some("key-one"),
        );
        assert_eq!(f["type"], "registered", "{f}");
        held.push(ws);
    }
    let (f, _) = register_from(keyed.port, "198.51.100.30", "k-2", Some("key-one"));
    assert_eq!(f["code"], "too_many_routes", "{f}");
    let (f, _ws) = register_from(keyed.port, "198.51.100.31", "k-3", Some("key-two"));
    assert_eq!(f["type"], "registered", "{f}");
}
