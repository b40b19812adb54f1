//! The broker as a public service under attack (issue 14): each test replays an attack
//! that worked against the broker before and asserts its harmless outcome. A hostile host
//! is a raw WebSocket peer that serves whatever it likes; victims are real rooms behind
//! real `tunnel run`s; Chromium (when installed) plays the victim's browser.

mod common;
mod tunnel_support;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tungstenite::Message;
use tunnel_support::*;

/// What a hostile host saw of one relayed request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

/// A hostile host: registers `slug` from a raw WebSocket and answers every request with
/// `page` as HTML plus every header a host could use against its origin's visitors.
struct EvilHost {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    registered: Value,
}

impl EvilHost {
    fn start(port: u16, slug: &str, page: &'static str) -> EvilHost {
        let mut ws = ws_connect(port);
        ws_send(
            &mut ws,
            &json!({"type": "register", "version": 1, "slug": slug}),
        );
        let registered = ws_next(&mut ws);
        assert_eq!(registered["type"], "registered", "{registered}");
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve_evil(ws, page, &seen2, &stop2));
        EvilHost {
            seen,
            stop,
            thread: Some(thread),
            registered,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for EvilHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_evil(
    mut ws: tungstenite::WebSocket<TcpStream>,
    page: &str,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let m = match ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let Message::Text(t) = m else { continue };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        if f["type"] != "request" {
            continue;
        }
        let headers = f["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        seen.lock().unwrap().push(Seen {
            path: f["path"].as_str().unwrap().to_string(),
            headers,
        });
        let id = f["id"].as_u64().unwrap();
        let head = json!({"type": "response", "id": id, "status": 200, "headers": [
            ["content-type", "text/html; charset=utf-8"],
            ["content-length", page.len().to_string()],
            ["service-worker-allowed", "/"],
            ["clear-site-data", "\"*\""],
            ["set-cookie", "evil=1; Path=/"],
        ]});
        let mut data = vec![1u8];
        data.extend_from_slice(&id.to_be_bytes());
        data.extend_from_slice(page.as_bytes());
        let sent = ws
            .send(Message::text(head.to_string()))
            .and_then(|_| ws.send(Message::binary(data)))
            .and_then(|_| ws.send(Message::text(json!({"type": "end", "id": id}).to_string())));
        if sent.is_err() {
            return;
        }
    }
}

const EVIL_PAGE: &str = "<!doctype html><title>evil</title><p>nothing to see</p>";

#[test]
fn each_room_is_its_own_origin_and_no_host_installs_a_worker() {
    let room = TestRoom::start("abuse-origin");
    let broker = Broker::start(&room.home, &["--ip-rate", "1000"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "victim", &[]);
    let set = t.wait_event("public_url_set", 1, Duration::from_secs(15));
    // The room's own origin, not a path on an origin it shares with every other room.
    assert_eq!(set["url"], room_origin("victim").as_str());
    let evil = EvilHost::start(port, "evil", EVIL_PAGE);
    assert_eq!(evil.registered["public_url"], room_origin("evil").as_str());

    // The hostile host's page comes through without the headers it could use against
    // its origin's later visitors.
    let r = via(port, "evil", Req::get("/"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), EVIL_PAGE);
    for h in ["service-worker-allowed", "clear-site-data", "set-cookie"] {
        assert!(r.header(h).is_none(), "{h} came through");
    }

    // A service worker script is never fetched through the broker, whatever the room.
    for slug in ["evil", "victim"] {
        let r = via(
            port,
            slug,
            Req::get("/sw.js").header("Service-Worker", "script"),
        );
        assert_error_resp(&r, 403, "service_worker_refused");
    }
    assert!(
        evil.seen().iter().all(|s| s.path != "/sw.js"),
        "{:?}",
        evil.seen()
    );

    // The room is reached by its host name only: a path naming it on another room's
    // origin goes to that other room, and the broker's own name serves no room.
    let invite = room.invite_http("alice", "agent");
    let r = via(
        port,
        "evil",
        Req::get("/victim/status").token(&invite.token),
    );
    assert_eq!(r.text(), EVIL_PAGE);
    let r = Req::get("/victim/status")
        .token(&room.token)
        .header("Host", DOMAIN)
        .send(port);
    assert_error_resp(&r, 404, "not_found");
    let r = via(port, "victim", Req::get("/status").token(&invite.token));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["room"], "abuse-origin");
}

