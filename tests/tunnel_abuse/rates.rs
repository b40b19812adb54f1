//! Per-address budgets: a junk token buys nothing, one address (or one IPv6 /64) cannot
//! use up a room's request rate, and one address or operator key cannot fill the route
//! table.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::tunnel_support::*;

// ---------------------------------------------------------------------------------------
// Rates: a token is no pass, and one address cannot use up a room's budget.

/// `req` as if it came from `ip` through a proxy on the broker's machine.
fn from(ip: &str, req: Req) -> Req {
    req.header("X-Forwarded-For", ip)
}

/// Asserts that a replay that began at `started` got `let_through` requests past a bucket
/// of `per_minute`: at most its burst (a minute's allowance) plus what it refilled in the
/// time the replay took. Measured so, the bound holds however slowly a loaded machine
/// runs the replay (fixed counts such as "at most 61" failed whenever a slow run's refill
/// passed their slack); and a run so slow that the bound reaches `unlimited`, what a
/// broken limit would let through, fails as unable to tell.
#[track_caller]
fn assert_within_bucket(
    what: &str,
    let_through: u32,
    per_minute: u32,
    started: Instant,
    unlimited: u32,
) {
    let elapsed = started.elapsed();
    let refill = (elapsed.as_secs_f64() * f64::from(per_minute) / 60.0).floor() as u32;
    let most = per_minute + refill;
    assert!(
        most < unlimited,
        "{what} took {elapsed:?}, too slow to tell a limit at {per_minute}/min from none"
    );
    assert!(
        let_through <= most,
        "{what}: {let_through} let through in {elapsed:?} at {per_minute}/min (at most {most})"
    );
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
    let started = Instant::now();
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
    // At the strict rate (60/min), though a token with a free pass would have 600/min.
    assert_within_bucket(
        "junk-token requests reaching the room",
        reached,
        60,
        started,
        100,
    );
    assert_eq!(reached + limited, 100);

    // A flood with a real token from one address takes at most its share of the route's
    // budget; a participant at another address is still served every time.
    let mallory = room.invite_http("mallory", "agent");
    let alice = room.invite_http("alice", "agent");
    let mut flood_ok = 0;
    let started = Instant::now();
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
    // Its share: half the route's 400/min, as another address has used the route.
    assert_within_bucket(
        "one address of a route at 400/min",
        flood_ok,
        200,
        started,
        260,
    );
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
    let started = Instant::now();
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
    assert_within_bucket("one /64", served, 5, started, 12);
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
    // Hanging up does not free the address's places: the routes stay held. Asked
    // once the broker has seen all three hang up, not after a guessed pause.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..3 {
        let slug = format!("grab-{i}");
        while route_status(port, &slug).as_deref() == Some("connected") {
            assert!(
                Instant::now() < deadline,
                "{slug}: the hang-up was never seen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            route_status(port, &slug).as_deref(),
            Some("awaiting_reclaim"),
            "{slug}"
        );
    }
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
