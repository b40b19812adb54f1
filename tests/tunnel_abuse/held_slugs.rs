//! A slug whose host is away stays its host's: across an idle timeout, a broker restart,
//! the death of the instance that held it, and forged or missing word from its peers.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::tunnel_support::*;

// ---------------------------------------------------------------------------------------
// A slug whose host is away stays its host's.

/// A stranger at `ip` asks for `slug` and is refused as taken; a participant's next
/// request to the link reaches no one.
fn stranger_is_refused(port: u16, ip: &str, slug: &str, room: &TestRoom, token: &str) {
    let (f, _ws) = register_from(port, ip, slug, None);
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("refused"), Some("route_slug_taken")),
        "{f}"
    );
    let since = room.last_id();
    let r = via(
        port,
        slug,
        Req::get(&format!("/wait?participant=alice&since_id={since}")).token(token),
    );
    assert_error_resp(&r, 404, "not_found");
}

#[test]
fn an_idle_slug_stays_with_its_host_across_restarts() {
    let room = TestRoom::start("abuse-asleep");
    let mut broker = Broker::start(&room.home, &["--idle-timeout", "1s", "--ip-rate", "1000"]);
    let port = broker.port;
    let mut t = tunnel(&room.home, &broker.url(), "asleep", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let alice = room.invite_http("alice", "agent");

    // The laptop sleeps: its tunnel is gone without a word, and the route idles out.
    t.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    while route_status(port, "asleep").as_deref() != Some("reserved") {
        assert!(Instant::now() < deadline, "the route never idled out");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The replay: someone registers the slug at once, to receive the participants' next
    // requests with their tokens. Refused; and those requests reach no one.
    stranger_is_refused(port, "198.51.100.80", "asleep", &room, &alice.token);

    // The same after the broker restarts (its record of held slugs survives the crash).
    let kept = room.home.home.join("broker").join("routes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&kept).is_ok_and(|t| t.len() > 30) {
        assert!(Instant::now() < deadline, "no record of the held slugs");
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.crash_and_restart(&room.home);
    let (f, _ws) = register_from(port, "198.51.100.80", "asleep", None);
    assert_eq!(f["code"], "route_slug_taken", "{f}");
    let (f, _fresh) = register_from(port, "198.51.100.81", "fresh", None);
    assert_eq!(
        f["type"], "registered",
        "a fresh slug waits for no grace: {f}"
    );

    // The host wakes up: its saved route secret takes its slug back.
    let t = tunnel(&room.home, &broker.url(), "asleep", &[]);
    let back = t.wait_event("registered", 1, Duration::from_secs(15));
    assert_eq!(back["reclaimed"], true, "{back}");
    assert_eq!(back["public_url"], room_origin("asleep").as_str());
    wait_route_up(port, "asleep", &alice.token, Duration::from_secs(10));
}

#[test]
fn a_dead_instances_slugs_stay_with_their_hosts_on_its_peers() {
    let room = TestRoom::start("abuse-peers");
    let mut p = peered_pair("abuse-peers");
    // The same deployment without --peer, to show what the peers prevent.
    let home_c = TempHome::new("abuse-peers-c");
    let c = Broker::start(&home_c, &["--route-key-file", &p.key, "--ip-rate", "1000"]);

    // The balancer sends the slug to A; the host registers there, then its laptop sleeps.
    let front = format!("http://127.0.0.1:{}", p.front);
    let mut t = tunnel(&room.home, &front, "napping", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let alice = room.invite_http("alice", "agent");
    t.kill();
    // A's list names the slug (by MAC); B asks every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Req::get("/reservations").send(p.metrics_a).json()["reserved"]
        .as_object()
        .is_none_or(|m| m.is_empty())
    {
        assert!(Instant::now() < deadline, "A lists no held slug");
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = Req::get("/reservations").send(p.metrics_a).text();
    assert!(!listed.contains("napping"), "a slug in clear: {listed}");
    std::thread::sleep(Duration::from_millis(2500));

    // A dies; the balancer now sends the slug to B. A stranger asks B for it first.
    p.a.proc.kill();
    p.target.store(p.b.port, Ordering::SeqCst);
    stranger_is_refused(p.b.port, "198.51.100.90", "napping", &room, &alice.token);
    // Without peers, the survivor would have handed the slug to the stranger.
    let (f, _stolen) = register_from(c.port, "198.51.100.90", "napping", None);
    assert_eq!(f["type"], "registered", "{f}");
    // Other slugs register on B at once.
    let (f, _fresh) = register_from(p.b.port, "198.51.100.91", "fresh", None);
    assert_eq!(f["type"], "registered", "{f}");

    // The host wakes up and, through the balancer, takes its slug back on B.
    let t = tunnel(&room.home, &front, "napping", &[]);
    let back = t.wait_event("registered", 1, Duration::from_secs(15));
    assert_eq!(back["reclaimed"], true, "{back}");
    wait_route_up(p.b.port, "napping", &alice.token, Duration::from_secs(10));
}

/// Two instances naming each other with `--peer`, sharing one route key, and the
/// stand-in balancer sending every connection to the first.
struct Pair {
    a: Broker,
    b: Broker,
    metrics_a: u16,
    metrics_b: u16,
    target: Arc<AtomicU16>,
    front: u16,
    /// The shared route key file's path.
    key: String,
    _homes: (TempHome, TempHome, TempHome),
}

fn peered_pair(tag: &str) -> Pair {
    let shared = TempHome::new(&format!("{tag}-key"));
    let key = shared.root.join("route-key");
    std::fs::write(&key, "peers-route-key-0123456789abcdef\n").unwrap();
    let key = key.to_str().unwrap().to_string();
    let (metrics_a, metrics_b) = (free_port(), free_port());
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{metrics_a}"),
        format!("127.0.0.1:{metrics_b}"),
    );
    let (peer_a, peer_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let (home_a, home_b) = (
        TempHome::new(&format!("{tag}-a")),
        TempHome::new(&format!("{tag}-b")),
    );
    let common = ["--route-key-file", key.as_str(), "--ip-rate", "1000"];
    let a = Broker::start(
        &home_a,
        &[&common[..], &["--metrics-addr", &addr_a, "--peer", &peer_b]].concat(),
    );
    let b = Broker::start(
        &home_b,
        &[&common[..], &["--metrics-addr", &addr_b, "--peer", &peer_a]].concat(),
    );
    let target = Arc::new(AtomicU16::new(a.port));
    let front = balancer(target.clone());
    Pair {
        a,
        b,
        metrics_a,
        metrics_b,
        target,
        front,
        key,
        _homes: (shared, home_a, home_b),
    }
}

#[test]
fn a_slug_registered_just_before_its_instance_died_stays_with_its_host() {
    let mut p = peered_pair("abuse-push");
    // B's metrics listener answers before the host registers, so a push can reach it.
    wait_port_open(p.metrics_b);
    // The host registers through the balancer (on A), and A dies the moment the host has
    // its route: well within a second, before B's next question to A could have seen it.
    let (registered, host) = register_from(p.front, "198.51.100.95", "justnow", None);
    p.a.proc.kill();
    assert_eq!(registered["type"], "registered", "{registered}");
    drop(host);

    // The balancer now sends the slug to B. A stranger asks B for it first: refused.
    p.target.store(p.b.port, Ordering::SeqCst);
    let (f, _ws) = register_from(p.front, "198.51.100.96", "justnow", None);
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("refused"), Some("route_slug_taken")),
        "{f}"
    );
    // The real host takes its slug back on B with its secret.
    let mut ws = ws_connect_from(p.front, "198.51.100.95");
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "justnow",
                "reclaim": registered["route"]}),
    );
    let back = ws_next(&mut ws);
    assert_eq!(
        (back["type"].as_str(), back["reclaimed"].as_bool()),
        (Some("registered"), Some(true)),
        "{back}"
    );
}

