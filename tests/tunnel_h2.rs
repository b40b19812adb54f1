//! Participants' requests over HTTP/2 with prior knowledge (h2c), the way an edge proxy
//! carries them to the broker on a few connections (HAProxy `proto h2`). Each stream is a
//! request like any HTTP/1 one: it reaches its own room, held waits share a connection,
//! and every guard applies per stream, per real client address. The HAProxy test runs
//! when HAProxy is installed (`AGENTGATHER_REQUIRE_HAPROXY=1` makes a missing one fail).

mod common;
mod tunnel_support;

use std::time::{Duration, Instant};

use common::*;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tunnel_support::*;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn h2c_streams_reach_their_room_under_every_guard() {
    let room = TestRoom::start("tunnel-h2c");
    let broker = Broker::start(&room.home, &["--ip-rate", "4", "--h2-max-streams", "16"]);
    let port = broker.port;
    let slug = "h2room";
    let mut t = tunnel(&room.home, &broker.url(), slug, &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let waiters: Vec<Invite> = (0..3)
        .map(|i| room.invite_http(&format!("h2w{i}"), "agent"))
        .collect();
    let since = room.last_id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut tx = h2(port).await;
        let auth = bearer(&room.token);

        // A request reaches its own room (its name as `:authority`, no `Host`).
        let (s, v, h) = h2_send(
            &mut tx,
            h2_get(slug, "/status", &[("authorization", &auth)]),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["room"], room.room.as_str(), "{v}");
        assert_eq!(h.get("x-robots-tag").unwrap(), "noindex, nofollow");

        // Three waits held at once as streams of one connection; one post answers all.
        let held: Vec<_> = waiters
            .iter()
            .map(|w| {
                let mut tx = tx.clone();
                let req = h2_get(
                    slug,
                    &format!(
                        "/wait?participant={}&since_id={since}&timeout_ms=20000",
                        w.alias
                    ),
                    &[("authorization", &bearer(&w.token))],
                );
                tokio::spawn(async move { h2_send(&mut tx, req).await })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while waiting_count(&room) < 3 {
            assert!(Instant::now() < deadline, "the h2 waits were not held");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        room.say(&room.token, "over h2");
        for w in held {
            let (s, v, _) = w.await.unwrap();
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["messages"][0]["text"], "over h2", "{v}");
        }

        // `Host` and `:authority` naming different rooms: neither is served.
        let (s, v, _) = h2_send(
            &mut tx,
            h2_get(
                slug,
                "/status",
                &[
                    ("authorization", &auth),
                    ("host", &format!("other.{DOMAIN}")),
                ],
            ),
        )
        .await;
        assert_error((s, v), 404, "not_found");
        // Unknown slugs, service-worker scripts and the tunnel path: refused as over HTTP/1.
        let (s, v, _) = h2_send(
            &mut tx,
            h2_get("no-such-room", "/status", &[("authorization", &auth)]),
        )
        .await;
        assert_error((s, v), 404, "not_found");
        let (s, v, _) = h2_send(
            &mut tx,
            h2_get(
                slug,
                "/sw.js",
                &[("authorization", &auth), ("service-worker", "script")],
            ),
        )
        .await;
        assert_error((s, v), 403, "service_worker_refused");
        let tunnel_req = hyper::Request::get(format!(
            "http://127.0.0.1:{port}/_agentgather/tunnel?slug=x"
        ))
        .body(Full::new(Bytes::new()))
        .unwrap();
        let (s, v, _) = h2_send(&mut tx, tunnel_req).await;
        assert_error((s, v), 400, "websocket_required");

        // Per address, per stream: behind a proxy on this machine, each stream counts
        // against the client address it forwards, not against the shared connection.
        let mut refused = 0;
        for _ in 0..6 {
            let (s, v, _) = h2_send(
                &mut tx,
                h2_get(slug, "/", &[("x-forwarded-for", "198.51.100.7")]),
            )
            .await;
            if s == 429 {
                assert_error((s, v), 429, "ip_rate_limited");
                refused += 1;
            }
        }
        assert!(refused >= 2, "the address's limit did not apply per stream");
        let (s, v, _) = h2_send(
            &mut tx,
            h2_get(slug, "/", &[("x-forwarded-for", "198.51.100.8")]),
        )
        .await;
        assert_ne!(s, 429, "another address was charged for the first: {v}");

        // The host gone: 503 `route_unavailable` with `Retry-After`, never another room.
        t.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let from = [
                ("authorization", auth.as_str()),
                ("x-forwarded-for", "198.51.100.9"),
            ];
            let (s, v, h) = h2_send(&mut tx, h2_get(slug, "/status", &from)).await;
            if s == 503 {
                assert_error((s, v), 503, "route_unavailable");
                assert!(h.contains_key("retry-after"));
                break;
            }
            // A request relayed just as the host's connection dropped is cut with 502.
            if s == 502 {
                assert_error((s, v), 502, "host_disconnected");
                assert!(h.contains_key("retry-after"));
            } else {
                assert_eq!(s, 200, "{v}");
            }
            assert!(
                Instant::now() < deadline,
                "the route stayed up without its host"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn haproxy_carries_participants_to_the_broker_over_h2() {
    if !proxy_installed("haproxy", "the HAProxy h2 test") {
        return;
    }
    let room = TestRoom::start("tunnel-h2-haproxy");
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let broker = Broker::start(&room.home, &["--ip-rate", "5", "--metrics-addr", &maddr]);
    let hport = free_port();
    // Participants' requests go to the broker as h2 streams; the host's WebSocket stays
    // HTTP/1.1 (`ws h1`), as in docs/deploy-broker.md.
    let cfg = format!(
        "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\n\
         frontend rooms\n    bind 127.0.0.1:{hport}\n    option forwardfor\n    default_backend brokers\n\n\
         backend brokers\n    server b0 127.0.0.1:{} proto h2 ws h1\n",
        broker.port
    );
    let _haproxy = run_haproxy(&room.home, hport, &cfg);
    let slug = "h2edge";
    let t = tunnel(&room.home, &format!("http://127.0.0.1:{hport}"), slug, &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));

    let r = get_via(hport, slug, "/status", &room.token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["room"], room.room.as_str());
    // A held wait and a post through the edge.
    let w = room.invite_http("edge-w", "agent");
    let since = room.last_id();
    let held = std::thread::spawn(move || {
        via(
            hport,
            "h2edge",
            Req::get(&format!(
                "/wait?participant=edge-w&since_id={since}&timeout_ms=20000"
            ))
            .token(&w.token),
        )
    });
    wait_held(&room, 1);
    let m = post_via(
        hport,
        slug,
        "/messages",
        &room.token,
        &json!({"text": "through the edge"}),
    );
    assert_eq!(m.status, 201, "{}", m.text());
    let got = held.join().unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["messages"][0]["text"], "through the edge");
    // HAProxy really spoke h2 to the broker (the tunnel alone is an HTTP/1.1 connection).
    assert!(
        connections(mport, "h2c") >= 1,
        "no h2c connection reached the broker"
    );

    // The per-address limit follows each real client through the shared h2 connection:
    // HAProxy forwards the client's address, and a second client is not charged for the
    // first one's requests.
    let from = |src: [u8; 4]| send_from(src, hport, slug);
    let statuses: Vec<u16> = (0..8).map(|_| from([127, 0, 0, 2])).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_ne!(from([127, 0, 0, 3]), 429);
    let log = broker.all_logs();
    assert!(
        !log.contains("through the edge"),
        "a body reached the broker's log"
    );
}

/// `GET /` for `slug`'s room without a token, sent from the loopback address `src`: the
/// status of the answer.
fn send_from(src: [u8; 4], port: u16, slug: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = connect_from(src, port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: {slug}.{DOMAIN}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A TCP connection to `port` from the loopback address `src` (bound with tokio's socket
/// builder, then handed over as a blocking stream).
fn connect_from(src: [u8; 4], port: u16) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::from((src, 0))).unwrap();
        let s = sock
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        let s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    })
}

#[test]
fn an_idle_h2_connection_is_asked_to_go_away() {
    let home = TempHome::new("tunnel-h2-idle");
    let broker = Broker::start(&home, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", broker.port))
            .await
            .expect("connect");
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        let conn = tokio::spawn(conn);
        let (s, _, _) = h2_send(&mut tx, h2_get("nobody", "/status", &[])).await;
        assert_eq!(s, 404);
        // No request for the idle period (30 s, checked every 30 s): the broker sends
        // GOAWAY and closes, so idle connections cannot hold its connection slots.
        let ended = tokio::time::timeout(Duration::from_secs(75), conn).await;
        assert!(ended.is_ok(), "the idle h2 connection was kept open");
    });
}

#[test]
fn caddy_carries_participants_to_the_broker_over_h2c() {
    if !proxy_installed("caddy", "the Caddy h2c test") {
        return;
    }
    let room = TestRoom::start("tunnel-h2-caddy");
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let broker = Broker::start(&room.home, &["--metrics-addr", &maddr]);
    // As in docs/deploy-broker.md: the tunnel path keeps HTTP/1.1 for the WebSocket, the
    // rest goes to the broker as h2c.
    let site = format!(
        "\t@tunnel path /_agentgather/tunnel\n\treverse_proxy @tunnel 127.0.0.1:{p}\n\treverse_proxy 127.0.0.1:{p} {{\n\t\tflush_interval -1\n\t\ttransport http {{\n\t\t\tversions h2c\n\t\t}}\n\t}}\n",
        p = broker.port
    );
    let caddy = start_caddy_with(&room.home, &site);
    let slug = "h2caddy";
    let t = tunnel(
        &room.home,
        &format!("http://127.0.0.1:{}", caddy.port),
        slug,
        &[],
    );
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let r = get_via(caddy.port, slug, "/status", &room.token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["room"], room.room.as_str());
    let r = get_via(caddy.port, "no-such-room", "/status", &room.token);
    assert_error_resp(&r, 404, "not_found");
    // Caddy really spoke h2c to the broker for the participants' requests.
    assert!(
        connections(mport, "h2c") >= 1,
        "no h2c connection reached the broker"
    );
}

/// The broker's count of connections accepted on its public port for `protocol`, read
/// from its metrics listener on `mport`.
fn connections(mport: u16, protocol: &str) -> u64 {
    let r = Req::get("/metrics").send(mport);
    assert_eq!(r.status, 200);
    let series = format!("agentgather_broker_connections_total{{protocol=\"{protocol}\"}} ");
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics:\n{}", r.text()))
}
