//! `broker serve`: the public half of a room link. It runs on a machine with a public
//! name, behind a TLS proxy, and routes `https://<broker>/<slug>/…` to whichever host
//! holds `<slug>` over that host's one outbound WebSocket (see [`super::protocol`]).
//!
//! Why it is built like this:
//! - It holds no room data. Requests and answers stream through in chunks; the only
//!   state is route metadata (slug, route id, the hash of the route secret, the host
//!   connection, created / last-seen / expiry). The access log on stdout names a route by
//!   a keyed hash that changes with every broker process, and a path by a fixed class.
//! - Every route is owned by the connection that registered it, proven by a secret only
//!   that host learned. A second host can neither take a live slug (409
//!   `route_slug_taken`) nor act on it; a reclaim needs the secret (403
//!   `route_auth_failed`).
//! - A public service is abused, so every limit of SPEC §7 refuses with its own stable
//!   code: `ip_rate_limited`, `route_rate_limited`, `route_busy`, `route_wait_limit`,
//!   `request_too_large`, `response_too_large`, `route_idle_expired`,
//!   `route_lifetime_expired`, `broker_full`, `host_key_required`/`host_key_invalid`.
//! - SIGTERM drains: no new requests, in-flight ones (held waits included) finish, then
//!   hosts are told `broker_shutdown` so they reconnect to the next broker process.
//! - Restarts keep links: a route secret is an HMAC of the route id (which carries the
//!   expiry) and slug under a persistent route key, so the next process verifies a
//!   returning host with no stored table, and for a grace period admits only returning
//!   hosts, so no one can take a slug whose host is reconnecting.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::protocol::{
    BrokerFrame, CHUNK_BYTES, HEALTH_PATH, HostFrame, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
    ROUTES_PATH, RouteCredentials, RouteLimits, TUNNEL_PATH, decode_data, encode_data,
    forwards_request_header, forwards_response_header, header_pairs, path_class, split_slug,
    validate_slug,
};
use super::rate::{Bucket, IpLimiter};
use super::{TunnelError, random_token};
use crate::protocol::ApiError;
use crate::protocol::timefmt::{format_ms, now_ms};

/// The default port of `broker serve`.
pub const DEFAULT_BROKER_PORT: u16 = 8799;

/// Per-route limits and broker-wide caps (SPEC §7 defaults).
#[derive(Debug, Clone)]
pub struct BrokerLimits {
    pub max_requests: u32,
    pub max_waits: u32,
    pub max_request_body: u64,
    pub max_response: u64,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub ip_requests_per_min: u32,
    pub route_requests_per_min: u32,
    pub max_routes: usize,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        BrokerLimits {
            max_requests: 512,
            max_waits: 256,
            max_request_body: 64 * 1024,
            max_response: 1024 * 1024,
            idle_timeout: Duration::from_secs(15 * 60),
            max_lifetime: Duration::from_secs(8 * 60 * 60),
            ip_requests_per_min: 60,
            route_requests_per_min: 6_000,
            max_routes: 1_000,
        }
    }
}

/// How `broker serve` runs.
#[derive(Clone)]
pub struct BrokerConfig {
    pub host: IpAddr,
    pub port: u16,
    /// The public base URL (`https://broker.example`); default: from each host's request.
    pub public_url: Option<String>,
    /// Operator keys; when any are set, only hosts presenting one may register.
    pub host_keys: Vec<String>,
    pub limits: BrokerLimits,
    /// How often hosts heartbeat and the broker pings.
    pub heartbeat: Duration,
    /// How long a request may wait for the head of its answer.
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests.
    pub drain_timeout: Duration,
    /// After start, unknown slugs answer 503 (hosts are reconnecting) instead of 404.
    pub restart_grace: Duration,
    pub register_timeout: Duration,
    pub max_connections: usize,
    /// Derives route secrets, so that a restarted broker can verify a host's reclaim of
    /// the route it held before (keep the key across restarts). None: random secrets.
    pub route_key: Option<Vec<u8>>,
    /// The key outlived an earlier broker process: during the restart grace only
    /// reclaims may register, so nobody can take a slug its host is coming back for.
    pub routes_may_return: bool,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("public_url", &self.public_url)
            .field("host_keys", &self.host_keys.len())
            .field("limits", &self.limits)
            .field("route_key", &self.route_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_BROKER_PORT,
            public_url: None,
            host_keys: Vec::new(),
            limits: BrokerLimits::default(),
            heartbeat: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            restart_grace: Duration::from_secs(30),
            register_timeout: Duration::from_secs(10),
            max_connections: 8192,
            route_key: None,
            routes_may_return: false,
        }
    }
}

/// A refusal in the error contract, with an optional `Retry-After`.
#[derive(Debug)]
struct Refusal {
    err: ApiError,
    retry_after: Option<Duration>,
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        Refusal {
            err,
            retry_after: None,
        }
    }
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        ApiError::new(status, code, message).into()
    }
    fn retry(mut self, after: Duration) -> Refusal {
        self.retry_after = Some(after);
        self
    }
}

fn not_found() -> Refusal {
    Refusal::new(404, "not_found", "no room link here")
}

fn unavailable() -> Refusal {
    Refusal::new(
        503,
        "route_unavailable",
        "this room link is not connected right now; retry in a moment",
    )
    .retry(Duration::from_secs(2))
}

/// One line of the access log. Only these fields exist, so nothing else can leak.
struct Access {
    started: Instant,
    method: String,
    route: Option<String>,
    class: &'static str,
    status: u16,
    code: Option<&'static str>,
    bytes_in: u64,
    bytes_out: u64,
    aborted: bool,
}

impl Access {
    fn new(method: &str) -> Access {
        // Methods are a short token; anything odd is logged as OTHER.
        let method = if method.len() <= 10 && method.bytes().all(|b| b.is_ascii_uppercase()) {
            method.to_string()
        } else {
            "OTHER".to_string()
        };
        Access {
            started: Instant::now(),
            method,
            route: None,
            class: "other",
            status: 0,
            code: None,
            bytes_in: 0,
            bytes_out: 0,
            aborted: false,
        }
    }

