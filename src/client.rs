//! The HTTP client the CLI, the MCP adapter and the tunnel use to talk to a room server,
//! returning the typed answers of [`crate::protocol::wire`]. Blocking on purpose: a CLI call is one or two requests, and a blocking client
//! starts in microseconds where a runtime would not. Errors keep the server's contract
//! code so callers can decide (retry, stop, exit code) without parsing prose.

pub mod claims;
pub mod topics;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::protocol::export::{Export, ExportPage};
use crate::protocol::reach::{ProfileBody, Reach, ReachBody, WakeAnswer, WakeEvent, WakeReport};
use crate::protocol::wire::{
    BriefAnswer, BriefBody, BriefView, CloseAnswer, CompactStatus, ErrorBody, InviteAnswer,
    InviteBody, JoinAnswer, LeaveAnswer, MessagesPage, PolicyAnswer, PolicyBody, PostAnswer,
    PostBody, ProfileAnswer, PublicUrlAnswer, PublicUrlBody, RemoveAnswer, RemoveBody,
    StatusAnswer, WaitAnswer,
};
use crate::protocol::{AttendancePolicy, Kind, Location};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached (not running, network down, timeout).
    #[error("cannot reach the room server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with the error contract.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered something that is not the contract.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

/// A participant's connection to one room server.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// Responses this large are refused (an export of a full room fits well inside).
const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

