//! Approvals (SPEC §12): a topic whose answer decides whether an agent's tool call runs.
//! Everything that makes it safer than a question lives here: only a person (the
//! approver, or the host) may answer, exactly once, and silence becomes a `deny` the
//! log records, so every reader (the waiting hook, the browser, an export) sees the same
//! outcome.

use std::sync::Arc;

use super::Room;
use super::topics::forbidden;
use crate::protocol::approval::{DENY, NewApprovalBody, approval_text};
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::protocol::topic::{
    AnswerBody, TopicAnswer, TopicFields, TopicStatus, TopicUpdate, TopicView,
};
use crate::protocol::{ApiError, Kind, MessageInput, MessageType};
use crate::store::log::StoredMessage;

fn already_answered(id: u64, why: &str) -> ApiError {
    ApiError::new(
        409,
        "already_answered",
        format!("approval {id} {why}; it cannot change"),
    )
}

impl Room {
    /// `POST /approvals`: opens an approval addressed to `approver` (the host by
    /// default), which must be a current human or the host.
    pub fn open_approval(
        &mut self,
        who: usize,
        body: &NewApprovalBody,
    ) -> Result<(Arc<StoredMessage>, bool), ApiError> {
        let timeout_s = body.validate()?;
        let approver = body
            .approver
            .clone()
            .unwrap_or_else(|| self.host_alias().to_string());
        let eligible = self.find(&approver).is_some_and(|i| {
            let p = &self.participants[i];
            !p.removed && (p.is_host || p.kind == Kind::Human)
        });
        if !eligible {
            return Err(ApiError::bad_request(
                "invalid_approver",
                format!(
                    "{approver:?} is not a person in this room; an approver must be a human participant or the host"
                ),
            ));
        }
        let expires_at = format_ms(now_ms() + timeout_s as i64 * 1000);
        let meta = body.meta(&approver, expires_at);
        let asker = self.participants[who].alias.clone();
        let input = MessageInput {
            text: approval_text(&asker, &meta),
            kind: MessageType::Topic,
            reply_to: None,
            client_msg_id: body.client_msg_id.clone(),
            to: vec![approver],
            topic: TopicFields {
                topic: Some(meta),
                ..TopicFields::default()
            },
        };
        self.post(who, input)
    }

    /// Who may answer an approval, and when: the approver if they are a person, or the
    /// host; once; before it expires; with `allow` or `deny`.
    pub(super) fn check_approval_answer(
        &self,
        who: usize,
        topic: &TopicView,
        body: &AnswerBody,
    ) -> Result<(), ApiError> {
        let me = &self.participants[who];
        let approver = topic.to.as_deref() == Some(me.alias.as_str()) && me.kind == Kind::Human;
        if !(me.is_host || approver) {
            return Err(forbidden(
                "only the approver or the host may answer an approval",
            ));
        }
        if topic.answer.is_some() {
            return Err(already_answered(topic.id, "is already answered"));
        }
        let expired = topic
            .approval
            .as_ref()
            .and_then(|a| crate::protocol::timefmt::parse_ms(&a.expires_at))
            .is_none_or(|ms| ms <= now_ms());
        if expired {
            return Err(already_answered(topic.id, "expired (it reads as deny)"));
        }
        if body.option.is_none() {
            return Err(ApiError::bad_request(
                "invalid_option",
                "an approval is answered with the option allow or deny",
            ));
        }
        Ok(())
    }

    /// Records a `deny` with `expired: true` for every open approval whose time is up,
    /// so a waiting agent hears the outcome the moment it is decided. Returns whether
    /// anything was appended (the server then wakes the waiters).
    pub fn expire_approvals(&mut self) -> Result<bool, ApiError> {
        if !self.is_open() {
            return Ok(false);
        }
        let now = now_ms();
        let due: Vec<u64> = self
            .topic_index
            .pending_approvals
            .iter()
            .take_while(|(ms, _)| *ms <= now)
            .map(|&(_, id)| id)
            .collect();
        for id in &due {
            let Some(topic) = self.topic_index.get(*id).cloned() else {
                self.topic_index
                    .pending_approvals
                    .retain(|&(_, p)| p != *id);
                continue;
            };
            let update = TopicUpdate {
                status: TopicStatus::Answered,
                note: None,
                answer: Some(TopicAnswer {
                    option: Some(DENY.to_string()),
                    text: None,
                    by: "system".to_string(),
                    expired: true,
                }),
            };
            let mentions: Vec<String> = Some(topic.from.clone())
                .filter(|f| self.is_current(f))
                .into_iter()
                .collect();
            let text = format!(
                "@{} Approval #{id} \"{}\" expired with no answer: deny.",
                topic.from, topic.title
            );
            let fields = TopicFields {
                topic_id: Some(*id),
                topic_update: Some(update),
                topic: None,
            };
            // Like a system row: not held to the log cap, so a full log still records
            // the deny its waiter is owed.
            self.append(
                "system",
                MessageType::TopicUpdate,
                text,
                mentions,
                None,
                None,
                fields,
                crate::protocol::claim::ClaimFields::default(),
            )?;
        }
        Ok(!due.is_empty())
    }
}