    fn write(&self) {
        let mut line = json!({
            "ts": format_ms(now_ms()),
            "route": self.route,
            "method": self.method,
            "class": self.class,
            "status": self.status,
            "duration_ms": self.started.elapsed().as_millis() as u64,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        });
        if let Some(code) = self.code {
            line["code"] = json!(code);
        }
        if self.aborted {
            line["aborted"] = json!(true);
        }
        log_line(&line);
    }
}

fn log_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The head of a host's answer.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

type HeadResult = Result<Head, ApiError>;
type Chunk = Result<Bytes, std::io::Error>;

/// One request in flight on a host connection.
struct Slot {
    head: Option<oneshot::Sender<HeadResult>>,
    body: mpsc::UnboundedSender<Chunk>,
    received: u64,
}

/// A registered host's WebSocket: a writer queue and the streams it is answering.
struct HostConn {
    id: u64,
    tx: mpsc::UnboundedSender<Message>,
    streams: Mutex<HashMap<u64, Slot>>,
    alive: AtomicBool,
    next_stream: AtomicU64,
    hangup: Notify,
    max_response: u64,
}

impl HostConn {
    fn new(id: u64, tx: mpsc::UnboundedSender<Message>, max_response: u64) -> HostConn {
        HostConn {
            id,
            tx,
            streams: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            next_stream: AtomicU64::new(1),
            hangup: Notify::new(),
            max_response,
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, frame: &BrokerFrame) -> bool {
        match serde_json::to_string(frame) {
            Ok(text) => self.tx.send(Message::text(text)).is_ok(),
            Err(_) => false,
        }
    }

    fn send_data(&self, id: u64, payload: &[u8]) -> bool {
        self.tx
            .send(Message::binary(encode_data(id, payload)))
            .is_ok()
    }

    /// A new stream, or `None` when this connection is going away.
    fn open_stream(
        &self,
    ) -> Option<(
        u64,
        oneshot::Receiver<HeadResult>,
        mpsc::UnboundedReceiver<Chunk>,
    )> {
        let mut streams = self.streams();
        if !self.alive.load(Ordering::SeqCst) {
            return None;
        }
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (head_tx, head_rx) = oneshot::channel();
        let (body_tx, body_rx) = mpsc::unbounded_channel();
        streams.insert(
            id,
            Slot {
                head: Some(head_tx),
                body: body_tx,
                received: 0,
            },
        );
        Some((id, head_rx, body_rx))
    }

    /// Stops stream `id` here and tells the host, if it was still open.
    fn cancel(&self, id: u64) {
        if self.streams().remove(&id).is_some() {
            self.send(&BrokerFrame::Cancel { id });
        }
    }

    fn on_response(&self, id: u64, status: u16, headers: Vec<(String, String)>) {
        let head = self.streams().get_mut(&id).and_then(|s| s.head.take());
        if let Some(h) = head {
            let _ = h.send(Ok(Head { status, headers }));
        }
    }

    fn on_data(&self, id: u64, payload: Bytes) {
        let mut streams = self.streams();
        let Some(slot) = streams.get_mut(&id) else {
            return;
        };
        slot.received += payload.len() as u64;
        let too_large = slot.received > self.max_response;
        if slot.head.is_none() && !too_large {
            let _ = slot.body.send(Ok(payload));
            return;
        }
        let Some(slot) = streams.remove(&id) else {
            return;
        };
        drop(streams);
        let err = ApiError::new(
            502,
            "response_too_large",
            format!(
                "the room server's answer is over the broker's limit of {} bytes",
                self.max_response
            ),
        );
        fail_slot(slot, err);
        self.send(&BrokerFrame::Cancel { id });
    }

    fn on_end(&self, id: u64) {
        if let Some(slot) = self.streams().remove(&id)
            && let Some(h) = slot.head
        {
            let _ = h.send(Err(host_failure("")));
        }
    }

    fn on_fail(&self, id: u64, code: &str) {
        if let Some(slot) = self.streams().remove(&id) {
            fail_slot(slot, host_failure(code));
        }
    }

    /// The connection is gone: every stream in flight fails now rather than at a timeout.
    fn fail_all(&self) {
        let slots: Vec<Slot> = {
            let mut streams = self.streams();
            self.alive.store(false, Ordering::SeqCst);
            streams.drain().map(|(_, s)| s).collect()
        };
        for slot in slots {
            fail_slot(
                slot,
                ApiError::new(
                    502,
                    "host_disconnected",
                    "the host's tunnel disconnected; retry in a moment",
                ),
            );
        }
    }

    fn in_flight(&self) -> usize {
        self.streams().len()
    }

    /// Ends the route on this connection: tell the host why, then hang up.
    fn close_route(&self, code: &str, message: &str) {
        self.send(&BrokerFrame::Closed {
            code: code.into(),
            message: message.into(),
        });
        let _ = self.tx.send(Message::Close(None));
        self.hangup.notify_one();
    }
}

fn fail_slot(slot: Slot, err: ApiError) {
    match slot.head {
        Some(h) => {
            let _ = h.send(Err(err));
        }
        None => {
            let _ = slot
                .body
                .send(Err(std::io::Error::other(err.code.to_string())));
        }
    }
}

/// A host's failure code as a refusal; unknown codes are not echoed (the host is not
/// trusted to choose what participants see).
fn host_failure(code: &str) -> ApiError {
    match code {
        "target_unreachable" => ApiError::new(
            502,
            "target_unreachable",
            "the room server behind this link is not answering",
        ),
        "target_timeout" => ApiError::new(
            504,
            "target_timeout",
            "the room server behind this link did not answer in time",
        ),
        "response_too_large" => ApiError::new(
            502,
            "response_too_large",
            "the room server's answer is over the broker's limit",
        ),
        _ => ApiError::new(502, "host_error", "the host could not answer this request"),
    }
}

struct RouteState {
    conn: Option<Arc<HostConn>>,
    last_seen: Instant,
}

/// One slug's route: ephemeral metadata, never room data.
struct Route {
    slug: String,
    hash: String,
    id: String,
    secret_hash: [u8; 32],
    created_at_ms: i64,
    expires_at: Instant,
    expires_at_ms: i64,
    requests: Arc<Semaphore>,
    waits: Arc<Semaphore>,
    max_requests: u32,
    rate: Mutex<Bucket>,
    state: Mutex<RouteState>,
}

impl Route {
    fn state(&self) -> MutexGuard<'_, RouteState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `creds` name this route and carry its secret (constant time).
    fn owned_by(&self, creds: &RouteCredentials) -> bool {
        let id_ok: bool = creds.route_id.as_bytes().ct_eq(self.id.as_bytes()).into();
        let secret: [u8; 32] = Sha256::digest(creds.route_secret.as_bytes()).into();
        let secret_ok: bool = secret.ct_eq(&self.secret_hash).into();
        id_ok & secret_ok
    }

