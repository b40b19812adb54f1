//! One participant's side of a room, whatever face it wears: the CLI and the MCP adapter
//! are siblings on this module. It knows this home's identity (credentials and read
//! cursor, [`state`]), where the room's server is, how to post so a retry never posts
//! twice, the handoff text and its caps, and the rule for which failed waits are worth
//! retrying. Neither face re-implements any of it, so `agentgather read` and the MCP
//! `room_read` can never disagree about the cursor.

pub mod approvals;
pub mod claims;
pub mod state;
pub mod topics;
pub mod wake;
mod wake_cap;
mod watch;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::client::{Client, ClientError};
use crate::protocol::message::Message;
use crate::protocol::reach::{Reach, ReachBody};
use crate::protocol::token::mint_token;
use crate::protocol::url::RoomUrl;
use crate::protocol::wire::{JoinAnswer, PostBody, StatusAnswer, WaitAnswer};
use crate::protocol::{Limits, MessageType, validate_alias, validate_room_id};
use crate::store::{Home, StoreError, lock};

pub use state::{
    CliState, Credentials, HostTokens, load_credentials, load_host_tokens, load_state,
    remember_host_token, save_credentials, save_state, set_current,
};

/// Long enough for a held `/wait` (25 s) plus slack.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(40);
/// Every other call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// A handoff's text cap, and the larger one a caller may ask for.
pub const HANDOFF_CHARS: usize = 24_000;
pub const HANDOFF_LARGE_CHARS: usize = 64_000;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "no current room in this home: join one with `agentgather room join '<invite-uri>'` (or host one with `agentgather up`)"
    )]
    NoCurrentRoom,
    #[error("the credentials for {alias} in room {room} are missing; join again with your invite")]
    MissingCredentials { room: String, alias: String },
    #[error("this token is {actual_alias:?} in room {actual_room:?}, not {alias:?} in {room:?}")]
    Mismatch {
        room: String,
        alias: String,
        actual_room: String,
        actual_alias: String,
    },
    /// Bad input the caller can fix (a handoff over its cap, a bad invite).
    #[error("{0}")]
    Invalid(String),
    /// A message over the server's limits, refused before it is sent.
    #[error("{0}")]
    TooLarge(String),
    /// A summary file the session will not read (outside the working directory, hidden,
    /// not a regular file, too large, or holding credentials).
    #[error("{0}")]
    FileRefused(String),
}

impl SessionError {
    /// The stable code: the server's contract code when it answered, else our own.
    pub fn code(&self) -> &str {
        match self {
            SessionError::Client(ClientError::Api { code, .. }) => code,
            SessionError::Client(ClientError::Unreachable { .. }) => "unreachable",
            SessionError::Client(ClientError::Protocol { .. }) => "protocol_error",
            SessionError::Store(_) => "storage_error",
            SessionError::NoCurrentRoom => "no_current_room",
            SessionError::MissingCredentials { .. } => "missing_credentials",
            SessionError::Mismatch { .. } => "participant_mismatch",
            SessionError::Invalid(_) => "invalid_argument",
            SessionError::TooLarge(_) => "message_too_large",
            SessionError::FileRefused(_) => "file_refused",
        }
    }
}

/// Whether a failed call may succeed if tried again: the server is unreachable (it
/// restarts, the network blips) or answered a 5xx other than a full log.
pub fn is_transient(e: &ClientError) -> bool {
    e.is_unreachable() || e.status().is_some_and(|s| s >= 500 && s != 507)
}

/// Capped doubling delays between retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            next: first,
            max,
        }
    }

    /// The delay to sleep now; the one after is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The local address of a server holding `room` in this home, if one runs.
pub fn local_server(home: &Home, room: &str) -> Option<String> {
    lock::holder(&home.room_dir(room))
        .ok()
        .flatten()
        .and_then(|info| info.addr)
        .map(|a| format!("http://{a}"))
}

/// Where a participant joins: from an invite URI or the three flags.
#[derive(Debug, Clone)]
pub struct JoinTarget {
    pub room: String,
    pub alias: String,
    pub token: String,
    pub url: String,
    /// The reach to declare on joining (SPEC §8.1); nothing declared when empty.
    pub reach: ReachBody,
}

