//! Topics from the participant side, shared by the CLI and the MCP adapter: opening a
//! question with a retry-safe key, and following `/wait` until it is answered.

use std::time::{Duration, Instant};

use super::{Backoff, Session, SessionError, is_transient};
use crate::client::{Client, ClientError};
use crate::protocol::message::Message;
use crate::protocol::token::mint_token;
use crate::protocol::topic::{NewTopicBody, TopicAnswer};
use crate::protocol::{MessageType, RoomStatus, WAIT_HOLD_MS};

/// How waiting for an answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskOutcome {
    Answered(TopicAnswer),
    /// The timeout passed first.
    TimedOut,
    /// The room closed first.
    RoomClosed,
}

/// The answer to topic `id` carried by `m`, if it is one.
pub fn answer_in(m: &Message, id: u64) -> Option<&TopicAnswer> {
    if m.kind != MessageType::TopicUpdate || m.topic_id != Some(id) {
        return None;
    }
    m.topic_update.as_ref()?.answer.as_ref()
}

impl Session {
    /// Opens a topic with a fresh `client_msg_id`, retrying while the server is
    /// unreachable (a repeat returns the original topic, never a second one).
    pub fn open_topic(&self, body: NewTopicBody) -> Result<Message, SessionError> {
        self.post_keyed(None, |client, key| {
            let mut body = body.clone();
            body.client_msg_id = Some(key.to_string());
            client.open_topic(&body).map(|a| a.message)
        })
    }

    /// Runs `post` with one `client_msg_id` (`key`, or a fresh one), retrying it while
    /// the server is unreachable: the server answers a repeat with the original, so a
    /// retry never makes a second message.
    pub(super) fn post_keyed<T>(
        &self,
        key: Option<String>,
        post: impl Fn(&Client, &str) -> Result<T, ClientError>,
    ) -> Result<T, SessionError> {
        let key = match key {
            Some(k) => k,
            None => {
                let t = mint_token()
                    .map_err(|e| SessionError::Invalid(format!("no randomness: {e}")))?;
                format!("cli-{}", &t[4..])
            }
        };
        let client = self.client(super::CALL_TIMEOUT);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut attempt = 0;
        loop {
            match post(&client, &key) {
                Ok(answer) => return Ok(answer),
                Err(e) if e.is_unreachable() && attempt < 4 => {
                    std::thread::sleep(backoff.next_delay());
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Follows `/wait` from `since` until topic `id` is answered, the room closes, or
    /// `timeout` passes. An answer already in the log after `since` counts.
    pub fn wait_for_answer(
        &self,
        id: u64,
        mut since: u64,
        timeout: Duration,
    ) -> Result<AskOutcome, SessionError> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(AskOutcome::TimedOut);
            }
            let hold = (left.as_millis() as u64).clamp(1, WAIT_HOLD_MS);
            let w = match self.wait(since, Some(hold)) {
                Ok(w) => w,
                Err(e) if is_transient(&e) => {
                    std::thread::sleep(backoff.next_delay().min(left));
                    continue;
                }
                Err(e) => return Err(SessionError::Client(e)),
            };
            backoff.reset();
            if let Some(a) = w.messages.iter().find_map(|m| answer_in(m, id)) {
                return Ok(AskOutcome::Answered(a.clone()));
            }
            if w.room_status == RoomStatus::Closed {
                return Ok(AskOutcome::RoomClosed);
            }
            if !w.keep_waiting {
                return Err(SessionError::Client(ClientError::Api {
                    status: 410,
                    code: "participant_removed".into(),
                    message: "you were removed from this room by the host".into(),
                }));
            }
            since = w.next_since_id;
        }
    }

    /// Asks a question and waits for its answer: the topic and how the wait ended.
    pub fn ask(
        &self,
        body: NewTopicBody,
        timeout: Duration,
    ) -> Result<(Message, AskOutcome), SessionError> {
        let topic = self.open_topic(body)?;
        let outcome = self.wait_for_answer(topic.id, topic.id, timeout)?;
        Ok((topic, outcome))
    }
}
