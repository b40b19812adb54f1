//! A room message and the parsing of what a client may post. The client controls only
//! the text, type, reply reference, idempotency key and addressing hints; identity,
//! order and time always come from the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Limits;
use super::claim::{ClaimMeta, ClaimUpdate};
use super::error::ApiError;
use super::participant::str_enum;
use super::topic::{TopicFields, TopicMeta, TopicUpdate};

str_enum!(
    /// What a message is for. `system` is written only by the server.
    MessageType {
        Message = "message",
        Question = "question",
        Reply = "reply",
        Status = "status",
        RequestReview = "request_review",
        RequestDebug = "request_debug",
        Handoff = "handoff",
        System = "system",
        Topic = "topic",
        TopicUpdate = "topic_update",
        Claim = "claim",
        ClaimUpdate = "claim_update",
    }
);

/// One line of `messages.jsonl`, and one element of every `messages` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: u64,
    pub room: String,
    pub ts: String,
    pub from: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub text: String,
    #[serde(default)]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// On a `topic` message: its title and starting status (SPEC §9.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<TopicMeta>,
    /// On a comment or a `topic_update`: the topic it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<u64>,
    /// On a `topic_update`: the new status, note and answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_update: Option<TopicUpdate>,
    /// On a `claim` message: the paths held and until when (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimMeta>,
    /// On a `claim_update`: the claim it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<u64>,
    /// On a `claim_update`: renewed or ended, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_update: Option<ClaimUpdate>,
}

/// A validated `POST /messages` body.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageInput {
    pub text: String,
    pub kind: MessageType,
    pub reply_to: Option<u64>,
    pub client_msg_id: Option<String>,
    /// Addressing hints: aliases the sender names in `to`; they count as mentions.
    pub to: Vec<String>,
    /// Topic parts: only `topic_id` (a comment) comes from `POST /messages`.
    pub topic: TopicFields,
}

pub const CLIENT_MSG_ID_MAX: usize = 128;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_body", message)
}

impl MessageInput {
    /// Validates a decoded JSON body. Fields the client may not set (`from`, `room`,
    /// `id`, `ts`) and unknown fields are ignored.
    pub fn from_json(body: &Value, limits: &Limits) -> Result<MessageInput, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| invalid("the body must be a JSON object like {\"text\": \"...\"}"))?;
        let kind = match obj.get("type") {
            None | Some(Value::Null) => MessageType::Message,
            Some(Value::String(s)) => match MessageType::parse(s) {
                Some(MessageType::System) => {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        "type \"system\" is reserved for the server",
                    ));
                }
                Some(MessageType::Topic | MessageType::TopicUpdate) => {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        "topics are opened with POST /topics and updated through /topics/{id}/status or /answer",
                    ));
                }
                Some(MessageType::Claim | MessageType::ClaimUpdate) => {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        "claims are made with POST /claims and changed through /claims/{id}/renew or /release",
                    ));
                }
                Some(t) => t,
                None => {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        format!("type must be one of {}", client_types()),
                    ));
                }
            },
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_type",
                    "type must be a string",
                ));
            }
        };
        let text = match obj.get("text") {
            Some(Value::String(s)) if !super::names::is_blank(s) => s.clone(),
            Some(Value::String(_)) => return Err(invalid("text must not be blank")),
            None | Some(Value::Null) => return Err(invalid("text is required")),
            Some(_) => return Err(invalid("text must be a string")),
        };
        let cap = if kind == MessageType::Handoff {
            limits.handoff_chars
        } else {
            limits.text_chars
        };
        let chars = text.chars().count();
        if chars > cap {
            return Err(ApiError::too_large(
                "message_too_large",
                format!("text is {chars} characters; the limit for type {kind} is {cap}"),
            ));
        }
        let reply_to = match obj.get("reply_to") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(id) if id > 0 => Some(id),
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_reply_to",
                        "reply_to must be the positive integer id of a message",
                    ));
                }
            },
        };
        let client_msg_id = match obj.get("client_msg_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= CLIENT_MSG_ID_MAX
                    && !s.chars().any(char::is_control) =>
            {
                Some(s.clone())
            }
            Some(_) => {
                return Err(invalid(format!(
                    "client_msg_id must be a string of 1-{CLIENT_MSG_ID_MAX} bytes without control characters"
                )));
            }
        };
        let to = match obj.get("to") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => {
                let mut to = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => to.push(s.to_string()),
                        None => return Err(invalid("to must be an alias or a list of aliases")),
                    }
                }
                to
            }
            Some(_) => return Err(invalid("to must be an alias or a list of aliases")),
        };
        let topic_id = match obj.get("topic_id") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(id) if id > 0 => Some(id),
                _ => {
                    return Err(invalid(
                        "topic_id must be the positive integer id of a topic",
                    ));
                }
            },
        };
        Ok(MessageInput {
            text,
            kind,
            reply_to,
            client_msg_id,
            to,
            topic: TopicFields {
                topic_id,
                ..TopicFields::default()
            },
        })
    }
}

