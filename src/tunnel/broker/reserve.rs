//! Slugs stay reserved for the secret that held them until their route's lifetime ends,
//! across broker restarts. The table of a running broker holds its routes (live, waiting
//! for their host, or ended but reserved); this file keeps, between processes, which slugs
//! were held and until when, so a fresh process refuses those slugs to anyone but their
//! holder (who proves it with the route secret) and serves every other slug at once.
//!
//! The file names a slug only by its MAC under the route key, never in clear.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::route::Route;
use super::secrets::hmac_sha256;
use crate::protocol::timefmt::now_ms;
use crate::tunnel::lock;

#[derive(Serialize, Deserialize, Default)]
pub(super) struct Saved {
    /// Slug MAC (hex) → the end of its route's lifetime (ms since the epoch).
    pub reserved: HashMap<String, i64>,
}

pub(super) struct Reservations {
    file: Option<PathBuf>,
    key: Option<Vec<u8>>,
    /// Held by an earlier process and not yet taken back.
    earlier: Mutex<HashMap<String, i64>>,
    /// Whether the file existed at start (else an earlier process left no record).
    pub loaded: bool,
    dirty: AtomicBool,
    /// What each peer instance (`--peer`) last said it holds, kept after it stops
    /// answering: a dead instance's slugs stay refused to newcomers here.
    peers: Mutex<HashMap<String, HashMap<String, i64>>>,
    /// Slugs a peer pushed when it took them (slug MAC → end of lifetime), kept until
    /// they end or a peer's list names them: a peer that dies before it is next asked
    /// is known to hold them all the same.
    pushed_by_peers: Mutex<HashMap<String, i64>>,
}

/// The most pushed reservations kept at once (each names a route of a peer).
const MAX_PUSHED: usize = 100_000;

impl Reservations {
    /// Reads what an earlier process left (expired entries are dropped).
    pub fn load(file: Option<PathBuf>, key: Option<Vec<u8>>) -> Reservations {
        let (file, key) = match (file, key) {
            (Some(f), Some(k)) => (Some(f), Some(k)),
            _ => (None, None),
        };
        let saved = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .map(|bytes| serde_json::from_slice::<Saved>(&bytes).unwrap_or_default());
        let loaded = saved.is_some();
        let now = now_ms();
        let mut earlier = saved.unwrap_or_default().reserved;
        earlier.retain(|_, exp| *exp > now);
        Reservations {
            file,
            key,
            earlier: Mutex::new(earlier),
            loaded,
            dirty: AtomicBool::new(false),
            peers: Mutex::default(),
            pushed_by_peers: Mutex::default(),
        }
    }

    /// The name of `slug` in every list and push: its MAC under the route key.
    pub fn mac(&self, slug: &str) -> Option<String> {
        let key = self.key.as_deref()?;
        let mac = hmac_sha256(key, &[b"agentgather slug v1\0", slug.as_bytes()]);
        Some(crate::protocol::token::to_hex(&mac[..16]))
    }

    /// Whether an earlier process, or a peer instance as last heard, held `slug` for a
    /// route that has not expired.
    pub fn held_before(&self, slug: &str) -> bool {
        let Some(mac) = self.mac(slug) else {
            return false;
        };
        let now = now_ms();
        let due = |exp: Option<&i64>| exp.is_some_and(|exp| *exp > now);
        due(lock(&self.earlier).get(&mac))
            || lock(&self.peers).values().any(|held| due(held.get(&mac)))
            || due(lock(&self.pushed_by_peers).get(&mac))
    }

    /// Keeps a reservation a peer pushed (already authenticated); `false` when the
    /// table of pushed reservations is full.
    pub fn pushed(&self, slug_mac: String, expires_at_ms: i64) -> bool {
        let now = now_ms();
        if expires_at_ms <= now {
            return true;
        }
        let mut pushed = lock(&self.pushed_by_peers);
        if pushed.len() >= MAX_PUSHED && !pushed.contains_key(&slug_mac) {
            pushed.retain(|_, exp| *exp > now);
            if pushed.len() >= MAX_PUSHED {
                return false;
            }
        }
        let exp = pushed.entry(slug_mac).or_insert(expires_at_ms);
        *exp = (*exp).max(expires_at_ms);
        true
    }

