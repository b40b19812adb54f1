//! `tunnel run`: the host half of a room link. It keeps one outbound WebSocket to a
//! broker (no inbound port needed), registers a slug, relays each request to the local
//! room server as an ordinary loopback request, and points the room's public URL at the
//! broker so new Attend Cards, `browser_url`s and `/wait`'s `next_cmd` use it.
//!
//! Why it is built like this:
//! - Every request runs in its own task, so a held `/wait` (up to 25 s) never delays a
//!   post or an asset; answers stream back in chunks under the broker's credit window.
//! - Only the headers a room needs cross ([`super::protocol::FORWARDED_REQUEST_HEADERS`]),
//!   and `Host` is always the loopback target, so the room server's exposure rules hold.
//! - Brokers restart and networks blip: the client reconnects with capped exponential
//!   backoff and reclaims its slug with the route secret (kept in the home, 0600, so a
//!   restarted client can reclaim too); after a broker restart it registers afresh.
//! - It ends cleanly: on SIGINT/SIGTERM or when the room closes it lets answers in flight
//!   finish, releases the route, and sets the room's public URL back to what it was.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Either, Empty, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::TunnelError;
use super::protocol::{
    BrokerFrame, CHUNK_BYTES, HostFrame, INITIAL_WINDOW, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
    RouteCredentials, TUNNEL_PATH, decode_data, encode_data, forwards_request_header,
    forwards_response_header, header_pairs, validate_slug,
};
use crate::client::Client;
use crate::protocol::timefmt::format_ms;
use crate::store::fsutil::{read_json, write_json};
use crate::store::{RoomMeta, RoomStatus};

/// How `tunnel run` runs.
#[derive(Clone)]
pub struct TunnelConfig {
    /// The broker's base URL (`https://broker.example`).
    pub broker: String,
    pub slug: String,
    /// The local room server (`http://127.0.0.1:8787`).
    pub target: String,
    /// The host's token, to set the room's public URL.
    pub host_token: String,
    /// The operator key, when the broker asks for one.
    pub host_key: Option<String>,
    /// The room's `room.json`, watched for the room closing.
    pub room_file: Option<PathBuf>,
    /// Where the route credentials are kept between runs (0600).
    pub state_file: Option<PathBuf>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// What the client reports as it goes (printed as text, or JSON lines with `--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Connecting {
        broker: String,
        attempt: u32,
    },
    Registered {
        public_url: String,
        reclaimed: bool,
        expires_at: String,
    },
    PublicUrlSet {
        url: String,
    },
    Disconnected {
        reason: String,
        retry_in_ms: u64,
    },
    Warning {
        message: String,
    },
    Released,
    PublicUrlRestored {
        url: String,
    },
}

pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

/// Why the client stopped without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    RoomClosed,
    Signal,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::RoomClosed => "room_closed",
            Finish::Signal => "signal",
        }
    }
}

/// The loopback room server requests go to.
struct Target {
    /// `host:port` to connect to, also the `Host` header.
    authority: String,
}

fn parse_target(url: &str) -> Result<Target, TunnelError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        TunnelError::Config(format!(
            "--target must be a loopback http:// URL (got {url:?})"
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    if !crate::server::is_loopback_host(authority) {
        return Err(TunnelError::Config(format!(
            "--target must be a room server on this machine (loopback), got {url:?}"
        )));
    }
    let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']')
    }) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target { authority })
}

/// `https://b.example/x` → `wss://b.example/x/_agentgather/tunnel`.
pub fn tunnel_url(broker: &str) -> Result<String, TunnelError> {
    let b = broker.trim_end_matches('/');
    let ws = if let Some(r) = b.strip_prefix("https://") {
        format!("wss://{r}")
    } else if let Some(r) = b.strip_prefix("http://") {
        format!("ws://{r}")
    } else if b.starts_with("wss://") || b.starts_with("ws://") {
        b.to_string()
    } else {
        return Err(TunnelError::Config(format!(
            "--broker must be an https:// (or http:// for loopback tests) URL, got {broker:?}"
        )));
    };
    Ok(format!("{ws}{TUNNEL_PATH}"))
}