// ---------------------------------------------------------------------------------------
// A cookie bomb on the broker's parent domain (issue 22, NM3).

/// What Chromium sends after a room's page set the most cookies it keeps for one domain
/// (180) on the broker's parent domain, each of 3.9 KB: `(name, value)` pairs.
fn cookie_bomb() -> Vec<(String, String)> {
    (0..180)
        .map(|i| (format!("bomb{i}"), "x".repeat(3_900)))
        .collect()
}

#[test]
fn a_cookie_bomb_on_the_parent_domain_locks_no_browser_out_of_the_rooms() {
    let room = TestRoom::start("abuse-cookies");
    let broker = Broker::start(&room.home, &["--ip-rate", "1000"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "victim", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    let evil = EvilHost::start(port, "evil", EVIL_PAGE);
    let bomb = cookie_bomb();
    // Over HTTP/1.1 the browser sends them as one `Cookie` field of ~700 KB.
    let joined = bomb
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(joined.len() > 700_000);

    let r = via(
        port,
        "victim",
        Req::get("/status")
            .token(&room.token)
            .header("Cookie", &joined),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["room"], "abuse-cookies");
    let r = via(port, "evil", Req::get("/").header("Cookie", &joined));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), EVIL_PAGE);

    // Over h2 (an edge proxy carrying the browser's request) each cookie is its own field.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut tx = h2(port).await;
        let auth = format!("Bearer {}", room.token);
        let crumbs: Vec<(&str, String)> = bomb
            .iter()
            .map(|(k, v)| ("cookie", format!("{k}={v}")))
            .collect();
        let with_bomb = |mut headers: Vec<(&'static str, String)>| {
            headers.extend(crumbs.iter().cloned());
            headers
        };
        let headers = with_bomb(vec![("authorization", auth)]);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, v, _) = h2_send(&mut tx, h2_get("victim", "/status", &pairs)).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["room"], "abuse-cookies");
        let headers = with_bomb(Vec::new());
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, _, _) = h2_send(&mut tx, h2_get("evil", "/", &pairs)).await;
        assert_eq!(s, 200);
    });

    // No cookie ever reached a room: the host saw both requests, neither with a cookie.
    let seen = evil.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert!(
            s.headers
                .iter()
                .all(|(k, _)| !k.eq_ignore_ascii_case("cookie")),
            "a cookie reached the room: {:?}",
            s.headers.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------------------
// The same attack in Chromium.

/// A chromedriver session on a headless Chromium; the driver is killed on drop.
struct Browser {
    driver: std::process::Child,
    port: u16,
    session: String,
}

/// One WebDriver call. chromedriver keeps the connection open whatever the request says,
/// so the answer is read by its Content-Length.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{BufRead, BufReader, Read, Write};
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).unwrap();
    (status, serde_json::from_slice(&buf).unwrap_or(Value::Null))
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let port = self.port;
            let _ = std::panic::catch_unwind(move || webdriver(port, "DELETE", &path, None));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_exe(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|c| std::path::Path::new(c).exists())
        .map(|c| c.to_string())
}

impl Browser {
    /// `None` when Chromium or chromedriver is missing (and not required).
    fn start(home: &TempHome) -> Option<Browser> {
        let chrome = find_exe(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let driver = find_exe(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let (Some(chrome), Some(driver)) = (chrome, driver) else {
            skip(
                "the Chromium origin test",
                "chromium or chromedriver",
                Some("AGENTGATHER_REQUIRE_BROWSER"),
                "apt-get install -y chromium chromium-driver",
            );
            return None;
        };
        let port = free_port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !port_open(port) {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = home.root.join("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chrome, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", profile.display()),
            ]},
        }}});
        let mut b = Browser {
            driver: child,
            port,
            session: String::new(),
        };
        let (status, v) = webdriver(port, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new session: {v}");
        b.session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, v) = webdriver(self.port, method, &path, Some(body));
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", &json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": []}),
        )
    }

    fn js_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            &json!({"script": script, "args": []}),
        )
    }
}

