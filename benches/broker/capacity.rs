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

type Pool = Vec<Arc<tokio::sync::Mutex<Conn>>>;

async fn pool(port: u16, host: &str, conns: usize) -> Pool {
    let mut v = Vec::new();
    for _ in 0..conns {
        v.push(Arc::new(tokio::sync::Mutex::new(
            Conn::open(port, host).await,
        )));
    }
    v
}

/// How long each path is driven before the other takes over: the direct and the
/// brokered requests alternate in slices, so that both see the same machine (a build
/// starting next to the bench moves both, not one).
const SLICE: Duration = Duration::from_millis(250);

/// `rate` requests per second for `secs` seconds on each of two paths, alternating
/// slices: the latencies (ms) of each.
async fn paced_pair(paths: [&Pool; 2], token: &str, rate: u32, secs: u64) -> [Vec<f64>; 2] {
    let per_slice = (f64::from(rate) * SLICE.as_secs_f64()).max(1.0) as u64;
    let total = rate as u64 * secs * 2;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let which = ((i / per_slice) % 2) as usize;
        let pool = paths[which];
        let c = pool[i as usize % pool.len()].clone();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = c.lock().await;
            let t = Instant::now();
            let s = c.status(&token).await;
            (which, s, ms(t.elapsed()))
        }));
    }
    let mut lat = [Vec::new(), Vec::new()];
    for t in tasks {
        let (which, s, l) = t.await.expect("request");
        assert_eq!(s, 200, "a paced request failed");
        lat[which].push(l);
    }
    lat
}

/// CPU time (user + system) process `pid` has used, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) * 1000.0 / hz
}

/// The latency the broker adds: the same `GET /status` to the room server directly and
/// through broker and tunnel, at `rate` requests per second on each, in alternating
/// slices.
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
    let direct_pool = pool(room.port, &direct_host, 16).await;
    let via_pool = pool(broker.port, &host, 16).await;
    let cpu0 = [cpu_ms(broker.child.id()), cpu_ms(tunnel.id())];
    let [mut direct, mut via] =
        paced_pair([&direct_pool, &via_pool], &room.host_token, rate, secs).await;
    let cpu1 = [cpu_ms(broker.child.id()), cpu_ms(tunnel.id())];
    let n = via.len().max(1) as f64;
    let cpu_us = [
        (cpu1[0] - cpu0[0]) * 1000.0 / n,
        (cpu1[1] - cpu0[1]) * 1000.0 / n,
    ];
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    let load = load_avg();
    if std::env::var_os("AG_BENCH_DEBUG").is_some() {
        for (name, xs) in [("direct", &mut direct), ("via", &mut via)] {
            let qs: Vec<String> = [0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0]
                .iter()
                .map(|q| format!("{q}:{:.2}", pct(xs, *q)))
                .collect();
            eprintln!("{name}: {}", qs.join(" "));
        }
        eprintln!(
            "CPU per brokered request: broker {:.0} µs, tunnel {:.0} µs",
            cpu_us[0], cpu_us[1]
        );
    }
    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    let (b50, b99) = (pct(&mut via, 0.5), pct(&mut via, 0.99));
    json!({
        "rate": rate,
        "requests": via.len(),
        "direct_p50_ms": d50, "direct_p99_ms": d99,
        "broker_p50_ms": b50, "broker_p99_ms": b99,
        "added_p50_ms": b50 - d50, "added_p99_ms": b99 - d99,
        "load_avg": load,
    })
}

/// The broker's figures against the targets of issue 14 (item 7), with the machine's
/// load average at each: the latency figures only mean something on an idle machine.
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
    if let Some(x) = r.get("broker_latency") {
        t += &format!(
            "| added latency at {}/s (`GET /status` via broker + tunnel vs direct) | p50 +{} ms, p99 +{} ms (direct p50 {} / p99 {} ms; through p50 {} / p99 {} ms) | p99 ≤ 2 ms added | {} | {} |\n",
            x["rate"],
            f(&x["added_p50_ms"]),
            f(&x["added_p99_ms"]),
            f(&x["direct_p50_ms"]),
            f(&x["direct_p99_ms"]),
            f(&x["broker_p50_ms"]),
            f(&x["broker_p99_ms"]),
            met(num(&x["added_p99_ms"]) <= 2.0),
            f(&x["load_avg"]),
        );
    }
    t
}
