//! `room serve`: one process owns one room. It holds the room's lock for its lifetime,
//! keeps the [`Room`] engine behind a mutex (never held across an await), and answers
//! HTTP with axum on a hyper accept loop of our own, so header timeouts, a connection
//! cap and a graceful drain are ours to set (hostile clients are expected).

mod api;
mod approvals;
mod claims;
mod durability;
mod http;
pub mod hub;
mod pages;
mod plain;
mod reach;
mod router;
mod routes;
mod send_timeout;
mod state;
mod topics;
mod wait;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};

use crate::protocol::timefmt::{now_ms, parse_ms};
use crate::protocol::{ApiError, DEFAULT_PORT, Limits};
use crate::store::{FsyncMode, Home, LockInfo, Room, RoomOptions, StoreError};
use hub::WaitHub;
use state::AppState;

// Kept for the tunnel's host side until it moves to `protocol::url` (its own branch).
use crate::protocol::url::RoomUrl;
pub use crate::protocol::url::is_loopback_host;

/// How `room serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub home: Home,
    pub room: String,
    pub host: IpAddr,
    pub port: u16,
    /// The public URL participants use; default: the room's stored URL, else the local one.
    pub url: Option<String>,
    pub allow_remote: bool,
    pub limits: Limits,
    pub fsync: FsyncMode,
    pub max_connections: usize,
    /// How long a client may take to send its request headers (slow-loris guard).
    pub header_timeout: Duration,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// How long a write of an answer may wait for a client that does not read.
    pub send_timeout: Duration,
}

impl ServeConfig {
    pub fn new(home: Home, room: String) -> ServeConfig {
        ServeConfig {
            home,
            room,
            host: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            url: None,
            allow_remote: false,
            limits: Limits::default(),
            fsync: FsyncMode::default(),
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(15),
            send_timeout: send_timeout::SEND_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bind(#[from] crate::net::BindError),
    #[error("{0}")]
    Config(String),
}

fn check_config(cfg: &ServeConfig) -> Result<(), ServeError> {
    let url = cfg
        .url
        .as_deref()
        .map(RoomUrl::parse)
        .transpose()
        .map_err(|e| ServeError::Config(format!("--url: {e}")))?;
    if cfg.allow_remote {
        if url.is_none_or(|u| u.scheme() != "https") {
            return Err(ServeError::Config(
                "--allow-remote requires an https:// public --url (a TLS proxy in front of this server)".into(),
            ));
        }
    } else if !cfg.host.is_loopback() {
        return Err(ServeError::Config(format!(
            "--host {} is not loopback; remote access needs --allow-remote and an https:// --url",
            cfg.host
        )));
    }
    Ok(())
}

/// Serves the room until SIGINT/SIGTERM, then drains and exits cleanly.
pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    check_config(&cfg)?;
    ignore_file_size_signal();
    let opts = RoomOptions {
        limits: cfg.limits.clone(),
        fsync: cfg.fsync,
        purpose: "room serve".into(),
        addr: None,
    };
    let mut room = Room::open(&cfg.home, &cfg.room, &opts)?;
    if room.recovery.torn_bytes > 0 || room.recovery.skipped_lines > 0 {
        tracing::warn!(
            torn_bytes = room.recovery.torn_bytes,
            skipped_lines = room.recovery.skipped_lines,
            "recovered the message log: a torn final line was cut, unreadable lines are skipped"
        );
    }
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let (listener, local) = crate::net::bind(addr).await?;
    room.set_lock_info(&LockInfo {
        pid: std::process::id(),
        addr: Some(local.to_string()),
        purpose: "room serve".into(),
    })?;
    let local_url = format!("http://{local}");
    let public = match (&cfg.url, room.url()) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(u)) => match moved_loopback_url(u, local.port()) {
            Some(moved) => {
                eprintln!(
                    "agentgather: the room's URL was {u}; it is now {moved} (this server's port), so cards and next_cmd point here"
                );
                moved
            }
            None => u.trim_end_matches('/').to_string(),
        },
        (None, None) => local_url.clone(),
    };
    room.set_url(&public)?;
    let expires = room.meta.expires_at.as_deref().and_then(parse_ms);
    let room_id = room.id().to_string();
    let group_commit = match room.log.fsync_mode() {
        FsyncMode::Batch => Some(durability::GroupCommit::start(room.log.sync_handle()?, 0)),
        _ => None,
    };
    let state = Arc::new(AppState {
        room: Mutex::new(room),
        hub: WaitHub::default(),
        pages: pages::PageReads::default(),
        public_url: RwLock::new(public.clone()),
        local_origin: format!("http://{local}"),
        allow_remote: cfg.allow_remote,
        shutdown: watch::channel(false).0,
        group_commit,
        body_limit: cfg.limits.body_bytes,
        body_timeout: cfg.body_timeout,
    });
    tracing::info!(room = %room_id, local = %local_url, url = %public, "serving");
    eprintln!(
        "agentgather: serving room {room_id} at {local_url} (participants use {public}); ctrl-c stops"
    );
    if let Some(at) = expires {
        tokio::spawn(close_at_ttl(state.clone(), at));
    }
    tokio::spawn(flush_periodically(state.clone()));
    // Expiry is written here, once a second (reads of claims filter by the clock meanwhile).
    tokio::spawn(sweep_every_second(state.clone(), "claims", |room| {
        Ok(!room.expire_claims(now_ms())?.is_empty())
    }));
    tokio::spawn(sweep_every_second(
        state.clone(),
        "approvals",
        Room::expire_approvals,
    ));

