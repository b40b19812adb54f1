//! The host's own room server, as the tunnel talks to it over loopback HTTP with the
//! host token: it reads `GET /status` (the URL the room had, and whether the room has
//! closed) and points the room's public URL at the broker with `POST /public-url`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::client::{Client, ClientError};
use crate::protocol::RoomStatus;
use crate::protocol::wire::StatusAnswer;
use crate::tunnel::lock;

/// The room server and the room's public URL: what it was, and what we set it to.
pub(super) struct RoomServer {
    pub target_url: String,
    token: String,
    original: Mutex<Option<String>>,
    current: Mutex<Option<String>>,
}

impl RoomServer {
    pub fn new(target_url: &str, token: &str) -> RoomServer {
        RoomServer {
            target_url: target_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            original: Mutex::new(None),
            current: Mutex::new(None),
        }
    }

    fn client(&self, timeout: Duration) -> Client {
        Client::new(&self.target_url, &self.token, timeout)
    }

    /// `GET /status` with the host token (blocking I/O, on the blocking pool).
    async fn status(self: &Arc<Self>, timeout: Duration) -> Result<StatusAnswer, String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.client(timeout).status())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e: ClientError| match e.code() {
                Some("room_closed") => "room_closed".to_string(),
                _ => e.to_string(),
            })
    }

    /// Whether the room server says the room is closed (`None`: it did not answer).
    async fn closed(self: &Arc<Self>) -> Option<bool> {
        match self.status(Duration::from_secs(5)).await {
            Ok(s) => Some(s.room_status == RoomStatus::Closed),
            Err(code) if code == "room_closed" => Some(true),
            Err(_) => None,
        }
    }

    pub async fn remember_original(self: &Arc<Self>) {
        let url = self
            .status(Duration::from_secs(10))
            .await
            .ok()
            .map(|s| s.url);
        *lock(&self.original) = url;
    }

    async fn post(self: &Arc<Self>, url: &str) -> Result<(), String> {
        let me = self.clone();
        let url = url.to_string();
        let r = tokio::task::spawn_blocking(move || {
            me.client(Duration::from_secs(10)).set_public_url(&url)
        })
        .await
        .map_err(|e| e.to_string())?;
        r.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Points the room at `url`; `false` when it already was.
    pub async fn set(self: &Arc<Self>, url: &str) -> Result<bool, String> {
        if lock(&self.current).as_deref() == Some(url) {
            return Ok(false);
        }
        self.post(url).await?;
        *lock(&self.current) = Some(url.to_string());
        Ok(true)
    }

    /// Puts back the URL the room had, unless it was a broker URL (a previous run's).
    pub async fn restore(
        self: &Arc<Self>,
        broker_urls: &[String],
    ) -> Option<Result<String, String>> {
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

/// Why a run stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Signal,
    RoomClosed,
}

/// How often the room server is asked whether the room has closed.
const CLOSE_POLL: Duration = Duration::from_millis(500);

/// Watches for SIGINT/SIGTERM and for the room server reporting the room closed.
pub(super) fn watch_stop(room: Arc<RoomServer>) -> watch::Receiver<Option<Stop>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let signal = crate::net::shutdown_signal();
        tokio::pin!(signal);
        let mut tick = tokio::time::interval(CLOSE_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut signal => break tx.send_replace(Some(Stop::Signal)),
                _ = tick.tick() => {
                    if room.closed().await == Some(true) {
                        break tx.send_replace(Some(Stop::RoomClosed));
                    }
                }
            }
        }
    });
    rx
}

/// Resolves when a stop was asked for, with its reason.
pub(super) async fn stopped(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(v) => (*v).unwrap_or(Stop::Signal),
        Err(_) => Stop::Signal,
    }
}
