//! Topics (SPEC §9.1): the in-memory topic index, rebuilt at start-up from the lines the
//! log scan saw mentioning `"topic` and kept current on every append, so listing never
//! reads the log; and the topic mutations, each a message posted through
//! [`Room::post`] so rate limit, loop guard, log cap and idempotency apply.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Room;
use crate::protocol::bounds::{fill_page, page_takes};
use crate::protocol::timefmt::parse_ms;
use crate::protocol::topic::{
    AnswerBody, NewTopicBody, StatusBody, TopicAnswer, TopicFields, TopicFilter, TopicKind,
    TopicStatus, TopicUpdate, TopicView,
};
use crate::protocol::{ApiError, Message, MessageInput, MessageType};
use crate::store::StoreError;
use crate::store::log::{MessageLog, StoredMessage};

struct TopicEntry {
    view: TopicView,
    /// Ids of its comments and updates, oldest first.
    thread: Vec<u64>,
    /// An approval's expiry (ms since the epoch).
    expires_ms: Option<i64>,
}

/// Every topic of the room by id, with its current status, answer and thread.
#[derive(Default)]
pub struct TopicIndex {
    topics: BTreeMap<u64, TopicEntry>,
    /// Unanswered approvals by expiry, then id: what the expiry timer looks at.
    pub(super) pending_approvals: BTreeSet<(i64, u64)>,
}

impl TopicIndex {
    /// Parses only the lines start-up flagged, oldest first.
    pub fn load(log: &mut MessageLog) -> Result<TopicIndex, StoreError> {
        let mut index = TopicIndex::default();
        for id in log.take_topic_ids() {
            if let Some(m) = log.get(id)? {
                index.apply(&m.msg);
            }
        }
        Ok(index)
    }

    /// Folds one appended message into the index.
    pub fn apply(&mut self, m: &Message) {
        if m.kind == MessageType::Topic
            && let Some(meta) = &m.topic
        {
            let view = TopicView {
                id: m.id,
                title: meta.title.clone(),
                status: meta.status,
                kind: meta.kind,
                tags: meta.tags.clone(),
                from: m.from.clone(),
                ts: m.ts.clone(),
                to: meta.to.clone(),
                options: meta.options.clone().unwrap_or_default(),
                answer: None,
                comments: 0,
                last_activity_id: m.id,
                approval: meta.approval.clone(),
            };
            let expires_ms = meta
                .approval
                .as_ref()
                .map(|a| parse_ms(&a.expires_at).unwrap_or(0));
            if let Some(ms) = expires_ms {
                self.pending_approvals.insert((ms, m.id));
            }
            let thread = Vec::new();
            let entry = TopicEntry {
                view,
                thread,
                expires_ms,
            };
            self.topics.insert(m.id, entry);
            return;
        }
        let Some(entry) = m.topic_id.and_then(|t| self.topics.get_mut(&t)) else {
            return;
        };
        entry.thread.push(m.id);
        entry.view.last_activity_id = m.id;
        match (&m.topic_update, m.kind) {
            (Some(u), MessageType::TopicUpdate) => {
                entry.view.status = u.status;
                if u.answer.is_some() {
                    entry.view.answer = u.answer.clone();
                    if let Some(ms) = entry.expires_ms {
                        self.pending_approvals.remove(&(ms, entry.view.id));
                    }
                }
            }
            _ => entry.view.comments += 1,
        }
    }

    /// Every topic of `messages` (oldest first) with its thread's ids, by topic id: for
    /// exports, which read the log without a `Room`.
    pub fn summarize<'a>(
        messages: impl Iterator<Item = &'a Message>,
    ) -> Vec<(TopicView, Vec<u64>)> {
        let mut index = TopicIndex::default();
        for m in messages {
            index.apply(m);
        }
        let mut out: Vec<(TopicView, Vec<u64>)> = index
            .topics
            .into_values()
            .map(|e| (e.view, e.thread))
            .collect();
        out.sort_by_key(|(v, _)| v.id);
        out
    }

    pub fn get(&self, id: u64) -> Option<&TopicView> {
        self.topics.get(&id).map(|e| &e.view)
    }

    /// The topics after id `after`, by id, each with its thread's ids.
    pub fn after(&self, after: u64) -> impl Iterator<Item = (&TopicView, &[u64])> {
        self.topics
            .range(after.saturating_add(1)..)
            .map(|(_, e)| (&e.view, e.thread.as_slice()))
    }
}