    /// Until when a peer's push keeps the slug whose MAC is `slug_mac`.
    #[cfg(test)]
    pub fn pushed_until(&self, slug_mac: &str) -> Option<i64> {
        lock(&self.pushed_by_peers).get(slug_mac).copied()
    }

    /// Records what `peer` holds now (its `/reservations` answer).
    pub fn heard_from(&self, peer: &str, held: Saved) {
        let now = now_ms();
        let mut reserved = held.reserved;
        reserved.retain(|_, exp| *exp > now);
        // What a list names, it speaks for from now on (and keeps after its peer dies);
        // a push it does not name yet may be newer than the question it answers.
        lock(&self.pushed_by_peers).retain(|mac, exp| *exp > now && !reserved.contains_key(mac));
        lock(&self.peers).insert(peer.to_string(), reserved);
    }

    /// `slug` is in this process's table now.
    pub fn taken_back(&self, slug: &str) {
        if let Some(mac) = self.mac(slug) {
            lock(&self.earlier).remove(&mac);
        }
        self.changed();
    }

    pub fn changed(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Writes the reservations (this table's routes and the earlier ones still due back)
    /// if anything changed since the last write.
    pub fn save(&self, routes: &[Arc<Route>]) {
        let Some(file) = &self.file else { return };
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return;
        }
        let written = serde_json::to_vec(&self.held(routes))
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::tunnel::write_private(file, &bytes));
        if let Err(e) = written {
            self.changed();
            tracing::warn!(error = %e, "could not keep the reserved slugs");
        }
    }

    /// The slugs this process holds (its table's routes and the earlier ones still due
    /// back), by MAC, with the end of each route's lifetime.
    pub fn held(&self, routes: &[Arc<Route>]) -> Saved {
        let now = now_ms();
        let mut reserved: HashMap<String, i64> = lock(&self.earlier)
            .iter()
            .filter(|(_, exp)| **exp > now)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for r in routes {
            if let Some(mac) = self.mac(&r.slug) {
                reserved.insert(mac, r.expires_at_ms);
            }
        }
        Saved { reserved }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_survive_a_restart_under_the_same_key() {
        let dir = std::env::temp_dir().join(format!("ag-reserve-{}", std::process::id()));
        let file = dir.join("routes");
        let r = Reservations::load(Some(file.clone()), Some(b"key".to_vec()));
        assert!(!r.loaded && !r.held_before("demo"));
        let mac = r.mac("demo").unwrap();
        assert!(!mac.contains("demo"));
        r.earlier.lock().unwrap().insert(mac, now_ms() + 60_000);
        r.changed();
        r.save(&[]);
        let again = Reservations::load(Some(file.clone()), Some(b"key".to_vec()));
        assert!(again.loaded && again.held_before("demo") && !again.held_before("other"));
        let other_key = Reservations::load(Some(file), Some(b"other".to_vec()));
        assert!(!other_key.held_before("demo"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pushed_slug_is_held_until_a_list_names_it_or_it_ends() {
        // Never saved here: the file only gives the reservations their key.
        let file = std::env::temp_dir().join(format!("ag-pushed-{}", std::process::id()));
        let r = Reservations::load(Some(file), Some(b"key".to_vec()));
        let mac = r.mac("demo").unwrap();
        assert!(r.pushed(mac.clone(), now_ms() + 60_000));
        assert!(r.held_before("demo") && !r.held_before("other"));
        // An answer that does not name it (asked before the push) does not erase it.
        r.heard_from("peer", Saved::default());
        assert!(r.held_before("demo"));
        // A list that names it speaks for it from then on.
        let mut named = Saved::default();
        named.reserved.insert(mac.clone(), now_ms() + 60_000);
        r.heard_from("peer", named);
        assert!(r.pushed_by_peers.lock().unwrap().is_empty());
        assert!(r.held_before("demo"));
        r.heard_from("peer", Saved::default());
        assert!(!r.held_before("demo"));
        // An ended route is not kept.
        assert!(r.pushed(mac, now_ms() - 1));
        assert!(!r.held_before("demo"));
    }
}
