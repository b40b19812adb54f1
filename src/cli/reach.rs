//! Reach in the CLI (SPEC §8.1): the `--reach` flags of `room join`, and how `room status`
//! shows reach: the declared level, a live dot only when observed reachable, and a
//! warning when a participant declared less than the host asked for.

use crate::protocol::reach::{Reach, ReachBody};
use crate::protocol::wire::{ParticipantView, StatusAnswer};

/// What `room join --reach R [--poll-every S]` sends: `poll` defaults to every 60 s.
pub fn join_reach(reach: Option<Reach>, poll_every: Option<u64>) -> ReachBody {
    match reach {
        None => ReachBody {
            reach: None,
            poll_every_s: poll_every.map(Into::into),
        },
        Some(Reach::Poll) => ReachBody::of(Reach::Poll, Some(poll_every.unwrap_or(60))),
        Some(r) => ReachBody::of(r, poll_every),
    }
}

/// The REACH cell: `● live` when reachable now, else the declared level (`poll/60s`).
pub fn reach_cell(p: &ParticipantView) -> String {
    let r = &p.reach;
    let level = match (r.reach, r.poll_every_s) {
        (Reach::Poll, Some(s)) => format!("poll/{s}s"),
        (l, _) => l.as_str().to_string(),
    };
    let mut cell = if r.reachable_now {
        format!("● {level}")
    } else {
        format!("○ {level}")
    };
    if r.wake_failing > 0 {
        cell.push_str(&format!(" !{}", r.wake_failing));
    }
    cell
}

/// One line per participant whose declared reach is weaker than requested.
pub fn reach_warnings(s: &StatusAnswer) -> String {
    let mut out = String::new();
    for p in s.participants.iter().filter(|p| !p.removed) {
        let r = &p.reach;
        if let Some(req) = r.reach_requested
            && r.reach.weaker_than(req)
        {
            out.push_str(&format!(
                "warning: {} declared reach {} but the host asked for {req}\n",
                p.alias, r.reach
            ));
        }
        if r.wake_failing > 0 {
            out.push_str(&format!(
                "warning: {}'s wake runner failed its last {}\n",
                p.alias,
                super::output::plural(r.wake_failing, "turn")
            ));
        }
    }
    out
}
