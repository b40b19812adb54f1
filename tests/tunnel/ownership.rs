//! Who holds a slug: a second host cannot take or close a live one, a restarted broker
//! keeps slugs for their hosts, an operator key decides who may register, and a SIGTERM
//! drain sends hosts back to reconnect. All of them are about a route staying its host's.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::tunnel_support::*;

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