pub(super) fn not_found(id: u64) -> ApiError {
    ApiError::new(404, "topic_not_found", format!("there is no topic {id}"))
}

pub(super) fn forbidden(message: &str) -> ApiError {
    ApiError::new(403, "forbidden", message)
}

fn closed(id: u64) -> ApiError {
    ApiError::new(409, "topic_closed", format!("topic {id} is closed"))
}

impl Room {
    /// `POST /topics`: opens a topic (a `type: "topic"` message; its id is the topic's).
    pub fn open_topic(
        &mut self,
        who: usize,
        body: &NewTopicBody,
    ) -> Result<(Arc<StoredMessage>, bool), ApiError> {
        let meta = body.validate()?;
        let chars = body.text.chars().count();
        if chars > self.limits.text_chars {
            return Err(ApiError::too_large(
                "message_too_large",
                format!(
                    "text is {chars} characters; the limit is {}",
                    self.limits.text_chars
                ),
            ));
        }
        let input = MessageInput {
            text: body.text.clone(),
            kind: MessageType::Topic,
            reply_to: None,
            client_msg_id: body.client_msg_id.clone(),
            to: meta.to.iter().cloned().collect(),
            topic: TopicFields {
                topic: Some(meta),
                ..TopicFields::default()
            },
        };
        self.post(who, input)
    }

    /// Refuses a comment on a missing or closed topic (called by [`Room::post`]).
    pub(super) fn check_comment(&self, input: &MessageInput) -> Result<(), ApiError> {
        let Some(id) = input.topic.topic_id else {
            return Ok(());
        };
        let topic = self.topic_index.get(id).ok_or_else(|| not_found(id))?;
        if input.kind != MessageType::TopicUpdate && topic.status == TopicStatus::Closed {
            return Err(closed(id));
        }
        Ok(())
    }

    pub(super) fn update_input(
        text: String,
        id: u64,
        update: TopicUpdate,
        to: Vec<String>,
    ) -> MessageInput {
        MessageInput {
            text,
            kind: MessageType::TopicUpdate,
            reply_to: None,
            client_msg_id: None,
            to,
            topic: TopicFields {
                topic_id: Some(id),
                topic_update: Some(update),
                topic: None,
            },
        }
    }

