//! The origin attack in headless Chromium driven over WebDriver: what `origins.rs` shows
//! at the HTTP level, a real browser must enforce too. The small WebDriver client is
//! used by this test only, so it lives with it.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::tunnel_support::*;
use crate::{EVIL_PAGE, EvilHost};

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
