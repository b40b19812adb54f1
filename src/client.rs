//! The HTTP client every CLI command (and later the MCP adapter) uses to talk to a room
//! server. Blocking on purpose: a CLI call is one or two requests, and a blocking client
//! starts in microseconds where a runtime would not. Errors keep the server's contract
//! code so callers can decide (retry, stop, exit code) without parsing prose.

use std::time::Duration;

use serde_json::Value;

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

    fn decode(&self, status: u16, ctype: &str, text: &str) -> Result<Value, ClientError> {
        let parsed: Result<Value, _> = serde_json::from_str(text);
        match parsed {
            Ok(v) if status < 400 => Ok(v),
            Ok(v) => Err(ClientError::Api {
                status,
                code: v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
                message: v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the server refused")
                    .to_string(),
            }),
            Err(_) => Err(ClientError::Protocol {
                url: self.base.clone(),
                reason: format!(
                    "HTTP {status} with {} instead of JSON",
                    if ctype.is_empty() {
                        "no content type"
                    } else {
                        ctype
                    }
                ),
            }),
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

    /// `GET path` expecting JSON.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let (status, ctype, text) = self.fetch(path)?;
        self.decode(status, &ctype, &text)
    }

    /// `GET path` expecting text (cards, Markdown exports).
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let (status, ctype, text) = self.fetch(path)?;
        if status >= 400 {
            return Err(self.decode(status, &ctype, &text).err().unwrap_or(
                ClientError::Protocol {
                    url: self.base.clone(),
                    reason: format!("HTTP {status}"),
                },
            ));
        }
        Ok(text)
    }

    /// `POST path` with a JSON body; returns the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), ClientError> {
        let resp = self
            .agent
            .post(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(body).unwrap_or_default());
        let (status, ctype, text) = self.finish(resp)?;
        Ok((status, self.decode(status, &ctype, &text)?))
    }
}
