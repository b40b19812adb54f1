//! SPEC §8 on the room: declared and requested reach, the wake runner's turn reports,
//! what the roster observes (`reachable_now`), and `@all`.

use crate::protocol::mentions::{candidate_mentions, resolve_mentions};
use crate::protocol::reach::{Reach, ReachDecl, WakeAnswer, WakeEvent};
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::protocol::wire::ReachView;
use crate::protocol::{ApiError, Kind};

use super::{Room, WriteKind};

impl Room {
    /// Declares `who`'s reach (`POST /join`, `POST /profile`).
    pub fn set_reach(&mut self, who: usize, decl: ReachDecl) -> Result<(), ApiError> {
        self.require_active(who)?;
        let r = &self.participants[who].reach;
        if r.reach == decl.reach && r.poll_every_s == decl.poll_every_s {
            return Ok(());
        }
        self.charge(who, WriteKind::Profile)?;
        let r = &mut self.participants[who].reach;
        r.reach = decl.reach;
        r.poll_every_s = decl.poll_every_s;
        self.save_participants().map_err(ApiError::from)
    }

    /// The host asks `alias` to be reachable at `reach` (`POST /invite {reach}`).
    pub fn request_reach(&mut self, who: usize, alias: &str, reach: Reach) -> Result<(), ApiError> {
        self.require_host(who, "request a reach")?;
        let idx = self
            .find(alias)
            .ok_or_else(|| ApiError::not_found(format!("no participant {alias:?} in this room")))?;
        self.participants[idx].reach.reach_requested = Some(reach);
        self.save_participants().map_err(ApiError::from)
    }

    /// A wake runner's report on one turn of `who` (`POST /wake`).
    pub fn record_wake(&mut self, who: usize, event: WakeEvent) -> Result<WakeAnswer, ApiError> {
        self.require_active(who)?;
        // Every report rewrites the roster, so every report is under the budget.
        self.charge(
            who,
            match event {
                WakeEvent::Started => WriteKind::Wake,
                WakeEvent::Succeeded | WakeEvent::Failed => WriteKind::WakeResult,
            },
        )?;
        let r = &mut self.participants[who].reach;
        let before = (r.last_woken_at.clone(), r.wake_failing);
        match event {
            WakeEvent::Started => r.last_woken_at = Some(format_ms(now_ms())),
            WakeEvent::Succeeded => r.wake_failing = 0,
            WakeEvent::Failed => r.wake_failing = r.wake_failing.saturating_add(1),
        }
        let answer = WakeAnswer {
            ok: true,
            last_woken_at: r.last_woken_at.clone(),
            wake_failing: r.wake_failing,
        };
        if (answer.last_woken_at.clone(), answer.wake_failing) != before {
            self.save_participants().map_err(ApiError::from)?;
        }
        Ok(answer)
    }

    /// The §8 roster fields of participant `i` at `now`; `holding` says whether a
    /// `/wait` of theirs is held. Only observation makes them reachable, never the
    /// declaration.
    pub(super) fn reach_view(&self, i: usize, holding: bool, now: i64) -> ReachView {
        let p = &self.participants[i];
        let r = &p.reach;
        let polled = r.reach == Reach::Poll
            && r.poll_every_s
                .zip(p.last_seen_ms)
                .is_some_and(|(every, seen)| {
                    now.saturating_sub(seen) < (every as i64).saturating_mul(2_000)
                });
        ReachView {
            reach: r.reach,
            poll_every_s: r.poll_every_s,
            reach_requested: r.reach_requested,
            reachable_now: !p.removed && (holding || polled),
            last_woken_at: r.last_woken_at.clone(),
            wake_failing: r.wake_failing,
        }
    }

    /// The mentions of a post by `who`: current participants named outside code, and
    /// for `@all` from the host or a human (SPEC §8.3) every current participant but
    /// the sender. From an agent, `@all` stays plain text.
    pub(super) fn mentions_of(&self, who: usize, text: &str) -> Vec<String> {
        let mut mentions = resolve_mentions(text, |a| self.is_current(a));
        let sender = &self.participants[who];
        let may_all = sender.is_host || sender.kind == Kind::Human;
        if may_all && candidate_mentions(text).iter().any(|w| w == "all") {
            for p in &self.participants {
                if !p.removed && p.alias != sender.alias && !mentions.contains(&p.alias) {
                    mentions.push(p.alias.clone());
                }
            }
        }
        mentions
    }
}
