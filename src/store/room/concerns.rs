//! SPEC §10: what concerns a participant, decided where the whole room is known. A reply
//! names no one, and a comment on a topic names no one either; flagging them in `/wait`
//! (`concerns_you`) lets a reply reach its author without a typed `@`. The rule is the
//! wake rule of §8.2, so what wakes a runner and what `/wait` flags never differ.

use crate::protocol::message::Message;

use super::Room;

impl Room {
    /// Whether `m` concerns `alias`: it mentions them (an `@all`, a handoff to them and
    /// an answer to their question do), replies to one of their messages, or comments on
    /// or updates a topic they opened. Their own messages never do.
    pub fn concerns(&self, m: &Message, alias: &str) -> bool {
        if m.from == alias {
            return false;
        }
        if m.mentions.iter().any(|a| a == alias) {
            return true;
        }
        let replies_to_them = m.reply_to.is_some_and(
            |id| matches!(self.log.get(id), Ok(Some(target)) if target.msg.from == alias),
        );
        let on_their_topic = m
            .topic_id
            .and_then(|t| self.topic_index.get(t))
            .is_some_and(|t| t.from == alias);
        replies_to_them || on_their_topic
    }
}