fn tls_connector() -> Result<Connector, TunnelError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TunnelError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(cfg)))
}

/// The route credentials kept between runs.
#[derive(Serialize, Deserialize)]
struct SavedRoute {
    broker: String,
    slug: String,
    route: RouteCredentials,
}

/// The room's public URL: what it was, and what we set it to.
struct PublicUrls {
    target_url: String,
    token: String,
    original: Mutex<Option<String>>,
    current: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PublicUrls {
    fn client(&self) -> Client {
        Client::new(&self.target_url, &self.token, Duration::from_secs(10))
    }

    async fn remember_original(self: &Arc<Self>) {
        let me = self.clone();
        let url = tokio::task::spawn_blocking(move || me.client().status())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|s| s.url);
        *lock(&self.original) = url;
    }

    async fn post(self: &Arc<Self>, url: &str) -> Result<(), String> {
        let me = self.clone();
        let url = url.to_string();
        let r = tokio::task::spawn_blocking(move || me.client().set_public_url(&url))
            .await
            .map_err(|e| e.to_string())?;
        r.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn set(self: &Arc<Self>, url: &str) -> Result<bool, String> {
        if lock(&self.current).as_deref() == Some(url) {
            return Ok(false);
        }
        self.post(url).await?;
        *lock(&self.current) = Some(url.to_string());
        Ok(true)
    }

    /// Puts back the URL the room had, unless it was a broker URL (a previous run's).
    async fn restore(self: &Arc<Self>, broker_urls: &[String]) -> Option<Result<String, String>> {
        lock(&self.current).as_ref()?;
        let original = lock(&self.original).clone();
        let back = original
            .filter(|u| !broker_urls.iter().any(|b| u.starts_with(b.as_str())))
            .unwrap_or_else(|| self.target_url.clone());
        let result = match self.post(&back).await {
            Ok(()) => Ok(back),
            Err(e) if back != self.target_url => match self.post(&self.target_url).await {
                Ok(()) => Ok(self.target_url.clone()),
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        };
        if result.is_ok() {
            *lock(&self.current) = None;
        }
        Some(result)
    }
}

/// What a run shares across its sessions.
struct Cx {
    cfg: TunnelConfig,
    ws_url: String,
    connector: Connector,
    target: Arc<Target>,
    urls: Arc<PublicUrls>,
    emit: Emit,
    /// Public URLs the broker gave us, to recognise them when restoring.
    broker_urls: Mutex<Vec<String>>,
    /// The task pointing the room at the broker URL, if still at work.
    url_task: Mutex<Option<AbortHandle>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal,
    RoomClosed,
}

fn room_closed(file: &Path) -> bool {
    matches!(read_json::<RoomMeta>(file), Ok(Some(m)) if m.status == RoomStatus::Closed)
}

/// Watches for SIGINT/SIGTERM and for the room closing.
fn watch_stop(room_file: Option<PathBuf>) -> watch::Receiver<Option<Stop>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break tx.send_replace(Some(Stop::Signal)),
                _ = async {
                    match term.as_mut() {
                        Some(t) => { t.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => break tx.send_replace(Some(Stop::Signal)),
                _ = tick.tick() => {
                    if room_file.as_deref().is_some_and(room_closed) {
                        break tx.send_replace(Some(Stop::RoomClosed));
                    }
                }
            }
        }
    });
    rx
}

/// Resolves when a stop was asked for, with its reason.
async fn stopped(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(v) => (*v).unwrap_or(Stop::Signal),
        Err(_) => Stop::Signal,
    }
}

enum SessionEnd {
    Stopped(Stop),
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    Closed {
        code: String,
        message: String,
    },
    Lost(String),
}

