//! The broker as a public service under attack (issue 14): each test replays an attack
//! that worked against the broker before and asserts its harmless outcome. A hostile host
//! is a raw WebSocket peer that serves whatever it likes; victims are real rooms behind
//! real `tunnel run`s; Chromium (when installed) plays the victim's browser.
//!
//! One test binary; each module holds the attacks on one thing (origins, rates, held
//! slugs). The hostile host, which the origin tests in two modules share, is here.

#[path = "../common/mod.rs"]
mod common;
#[path = "../tunnel_support/mod.rs"]
mod tunnel_support;

mod chromium;
mod held_slugs;
mod origins;
mod rates;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::Message;

use crate::tunnel_support::*;

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