    let app = router::router(state.clone());
    let connections = Arc::new(Semaphore::new(cfg.max_connections));
    let drain = crate::net::Drain::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .keep_alive(true);
    let stop = crate::net::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            (stream, _peer, permit) = crate::net::accept_capped(&listener, &connections) => {
                let svc = TowerToHyperService::new(app.clone());
                let io = TokioIo::new(send_timeout::SendTimeout::new(stream, cfg.send_timeout));
                let watch = drain.watch(permit);
                tokio::spawn(watch.serve(builder.serve_connection(io, svc), |c| c.graceful_shutdown()));
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    eprintln!("agentgather: stopping: answering held waits, flushing, releasing the room");
    state.shutdown.send_replace(true);
    state.hub.notify();
    drain.drain(Duration::from_secs(5)).await;
    let mut room = state.room();
    room.flush()?;
    Ok(())
}

/// SPEC §10: a stored `http://` loopback URL on another port than the one served is
/// moved to the served port (same host name and path), so cards and `next_cmd` point at
/// the server that answers; a public URL (a tunnel, a proxy) is never touched.
fn moved_loopback_url(stored: &str, served_port: u16) -> Option<String> {
    let u = RoomUrl::parse_any(stored).ok()?;
    if u.scheme() != "http" || !u.is_loopback() {
        return None;
    }
    let authority = u.authority();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse::<u16>().ok()?)
        }
        _ => (authority, 80),
    };
    if port == served_port {
        return None;
    }
    let path = &u.as_str()[u.origin().len()..];
    Some(format!("http://{host}:{served_port}{path}"))
}

/// A write past RLIMIT_FSIZE must fail with EFBIG (and become a 507), not kill us.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Closes the room when its TTL runs out, even if no request ever arrives.
async fn close_at_ttl(state: Arc<AppState>, expires_ms: i64) {
    let wait = (expires_ms - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let closed = state.room().close("its time to live ran out");
    match closed {
        Ok(_) => state.hub.notify(),
        Err(e) => tracing::error!(error = %e.message, "could not close the room at its TTL"),
    }
}

/// Once a second, has `expire` record in the log what has run out (`what`: claims whose
/// TTL passed, approvals whose time is up), and wakes the waiters when it did.
async fn sweep_every_second(
    state: Arc<AppState>,
    what: &'static str,
    expire: fn(&mut Room) -> Result<bool, ApiError>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let expired = expire(&mut state.room());
        match expired {
            Ok(true) => state.hub.notify(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e.message, "could not record the expiry of {what}"),
        }
    }
}

/// Persists last-seen times and read receipts every few seconds.
async fn flush_periodically(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(e) = state.room().flush() {
            tracing::warn!(error = %e, "could not save participants");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::moved_loopback_url;

    #[test]
    fn only_a_loopback_url_on_another_port_moves() {
        let m = |u: &str| moved_loopback_url(u, 9000);
        assert_eq!(
            m("http://127.0.0.1:8787").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            m("http://localhost:8787/r").as_deref(),
            Some("http://localhost:9000/r")
        );
        assert_eq!(m("http://[::1]").as_deref(), Some("http://[::1]:9000"));
        assert_eq!(m("http://127.0.0.1:9000"), None, "already right");
        assert_eq!(m("https://room.example.com"), None, "a public URL stays");
        assert_eq!(
            m("https://127.0.0.1:8443"),
            None,
            "https is someone's proxy"
        );
    }
}
