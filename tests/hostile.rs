//! Hostile HTTP (issue 6): slow clients time out, the connection cap holds, and garbage
//! of every kind gets a 4xx while the server keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Req, Server, TempHome, assert_error_resp, cli_json, free_port, start_room};
use serde_json::{Value, json};

struct Hostile {
    server: Server,
    token: String,
    _home: TempHome,
}

fn room(extra_serve: &[&str]) -> Hostile {
    let home = TempHome::new("hostile");
    let port = free_port();
    let v = start_room(&home, "hostile", port, &[]);
    let server = Server::spawn(&home, port, extra_serve);
    Hostile {
        server,
        token: v["token"].as_str().unwrap().to_string(),
        _home: home,
    }
}

impl Hostile {
    fn still_serves(&self) {
        let r = Req::get("/status")
            .token(&self.token)
            .send(self.server.port);
        assert_eq!(r.status, 200, "the server stopped serving: {}", r.text());
    }

    /// A connection that has had one request answered and stays open (keep-alive).
    /// Retries while an earlier connection (e.g. the start-up probe) still holds a slot.
    fn served_keep_alive(&self) -> TcpStream {
        for _ in 0..50 {
            if let Some(s) = self.try_served_keep_alive() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no slot freed up for a held connection");
    }

    fn try_served_keep_alive(&self) -> Option<TcpStream> {
        let mut s = self.connect();
        let req = format!(
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                if got.len() >= end + 4 + len {
                    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                    return Some(s);
                }
            }
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

/// Reads until the server closes; returns what it said and how long it took.
fn until_closed(mut s: TcpStream) -> (String, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), t.elapsed())
}

#[test]
fn slow_loris_headers_are_cut_off() {
    let h = room(&["--header-timeout", "1s"]);
    let mut s = h.connect();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let (_, took) = until_closed(s);
    assert!(
        took < Duration::from_secs(5),
        "a half-sent header was held {took:?}"
    );
    h.still_serves();
}

#[test]
fn slow_bodies_time_out_with_the_error_contract() {
    let h = room(&["--body-timeout", "1s"]);
    let mut s = h.connect();
    let head = format!(
        "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"text\":",
        h.token
    );
    s.write_all(head.as_bytes()).unwrap();
    let (answer, took) = until_closed(s);
    assert!(
        took < Duration::from_secs(6),
        "a trickled body was held {took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    h.still_serves();
}

#[test]
fn the_connection_cap_holds_and_frees() {
    let h = room(&["--max-connections", "8", "--header-timeout", "30s"]);
    // Hold every slot with a kept-alive connection that has been served once, so each
    // one surely holds its slot (however slowly the server got to it).
    std::thread::sleep(Duration::from_millis(300));
    let held: Vec<TcpStream> = (0..8).map(|_| h.served_keep_alive()).collect();
    let over = h.connect();
    let (answer, took) = until_closed(over);
    assert!(answer.is_empty(), "over the cap got an answer: {answer}");
    assert!(
        took < Duration::from_secs(3),
        "over the cap was not closed at once"
    );
    drop(held);
    // The freed slots come back once the server has seen the connections close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.try_served_keep_alive().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "slots never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    h.still_serves();
}

fn post_raw(h: &Hostile, body: Vec<u8>) -> common::Resp {
    Req::post("/messages")
        .token(&h.token)
        .body(body)
        .send(h.server.port)
}

#[test]
fn garbage_gets_4xx_and_the_server_keeps_serving() {
    let h = room(&[]);
    // A megabyte of random bytes.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..1_000_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    assert_error_resp(&post_raw(&h, random.clone()), 413, "body_too_large");
    // Random bytes within the size limit.
    assert_error_resp(
        &post_raw(&h, random[..10_000].to_vec()),
        400,
        "invalid_json",
    );
    // Non-UTF-8 inside a JSON string.
    assert_error_resp(
        &post_raw(&h, b"{\"text\": \"\xff\xfe bad\"}".to_vec()),
        400,
        "invalid_json",
    );
    // Deep nesting.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_error_resp(&post_raw(&h, deep.into_bytes()), 400, "invalid_json");
    // Ten thousand unknown fields and no text.
    let mut fields = serde_json::Map::new();
    for i in 0..10_000 {
        fields.insert(format!("f{i}"), json!(i));
    }
    assert_error_resp(
        &post_raw(
            &h,
            serde_json::to_vec(&Value::Object(fields.clone())).unwrap(),
        ),
        400,
        "invalid_body",
    );
    // The same with a text: unknown fields are ignored.
    fields.insert("text".into(), json!("fields ignored"));
    assert_eq!(
        post_raw(&h, serde_json::to_vec(&Value::Object(fields)).unwrap()).status,
        201
    );
    // A Content-Length that is not a number.
    let r = Req::post("/messages")
        .token(&h.token)
        .header("Content-Length", "abc")
        .send(h.server.port);
    assert!(
        (400..500).contains(&r.status),
        "bogus Content-Length got {}",
        r.status
    );
    // A Content-Length larger than what is sent, then a half-close.
    let mut s = h.connect();
    let head = format!(
        "POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n{{\"text\":\"x\"}}",
        h.token
    );
    s.write_all(head.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (answer, _) = until_closed(s);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    // Not HTTP at all.
    let mut s = h.connect();
    s.write_all(&random[..4096]).unwrap();
    let (answer, _) = until_closed(s);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    h.still_serves();
    let r = Req::post("/messages")
        .token(&h.token)
        .json(&json!({"text": "still here"}))
        .send(h.server.port);
    assert_eq!(r.status, 201);
    // The log still parses line by line.
    let lines = common::read_log_lines(&h._home.log_path("hostile"));
    assert!(lines.iter().any(|m| m["text"] == "still here"));
    let _ = cli_json;
}