impl Client {
    /// `base` is the room's URL (`http://127.0.0.1:8787` or a public `https://` one).
    pub fn new(base: &str, token: &str, timeout: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(5)))
            .user_agent(concat!("agentgather/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    fn finish(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String, String), ClientError> {
        let mut resp = resp.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        Ok((status, ctype, text))
    }

    /// The answer as `T`, or the error contract as [`ClientError::Api`].
    fn decode<T: DeserializeOwned>(
        &self,
        status: u16,
        ctype: &str,
        text: &str,
    ) -> Result<T, ClientError> {
        if status >= 400 {
            return Err(match serde_json::from_str::<ErrorBody>(text) {
                Ok(e) => ClientError::Api {
                    status,
                    code: e.error,
                    message: e.message,
                },
                Err(_) => self.not_contract(status, ctype, "the error contract"),
            });
        }
        serde_json::from_str(text).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            reason: if ctype.starts_with("application/json") {
                format!("HTTP {status} with a body that does not fit: {e}")
            } else {
                self.not_contract_reason(status, ctype)
            },
        })
    }

    fn not_contract_reason(&self, status: u16, ctype: &str) -> String {
        format!(
            "HTTP {status} with {} instead of JSON",
            if ctype.is_empty() {
                "no content type"
            } else {
                ctype
            }
        )
    }

    fn not_contract(&self, status: u16, ctype: &str, what: &str) -> ClientError {
        ClientError::Protocol {
            url: self.base.clone(),
            reason: format!(
                "{} (expected {what})",
                self.not_contract_reason(status, ctype)
            ),
        }
    }

    /// `GET path`: status, content type and body text.
    fn fetch(&self, path: &str) -> Result<(u16, String, String), ClientError> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.finish(resp)
    }

    /// `GET path`, decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, ctype, text) = self.fetch(path)?;
        self.decode(status, &ctype, &text)
    }

    /// `GET path` expecting text (cards, Markdown exports).
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let (status, ctype, text) = self.fetch(path)?;
        if status >= 400 {
            return Err(self
                .decode::<serde_json::Value>(status, &ctype, &text)
                .err()
                .unwrap_or_else(|| self.not_contract(status, &ctype, "text")));
        }
        Ok(text)
    }

    /// `POST path` with a JSON body, the answer decoded as `T`.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let (status, ctype, text) = self.send_post(path, body)?;
        self.decode(status, &ctype, &text)
    }

    /// `POST path` with a JSON body: status, content type and body text.
    fn send_post<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(u16, String, String), ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            reason: format!("cannot encode the request: {e}"),
        })?;
        let resp = self
            .agent
            .post(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(bytes);
        self.finish(resp)
    }

    // The room's endpoints, typed.

    pub fn status(&self) -> Result<StatusAnswer, ClientError> {
        self.get("/status")
    }

    /// `GET /status?compact=1`.
    pub fn compact_status(&self) -> Result<CompactStatus, ClientError> {
        self.get("/status?compact=1")
    }

    pub fn brief(&self) -> Result<BriefView, ClientError> {
        self.get::<BriefAnswer>("/brief").map(|b| b.brief)
    }

    pub fn set_brief(&self, body: &str) -> Result<BriefView, ClientError> {
        self.post::<_, BriefAnswer>(
            "/brief",
            &BriefBody {
                body: body.to_string(),
            },
        )
        .map(|b| b.brief)
    }

    pub fn policy(&self) -> Result<PolicyAnswer, ClientError> {
        self.get("/attendance")
    }

    pub fn set_policy(&self, policy: AttendancePolicy) -> Result<PolicyAnswer, ClientError> {
        self.post(
            "/attendance",
            &PolicyBody {
                policy: policy.to_string(),
            },
        )
    }

    /// `POST /join`, declaring a reach when `reach` says one.
    pub fn join(&self, reach: &ReachBody) -> Result<JoinAnswer, ClientError> {
        self.post("/join", reach)
    }

    /// `POST /profile {reach, poll_every_s?}`.
    pub fn set_reach(
        &self,
        reach: Reach,
        poll_every_s: Option<u64>,
    ) -> Result<ProfileAnswer, ClientError> {
        self.post("/profile", &ReachBody::of(reach, poll_every_s))
    }

    /// `POST /wake {event}`: a wake runner's report on one turn.
    pub fn wake_report(&self, event: WakeEvent) -> Result<WakeAnswer, ClientError> {
        self.post("/wake", &WakeReport { event })
    }

    pub fn leave(&self) -> Result<LeaveAnswer, ClientError> {
        self.post("/leave", &json!({}))
    }

    /// `GET /messages?since_id=…[&limit=…]`.
    pub fn messages(&self, since: u64, limit: Option<u64>) -> Result<MessagesPage, ClientError> {
        let mut path = format!("/messages?since_id={since}");
        if let Some(l) = limit {
            path.push_str(&format!("&limit={l}"));
        }
        self.get(&path)
    }

    /// One `/wait` turn; `hold_ms` shortens the server's 25 s hold. The caller's own
    /// messages are left out (and skipped) unless `include_own`.
    pub fn wait(
        &self,
        alias: &str,
        since: u64,
        hold_ms: Option<u64>,
        include_own: bool,
    ) -> Result<WaitAnswer, ClientError> {
        let mut path = format!("/wait?participant={alias}&since_id={since}");
        if let Some(ms) = hold_ms {
            path.push_str(&format!("&timeout_ms={ms}"));
        }
        if include_own {
            path.push_str("&include_own=1");
        }
        self.get(&path)
    }

    /// The room's whole export (host only), put together from its pages.
    pub fn export(&self) -> Result<Export, ClientError> {
        let first: ExportPage = self.get("/export?format=json")?;
        let mut next = first.next();
        let mut whole = Export {
            header: first.header,
            topics: first.topics,
            messages: first.messages,
        };
        while let Some(from) = next {
            let path = format!("/export?format=json&{}", from.query());
            let page: ExportPage = self.get(&path)?;
            next = page.next();
            self.check_progress(&path, from, next)?;
            whole.topics.extend(page.topics);
            whole.messages.extend(page.messages);
        }
        whole.header.message_count = whole.messages.len() as u64;
        Ok(whole)
    }

    /// Refuses a page whose cursor to the next page is the cursor that asked for it:
    /// following it would page forever, and stopping there would cut the list short.
    fn check_progress<C: PartialEq>(
        &self,
        path: &str,
        asked: C,
        next: Option<C>,
    ) -> Result<(), ClientError> {
        if next == Some(asked) {
            return Err(ClientError::Protocol {
                url: self.url(path),
                reason: "the next page is the page itself".into(),
            });
        }
        Ok(())
    }

    pub fn post_message(&self, body: &PostBody) -> Result<PostAnswer, ClientError> {
        self.post("/messages", body)
    }

    pub fn invite(
        &self,
        alias: &str,
        kind: Kind,
        location: Location,
        reach: Option<Reach>,
    ) -> Result<InviteAnswer, ClientError> {
        let body = InviteBody {
            alias: alias.to_string(),
            kind: Some(kind.to_string()),
            location: Some(location.to_string()),
            reach: reach.map(|r| r.to_string()),
        };
        self.post("/invite", &body)
    }

    pub fn remove(&self, alias: &str) -> Result<RemoveAnswer, ClientError> {
        self.post(
            "/remove",
            &RemoveBody {
                alias: alias.to_string(),
            },
        )
    }

    pub fn close(&self) -> Result<CloseAnswer, ClientError> {
        self.post("/close", &json!({}))
    }

    pub fn set_public_url(&self, url: &str) -> Result<PublicUrlAnswer, ClientError> {
        self.post(
            "/public-url",
            &PublicUrlBody {
                url: url.to_string(),
            },
        )
    }

    pub fn set_display_name(&self, name: &str) -> Result<ProfileAnswer, ClientError> {
        self.post(
            "/profile",
            &ProfileBody {
                display_name: Some(name.to_string()),
                ..ProfileBody::default()
            },
        )
    }

    /// A participant's Attend Card (`text/plain`).
    pub fn card(&self, alias: &str) -> Result<String, ClientError> {
        self.get_text(&format!("/card?participant={alias}"))
    }
}
