//! The wait hub. A held `/wait` sleeps on a `watch` channel that the room bumps on every
//! change (message, brief, close), so waking a thousand waiters is one send and no file
//! is read again. Each participant holds at most one wait: a newer one supersedes the
//! older, which answers at once as a heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

#[derive(Default)]
struct Held {
    generation: u64,
    superseded: Arc<Notify>,
}

pub struct WaitHub {
    changed: watch::Sender<u64>,
    held: Mutex<HashMap<usize, Held>>,
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
        if held
            .get(&self.who)
            .is_some_and(|h| h.generation == self.generation)
        {
            held.remove(&self.who);
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

    /// Registers `who`'s new held wait, superseding any older one.
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
        let old = self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(
            who,
            Held {
                generation,
                superseded: superseded.clone(),
            },
        );
        if let Some(old) = old {
            old.superseded.notify_one();
        }
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

    /// How many waits are held.
    pub fn held_count(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn newer_wait_supersedes_older() {
        let hub = WaitHub::default();
        let first = hub.hold(7);
        assert!(hub.is_holding(7));
        let second = hub.hold(7);
        tokio::time::timeout(Duration::from_secs(1), first.superseded.notified())
            .await
            .unwrap();
        drop(first);
        assert!(
            hub.is_holding(7),
            "dropping the superseded wait keeps the newer one"
        );
        drop(second);
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
