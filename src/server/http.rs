//! Request plumbing shared by every route: the error contract as a response, bearer
//! tokens, query parameters, bounded body reading, and the exposure rules (loopback
//! `Host`, same-origin writes). Handlers stay about the room, not about HTTP.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::protocol::ApiError;
use crate::protocol::url::origin_of;
use crate::protocol::wire::ErrorBody;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            ok: false,
            error: self.code.to_string(),
            message: self.message,
            conflicts: self.conflicts,
        };
        let mut resp = json_response(status, &body);
        if let Some(s) = self.retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        resp
    }
}

/// A JSON response with no caching (room data changes under every read).
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            ApiError::new(500, "internal", format!("cannot encode response: {e}")).into_response()
        }
    }
}

pub fn ok_json<T: serde::Serialize>(body: &T) -> Response {
    json_response(StatusCode::OK, body)
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The first value of a query parameter, percent-decoded.
pub fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let q = uri.query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Parses `since_id` (absent means 0): a non-negative integer.
pub fn since_id(uri: &Uri) -> Result<u64, ApiError> {
    match query_param(uri, "since_id") {
        None => Ok(0),
        Some(s) if s.is_empty() => Ok(0),
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_since_id",
                format!("since_id must be a non-negative integer, got {s:?}"),
            )
        }),
    }
}

/// Parses an optional positive integer query parameter.
pub fn optional_number(uri: &Uri, name: &'static str) -> Result<Option<u64>, ApiError> {
    match query_param(uri, name) {
        None => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("{name} must be a non-negative integer, got {s:?}"),
            )
        }),
    }
}

/// Reads a JSON body of at most `limit` bytes within `deadline`; an empty body reads as `{}`.
pub async fn read_json(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    deadline: Duration,
) -> Result<Value, ApiError> {
    let bytes = read_bytes(headers, body, limit, deadline).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

/// Reads a body of at most `limit` bytes within `deadline`, as it came.
pub async fn read_bytes(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    deadline: Duration,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(
            "body_too_large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    };
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                ApiError::bad_request("invalid_body", "Content-Length is not a number")
            })?;
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Err(_) => {
            return Err(ApiError::new(
                408,
                "request_timeout",
                "the request body did not arrive in time",
            ));
        }
        Ok(Err(e)) => {
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if is_limit {
                too_large()
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            });
        }
        Ok(Ok(b)) => b,
    };
    Ok(bytes)
}

/// SPEC §4: a write carrying an `Origin` (or, failing that, a `Referer`) from another
/// origin is refused. `allowed` are the origins this server is reached at.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let claimed = match headers.get(header::ORIGIN) {
        Some(o) => Some(o.to_str().unwrap_or("null").to_string()),
        None => headers
            .get(header::REFERER)
            .map(|r| r.to_str().unwrap_or("null").to_string()),
    };
    let Some(claimed) = claimed else {
        return Ok(());
    };
    let origin = origin_of(&claimed);
    if origin.is_some_and(|o| allowed.contains(&o)) {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "bad_origin",
        "cross-origin writes are refused; use the room's own page or a client without an Origin header",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["http://127.0.0.1:8787".to_string()];
        let mut h = HeaderMap::new();
        assert!(check_origin(&h, &allowed).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:8787".parse().unwrap());
        assert!(check_origin(&h, &allowed).is_ok());
        h.insert(header::ORIGIN, "http://evil.com".parse().unwrap());
        assert_eq!(check_origin(&h, &allowed).unwrap_err().code, "bad_origin");
        h.remove(header::ORIGIN);
        h.insert(header::REFERER, "http://evil.com/page".parse().unwrap());
        assert!(check_origin(&h, &allowed).is_err());
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer tgl_x".parse().unwrap());
        assert_eq!(bearer(&h), Some("tgl_x"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