/// Runs the tunnel until the room closes, a signal arrives, or the broker refuses for good.
pub async fn run(cfg: TunnelConfig, emit: Emit) -> Result<Finish, TunnelError> {
    validate_slug(&cfg.slug).map_err(|e| TunnelError::Config(format!("--subdomain: {e}")))?;
    let target = parse_target(&cfg.target)?;
    let ws_url = tunnel_url(&cfg.broker)?;
    let connector = if ws_url.starts_with("wss://") {
        tls_connector()?
    } else {
        Connector::Plain
    };
    let urls = Arc::new(PublicUrls {
        target_url: cfg.target.trim_end_matches('/').to_string(),
        token: cfg.host_token.clone(),
        original: Mutex::new(None),
        current: Mutex::new(None),
    });
    urls.remember_original().await;
    let mut stop = watch_stop(cfg.room_file.clone());
    let mut creds = cfg
        .state_file
        .as_ref()
        .and_then(|f| read_json::<SavedRoute>(f).ok().flatten())
        .filter(|s| s.broker == ws_url && s.slug == cfg.slug)
        .map(|s| s.route);
    let cx = Cx {
        ws_url,
        connector,
        target: Arc::new(target),
        urls,
        emit,
        broker_urls: Mutex::new(Vec::new()),
        url_task: Mutex::new(None),
        cfg,
    };
    let mut backoff = cx.cfg.initial_backoff;
    let mut attempt = 0u32;
    let mut ever_registered = false;
    let result = loop {
        if let Some(s) = *stop.borrow() {
            break Ok(s);
        }
        attempt += 1;
        (cx.emit)(Event::Connecting {
            broker: cx.cfg.broker.clone(),
            attempt,
        });
        let mut registered = false;
        let end = session(&cx, &mut creds, &mut stop, &mut registered).await;
        if registered {
            ever_registered = true;
            backoff = cx.cfg.initial_backoff;
            attempt = 0;
        }
        let reason = match end {
            SessionEnd::Stopped(s) => break Ok(s),
            SessionEnd::Refused {
                status,
                code,
                message,
            } => match code.as_str() {
                "route_auth_failed" if creds.is_some() => {
                    // Saved credentials of a route that is no longer ours: start afresh.
                    creds = None;
                    forget_route(&cx.cfg);
                    backoff = Duration::ZERO;
                    format!("{message} ({code})")
                }
                "route_slug_taken" if ever_registered => {
                    // New cards must not advertise a link that now leads elsewhere.
                    restore_public_url(&cx).await;
                    format!("{message} ({code}); someone took the slug while we were away")
                }
                "ip_rate_limited" | "broker_full" | "broker_draining" | "broker_starting"
                | "register_timeout" => {
                    format!("{message} ({code})")
                }
                _ => {
                    break Err(TunnelError::Refused {
                        status,
                        code,
                        message,
                    });
                }
            },
            SessionEnd::Closed { code, message } => match code.as_str() {
                "broker_shutdown" => format!("{message} ({code})"),
                "route_idle_expired" => {
                    creds = None;
                    forget_route(&cx.cfg);
                    format!("{message} ({code}); registering again")
                }
                _ => break Err(TunnelError::RouteEnded { code, message }),
            },
            SessionEnd::Lost(reason) => reason,
        };
        (cx.emit)(Event::Disconnected {
            reason,
            retry_in_ms: backoff.as_millis() as u64,
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(Option::is_some) => {}
        }
        backoff = (backoff * 2)
            .max(cx.cfg.initial_backoff)
            .min(cx.cfg.max_backoff);
    };
    restore_public_url(&cx).await;
    result.map(|s| match s {
        Stop::Signal => Finish::Signal,
        Stop::RoomClosed => Finish::RoomClosed,
    })
}

/// Stops pointing the room at the broker: back to the URL it had before.
async fn restore_public_url(cx: &Cx) {
    if let Some(t) = lock(&cx.url_task).take() {
        t.abort();
    }
    let broker_urls = lock(&cx.broker_urls).clone();
    match cx.urls.restore(&broker_urls).await {
        Some(Ok(url)) => (cx.emit)(Event::PublicUrlRestored { url }),
        Some(Err(e)) => (cx.emit)(Event::Warning {
            message: format!("could not set the room's public URL back: {e}"),
        }),
        None => {}
    }
}

fn save_route(cfg: &TunnelConfig, ws_url: &str, route: &RouteCredentials) {
    if let Some(f) = &cfg.state_file {
        if let Some(dir) = f.parent() {
            let _ = crate::store::fsutil::ensure_private_dir(dir);
        }
        let saved = SavedRoute {
            broker: ws_url.to_string(),
            slug: cfg.slug.clone(),
            route: route.clone(),
        };
        if let Err(e) = write_json(f, &saved) {
            tracing::warn!(error = %e, "could not keep the route credentials");
        }
    }
}

fn forget_route(cfg: &TunnelConfig) {
    if let Some(f) = &cfg.state_file {
        let _ = std::fs::remove_file(f);
    }
}

/// A request being answered: where its body goes, its credit, its task.
struct Stream {
    body: Option<mpsc::UnboundedSender<Bytes>>,
    received: u64,
    window: Arc<Semaphore>,
    task: Option<AbortHandle>,
}

type Streams = Arc<Mutex<HashMap<u64, Stream>>>;

fn send_frame(tx: &mpsc::UnboundedSender<Message>, f: &HostFrame) -> bool {
    match serde_json::to_string(f) {
        Ok(t) => tx.send(Message::text(t)).is_ok(),
        Err(_) => false,
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One connection to the broker, from connect to hang-up.
async fn session(
    cx: &Cx,
    creds: &mut Option<RouteCredentials>,
    stop: &mut watch::Receiver<Option<Stop>>,
    registered: &mut bool,
) -> SessionEnd {
    let request = match cx.ws_url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return SessionEnd::Lost(format!("bad broker URL: {e}")),
    };
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config()),
        true,
        Some(cx.connector.clone()),
    );
    let connected = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(10), connect) => r,
        s = stopped(stop) => return SessionEnd::Stopped(s),
    };
    let ws = match connected {
        Err(_) => return SessionEnd::Lost("the broker did not answer in time".into()),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            return SessionEnd::Lost(format!("the broker answered HTTP {}", resp.status()));
        }
        Ok(Err(e)) => return SessionEnd::Lost(format!("cannot reach the broker: {e}")),
        Ok(Ok((ws, _))) => ws,
    };
    let (sink, mut incoming) = ws.split();
    let (tx, writer) = super::spawn_ws_writer(sink);
    let streams: Streams = Arc::new(Mutex::new(HashMap::new()));
    let end = serve(cx, creds, stop, registered, &tx, &mut incoming, &streams).await;
    let tasks: Vec<AbortHandle> = lock(&streams).drain().filter_map(|(_, s)| s.task).collect();
    for t in tasks {
        t.abort();
    }
    let _ = tx.send(Message::Close(None));
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
    end
}

