//! SPEC §10, plain-text posts: `POST /messages` and `POST /topics` also take
//! `Content-Type: text/plain`, the body being the text and the other fields query
//! parameters, so an agent with only curl posts multi-line text (quotes, newlines,
//! backslashes) with `--data-binary @file` and writes no JSON by hand. The plain form is
//! turned into the JSON body it stands for and then goes through the one validation of
//! that endpoint, so both forms accept and refuse exactly the same things.

use axum::body::Body;
use axum::http::{HeaderMap, Uri, header};
use serde_json::{Map, Value};

use super::state::AppState;
use crate::protocol::ApiError;

/// Which endpoint's fields the query may carry.
#[derive(Clone, Copy)]
pub enum PlainPost {
    Message,
    Topic,
}

/// The query parameters that are numbers in the JSON form.
const NUMBERS: &[&str] = &["reply_to", "topic_id"];

impl PlainPost {
    /// `(query name, JSON field, repeated)`.
    fn fields(self) -> &'static [(&'static str, &'static str, bool)] {
        match self {
            PlainPost::Message => &[
                ("type", "type", false),
                ("reply_to", "reply_to", false),
                ("to", "to", false),
                ("topic_id", "topic_id", false),
                ("client_msg_id", "client_msg_id", false),
            ],
            PlainPost::Topic => &[
                ("title", "title", false),
                ("kind", "kind", false),
                ("to", "to", false),
                ("client_msg_id", "client_msg_id", false),
                ("option", "options", true),
                ("tag", "tags", true),
            ],
        }
    }
}

/// Whether the request says its body is plain text.
fn is_plain(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
}

/// The JSON body of a post: read as JSON, or built from a plain-text body and the query.
pub async fn post_body(
    s: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    endpoint: PlainPost,
) -> Result<Value, ApiError> {
    if !is_plain(headers) {
        return s.read_body(headers, body).await;
    }
    let bytes = s.read_bytes(headers, body).await?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::bad_request("invalid_body", "a text/plain body must be UTF-8 text")
    })?;
    Ok(plain_to_json(text, uri.query().unwrap_or(""), endpoint))
}

/// The JSON object a plain-text post stands for: `text` is the body byte for byte.
fn plain_to_json(text: String, query: &str, endpoint: PlainPost) -> Value {
    let mut obj = Map::new();
    obj.insert("text".into(), Value::String(text));
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let Some(&(_, field, repeated)) = endpoint.fields().iter().find(|(q, _, _)| *q == k) else {
            continue;
        };
        let value = match v.parse::<u64>() {
            Ok(n) if NUMBERS.contains(&field) => Value::from(n),
            _ => Value::String(v.into_owned()),
        };
        if repeated {
            if let Value::Array(items) =
                obj.entry(field).or_insert_with(|| Value::Array(Vec::new()))
            {
                items.push(value);
            }
        } else {
            obj.entry(field).or_insert(value);
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_message_keeps_its_text_and_types_its_numbers() {
        let text = "line \"one\"\n\\d+ $HOME `x`\n".to_string();
        let v = plain_to_json(
            text.clone(),
            "reply_to=7&type=reply&to=rev&from=eve&reply_to=9",
            PlainPost::Message,
        );
        assert_eq!(v["text"], text.as_str());
        assert_eq!(
            v["reply_to"], 7,
            "the first value wins; a number stays a number"
        );
        assert_eq!(v["type"], "reply");
        assert_eq!(v["to"], "rev");
        assert!(
            v.get("from").is_none(),
            "only the endpoint's own fields pass"
        );
        let bad = plain_to_json("x".into(), "reply_to=abc", PlainPost::Message);
        assert_eq!(bad["reply_to"], "abc", "left for the validation to refuse");
    }

    #[test]
    fn a_plain_topic_collects_repeated_options() {
        let v = plain_to_json(
            "body".into(),
            "title=Which%20DB%3F&option=pg&option=sqlite&tag=db&to=host",
            PlainPost::Topic,
        );
        assert_eq!(v["title"], "Which DB?");
        assert_eq!(v["options"], serde_json::json!(["pg", "sqlite"]));
        assert_eq!(v["tags"], serde_json::json!(["db"]));
        assert!(v.get("reply_to").is_none());
    }
}