/// Joins a room and makes it this home's current one. The server must agree that the
/// token is `alias` in `room`; the read cursor of an earlier join is kept.
pub fn join(home: &Home, t: JoinTarget) -> Result<(Session, StatusAnswer), SessionError> {
    validate_room_id(&t.room).map_err(|e| SessionError::Invalid(e.to_string()))?;
    validate_alias(&t.alias).map_err(|e| SessionError::Invalid(e.to_string()))?;
    let url = RoomUrl::parse(&t.url).map_err(|e| SessionError::Invalid(e.to_string()))?;
    let client = Client::new(url.as_str(), &t.token, CALL_TIMEOUT);
    let joined: JoinAnswer = client.join(&t.reach)?;
    let status = client.status()?;
    if status.me != t.alias || joined.room != t.room {
        return Err(SessionError::Mismatch {
            room: t.room,
            alias: t.alias,
            actual_room: joined.room,
            actual_alias: status.me,
        });
    }
    let previous = load_credentials(home, &t.room, &t.alias)?;
    let creds = Credentials {
        room: t.room,
        alias: t.alias,
        url: url.as_str().to_string(),
        token: t.token,
        is_host: status.is_host,
        cursor: previous.map_or(0, |p| p.cursor),
    };
    set_current(home, &creds)?;
    Ok((
        Session {
            home: home.clone(),
            creds,
        },
        status,
    ))
}

/// Declares this home's participant's reach (SPEC §8.1) from a background thread,
/// best effort: `attend` and `mcp` say `live` once at start without delaying it.
///
/// Not inside a wake turn: there the wake runner holds the reach (`wake`), and a turn's
/// agent that starts `agentgather mcp` (the `claude-mcp` recipe) or `attend` must not
/// turn a participant woken on demand into one that claims to listen live.
pub fn declare_reach_in_background(home: &Home, reach: Reach) {
    if in_wake_turn() {
        return;
    }
    let Ok(s) = Session::current(home) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = s.client(Duration::from_secs(5)).set_reach(reach, None);
    });
}

/// Whether this process runs inside a turn of a wake runner, which sets
/// [`wake::WAKE_IDS_VAR`] for every turn (and only there).
pub fn in_wake_turn() -> bool {
    std::env::var_os(wake::WAKE_IDS_VAR).is_some()
}

/// This home's participant in its current room.
#[derive(Debug, Clone)]
pub struct Session {
    home: Home,
    pub creds: Credentials,
}

impl Session {
    pub fn new(home: Home, creds: Credentials) -> Session {
        Session { home, creds }
    }

