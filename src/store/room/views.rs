//! What the room looks like from outside, built in one place: the brief, a card's input,
//! the roster with its attendance states, a profile and `/status`. The server's routes
//! and the host CLI's direct path (no server running) both read the room through these,
//! so a field can never mean one thing over HTTP and another on the command line.

use crate::protocol::card::CardInput;
use crate::protocol::timefmt::format_ms;
use crate::protocol::wire::{BriefView, ParticipantView, ProfileAnswer, StatusAnswer};
use crate::protocol::{AttendanceState, Attention};

use super::Room;

impl Room {
    pub fn brief_view(&self) -> BriefView {
        BriefView {
            body: self.brief.clone(),
            brief_version: self.meta.brief_version,
            brief_updated_at: self.meta.brief_updated_at.clone(),
            brief_updated_by: self.meta.brief_updated_by.clone(),
        }
    }

    /// The Attend Card's input for participant `who`, whose raw token the caller holds.
    pub fn card_input<'a>(&'a self, who: usize, token: &'a str, url: &'a str) -> CardInput<'a> {
        let p = &self.participants[who];
        CardInput {
            room: self.id(),
            alias: &p.alias,
            kind: p.kind,
            token,
            url,
            brief: &self.brief,
            brief_version: self.meta.brief_version,
            policy: self.meta.attendance_policy,
            host_alias: self.host_alias(),
            expires_at: self.meta.expires_at.as_deref(),
            last_id: self.log.last_id(),
            reach_requested: p.reach.reach_requested,
        }
    }

    pub fn profile(&self, who: usize) -> ProfileAnswer {
        let p = &self.participants[who];
        ProfileAnswer {
            ok: true,
            alias: p.alias.clone(),
            display_name: p.display_name.clone(),
            kind: p.kind,
            is_host: p.is_host,
            reach: p.reach.reach,
            poll_every_s: p.reach.poll_every_s,
            invited_by: p.invited_by.clone(),
        }
    }

    /// The roster at `now`; `holding(i)` says whether participant `i` holds a `/wait`.
    pub fn roster(&self, now: i64, holding: impl Fn(usize) -> bool) -> Vec<ParticipantView> {
        let stale_ms = self.limits.stale_after_ms;
        let policy = self.meta.attendance_policy;
        self.participants
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let waiting = holding(i);
                let age = if waiting {
                    Some(0)
                } else {
                    p.last_seen_ms.map(|t| (now - t).max(0))
                };
                let required = !p.removed && policy.requires(p.kind, p.is_host);
                let attention = if waiting {
                    Attention::Attending
                } else {
                    p.attention
                };
                let state = if p.removed {
                    AttendanceState::Removed
                } else if attention == Attention::Attending
                    && age.is_none_or(|a| a as u64 > stale_ms)
                {
                    AttendanceState::Stale
                } else if required && attention != Attention::Attending {
                    AttendanceState::NotAttending
                } else {
                    attention.into()
                };
                ParticipantView {
                    alias: p.alias.clone(),
                    display_name: p.display_name.clone(),
                    kind: p.kind,
                    location: p.location,
                    install: p.install,
                    attention,
                    is_host: p.is_host,
                    removed: p.removed,
                    waiting,
                    last_seen_at: p.last_seen_ms.map(format_ms),
                    last_seen_age_ms: age,
                    attendance_required: required,
                    attendance_state: state,
                    read_through_id: p.read_through_id,
                    reach: self.reach_view(i, waiting, now),
                }
            })
            .collect()
    }

    /// `/status` as participant `who` sees it.
    pub fn status_view(
        &self,
        who: usize,
        url: &str,
        now: i64,
        holding: impl Fn(usize) -> bool,
        waiting_count: u64,
    ) -> StatusAnswer {
        let me = &self.participants[who];
        let m = &self.meta;
        StatusAnswer {
            ok: true,
            room: self.id().to_string(),
            me: me.alias.clone(),
            is_host: me.is_host,
            room_status: m.status,
            url: url.to_string(),
            attendance_policy: m.attendance_policy,
            brief_version: m.brief_version,
            brief_updated_at: m.brief_updated_at.clone(),
            brief_updated_by: m.brief_updated_by.clone(),
            created_at: m.created_at.clone(),
            closed_at: m.closed_at.clone(),
            expires_at: m.expires_at.clone(),
            stale_after_ms: self.limits.stale_after_ms,
            last_id: self.log.last_id(),
            message_count: self.log.len() as u64,
            waiting_count,
            participants: self.roster(now, holding),
        }
    }
}
