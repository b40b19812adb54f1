//! Load benchmark: starts the real release server on loopback, drives it over HTTP with
//! an async client (one connection per simulated participant), and prints a table of
//! the scale targets of issue 6 (or one JSON object with `--json`).
//!
//!     cargo bench --bench load                 # all scenarios
//!     cargo bench --bench load -- --json --only fanout,reads
//!     cargo bench --bench load -- --only claims   # POST /claims with 500 live claims
//!     cargo bench --bench load -- --only broker   # the tunnel broker's capacity and latency
//!     cargo bench --bench load -- --only broker-latency   # (or broker-capacity) one part
//!     cargo bench --bench load -- --only host-speed   # how often the host slows this machine
//!     cargo bench --bench load -- --only hardening    # issue 22: search, big-log restart, page reads
//!
//! Timings here are measurements, never pass/fail.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_agentgather");

#[path = "broker/capacity.rs"]
mod broker;
#[path = "scenarios/claims.rs"]
mod claims;
#[path = "room/hardening.rs"]
mod hardening;
#[path = "broker/host_speed.rs"]
mod host_speed;
#[path = "broker/latency.rs"]
mod latency;

struct Server {
    home: PathBuf,
    port: u16,
    host_token: String,
    tokens: Vec<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn ag(home: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("AGENTGATHER_HOME", home)
        .output()
        .expect("run agentgather");
    assert!(
        out.status.success(),
        "agentgather {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

impl Server {
    /// A room with `agents` invited participants and `prefill` messages already in its log.
    fn new(tag: &str, agents: usize, prefill: u64) -> Server {
        let home = std::env::temp_dir().join(format!("ag-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let host_token = ag(
            &home,
            &[
                "room", "start", "bench", "--alias", "operator", "--url", &url,
            ],
        )["token"]
            .as_str()
            .expect("token")
            .to_string();
        let tokens = (0..agents)
            .map(|i| {
                ag(&home, &["room", "invite", &format!("a{i}")])["token"]
                    .as_str()
                    .expect("token")
                    .to_string()
            })
            .collect();
        if prefill > 0 {
            let log = home.join("rooms/bench/messages.jsonl");
            std::fs::write(&log, b"").expect("truncate");
            let mut f = std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            );
            for id in 1..=prefill {
                writeln!(
                    f,
                    r#"{{"id":{id},"room":"bench","ts":"2026-11-25T12:00:00.000Z","from":"operator","type":"message","text":"prefill message number {id} with some ordinary chat text","mentions":[]}}"#
                )
                .expect("write");
            }
        }
        Server {
            home,
            port,
            host_token,
            tokens,
            child: None,
        }
    }

    /// Starts `room serve`; returns the time until the port answers.
    fn start(&mut self, extra: &[&str]) -> Duration {
        let t = Instant::now();
        let child = Command::new(BIN)
            .args(["room", "serve", "--port", &self.port.to_string()])
            .args(extra)
            .env("AGENTGATHER_HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        self.child = Some(child);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        t.elapsed()
    }

    fn rss_kb(&self) -> u64 {
        rss_kb(self.child.as_ref().map_or(0, Child::id))
    }
}

/// Resident memory of process `pid`, in KB (0 when it is gone).
fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// A KB figure of process `pid`'s `/proc` status (`VmRSS:`, `VmHWM:`, …); 0 when gone.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    tx: SendRequest<Full<Bytes>>,
    port: u16,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Conn { tx, port }
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        self.tx.ready().await.expect("connection ready");
        let resp = self.tx.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn pct(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn fanout(waiters: usize, rounds: usize) -> Value {
    let mut s = Server::new("fanout", waiters, 0);
    s.start(&[]);
    let mut host = Conn::open(s.port).await;
    let (_, page) = host
        .call("GET", "/messages?since_id=0", &s.host_token, None)
        .await;
    let mut tail = page["next_since_id"].as_u64().unwrap_or(0);
    let rss_idle = s.rss_kb();
    let mut conns = Vec::new();
    for _ in 0..waiters {
        conns.push(Conn::open(s.port).await);
    }
    let mut lat = Vec::new();
    let mut delivered = Vec::new();
    let mut rss_held = 0;
    for round in 0..rounds {
        let text = format!("fan-out round {round}");
        let t0 = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let mut tasks = Vec::new();
        for (mut c, tok) in conns.drain(..).zip(s.tokens.iter().cloned()) {
            let text = text.clone();
            tasks.push(tokio::spawn(async move {
                let (st, w) = c
                    .call("GET", &format!("/wait?since_id={tail}"), &tok, None)
                    .await;
                let at = Instant::now();
                let ok = st == 200
                    && w["messages"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["text"] == text.as_str()));
                (c, at, ok)
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500 + waiters as u64)).await;
        rss_held = rss_held.max(s.rss_kb());
        *t0.lock().expect("lock") = Some(Instant::now());
        let posted = Instant::now();
        let (st, b) = host
            .call(
                "POST",
                "/messages",
                &s.host_token,
                Some(json!({"text": text})),
            )
            .await;
        assert_eq!(st, 201);
        tail = b["message"]["id"].as_u64().unwrap_or(tail);
        let mut ok = 0;
        for t in tasks {
            let (c, at, good) = t.await.expect("task");
            if good {
                ok += 1;
                lat.push(ms(at.saturating_duration_since(posted)));
            }
            conns.push(c);
        }
        delivered.push(ok);
    }
    json!({
        "waiters": waiters, "delivered_per_round": delivered,
        "p50_ms": pct(&mut lat, 0.5), "p99_ms": pct(&mut lat, 0.99), "max_ms": pct(&mut lat, 1.0),
        "rss_idle_kb": rss_idle, "rss_held_kb": rss_held,
        "kb_per_wait": (rss_held.saturating_sub(rss_idle)) as f64 / waiters as f64,
    })
}

async fn throughput(posts: usize, inflight: usize, fsync: &str) -> Value {
    let agents = posts.div_ceil(20).max(inflight);
    let mut s = Server::new(&format!("posts-{fsync}"), agents, 0);
    s.start(&["--fsync", fsync]);
    let tokens = Arc::new(s.tokens.clone());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..inflight {
        let tokens = tokens.clone();
        let next = next.clone();
        let port = s.port;
        workers.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            let mut lat = Vec::new();
            let mut failed = 0;
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= posts {
                    break;
                }
                let t = Instant::now();
                let (st, _) = c
                    .call(
                        "POST",
                        "/messages",
                        &tokens[k / 20],
                        Some(json!({"text": format!("post {k}")})),
                    )
                    .await;
                lat.push(ms(t.elapsed()));
                if st != 201 {
                    failed += 1;
                }
            }
            (lat, failed)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await.expect("worker");
        lat.extend(l);
        failed += f;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut c = Conn::open(s.port).await;
    // Every stored message, page after page (a page holds at most 1,000).
    let mut messages = Vec::new();
    let mut since = 0;
    loop {
        let (_, page) = c
            .call(
                "GET",
                &format!("/messages?since_id={since}"),
                &s.host_token,
                None,
            )
            .await;
        messages.extend(page["messages"].as_array().cloned().unwrap_or_default());
        since = page["next_since_id"].as_u64().unwrap_or(since);
        if page["has_more"] != true {
            break;
        }
    }
    let ids: Vec<u64> = messages.iter().filter_map(|m| m["id"].as_u64()).collect();
    let unique = ids.windows(2).all(|w| w[0] < w[1]);
    let stored_posts = messages.iter().filter(|m| m["type"] == "message").count();
    json!({
        "posts": posts, "inflight": inflight, "fsync": fsync, "per_s": posts as f64 / secs,
        "p50_ms": pct(&mut lat, 0.5), "p99_ms": pct(&mut lat, 0.99), "failed": failed,
        "stored": stored_posts, "ids_strictly_increase": unique,
    })
}

async fn reads(n: u64, reps: usize) -> Value {
    let mut s = Server::new(&format!("reads-{n}"), 1, n);
    let startup = s.start(&[]);
    let tok = s.tokens[0].clone();
    let mut c = Conn::open(s.port).await;
    let (st, first) = c
        .call("GET", &format!("/messages?since_id={}", n - 10), &tok, None)
        .await;
    let ready = s.child.as_ref().map(|_| startup).unwrap_or_default();
    assert_eq!(st, 200);
    assert_eq!(first["messages"].as_array().map_or(0, Vec::len), 10);
    let mut tail = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        c.call("GET", &format!("/messages?since_id={}", n - 10), &tok, None)
            .await;
        tail.push(ms(t.elapsed()));
    }
    let mut now = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        c.call("GET", &format!("/wait?since_id={}", n - 1), &tok, None)
            .await;
        now.push(ms(t.elapsed()));
    }
    json!({
        "log_messages": n, "startup_ms": ms(ready),
        "tail_read_p50_ms": pct(&mut tail, 0.5), "tail_read_p99_ms": pct(&mut tail, 0.99),
        "wait_now_p50_ms": pct(&mut now, 0.5), "wait_now_p99_ms": pct(&mut now, 0.99),
    })
}

/// Start-up recovery of a big log: time until the port answers and a tail read works.
async fn recovery(n: u64) -> Value {
    let mut s = Server::new("recovery", 1, n);
    let t = Instant::now();
    s.start(&[]);
    let port_ms = ms(t.elapsed());
    let mut c = Conn::open(s.port).await;
    let tok = s.tokens[0].clone();
    let (st, page) = c
        .call("GET", &format!("/messages?since_id={}", n - 5), &tok, None)
        .await;
    let read_ms = ms(t.elapsed());
    json!({"log_messages": n, "port_ms": port_ms, "first_read_ms": read_ms, "read_ok": st == 200 && page["messages"].as_array().map_or(0, Vec::len) == 5})
}

/// SPEC §9: search over a full room (50,000 messages, 500 of them topics) and topic
/// listing. The first search builds the in-memory corpus; its cost and size are reported.
async fn search(n: u64, topics: u64, reps: usize) -> Value {
    let mut s = Server::new("search", 1, n - topics);
    {
        let log = s.home.join("rooms/bench/messages.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("log");
        for id in n - topics + 1..=n {
            writeln!(
                f,
                r#"{{"id":{id},"room":"bench","ts":"2026-11-25T12:00:00.000Z","from":"operator","type":"topic","text":"topic body {id}","mentions":[],"topic":{{"title":"Topic title {id}","status":"open","kind":"discussion","tags":["t{}"]}}}}"#,
                id % 7
            )
            .expect("write");
        }
    }
    let startup = s.start(&[]);
    let tok = s.tokens[0].clone();
    let mut c = Conn::open(s.port).await;
    let rss_before = s.rss_kb();
    let t = Instant::now();
    let (st, first) = c.call("GET", "/search?q=number%2012345", &tok, None).await;
    let first_ms = ms(t.elapsed());
    assert_eq!(st, 200, "{first}");
    let rss_after = s.rss_kb();
    let queries = [
        "ordinary%20chat",
        "number%2012345",
        "zzz-no-match",
        "topic%20title%2049999",
    ];
    let mut all = Vec::new();
    let mut miss = Vec::new();
    for i in 0..reps {
        let q = queries[i % queries.len()];
        let t = Instant::now();
        let (st, _) = c.call("GET", &format!("/search?q={q}"), &tok, None).await;
        assert_eq!(st, 200);
        all.push(ms(t.elapsed()));
        if q == "zzz-no-match" {
            miss.push(all[all.len() - 1]);
        }
    }
    let mut list = Vec::new();
    let mut listed = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let (st, v) = c.call("GET", "/topics?status=open", &tok, None).await;
        list.push(ms(t.elapsed()));
        assert_eq!(st, 200);
        listed = v["topics"].as_array().map_or(0, Vec::len);
    }
    json!({
        "log_messages": n, "topics": topics, "startup_ms": ms(startup), "first_search_ms": first_ms,
        "corpus_rss_kb": rss_after.saturating_sub(rss_before),
        "search_p50_ms": pct(&mut all, 0.5), "search_p99_ms": pct(&mut all, 0.99),
        "search_no_match_p99_ms": pct(&mut miss, 0.99),
        "topics_listed": listed, "topic_list_p50_ms": pct(&mut list, 0.5), "topic_list_p99_ms": pct(&mut list, 0.99),
    })
}

fn cli(reps: usize) -> Value {
    let mut s = Server::new("cli", 1, 0);
    s.start(&[]);
    let phome = s.home.join("participant");
    let url = format!("http://127.0.0.1:{}", s.port);
    ag(
        &phome,
        &[
            "room",
            "join",
            "bench",
            "--alias",
            "a0",
            "--token",
            &s.tokens[0],
            "--url",
            &url,
        ],
    );
    let time = |args: &[&str]| {
        let mut v: Vec<f64> = (0..reps)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new(BIN)
                    .args(args)
                    .env("AGENTGATHER_HOME", &phome)
                    .output()
                    .expect("cli");
                assert!(out.status.success());
                ms(t.elapsed())
            })
            .collect();
        pct(&mut v, 0.5)
    };
    json!({
        "messages_json_median_ms": time(&["messages", "--since", "0", "--json"]),
        "send_json_median_ms": time(&["send", "operator", "bench ping", "--json"]),
        "version_median_ms": time(&["--version"]),
    })
}

fn row(name: &str, value: String, target: &str) -> String {
    format!("| {name} | {value} | {target} |\n")
}

fn table(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
    let mut t = String::from("| scenario | measured | target |\n|---|---|---|\n");
    if let Some(x) = r.get("fanout") {
        t += &row(
            &format!("fan-out: {} held waits, one post", x["waiters"]),
            format!(
                "delivered {}, p50 {} ms, p99 {} ms",
                x["delivered_per_round"],
                f(&x["p50_ms"]),
                f(&x["p99_ms"])
            ),
            "all receive it; p99 ≤ 50 ms",
        );
        t += &row(
            "memory",
            format!(
                "idle {} KB, {} KB per held wait",
                x["rss_idle_kb"],
                f(&x["kb_per_wait"])
            ),
            "≤ 30 MB idle; ≤ 16 KB per wait",
        );
    }
    for key in ["posts_batch", "posts_off", "posts_always"] {
        if let Some(x) = r.get(key) {
            t += &row(
                &format!(
                    "posts, {} in flight, fsync {}{}",
                    x["inflight"],
                    x["fsync"].as_str().unwrap_or("?"),
                    if key == "posts_batch" {
                        " (default)"
                    } else {
                        ""
                    }
                ),
                format!(
                    "{}/s, p99 {} ms, failed {}, stored {}",
                    f(&x["per_s"]),
                    f(&x["p99_ms"]),
                    x["failed"],
                    x["stored"]
                ),
                match key {
                    // The target holds for the default durability, not only without syncs.
                    "posts_batch" => "≥ 5,000/s, none lost or duplicated",
                    "posts_always" => "reported (durability cost)",
                    _ => "reported",
                },
            );
        }
    }
    for key in ["reads_1000", "reads_50000"] {
        if let Some(x) = r.get(key) {
            t += &row(
                &format!("tail read since last-10 at {}", x["log_messages"]),
                format!(
                    "p50 {} ms, p99 {} ms",
                    f(&x["tail_read_p50_ms"]),
                    f(&x["tail_read_p99_ms"])
                ),
                "p99 ≤ 2 ms, within 2× of 1,000",
            );
            t += &row(
                &format!("/wait answering at once at {}", x["log_messages"]),
                format!(
                    "p50 {} ms, p99 {} ms",
                    f(&x["wait_now_p50_ms"]),
                    f(&x["wait_now_p99_ms"])
                ),
                "p99 ≤ 2 ms",
            );
        }
    }
    if let Some(x) = r.get("recovery") {
        t += &row(
            &format!("start-up with {} messages", x["log_messages"]),
            format!(
                "port {} ms, first read {} ms, ok {}",
                f(&x["port_ms"]),
                f(&x["first_read_ms"]),
                x["read_ok"]
            ),
            "≤ 2 s",
        );
    }
    if let Some(x) = r.get("search") {
        t += &row(
            &format!("search at {} messages (mixed queries)", x["log_messages"]),
            format!(
                "p50 {} ms, p99 {} ms, no-match p99 {} ms; first search {} ms, corpus +{} KB RSS",
                f(&x["search_p50_ms"]),
                f(&x["search_p99_ms"]),
                f(&x["search_no_match_p99_ms"]),
                f(&x["first_search_ms"]),
                x["corpus_rss_kb"]
            ),
            "p99 ≤ 20 ms",
        );
        t += &row(
            &format!("topic listing, {} topics", x["topics_listed"]),
            format!(
                "p50 {} ms, p99 {} ms (start-up {} ms)",
                f(&x["topic_list_p50_ms"]),
                f(&x["topic_list_p99_ms"]),
                f(&x["startup_ms"])
            ),
            "p99 ≤ 5 ms",
        );
    }
    for x in ["claims", "claims_batch"].iter().filter_map(|k| r.get(*k)) {
        t += &row(
            &format!(
                "`POST /claims` with {} live claims, fsync {}",
                x["live"],
                x["fsync"].as_str().unwrap_or("")
            ),
            format!(
                "p50 {} ms, p99 {} ms; a 409 conflict p50 {} ms, p99 {} ms",
                f(&x["claim_p50_ms"]),
                f(&x["claim_p99_ms"]),
                f(&x["conflict_p50_ms"]),
                f(&x["conflict_p99_ms"])
            ),
            "p99 ≤ 5 ms",
        );
    }
    if let Some(x) = r.get("cli") {
        t += &row(
            "CLI `messages --since N --json`",
            format!(
                "median {} ms (send {} ms, --version {} ms)",
                f(&x["messages_json_median_ms"]),
                f(&x["send_json_median_ms"]),
                f(&x["version_median_ms"])
            ),
            "median ≤ 10 ms",
        );
    }
    t
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json_out = args.iter().any(|a| a == "--json");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let want = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == name))
    };
    let waiters: usize = std::env::var("AG_BENCH_WAITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let big: u64 = std::env::var("AG_BENCH_RECOVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut r = serde_json::Map::new();
    if want("fanout") {
        r.insert("fanout".into(), fanout(waiters, 3).await);
    }
    if want("posts") {
        r.insert("posts_off".into(), throughput(4000, 16, "off").await);
        r.insert("posts_batch".into(), throughput(4000, 16, "batch").await);
        r.insert("posts_always".into(), throughput(4000, 16, "always").await);
    }
    if want("reads") {
        r.insert("reads_1000".into(), reads(1000, 300).await);
        r.insert("reads_50000".into(), reads(50_000, 300).await);
    }
    if want("recovery") {
        r.insert("recovery".into(), recovery(big).await);
    }
    if want("search") {
        r.insert("search".into(), search(50_000, 500, 400).await);
    }
    if want("claims") {
        r.insert("claims".into(), claims::claims(500, 300, "off").await);
        r.insert(
            "claims_batch".into(),
            claims::claims(500, 300, "batch").await,
        );
    }
    if want("cli") {
        r.insert("cli".into(), cli(21));
    }
    // `broker` runs both parts; `broker-capacity` or `broker-latency` runs one.
    if want("broker") || want("broker-capacity") {
        let routes = env_usize("AG_BENCH_ROUTES", 10_000);
        let waits = env_usize("AG_BENCH_BROKER_WAITS", 20_000);
        r.insert(
            "broker_capacity".into(),
            broker::capacity(routes, waits).await,
        );
        let h1_waits = env_usize("AG_BENCH_BROKER_H1_WAITS", 8_000);
        r.insert(
            "broker_capacity_h1".into(),
            broker::capacity_h1(1_000, h1_waits).await,
        );
    }
    if want("broker") || want("broker-latency") {
        r.insert("broker_latency".into(), latency::latency(1000, 5).await);
    }
    if want("hardening") {
        r.insert("hardening".into(), hardening::run().await);
    }
    // The host's speed with nothing of ours running (see `host_speed`).
    if want("host-speed") {
        r.insert("host_speed".into(), host_speed::alone(10));
    }
    let r = Value::Object(r);
    if json_out {
        println!("{r}");
    } else {
        print!("{}", table(&r));
        if r.get("broker_capacity").is_some() || r.get("broker_latency").is_some() {
            print!("{}", broker::table(&r));
        }
        if let Some(x) = r.get("broker_latency") {
            print!("{}", latency::row(x));
        }
        if let Some(x) = r.get("hardening") {
            print!("{}", hardening::table(x));
        }
        if let Some(x) = r.get("host_speed") {
            println!(
                "\nhost speed, nothing else running for {} s: slowed over {}x for {:.1}% of the time, worst {:.0}x ({} units of {:.1} µs at full speed)",
                x["secs"],
                host_speed::SLOWED,
                x["slowed_pct"].as_f64().unwrap_or(f64::NAN),
                x["worst_factor"].as_f64().unwrap_or(f64::NAN),
                x["units"],
                x["full_speed_unit_us"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
}
