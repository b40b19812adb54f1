//! Topics, questions for a person and search (SPEC §9) as data: what a topic message
//! carries in the log, the bodies a client posts, their validation, and the answers of
//! `/topics` and `/search`. Pure, like the rest of `protocol`.

use serde::{Deserialize, Serialize};

use super::approval::Approval;
use super::error::ApiError;
use super::message::Message;
use super::participant::str_enum;

str_enum!(
    /// Where a topic stands. Every topic starts `open`.
    TopicStatus {
        Open = "open",
        Answered = "answered",
        Resolved = "resolved",
        Closed = "closed",
    }
);

str_enum!(
    /// A free discussion, or a question someone is asked to answer.
    TopicKind {
        Discussion = "discussion",
        Question = "question",
        Approval = "approval",
    }
);

/// What a `type: "topic"` message carries: its title and where it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub title: String,
    pub status: TopicStatus,
    pub kind: TopicKind,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// On an approval: the tool call put to the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// An answer to a question topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub by: String,
    /// An approval nobody answered in time (it reads as `deny`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

impl TopicAnswer {
    /// The chosen option and the text, those given, joined by `separator`.
    pub fn what(&self, separator: &str) -> String {
        [self.option.as_deref(), self.text.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(separator)
    }
}

/// What a `type: "topic_update"` message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicUpdate {
    pub status: TopicStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<TopicAnswer>,
}

/// The topic parts of a message to append (all empty for a plain message).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicFields {
    pub topic: Option<TopicMeta>,
    pub topic_id: Option<u64>,
    pub topic_update: Option<TopicUpdate>,
}

pub const TITLE_MAX: usize = 200;
pub const TAGS_MAX: usize = 12;
pub const OPTIONS_MAX: usize = 10;
pub const OPTION_MAX: usize = 80;
pub const NOTE_MAX: usize = 2000;
pub const ANSWER_TEXT_MAX: usize = 4000;

