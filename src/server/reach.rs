//! SPEC §8 on the wire: the reach fields of `/join`, `/profile` and `/invite` bodies, and
//! `POST /wake`, where a wake runner reports each turn (`{event: started|succeeded|failed}`).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;

use super::api::{ApiResult, S, active, typed};
use super::http::ok_json;
use crate::protocol::ApiError;
use crate::protocol::reach::{ProfileBody, Reach, ReachBody, ReachDecl, WakeReport};

/// The reach a `/join` body declares, if any.
pub(super) fn join_reach(body: Value) -> Result<Option<ReachDecl>, ApiError> {
    typed::<ReachBody>(body)?.validate()
}

/// A `/profile` body: the display name and reach it sets, at least one of them.
pub(super) fn profile_body(body: Value) -> Result<(Option<String>, Option<ReachDecl>), ApiError> {
    let p: ProfileBody = typed(body)?;
    let decl = p.reach.validate()?;
    if p.display_name.is_none() && decl.is_none() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "send at least one of display_name, reach (with poll_every_s for poll)",
        ));
    }
    Ok((p.display_name, decl))
}

/// The reach an `/invite` body requests, if any.
pub(super) fn requested_reach(reach: Option<&str>) -> Result<Option<Reach>, ApiError> {
    reach
        .map(|r| {
            Reach::parse(r).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_reach",
                    format!("reach must be one of {}", Reach::choices()),
                )
            })
        })
        .transpose()
}

/// `POST /wake {event}`: a wake runner's turn report (sets `last_woken_at`, `wake_failing`).
pub(super) async fn wake(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let report: WakeReport = typed(body)?;
    let answer = s.room().record_wake(c.who, report.event)?;
    Ok(ok_json(&answer))
}
