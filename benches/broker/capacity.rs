//! The broker's capacity (issue 14, item 7): many routes on one instance, held waits
//! through them, and the memory each costs (the latency the broker adds is `latency.rs`).
//!
//! The hosts of the capacity run are WebSocket peers in this process that register a slug
//! and hold every request they are sent (a held `/wait` as the broker sees it); the
//! broker is the real binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::{BIN, free_port};

pub(crate) const DOMAIN: &str = "rooms.bench";

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

pub(crate) struct Broker {
    pub(crate) child: std::process::Child,
    pub(crate) port: u16,
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
    pub(crate) fn start(tag: &str) -> Broker {
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
        super::rss_kb(self.child.id())
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

/// `n` holding hosts `r0`..`r{n-1}`, from a few loopback source addresses: the seconds
/// it took.
async fn register_routes(port: u16, n: usize, held: &Arc<AtomicUsize>) -> f64 {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let src = 2 + (i % 4) as u8;
        tasks.push(tokio::spawn(holding_host(
            port,
            src,
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
    t.elapsed().as_secs_f64()
}

/// Waits until `held` reaches `want` (or a minute passed); returns what it reached.
async fn until_held(held: &AtomicUsize, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    while held.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    held.load(Ordering::Relaxed)
}

/// Streams one h2c connection carries in the capacity run (the broker's default
/// `--h2-max-streams` is 256), as an edge proxy's connection would.
const STREAMS_PER_CONN: usize = 250;

/// The waits of an edge proxy: `waits` held `GET /wait` as h2 streams over
/// `waits / STREAMS_PER_CONN` connections, each stream with its own participant's
/// address in `X-Forwarded-For` (so the broker's per-address state is counted too).
async fn h2_waits(port: u16, routes: usize, waits: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut held = Vec::with_capacity(waits);
    let mut tx = None;
    for i in 0..waits {
        if i % STREAMS_PER_CONN == 0 {
            let stream = connect_from(10 + (i / STREAMS_PER_CONN % 8) as u8, port).await;
            let (sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            .expect("h2 handshake");
            tokio::spawn(conn);
            tx = Some(sender);
        }
        let mut sender = tx.clone().expect("a connection is open");
        let req = Request::get(format!(
            "http://r{}.{DOMAIN}/wait?participant=p{i}&since_id=0",
            i % routes
        ))
        .header("authorization", format!("Bearer bench-{i}"))
        .header(
            "x-forwarded-for",
            format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
        held.push(tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let _ = sender.send_request(req).await;
            }
        }));
    }
    held
}

/// The machine's load average over the last minute (`/proc/loadavg`).
pub fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `routes` hosts and `waits` held requests through them, the waits carried as h2
/// streams the way an edge proxy carries them: memory per route and per wait.
pub async fn capacity(routes: usize, waits: usize) -> Value {
    // Routes are sockets in the broker and in this process; waits are streams on a few
    // connections, so the open-file limit bounds only the routes.
    let limit = raise_nofile(200_000) as usize;
    let routes = routes.min(limit.saturating_sub(1_000));
    let broker = Broker::start("capacity");
    let port = broker.port;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = broker.rss_kb();
    let held = Arc::new(AtomicUsize::new(0));
    let register_s = register_routes(port, routes, &held).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_routes = broker.rss_kb();
    let t = Instant::now();
    let streams = h2_waits(port, routes, waits).await;
    let held_n = until_held(&held, waits).await;
    let hold_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_waits = broker.rss_kb();
    let load = load_avg();
    for s in streams {
        s.abort();
    }
    json!({
        "routes": routes,
        "waits": waits,
        "waits_held": held_n,
        "h2_connections": waits.div_ceil(STREAMS_PER_CONN),
        "register_s": register_s,
        "hold_s": hold_s,
        "rss_idle_kb": rss_idle,
        "kb_per_route": (rss_routes.saturating_sub(rss_idle)) as f64 / routes.max(1) as f64,
        "kb_per_wait": (rss_waits.saturating_sub(rss_routes)) as f64 / held_n.max(1) as f64,
        "rss_total_kb": rss_waits,
        "load_avg": load,
    })
}

/// The same held waits over HTTP/1.1, one connection each (a participant straight to
/// the broker, or a proxy that does not multiplex): every wait is a socket, so this run
/// is smaller, on its own broker.
pub async fn capacity_h1(routes: usize, waits: usize) -> Value {
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
    let broker = Broker::start("capacity-h1");
    let port = broker.port;
    let held = Arc::new(AtomicUsize::new(0));
    register_routes(port, routes, &held).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_routes = broker.rss_kb();
    let mut participants = Vec::with_capacity(waits);
    for i in 0..waits {
        let src = 20 + (i / 20_000) as u8;
        let mut s = connect_from(src, port).await;
        let req = format!(
            "GET /wait?participant=p{i}&since_id=0 HTTP/1.1\r\nHost: r{}.{DOMAIN}\r\nAuthorization: Bearer bench-{i}\r\nX-Forwarded-For: 10.{}.{}.{}\r\n\r\n",
            i % routes,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
        s.write_all(req.as_bytes()).await.expect("send a wait");
        participants.push(s);
    }
    let held_n = until_held(&held, waits).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_waits = broker.rss_kb();
    drop(participants);
    json!({
        "routes": routes,
        "waits_held": held_n,
        "kb_per_wait": (rss_waits.saturating_sub(rss_routes)) as f64 / held_n.max(1) as f64,
        "load_avg": load_avg(),
    })
}

/// The broker's capacity figures against the targets of issue 14 (item 7), under the
/// head of the broker table (the latency row follows it, `latency::row`).
pub fn table(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut t = String::from(
        "\n| broker figure | measured | target | met? | load avg |\n|---|---|---|---|---|\n",
    );
    if let Some(x) = r.get("broker_capacity") {
        let routes = x["routes"].as_u64().unwrap_or(0);
        let held = x["waits_held"].as_u64().unwrap_or(0);
        t += &format!(
            "| routes and held waits on one instance (waits as h2 streams on {} connections) | {routes} routes, {held} waits held (of {}) | 10,000 routes, 20,000 waits | {} | {} |\n",
            x["h2_connections"],
            x["waits"],
            met(routes >= 10_000 && held >= 20_000),
            f(&x["load_avg"]),
        );
        t += &format!(
            "| memory per route | {} KB (idle {} KB, total {} KB) | ≤ 32 KB | {} | {} |\n",
            f(&x["kb_per_route"]),
            x["rss_idle_kb"],
            x["rss_total_kb"],
            met(num(&x["kb_per_route"]) <= 32.0),
            f(&x["load_avg"]),
        );
        t += &format!(
            "| memory per held wait, h2 streams through the broker | {} KB | ≤ 8 KB | {} | {} |\n",
            f(&x["kb_per_wait"]),
            met(num(&x["kb_per_wait"]) <= 8.0),
            f(&x["load_avg"]),
        );
    }
    if let Some(x) = r.get("broker_capacity_h1") {
        t += &format!(
            "| memory per held wait, HTTP/1.1 (one connection each; {} routes, {} waits) | {} KB | reported (≤ 8 KB is the h2 target) | - | {} |\n",
            x["routes"],
            x["waits_held"],
            f(&x["kb_per_wait"]),
            f(&x["load_avg"]),
        );
    }
    t
}
