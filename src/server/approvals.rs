//! `POST /approvals` (SPEC §12) and the timer that turns an unanswered approval into a
//! recorded `deny` when its time is up. Answers go through `/topics/{id}/answer`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;

use super::AppState;
use super::routes::{active, posted};
use super::topics::typed;
use crate::protocol::ApiError;
use crate::protocol::approval::NewApprovalBody;

/// The route of §12, merged into the main router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/approvals", post(open_approval))
}

async fn open_approval(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let c = active(&s, &headers)?;
    let body: NewApprovalBody = typed(s.read_body(&headers, body).await?)?;
    let (stored, idempotent) = s.room().open_approval(c.who, &body)?;
    posted(&s, stored, idempotent).await
}

/// Once a second, records the expiry of every approval whose time is up and wakes the
/// waiters if it did (the expiry is decided here, not by each reader's clock).
pub async fn expire_periodically(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let expired = state.room().expire_approvals();
        match expired {
            Ok(true) => state.hub.notify(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e.message, "could not record an approval's expiry"),
        }
    }
}
