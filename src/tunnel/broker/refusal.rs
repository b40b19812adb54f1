//! What the broker answers itself: refusals in the error contract (each a typed
//! [`Code`]), and the access log, whose lines hold a route hash, a method, a path class,
//! a status, a duration and byte counts, and nothing else.

use std::io::Write;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use serde_json::json;

use super::counters::Counters;
use crate::protocol::ApiError;
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::tunnel::protocol::Code;
use std::sync::Arc;

/// A refusal in the error contract (its `retry_after_s` sent as `Retry-After`).
#[derive(Debug)]
pub(super) struct Refusal {
    pub err: ApiError,
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        Refusal { err }
    }
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        code.error(message).into()
    }
    /// Tells the client to retry after `after` (in whole seconds, at least one).
    pub fn retry(mut self, after: Duration) -> Refusal {
        self.err.retry_after_s = Some(after.as_secs_f64().ceil().max(1.0) as u64);
        self
    }

    /// The refusal as a response, with the length of its body.
    pub fn response(&self) -> (Response, u64) {
        let r = self;
        let body = json!({"ok": false, "error": r.err.code, "message": r.err.message}).to_string();
        let len = body.len() as u64;
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() =
            StatusCode::from_u16(r.err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = r.err.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        (resp, len)
    }
}

pub(super) fn not_found() -> Refusal {
    Refusal::new(Code::NotFound, "no room link here")
}

pub(super) fn unavailable() -> Refusal {
    Refusal::new(
        Code::RouteUnavailable,
        "this room link is not connected right now; retry in a moment",
    )
    .retry(Duration::from_secs(2))
}

pub(super) fn draining() -> Refusal {
    Refusal::new(
        Code::BrokerDraining,
        "the broker is restarting; retry in a moment",
    )
    .retry(Duration::from_secs(2))
}

pub(super) fn ip_limited(wait: Duration) -> Refusal {
    Refusal::new(
        Code::IpRateLimited,
        "too many requests from this address; slow down",
    )
    .retry(wait)
}

pub(super) fn request_too_large(limit: u64) -> Refusal {
    Refusal::new(
        Code::RequestTooLarge,
        format!("the request body is over the broker's limit of {limit} bytes"),
    )
}

pub(super) fn response_too_large(limit: u64) -> ApiError {
    Code::ResponseTooLarge.error(format!(
        "the room server's answer is over the broker's limit of {limit} bytes"
    ))
}

/// The host's connection dropped with the request in flight: the host usually comes
/// back within seconds (its tunnel reconnects), so the client is told when to retry.
pub(super) fn host_disconnected() -> ApiError {
    let mut e = Code::HostDisconnected.error("the host's tunnel disconnected; retry in a moment");
    e.retry_after_s = Some(2);
    e
}

/// A host's failure code as a refusal; unknown codes are not echoed (the host is not
/// trusted to choose what participants see).
pub(super) fn host_failure(code: &str) -> ApiError {
    match Code::parse(code) {
        Some(Code::TargetUnreachable) => {
            Code::TargetUnreachable.error("the room server behind this link is not answering")
        }
        Some(Code::TargetTimeout) => {
            Code::TargetTimeout.error("the room server behind this link did not answer in time")
        }
        Some(Code::ResponseTooLarge) => {
            Code::ResponseTooLarge.error("the room server's answer is over the broker's limit")
        }
        _ => Code::HostError.error("the host could not answer this request"),
    }
}

/// One line of the access log. Only these fields exist, so nothing else can leak.
pub(super) struct Access {
    counters: Arc<Counters>,
    pub started: Instant,
    pub method: String,
    pub route: Option<String>,
    pub class: &'static str,
    pub status: u16,
    pub code: Option<&'static str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub aborted: bool,
}

impl Access {
    pub fn new(method: &str, counters: Arc<Counters>) -> Access {
        // Methods are a short token; anything odd is logged as OTHER.
        let method = if method.len() <= 10 && method.bytes().all(|b| b.is_ascii_uppercase()) {
            method.to_string()
        } else {
            "OTHER".to_string()
        };
        Access {
            counters,
            started: Instant::now(),
            method,
            route: None,
            class: "other",
            status: 0,
            code: None,
            bytes_in: 0,
            bytes_out: 0,
            aborted: false,
        }
    }

    /// The line so far, moved out (for the body stream that logs when it ends).
    pub fn take(&mut self, status: u16) -> Access {
        Access {
            counters: self.counters.clone(),
            started: self.started,
            method: std::mem::take(&mut self.method),
            route: self.route.take(),
            class: self.class,
            status,
            code: None,
            bytes_in: self.bytes_in,
            bytes_out: 0,
            aborted: false,
        }
    }

    pub fn write(&self) {
        self.counters.request(
            self.class,
            self.status,
            self.code,
            (self.bytes_in, self.bytes_out),
        );
        let mut line = json!({
            "ts": format_ms(now_ms()),
            "route": self.route,
            "method": self.method,
            "class": self.class,
            "status": self.status,
            "duration_ms": self.started.elapsed().as_millis() as u64,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        });
        if let Some(code) = self.code {
            line["code"] = json!(code);
        }
        if self.aborted {
            line["aborted"] = json!(true);
        }
        log_line(&line);
    }
}

/// One JSON line on stdout (the access log and route events).
pub(super) fn log_line(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_follow_the_contract() {
        let (resp, len) = not_found().retry(Duration::from_millis(1500)).response();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert!(len > 10);
        let (resp, _) = Refusal::from(host_disconnected()).response();
        assert_eq!(resp.status(), 502);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn host_failures_do_not_echo_host_text() {
        assert_eq!(host_failure("target_timeout").status, 504);
        let e = host_failure("<script>canary</script>");
        assert_eq!(e.code, "host_error");
        assert!(!e.message.contains("canary"));
    }
}
