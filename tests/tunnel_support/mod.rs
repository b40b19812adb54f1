//! What the tunnel tests share: child processes with their output in files, a real
//! `broker serve` (restartable on its port), `tunnel run`, requests addressed to a room's
//! own origin (`Host: <slug>.rooms.example.test` on the loopback port), Caddy in front,
//! a raw WebSocket peer for hosts that misbehave, and for several instances of one
//! deployment a stand-in balancer and a stand-in peer that records what it is pushed.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tungstenite::Message;

pub static SEQ: AtomicU64 = AtomicU64::new(0);

/// A child process with its stdout and stderr in files; killed on drop.
pub struct Proc {
    pub child: Option<Child>,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Proc {
    pub fn spawn(home: &TempHome, tag: &str, args: &[&str]) -> Proc {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let out = home.root.join(format!("{tag}-{n}.out"));
        let err = home.root.join(format!("{tag}-{n}.err"));
        let child = command(home, args)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn agentgather");
        Proc {
            child: Some(child),
            out,
            err,
        }
    }

    /// Another program (a proxy) with its output in files under `home`.
    pub fn spawn_program(home: &TempHome, tag: &str, program: &str, args: &[&str]) -> Proc {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let out = home.root.join(format!("{tag}-{n}.out"));
        let err = home.root.join(format!("{tag}-{n}.err"));
        let child = std::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        Proc {
            child: Some(child),
            out,
            err,
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The JSON lines printed so far.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn events(&self, name: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["event"] == name)
            .collect()
    }

    /// Waits until `name` has been printed `count` times; returns the last one.
    #[track_caller]
    pub fn wait_event(&self, name: &str, count: usize, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events(name);
            if ev.len() >= count {
                return ev[count - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {name:?} event (#{count}) in time.\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(s)) = c.try_wait()
            {
                self.child = None;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A running `broker serve`, with its logs kept across restarts.
pub struct Broker {
    pub proc: Proc,
    pub port: u16,
    pub args: Vec<String>,
    pub logs: Vec<(PathBuf, PathBuf)>,
}

impl Broker {
    /// `broker serve --port P --restart-grace 0s [extra]` on a free port.
    pub fn start(home: &TempHome, extra: &[&str]) -> Broker {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Rooms are https://<slug>.rooms.example.test; requests reach them on loopback
        // with that Host (see `via`).
        if !extra
            .iter()
            .any(|a| *a == "--public-url" || *a == "--path-routing")
        {
            args.extend(["--public-url".to_string(), PUBLIC_BASE.to_string()]);
        }
        Broker::start_args(home, args)
    }

    /// With no `--public-url`: the broker takes its name from each host's request.
    pub fn start_derived(home: &TempHome, extra: &[&str]) -> Broker {
        Broker::start_args(home, extra.iter().map(|s| s.to_string()).collect())
    }

    fn start_args(home: &TempHome, args: Vec<String>) -> Broker {
        for _ in 0..5 {
            let port = free_port();
            if let Some(proc) = Broker::spawn_on(home, port, &args) {
                let logs = vec![(proc.out.clone(), proc.err.clone())];
                return Broker {
                    proc,
                    port,
                    args,
                    logs,
                };
            }
        }
        panic!("broker serve did not start");
    }

    pub fn spawn_on(home: &TempHome, port: u16, extra: &[String]) -> Option<Proc> {
        let port_s = port.to_string();
        let mut args = vec!["broker", "serve", "--port", &port_s];
        if !extra.iter().any(|a| a == "--restart-grace") {
            args.extend(["--restart-grace", "0s"]);
        }
        args.extend(extra.iter().map(String::as_str));
        let mut p = Proc::spawn(home, "broker", &args);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !p.running() {
                return None;
            }
            if port_open(port) {
                return Some(p);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then start again on the same port.
    pub fn crash_and_restart(&mut self, home: &TempHome) {
        self.proc.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = Broker::spawn_on(home, self.port, &self.args) {
                self.logs.push((p.out.clone(), p.err.clone()));
                self.proc = p;
                return;
            }
            assert!(Instant::now() < deadline, "broker did not restart");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything every broker process printed (access log and diagnostics).
    pub fn all_logs(&self) -> String {
        let mut s = String::new();
        for (o, e) in &self.logs {
            s.push_str(&std::fs::read_to_string(o).unwrap_or_default());
            s.push_str(&std::fs::read_to_string(e).unwrap_or_default());
        }
        s
    }

    pub fn access_lines(&self) -> Vec<Value> {
        self.logs
            .iter()
            .flat_map(|(o, _)| {
                std::fs::read_to_string(o)
                    .unwrap_or_default()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l)
                            .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}"))
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// `tunnel run --json --room current --broker URL --subdomain SLUG [extra]` in `home`.
pub fn tunnel(home: &TempHome, broker_url: &str, slug: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "tunnel",
        "run",
        "--json",
        "--room",
        "current",
        "--broker",
        broker_url,
        "--subdomain",
        slug,
    ];
    args.extend_from_slice(extra);
    Proc::spawn(home, "tunnel", &args)
}

/// The broker domain of these tests: each room is its own origin under it.
pub const PUBLIC_BASE: &str = "https://rooms.example.test";
pub const DOMAIN: &str = "rooms.example.test";

/// The public URL of `slug`'s room.
pub fn room_origin(slug: &str) -> String {
    format!("https://{slug}.{DOMAIN}")
}

/// `req` addressed to `slug`'s room: its own host name, on the loopback port.
pub fn at(slug: &str, req: Req) -> Req {
    let req = req.header("Host", &format!("{slug}.{DOMAIN}"));
    if req.path.is_empty() {
        Req {
            path: "/".into(),
            ..req
        }
    } else {
        req
    }
}

/// Sends `req` to `slug`'s room through `port`.
pub fn via(port: u16, slug: &str, req: Req) -> Resp {
    at(slug, req).send(port)
}

pub fn get_via(port: u16, slug: &str, path: &str, token: &str) -> Resp {
    via(port, slug, Req::get(path).token(token))
}

pub fn post_via(port: u16, slug: &str, path: &str, token: &str, body: &Value) -> Resp {
    via(port, slug, Req::post(path).token(token).json(body))
}

/// Polls `GET /<slug>/status` through the front until it answers 200.
#[track_caller]
pub fn wait_route_up(port: u16, slug: &str, token: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = at(slug, Req::get("/status"))
            .token(token)
            .timeout(Duration::from_secs(5))
            .try_send(port)
            && r.status == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the route did not come back in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many waits the room server holds (asked locally, not through the broker).
pub fn waiting_count(room: &TestRoom) -> u64 {
    room.status(&room.token)["waiting_count"]
        .as_u64()
        .unwrap_or(0)
}

#[track_caller]
pub fn wait_held(room: &TestRoom, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while waiting_count(room) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} waits are held",
            waiting_count(room)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// The end-to-end flow, direct or behind a proxy.

/// What sits in front of the broker for participants and the host alike.
pub enum Front {
    Direct,
    Caddy,
}

pub struct Caddy {
    /// Killed on drop.
    pub _proc: Proc,
    pub port: u16,
}

fn caddy_available() -> bool {
    std::process::Command::new("caddy")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn start_caddy(home: &TempHome, broker_port: u16) -> Caddy {
    let site = format!("\treverse_proxy 127.0.0.1:{broker_port} {{\n\t\tflush_interval -1\n\t}}\n");
    start_caddy_with(home, &site)
}

/// Caddy on a free port serving plain HTTP, with `site` as the body of its site block.
pub fn start_caddy_with(home: &TempHome, site: &str) -> Caddy {
    for _ in 0..5 {
        let port = free_port();
        let dir = home.root.join(format!("caddy-{port}"));
        let config = format!(
            "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}\n}}\n\nhttp://:{port} {{\n{site}}}\n",
            dir.join("data").display()
        );
        let proc = spawn_caddy(home, &dir, &config);
        if let Some(proc) = until_caddy_listens(proc, port) {
            return Caddy { _proc: proc, port };
        }
    }
    panic!("caddy did not start");
}

/// Caddy running `config` (a Caddyfile), its state under `dir`.
pub fn spawn_caddy(home: &TempHome, dir: &Path, config: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let out = home.root.join(format!("caddy-{n}.out"));
    let err = home.root.join(format!("caddy-{n}.err"));
    let child = std::process::Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn caddy");
    Proc {
        child: Some(child),
        out,
        err,
    }
}

/// `proc` once Caddy listens on `port`; `None` (its stderr printed) if it exited or took
/// over 30 s (a loaded machine can take long to make the internal CA's keys).
pub fn until_caddy_listens(mut proc: Proc, port: u16) -> Option<Proc> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && proc.running() {
        if port_open(port) {
            return Some(proc);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("caddy did not start on {port}: {}", proc.stderr());
    None
}

pub fn ws_connect(port: u16) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (ws, _) =
        tungstenite::client::client(format!("ws://127.0.0.1:{port}/_agentgather/tunnel"), stream)
            .expect("WebSocket handshake");
    ws
}

pub fn ws_send(ws: &mut tungstenite::WebSocket<TcpStream>, v: &Value) {
    ws.send(Message::text(v.to_string())).expect("send a frame");
}

/// The next control frame (pings skipped).
pub fn ws_next(ws: &mut tungstenite::WebSocket<TcpStream>) -> Value {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).unwrap(),
            Ok(Message::Close(_)) => return json!({"type": "hangup"}),
            Ok(_) => continue,
            Err(e) => return json!({"type": "hangup", "error": e.to_string()}),
        }
    }
}

#[track_caller]
pub fn assert_refused(ws: &mut tungstenite::WebSocket<TcpStream>, status: u64, code: &str) {
    let f = ws_next(ws);
    assert_eq!(f["type"], "refused", "{f}");
    assert_eq!(f["status"], status, "{f}");
    assert_eq!(f["code"], code, "{f}");
    assert_eq!(ws_next(ws)["type"], "hangup");
}

fn haproxy_available() -> bool {
    std::process::Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the proxy `tool` (`caddy` or `haproxy`) is installed for `test`. When it is
/// not, the test is skipped with a notice, unless `AGENTGATHER_REQUIRE_<TOOL>=1` (as CI
/// sets it), which makes a missing one fail.
pub fn proxy_installed(tool: &str, test: &str) -> bool {
    let installed = match tool {
        "caddy" => caddy_available(),
        "haproxy" => haproxy_available(),
        other => panic!("no such proxy in these tests: {other}"),
    };
    if installed {
        return true;
    }
    let var = format!("AGENTGATHER_REQUIRE_{}", tool.to_uppercase());
    skip(
        test,
        &format!("`{tool}`"),
        Some(&var),
        &format!("apt-get install -y {tool}"),
    );
    false
}

/// HAProxy in the foreground with `cfg`, once it listens on `port`.
pub fn run_haproxy(home: &TempHome, port: u16, cfg: &str) -> Proc {
    let file = home.root.join("haproxy.cfg");
    std::fs::write(&file, cfg).unwrap();
    let p = Proc::spawn_program(
        home,
        "haproxy",
        "haproxy",
        &["-db", "-f", file.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !port_open(port) {
        assert!(
            Instant::now() < deadline,
            "haproxy did not start: {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

// ---------------------------------------------------------------------------------------
// Several instances of one deployment: the stand-in balancer, hosts behind it, peers.

/// Waits (up to 10 s) until something listens on `port`.
pub fn wait_port_open(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port_open(port) {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw host connecting from `ip` (as a local proxy would say).
pub fn ws_connect_from(port: u16, ip: &str) -> tungstenite::WebSocket<TcpStream> {
    use tungstenite::client::IntoClientRequest;
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("ws://127.0.0.1:{port}/_agentgather/tunnel")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    let (ws, _) = tungstenite::client::client(req, stream).expect("WebSocket handshake");
    ws
}

/// What the broker's route table says of `slug` (`connected`, `awaiting_reclaim`,
/// `reserved`), if it holds it.
pub fn route_status(port: u16, slug: &str) -> Option<String> {
    let table = Req::get("/_agentgather/routes").send(port).json();
    table["routes"]
        .as_array()?
        .iter()
        .find(|r| r["slug"] == slug)
        .and_then(|r| r["status"].as_str().map(str::to_string))
}

pub fn register_from(
    port: u16,
    ip: &str,
    slug: &str,
    key: Option<&str>,
) -> (Value, tungstenite::WebSocket<TcpStream>) {
    let mut ws = ws_connect_from(port, ip);
    let mut f = json!({"type": "register", "version": 1, "slug": slug});
    if let Some(k) = key {
        f["host_key"] = json!(k);
    }
    ws_send(&mut ws, &f);
    (ws_next(&mut ws), ws)
}

/// A stand-in for the deployment's balancer: forwards every connection to the port in
/// `target` at the time it is accepted (the test moves it when an instance dies).
pub fn balancer(target: Arc<AtomicU16>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let to = target.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    return;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    port
}

/// A stand-in peer's metrics listener that keeps the body of every POST it is sent
/// (answering `{"ok":true}`) and answers anything else 404.
pub fn push_recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pushed = Arc::new(Mutex::new(Vec::new()));
    let kept = pushed.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut head, mut length) = (String::new(), 0usize);
            let _ = reader.read_line(&mut head);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let answer: &[u8] = if head.starts_with("POST ") {
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}"
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = (&stream).write_all(answer);
        }
    });
    (port, pushed)
}

/// One h2c connection to `port`, as an edge proxy would open it.
pub async fn h2(port: u16) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

/// A request on `tx`: `(status, JSON body or null, headers)`.
pub async fn h2_send(
    tx: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> (u16, Value, hyper::HeaderMap) {
    tx.ready().await.expect("ready");
    let resp = tx.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers,
    )
}

/// `GET path` for `slug`'s room with the given headers (the slug's name in `Host`).
pub fn h2_get(slug: &str, path: &str, headers: &[(&str, &str)]) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::get(format!("http://{slug}.{DOMAIN}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}
