//! The wake runner's hourly turn cap, per sender (audit round two, NM4). One cap shared
//! by all senders let one participant's mentions use up every turn of the hour, and the
//! agent was deaf to the host meanwhile. Now each agent sender has its own count, and
//! what the host or a human sends always gets a turn: a loop between agents is what the
//! cap is for, and the server's loop guard still bounds the rest.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::wake::Trigger;
use crate::protocol::participant::Kind;
use crate::protocol::wire::ParticipantView;

const HOUR: Duration = Duration::from_secs(3600);

pub struct TurnCap {
    per_hour: usize,
    /// When turns started, per agent sender, within the last hour.
    starts: HashMap<String, VecDeque<Instant>>,
    /// Whether a sender is the host or a human (never capped).
    privileged: HashMap<String, bool>,
}

impl TurnCap {
    pub fn new(per_hour: u32) -> TurnCap {
        TurnCap {
            per_hour: per_hour as usize,
            starts: HashMap::new(),
            privileged: HashMap::new(),
        }
    }

    /// The senders of `batch` whose kind is not known yet.
    pub fn unknown(&self, batch: &[Trigger]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in batch {
            if !self.privileged.contains_key(&t.from) && !out.contains(&t.from) {
                out.push(t.from.clone());
            }
        }
        out
    }

    /// Learns who is the host or a human from the roster.
    pub fn learn(&mut self, roster: &[ParticipantView]) {
        for p in roster {
            self.privileged
                .insert(p.alias.clone(), p.is_host || p.kind == Kind::Human);
        }
    }

    /// Counts `aliases` as agents (a roster that could not be read, or a sender not in it).
    pub fn assume_agents(&mut self, aliases: &[String]) {
        for a in aliases {
            self.privileged.entry(a.clone()).or_insert(false);
        }
    }

    fn prune(&mut self, now: Instant) {
        self.starts.retain(|_, s| {
            while s.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
                s.pop_front();
            }
            !s.is_empty()
        });
    }

    fn may_wake(&self, from: &str) -> bool {
        self.privileged.get(from).copied().unwrap_or(false)
            || self.starts.get(from).map_or(0, VecDeque::len) < self.per_hour
    }

    /// `None` when a turn for `batch` may start at `now`; else how long until one may.
    pub fn blocked(&mut self, batch: &[Trigger], now: Instant) -> Option<Duration> {
        self.prune(now);
        if batch.is_empty() || batch.iter().any(|t| self.may_wake(&t.from)) {
            return None;
        }
        batch
            .iter()
            .filter_map(|t| self.starts.get(&t.from)?.front())
            .map(|first| HOUR.saturating_sub(now.duration_since(*first)))
            .min()
            .or(Some(HOUR))
    }

    /// Counts a turn started at `now` for `batch` against each of its agent senders.
    pub fn record(&mut self, batch: &[Trigger], now: Instant) {
        let mut counted: Vec<&str> = Vec::new();
        for t in batch {
            if counted.contains(&t.from.as_str())
                || self.privileged.get(&t.from).copied().unwrap_or(false)
            {
                continue;
            }
            counted.push(&t.from);
            self.starts
                .entry(t.from.clone())
                .or_default()
                .push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u64, from: &str) -> Trigger {
        Trigger {
            id,
            from: from.into(),
        }
    }

    fn cap() -> TurnCap {
        let mut c = TurnCap::new(2);
        c.privileged.insert("host".into(), true);
        c.privileged.insert("ann".into(), true);
        c.privileged.insert("bot".into(), false);
        c.privileged.insert("other".into(), false);
        c
    }

    #[test]
    fn one_agent_sender_cannot_use_up_the_turns_of_the_host_or_another_agent() {
        let mut c = cap();
        let now = Instant::now();
        for i in 0..2 {
            assert_eq!(c.blocked(&[t(i, "bot")], now), None);
            c.record(&[t(i, "bot")], now);
        }
        let wait = c.blocked(&[t(3, "bot")], now).expect("bot is capped");
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        // The host and a human always get a turn, and another agent has its own count.
        assert_eq!(c.blocked(&[t(4, "host")], now), None);
        assert_eq!(c.blocked(&[t(5, "ann")], now), None);
        assert_eq!(c.blocked(&[t(6, "other")], now), None);
        // A batch that holds anything uncapped runs; it counts for the uncapped agent.
        assert_eq!(c.blocked(&[t(7, "bot"), t(8, "other")], now), None);
        c.record(&[t(7, "bot"), t(8, "other"), t(9, "host")], now);
        assert!(!c.starts.contains_key("host"));
        assert_eq!(c.starts["other"].len(), 1);
        // An hour later the cap is free again.
        assert_eq!(c.blocked(&[t(10, "bot")], now + HOUR), None);
    }

    #[test]
    fn unknown_senders_are_asked_about_once() {
        let mut c = TurnCap::new(1);
        assert_eq!(c.unknown(&[t(1, "x"), t(2, "x"), t(3, "y")]), ["x", "y"]);
        c.assume_agents(&["x".into(), "y".into()]);
        assert!(c.unknown(&[t(1, "x")]).is_empty());
    }
}
