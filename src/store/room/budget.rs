//! The write budget: how often one participant may call each write endpoint in a minute.
//! Posts had their limit from the start; join, leave, profile, brief, attendance and
//! public-URL changes had none, and a loop of join/leave filled a room's log in a minute.
//! Invites and removals are the host's own bookkeeping and append nothing a participant
//! could abuse: a host scripting a room for a thousand agents invites them in one go, so
//! they stay unbudgeted. Windows run on the monotonic clock, so a wall-clock step cannot
//! lock anyone out or let anyone through.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::ApiError;

const WINDOW: Duration = Duration::from_secs(60);

/// The write endpoints under the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteKind {
    Join,
    Leave,
    Profile,
    Brief,
    Policy,
    PublicUrl,
    /// A wake runner's turn report (SPEC §8.2): a turn started...
    Wake,
    /// ...and how it ended (succeeded or failed), each report a rewrite of the roster.
    WakeResult,
    /// Making, renewing or releasing a claim (SPEC §13).
    Claim,
}

impl WriteKind {
    fn what(self) -> &'static str {
        match self {
            WriteKind::Join => "joins",
            WriteKind::Leave => "leaves",
            WriteKind::Profile => "profile changes",
            WriteKind::Brief => "brief changes",
            WriteKind::Policy => "attendance policy changes",
            WriteKind::PublicUrl => "public URL changes",
            WriteKind::Wake => "wake reports",
            WriteKind::WakeResult => "wake results",
            WriteKind::Claim => "claim changes",
        }
    }
}

/// Sliding one-minute windows per participant and endpoint.
#[derive(Debug, Default)]
pub struct WriteBudget {
    recent: HashMap<(usize, WriteKind), VecDeque<Instant>>,
}

/// How long until a window of `recent` calls frees a slot, at `now`.
pub fn retry_after(recent: &VecDeque<Instant>, now: Instant) -> Duration {
    recent.front().map_or(Duration::ZERO, |&t| {
        WINDOW.saturating_sub(now.duration_since(t))
    })
}

/// Drops the calls of `recent` older than a minute.
pub fn expire(recent: &mut VecDeque<Instant>, now: Instant) {
    while recent
        .front()
        .is_some_and(|&t| now.duration_since(t) >= WINDOW)
    {
        recent.pop_front();
    }
}

/// The 429 for a full window, with the seconds to wait (sent as `Retry-After`).
pub fn rate_limited(message: String, wait: Duration) -> ApiError {
    let mut e = ApiError::new(429, "rate_limited", message);
    e.retry_after_s = Some(wait.as_secs().max(1));
    e
}

impl WriteBudget {
    /// Counts one call of `kind` by `who`, or refuses it when `per_minute` were made in
    /// the last minute.
    pub fn charge(&mut self, who: usize, kind: WriteKind, per_minute: u32) -> Result<(), ApiError> {
        let now = Instant::now();
        let recent = self.recent.entry((who, kind)).or_default();
        expire(recent, now);
        if recent.len() >= per_minute as usize {
            return Err(rate_limited(
                format!(
                    "more than {per_minute} {} in a minute; try again shortly",
                    kind.what()
                ),
                retry_after(recent, now),
            ));
        }
        recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_refuses_with_a_retry_after() {
        let mut b = WriteBudget::default();
        for _ in 0..3 {
            b.charge(1, WriteKind::Join, 3).unwrap();
        }
        let e = b.charge(1, WriteKind::Join, 3).unwrap_err();
        assert_eq!((e.status, e.code), (429, "rate_limited"));
        assert!(e.retry_after_s.is_some_and(|s| (1..=60).contains(&s)));
        // Other endpoints and other participants have windows of their own.
        b.charge(1, WriteKind::Leave, 3).unwrap();
        b.charge(2, WriteKind::Join, 3).unwrap();
    }
}
