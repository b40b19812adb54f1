//! Several broker instances with no shared store behind HAProxy (issue 14, item 5). The
//! balancer hashes consistently on the room's name (its `Host`, or `?slug=` for a host's
//! tunnel), all instances share the route key file, and when an instance dies its hosts
//! reconnect through the balancer to the slug's new owner and reclaim their slugs. Runs
//! when HAProxy is installed (CI installs it; `AGENTGATHER_REQUIRE_HAPROXY=1` makes a
//! missing HAProxy fail).

mod common;
mod tunnel_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tunnel_support::*;

fn start_haproxy(home: &TempHome, port: u16, brokers: &[u16]) -> Proc {
    let servers: String = brokers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server b{i} 127.0.0.1:{p}\n"))
        .collect();
    let cfg = format!(
        "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\n\
         frontend rooms\n    bind 127.0.0.1:{port}\n    option forwardfor\n\
         \x20   http-request set-var(txn.slug) req.hdr(host),field(1,.)\n\
         \x20   http-request set-var(txn.slug) url_param(slug) if {{ path /_agentgather/tunnel }} || {{ path /_agentgather/route-check }}\n\
         \x20   default_backend brokers\n\n\
         backend brokers\n    balance hash var(txn.slug)\n    hash-type consistent\n    option httpchk GET /_agentgather/health\n    default-server check inter 300 fall 2 rise 1\n{servers}"
    );
    run_haproxy(home, port, &cfg)
}

/// The slugs each broker holds with a connected host (asked on its own port).
fn owners(brokers: &[Broker]) -> HashMap<String, usize> {
    let mut map = HashMap::new();
    for (i, b) in brokers.iter().enumerate() {
        let Ok(r) = Req::get("/_agentgather/routes")
            .timeout(Duration::from_secs(2))
            .try_send(b.port)
        else {
            continue;
        };
        for route in r.json()["routes"].as_array().cloned().unwrap_or_default() {
            if route["status"] == "connected" {
                map.insert(route["slug"].as_str().unwrap().to_string(), i);
            }
        }
    }
    map
}

/// `GET /status` of `slug` through the balancer: `Some(room id)` when it answered 200.
/// Any answer from a room must be that slug's own room.
fn room_behind(port: u16, slug: &str, token: &str) -> Option<String> {
    let r = at(slug, Req::get("/status"))
        .token(token)
        .timeout(Duration::from_secs(5))
        .try_send(port)
        .ok()?;
    (r.status == 200).then(|| r.json()["room"].as_str().unwrap_or("").to_string())
}

/// Through the balancer, `slug` is answered by room `r` and takes a post of `text`.
fn answers_as_itself_and_posts(port: u16, slug: &str, r: &TestRoom, text: &str) {
    assert_eq!(
        room_behind(port, slug, &r.token).as_deref(),
        Some(r.room.as_str())
    );
    let m = post_via(port, slug, "/messages", &r.token, &json!({"text": text}));
    assert_eq!(m.status, 201, "{}", m.text());
}

