//! The endpoints of SPEC §9 (topics, questions, search) and §12 (approvals), typed.

use super::{Client, ClientError};
use crate::protocol::MessageType;
use crate::protocol::approval::NewApprovalBody;
use crate::protocol::topic::{
    AnswerBody, CommentBody, NewTopicBody, SearchAnswer, StatusBody, TopicFilter, TopicPage,
    TopicsAnswer,
};
use crate::protocol::wire::PostAnswer;

/// The parameters of `GET /search`.
#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    pub q: String,
    pub from: Option<String>,
    pub kind: Option<MessageType>,
    pub limit: Option<u64>,
    pub before_id: Option<u64>,
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

impl Client {
    pub fn open_topic(&self, body: &NewTopicBody) -> Result<PostAnswer, ClientError> {
        self.post("/topics", body)
    }

    pub fn open_approval(&self, body: &NewApprovalBody) -> Result<PostAnswer, ClientError> {
        self.post("/approvals", body)
    }

    pub fn comment(&self, body: &CommentBody) -> Result<PostAnswer, ClientError> {
        self.post("/messages", body)
    }

    pub fn set_topic_status(&self, id: u64, body: &StatusBody) -> Result<PostAnswer, ClientError> {
        self.post(&format!("/topics/{id}/status"), body)
    }

    pub fn answer_topic(&self, id: u64, body: &AnswerBody) -> Result<PostAnswer, ClientError> {
        self.post(&format!("/topics/{id}/answer"), body)
    }

    /// Every topic `filter` lets through, latest activity first, read page by page.
    pub fn topics(&self, filter: &TopicFilter) -> Result<TopicsAnswer, ClientError> {
        let path = |before: Option<u64>| {
            let q = query(&[
                ("status", filter.status.map(|s| s.to_string())),
                ("kind", filter.kind.map(|k| k.to_string())),
                ("tag", filter.tag.clone()),
                ("before_activity", before.map(|b| b.to_string())),
            ]);
            format!("/topics?{q}")
        };
        let mut all: TopicsAnswer = self.get(&path(None))?;
        while let (true, Some(before)) = (all.has_more, all.next_before_activity) {
            let asked = path(Some(before));
            let next: TopicsAnswer = self.get(&asked)?;
            self.check_progress(&asked, before, next.next_before_activity)?;
            all.topics.extend(next.topics);
            all.has_more = next.has_more;
            all.next_before_activity = next.next_before_activity;
        }
        Ok(all)
    }

    /// One page of a topic's thread: the messages after `after_id`.
    pub fn topic_page(&self, id: u64, after_id: u64) -> Result<TopicPage, ClientError> {
        self.get(&topic_page_path(id, after_id))
    }

    /// A topic with its whole thread, read page by page.
    pub fn topic(&self, id: u64) -> Result<TopicPage, ClientError> {
        let mut page = self.topic_page(id, 0)?;
        while let (true, Some(after)) = (page.has_more, page.next_after_id) {
            let next = self.topic_page(id, after)?;
            self.check_progress(&topic_page_path(id, after), after, next.next_after_id)?;
            page.messages.extend(next.messages);
            page.topic = next.topic;
            page.has_more = next.has_more;
            page.next_after_id = next.next_after_id;
        }
        Ok(page)
    }

    pub fn search(&self, p: &SearchParams) -> Result<SearchAnswer, ClientError> {
        let q = query(&[
            ("q", Some(p.q.clone())),
            ("from", p.from.clone()),
            ("type", p.kind.map(|k| k.to_string())),
            ("limit", p.limit.map(|l| l.to_string())),
            ("before_id", p.before_id.map(|b| b.to_string())),
        ]);
        self.get(&format!("/search?{q}"))
    }
}

fn topic_page_path(id: u64, after_id: u64) -> String {
    format!("/topics/{id}?after_id={after_id}")
}
