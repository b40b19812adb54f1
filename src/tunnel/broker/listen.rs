//! One connection on the broker's public listener: HTTP/1.1 (hosts' tunnels, participants
//! straight from the network or through an HTTP/1 proxy) or HTTP/2 with prior knowledge
//! (h2c: an edge proxy carrying many participants' requests as streams on a few
//! connections, e.g. HAProxy `server … proto h2`, Caddy `transport http { versions h2c }`).
//!
//! Why both: a held `/wait` is one TCP connection per participant over HTTP/1, so the
//! broker's file descriptors (routes + waits) run out long before its memory does; an h2
//! stream costs no descriptor. Each h2 stream is one request through the same
//! [`super::proxy::handle`] as an HTTP/1 request: the same client address rule
//! (`X-Forwarded-For` only from a proxy on this machine), rates, caps and refusals.
//! Tunnels stay HTTP/1.1 (the WebSocket upgrade); over h2 the tunnel path answers
//! `websocket_required`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::state::Broker;
use crate::net::DrainWatch;

/// What every HTTP/2 connection opens with (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a new connection may take to send its first bytes (and, over HTTP/1, the
/// head of each request).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head the broker reads, over HTTP/1 (hyper's read buffer) and h2
/// (the header list). Large on purpose: every room is a name under the broker's domain,
/// so one room's page can set cookies on the parent domain (180 of 4 KB in Chromium) that
/// the browser then sends to every room for a year. Refusing such a head (431, hyper's
/// default bound is ~400 KB) would let any room lock a browser out of all the others, so
/// the broker reads it and drops the cookies (rooms never use them; see
/// [`strip_cookies`]). A head costs this much only while it is read: nothing of it is
/// kept while a request waits for its answer.
pub(super) const MAX_REQUEST_HEAD: usize = 1024 * 1024;

/// The receive window of one h2 stream: what a client may send ahead on a request before
/// the broker reads it (request bodies are small; the host's answer is not bounded by it).
const H2_STREAM_WINDOW: u32 = 64 * 1024;

/// How long an h2 connection may go without starting a request before it is asked to
/// go away (its streams in flight still finish; a proxy opens a new one when it needs it).
const H2_IDLE: Duration = Duration::from_secs(30);

/// The shortest interval (and answer timeout) of the pings on an h2 connection.
const H2_PING_MIN: Duration = Duration::from_secs(10);

/// The receive window of a whole h2 connection.
const H2_CONN_WINDOW: u32 = 1024 * 1024;

/// The protocol servers of the public listener, built once.
pub(super) struct Servers {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Servers {
    pub fn new(max_streams: u32, keepalive: Duration) -> Servers {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_REQUEST_HEAD)
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(max_streams.max(1))
            .max_header_list_size(MAX_REQUEST_HEAD as u32)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONN_WINDOW)
            // A dead edge connection must not keep its streams' permits: ping it (not
            // more often than every 10 s, whatever a short `--idle-timeout` makes the
            // hosts' heartbeat).
            .keep_alive_interval(keepalive.max(H2_PING_MIN))
            .keep_alive_timeout(keepalive.max(H2_PING_MIN));
        Servers { h1, h2 }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    H2c,
}

/// Which protocol the connection speaks, from its first bytes (read without consuming
/// them); `None` if it closed first.
async fn sniff(stream: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        match classify(&buf[..n]) {
            Some(p) => return Ok(Some(p)),
            // A prefix of the preface so far: the rest is still on its way.
            None => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// HTTP/2 when `seen` is the whole preface, HTTP/1 as soon as it differs from it.
fn classify(seen: &[u8]) -> Option<Protocol> {
    if !PREFACE.starts_with(seen) {
        return Some(Protocol::Http1);
    }
    (seen.len() == PREFACE.len()).then_some(Protocol::H2c)
}

/// Serves one accepted connection until it ends, or, once a drain starts, until its
/// requests in flight finish.
pub(super) async fn serve(
    servers: Arc<Servers>,
    b: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    mut watch: DrainWatch,
) {
    let protocol = match tokio::time::timeout(HEADER_READ_TIMEOUT, sniff(&stream)).await {
        Ok(Ok(Some(p))) => p,
        _ => return,
    };
    match protocol {
        Protocol::Http1 => &b.counters.connections_http1,
        Protocol::H2c => &b.counters.connections_h2c,
    }
    .fetch_add(1, Ordering::Relaxed);
    // Requests started on this connection: an h2 connection that starts none for
    // `H2_IDLE` is asked to go away (hyper has no idle timeout for HTTP/2).
    let started = Arc::new(AtomicU64::new(0));
    let count = started.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        count.fetch_add(1, Ordering::Relaxed);
        strip_cookies(req.headers_mut());
        super::proxy::handle(b.clone(), peer, req)
    });
    let io = TokioIo::new(stream);
    match protocol {
        Protocol::Http1 => {
            let conn = servers.h1.serve_connection(io, svc).with_upgrades();
            watch.serve(conn, |c| c.graceful_shutdown()).await;
        }
        Protocol::H2c => {
            // Boxed: an h2 connection's state is large, and inline it would make every
            // HTTP/1 connection's task (one per held wait over HTTP/1) as large.
            let mut conn = Box::pin(servers.h2.serve_connection(io, svc));
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = watch.stopping() => break,
                    _ = tokio::time::sleep(H2_IDLE) => {
                        let now = started.load(Ordering::Relaxed);
                        if now == seen {
                            break;
                        }
                        seen = now;
                    }
                }
            }
            // GOAWAY: no new streams; those in flight (held waits too) finish.
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

/// Drops every `Cookie` field (one per crumb over h2) before anything else reads the
/// request: rooms authenticate with bearer tokens and never set cookies (the broker drops
/// `Set-Cookie` from their answers), so a cookie at the broker is only ever one a room's
/// page planted on the shared parent domain.
fn strip_cookies(headers: &mut hyper::HeaderMap) {
    headers.remove(hyper::header::COOKIE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cookie_field_is_dropped_and_nothing_else() {
        let mut h = hyper::HeaderMap::new();
        h.append(hyper::header::COOKIE, "a=1".parse().unwrap());
        h.append(hyper::header::COOKIE, "b=2".parse().unwrap());
        h.insert(hyper::header::AUTHORIZATION, "Bearer x".parse().unwrap());
        strip_cookies(&mut h);
        assert!(h.get(hyper::header::COOKIE).is_none());
        assert_eq!(h[hyper::header::AUTHORIZATION], "Bearer x");
    }

    #[test]
    fn the_preface_picks_h2_and_anything_else_http1() {
        assert_eq!(classify(PREFACE), Some(Protocol::H2c));
        assert_eq!(classify(b"PRI * HTTP/2"), None);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"P"), None);
    }
}
