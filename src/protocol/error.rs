//! The error contract of SPEC §4: every failure is `{ok:false, error, message}` with a
//! stable code. Validation lives in this pure crate module, so it produces the contract
//! type directly and the server only maps it to a response.

use serde::Serialize;

use super::claim::ClaimConflict;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    #[serde(rename = "error")]
    pub code: &'static str,
    pub message: String,
    /// For a 429: seconds until a retry can succeed (sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
    /// For a 409 `claim_conflict`: the claims in the way (SPEC §13).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ClaimConflict>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
            conflicts: Vec::new(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            "unauthorized",
            "missing or unknown bearer token; ask the host for an invite",
        )
    }
    pub fn host_required(what: &str) -> ApiError {
        ApiError::new(403, "host_required", format!("only the host may {what}"))
    }
    pub fn room_closed() -> ApiError {
        ApiError::new(
            403,
            "room_closed",
            "the room is closed; nothing more can be posted",
        )
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }
    pub fn removed() -> ApiError {
        ApiError::new(
            410,
            "participant_removed",
            "you were removed from this room by the host",
        )
    }
    pub fn too_large(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(413, code, message)
    }
    pub fn storage(message: impl Into<String>) -> ApiError {
        ApiError::new(507, "room_log_full", message)
    }
}
