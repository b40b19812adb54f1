//! `tunnel run`: the host half of a room link (the relay). It keeps one outbound
//! WebSocket to a broker (no inbound port needed), registers a slug, relays each request
//! to the local room server as an ordinary loopback request, and points the room's public
//! URL at the broker so new Attend Cards, `browser_url`s and `/wait`'s `next_cmd` use it.
//!
//! Why it is built like this:
//! - Every request runs in its own task ([`forward`]), so a held `/wait` (up to 25 s)
//!   never delays a post or an asset; answers stream back in chunks under the broker's
//!   credit window.
//! - Only the headers a room needs cross ([`super::protocol::FORWARDED_REQUEST_HEADERS`]),
//!   and `Host` is always the loopback target, so the room server's exposure rules hold.
//! - Brokers restart and networks blip: the relay reconnects with capped exponential
//!   backoff and reclaims its slug with the route secret (kept in the home, 0600, so a
//!   restarted relay can reclaim too); after a broker restart it registers afresh.
//! - It learns of the room closing from the room server it already talks to
//!   (`GET /status` with the host token, [`room`]), never from the room's files.
//! - It ends cleanly: on SIGINT/SIGTERM or when the room closes it lets answers in flight
//!   finish, releases the route, and sets the room's public URL back to what it was.

mod forward;
mod room;
mod session;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tokio_tungstenite::Connector;

use super::TunnelError;
use super::protocol::{Code, RouteCredentials, TUNNEL_PATH, validate_slug};
use crate::tunnel::lock;
use forward::{Target, parse_target};
use room::{RoomServer, Stop, watch_stop};
use session::{SessionEnd, session};

/// How `tunnel run` runs.
#[derive(Clone)]
pub struct TunnelConfig {
    /// The broker's base URL (`https://broker.example`).
    pub broker: String,
    pub slug: String,
    /// The local room server (`http://127.0.0.1:8787`).
    pub target: String,
    /// The host's token: to set the room's public URL and to learn that the room closed.
    pub host_token: String,
    /// The operator key, when the broker asks for one.
    pub host_key: Option<String>,
    /// Where the route credentials are kept between runs (0600).
    pub state_file: Option<PathBuf>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How often to ask, through the broker's balancer, whether the instance the slug maps
    /// to is the one holding the route (None: never; a single broker needs no check).
    pub route_check: Option<Duration>,
}

/// What the relay reports as it goes (printed as text, or JSON lines with `--json`).
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

/// Why the relay stopped without an error.
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

/// What a run shares across its sessions.
struct Cx {
    cfg: TunnelConfig,
    ws_url: String,
    connector: Connector,
    target: Arc<Target>,
    room: Arc<RoomServer>,
    emit: Emit,
    /// Public URLs the broker gave us, to recognise them when restoring.
    broker_urls: Mutex<Vec<String>>,
    /// The task pointing the room at the broker URL, if still at work.
    url_task: Mutex<Option<AbortHandle>>,
}

/// What the run loop does after a session ended without stopping the run.
enum Next {
    Retry(String),
    Finish(Result<Stop, TunnelError>),
}

/// Decides what a session's end means: retry (with why), or stop the run.
async fn after_session(
    cx: &Cx,
    end: SessionEnd,
    creds: &mut Option<RouteCredentials>,
    backoff: &mut Duration,
    ever_registered: bool,
) -> Next {
    match end {
        SessionEnd::Stopped(s) => Next::Finish(Ok(s)),
        SessionEnd::Refused {
            status,
            code,
            message,
        } => match Code::parse(&code) {
            Some(Code::RouteAuthFailed) if creds.is_some() => {
                // Saved credentials of a route that is no longer ours: start afresh.
                *creds = None;
                forget_route(&cx.cfg);
                *backoff = Duration::ZERO;
                Next::Retry(format!("{message} ({code})"))
            }
            Some(Code::RouteSlugTaken) if ever_registered => {
                // New cards must not advertise a link that now leads elsewhere.
                restore_public_url(cx).await;
                Next::Retry(format!(
                    "{message} ({code}); someone took the slug while we were away"
                ))
            }
            Some(
                Code::IpRateLimited
                | Code::BrokerFull
                | Code::BrokerDraining
                | Code::BrokerStarting
                | Code::RegisterTimeout,
            ) => Next::Retry(format!("{message} ({code})")),
            _ => Next::Finish(Err(TunnelError::Refused {
                status,
                code,
                message,
            })),
        },
        SessionEnd::Closed { code, message } => match Code::parse(&code) {
            Some(Code::BrokerShutdown) => Next::Retry(format!("{message} ({code})")),
            // The slug stays reserved for our secret until the route's lifetime ends.
            Some(Code::RouteIdleExpired) => {
                Next::Retry(format!("{message} ({code}); reclaiming it"))
            }
            _ => Next::Finish(Err(TunnelError::RouteEnded { code, message })),
        },
        SessionEnd::Lost(reason) => Next::Retry(reason),
    }
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
    let room = Arc::new(RoomServer::new(&cfg.target, &cfg.host_token));
    room.remember_original().await;
    let mut stop = watch_stop(room.clone());
    let mut creds = cfg
        .state_file
        .as_deref()
        .and_then(load_route)
        .filter(|s| s.broker == ws_url && s.slug == cfg.slug)
        .map(|s| s.route);
    let cx = Cx {
        ws_url,
        connector,
        target: Arc::new(target),
        room,
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
        let reason = match after_session(&cx, end, &mut creds, &mut backoff, ever_registered).await
        {
            Next::Retry(reason) => reason,
            Next::Finish(r) => break r,
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
    match cx.room.restore(&broker_urls).await {
        Some(Ok(url)) => (cx.emit)(Event::PublicUrlRestored { url }),
        Some(Err(e)) => (cx.emit)(Event::Warning {
            message: format!("could not set the room's public URL back: {e}"),
        }),
        None => {}
    }
}

fn load_route(path: &Path) -> Option<SavedRoute> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn save_route(cfg: &TunnelConfig, ws_url: &str, route: &RouteCredentials) {
    let Some(f) = &cfg.state_file else { return };
    let saved = SavedRoute {
        broker: ws_url.to_string(),
        slug: cfg.slug.clone(),
        route: route.clone(),
    };
    let written = serde_json::to_vec(&saved)
        .map_err(std::io::Error::other)
        .and_then(|bytes| super::write_private(f, &bytes));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not keep the route credentials");
    }
}

fn forget_route(cfg: &TunnelConfig) {
    if let Some(f) = &cfg.state_file {
        let _ = std::fs::remove_file(f);
    }
}

/// Points the room at the broker URL, retrying until the local server accepts.
fn spawn_url_setter(cx: &Cx, url: String) {
    let room = cx.room.clone();
    let emit = cx.emit.clone();
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        let mut warned = false;
        loop {
            match room.set(&url).await {
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