/// What a process on a dead peer's metrics address answers each `GET /reservations` with,
/// in turn: an unsigned empty list, an empty list that echoes the question's nonce under a
/// made-up MAC, and the list of a live instance asked in the dead one's name.
fn fake_peer(port: u16, live_metrics: u16, authority: String) -> Arc<Mutex<Vec<u16>>> {
    use std::io::{BufRead, BufReader, Write};
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the dead peer's address");
    let relayed = Arc::new(Mutex::new(Vec::new()));
    let kept = relayed.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let _ = reader.read_line(&mut head);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let nonce = path.split("nonce=").nth(1).unwrap_or("").to_string();
            let body = match n % 3 {
                0 => json!({"reserved": {}}).to_string(),
                1 => json!({"reserved": {}, "nonce": nonce, "mac": "0".repeat(64)}).to_string(),
                _ => {
                    let r = Req::get(&path)
                        .header("Host", &authority)
                        .send(live_metrics);
                    kept.lock().unwrap().push(r.status);
                    r.text()
                }
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = (&stream).write_all(answer.as_bytes());
        }
    });
    relayed
}

#[test]
fn a_process_on_a_dead_peers_address_cannot_make_a_survivor_forget_its_slugs() {
    let mut p = peered_pair("abuse-fakepeer");
    // The host registers on A, and B's next questions to A find the slug in A's list.
    let (registered, _host) = register_from(p.front, "198.51.100.85", "held", None);
    assert_eq!(registered["type"], "registered", "{registered}");
    std::thread::sleep(Duration::from_millis(2500));

    // A dies, and another process takes its metrics address and answers B's questions.
    p.a.proc.kill();
    let authority = format!("127.0.0.1:{}", p.metrics_a);
    let relayed = fake_peer(p.metrics_a, p.metrics_b, authority.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while relayed.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "B stopped asking A");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The live instance would not answer in the dead one's name.
    assert!(
        relayed.lock().unwrap().iter().all(|s| *s == 421),
        "{:?}",
        relayed.lock().unwrap()
    );

    // B took none of those answers for A's: a stranger is still refused the slug there,
    // and the host reclaims it with its secret.
    p.target.store(p.b.port, Ordering::SeqCst);
    let (f, _ws) = register_from(p.front, "198.51.100.86", "held", None);
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("refused"), Some("route_slug_taken")),
        "{f}"
    );
    let mut ws = ws_connect_from(p.front, "198.51.100.85");
    ws_send(
        &mut ws,
        &json!({"type": "register", "version": 1, "slug": "held",
                "reclaim": registered["route"]}),
    );
    let back = ws_next(&mut ws);
    assert_eq!(back["reclaimed"], true, "{back}");

    // Its own list, asked for by its own name, B does sign.
    let own = Req::get("/reservations?nonce=00112233445566778899aabbccddeeff")
        .header("Host", &format!("127.0.0.1:{}", p.metrics_b))
        .send(p.metrics_b);
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["mac"].as_str().map(str::len), Some(64));
}

