//! The host's commands when no server holds its room. The host's home has the room's
//! files, so a newcomer who closed `up` can still look at the room: reads open it under
//! its lock (as `room brief view` always did) and answer with the same types the server
//! sends, built by the same store calls. A plain message is written the same way, as the
//! host; a write that needs the server (a topic, a question) is refused in one line that
//! says what to run.

use std::sync::Arc;

use super::output::{CliError, Ctx, Exit};
use crate::client::topics::SearchParams;
use crate::protocol::message::{Message, MessageInput};
use crate::protocol::timefmt::now_ms;
use crate::protocol::topic::{SearchAnswer, SearchHit, TopicFilter, TopicPage, TopicsAnswer};
use crate::protocol::wire::{MessagesPage, PostBody, StatusAnswer};
use crate::session::Credentials;
use crate::store::Room;
use crate::store::log::{PAGE_MESSAGES, StoredMessage};
use crate::store::room::SearchQuery;

/// The host's room, opened directly because no server holds it.
pub struct Offline {
    room: Box<Room>,
    who: usize,
    url: String,
}

/// The room opened directly when this home hosts `creds`' room and no server runs;
/// `None` when the command should go through a server.
pub fn open(ctx: &Ctx, creds: &Credentials, purpose: &str) -> Result<Option<Offline>, CliError> {
    if !super::host::direct_read(ctx, creds) {
        return Ok(None);
    }
    let (room, who) = super::host::open_as_host(ctx, creds, purpose)?;
    let url = room.url().unwrap_or(&creds.url).to_string();
    Ok(Some(Offline {
        room: Box::new(room),
        who,
        url,
    }))
}

/// The one-line refusal of a write that needs the room's server.
pub fn needs_server(room: &str, what: &str) -> CliError {
    CliError::new(
        Exit::Unreachable,
        "not_served",
        format!(
            "no server holds room {room}, and {what} goes through it; serve the room with `agentgather up {room}` (in another terminal) and run this again"
        ),
    )
}

fn messages_of(stored: Vec<Arc<StoredMessage>>) -> Vec<Message> {
    stored.into_iter().map(|m| m.msg.clone()).collect()
}

impl Offline {
    pub fn status(&self) -> StatusAnswer {
        self.room
            .status_view(self.who, &self.url, now_ms(), |_| false, 0)
    }

    /// The roster's aliases (removed participants included).
    pub fn aliases(&self) -> Vec<String> {
        self.room
            .participants()
            .iter()
            .map(|p| p.alias.clone())
            .collect()
    }

    /// Messages after `since`, a page as `GET /messages` gives it.
    pub fn messages(&self, since: u64, limit: Option<u64>) -> Result<MessagesPage, CliError> {
        let limit = limit.map_or(PAGE_MESSAGES, |l| (l.max(1) as usize).min(PAGE_MESSAGES));
        let messages = messages_of(self.room.log.read_since(since, limit)?);
        let next = messages.last().map_or(since, |m| m.id);
        Ok(MessagesPage {
            ok: true,
            room: self.room.id().to_string(),
            room_status: self.room.meta.status,
            has_more: next < self.room.log.last_id(),
            messages,
            next_since_id: next,
        })
    }

    pub fn topics(&self, filter: &TopicFilter) -> TopicsAnswer {
        TopicsAnswer {
            ok: true,
            topics: self.room.topics(filter),
            has_more: false,
            next_before_activity: None,
        }
    }

    /// A topic and its whole thread (read page by page, as the client does).
    pub fn topic(&self, id: u64) -> Result<TopicPage, CliError> {
        let mut after = 0;
        let mut all = Vec::new();
        loop {
            let (topic, messages, has_more) = self.room.topic_page(id, after)?;
            after = messages.last().map_or(after, |m| m.msg.id);
            let ended = !has_more || messages.is_empty();
            all.extend(messages);
            if ended {
                return Ok(TopicPage {
                    ok: true,
                    topic,
                    messages: messages_of(all),
                    has_more: false,
                    next_after_id: None,
                });
            }
        }
    }

    pub fn search(&mut self, p: &SearchParams) -> Result<SearchAnswer, CliError> {
        let query = SearchQuery::parse(&p.q, p.from.clone(), p.kind, p.limit, p.before_id)?;
        // The search takes the room through a guard each time it needs it, as the server
        // does with its lock; here one owner lends it out.
        let room = std::cell::RefCell::new(&mut *self.room);
        let page = crate::store::room::search(
            || std::cell::RefMut::map(room.borrow_mut(), |r| &mut **r),
            &query,
        )?;
        Ok(SearchAnswer {
            ok: true,
            results: page
                .hits
                .into_iter()
                .map(|(m, snippet)| SearchHit {
                    message: m.msg.clone(),
                    snippet,
                })
                .collect(),
            has_more: page.has_more,
            next_before_id: page.next_before_id,
        })
    }

    /// Posts as the host with the server's own checks (the body is validated by the
    /// parser `POST /messages` uses), and writes it to disk before answering.
    pub fn post(&mut self, body: &PostBody) -> Result<Message, CliError> {
        let value = serde_json::to_value(body).map_err(|e| CliError::msg(e.to_string()))?;
        let input = MessageInput::from_json(&value, &self.room.limits)?;
        let (stored, _) = self.room.post(self.who, input)?;
        self.room.flush()?;
        Ok(stored.msg.clone())
    }
}
