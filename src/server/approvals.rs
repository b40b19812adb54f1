//! `POST /approvals` (SPEC §12) and the timer that turns an unanswered approval into a
//! recorded `deny` when its time is up. Answers go through `/topics/{id}/answer`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;

use super::api::{ApiResult, S, active, posted, typed};
use super::state::AppState;
use crate::protocol::approval::NewApprovalBody;

/// The route of §12, merged into the main router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/approvals", post(open_approval))
}

async fn open_approval(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body: NewApprovalBody = typed(s.read_body(&headers, body).await?)?;
    let (stored, idempotent) = s.room().open_approval(c.who, &body)?;
    posted(&s, stored, idempotent).await
}