/// `POST /topics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewTopicBody {
    pub title: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TopicKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// A comment: `POST /messages` with `topic_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommentBody {
    pub text: String,
    pub topic_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// `POST /topics/{id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusBody {
    pub status: TopicStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /topics/{id}/answer`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnswerBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn one_line(s: &str) -> bool {
    !super::names::is_blank(s) && !s.chars().any(char::is_control)
}

/// The idempotency key of a topic or approval body, if any: 1-128 bytes, one line.
pub fn check_client_msg_id(key: Option<&str>) -> Result<(), ApiError> {
    let max = super::message::CLIENT_MSG_ID_MAX;
    match key {
        Some(c) if c.is_empty() || c.len() > max || c.chars().any(char::is_control) => {
            Err(invalid(format!(
                "client_msg_id must be a string of 1-{max} bytes without control characters"
            )))
        }
        _ => Ok(()),
    }
}

impl NewTopicBody {
    /// Validates the body into what the topic message carries (status `open`).
    pub fn validate(&self) -> Result<TopicMeta, ApiError> {
        let title = self.title.trim();
        let n = title.chars().count();
        if n == 0 || n > TITLE_MAX || !one_line(title) {
            return Err(invalid(format!(
                "title must be 1-{TITLE_MAX} characters on one line"
            )));
        }
        if super::names::is_blank(&self.text) {
            return Err(invalid("text must not be blank"));
        }
        check_client_msg_id(self.client_msg_id.as_deref())?;
        if self.tags.len() > TAGS_MAX || !self.tags.iter().all(|t| is_tag(t)) {
            return Err(invalid(format!(
                "tags must be at most {TAGS_MAX} slugs of a-z, 0-9, '-' and '_' (1-40 each)"
            )));
        }
        if self.kind == Some(TopicKind::Approval) {
            return Err(invalid("approvals are opened with POST /approvals"));
        }
        let kind = self.kind.unwrap_or(if self.options.is_some() {
            TopicKind::Question
        } else {
            TopicKind::Discussion
        });
        let options = match &self.options {
            None => None,
            Some(_) if kind != TopicKind::Question => {
                return Err(invalid("only a question may list options"));
            }
            Some(o) => {
                let ok = |s: &String| {
                    let n = s.trim().chars().count();
                    (1..=OPTION_MAX).contains(&n) && one_line(s)
                };
                if o.is_empty() || o.len() > OPTIONS_MAX || !o.iter().all(ok) {
                    return Err(invalid(format!(
                        "options must be 1-{OPTIONS_MAX} lines of 1-{OPTION_MAX} characters"
                    )));
                }
                Some(o.iter().map(|s| s.trim().to_string()).collect())
            }
        };
        let mut tags = self.tags.clone();
        tags.dedup();
        Ok(TopicMeta {
            title: title.to_string(),
            status: TopicStatus::Open,
            kind,
            tags,
            options,
            to: self.to.clone(),
            approval: None,
        })
    }
}

impl StatusBody {
    pub fn validate(&self) -> Result<(), ApiError> {
        match &self.note {
            Some(n) if n.chars().count() > NOTE_MAX => Err(invalid(format!(
                "note must be at most {NOTE_MAX} characters"
            ))),
            _ => Ok(()),
        }
    }
}

impl AnswerBody {
    pub fn validate(&self) -> Result<(), ApiError> {
        let text = self.text.as_deref().filter(|t| !super::names::is_blank(t));
        if self.option.is_none() && text.is_none() {
            return Err(invalid("an answer needs an option, a text, or both"));
        }
        if self
            .text
            .as_ref()
            .is_some_and(|t| t.chars().count() > ANSWER_TEXT_MAX)
        {
            return Err(invalid(format!(
                "answer text must be at most {ANSWER_TEXT_MAX} characters"
            )));
        }
        Ok(())
    }
}

/// One topic as `/topics` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicView {
    pub id: u64,
    pub title: String,
    pub status: TopicStatus,
    pub kind: TopicKind,
    pub tags: Vec<String>,
    pub from: String,
    pub ts: String,
    pub to: Option<String>,
    pub options: Vec<String>,
    pub answer: Option<TopicAnswer>,
    /// How many comments it has.
    pub comments: u64,
    pub last_activity_id: u64,
    /// On an approval: the tool call put to the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// `GET /topics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicsAnswer {
    pub ok: bool,
    pub topics: Vec<TopicView>,
    /// More topics (with older activity) follow this page.
    #[serde(default)]
    pub has_more: bool,
    /// With `has_more`: the `before_activity` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_activity: Option<u64>,
}

/// `GET /topics/{id}`: the topic and a page of its thread (the topic, comments, updates),
/// by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicPage<M = Message> {
    pub ok: bool,
    pub topic: TopicView,
    pub messages: Vec<M>,
    /// The thread goes on past this page (pages stop at a page's bytes).
    #[serde(default)]
    pub has_more: bool,
    /// With `has_more`: the `after_id` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_id: Option<u64>,
}

/// The filters of `GET /topics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicFilter {
    pub status: Option<TopicStatus>,
    pub tag: Option<String>,
    pub kind: Option<TopicKind>,
}

impl TopicFilter {
    pub fn matches(&self, t: &TopicView) -> bool {
        self.status.is_none_or(|s| s == t.status)
            && self.kind.is_none_or(|k| k == t.kind)
            && self.tag.as_ref().is_none_or(|g| t.tags.contains(g))
    }
}

/// One hit of `/search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit<M = Message> {
    pub message: M,
    pub snippet: String,
}

/// `GET /search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchAnswer<M = Message> {
    pub ok: bool,
    pub results: Vec<SearchHit<M>>,
    pub has_more: bool,
    /// With `has_more`: the `before_id` of the next page (results stop at `limit` or at a
    /// page's bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before_id: Option<u64>,
}

/// What `ask --wait` prints once the question is answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskAnswer {
    pub ok: bool,
    pub topic_id: u64,
    pub answer: TopicAnswer,
}

