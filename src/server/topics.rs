//! The endpoints of SPEC §9: topics, their status and answers, and search. Like every
//! handler: authenticate, one thing under the room lock, wake the hub on a change.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};

use super::api::{ApiResult, S, active, posted, typed};
use super::http::{ok_json, optional_number, query_param};
use super::plain::{PlainPost, post_body};
use super::state::AppState;
use crate::protocol::topic::{
    AnswerBody, NewTopicBody, SearchAnswer, SearchHit, StatusBody, TopicFilter, TopicKind,
    TopicPage, TopicStatus, TopicsAnswer,
};
use crate::protocol::{ApiError, MessageType};
use crate::store::room::{SearchQuery, search as run_search};

/// The routes of §9, merged into the main router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/topics", get(list_topics).post(open_topic))
        .route("/topics/{id}", get(show_topic))
        .route("/topics/{id}/status", post(set_status))
        .route("/topics/{id}/answer", post(answer))
        .route("/search", get(search))
}

fn topic_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .map_err(|_| ApiError::new(404, "topic_not_found", format!("there is no topic {raw:?}")))
}

async fn open_topic(State(s): S, headers: HeaderMap, uri: Uri, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body: NewTopicBody = typed(post_body(&s, &headers, &uri, body, PlainPost::Topic).await?)?;
    let (stored, idempotent) = s.room().open_topic(c.who, &body)?;
    posted(&s, stored, idempotent).await
}

async fn set_status(
    State(s): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let c = active(&s, &headers)?;
    let id = topic_id(&id)?;
    let body: StatusBody = typed(s.read_body(&headers, body).await?)?;
    let stored = s.room().set_topic_status(c.who, id, &body)?;
    posted(&s, stored, false).await
}

async fn answer(State(s): S, Path(id): Path<String>, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let id = topic_id(&id)?;
    let body: AnswerBody = typed(s.read_body(&headers, body).await?)?;
    let stored = s.room().answer_topic(c.who, id, &body)?;
    posted(&s, stored, false).await
}

fn parse_param<T>(
    uri: &Uri,
    name: &str,
    parse: fn(&str) -> Option<T>,
    choices: String,
) -> Result<Option<T>, ApiError> {
    match query_param(uri, name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(&v).map(Some).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("{name} must be one of {choices}"))
        }),
    }
}

async fn list_topics(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    active(&s, &headers)?;
    let filter = TopicFilter {
        status: parse_param(&uri, "status", TopicStatus::parse, TopicStatus::choices())?,
        kind: parse_param(&uri, "kind", TopicKind::parse, TopicKind::choices())?,
        tag: query_param(&uri, "tag").filter(|t| !t.is_empty()),
    };
    let before = optional_number(&uri, "before_activity")?;
    let (topics, has_more) = s.room().topics_page(&filter, before);
    let next_before_activity = has_more
        .then(|| topics.last().map(|t| t.last_activity_id))
        .flatten();
    Ok(ok_json(&TopicsAnswer {
        ok: true,
        topics,
        has_more,
        next_before_activity,
    }))
}

/// `GET /topics/{id}?after_id=N`: the thread a page at a time, like `/messages`.
async fn show_topic(
    State(s): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult {
    let c = active(&s, &headers)?;
    let slot = s.pages.slot(c.who).await;
    let id = topic_id(&id)?;
    let after = optional_number(&uri, "after_id")?.unwrap_or(0);
    let (topic, messages, has_more) = s.room().topic_page(id, after)?;
    let next_after_id = has_more
        .then(|| messages.last().map(|m| m.msg.id))
        .flatten();
    Ok(slot.answer(ok_json(&TopicPage {
        ok: true,
        topic,
        messages,
        has_more,
        next_after_id,
    })))
}

async fn search(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let c = active(&s, &headers)?;
    let query = SearchQuery::parse(
        &query_param(&uri, "q").unwrap_or_default(),
        query_param(&uri, "from"),
        parse_param(&uri, "type", MessageType::parse, MessageType::choices())?,
        optional_number(&uri, "limit")?,
        optional_number(&uri, "before_id")?,
    )?;
    let slot = s.pages.slot(c.who).await;
    // The scan runs on the blocking pool: it may take a while on a long log, and it
    // takes the room's lock only for moments.
    let state = s.clone();
    let page = tokio::task::spawn_blocking(move || run_search(|| state.room(), &query))
        .await
        .map_err(|e| ApiError::new(500, "internal", format!("search failed: {e}")))??;
    let results = page
        .hits
        .into_iter()
        .map(|(message, snippet)| SearchHit { message, snippet })
        .collect();
    Ok(slot.answer(ok_json(&SearchAnswer {
        ok: true,
        results,
        has_more: page.has_more,
        next_before_id: page.next_before_id,
    })))
}
