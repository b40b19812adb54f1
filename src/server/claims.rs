//! The endpoints of SPEC §13 (claims) and the sweep that ends claims at their TTL. Like
//! every handler: authenticate, one thing under the room lock, wake the hub on a change.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};

use super::api::{ApiResult, S, active, durable, typed};
use super::http::{json_response, ok_json, optional_number, query_param};
use super::state::AppState;
use crate::protocol::ApiError;
use crate::protocol::claim::{ClaimAnswer, ClaimView, ClaimsAnswer, NewClaimBody, RenewBody};
use crate::protocol::glob::Glob;
use crate::protocol::timefmt::now_ms;
use crate::store::StoredMessage;

/// The routes of §13, merged into the main router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/claims", get(list).post(claim))
        .route("/claims/{id}/renew", post(renew))
        .route("/claims/{id}/release", post(release))
}

fn claim_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .map_err(|_| ApiError::new(404, "claim_not_found", format!("there is no claim {raw:?}")))
}

/// 201 with the claim and its message, once the message is durable.
async fn changed(s: &AppState, claim: ClaimView, message: Arc<StoredMessage>) -> ApiResult {
    durable(s).await?;
    s.hub.notify();
    let answer = ClaimAnswer {
        ok: true,
        claim,
        message,
    };
    Ok(json_response(StatusCode::CREATED, &answer))
}

async fn claim(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body: NewClaimBody = typed(s.read_body(&headers, body).await?)?;
    let (view, stored) = s.room().claim(c.who, &body)?;
    changed(&s, view, stored).await
}

async fn renew(State(s): S, Path(id): Path<String>, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let id = claim_id(&id)?;
    let body: RenewBody = typed(s.read_body(&headers, body).await?)?;
    let (view, stored) = s.room().renew_claim(c.who, id, &body)?;
    changed(&s, view, stored).await
}

async fn release(State(s): S, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    let c = active(&s, &headers)?;
    let id = claim_id(&id)?;
    let (view, stored) = s.room().release_claim(c.who, id)?;
    changed(&s, view, stored).await
}

async fn list(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    active(&s, &headers)?;
    let filter = match query_param(&uri, "path").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            Glob::parse(&p).map_err(|e| ApiError::bad_request("invalid_path", e.to_string()))?,
        ),
    };
    let after = optional_number(&uri, "after_id")?.unwrap_or(0);
    let (claims, has_more) = s.room().claims_page(filter.as_ref(), now_ms(), after);
    let next_after_id = has_more.then(|| claims.last().map(|c| c.id)).flatten();
    Ok(ok_json(&ClaimsAnswer {
        ok: true,
        claims,
        has_more,
        next_after_id,
    }))
}