/// The types a client may post, for error messages and help.
pub fn client_types() -> String {
    MessageType::ALL
        .iter()
        .filter(|t| {
            !matches!(
                t,
                MessageType::System
                    | MessageType::Topic
                    | MessageType::TopicUpdate
                    | MessageType::Claim
                    | MessageType::ClaimUpdate
            )
        })
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<MessageInput, ApiError> {
        MessageInput::from_json(&v, &Limits::default())
    }

    #[test]
    fn accepts_a_minimal_body_and_ignores_identity_fields() {
        let m =
            parse(json!({"text": "hi", "from": "x", "id": 9, "room": "r", "extra": 1})).unwrap();
        assert_eq!(m.text, "hi");
        assert_eq!(m.kind, MessageType::Message);
    }

    #[test]
    fn rejects_bad_fields_with_codes() {
        let code = |v| parse(v).unwrap_err().code;
        assert_eq!(code(json!({"text": "  "})), "invalid_body");
        assert_eq!(code(json!({"text": 42})), "invalid_body");
        assert_eq!(code(json!({})), "invalid_body");
        assert_eq!(code(json!([1])), "invalid_body");
        assert_eq!(code(json!({"text": "x", "type": "system"})), "invalid_type");
        assert_eq!(code(json!({"text": "x", "type": "shout"})), "invalid_type");
        assert_eq!(
            code(json!({"text": "x", "reply_to": -1})),
            "invalid_reply_to"
        );
        assert_eq!(
            code(json!({"text": "x", "reply_to": "3"})),
            "invalid_reply_to"
        );
        assert_eq!(
            code(json!({"text": "x", "client_msg_id": ""})),
            "invalid_body"
        );
        assert_eq!(code(json!({"text": "x", "to": 5})), "invalid_body");
    }

    #[test]
    fn text_caps_depend_on_type() {
        let long = "x".repeat(30_000);
        let e = parse(json!({"text": long})).unwrap_err();
        assert_eq!((e.status, e.code), (413, "message_too_large"));
        assert!(parse(json!({"text": long, "type": "handoff"})).is_ok());
        assert!(parse(json!({"text": "x".repeat(64_001), "type": "handoff"})).is_err());
    }

    #[test]
    fn message_json_shape() {
        let m = Message {
            id: 1,
            room: "r".into(),
            ts: "t".into(),
            from: "a".into(),
            kind: MessageType::RequestReview,
            text: "x".into(),
            mentions: vec![],
            reply_to: None,
            client_msg_id: None,
            topic: None,
            topic_id: None,
            topic_update: None,
            claim: None,
            claim_id: None,
            claim_update: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert!(v.get("topic").is_none() && v.get("topic_id").is_none());
        assert_eq!(v["type"], "request_review");
        assert!(v.get("reply_to").is_none());
        let back: Message = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }
}