type Incoming = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
>;

async fn serve(
    cx: &Cx,
    creds: &mut Option<RouteCredentials>,
    stop: &mut watch::Receiver<Option<Stop>>,
    registered: &mut bool,
    tx: &mpsc::UnboundedSender<Message>,
    incoming: &mut Incoming,
    streams: &Streams,
) -> SessionEnd {
    send_frame(
        tx,
        &HostFrame::Register {
            version: PROTOCOL_VERSION,
            slug: cx.cfg.slug.clone(),
            host_key: cx.cfg.host_key.clone(),
            reclaim: creds.clone(),
        },
    );
    let first = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(15), incoming.next()) => r,
        s = stopped(stop) => return SessionEnd::Stopped(s),
    };
    let text = match first {
        Err(_) => return SessionEnd::Lost("the broker did not confirm the route in time".into()),
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(_) => return SessionEnd::Lost("the broker hung up before confirming the route".into()),
    };
    let (route, heartbeat, limits) = match serde_json::from_str::<BrokerFrame>(&text) {
        Ok(BrokerFrame::Registered {
            route,
            public_url,
            reclaimed,
            heartbeat_ms,
            expires_at_ms,
            limits,
            ..
        }) => {
            save_route(&cx.cfg, &cx.ws_url, &route);
            lock(&cx.broker_urls).push(public_url.clone());
            (cx.emit)(Event::Registered {
                public_url: public_url.clone(),
                reclaimed,
                expires_at: format_ms(expires_at_ms),
            });
            spawn_url_setter(cx, public_url);
            (route, Duration::from_millis(heartbeat_ms.max(100)), limits)
        }
        Ok(BrokerFrame::Refused {
            status,
            code,
            message,
        }) => {
            return SessionEnd::Refused {
                status,
                code,
                message,
            };
        }
        _ => return SessionEnd::Lost("the broker answered something unexpected".into()),
    };
    *creds = Some(route.clone());
    *registered = true;
    let mut hb = tokio::time::interval(heartbeat);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let silent_after = heartbeat * 3 + Duration::from_secs(5);
    let mut last_heard = Instant::now();
    let mut stopping: Option<(Stop, Instant)> = None;
    let mut released_at: Option<Instant> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            m = incoming.next() => {
                let Some(Ok(m)) = m else {
                    if let (Some((s, _)), Some(_)) = (stopping, released_at) {
                        return SessionEnd::Stopped(s);
                    }
                    return SessionEnd::Lost("the connection to the broker dropped".into());
                };
                last_heard = Instant::now();
                match m {
                    Message::Text(t) => match serde_json::from_str::<BrokerFrame>(&t) {
                        Ok(BrokerFrame::Request { id, method, path, headers }) => {
                            start_request(cx, tx, streams, id, method, path, headers, limits.max_response);
                        }
                        Ok(BrokerFrame::End { id }) => {
                            if let Some(s) = lock(streams).get_mut(&id) {
                                s.body = None;
                            }
                        }
                        Ok(BrokerFrame::Cancel { id }) => {
                            if let Some(t) = lock(streams).remove(&id).and_then(|s| s.task) {
                                t.abort();
                            }
                        }
                        Ok(BrokerFrame::Credit { id, bytes }) => {
                            if let Some(s) = lock(streams).get(&id) {
                                s.window.add_permits(bytes as usize);
                            }
                        }
                        Ok(BrokerFrame::Error { code, message }) => {
                            (cx.emit)(Event::Warning { message: format!("the broker refused a frame: {message} ({code})") });
                        }
                        Ok(BrokerFrame::Closed { code, message }) => {
                            if code == "route_released"
                                && let Some((s, _)) = stopping
                            {
                                forget_route(&cx.cfg);
                                (cx.emit)(Event::Released);
                                return SessionEnd::Stopped(s);
                            }
                            return SessionEnd::Closed { code, message };
                        }
                        Ok(_) => {}
                        Err(_) => return SessionEnd::Lost("the broker sent an unreadable frame".into()),
                    },
                    Message::Binary(data) => {
                        if let Some((id, payload)) = decode_data(&data) {
                            let over = {
                                let mut map = lock(streams);
                                match map.get_mut(&id) {
                                    Some(s) => {
                                        s.received += payload.len() as u64;
                                        if s.received > limits.max_request_body {
                                            true
                                        } else {
                                            if let Some(b) = &s.body {
                                                let _ = b.send(data.slice(9..));
                                            }
                                            false
                                        }
                                    }
                                    None => false,
                                }
                            };
                            if over {
                                if let Some(t) = lock(streams).remove(&id).and_then(|s| s.task) {
                                    t.abort();
                                }
                                send_frame(tx, &HostFrame::Fail { id, code: "request_too_large".into(), message: "the request body is over the limit".into() });
                            }
                        }
                    }
                    Message::Close(_) => {
                        if let (Some((s, _)), Some(_)) = (stopping, released_at) {
                            return SessionEnd::Stopped(s);
                        }
                        return SessionEnd::Lost("the broker closed the connection".into());
                    }
                    _ => {}
                }
            }
            _ = hb.tick() => {
                if last_heard.elapsed() > silent_after {
                    return SessionEnd::Lost("the broker went silent".into());
                }
                send_frame(tx, &HostFrame::Heartbeat { route: route.clone() });
            }
            s = stopped(stop), if stopping.is_none() => {
                // Let answers in flight finish: a closing room's last waits carry the news.
                let grace = match s {
                    Stop::RoomClosed => Duration::from_secs(5),
                    Stop::Signal => Duration::from_secs(1),
                };
                stopping = Some((s, Instant::now() + grace));
            }
            _ = poll.tick(), if stopping.is_some() => {
                let Some((s, deadline)) = stopping else { continue };
                match released_at {
                    None => {
                        if lock(streams).is_empty() || Instant::now() >= deadline {
                            send_frame(tx, &HostFrame::Release { route: route.clone() });
                            released_at = Some(Instant::now());
                        }
                    }
                    Some(at) if at.elapsed() > Duration::from_secs(3) => return SessionEnd::Stopped(s),
                    Some(_) => {}
                }
            }
        }
    }
}