    fn conn(&self) -> Option<Arc<HostConn>> {
        self.state().conn.clone()
    }

    fn is_served_by(&self, conn_id: u64) -> bool {
        self.state().conn.as_ref().is_some_and(|c| c.id == conn_id)
    }

    /// Binds the route to `conn`, returning the connection it replaces.
    fn attach(&self, conn: Arc<HostConn>) -> Option<Arc<HostConn>> {
        let mut st = self.state();
        st.last_seen = Instant::now();
        st.conn.replace(conn)
    }

    /// Unbinds `conn_id` if it still serves the route (the route waits for a reclaim).
    fn detach(&self, conn_id: u64) {
        let mut st = self.state();
        if st.conn.as_ref().is_some_and(|c| c.id == conn_id) {
            st.conn = None;
            st.last_seen = Instant::now();
        }
    }

    fn take_conn(&self) -> Option<Arc<HostConn>> {
        self.state().conn.take()
    }

    fn touch(&self) {
        self.state().last_seen = Instant::now();
    }

    /// Everything the broker holds about this route (the route table view).
    fn metadata(&self) -> serde_json::Value {
        let (conn, idle) = {
            let st = self.state();
            (st.conn.as_ref().map(|c| c.id), st.last_seen.elapsed())
        };
        json!({
            "slug": self.slug,
            "route_id": self.id,
            "route_hash": self.hash,
            "host_connection": conn,
            "status": if conn.is_some() { "connected" } else { "awaiting_reclaim" },
            "created_at": format_ms(self.created_at_ms),
            "last_seen_at": format_ms(now_ms() - idle.as_millis() as i64),
            "expires_at": format_ms(self.expires_at_ms),
            "requests_in_flight": self.max_requests as usize - self.requests.available_permits(),
        })
    }

    /// Why the route should end now, if it should.
    fn expiry(&self, now: Instant, idle: Duration) -> Option<(&'static str, &'static str)> {
        if now >= self.expires_at {
            return Some((
                "route_lifetime_expired",
                "the route reached the broker's maximum lifetime; start the tunnel again",
            ));
        }
        let busy = self.requests.available_permits() < self.max_requests as usize;
        let last = self.state().last_seen;
        if !busy && now.saturating_duration_since(last) > idle {
            return Some((
                "route_idle_expired",
                "the route was idle past the broker's idle timeout",
            ));
        }
        None
    }
}

/// The broker's shared state.
struct Broker {
    cfg: BrokerConfig,
    routes: Mutex<HashMap<String, Arc<Route>>>,
    ips: IpLimiter,
    hash_key: [u8; 32],
    key_hashes: Vec<[u8; 32]>,
    next_conn: AtomicU64,
    draining: AtomicBool,
    started: Instant,
    local_url: String,
}

impl Broker {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, Arc<Route>>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The name of a route in logs: a hash keyed by a per-process secret, so the log
    /// cannot be matched against a list of guessed slugs.
    fn route_hash(&self, slug: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.hash_key);
        h.update(slug.as_bytes());
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn key_ok(&self, key: &str) -> bool {
        let k: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.key_hashes
            .iter()
            .fold(false, |ok, h| ok | bool::from(h.ct_eq(&k)))
    }

    fn heartbeat(&self) -> Duration {
        self.cfg
            .heartbeat
            .min(self.cfg.limits.idle_timeout / 3)
            .max(Duration::from_millis(100))
    }

    fn route_limits(&self) -> RouteLimits {
        let l = &self.cfg.limits;
        RouteLimits {
            max_requests: l.max_requests,
            max_waits: l.max_waits,
            max_request_body: l.max_request_body,
            max_response: l.max_response,
            idle_timeout_ms: l.idle_timeout.as_millis() as u64,
            max_lifetime_ms: l.max_lifetime.as_millis() as u64,
            route_requests_per_min: l.route_requests_per_min,
            ip_requests_per_min: l.ip_requests_per_min,
        }
    }

    /// The base participants use: `--public-url`, else what the host's request shows
    /// (its `Host`, and `X-Forwarded-Proto` when a local proxy set it).
    fn public_base(&self, headers: &HeaderMap, peer: SocketAddr) -> String {
        if let Some(u) = &self.cfg.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_authority(h));
        let proto = peer
            .ip()
            .is_loopback()
            .then(|| {
                headers
                    .get("x-forwarded-proto")
                    .and_then(|h| h.to_str().ok())
            })
            .flatten()
            .filter(|p| *p == "https" || *p == "http");
        match host {
            Some(h) => format!("{}://{h}", proto.unwrap_or("http")),
            None => self.local_url.clone(),
        }
    }

