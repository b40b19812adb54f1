//! The one table of endpoints, and the exposure rules every request passes first. The
//! top of the endpoint files: it imports them all and none imports it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::api::S;
use super::http::check_origin;
use super::state::AppState;
use super::{approvals, claims, reach, routes, topics, wait};
use crate::protocol::ApiError;
use crate::protocol::url::is_loopback_host;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(crate::web::index))
        .route("/assets/{file}", get(crate::web::asset))
        .route("/card", get(routes::card))
        .route("/join", post(routes::join))
        .route("/brief", get(routes::get_brief).post(routes::set_brief))
        .route(
            "/attendance",
            get(routes::get_attendance).post(routes::set_attendance),
        )
        .route(
            "/profile",
            get(routes::get_profile).post(routes::set_profile),
        )
        .route(
            "/messages",
            get(routes::get_messages).post(routes::post_message),
        )
        .route("/wait", get(wait::wait))
        .route("/leave", post(routes::leave))
        .route("/close", post(routes::close))
        .route("/status", get(routes::status))
        .route("/invite", post(routes::invite))
        .route("/remove", post(routes::remove))
        .route("/export", get(routes::export))
        .route("/public-url", post(routes::set_public_url))
        .merge(topics::routes())
        .merge(claims::routes())
        .merge(approvals::routes())
        .route("/wake", post(reach::wake))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            exposure_guard,
        ))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// SPEC §4 exposure rules: a non-loopback `Host` is refused unless `--allow-remote`, and
/// writes from another origin are refused always.
async fn exposure_guard(State(s): S, req: Request, next: Next) -> Response {
    if !s.allow_remote {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_loopback_host(host) {
            return ApiError::new(
                403,
                "insecure_remote",
                "this room server only answers on loopback; reach it through a TLS tunnel or proxy (see `agentgather tunnel run`)",
            )
            .into_response();
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut allowed = s.allowed_origins();
        // The page may be opened as localhost or 127.0.0.1: its own loopback origin is
        // same-origin. (A foreign page cannot claim a loopback Origin.)
        if let Some(host) = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            && is_loopback_host(host)
        {
            allowed.push(format!("http://{}", host.to_ascii_lowercase()));
        }
        if let Err(e) = check_origin(req.headers(), &allowed) {
            return e.into_response();
        }
    }
    next.run(req).await
}