    /// The current identity of `home` (read fresh: a `room join` meanwhile takes effect).
    pub fn current(home: &Home) -> Result<Session, SessionError> {
        let cur = load_state(home)?
            .current
            .ok_or(SessionError::NoCurrentRoom)?;
        let creds = load_credentials(home, &cur.room, &cur.alias)?.ok_or(
            SessionError::MissingCredentials {
                room: cur.room,
                alias: cur.alias,
            },
        )?;
        Ok(Session {
            home: home.clone(),
            creds,
        })
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// A client for this participant: the local server when this home hosts the room,
    /// else the room's URL.
    pub fn client(&self, timeout: Duration) -> Client {
        let base =
            local_server(&self.home, &self.creds.room).unwrap_or_else(|| self.creds.url.clone());
        Client::new(&base, &self.creds.token, timeout)
    }

    /// Posts with a fresh `client_msg_id`, retrying when the server cannot be reached:
    /// it answers a repeat with the original message, so a retry never posts twice.
    /// `on_retry` hears each retry (the CLI says so on stderr).
    pub fn post(
        &self,
        mut body: PostBody,
        mut on_retry: impl FnMut(&ClientError, Duration),
    ) -> Result<Message, SessionError> {
        check_size(&body)?;
        let key = mint_token().map_err(|e| SessionError::Invalid(format!("no randomness: {e}")))?;
        body.client_msg_id = Some(format!("cli-{}", &key[4..]));
        let client = self.client(CALL_TIMEOUT);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut attempt = 0;
        loop {
            match client.post_message(&body) {
                Ok(answer) => return Ok(answer.message),
                Err(e) if e.is_unreachable() && attempt < 4 => {
                    let delay = backoff.next_delay();
                    on_retry(&e, delay);
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One `/wait` turn after `since`: what others posted (SPEC §10: never your own).
    pub fn wait(&self, since: u64, hold_ms: Option<u64>) -> Result<WaitAnswer, ClientError> {
        self.client(WAIT_TIMEOUT)
            .wait(&self.creds.alias, since, hold_ms, false)
    }

    /// One `/wait` turn that also hands back your own messages (the wake runner tracks
    /// their ids, to know what replies to you).
    pub fn wait_including_own(&self, since: u64) -> Result<WaitAnswer, ClientError> {
        self.client(WAIT_TIMEOUT)
            .wait(&self.creds.alias, since, None, true)
    }

    /// Moves the stored read cursor forward to `to` (never back) and returns it. The
    /// credentials are read again first, so a cursor another face of this participant
    /// moved meanwhile is not overwritten with an older one.
    pub fn advance_cursor(&mut self, to: u64) -> Result<u64, SessionError> {
        let mut fresh = load_credentials(&self.home, &self.creds.room, &self.creds.alias)?
            .unwrap_or_else(|| self.creds.clone());
        if to > fresh.cursor {
            fresh.cursor = to;
            save_credentials(&self.home, &fresh)?;
        }
        self.creds.cursor = fresh.cursor;
        Ok(fresh.cursor)
    }
}

/// Refuses a message the server would refuse for its size, before sending it: a body over
/// the server's byte limit is cut off mid-send, which looks like an outage, not an answer.
fn check_size(body: &PostBody) -> Result<(), SessionError> {
    let limits = Limits::default();
    let cap = if body.kind == Some(MessageType::Handoff) {
        limits.handoff_chars
    } else {
        limits.text_chars
    };
    let chars = body.text.chars().count();
    if chars > cap {
        return Err(SessionError::TooLarge(format!(
            "the message is {chars} characters; the limit is {cap}"
        )));
    }
    // JSON escapes can grow the body past the byte limit even within the character cap.
    let bytes = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
    if bytes > limits.body_bytes {
        return Err(SessionError::TooLarge(format!(
            "the message is {bytes} bytes as JSON; the limit is {}",
            limits.body_bytes
        )));
    }
    Ok(())
}

/// The most bytes a summary file may hold (64,000 characters of up to 4 bytes).
pub const SUMMARY_FILE_BYTES: u64 = 256 * 1024;

/// Reads a summary file the user named: a regular file (not a device, FIFO or `/proc`
/// stream), at most [`SUMMARY_FILE_BYTES`], read with that cap before decoding.
pub fn read_summary_file(path: &Path) -> Result<String, SessionError> {
    let refuse = |why: String| SessionError::FileRefused(format!("{}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(SUMMARY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| refuse(e.to_string()))?;
    if bytes.len() as u64 > SUMMARY_FILE_BYTES {
        return Err(refuse(format!(
            "larger than {SUMMARY_FILE_BYTES} bytes; summarize it instead"
        )));
    }
    String::from_utf8(bytes).map_err(|_| refuse("not UTF-8 text".into()))
}

/// Reads a summary file on behalf of an agent (the MCP tool), which a message in the room
/// may have talked into asking: only a regular, non-hidden file inside `workdir` (not
/// under a dot-directory, nor under agentgather's own `home`, which holds tokens
/// whatever its name), within the byte cap, and never one holding keys or credentials.
pub fn read_agent_summary_file(
    workdir: &Path,
    home: &Home,
    path: &str,
) -> Result<String, SessionError> {
    let refuse = |why: &str| SessionError::FileRefused(format!("summary_file {path:?}: {why}"));
    let base = workdir
        .canonicalize()
        .map_err(|e| refuse(&format!("the working directory is unusable: {e}")))?;
    let real = base
        .join(path)
        .canonicalize()
        .map_err(|e| refuse(&e.to_string()))?;
    let inside = real
        .strip_prefix(&base)
        .map_err(|_| refuse("only files inside the working directory can be attached"))?;
    let hidden = inside
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    if hidden {
        return Err(refuse(
            "hidden files and files under dot-directories are never attached",
        ));
    }
    if home.root.canonicalize().is_ok_and(|h| real.starts_with(h)) {
        return Err(refuse(
            "it is inside agentgather's home (tokens and rooms); never post those to the room",
        ));
    }
    let text = read_summary_file(&real)?;
    if holds_credentials(&text) {
        return Err(refuse(
            "it looks like it holds a key or credentials (a PEM block, a *_KEY= line, a JSON password or key, a netrc entry, a URL with a password); never post secrets to the room",
        ));
    }
    Ok(text)
}

/// Whether a field name names a secret: `api_key`, `apiKey`, `client-secret`,
/// `password`, `auth_token`, … (any case, `-` or `_`).
fn secret_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    !n.is_empty()
        && n.chars().all(|c| c.is_ascii_alphanumeric())
        && [
            "apikey",
            "secret",
            "password",
            "passwd",
            "token",
            "privatekey",
            "accesskey",
        ]
        .iter()
        .any(|w| n.ends_with(w))
}

/// A JSON member `"<secret name>": "<non-empty string>"` anywhere in `line`.
fn json_secret(line: &str) -> bool {
    let parts: Vec<&str> = line.split('"').collect();
    // parts: …, name, `: `, value, … where name sits between quotes.
    parts
        .windows(3)
        .any(|w| secret_name(w[0]) && w[1].trim() == ":" && !w[2].trim().is_empty())
}

/// A `scheme://user:password@host` URL (a database URL, a proxy) in `line`.
fn url_with_password(line: &str) -> bool {
    line.match_indices("://").any(|(at, _)| {
        let rest = &line[at + 3..];
        let authority = rest
            .split(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .next()
            .unwrap_or("");
        authority
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .is_some_and(|(_, password)| !password.is_empty())
    })
}

/// Whether text is a netrc file with a password in it.
fn netrc_password(text: &str) -> bool {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let netrc = tokens.iter().any(|t| *t == "machine" || *t == "default");
    netrc
        && tokens
            .windows(2)
            .any(|w| (w[0] == "password" || w[0] == "passwd") && !w[1].is_empty())
}

/// Whether text carries a PEM block, an environment-style secret assignment, a JSON
/// member naming a key or password, a netrc password or a URL with a password.
pub fn holds_credentials(text: &str) -> bool {
    if text.contains("-----BEGIN ") || netrc_password(text) {
        return true;
    }
    text.lines().any(|line| {
        if json_secret(line) || url_with_password(line) {
            return true;
        }
        let line = line.trim_start().trim_start_matches("export ");
        let Some((name, _)) = line.split_once('=') else {
            return false;
        };
        let name = name.trim().to_ascii_uppercase();
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD"]
                .iter()
                .any(|w| name.ends_with(w))
    })
}

/// The text of a handoff from `from` to `alias` embedding `summary`, within the cap:
/// [`HANDOFF_CHARS`], or [`HANDOFF_LARGE_CHARS`] when `large` (`large_hint` names the
/// switch that allows it, e.g. `--large`).
pub fn handoff_text(
    from: &str,
    alias: &str,
    summary: &str,
    large: bool,
    large_hint: &str,
) -> Result<String, SessionError> {
    let text = format!("@{alias} handoff from {from}:\n\n{}", summary.trim_end());
    let cap = if large {
        HANDOFF_LARGE_CHARS
    } else {
        HANDOFF_CHARS
    };
    let n = text.chars().count();
    if n > cap {
        let hint = if large {
            String::new()
        } else {
            format!("; {large_hint} allows {HANDOFF_LARGE_CHARS}")
        };
        return Err(SessionError::Invalid(format!(
            "the handoff is {n} characters, over the cap of {cap}{hint}"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
        let got: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [250, 500, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 250);
    }

    #[test]
    fn only_outages_are_retried() {
        let api = |status| ClientError::Api {
            status,
            code: "x".into(),
            message: String::new(),
        };
        assert!(is_transient(&api(502)));
        assert!(!is_transient(&api(507)));
        assert!(!is_transient(&api(401)));
        assert!(is_transient(&ClientError::Unreachable {
            url: "u".into(),
            reason: "r".into()
        }));
    }

    #[test]
    fn credentials_are_recognised() {
        assert!(holds_credentials(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc"
        ));
        assert!(holds_credentials("x=1\nANTHROPIC_API_KEY=sk-123\n"));
        assert!(holds_credentials("export GITHUB_TOKEN=ghp_x"));
        assert!(!holds_credentials(
            "the key insight = caching\nKEYS are fine"
        ));
        for secret in [
            r#"{"api_key": "sk-live-123"}"#,
            r#"{"db": {"password":"hunter2"}}"#,
            r#"  "clientSecret" : "abc","#,
            "machine example.com login ada password hunter2\n",
            "machine example.com\n  login ada\n  password hunter2\n",
            "DATABASE_URL=postgres://app:hunter2@db:5432/app",
            "connect to mysql://root:pw@127.0.0.1/x today",
        ] {
            assert!(holds_credentials(secret), "{secret}");
        }
        for fine in [
            r#"{"key": "value", "password_hint": ""}"#,
            r#"{"password": ""}"#,
            "see https://example.com/a:b@c and postgres://db/app",
            "https://user@example.com/",
            "the password reset flow changed",
        ] {
            assert!(!holds_credentials(fine), "{fine}");
        }
    }

    #[test]
    fn agent_summary_files_stay_in_the_working_directory() {
        let dir = std::env::temp_dir().join(format!("ag-summary-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".ssh")).unwrap();
        std::fs::write(dir.join("notes.md"), "done: parser").unwrap();
        std::fs::write(dir.join(".ssh/id_rsa"), "-----BEGIN RSA PRIVATE KEY-----").unwrap();
        std::fs::write(dir.join(".env"), "A=1").unwrap();
        std::fs::write(dir.join("env.txt"), "OPENAI_API_KEY=sk").unwrap();
        std::fs::create_dir_all(dir.join("ag-home/rooms")).unwrap();
        std::fs::write(dir.join("ag-home/state.json"), "{}").unwrap();
        let home = Home::at(dir.join("ag-home"));
        assert_eq!(
            read_agent_summary_file(&dir, &home, "notes.md").unwrap(),
            "done: parser"
        );
        for bad in [
            ".ssh/id_rsa",
            ".env",
            "env.txt",
            "/etc/passwd",
            "../x",
            "/dev/zero",
            "/proc/self/environ",
            "ag-home/state.json",
            "ag-home/../ag-home/state.json",
        ] {
            let e = read_agent_summary_file(&dir, &home, bad).unwrap_err();
            assert_eq!(e.code(), "file_refused", "{bad}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oversized_messages_are_refused_before_sending() {
        let body = PostBody {
            text: "x".repeat(24_001),
            ..Default::default()
        };
        assert_eq!(check_size(&body).unwrap_err().code(), "message_too_large");
        let big_json = PostBody {
            text: "\u{1}".repeat(50_000),
            kind: Some(MessageType::Handoff),
            ..Default::default()
        };
        assert_eq!(
            check_size(&big_json).unwrap_err().code(),
            "message_too_large"
        );
    }

    #[test]
    fn handoffs_keep_to_their_cap() {
        let t = handoff_text("a", "b", "done\n\n", false, "--large").unwrap();
        assert_eq!(t, "@b handoff from a:\n\ndone");
        let long = "x".repeat(HANDOFF_CHARS);
        let e = handoff_text("a", "b", &long, false, "--large").unwrap_err();
        assert!(e.to_string().contains("--large allows"), "{e}");
        assert!(handoff_text("a", "b", &long, true, "--large").is_ok());
    }
}