#[test]
fn in_chromium_a_hostile_room_cannot_read_another_rooms_storage_nor_install_a_worker() {
    let room = TestRoom::start("abuse-chromium");
    let Some(browser) = Browser::start(&room.home) else {
        return;
    };
    // `*.localhost` is loopback in Chromium, and a secure context (service workers work).
    // With no --public-url the broker names rooms after the host the tunnel reached it
    // by: http://victim.localhost:<port>.
    let broker = Broker::start_derived(&room.home, &["--ip-rate", "1000"]);
    let port = broker.port;
    let t = tunnel(
        &room.home,
        &format!("http://localhost:{port}"),
        "victim",
        &[],
    );
    let reg = t.wait_event("registered", 1, Duration::from_secs(15));
    assert_eq!(
        reg["public_url"],
        format!("http://victim.localhost:{port}").as_str()
    );
    let evil = EvilHost::start(port, "evil", EVIL_PAGE);
    let alice = room.invite_http("alice", "human");

    // The victim opens their room: the browser room keeps the token in sessionStorage.
    browser.go(&format!(
        "http://victim.localhost:{port}/#token={}",
        alice.token
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = browser.js("return sessionStorage.length");
        if n.as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the room page kept no token");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Then, in the same tab, a link to the hostile room.
    browser.go(&format!("http://evil.localhost:{port}/"));
    assert_eq!(browser.js("return document.title"), "evil");
    let storage = browser.js(
        "return JSON.stringify({s: Object.entries(sessionStorage), l: Object.entries(localStorage)})",
    );
    assert!(
        !storage.as_str().unwrap().contains(&alice.token),
        "the hostile page read the victim room's token: {storage}"
    );
    let worker = browser.js_async(
        "const done = arguments[0];
         navigator.serviceWorker.register('/sw.js', {scope: '/'})
           .then(() => done('registered'), e => done('refused: ' + e.name));",
    );
    assert!(
        worker.as_str().unwrap().starts_with("refused"),
        "a hostile room registered a service worker: {worker}"
    );
    // Nothing the hostile host received carried the victim's token.
    for s in evil.seen() {
        assert!(
            s.headers.iter().all(|(_, v)| !v.contains(&alice.token)),
            "{s:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Rates: a token is no pass, and one address cannot use up a room's budget.

/// `req` as if it came from `ip` through a proxy on the broker's machine.
fn from(ip: &str, req: Req) -> Req {
    req.header("X-Forwarded-For", ip)
}

#[test]
fn a_junk_token_buys_nothing_and_a_flood_leaves_the_room_to_others() {
    let room = TestRoom::start("abuse-rates");
    // A route budget of 400/min: one address may use half of it.
    let broker = Broker::start(&room.home, &["--route-rate", "400"]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "flooded", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));

    // The replay: 100 requests with `Bearer junk` from one address. The room answers 401
    // to what reaches it, and each of those is charged like a request without a token.
    let mut reached = 0;
    let mut limited = 0;
    for _ in 0..100 {
        let r = via(
            port,
            "flooded",
            from("198.51.100.66", Req::get("/status").token("junk")),
        );
        match r.status {
            401 => reached += 1,
            429 => {
                assert_eq!(r.json()["error"], "ip_rate_limited", "{}", r.text());
                assert!(r.header("retry-after").is_some());
                limited += 1;
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(
        reached <= 61,
        "{reached} junk-token requests reached the room"
    );
    assert_eq!(reached + limited, 100);

    // A flood with a real token from one address takes at most its share of the route's
    // budget; a participant at another address is still served every time.
    let mallory = room.invite_http("mallory", "agent");
    let alice = room.invite_http("alice", "agent");
    let mut flood_ok = 0;
    for _ in 0..260 {
        let r = via(
            port,
            "flooded",
            from("198.51.100.67", Req::get("/status").token(&mallory.token)),
        );
        match r.status {
            200 => flood_ok += 1,
            429 => assert_eq!(r.json()["error"], "route_rate_limited", "{}", r.text()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(flood_ok <= 201, "one address used {flood_ok} of 400/min");
    for i in 0..45 {
        let r = via(
            port,
            "flooded",
            from("203.0.113.5", Req::get("/status").token(&alice.token)),
        );
        assert_eq!(
            r.status,
            200,
            "request {i} of the real participant: {}",
            r.text()
        );
    }
}

#[test]
fn one_ipv6_64_is_one_address_for_the_rate_limits() {
    let home = TempHome::new("abuse-v6");
    let broker = Broker::start(&home, &["--ip-rate", "5"]);
    // The replay: a client with a /64 sends each request from another address in it.
    let mut served = 0;
    for i in 1..=12 {
        let r = via(
            broker.port,
            "nobody",
            from(&format!("2001:db8:1:2::{i:x}"), Req::get("/status")),
        );
        match r.status {
            404 => served += 1,
            429 => assert_eq!(r.json()["error"], "ip_rate_limited", "{}", r.text()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(served <= 6, "one /64 was served {served} times at 5/min");
    // Another /64 is another client.
    let r = via(
        broker.port,
        "nobody",
        from("2001:db8:1:3::1", Req::get("/status")),
    );
    assert_error_resp(&r, 404, "not_found");
}

// ---------------------------------------------------------------------------------------
// The route table: one address (or one operator key) holds only so many routes.

#[test]
fn one_address_or_key_cannot_fill_the_route_table() {
    let home = TempHome::new("abuse-table");
    let broker = Broker::start(
        &home,
        &["--ip-rate", "1000", "--max-routes-per-address", "3"],
    );
    let port = broker.port;
    // The replay: one address registers slug after slug.
    let mut held = Vec::new();
    for i in 0..3 {
        let (f, ws) = register_from(port, "198.51.100.9", &format!("grab-{i}"), None);
        assert_eq!(f["type"], "registered", "{f}");
        held.push(ws);
    }
    let (f, _) = register_from(port, "198.51.100.9", "grab-3", None);
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("refused"), Some("too_many_routes")),
        "{f}"
    );
    assert_eq!(f["status"], 429);
    // Hanging up does not free the address's places: the routes stay reserved.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (f, _) = register_from(port, "198.51.100.9", "grab-4", None);
    assert_eq!(f["code"], "too_many_routes", "{f}");
    // Other addresses are not affected.
    let (f, _ws) = register_from(port, "198.51.100.10", "honest", None);
    assert_eq!(f["type"], "registered", "{f}");

    // Per operator key, whatever the address.
    let keys = home.root.join("host-keys");
    std::fs::write(&keys, "key-one\nkey-two\n").unwrap();
    let keyed = Broker::start(
        &home,
        &[
            "--ip-rate",
            "1000",
            "--host-key-file",
            keys.to_str().unwrap(),
            "--max-routes-per-key",
            "2",
        ],
    );
    let mut held = Vec::new();
    for i in 0..2 {
        let (f, ws) = register_from(
            keyed.port,
            &format!("198.51.100.{}", 20 + i),
            &format!("k-{i}"),
            Some("key-one"),
        );
        assert_eq!(f["type"], "registered", "{f}");
        held.push(ws);
    }
    let (f, _) = register_from(keyed.port, "198.51.100.30", "k-2", Some("key-one"));
    assert_eq!(f["code"], "too_many_routes", "{f}");
    let (f, _ws) = register_from(keyed.port, "198.51.100.31", "k-3", Some("key-two"));
    assert_eq!(f["type"], "registered", "{f}");
}

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

fn route_status(port: u16, slug: &str) -> Option<String> {
    let table = Req::get("/_agentgather/routes").send(port).json();
    table["routes"]
        .as_array()?
        .iter()
        .find(|r| r["slug"] == slug)
        .and_then(|r| r["status"].as_str().map(str::to_string))
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