    fn event(&self, event: &str, route: &str, extra: serde_json::Value) {
        let mut line = json!({"ts": format_ms(now_ms()), "event": event, "route": route});
        if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
            obj.extend(more);
        }
        log_line(&line);
    }

    /// Removes `route` from the table if it is still the one there.
    fn remove_route(&self, route: &Arc<Route>) -> bool {
        let mut routes = self.routes();
        if routes
            .get(&route.slug)
            .is_some_and(|r| Arc::ptr_eq(r, route))
        {
            routes.remove(&route.slug);
            true
        } else {
            false
        }
    }
}

fn valid_authority(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// The participant's address: the peer, or, behind a proxy on this machine, the address
/// that proxy appended last to `X-Forwarded-For`.
fn client_ip(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if peer.ip().is_loopback()
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.ip()
}

/// A request straight from this machine, not relayed by a proxy: the operator.
fn operator_on_this_machine(peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback()
        && ![
            "x-forwarded-for",
            "forwarded",
            "x-real-ip",
            "x-forwarded-host",
        ]
        .iter()
        .any(|h| headers.contains_key(*h))
}

fn error_response(r: &Refusal) -> (Response, u64) {
    let body = json!({"ok": false, "error": r.err.code, "message": r.err.message}).to_string();
    let len = body.len() as u64;
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() =
        StatusCode::from_u16(r.err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(after) = r.retry_after {
        let secs = after.as_secs_f64().ceil().max(1.0) as u64;
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    (resp, len)
}

enum Outcome {
    /// Answered here; log now.
    Done(Response, u64),
    /// Streaming from the host; the body logs when it ends.
    Streaming(Response),
}

async fn handle(b: Arc<Broker>, peer: SocketAddr, req: Request<Incoming>) -> Response {
    let mut log = Access::new(req.method().as_str());
    let ip = client_ip(peer, req.headers());
    let outcome = match req.uri().path() {
        TUNNEL_PATH => {
            log.class = "tunnel";
            upgrade(&b, peer, ip, req)
        }
        HEALTH_PATH => {
            log.class = "health";
            let body = json!({
                "ok": true, "service": "agentgather-broker",
                "version": env!("CARGO_PKG_VERSION"), "protocol": PROTOCOL_VERSION,
                "status": if b.draining() { "draining" } else { "serving" },
            })
            .to_string();
            let len = body.len() as u64;
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            Ok(Outcome::Done(resp, len))
        }
        ROUTES_PATH => {
            log.class = "admin";
            if operator_on_this_machine(peer, req.headers()) {
                let mut routes: Vec<serde_json::Value> =
                    b.routes().values().map(|r| r.metadata()).collect();
                routes.sort_by(|a, b| a["slug"].as_str().cmp(&b["slug"].as_str()));
                let body = json!({"ok": true, "routes": routes}).to_string();
                let len = body.len() as u64;
                let mut resp = Response::new(Body::from(body));
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(Outcome::Done(resp, len))
            } else {
                Err(not_found())
            }
        }
        _ => route_request(&b, ip, req, &mut log).await,
    };
    match outcome {
        Ok(Outcome::Streaming(resp)) => resp,
        Ok(Outcome::Done(resp, len)) => {
            log.status = resp.status().as_u16();
            log.bytes_out = len;
            log.write();
            resp
        }
        Err(r) => {
            let (resp, len) = error_response(&r);
            log.status = r.err.status;
            log.code = Some(r.err.code);
            log.bytes_out = len;
            log.write();
            resp
        }
    }
}

fn ip_limited(wait: Duration) -> Refusal {
    Refusal::new(
        429,
        "ip_rate_limited",
        "too many unauthenticated requests from this address; slow down",
    )
    .retry(wait)
}

async fn route_request(
    b: &Arc<Broker>,
    ip: IpAddr,
    req: Request<Incoming>,
    log: &mut Access,
) -> Result<Outcome, Refusal> {
    if b.draining() {
        return Err(Refusal::new(
            503,
            "broker_draining",
            "the broker is restarting; retry in a moment",
        )
        .retry(Duration::from_secs(2)));
    }
    let authed = req.headers().contains_key(header::AUTHORIZATION);
    if !authed {
        b.ips.take(ip).map_err(ip_limited)?;
    }
    let path = req.uri().path().to_string();
    let found = split_slug(&path).and_then(|(slug, rest)| {
        validate_slug(slug).ok()?;
        let route = b.routes().get(slug).cloned()?;
        Some((route, rest.to_string()))
    });
    let Some((route, rest)) = found else {
        // Every miss counts against the address, token or not: probing slugs is not free.
        if authed {
            b.ips.take(ip).map_err(ip_limited)?;
        }
        if b.started.elapsed() < b.cfg.restart_grace {
            return Err(unavailable());
        }
        return Err(not_found());
    };
    log.route = Some(route.hash.clone());
    log.class = path_class(&rest);
    if rest.is_empty() {
        // `/<slug>` → `/<slug>/`, relative, so the browser room's relative URLs resolve
        // under the slug whatever prefix a proxy adds.
        let mut location = format!("{}/", route.slug);
        if let Some(q) = req.uri().query() {
            location.push('?');
            location.push_str(q);
        }
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
        let value = HeaderValue::from_str(&location).map_err(|_| not_found())?;
        resp.headers_mut().insert(header::LOCATION, value);
        return Ok(Outcome::Done(resp, 0));
    }
    route
        .rate
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(b.cfg.limits.route_requests_per_min, Instant::now())
        .map_err(|wait| {
            Refusal::new(
                429,
                "route_rate_limited",
                "this room link is over its request rate; slow down",
            )
            .retry(wait)
        })?;
    let request_permit = route.requests.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            503,
            "route_busy",
            "this room link has too many requests in flight; retry shortly",
        )
        .retry(Duration::from_secs(1))
    })?;
    let wait_permit = if log.class == "wait" {
        Some(route.waits.clone().try_acquire_owned().map_err(|_| {
            Refusal::new(
                503,
                "route_wait_limit",
                "this room link holds too many waits; retry shortly",
            )
            .retry(Duration::from_secs(2))
        })?)
    } else {
        None
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > b.cfg.limits.max_request_body) {
        return Err(request_too_large(b.cfg.limits.max_request_body));
    }
    let conn = route.conn().ok_or_else(unavailable)?;
    route.touch();
    let permits = (request_permit, wait_permit);
    proxy(b, route, conn, req, rest, permits, log).await
}

