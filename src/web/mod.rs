//! The browser room's assets, compiled into the binary so the room needs no files beside
//! it. The page carries no token and no room data (it reads both at run time from the URL
//! fragment and the API), and a strict Content-Security-Policy forbids inline script.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::protocol::ApiError;

const INDEX_HTML: &str = include_str!("assets/index.html");
const ROOM_CSS: &str = include_str!("assets/room.css");
const ROOM_JS: &str = include_str!("assets/room.js");

/// No inline script or style, nothing from other origins, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "room.css" => page("text/css; charset=utf-8", ROOM_CSS),
        "room.js" => page("text/javascript; charset=utf-8", ROOM_JS),
        _ => ApiError::not_found(format!("no asset {file}")).into_response(),
    }
}
