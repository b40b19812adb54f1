//! What every endpoint shares: who is calling, a typed request body, and the answer to a
//! post once it is durable. A leaf of `server` (it imports only `state` and `http`), so
//! the endpoint files beside one another never import each other.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::http::{bearer, json_response, ok_json, query_param};
use super::state::AppState;
use crate::protocol::ApiError;
use crate::protocol::timefmt::now_ms;
use crate::protocol::wire::PostAnswer;
use crate::store::StoredMessage;

/// The state as a handler takes it.
pub(super) type S = State<Arc<AppState>>;
/// A handler's answer: a response, or the error contract.
pub(super) type ApiResult = Result<Response, ApiError>;

/// An authenticated caller.
pub(super) struct Caller {
    pub(super) who: usize,
    pub(super) alias: String,
    pub(super) token: String,
    pub(super) removed: bool,
    pub(super) is_host: bool,
}

pub(super) fn authenticate(s: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(ApiError::unauthorized)?;
    let mut room = s.room();
    let who = room
        .authenticate(token)
        .ok_or_else(ApiError::unauthorized)?;
    let p = room.participant(who);
    let caller = Caller {
        who,
        alias: p.alias.clone(),
        token: token.to_string(),
        removed: p.removed,
        is_host: p.is_host,
    };
    if !caller.removed {
        room.touch(who, now_ms());
    }
    Ok(caller)
}

/// The caller, refusing removed participants (410).
pub(super) fn active(s: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let c = authenticate(s, bearer(headers))?;
    if c.removed {
        return Err(ApiError::removed());
    }
    Ok(c)
}

/// 403 when the query's `participant` names someone other than the caller.
pub(super) fn check_participant(uri: &Uri, c: &Caller) -> Result<(), ApiError> {
    match query_param(uri, "participant") {
        Some(p) if !p.is_empty() && p != c.alias => Err(ApiError::new(
            403,
            "participant_mismatch",
            format!("this token belongs to {:?}, not {p:?}", c.alias),
        )),
        _ => Ok(()),
    }
}

/// A JSON body as `T`, or 400 `invalid_body` naming what does not fit.
pub(super) fn typed<T: DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("the body does not fit: {e}")))
}

/// Returns once everything written so far is durable: at once unless `--fsync batch`,
/// where it waits for the sync that covers the log's end now.
pub(super) async fn durable(s: &AppState) -> Result<(), ApiError> {
    let end = s.room().log.end_offset();
    if let Some(gc) = &s.group_commit {
        gc.wait(end).await?;
    }
    Ok(())
}

/// Answers a post (a message, a topic, a status change, an answer): after the sync that
/// covers it (with `--fsync batch`; the log's end now is at or past its line), 201 and a
/// wake, or 200 for an idempotent repeat.
pub(super) async fn posted(
    s: &AppState,
    stored: Arc<StoredMessage>,
    idempotent: bool,
) -> ApiResult {
    durable(s).await?;
    let answer = PostAnswer {
        ok: true,
        message: stored,
        idempotent,
    };
    if idempotent {
        return Ok(ok_json(&answer));
    }
    s.hub.notify();
    Ok(json_response(StatusCode::CREATED, &answer))
}