fn request_too_large(limit: u64) -> Refusal {
    Refusal::new(
        413,
        "request_too_large",
        format!("the request body is over the broker's limit of {limit} bytes"),
    )
}

/// Cancels a stream if the request ends before its body takes over.
struct StreamGuard {
    conn: Arc<HostConn>,
    id: u64,
    armed: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.armed {
            self.conn.cancel(self.id);
        }
    }
}

enum PumpError {
    TooLarge,
    Broken,
}

/// Streams the participant's body to the host in chunks, counting against the limit.
async fn pump_body(
    conn: &HostConn,
    id: u64,
    mut body: Incoming,
    limit: u64,
) -> Result<u64, PumpError> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| PumpError::Broken)?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(PumpError::TooLarge);
            }
            for chunk in data.chunks(CHUNK_BYTES) {
                if !conn.send_data(id, chunk) {
                    return Err(PumpError::Broken);
                }
            }
        }
    }
    Ok(total)
}

/// What a streaming answer holds until its last byte: the permits, the log line, and
/// the duty to cancel the host's work if the participant goes away first.
struct BodyState {
    rx: mpsc::UnboundedReceiver<Chunk>,
    conn: Arc<HostConn>,
    route: Arc<Route>,
    id: u64,
    finished: bool,
    /// The declared length: hyper stops reading once it has that many bytes.
    expected: Option<u64>,
    log: Access,
    _permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
}

impl BodyState {
    /// The host sent the whole answer: nothing to cancel.
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for BodyState {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.cancel(self.id);
            self.log.aborted = true;
        }
        self.route.touch();
        self.log.write();
    }
}

async fn proxy(
    b: &Arc<Broker>,
    route: Arc<Route>,
    conn: Arc<HostConn>,
    req: Request<Incoming>,
    rest: String,
    permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    log: &mut Access,
) -> Result<Outcome, Refusal> {
    let (parts, body) = req.into_parts();
    let is_head = parts.method == hyper::Method::HEAD;
    let path = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let headers = header_pairs(&parts.headers, forwards_request_header);
    let (id, head_rx, body_rx) = conn.open_stream().ok_or_else(unavailable)?;
    let mut guard = StreamGuard {
        conn: conn.clone(),
        id,
        armed: true,
    };
    if !conn.send(&BrokerFrame::Request {
        id,
        method: parts.method.as_str().to_string(),
        path,
        headers,
    }) {
        return Err(unavailable());
    }
    let limit = b.cfg.limits.max_request_body;
    let pump_conn = conn.clone();
    let pump = pump_body(&pump_conn, id, body, limit);
    tokio::pin!(pump);
    let head_wait = tokio::time::timeout(b.cfg.request_timeout, head_rx);
    tokio::pin!(head_wait);
    let mut pumping = true;
    let head = loop {
        tokio::select! {
            r = &mut pump, if pumping => {
                pumping = false;
                match r {
                    Ok(n) => {
                        log.bytes_in = n;
                        conn.send(&BrokerFrame::End { id });
                    }
                    Err(PumpError::TooLarge) => return Err(request_too_large(limit)),
                    Err(PumpError::Broken) => {
                        return Err(Refusal::new(400, "request_aborted", "the request body did not arrive whole"));
                    }
                }
            }
            h = &mut head_wait => break h,
        }
    };
    let head = match head {
        Err(_) => {
            return Err(Refusal::new(
                504,
                "host_timeout",
                "the host did not answer in time",
            ));
        }
        Ok(Err(_)) => {
            return Err(Refusal::new(
                502,
                "host_disconnected",
                "the host's tunnel disconnected; retry in a moment",
            ));
        }
        Ok(Ok(Err(e))) => return Err(e.into()),
        Ok(Ok(Ok(h))) => h,
    };
    let declared = head
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > b.cfg.limits.max_response) {
        return Err(Refusal::new(
            502,
            "response_too_large",
            format!(
                "the room server's answer is over the broker's limit of {} bytes",
                b.cfg.limits.max_response
            ),
        ));
    }
    // Informational and switching answers cannot be relayed as a plain response.
    let status = StatusCode::from_u16(head.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| host_failure(""))?;
    guard.armed = false;
    let state = BodyState {
        rx: body_rx,
        conn,
        route,
        id,
        // Nothing to read (an empty or HEAD answer): hyper may never poll the body.
        finished: declared == Some(0) || is_head,
        expected: declared,
        log: Access {
            started: log.started,
            method: std::mem::take(&mut log.method),
            route: log.route.take(),
            class: log.class,
            status: status.as_u16(),
            code: None,
            bytes_in: log.bytes_in,
            bytes_out: 0,
            aborted: false,
        },
        _permits: permits,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        match st.rx.recv().await {
            Some(Ok(bytes)) => {
                let n = bytes.len();
                st.log.bytes_out += n as u64;
                if st.expected == Some(st.log.bytes_out) {
                    st.finish();
                } else {
                    st.conn.send(&BrokerFrame::Credit {
                        id: st.id,
                        bytes: n as u32,
                    });
                }
                Some((Ok(bytes), st))
            }
            Some(Err(e)) => Some((Err(e), st)),
            None => {
                st.finish();
                None
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in &head.headers {
        if !forwards_response_header(k) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(name, value);
        }
    }
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    Ok(Outcome::Streaming(resp))
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Accepts a host's WebSocket on [`TUNNEL_PATH`].
fn upgrade(
    b: &Arc<Broker>,
    peer: SocketAddr,
    ip: IpAddr,
    mut req: Request<Incoming>,
) -> Result<Outcome, Refusal> {
    if b.draining() {
        return Err(Refusal::new(
            503,
            "broker_draining",
            "the broker is restarting; reconnect in a moment",
        )
        .retry(Duration::from_secs(2)));
    }
    // Every connection attempt is unauthenticated until it registers.
    b.ips.take(ip).map_err(ip_limited)?;
    let h = req.headers();
    let is_upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = h
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = h.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes());
    let (true, true, Some(key)) = (is_upgrade, version_ok, key) else {
        return Err(Refusal::new(
            400,
            "websocket_required",
            "this path is for `agentgather tunnel run` (a WebSocket)",
        ));
    };
    let accept = derive_accept_key(key);
    let base = b.public_base(h, peer);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let broker = b.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config()),
                )
                .await;
                host_connection(broker, ws, base).await;
            }
            Err(e) => tracing::debug!(error = %e, "a tunnel upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let accept = HeaderValue::from_str(&accept).map_err(|_| {
        Refusal::new(
            400,
            "websocket_required",
            "the WebSocket key could not be answered",
        )
    })?;
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(Outcome::Done(resp, 0))
}

