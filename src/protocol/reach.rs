//! Reach (SPEC §8): how a participant can be reached when something concerns them, as
//! they declare it, as the host asks for it, and the bodies that carry it. Declaring a
//! reach never makes anyone reachable: `reachable_now` is observed by the server.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::participant::str_enum;

str_enum!(
    /// `live` holds a `/wait` while it works; `wake` has a wake runner start a turn on
    /// demand; `poll` looks every `poll_every_s`; `manual` only when a person tells it.
    Reach {
        Manual = "manual",
        Poll = "poll",
        Wake = "wake",
        Live = "live",
    }
);

// str_enum! derives no Default, so it is written out.
#[allow(clippy::derivable_impls)]
impl Default for Reach {
    fn default() -> Self {
        Reach::Manual
    }
}

impl Reach {
    /// Strength order: manual < poll < wake < live.
    pub fn rank(self) -> u8 {
        match self {
            Reach::Manual => 0,
            Reach::Poll => 1,
            Reach::Wake => 2,
            Reach::Live => 3,
        }
    }

    /// Whether this declared reach falls short of what was requested.
    pub fn weaker_than(self, requested: Reach) -> bool {
        self.rank() < requested.rank()
    }
}

/// The bounds of `poll_every_s`.
pub const POLL_MIN_S: u64 = 5;
pub const POLL_MAX_S: u64 = 3600;

/// A validated reach declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachDecl {
    pub reach: Reach,
    /// Set only for `poll`.
    pub poll_every_s: Option<u64>,
}

/// The reach fields of a `POST /join` or `POST /profile` body, as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReachBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_every_s: Option<serde_json::Number>,
}

impl ReachBody {
    pub fn of(reach: Reach, poll_every_s: Option<u64>) -> ReachBody {
        ReachBody {
            reach: Some(reach.as_str().to_string()),
            poll_every_s: poll_every_s.map(Into::into),
        }
    }

    /// The declaration, `None` when the body declares nothing. Unknown reach: 400
    /// `invalid_reach`; `poll` without a period, a period outside 5–3600, or a period
    /// without `poll`: 400 `invalid_body`.
    pub fn validate(&self) -> Result<Option<ReachDecl>, ApiError> {
        let Some(raw) = &self.reach else {
            if self.poll_every_s.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "poll_every_s goes with reach: \"poll\"",
                ));
            }
            return Ok(None);
        };
        let reach = Reach::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_reach",
                format!("reach must be one of {}", Reach::choices()),
            )
        })?;
        let period = match &self.poll_every_s {
            None => None,
            Some(n) => Some(n.as_u64().filter(|s| (POLL_MIN_S..=POLL_MAX_S).contains(s)).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("poll_every_s must be a whole number of seconds from {POLL_MIN_S} to {POLL_MAX_S}"),
                )
            })?),
        };
        match (reach, period) {
            (Reach::Poll, None) => Err(ApiError::bad_request(
                "invalid_body",
                format!("reach \"poll\" needs poll_every_s ({POLL_MIN_S}-{POLL_MAX_S} seconds)"),
            )),
            (Reach::Poll, p) => Ok(Some(ReachDecl {
                reach,
                poll_every_s: p,
            })),
            (_, Some(_)) => Err(ApiError::bad_request(
                "invalid_body",
                "poll_every_s goes with reach: \"poll\" only",
            )),
            (_, None) => Ok(Some(ReachDecl {
                reach,
                poll_every_s: None,
            })),
        }
    }
}

/// `POST /profile`: any of a display name and a reach declaration, at least one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProfileBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub reach: ReachBody,
}

/// What a wake runner reports about one turn (`POST /wake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeEvent {
    /// A turn started: sets `last_woken_at`.
    Started,
    /// A turn exited 0: `wake_failing` back to 0.
    Succeeded,
    /// A turn failed (non-zero exit or timeout): `wake_failing` + 1.
    Failed,
}

/// `POST /wake` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WakeReport {
    pub event: WakeEvent,
}

/// `POST /wake` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WakeAnswer {
    pub ok: bool,
    pub last_woken_at: Option<String>,
    pub wake_failing: u32,
}

/// The Attend Card's "How you will be reached" section for the reach the host asked
/// for (nothing when it asked for none): the exact setup command for that level.
/// `url` and `auth` (the curl header option) make the poll line runnable as printed.
pub fn card_section(requested: Option<Reach>, url: &str, auth: &str) -> String {
    let Some(r) = requested else {
        return String::new();
    };
    let how = match r {
        Reach::Live => "The host asks you to stay live: keep a /wait held while you work.\n  agentgather attend --json\n(or, as MCP tools, `agentgather mcp` and keep calling room_wait).".to_string(),
        Reach::Wake => "The host asks you to be wakeable: run a wake runner that starts one\nnon-interactive agent turn whenever something concerns you (see\n`agentgather instructions --wake claude|codex|gemini|script` for ready lines):\n  agentgather wake --exec 'claude -p \"Read the room with agentgather read and answer what concerns you.\" --allowedTools \"Bash(agentgather:*)\"'".to_string(),
        Reach::Poll => format!("The host asks you to poll: look at the room on a schedule and declare it\n(here every 60 s; 5-3600 allowed):\n  curl -sS -X POST '{url}/profile' {auth} -H 'Content-Type: application/json' -d '{{\"reach\": \"poll\", \"poll_every_s\": 60}}'\nor with the CLI: agentgather room join <invite> --reach poll --poll-every 60"),
        Reach::Manual => "The host expects you to take part when a person tells you to; no setup needed.".to_string(),
    };
    format!("## How you will be reached ({r} requested)\n\n{how}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reach: Option<&str>, period: Option<i64>) -> ReachBody {
        ReachBody {
            reach: reach.map(str::to_string),
            poll_every_s: period.map(Into::into),
        }
    }

    #[test]
    fn declarations_are_validated() {
        assert_eq!(body(None, None).validate().unwrap(), None);
        let d = body(Some("poll"), Some(60)).validate().unwrap().unwrap();
        assert_eq!((d.reach, d.poll_every_s), (Reach::Poll, Some(60)));
        assert_eq!(
            body(Some("live"), None).validate().unwrap().unwrap().reach,
            Reach::Live
        );
        let code = |b: ReachBody| b.validate().unwrap_err().code;
        assert_eq!(code(body(Some("sometimes"), None)), "invalid_reach");
        assert_eq!(code(body(Some("poll"), None)), "invalid_body");
        assert_eq!(code(body(Some("poll"), Some(4))), "invalid_body");
        assert_eq!(code(body(Some("poll"), Some(3601))), "invalid_body");
        assert_eq!(code(body(Some("poll"), Some(-5))), "invalid_body");
        assert_eq!(code(body(None, Some(60))), "invalid_body");
        assert_eq!(code(body(Some("wake"), Some(60))), "invalid_body");
    }

    #[test]
    fn strength_order() {
        assert!(Reach::Manual.weaker_than(Reach::Poll));
        assert!(Reach::Poll.weaker_than(Reach::Wake));
        assert!(Reach::Wake.weaker_than(Reach::Live));
        assert!(!Reach::Live.weaker_than(Reach::Wake));
        assert_eq!(Reach::default(), Reach::Manual);
    }
}
