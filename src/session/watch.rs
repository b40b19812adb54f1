//! `watch --timeout D [--concerning]` (SPEC §10): waiting for the next real event. A
//! turn-limited agent cannot run `attend`, and one `/wait` turn ends on a heartbeat every
//! 25 s, so agents wrote shell loops around `watch`; this is that loop, once, with the
//! same cursor rule: heartbeats (and your own posts, which `/wait` skips) never end it.

use std::time::{Duration, Instant};

use super::{Backoff, Session, SessionError, is_transient};
use crate::protocol::WAIT_HOLD_MS;
use crate::protocol::wire::WaitAnswer;

/// At most this many messages are gathered while waiting for one that concerns the
/// caller; past it the batch is handed over anyway (the cursor moves past all of it).
const GATHER_CAP: usize = 1_000;

impl Session {
    /// Follows `/wait` from `since` until messages from others arrive (with
    /// `concerning`: until one of them concerns you), the room closes, you are removed,
    /// or `timeout` passes. Everything delivered on the way is in the answer, so moving
    /// the cursor to its `next_since_id` skips nothing unseen.
    pub fn watch_for(
        &self,
        since: u64,
        timeout: Duration,
        concerning: bool,
    ) -> Result<WaitAnswer, SessionError> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut gathered: Option<WaitAnswer> = None;
        let mut since = since;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let hold = (left.as_millis() as u64).clamp(1, WAIT_HOLD_MS);
            let w = match self.wait(since, Some(hold)) {
                Ok(w) => w,
                Err(e) if is_transient(&e) && !left.is_zero() => {
                    std::thread::sleep(backoff.next_delay().min(left));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            backoff.reset();
            since = w.next_since_id;
            let w = match gathered.take() {
                None => w,
                Some(mut g) => {
                    g.messages.extend(w.messages);
                    g.mentioned |= w.mentioned;
                    g.concerns_you |= w.concerns_you;
                    WaitAnswer {
                        messages: g.messages,
                        mentioned: g.mentioned,
                        concerns_you: g.concerns_you,
                        ..w
                    }
                }
            };
            let arrived = if concerning {
                w.concerns_you || w.messages.len() >= GATHER_CAP
            } else {
                !w.messages.is_empty()
            };
            if arrived || !w.keep_waiting || Instant::now() >= deadline {
                let heartbeat = w.messages.is_empty() && w.keep_waiting;
                return Ok(WaitAnswer { heartbeat, ..w });
            }
            gathered = Some(w);
        }
    }
}
