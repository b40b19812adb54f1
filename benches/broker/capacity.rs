//! The broker's capacity (issue 14, item 7): many routes on one instance, held waits
//! through them, the memory each costs, and the latency the broker adds to a request.
//!
//! The hosts of the capacity run are WebSocket peers in this process that register a slug
//! and hold every request they are sent (a held `/wait` as the broker sees it); the
//! broker is the real binary. The latency run uses a real room server and `tunnel run`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::{BIN, Server, free_port, ms, pct};

const DOMAIN: &str = "rooms.bench";

/// Lets this process and the broker it starts hold tens of thousands of sockets; returns
/// the limit they got.
fn raise_nofile(n: u64) -> u64 {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur);
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &cur);
        }
        let mut got = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut got);
        got.rlim_cur
    }
}

struct Broker {
    child: std::process::Child,
    port: u16,
    _home: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Broker {
    fn start(tag: &str) -> Broker {
        let home =
            std::env::temp_dir().join(format!("ag-bench-broker-{tag}-{}", std::process::id()));
        let port = free_port();
        let child = std::process::Command::new(BIN)
            .args(["broker", "serve", "--port", &port.to_string()])
            .args(["--public-url", &format!("https://{DOMAIN}")])
            .args([
                "--max-routes",
                "100000",
                "--max-routes-per-address",
                "100000",
            ])
            .args(["--max-connections", "100000", "--restart-grace", "0s"])
            .args(["--ip-rate", "100000000", "--ip-authed-rate", "100000000"])
            .args(["--route-rate", "100000000"])
            .env("AGENTGATHER_HOME", &home)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn broker");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "broker did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Broker {
            child,
            port,
            _home: tempdir::Dir(home),
        }
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to the broker from loopback address `127.0.0.<src>`, so that tens of
/// thousands of connections do not run out of ephemeral ports.
async fn connect_from(src: u8, port: u16) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(std::net::SocketAddr::from(([127, 0, 0, src], 0)))
        .expect("bind a loopback source");
    let s = sock
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect");
    let _ = s.set_nodelay(true);
    s
}

/// Registers `slug` and holds every request the broker relays (counted in `held`).
async fn holding_host(port: u16, src: u8, slug: String, held: Arc<AtomicUsize>) {
    let stream = connect_from(src, port).await;
    let url = format!("ws://127.0.0.1:{port}/_agentgather/tunnel?slug={slug}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake");
    let reg = json!({"type": "register", "version": 1, "slug": slug});
    ws.send(Message::text(reg.to_string()))
        .await
        .expect("register");
    let first = ws.next().await.expect("an answer").expect("a frame");
    assert!(
        first.to_text().unwrap_or("").contains("registered"),
        "{first:?}"
    );
    held.fetch_add(0, Ordering::Relaxed);
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && t.contains("\"request\"")
            {
                held.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// `routes` hosts and `waits` held requests through them: memory per route and per wait.
pub async fn capacity(routes: usize, waits: usize) -> Value {
    // Every route and every held wait is a socket in the broker and in this process: past
    // the open-file limit, scale both down alike (the table shows what ran).
    let limit = raise_nofile(200_000) as usize;
    let room = limit.saturating_sub(1_000);
    let (routes, waits) = if routes + waits > room {
        let k = room as f64 / (routes + waits) as f64;
        (
            ((routes as f64) * k) as usize,
            ((waits as f64) * k) as usize,
        )
    } else {
        (routes, waits)
    };
    let broker = Broker::start("capacity");
    let port = broker.port;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = broker.rss_kb();
    let held = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..routes {
        tasks.push(tokio::spawn(holding_host(
            port,
            2,
            format!("r{i}"),
            held.clone(),
        )));
        if tasks.len() == 256 {
            for t in tasks.drain(..) {
                t.await.expect("host");
            }
        }
    }
    for t in tasks {
        t.await.expect("host");
    }
    let register_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_routes = broker.rss_kb();
    let mut participants = Vec::with_capacity(waits);
    for i in 0..waits {
        let src = 3 + (i / 20_000) as u8;
        let mut s = connect_from(src, port).await;
        let req = format!(
            "GET /wait?participant=p{i}&since_id=0 HTTP/1.1\r\nHost: r{}.{DOMAIN}\r\nAuthorization: Bearer bench-{i}\r\n\r\n",
            i % routes
        );
        s.write_all(req.as_bytes()).await.expect("send a wait");
        participants.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while held.load(Ordering::Relaxed) < waits && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held_n = held.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_waits = broker.rss_kb();
    drop(participants);
    json!({
        "routes": routes,
        "waits_held": held_n,
        "register_s": register_s,
        "rss_idle_kb": rss_idle,
        "kb_per_route": (rss_routes.saturating_sub(rss_idle)) as f64 / routes as f64,
        "kb_per_wait": (rss_waits.saturating_sub(rss_routes)) as f64 / waits.max(1) as f64,
        "rss_total_kb": rss_waits,
    })
}

/// One keep-alive connection sending `GET /status` with a chosen `Host`.
struct Conn {
    tx: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(port: u16, host: &str) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        Conn {
            tx,
            host: host.to_string(),
        }
    }

    async fn status(&mut self, token: &str) -> u16 {
        let req = Request::builder()
            .uri("/status")
            .header("host", &self.host)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.tx.ready().await.expect("ready");
        let resp = self.tx.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        status
    }
}

/// `rate` requests per second for `secs` seconds over `conns` connections: latencies (ms).
async fn paced(port: u16, host: &str, token: &str, rate: u32, secs: u64, conns: usize) -> Vec<f64> {
    let pool: Vec<Arc<tokio::sync::Mutex<Conn>>> = {
        let mut v = Vec::new();
        for _ in 0..conns {
            v.push(Arc::new(tokio::sync::Mutex::new(
                Conn::open(port, host).await,
            )));
        }
        v
    };
    let total = rate as u64 * secs;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let c = pool[i as usize % conns].clone();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = c.lock().await;
            let t = Instant::now();
            let s = c.status(&token).await;
            (s, ms(t.elapsed()))
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (s, l) = t.await.expect("request");
        assert_eq!(s, 200, "a paced request failed");
        lat.push(l);
    }
    lat
}

/// The latency the broker adds: the same `GET /status` to the room server directly and
/// through broker and tunnel, at `rate` requests per second.
pub async fn latency(rate: u32, secs: u64) -> Value {
    let mut room = Server::new("broker-latency", 0, 0);
    room.start(&[]);
    let broker = Broker::start("latency");
    let mut tunnel = std::process::Command::new(BIN)
        .args([
            "tunnel",
            "run",
            "--json",
            "--room",
            "current",
            "--subdomain",
            "lat",
        ])
        .args(["--broker", &format!("http://127.0.0.1:{}", broker.port)])
        .env("AGENTGATHER_HOME", &room.home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tunnel");
    let host = format!("lat.{DOMAIN}");
    let t = Instant::now();
    loop {
        let mut c = Conn::open(broker.port, &host).await;
        if c.status(&room.host_token).await == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the tunnel did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let direct_host = format!("127.0.0.1:{}", room.port);
    let mut direct = paced(room.port, &direct_host, &room.host_token, rate, secs, 16).await;
    let mut via = paced(broker.port, &host, &room.host_token, rate, secs, 16).await;
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    let (b50, b99) = (pct(&mut via, 0.5), pct(&mut via, 0.99));
    json!({
        "rate": rate,
        "requests": via.len(),
        "direct_p50_ms": d50, "direct_p99_ms": d99,
        "broker_p50_ms": b50, "broker_p99_ms": b99,
        "added_p50_ms": b50 - d50, "added_p99_ms": b99 - d99,
    })
}