/// One host connection, from registration to hang-up.
async fn host_connection<S>(b: Arc<Broker>, ws: WebSocketStream<S>, base: String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let (tx, writer) = super::spawn_ws_writer(sink);
    let conn = Arc::new(HostConn::new(
        b.next_conn.fetch_add(1, Ordering::Relaxed),
        tx,
        b.cfg.limits.max_response,
    ));
    let registered = match tokio::time::timeout(b.cfg.register_timeout, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<HostFrame>(&text) {
            Ok(HostFrame::Register {
                version,
                slug,
                host_key,
                reclaim,
            }) => register(
                &b,
                &conn,
                version,
                &slug,
                host_key.as_deref(),
                reclaim.as_ref(),
                &base,
            ),
            _ => Err(ApiError::new(
                400,
                "register_required",
                "the first frame must be a register frame",
            )),
        },
        Ok(_) => Err(ApiError::new(
            400,
            "register_required",
            "the first frame must be a register frame",
        )),
        Err(_) => Err(ApiError::new(
            408,
            "register_timeout",
            "no register frame arrived in time",
        )),
    };
    match registered {
        Ok(route) => {
            serve_host(&b, &route, &conn, &mut stream).await;
            route.detach(conn.id);
        }
        Err(e) => {
            conn.send(&BrokerFrame::Refused {
                status: e.status,
                code: e.code.into(),
                message: e.message,
            });
        }
    }
    conn.fail_all();
    let _ = conn.tx.send(Message::Close(None));
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Registers (or reclaims) a slug for `conn`.
fn register(
    b: &Arc<Broker>,
    conn: &Arc<HostConn>,
    version: u32,
    slug: &str,
    host_key: Option<&str>,
    reclaim: Option<&RouteCredentials>,
    base: &str,
) -> Result<Arc<Route>, ApiError> {
    if version != PROTOCOL_VERSION {
        return Err(ApiError::new(
            400,
            "unsupported_version",
            format!("this broker speaks tunnel protocol {PROTOCOL_VERSION}; update agentgather"),
        ));
    }
    validate_slug(slug).map_err(|e| ApiError::new(400, "invalid_slug", e.to_string()))?;
    if !b.key_hashes.is_empty() {
        match host_key {
            None => {
                return Err(ApiError::new(
                    401,
                    "host_key_required",
                    "this broker only registers hosts with an operator key (--host-key-file)",
                ));
            }
            Some(k) if !b.key_ok(k) => {
                return Err(ApiError::new(
                    401,
                    "host_key_invalid",
                    "the operator key is not accepted by this broker",
                ));
            }
            Some(_) => {}
        }
    }
    let mut routes = b.routes();
    if let Some(existing) = routes.get(slug).cloned() {
        return match reclaim {
            Some(c) if existing.owned_by(c) => {
                let old = existing.attach(conn.clone());
                drop(routes);
                if let Some(old) = old.filter(|o| o.id != conn.id) {
                    old.close_route(
                        "route_replaced",
                        "another connection holding this route's secret took it over",
                    );
                }
                conn.send(&registered_frame(b, &existing, c.clone(), base, true));
                b.event("route_reclaimed", &existing.hash, json!({}));
                Ok(existing)
            }
            Some(_) => Err(ApiError::new(
                403,
                "route_auth_failed",
                "the route secret does not match this route",
            )),
            None => Err(ApiError::new(
                409,
                "route_slug_taken",
                "this slug is in use by another host; pick another --subdomain",
            )),
        };
    }
    // A route from before a restart: its secret proves it, with no state kept.
    // A route from before a restart: its secret proves it with no state kept, and its id
    // carries its expiry (under the same MAC), so a reclaim never extends a lifetime.
    let returning = match (&b.cfg.route_key, reclaim) {
        (Some(key), Some(c)) if valid_route_id(&c.route_id) => {
            let expected = derive_secret(key, &c.route_id, slug);
            let genuine: bool = expected.as_bytes().ct_eq(c.route_secret.as_bytes()).into();
            genuine
                .then(|| route_id_expiry(&c.route_id).map(|exp| (c.clone(), exp)))
                .flatten()
        }
        _ => None,
    };
    let now_wall = now_ms();
    if returning.as_ref().is_some_and(|(_, exp)| *exp <= now_wall) {
        return Err(ApiError::new(
            403,
            "route_lifetime_expired",
            "this route reached the broker's maximum lifetime; start the tunnel again",
        ));
    }
    if returning.is_none() && b.cfg.routes_may_return && b.started.elapsed() < b.cfg.restart_grace {
        return Err(ApiError::new(
            503,
            "broker_starting",
            "the broker just restarted and its hosts are reclaiming their links; retry in a few seconds",
        ));
    }
    if routes.len() >= b.cfg.limits.max_routes {
        return Err(ApiError::new(
            503,
            "broker_full",
            "this broker holds as many routes as it may; try later",
        ));
    }
    let l = &b.cfg.limits;
    let lifetime_end = now_wall.saturating_add(l.max_lifetime.as_millis() as i64);
    let reclaimed = returning.is_some();
    let (creds, expires_at_ms) = match returning {
        Some((c, exp)) => (c, exp.min(lifetime_end)),
        None => {
            let internal = |e: TunnelError| ApiError::new(500, "internal", e.to_string());
            let route_id = format!(
                "{}-{lifetime_end:x}",
                random_token("rt_", 9).map_err(internal)?
            );
            let route_secret = match &b.cfg.route_key {
                Some(key) => derive_secret(key, &route_id, slug),
                None => random_token("rts_", 32).map_err(internal)?,
            };
            let creds = RouteCredentials {
                route_id,
                route_secret,
            };
            (creds, lifetime_end)
        }
    };
    let now = Instant::now();
    let left = Duration::from_millis(expires_at_ms.saturating_sub(now_wall).max(0) as u64);
    let route = Arc::new(Route {
        slug: slug.to_string(),
        hash: b.route_hash(slug),
        id: creds.route_id.clone(),
        secret_hash: Sha256::digest(creds.route_secret.as_bytes()).into(),
        expires_at: now + left,
        created_at_ms: now_wall,
        expires_at_ms,
        requests: Arc::new(Semaphore::new(l.max_requests as usize)),
        waits: Arc::new(Semaphore::new(l.max_waits as usize)),
        max_requests: l.max_requests,
        rate: Mutex::new(Bucket::full(l.route_requests_per_min, now)),
        state: Mutex::new(RouteState {
            conn: Some(conn.clone()),
            last_seen: now,
        }),
    });
    routes.insert(slug.to_string(), route.clone());
    drop(routes);
    conn.send(&registered_frame(b, &route, creds, base, reclaimed));
    b.event(
        if reclaimed {
            "route_reclaimed"
        } else {
            "route_registered"
        },
        &route.hash,
        json!({}),
    );
    Ok(route)
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The secret of route `route_id` for `slug` under the broker's route key.
fn derive_secret(key: &[u8], route_id: &str, slug: &str) -> String {
    use base64::Engine;
    let mac = hmac_sha256(
        key,
        &[
            b"agentgather route v1\0",
            route_id.as_bytes(),
            b"\0",
            slug.as_bytes(),
        ],
    );
    format!(
        "rts_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    )
}

/// The expiry (ms since the epoch) a route id carries after its last `-`.
fn route_id_expiry(id: &str) -> Option<i64> {
    let (_, hex) = id.rsplit_once('-')?;
    i64::from_str_radix(hex, 16).ok()
}

fn valid_route_id(id: &str) -> bool {
    id.starts_with("rt_")
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn registered_frame(
    b: &Broker,
    route: &Route,
    creds: RouteCredentials,
    base: &str,
    reclaimed: bool,
) -> BrokerFrame {
    BrokerFrame::Registered {
        route: creds,
        slug: route.slug.clone(),
        public_url: format!("{base}/{}", route.slug),
        reclaimed,
        heartbeat_ms: b.heartbeat().as_millis() as u64,
        expires_at_ms: route.expires_at_ms,
        limits: b.route_limits(),
    }
}

/// Reads a registered host's frames until it hangs up, goes silent, or loses the route.
async fn serve_host<S>(
    b: &Arc<Broker>,
    route: &Arc<Route>,
    conn: &Arc<HostConn>,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let heartbeat = b.heartbeat();
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dead_after = heartbeat * 3 + Duration::from_secs(5);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            m = stream.next() => {
                let Some(Ok(m)) = m else { return };
                last_heard = Instant::now();
                match m {
                    Message::Text(text) => match serde_json::from_str::<HostFrame>(&text) {
                        Ok(frame) => {
                            if !on_host_frame(b, route, conn, frame) {
                                return;
                            }
                        }
                        Err(_) => {
                            conn.close_route("protocol_error", "an unreadable control frame");
                            return;
                        }
                    },
                    Message::Binary(data) => match decode_data(&data) {
                        Some((id, _)) => conn.on_data(id, data.slice(9..)),
                        None => {
                            conn.close_route("protocol_error", "an unreadable data frame");
                            return;
                        }
                    },
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > dead_after {
                    return;
                }
                let _ = conn.tx.send(Message::Ping(Bytes::new()));
            }
            _ = conn.hangup.notified() => return,
        }
    }
}

/// Handles one control frame; `false` ends the connection.
fn on_host_frame(b: &Arc<Broker>, route: &Arc<Route>, conn: &Arc<HostConn>, f: HostFrame) -> bool {
    let refuse = |code: &str, message: &str| {
        conn.send(&BrokerFrame::Error {
            code: code.into(),
            message: message.into(),
        });
    };
    match f {
        HostFrame::Register { .. } => {
            refuse(
                "already_registered",
                "this connection already serves a route",
            );
            true
        }
        HostFrame::Heartbeat { route: creds } => {
            if route.owned_by(&creds) && route.is_served_by(conn.id) {
                route.touch();
            } else {
                refuse(
                    "route_auth_failed",
                    "the route secret does not match this route",
                );
            }
            true
        }
        HostFrame::Release { route: creds } => {
            if !(route.owned_by(&creds) && route.is_served_by(conn.id)) {
                refuse(
                    "route_auth_failed",
                    "the route secret does not match this route",
                );
                return true;
            }
            route.take_conn();
            b.remove_route(route);
            b.event(
                "route_closed",
                &route.hash,
                json!({"code": "route_released"}),
            );
            conn.close_route("route_released", "the route is released");
            false
        }
        HostFrame::Response {
            id,
            status,
            headers,
        } => {
            conn.on_response(id, status, headers);
            true
        }
        HostFrame::End { id } => {
            conn.on_end(id);
            true
        }
        HostFrame::Fail { id, code, .. } => {
            conn.on_fail(id, &code);
            true
        }
    }
}

/// Ends routes past their lifetime or idle timeout.
async fn reap(b: Arc<Broker>) {
    let idle = b.cfg.limits.idle_timeout;
    let period = (idle.min(b.cfg.limits.max_lifetime) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut last_sweep = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let now = Instant::now();
        let mut expired = Vec::new();
        b.routes().retain(|_, r| match r.expiry(now, idle) {
            Some(why) => {
                expired.push((r.clone(), why));
                false
            }
            None => true,
        });
        for (route, (code, message)) in expired {
            if let Some(conn) = route.take_conn() {
                conn.close_route(code, message);
            }
            b.event("route_closed", &route.hash, json!({"code": code}));
        }
        if last_sweep.elapsed() > Duration::from_secs(60) {
            b.ips.sweep();
            last_sweep = Instant::now();
        }
    }
}

/// Serves until SIGINT/SIGTERM, then drains and returns.
pub async fn serve(cfg: BrokerConfig) -> Result<(), TunnelError> {
    if let Some(u) = &cfg.public_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(TunnelError::Config(format!(
            "--public-url must start with https:// (got {u:?})"
        )));
    }
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TunnelError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| TunnelError::Bind { addr, source })?;
    let mut hash_key = [0u8; 32];
    getrandom::fill(&mut hash_key).map_err(|e| TunnelError::Config(e.to_string()))?;
    let key_hashes = cfg
        .host_keys
        .iter()
        .map(|k| Sha256::digest(k.as_bytes()).into())
        .collect();
    let max_connections = cfg.max_connections;
    let b = Arc::new(Broker {
        ips: IpLimiter::new(cfg.limits.ip_requests_per_min),
        cfg,
        routes: Mutex::new(HashMap::new()),
        hash_key,
        key_hashes,
        next_conn: AtomicU64::new(1),
        draining: AtomicBool::new(false),
        started: Instant::now(),
        local_url: format!("http://{local}"),
    });
    eprintln!(
        "agentgather: broker listening on {local}; public URL {}; {}; ctrl-c or SIGTERM drains and stops",
        b.cfg
            .public_url
            .as_deref()
            .unwrap_or("(from each host's request)"),
        if b.key_hashes.is_empty() {
            "any host may register"
        } else {
            "hosts need an operator key"
        }
    );
    let reaper = tokio::spawn(reap(b.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let connections = Arc::new(Semaphore::new(max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    let stop = crate::net::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            (stream, peer, permit) = crate::net::accept_capped(&listener, &connections) => {
                let broker = b.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let broker = broker.clone();
                    async move { Ok::<_, Infallible>(handle(broker, peer, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
                let mut stop = stop_rx.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    let stopped = async {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stopped => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.as_mut().await;
                        }
                    }
                    drop(done);
                    drop(permit);
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    eprintln!("agentgather: broker draining: no new requests, finishing those in flight");
    b.draining.store(true, Ordering::SeqCst);
    stop_tx.send_replace(true);
    drop(done_tx);
    let drained = tokio::time::timeout(b.cfg.drain_timeout, done_rx.recv())
        .await
        .is_ok();
    reaper.abort();
    let routes: Vec<Arc<Route>> = b.routes().drain().map(|(_, r)| r).collect();
    let mut writers_busy = 0usize;
    for route in routes {
        if let Some(conn) = route.take_conn() {
            writers_busy += conn.in_flight();
            conn.close_route(
                "broker_shutdown",
                "the broker is restarting; reconnect and reclaim the route",
            );
        }
        b.event(
            "route_closed",
            &route.hash,
            json!({"code": "broker_shutdown"}),
        );
    }
    // Give the host writers a moment to put the closing frames on the wire.
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!(
        "agentgather: broker stopped{}",
        if drained && writers_busy == 0 {
            ""
        } else {
            " (some requests were cut at the drain timeout)"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_a_local_proxy() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let h = hm(&[("x-forwarded-for", "198.51.100.1, 198.51.100.2")]);
        assert_eq!(
            client_ip(local, &h),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(remote, &h), remote.ip());
        assert_eq!(client_ip(local, &HeaderMap::new()), local.ip());
        let junk = hm(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(local, &junk), local.ip());
    }

    #[test]
    fn authorities_are_plain() {
        assert!(valid_authority("broker.example:8443"));
        assert!(valid_authority("[::1]:80"));
        assert!(!valid_authority("evil.example/path"));
        assert!(!valid_authority(""));
        assert!(!valid_authority("a b"));
    }

    #[test]
    fn error_responses_follow_the_contract() {
        let (resp, len) = error_response(&not_found().retry(Duration::from_millis(1500)));
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert!(len > 10);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        let mac = hmac_sha256(
            &long_key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derived_secrets_bind_the_route_and_the_slug() {
        let a = derive_secret(b"key", "rt_1", "demo");
        assert!(a.starts_with("rts_"));
        assert_eq!(a, derive_secret(b"key", "rt_1", "demo"));
        assert_ne!(a, derive_secret(b"key", "rt_2", "demo"));
        assert_ne!(a, derive_secret(b"key", "rt_1", "demo-2"));
        assert_ne!(a, derive_secret(b"other", "rt_1", "demo"));
        assert!(valid_route_id("rt_abc-_9"));
        assert_eq!(route_id_expiry("rt_a-b-c-ff"), Some(255));
        assert_eq!(route_id_expiry("rt_abc"), None);
        assert!(!valid_route_id("rt_a b"));
        assert!(!valid_route_id("xx_abc"));
    }

    #[test]
    fn host_failures_do_not_echo_host_text() {
        assert_eq!(host_failure("target_timeout").status, 504);
        let e = host_failure("<script>canary</script>");
        assert_eq!(e.code, "host_error");
        assert!(!e.message.contains("canary"));
    }
}