/// Points the room at the broker URL, retrying until the local server accepts.
fn spawn_url_setter(cx: &Cx, url: String) {
    let urls = cx.urls.clone();
    let emit = cx.emit.clone();
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        let mut warned = false;
        loop {
            match urls.set(&url).await {
                Ok(true) => return emit(Event::PublicUrlSet { url }),
                Ok(false) => return,
                Err(e) => {
                    if !warned {
                        emit(Event::Warning {
                            message: format!(
                                "could not set the room's public URL yet ({e}); retrying"
                            ),
                        });
                        warned = true;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
    if let Some(old) = lock(&cx.url_task).replace(task.abort_handle()) {
        old.abort();
    }
}

#[allow(clippy::too_many_arguments)]
fn start_request(
    cx: &Cx,
    tx: &mpsc::UnboundedSender<Message>,
    streams: &Streams,
    id: u64,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    max_response: u64,
) {
    let (body_tx, body_rx) = mpsc::unbounded_channel();
    let window = Arc::new(Semaphore::new(INITIAL_WINDOW as usize));
    lock(streams).insert(
        id,
        Stream {
            body: Some(body_tx),
            received: 0,
            window: window.clone(),
            task: None,
        },
    );
    let target = cx.target.clone();
    let tx2 = tx.clone();
    let streams2 = streams.clone();
    let handle = tokio::spawn(async move {
        let req = LocalRequest {
            method,
            path,
            headers,
        };
        if let Err((code, message)) =
            forward(&target, id, req, body_rx, &window, &tx2, max_response).await
        {
            send_frame(
                &tx2,
                &HostFrame::Fail {
                    id,
                    code: code.into(),
                    message,
                },
            );
        }
        lock(&streams2).remove(&id);
    });
    if let Some(s) = lock(streams).get_mut(&id) {
        s.task = Some(handle.abort_handle());
    }
}

struct LocalRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// Aborts a task when dropped (the local connection of a cancelled request).
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the room server may take to answer (a held `/wait` is 25 s).
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

type Failure = (&'static str, String);

fn unreachable(e: impl std::fmt::Display) -> Failure {
    (
        "target_unreachable",
        format!("the room server did not answer: {e}"),
    )
}

/// Sends one request to the room server and streams its answer back.
async fn forward(
    target: &Target,
    id: u64,
    req: LocalRequest,
    body_rx: mpsc::UnboundedReceiver<Bytes>,
    window: &Semaphore,
    tx: &mpsc::UnboundedSender<Message>,
    max_response: u64,
) -> Result<(), Failure> {
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| ("bad_request", "an unknown method".to_string()))?;
    if !req.path.starts_with('/') {
        return Err(("bad_request", "a path must start with /".into()));
    }
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(&target.authority),
    )
    .await
    .map_err(|_| unreachable("connect timed out"))?
    .map_err(unreachable)?;
    let _ = stream.set_nodelay(true);
    type LocalBody = Either<
        Empty<Bytes>,
        StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>,
    >;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, LocalBody>(TokioIo::new(stream))
            .await
            .map_err(unreachable)?;
    let _conn = AbortOnDrop(tokio::spawn(conn).abort_handle());
    let has_length = req
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    let bodyless = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let body: LocalBody = if bodyless && !has_length {
        Either::Left(Empty::new())
    } else {
        let s = futures_util::stream::unfold(body_rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        Either::Right(StreamBody::new(s.boxed()))
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(req.path.as_str())
        .header(header::HOST, target.authority.as_str());
    for (k, v) in &req.headers {
        if forwards_request_header(k) {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    let request = builder
        .body(body)
        .map_err(|e| ("bad_request", format!("an unusable request: {e}")))?;
    let resp = tokio::time::timeout(LOCAL_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| {
            (
                "target_timeout",
                "the room server did not answer in time".to_string(),
            )
        })?
        .map_err(unreachable)?;
    let (parts, mut body) = resp.into_parts();
    let headers = header_pairs(&parts.headers, forwards_response_header);
    send_frame(
        tx,
        &HostFrame::Response {
            id,
            status: parts.status.as_u16(),
            headers,
        },
    );
    let mut total = 0u64;
    loop {
        let frame = match tokio::time::timeout(LOCAL_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err((
                    "target_timeout",
                    "the room server stalled mid-answer".into(),
                ));
            }
            Ok(None) => break,
            Ok(Some(f)) => f.map_err(unreachable)?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > max_response {
            return Err((
                "response_too_large",
                "the answer is over the broker's limit".into(),
            ));
        }
        for chunk in data.chunks(CHUNK_BYTES) {
            window
                .acquire_many(chunk.len() as u32)
                .await
                .map_err(|_| ("cancelled", String::new()))?
                .forget();
            if tx.send(Message::binary(encode_data(id, chunk))).is_err() {
                return Ok(());
            }
        }
    }
    send_frame(tx, &HostFrame::End { id });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_become_tunnel_urls() {
        assert_eq!(
            tunnel_url("https://b.example/").unwrap(),
            "wss://b.example/_agentgather/tunnel"
        );
        assert_eq!(
            tunnel_url("http://127.0.0.1:8799").unwrap(),
            "ws://127.0.0.1:8799/_agentgather/tunnel"
        );
        assert!(tunnel_url("ftp://x").is_err());
    }

    #[test]
    fn targets_must_be_loopback() {
        assert_eq!(
            parse_target("http://127.0.0.1:8787").unwrap().authority,
            "127.0.0.1:8787"
        );
        assert_eq!(
            parse_target("http://localhost/").unwrap().authority,
            "localhost:80"
        );
        assert!(parse_target("http://10.0.0.1:8787").is_err());
        assert!(parse_target("https://127.0.0.1:8787").is_err());
    }

    #[test]
    fn the_tls_connector_builds_with_ring() {
        assert!(matches!(tls_connector(), Ok(Connector::Rustls(_))));
    }

    #[test]
    fn events_are_tagged_json() {
        let v = serde_json::to_value(Event::Registered {
            public_url: "https://b/x".into(),
            reclaimed: false,
            expires_at: "t".into(),
        })
        .unwrap();
        assert_eq!(v["event"], "registered");
        assert_eq!(v["public_url"], "https://b/x");
    }
}