#[test]
fn three_instances_behind_haproxy_survive_losing_one() {
    if !proxy_installed("haproxy", "the HAProxy cluster test") {
        return;
    }
    let shared = TempHome::new("cluster");
    let key = shared.root.join("route-key");
    std::fs::write(&key, "cluster-route-key-0123456789abcdef\n").unwrap();
    let key_s = key.to_str().unwrap().to_string();
    let homes: Vec<TempHome> = (0..3)
        .map(|i| TempHome::new(&format!("cluster-b{i}")))
        .collect();
    let args = [
        "--route-key-file",
        key_s.as_str(),
        "--ip-rate",
        "100000",
        "--ip-authed-rate",
        "100000",
        // Every host of this test connects from 127.0.0.1.
        "--max-routes-per-address",
        "1000",
    ];
    // Each instance names the others by their metrics listeners (`--peer`), as in
    // docs/deploy-broker.md, so a dead instance's held slugs stay refused to strangers.
    let metrics: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut brokers: Vec<Broker> = homes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut own: Vec<String> = vec!["--metrics-addr".into(), metrics[i].clone()];
            for (j, m) in metrics.iter().enumerate() {
                if j != i {
                    own.extend(["--peer".into(), format!("http://{m}")]);
                }
            }
            let all: Vec<&str> = args
                .iter()
                .copied()
                .chain(own.iter().map(String::as_str))
                .collect();
            Broker::start(h, &all)
        })
        .collect();
    let hport = free_port();
    let _haproxy = start_haproxy(
        &shared,
        hport,
        &brokers.iter().map(|b| b.port).collect::<Vec<_>>(),
    );
    let front = format!("http://127.0.0.1:{hport}");

    // Ten hosts, each its own room and tunnel, all through the balancer.
    let rooms: Vec<TestRoom> = (0..10)
        .map(|i| TestRoom::start(&format!("cluster-{i}")))
        .collect();
    let slug = |i: usize| format!("room-{i}");
    let tunnels: Vec<Proc> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| tunnel(&r.home, &front, &slug(i), &["--route-check", "1s"]))
        .collect();
    for t in &tunnels {
        t.wait_event("public_url_set", 1, Duration::from_secs(30));
    }
    for (i, r) in rooms.iter().enumerate() {
        answers_as_itself_and_posts(hport, &slug(i), r, &format!("before {i}"));
    }
    let owned = owners(&brokers);
    assert_eq!(owned.len(), 10, "{owned:?}");
    let mut per: [Vec<usize>; 3] = Default::default();
    for (s, b) in &owned {
        per[*b].push(s.trim_start_matches("room-").parse().unwrap());
    }
    let victim = (0..3).max_by_key(|b| per[*b].len()).unwrap();
    let moved = per[victim].clone();
    assert!(!moved.is_empty());

    // The instance holding the most slugs dies.
    brokers[victim].proc.kill();
    for &i in &moved {
        let t = &tunnels[i];
        let back = t.wait_event("registered", 2, Duration::from_secs(30));
        assert_eq!(back["reclaimed"], true, "{back}");
        let since = Instant::now();
        loop {
            match room_behind(hport, &slug(i), &rooms[i].token) {
                Some(room) => {
                    assert_eq!(
                        room, rooms[i].room,
                        "a request was answered by another room"
                    );
                    break;
                }
                None => assert!(
                    since.elapsed() < Duration::from_secs(10),
                    "{} not back within 10 s of its host reconnecting",
                    slug(i)
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Every room, moved or not, answers as itself, and no message is lost.
    for (i, r) in rooms.iter().enumerate() {
        answers_as_itself_and_posts(hport, &slug(i), r, &format!("after {i}"));
        let all = get_via(hport, &slug(i), "/messages?since_id=0", &r.token).json();
        let texts: Vec<&str> = all["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        for want in [format!("before {i}"), format!("after {i}")] {
            assert!(
                texts.contains(&want.as_str()),
                "{want:?} missing in {texts:?}"
            );
        }
    }

    // The instance comes back: its slugs' hosts move back to it (their route check sees
    // the balancer send the slug there), and it takes new hosts at once.
    brokers[victim].crash_and_restart(&homes[victim]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !owners(&brokers).values().any(|b| *b == victim) {
        assert!(
            Instant::now() < deadline,
            "no host moved back to the restarted instance"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let ok = rooms.iter().enumerate().all(|(i, r)| {
            room_behind(hport, &slug(i), &r.token).as_deref() == Some(r.room.as_str())
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every room came back after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut landed = false;
    for n in 0..12 {
        let mut ws = ws_connect_via(hport, &format!("fresh-{n}"));
        ws_send(
            &mut ws,
            &json!({"type": "register", "version": 1, "slug": format!("fresh-{n}")}),
        );
        let f: Value = ws_next(&mut ws);
        assert_eq!(f["type"], "registered", "{f}");
        if owners(&brokers).get(&format!("fresh-{n}")) == Some(&victim) {
            landed = true;
            break;
        }
    }
    assert!(landed, "no new host landed on the restarted instance");
}

/// A raw host connecting through the balancer with its slug in the query.
fn ws_connect_via(port: u16, slug: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (ws, _) = tungstenite::client::client(
        format!("ws://127.0.0.1:{port}/_agentgather/tunnel?slug={slug}"),
        stream,
    )
    .expect("WebSocket handshake");
    ws
}