#[test]
fn a_forged_push_reserves_nothing() {
    let shared = TempHome::new("abuse-forged-key");
    let key = shared.root.join("route-key");
    std::fs::write(&key, "peers-route-key-0123456789abcdef\n").unwrap();
    let key = key.to_str().unwrap().to_string();
    let (recorder, pushed) = push_recorder();
    let recorder = format!("http://127.0.0.1:{recorder}");
    let (metrics_b, metrics_c) = (free_port(), free_port());
    let (addr_b, addr_c) = (
        format!("127.0.0.1:{metrics_b}"),
        format!("127.0.0.1:{metrics_c}"),
    );
    let homes = [
        TempHome::new("abuse-forged-a"),
        TempHome::new("abuse-forged-b"),
        TempHome::new("abuse-forged-c"),
    ];
    let common = ["--route-key-file", key.as_str(), "--ip-rate", "1000"];
    let a = Broker::start(&homes[0], &[&common[..], &["--peer", &recorder]].concat());
    let b = Broker::start(
        &homes[1],
        &[&common[..], &["--metrics-addr", &addr_b]].concat(),
    );
    let c = Broker::start(
        &homes[2],
        &[&common[..], &["--metrics-addr", &addr_c]].concat(),
    );
    wait_port_open(metrics_b);
    wait_port_open(metrics_c);

    // A genuine push, as A sends it to its peer before it confirms a new slug; the slug
    // is named by MAC only.
    let (f, _host) = register_from(a.port, "198.51.100.97", "forged", None);
    assert_eq!(f["type"], "registered", "{f}");
    let genuine = pushed.lock().unwrap().first().cloned().expect("A pushed");
    assert!(!genuine.contains("forged"), "a slug in clear: {genuine}");
    let genuine: Value = serde_json::from_str(&genuine).unwrap();

    // The forgeries: a wrong MAC, no MAC, a later end under the old MAC, junk.
    let mut wrong = genuine.clone();
    wrong["mac"] = json!("0".repeat(64));
    let mut unsigned = genuine.clone();
    unsigned.as_object_mut().unwrap().remove("mac");
    let mut longer = genuine.clone();
    longer["expires_at_ms"] = json!(genuine["expires_at_ms"].as_i64().unwrap() + 1);
    let forgeries: [(Vec<u8>, u16, &str); 4] = [
        (wrong.to_string().into(), 401, "push_unauthenticated"),
        (unsigned.to_string().into(), 401, "push_unauthenticated"),
        (longer.to_string().into(), 401, "push_unauthenticated"),
        (b"reserve forged, please".to_vec(), 400, "push_malformed"),
    ];
    for (body, status, code) in forgeries {
        let r = Req::post("/reservations")
            .header("content-type", "application/json")
            .body(body)
            .send(metrics_b);
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.json()["error"], code, "{}", r.text());
    }
    // Nothing was reserved on B: anyone may register the slug there.
    let (f, _ws) = register_from(b.port, "198.51.100.98", "forged", None);
    assert_eq!(f["type"], "registered", "{f}");

    // The genuine entry is taken (on C, which never heard of the slug), and holds it.
    let r = Req::post("/reservations")
        .header("content-type", "application/json")
        .json(&genuine)
        .send(metrics_c);
    assert_eq!(
        (r.status, r.json()["ok"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text()
    );
    let (f, _ws) = register_from(c.port, "198.51.100.98", "forged", None);
    assert_eq!(f["code"], "route_slug_taken", "{f}");
}

#[test]
fn a_dead_peer_does_not_hold_up_a_registration() {
    let home = TempHome::new("abuse-deadpeer");
    let key = home.root.join("route-key");
    std::fs::write(&key, "peers-route-key-0123456789abcdef\n").unwrap();
    // One peer with nothing listening; one that takes the connection and never answers.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let a = Broker::start(
        &home,
        &[
            "--route-key-file",
            key.to_str().unwrap(),
            "--ip-rate",
            "1000",
            "--peer",
            &nobody,
            "--peer",
            &silent_url,
        ],
    );
    for slug in ["prompt-1", "prompt-2"] {
        let started = Instant::now();
        let (f, _ws) = register_from(a.port, "198.51.100.99", slug, None);
        assert_eq!(f["type"], "registered", "{f}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "registration took {:?}",
            started.elapsed()
        );
    }
    drop(silent);
}