pub const QUERY_MAX: usize = 200;
pub const SNIPPET_MAX: usize = 200;

/// The case-folded words of a search query (400 `invalid_query` unless 1-200 chars
/// with at least one word).
pub fn query_words(q: &str) -> Result<Vec<String>, ApiError> {
    let n = q.chars().count();
    let words: Vec<String> = fold(q).split_whitespace().map(str::to_string).collect();
    if n == 0 || n > QUERY_MAX || words.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q must be 1-{QUERY_MAX} characters with at least one word"),
        ));
    }
    Ok(words)
}

/// Unicode case folding as search uses it (lowercase).
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// At most [`SNIPPET_MAX`] characters of `text` around the first match of any of
/// `words` (case-folded), on one line, with `…` where it was cut. Linear in the text for
/// each word: the text is folded once, and each word found with `str::find`.
pub fn snippet(text: &str, words: &[String]) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    // The folded text, and where each original char's folding starts in it.
    let mut folded = String::with_capacity(text.len());
    let mut starts: Vec<usize> = Vec::with_capacity(chars.len());
    for c in &chars {
        starts.push(folded.len());
        folded.extend(c.to_lowercase());
    }
    let first = words
        .iter()
        .filter(|w| !w.is_empty())
        .filter_map(|w| folded.find(w.as_str()))
        .min()
        .map_or(0, |at| {
            starts.partition_point(|&s| s <= at).saturating_sub(1)
        });
    if chars.len() <= SNIPPET_MAX {
        return chars.into_iter().collect();
    }
    let room = SNIPPET_MAX - 2;
    let start = first.saturating_sub(60).min(chars.len() - room);
    let end = (start + room).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> NewTopicBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn validates_titles_tags_and_options() {
        let ok =
            body(serde_json::json!({"title": " Ship? ", "text": "x", "options": ["yes", "no"]}));
        let m = ok.validate().unwrap();
        assert_eq!((m.title.as_str(), m.kind), ("Ship?", TopicKind::Question));
        let code = |v| body(v).validate().unwrap_err().code;
        assert_eq!(
            code(serde_json::json!({"title": "", "text": "x"})),
            "invalid_body"
        );
        let long = "t".repeat(201);
        assert_eq!(
            code(serde_json::json!({"title": long, "text": "x"})),
            "invalid_body"
        );
        assert_eq!(
            code(serde_json::json!({"title": "t", "text": "x", "tags": ["A b"]})),
            "invalid_body"
        );
        let many: Vec<String> = (0..13).map(|i| format!("t{i}")).collect();
        assert_eq!(
            code(serde_json::json!({"title": "t", "text": "x", "tags": many})),
            "invalid_body"
        );
        assert_eq!(
            code(serde_json::json!({"title": "t", "text": "x", "options": []})),
            "invalid_body"
        );
        let o = "o".repeat(81);
        assert_eq!(
            code(serde_json::json!({"title": "t", "text": "x", "options": [o]})),
            "invalid_body"
        );
        assert_eq!(
            code(
                serde_json::json!({"title": "t", "text": "x", "kind": "discussion", "options": ["a"]})
            ),
            "invalid_body"
        );
    }

    #[test]
    fn queries_and_snippets() {
        assert_eq!(query_words("  Foo BAR ").unwrap(), vec!["foo", "bar"]);
        assert_eq!(query_words("   ").unwrap_err().code, "invalid_query");
        assert_eq!(
            query_words(&"q".repeat(201)).unwrap_err().code,
            "invalid_query"
        );
        let text = format!("{} NEEDLE here {}", "a".repeat(500), "b".repeat(500));
        let s = snippet(&text, &["needle".to_string()]);
        assert!(s.chars().count() <= SNIPPET_MAX, "{}", s.chars().count());
        assert!(s.contains("NEEDLE") && s.starts_with('…') && s.ends_with('…'));
        assert_eq!(snippet("short\ntext", &["x".to_string()]), "short text");
    }
}
