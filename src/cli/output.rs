//! What every command shares: the home, the current identity, how to reach its server,
//! and how results and errors are printed (text for people, one JSON object with
//! `--json`; errors as one line on stderr with a stable exit code).

use serde_json::Value;

use crate::client::ClientError;
use crate::protocol::ApiError;
use crate::protocol::claim::ClaimConflict;
use crate::protocol::message::Message;
use crate::protocol::timefmt::parse_ms;
use crate::protocol::wire::ErrorBody;
use crate::session::{Session, SessionError};
use crate::store::{Home, StoreError};

/// Process exit codes, documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Error = 1,
    Unreachable = 3,
    Unauthorized = 4,
    Removed = 5,
    Closed = 6,
    /// `ask --wait`: no answer within the timeout.
    Timeout = 7,
}

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub code: String,
    pub message: String,
    /// A claim refused with 409 `claim_conflict`: the claims in the way (in `--json`).
    pub conflicts: Vec<ClaimConflict>,
}

impl CliError {
    pub fn new(exit: Exit, code: &str, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            code: code.to_string(),
            message: message.into(),
            conflicts: Vec::new(),
        }
    }
    pub fn msg(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Error, "error", message)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::Locked { .. } => "room_locked",
            StoreError::NoRoom(_) => "no_room",
            StoreError::RoomExists(_) => "room_exists",
            _ => "storage_error",
        };
        CliError::new(Exit::Error, code, e.to_string())
    }
}

fn exit_for(status: u16, code: &str) -> Exit {
    match (status, code) {
        (410, _) => Exit::Removed,
        (403, "room_closed") => Exit::Closed,
        (401, _) | (403, _) => Exit::Unauthorized,
        _ => Exit::Error,
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Unreachable { .. } => CliError::new(
                Exit::Unreachable,
                "unreachable",
                format!("{e}; is the room served? (host: `agentgather up`)"),
            ),
            ClientError::Api {
                status,
                code,
                message,
            } => CliError::new(exit_for(*status, code), code, message.clone()),
            ClientError::Protocol { .. } => {
                CliError::new(Exit::Error, "protocol_error", e.to_string())
            }
        }
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::new(exit_for(e.status, e.code), e.code, e.message)
    }
}

impl From<SessionError> for CliError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Client(c) => c.into(),
            SessionError::Store(s) => s.into(),
            SessionError::Mismatch { .. } => {
                CliError::new(Exit::Unauthorized, "participant_mismatch", e.to_string())
            }
            other => CliError::new(Exit::Error, other.code(), other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::msg(e.to_string())
    }
}

/// An unreachable server said from where this home stands: its host is told how to serve
/// the room; a participant is told the host may have stopped or moved it (another port or
/// address after a restart) and how to re-join with a fresh invite.
pub fn explain_unreachable(mut e: CliError) -> CliError {
    if e.code != "unreachable" {
        return e;
    }
    let Some(creds) = Home::from_env()
        .ok()
        .and_then(|h| Session::current(&h).ok())
        .map(|s| s.creds)
    else {
        return e;
    };
    let base = e
        .message
        .split("; is the room served?")
        .next()
        .unwrap_or("")
        .to_string();
    e.message = if creds.is_host {
        format!(
            "{base}; serve room {} with `agentgather up {}`",
            creds.room, creds.room
        )
    } else {
        format!(
            "{base}; the host may have stopped room {} or moved it to another address: ask the host for a fresh invite and run `agentgather room join '<invite-uri>'`",
            creds.room
        )
    };
    e
}

/// Prints the error (stderr line; JSON on stdout with `--json`), returns the exit code.
pub fn report_error(e: &CliError, json: bool) -> i32 {
    if json {
        let body = ErrorBody {
            ok: false,
            error: e.code.clone(),
            message: e.message.clone(),
            conflicts: e.conflicts.clone(),
        };
        println!("{}", serde_json::to_value(&body).unwrap_or_default());
    }
    eprintln!("agentgather: {}", e.message);
    e.exit as i32
}

pub struct Ctx {
    pub home: Home,
    pub json: bool,
}

impl Ctx {
    pub fn new(json: bool) -> Result<Ctx, CliError> {
        Ok(Ctx {
            home: Home::from_env()?,
            json,
        })
    }

    /// This home's participant in its current room.
    pub fn session(&self) -> Result<Session, CliError> {
        Ok(Session::current(&self.home)?)
    }

    /// The local address of a server holding `room` in this home, if one runs.
    pub fn local_server(&self, room: &str) -> Option<String> {
        crate::session::local_server(&self.home, room)
    }

    /// Prints `value` with `--json`, else `text`.
    pub fn print(&self, value: &Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{}", t.trim_end());
            }
        }
    }
}

/// Whether stdout is a terminal that wants colour (`NO_COLOR` and `TERM=dumb` opt out).
fn colour() -> bool {
    use std::io::IsTerminal;
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb")
    })
}

/// Wraps `s` in an SGR colour code when colour is on.
pub fn paint(code: &str, s: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// Room text comes from other participants: control characters (terminal escapes among
/// them) are shown as U+FFFD, never sent to the terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// `HH:MM:SS` in the local time zone for an RFC 3339 timestamp.
fn local_time(ts: &str) -> String {
    let Some(ms) = parse_ms(ts) else {
        return printable(ts);
    };
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r reads `secs` and writes only into `tm`, which we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if ok {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        ts.get(11..19).unwrap_or(ts).to_string()
    }
}

/// One message as a readable block: `#12  14:03:22 reviewer ↩ #9: text`, local time.
pub fn format_message(m: &Message) -> String {
    let from = printable(&m.from);
    let kind = m.kind.as_str();
    let text = printable(&m.text);
    let time = local_time(&m.ts);
    let who = if kind == "system" {
        paint("2", &from)
    } else {
        paint("1", &from)
    };
    let mut head = format!(
        "{} {} {who}",
        paint("2", &format!("#{:<4}", m.id)),
        paint("2", &time)
    );
    if let Some(r) = m.reply_to {
        head.push_str(&format!(" ↩ #{r}"));
    }
    if kind != "message" {
        head.push_str(&paint("36", &format!(" [{kind}]")));
    }
    if let Some(t) = &m.topic {
        let title = printable(&t.title);
        head.push_str(&paint("36", &format!(" \"{title}\" ({})", t.status)));
    }
    if let Some(id) = m.topic_id {
        let status = m.topic_update.as_ref().map(|u| format!(" → {}", u.status));
        head.push_str(&paint(
            "36",
            &format!(" on topic #{id}{}", status.unwrap_or_default()),
        ));
    }
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let mut out = format!("{head}: {first}");
    for l in lines {
        out.push_str("\n      ");
        out.push_str(l);
    }
    out
}

/// `1 message`, `2 messages`: a count with its noun (regular plurals only).
pub fn plural(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Several messages, one block each; a note when there are none.
pub fn format_messages(msgs: &[Message]) -> String {
    if msgs.is_empty() {
        return "(no new messages)".into();
    }
    msgs.iter()
        .map(format_message)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Logs for the long-running commands (serve, broker, tunnel) go to stderr, warnings and
/// up unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_print_without_terminal_escapes() {
        let m = json!({"id": 7, "room": "r", "from": "evil", "type": "message", "ts": "2026-11-25T12:00:00.000Z",
            "text": "hi \u{1b}[2J\u{1b}]0;pwned\u{7}\nsecond line", "reply_to": 3});
        let out = format_message(&serde_json::from_value(m).unwrap());
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert!(out.contains("↩ #3"));
        assert!(out.contains("\n      second line"));
    }
}
