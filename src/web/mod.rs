//! The browser room's assets, compiled into the binary so the room needs no files beside
//! it. The page carries no token and no room data (it reads both at run time from the URL
//! fragment and the API), and a strict Content-Security-Policy forbids inline script.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::protocol::ApiError;

const INDEX_HTML: &str = include_str!("assets/index.html");

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const MANIFEST: &str = "application/manifest+json";
const SVG: &str = "image/svg+xml";

/// Every asset the page may load, by the name it is requested under. `room.js` is the
/// entry module (loaded with `<script type="module">`); the others are the ES modules it
/// imports. A name not listed here is a 404.
const ASSETS: &[(&str, &str, &str)] = &[
    ("room.css", CSS, include_str!("assets/room.css")),
    ("room.js", JS, include_str!("assets/room.js")),
    ("util.js", JS, include_str!("assets/util.js")),
    ("state.js", JS, include_str!("assets/state.js")),
    ("session.js", JS, include_str!("assets/session.js")),
    ("markdown.js", JS, include_str!("assets/markdown.js")),
    ("screens.js", JS, include_str!("assets/screens.js")),
    ("timeline.js", JS, include_str!("assets/timeline.js")),
    ("history.js", JS, include_str!("assets/history.js")),
    ("alerts.js", JS, include_str!("assets/alerts.js")),
    ("receipts.js", JS, include_str!("assets/receipts.js")),
    // Installable as an app: a manifest and its icon. No service worker: nothing of the
    // room is cached for offline use.
    (
        "manifest.webmanifest",
        MANIFEST,
        include_str!("assets/manifest.webmanifest"),
    ),
    ("icon.svg", SVG, include_str!("assets/icon.svg")),
    ("composer.js", JS, include_str!("assets/composer.js")),
    ("roster.js", JS, include_str!("assets/roster.js")),
    ("brief.js", JS, include_str!("assets/brief.js")),
    ("live.js", JS, include_str!("assets/live.js")),
    ("host.js", JS, include_str!("assets/host.js")),
    // Topics, question cards and search (SPEC §9).
    ("topics.js", JS, include_str!("assets/topics.js")),
    ("questions.js", JS, include_str!("assets/questions.js")),
    ("search.js", JS, include_str!("assets/search.js")),
    // Approval cards (SPEC §12).
    ("approvals.js", JS, include_str!("assets/approvals.js")),
];

/// No inline script or style, nothing from other origins, no framing. (`manifest-src` lets
/// the page name its own web manifest; `img-src data:` is the unread badge drawn on the icon.)
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => page(content_type, body),
        None => ApiError::not_found(format!("no asset {file}")).into_response(),
    }
}
