//! The state every request shares. Its own file so that the endpoints (which read it)
//! and `mod.rs` (which builds it and serves them) never import each other.

use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use tokio::sync::watch;

use super::durability::GroupCommit;
use super::http;
use super::hub::WaitHub;
use super::pages::PageReads;
use crate::protocol::ApiError;
use crate::protocol::url::origin_of;
use crate::store::Room;

/// Shared by every request.
pub struct AppState {
    pub(super) room: Mutex<Room>,
    pub hub: WaitHub,
    /// Each participant's pages in flight.
    pub(super) pages: PageReads,
    pub(super) public_url: RwLock<String>,
    pub(super) local_origin: String,
    pub(super) allow_remote: bool,
    pub(super) shutdown: watch::Sender<bool>,
    /// Present with `--fsync batch`: posts wait for a covering sync before their 201.
    pub(super) group_commit: Option<GroupCommit>,
    pub(super) body_limit: usize,
    pub(super) body_timeout: Duration,
}

impl AppState {
    /// Locks the room. A poisoned lock (a panic mid-request) still yields the room: every
    /// mutation writes its files before it changes memory that others rely on.
    pub fn room(&self) -> MutexGuard<'_, Room> {
        self.room.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_public_url(&self, url: &str) {
        *self.public_url.write().unwrap_or_else(|p| p.into_inner()) =
            url.trim_end_matches('/').to_string();
    }

    /// The origins a same-origin write may come from.
    pub(super) fn allowed_origins(&self) -> Vec<String> {
        let mut v = vec![self.local_origin.clone()];
        if let Some(o) = origin_of(&self.public_url()) {
            v.push(o);
        }
        v
    }

    /// Reads a request's JSON body within the configured size and time limits.
    pub async fn read_body(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<serde_json::Value, ApiError> {
        http::read_json(headers, body, self.body_limit, self.body_timeout).await
    }

    /// Reads a request's body as it came, within the same limits.
    pub async fn read_bytes(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        http::read_bytes(headers, body, self.body_limit, self.body_timeout).await
    }

    pub(super) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
