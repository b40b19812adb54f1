//! The wait hub. A held `/wait` sleeps on a `watch` channel that the room bumps on every
//! change (message, brief, close), so waking a thousand waiters is one send and no file
//! is read again.
//!
//! A participant may hold a few waits at once ([`WAITS_PER_PARTICIPANT`]): the documented
//! set-ups run two faces of one participant side by side (a wake runner and `attend`, or
//! the MCP adapter's own wait and a model's `room_wait`). With one wait each, every new
//! wait superseded the other face's, which asked again at once, and the two took turns in
//! a tight loop. Past the bound, a new wait supersedes the participant's oldest, which
//! answers at once as a heartbeat, so one participant still holds a bounded number.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

/// How many waits one participant may hold at once.
pub const WAITS_PER_PARTICIPANT: usize = 4;

struct Held {
    generation: u64,
    superseded: Arc<Notify>,
}

pub struct WaitHub {
    changed: watch::Sender<u64>,
    /// Each participant's held waits, oldest first.
    held: Mutex<HashMap<usize, VecDeque<Held>>>,
    next_generation: Mutex<u64>,
}

/// A registered held wait; unregisters itself when dropped (answered or disconnected).
pub struct HeldWait<'a> {
    hub: &'a WaitHub,
    who: usize,
    generation: u64,
    pub superseded: Arc<Notify>,
}

impl Drop for HeldWait<'_> {
    fn drop(&mut self) {
        let mut held = self.hub.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waits) = held.get_mut(&self.who) {
            waits.retain(|h| h.generation != self.generation);
            if waits.is_empty() {
                held.remove(&self.who);
            }
        }
    }
}

impl Default for WaitHub {
    fn default() -> Self {
        WaitHub {
            changed: watch::channel(0).0,
            held: Mutex::default(),
            next_generation: Mutex::new(0),
        }
    }
}

impl WaitHub {
    /// Wakes every held wait to look again.
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every later [`Self::notify`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Registers `who`'s new held wait; past [`WAITS_PER_PARTICIPANT`] it supersedes
    /// their oldest.
    pub fn hold(&self, who: usize) -> HeldWait<'_> {
        let generation = {
            let mut g = self
                .next_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *g += 1;
            *g
        };
        let superseded = Arc::new(Notify::new());
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let waits = held.entry(who).or_default();
        if waits.len() >= WAITS_PER_PARTICIPANT
            && let Some(oldest) = waits.pop_front()
        {
            oldest.superseded.notify_one();
        }
        waits.push_back(Held {
            generation,
            superseded: superseded.clone(),
        });
        HeldWait {
            hub: self,
            who,
            generation,
            superseded,
        }
    }

    /// Whether `who` holds a wait right now.
    pub fn is_holding(&self, who: usize) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&who)
    }

    /// How many participants hold a wait.
    pub fn held_count(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn two_faces_hold_side_by_side_and_a_wait_past_the_bound_supersedes_the_oldest() {
        let hub = WaitHub::default();
        let first = hub.hold(7);
        assert!(hub.is_holding(7));
        let second = hub.hold(7);
        // Two faces of one participant: neither is superseded.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), first.superseded.notified())
                .await
                .is_err()
        );
        let more: Vec<_> = (2..WAITS_PER_PARTICIPANT).map(|_| hub.hold(7)).collect();
        let past = hub.hold(7);
        tokio::time::timeout(Duration::from_secs(1), first.superseded.notified())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), second.superseded.notified())
                .await
                .is_err(),
            "only the oldest is superseded"
        );
        drop(first);
        assert!(hub.is_holding(7), "the others still hold");
        assert_eq!(hub.held_count(), 1);
        drop((second, more, past));
        assert!(!hub.is_holding(7));
    }

    #[tokio::test]
    async fn notify_wakes_subscribers() {
        let hub = WaitHub::default();
        let mut rx = hub.subscribe();
        hub.notify();
        tokio::time::timeout(Duration::from_secs(1), rx.changed())
            .await
            .unwrap()
            .unwrap();
    }
}