    /// The current state of topic `id` for an active participant `who` to act on (404
    /// `topic_not_found` when there is none).
    fn topic_for(&self, who: usize, id: u64) -> Result<TopicView, ApiError> {
        self.require_active(who)?;
        self.topic_index
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    /// `POST /topics/{id}/status`: the topic's author or the host sets its status.
    pub fn set_topic_status(
        &mut self,
        who: usize,
        id: u64,
        body: &StatusBody,
    ) -> Result<Arc<StoredMessage>, ApiError> {
        let topic = self.topic_for(who, id)?;
        if topic.kind == TopicKind::Approval {
            return Err(forbidden(
                "an approval's status follows its answer; answer it with /topics/{id}/answer",
            ));
        }
        let me = self.participants[who].alias.clone();
        if me != topic.from && !self.participants[who].is_host {
            return Err(forbidden(
                "only the topic's author or the host may change its status",
            ));
        }
        body.validate()?;
        let mut text = format!("{me} set topic #{id} {:?} to {}.", topic.title, body.status);
        if let Some(note) = body.note.as_deref().filter(|n| !n.trim().is_empty()) {
            text.push_str("\n\n");
            text.push_str(note);
        }
        let update = TopicUpdate {
            status: body.status,
            note: body.note.clone(),
            answer: None,
        };
        let input = Self::update_input(text, id, update, Vec::new());
        self.post(who, input).map(|(m, _)| m)
    }

    /// `POST /topics/{id}/answer`: the addressee (or, with none, anyone but the author)
    /// or the host answers a question; the answer mentions the asker.
    pub fn answer_topic(
        &mut self,
        who: usize,
        id: u64,
        body: &AnswerBody,
    ) -> Result<Arc<StoredMessage>, ApiError> {
        let topic = self.topic_for(who, id)?;
        if topic.kind == TopicKind::Approval {
            self.check_approval_answer(who, &topic, body)?;
        } else {
            self.check_question_answer(who, &topic)?;
        }
        body.validate()?;
        if let Some(o) = &body.option
            && !topic.options.contains(o)
        {
            return Err(ApiError::bad_request(
                "invalid_option",
                format!(
                    "{o:?} is not one of the options: {}",
                    topic.options.join(", ")
                ),
            ));
        }
        let me = self.participants[who].alias.clone();
        let text_part = body.text.clone().filter(|t| !t.trim().is_empty());
        let mut text = format!("@{} {me} answered {:?}", topic.from, topic.title);
        if let Some(o) = &body.option {
            text.push_str(&format!(": {o}"));
        }
        if let Some(t) = &text_part {
            text.push_str("\n\n");
            text.push_str(t);
        }
        let answer = TopicAnswer {
            option: body.option.clone(),
            text: text_part,
            by: me.clone(),
            expired: false,
        };
        let update = TopicUpdate {
            status: TopicStatus::Answered,
            note: None,
            answer: Some(answer),
        };
        let to = if topic.from != me && self.is_current(&topic.from) {
            vec![topic.from.clone()]
        } else {
            Vec::new()
        };
        let input = Self::update_input(text, id, update, to);
        self.post(who, input).map(|(m, _)| m)
    }

    /// Who may answer a question, and when: the addressee (or, with none, anyone but the
    /// author) or the host, while it is neither closed nor answered.
    fn check_question_answer(&self, who: usize, topic: &TopicView) -> Result<(), ApiError> {
        let id = topic.id;
        if topic.kind != TopicKind::Question {
            return Err(ApiError::new(
                409,
                "not_a_question",
                format!("topic {id} is a discussion, not a question"),
            ));
        }
        let me = self.participants[who].alias.clone();
        let allowed = self.participants[who].is_host
            || match &topic.to {
                Some(to) => *to == me,
                None => me != topic.from,
            };
        if !allowed {
            return Err(forbidden(match &topic.to {
                Some(_) => "only the person asked or the host may answer this question",
                None => "the asker cannot answer their own question (the host can)",
            }));
        }
        if topic.status == TopicStatus::Closed {
            return Err(closed(id));
        }
        if topic.answer.is_some() && topic.status != TopicStatus::Open {
            return Err(ApiError::new(
                409,
                "already_answered",
                format!("topic {id} is already answered; its author can reopen it"),
            ));
        }
        Ok(())
    }

    /// `GET /topics`: the topics that pass the filter, latest activity first.
    pub fn topics(&self, filter: &TopicFilter) -> Vec<TopicView> {
        self.topics_by_activity(filter)
            .into_iter()
            .cloned()
            .collect()
    }

    /// `GET /topics`: the topics `filter` lets through, latest activity first, whose
    /// latest activity is before `before` (if given), as many as one page holds; and
    /// whether more follow. Only the page's topics are copied.
    pub fn topics_page(&self, filter: &TopicFilter, before: Option<u64>) -> (Vec<TopicView>, bool) {
        let older = self
            .topics_by_activity(filter)
            .into_iter()
            .filter(|t| before.is_none_or(|b| t.last_activity_id < b));
        let (page, more) = fill_page(&mut 0, older);
        (page.into_iter().cloned().collect(), more)
    }

    fn topics_by_activity(&self, filter: &TopicFilter) -> Vec<&TopicView> {
        let mut out: Vec<&TopicView> = self
            .topic_index
            .topics
            .values()
            .map(|e| &e.view)
            .filter(|v| filter.matches(v))
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.last_activity_id));
        out
    }

    /// `GET /topics/{id}`: the topic and the part of its thread (the topic, comments and
    /// updates) after `after`, as much as one page holds, and whether more follows.
    pub fn topic_page(
        &self,
        id: u64,
        after: u64,
    ) -> Result<(TopicView, Vec<Arc<StoredMessage>>, bool), ApiError> {
        let entry = self
            .topic_index
            .topics
            .get(&id)
            .ok_or_else(|| not_found(id))?;
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        let ids = std::iter::once(id).chain(entry.thread.iter().copied());
        for mid in ids.filter(|&m| m > after) {
            if let Some(m) = self.log.get(mid).map_err(ApiError::from)? {
                let size = m.raw.get().len();
                if !page_takes(bytes, size) {
                    return Ok((entry.view.clone(), messages, true));
                }
                bytes += size;
                messages.push(m);
            }
        }
        Ok((entry.view.clone(), messages, false))
    }
}
