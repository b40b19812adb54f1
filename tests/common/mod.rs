//! Shared helpers for the black-box end-to-end tests: a temp home, the real release
//! binary, a real `room serve` on a loopback port, and a tiny raw HTTP/1.1 client that
//! can send anything (bad bytes, foreign `Host`, `Origin`) and returns status + JSON.
//!
//! Nothing here links the crate: every test talks to the binary the way a user does.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Skips the running test because `missing` is not installed here, visibly. With
/// `require` (an `AGENTGATHER_REQUIRE_*` variable, which CI sets) at 1 it fails instead.
///
/// Why not `eprintln!`: libtest captures the print macros of a test that passes, so a
/// skip printed that way vanishes and the test reads as "ok". The line is written to the
/// process's standard error directly, which libtest does not capture, so it shows in the
/// default `cargo test` output; `.ci/run` collects these lines into a summary at the end.
pub fn skip(test: &str, missing: &str, require: Option<&str>, install: &str) {
    if let Some(var) = require {
        assert!(
            std::env::var(var).as_deref() != Ok("1"),
            "{var}=1 but {missing} is not available (install: {install})"
        );
    }
    let strict = require.map_or(String::new(), |v| format!("; {v}=1 makes this a failure"));
    let line = format!("\nSKIP {test}: {missing} not found (install: {install}){strict}\n");
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// Whether `curl` runs here (the card's no-install commands need it); when it does not,
/// `test` is skipped with a visible notice.
pub fn curl_or_skip(test: &str) -> bool {
    let found = Command::new("curl").arg("--version").output().is_ok();
    if !found {
        skip(test, "curl", None, "apt-get install -y curl");
    }
    found
}

/// The release binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_agentgather");

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A private temp directory: `root/` holds logs, `root/home` is `AGENTGATHER_HOME`
/// (not created until the binary creates it). Removed on drop.
pub struct TempHome {
    pub root: PathBuf,
    pub home: PathBuf,
}

impl TempHome {
    pub fn new(tag: &str) -> TempHome {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("ag-e2e-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).expect("create temp root");
        let home = root.join("home");
        TempHome { root, home }
    }

    pub fn room_dir(&self, room: &str) -> PathBuf {
        self.home.join("rooms").join(room)
    }

    pub fn log_path(&self, room: &str) -> PathBuf {
        self.room_dir(room).join("messages.jsonl")
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A `Command` for the binary with this home (and `HOME` pointed away from the real one).
/// Never a wake turn's variables, even when the tests run inside one: there the binary
/// behaves differently (`mcp` and `attend` leave the declared reach alone).
pub fn command(home: &TempHome, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("AGENTGATHER_HOME", &home.home)
        .env("HOME", &home.root)
        .env_remove("AGENTGATHER_WAKE_IDS")
        .env_remove("AGENTGATHER_SINCE_ID")
        .env_remove("AGENTGATHER_SESSION")
        .env_remove("AGENTGATHER_TURN")
        .env_remove("RUST_LOG")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null());
    c
}

/// Runs the binary to completion.
pub fn cli(home: &TempHome, args: &[&str]) -> Output {
    command(home, args).output().expect("run agentgather")
}

/// Runs the binary to completion with `input` on its standard input.
pub fn cli_stdin(home: &TempHome, args: &[&str], input: &[u8]) -> Output {
    let mut child = command(home, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run agentgather");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait for agentgather")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the binary, asserts success and parses its stdout as one JSON object.
pub fn cli_json(home: &TempHome, args: &[&str]) -> Value {
    let o = cli(home, args);
    assert!(
        o.status.success(),
        "agentgather {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("agentgather {args:?} printed no JSON ({e}): {}", stdout(&o)))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A running `room serve`; killed (SIGKILL) on drop if still running.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Spawns `room serve --port PORT [extra]` and waits until it accepts connections.
    /// Returns the early exit (status, stderr) instead if it stops first.
    pub fn try_spawn(
        home: &TempHome,
        port: u16,
        extra: &[&str],
    ) -> Result<Server, (ExitStatus, String)> {
        Server::try_spawn_with(home, port, extra, |_| {})
    }

    /// [`Server::try_spawn`] with a hook to adjust the command (env, limits).
    pub fn try_spawn_with(
        home: &TempHome,
        port: u16,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Result<Server, (ExitStatus, String)> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let log = home.root.join(format!("serve-{port}-{n}.log"));
        let log_file = std::fs::File::create(&log).expect("create serve log");
        let port_s = port.to_string();
        let mut args = vec!["room", "serve", "--port", &port_s];
        args.extend_from_slice(extra);
        let mut cmd = command(home, &args);
        cmd.stdout(Stdio::null()).stderr(log_file);
        adjust(&mut cmd);
        let child = cmd.spawn().expect("spawn room serve");
        let mut server = Server {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                server.child = None;
                let err = std::fs::read_to_string(&server.log).unwrap_or_default();
                return Err((status, err));
            }
            if port_open(port) {
                return Ok(server);
            }
            assert!(
                Instant::now() < deadline,
                "room serve did not open port {port} in time: {}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn spawn(home: &TempHome, port: u16, extra: &[&str]) -> Server {
        Server::try_spawn(home, port, extra)
            .unwrap_or_else(|(s, err)| panic!("room serve exited early ({s}): {err}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal without waiting.
    pub fn signal(&self, sig: i32) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits up to `timeout` for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            if let Some(s) = c.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `room invite --json` prints.
#[derive(Debug, Clone)]
pub struct Invite {
    pub alias: String,
    pub token: String,
    pub json: Value,
}

impl Invite {
    /// A fresh home (`tag`) that joined the room with this invite's URI, with `more`
    /// arguments to `room join` (e.g. `--reach wake`), as a participant's CLI does.
    pub fn join_home(&self, tag: &str, more: &[&str]) -> TempHome {
        let home = TempHome::new(tag);
        let uri = self.json["invite_uri"].as_str().expect("invite_uri");
        let o = cli(&home, &[&["room", "join", uri][..], more].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        home
    }
}

/// A room created with `room start` in a temp home, served on a loopback port.
/// Fields drop in order: the server first, then the home.
pub struct TestRoom {
    pub server: Server,
    pub room: String,
    pub alias: String,
    pub token: String,
    pub url: String,
    pub port: u16,
    pub home: TempHome,
}

pub const DEFAULT_BRIEF: &str = "Goal: test the room end to end. Keep it short.";

/// `room start <room> --alias operator --brief ... --url http://127.0.0.1:PORT --json`
/// plus `extra` args; returns the parsed output. Does not serve.
pub fn start_room(home: &TempHome, room: &str, port: u16, extra: &[&str]) -> Value {
    let url = format!("http://127.0.0.1:{port}");
    let mut args = vec![
        "room",
        "start",
        room,
        "--alias",
        "operator",
        "--brief",
        DEFAULT_BRIEF,
        "--url",
        &url,
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = cli_json(home, &args);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["room"], room, "{v}");
    assert_eq!(v["alias"], "operator", "{v}");
    assert_eq!(v["url"], url.as_str(), "{v}");
    assert!(v["token"].as_str().unwrap().starts_with("tgl_"), "{v}");
    v
}

impl TestRoom {
    pub fn start(room: &str) -> TestRoom {
        TestRoom::start_with(room, &[])
    }

    /// Starts and serves a room; `extra` goes to `room start`.
    pub fn start_with(room: &str, extra: &[&str]) -> TestRoom {
        let home = TempHome::new(room);
        let mut port = free_port();
        let v = start_room(&home, room, port, extra);
        let mut attempts = 0;
        let server = loop {
            // The first try serves on the room's own URL; a retry (port taken meanwhile)
            // moves the public URL along with the port.
            let url = format!("http://127.0.0.1:{port}");
            let extra_serve: Vec<&str> = if attempts == 0 {
                vec![]
            } else {
                vec!["--url", &url]
            };
            match Server::try_spawn(&home, port, &extra_serve) {
                Ok(s) => break s,
                Err((status, err)) => {
                    attempts += 1;
                    assert!(attempts < 5, "room serve failed ({status}): {err}");
                    port = free_port();
                }
            }
        };
        TestRoom {
            server,
            room: room.to_string(),
            alias: "operator".into(),
            token: v["token"].as_str().unwrap().to_string(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            home,
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.home, args)
    }

    pub fn cli_json(&self, args: &[&str]) -> Value {
        cli_json(&self.home, args)
    }

    /// `room invite <alias> --kind K --json` through the CLI (and so through the server).
    pub fn invite(&self, alias: &str, kind: &str) -> Invite {
        let v = self.cli_json(&["room", "invite", alias, "--kind", kind, "--json"]);
        assert_eq!(v["ok"], true, "{v}");
        Invite {
            alias: alias.to_string(),
            token: v["token"].as_str().expect("token").to_string(),
            json: v,
        }
    }

    /// `POST /invite` as the host (fast; for many participants).
    pub fn invite_http(&self, alias: &str, kind: &str) -> Invite {
        let (s, v) = self.post(
            "/invite",
            Some(&self.token),
            &json!({"alias": alias, "kind": kind}),
        );
        assert_eq!(s, 201, "{v}");
        Invite {
            alias: alias.to_string(),
            token: v["token"].as_str().expect("token").to_string(),
            json: v,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        get(self.port, path, token)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        post(self.port, path, token, body)
    }

    pub fn request(&self, req: Req) -> Resp {
        req.send(self.port)
    }

    /// Posts `text` as the host; asserts 201 and returns the stored message.
    pub fn say(&self, token: &str, text: &str) -> Value {
        let (s, v) = self.post("/messages", Some(token), &json!({"text": text}));
        assert_eq!(s, 201, "{v}");
        v["message"].clone()
    }

    /// Every message in the room (GET /messages as the host, page after page).
    pub fn all_messages(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut since = 0;
        loop {
            let (s, v) = self.get(&format!("/messages?since_id={since}"), Some(&self.token));
            assert_eq!(s, 200, "{v}");
            all.extend(v["messages"].as_array().unwrap().iter().cloned());
            since = v["next_since_id"].as_u64().unwrap();
            if v["has_more"] != true {
                return all;
            }
        }
    }

    pub fn last_message(&self) -> Value {
        self.all_messages().pop().expect("a message")
    }

    pub fn last_id(&self) -> u64 {
        self.last_message()["id"].as_u64().unwrap()
    }

    pub fn status(&self, token: &str) -> Value {
        let (s, v) = self.get("/status", Some(token));
        assert_eq!(s, 200, "{v}");
        v
    }

    /// The roster entry of `alias` in `/status`.
    pub fn roster_entry(&self, alias: &str) -> Value {
        let st = self.status(&self.token);
        st["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["alias"] == alias)
            .cloned()
            .unwrap_or_else(|| panic!("{alias} not in roster: {st}"))
    }

    /// Waits until `alias` holds a `/wait` on the server.
    pub fn until_waiting(&self, alias: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.roster_entry(alias)["waiting"] != true {
            assert!(
                Instant::now() < deadline,
                "{alias} never held a wait: {}",
                self.roster_entry(alias)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.home.log_path(&self.room)
    }

    /// Restarts `room serve` on the same home and port (after a kill or stop).
    pub fn restart(&mut self) {
        self.server.kill();
        let url = self.url.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        self.server = loop {
            match Server::try_spawn(&self.home, self.port, &["--url", &url]) {
                Ok(s) => break s,
                Err((status, err)) => {
                    assert!(
                        Instant::now() < deadline,
                        "restart failed ({status}): {err}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
    }
}

/// Reads `messages.jsonl`, asserting every line is a complete JSON object.
pub fn read_log_lines(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).expect("read messages.jsonl");
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "the log does not end with a newline"
    );
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice::<Value>(l).unwrap_or_else(|e| {
                panic!(
                    "line {} of the log does not parse ({e}): {}",
                    i + 1,
                    String::from_utf8_lossy(l)
                )
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client (one connection per request, `Connection: close`).

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// One request. `headers` may override `Host`.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub body: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.to_string(),
            path: path.to_string(),
            token: None,
            body: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn get(path: &str) -> Req {
        Req::new("GET", path)
    }

    pub fn post(path: &str) -> Req {
        Req::new("POST", path)
    }

    pub fn token(mut self, t: &str) -> Req {
        self.token = Some(t.to_string());
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = Some(b.into());
        self
    }

    pub fn json(self, v: &Value) -> Req {
        self.body(serde_json::to_vec(v).unwrap())
    }

    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Req {
        self.timeout = t;
        self
    }

    fn head_bytes(&self, port: u16) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        }
        head.push_str("Connection: close\r\n");
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(b) = &self.body {
            if !self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                head.push_str("Content-Type: application/json\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// Sends the request; `Err` only for transport failures (refused, reset, timeout).
    pub fn try_send(&self, port: u16) -> std::io::Result<Resp> {
        let mut bytes = self.head_bytes(port);
        if let Some(b) = &self.body {
            bytes.extend_from_slice(b);
        }
        send_raw_bytes(port, &bytes, self.timeout).and_then(|raw| {
            parse_response(&raw).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "not an HTTP response: {:?}",
                        String::from_utf8_lossy(&raw[..raw.len().min(200)])
                    ),
                )
            })
        })
    }

    pub fn send(&self, port: u16) -> Resp {
        self.try_send(port)
            .unwrap_or_else(|e| panic!("{} {} failed: {e}", self.method, self.path))
    }
}

/// Writes raw bytes to the server and reads until it closes. A write failure (the server
/// answered early and closed) is tolerated as long as an answer can be read.
pub fn send_raw_bytes(port: u16, bytes: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    let write_err = s.write_all(bytes).err();
    if write_err.is_none() {
        let _ = s.flush();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if response_complete(&out) {
                    break;
                }
                return Err(e);
            }
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    if out.is_empty()
        && let Some(e) = write_err
    {
        return Err(e);
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `raw` holds a whole response (by Content-Length), so a late reset can be ignored.
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| raw.len() >= end + 4 + len)
}

fn parse_response(raw: &[u8]) -> Option<Resp> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// `GET path` with an optional bearer token; (status, JSON body).
pub fn get(port: u16, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = Req::get(path);
    if let Some(t) = token {
        r = r.token(t);
    }
    let resp = r.send(port);
    let v = resp.json();
    (resp.status, v)
}

/// `POST path` with a JSON body and an optional bearer token; (status, JSON body).
pub fn post(port: u16, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = Req::post(path).json(body);
    if let Some(t) = token {
        r = r.token(t);
    }
    let resp = r.send(port);
    let v = resp.json();
    (resp.status, v)
}

/// Asserts an error answer of the contract: `{ok:false, error:code, message}`.
#[track_caller]
pub fn assert_error(got: (u16, Value), status: u16, code: &str) {
    let (s, v) = got;
    assert_eq!(
        (s, v["error"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got {s} {v}"
    );
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {v}"
    );
}

/// Same as [`assert_error`] for a raw response.
#[track_caller]
pub fn assert_error_resp(r: &Resp, status: u16, code: &str) {
    assert_error((r.status, r.json()), status, code);
}

/// Where a harness's CLI is: `$AGENTGATHER_AGENT_CLIS/<name>`, else on `PATH`.
pub fn find_cli(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AGENTGATHER_AGENT_CLIS") {
        let p = PathBuf::from(dir).join(name);
        return p.exists().then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    })
}

/// Collects, as they arrive, the JSON lines a child process prints (other lines are
/// skipped).
pub fn json_lines(out: std::process::ChildStdout) -> std::sync::Arc<std::sync::Mutex<Vec<Value>>> {
    use std::io::BufRead;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    lines
}
