//! The browser room's assets, compiled into the binary so the room needs no files beside
//! it. The page carries no token and no room data (it reads both at run time from the URL
//! fragment and the API), and a strict Content-Security-Policy forbids inline script.
//! They go out gzipped to a browser that accepts it: opening a room is mostly these bytes,
//! and its budget (SPEC §6, 200 KB to the first message) is counted on the wire.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
    // Claims (SPEC §13).
    ("claims.js", JS, include_str!("assets/claims.js")),
    // The rail's tabs, icons and avatars, a message's hover actions, and the host's
    // invite form and brief editor.
    ("rail.js", JS, include_str!("assets/rail.js")),
    ("icons.js", JS, include_str!("assets/icons.js")),
    ("actions.js", JS, include_str!("assets/actions.js")),
    ("invite.js", JS, include_str!("assets/invite.js")),
    ("briefedit.js", JS, include_str!("assets/briefedit.js")),
    // Approval cards (SPEC §12).
    ("approvals.js", JS, include_str!("assets/approvals.js")),
];

/// No inline script or style, nothing from other origins, no framing. (`manifest-src` lets
/// the page name its own web manifest; `img-src data:` is the unread badge drawn on the icon.)
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = "index.html";

/// An asset's name and its gzipped body (`None` where gzip did not help).
type Zipped = (&'static str, Option<Vec<u8>>);

/// Every servable body, gzipped once on first use.
fn gzipped(name: &str) -> Option<&'static [u8]> {
    static ALL: OnceLock<Vec<Zipped>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        std::iter::once((INDEX, INDEX_HTML))
            .chain(ASSETS.iter().map(|(n, _, body)| (*n, *body)))
            .map(|(n, body)| (n, gzip(body.as_bytes()).filter(|z| z.len() < body.len())))
            .collect()
    });
    all.iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, z)| z.as_deref())
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

/// Whether the request's `Accept-Encoding` takes gzip (a `q=0` refuses it).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

fn page(
    name: &str,
    content_type: &'static str,
    body: &'static str,
    headers: &HeaderMap,
) -> Response {
    let zipped = gzipped(name).filter(|_| accepts_gzip(headers));
    let mut response = match zipped {
        Some(z) => (StatusCode::OK, z).into_response(),
        None => (StatusCode::OK, body).into_response(),
    };
    let h = response.headers_mut();
    for (k, v) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::VARY, "Accept-Encoding"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if zipped.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

pub async fn index(headers: HeaderMap) -> Response {
    page(INDEX, "text/html; charset=utf-8", INDEX_HTML, &headers)
}

pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((name, content_type, body)) => page(name, content_type, body, &headers),
        None => ApiError::not_found(format!("no asset {file}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        h
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_asset_gzips_to_its_own_bytes() {
        use std::io::Read;
        for (name, _, body) in ASSETS.iter().chain([&(INDEX, "", INDEX_HTML)]) {
            let Some(z) = gzipped(name) else { continue };
            let mut back = String::new();
            flate2::read::GzDecoder::new(z)
                .read_to_string(&mut back)
                .unwrap();
            assert_eq!(back, *body, "{name}");
        }
        assert!(gzipped("room.js").is_some(), "the entry module compresses");
    }
}
