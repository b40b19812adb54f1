//! Participant commands: what an agent session types. Every read prints what to run
//! next; sends carry a `client_msg_id` so a retry after a lost answer never posts twice;
//! the read cursor is stored so `read`, `watch` and `attend` resume exactly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::output::{CALL_TIMEOUT, CliError, Ctx, Exit, WAIT_TIMEOUT, format_messages};
use super::state::{CliState, Credentials, save_credentials, save_state, set_current};
use crate::client::{Client, ClientError};
use crate::protocol::card::{AgentFlavor, instructions as agent_instructions, parse_invite_uri};
use crate::protocol::token::mint_token;
use crate::protocol::url::RoomUrl;
use crate::protocol::{validate_alias, validate_room_id};
use crate::store::export::Export;

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Room id, or an `agentgather://join?...` invite URI.
    pub room: String,
    #[arg(long)]
    pub alias: Option<String>,
    #[arg(long)]
    pub token: Option<String>,
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Who to address (mentioned as @alias).
    pub alias: String,
    /// The message text.
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// message | question | status | request_review | request_debug
    #[arg(long = "type", default_value = "message")]
    pub kind: String,
}

#[derive(Args, Debug)]
pub struct ReplyArgs {
    /// The id of the message you answer.
    pub id: u64,
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// Only messages with a greater id.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// At most this many.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// One message's id; without it, the unread messages since your cursor.
    pub id: Option<u64>,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Wait for messages after this id (default: your cursor).
    #[arg(long)]
    pub since: Option<u64>,
}

#[derive(Args, Debug)]
pub struct AttendArgs {
    /// Start after this id (default: your cursor).
    #[arg(long)]
    pub since: Option<u64>,
}

#[derive(Args, Debug)]
pub struct HandoffArgs {
    /// Who takes the work over.
    pub alias: String,
    /// A file to embed, or the summary text itself.
    #[arg(long)]
    pub summary: String,
    /// Allow up to 64,000 characters instead of 24,000.
    #[arg(long)]
    pub large: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write here instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// md (readable, default) or json (versioned).
    #[arg(long, default_value = "md")]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct InstructionsArgs {
    /// Tailor for codex, claude or gemini.
    #[arg(long)]
    pub agent: Option<String>,
}

fn cli_next(since: u64) -> String {
    format!("agentgather watch --since {since} --json")
}

pub fn join(ctx: &Ctx, a: JoinArgs) -> Result<(), CliError> {
    let (room, alias, token, url) = if a.room.starts_with("agentgather://") {
        let inv = parse_invite_uri(&a.room).map_err(CliError::msg)?;
        (inv.room, inv.alias, inv.token, inv.url)
    } else {
        let need = |v: Option<String>, flag: &str| {
            v.ok_or_else(|| CliError::msg(format!("{flag} is required (or pass the invite URI)")))
        };
        (
            a.room,
            need(a.alias, "--alias")?,
            need(a.token, "--token")?,
            need(a.url, "--url")?,
        )
    };
    validate_room_id(&room).map_err(|e| CliError::msg(e.to_string()))?;
    validate_alias(&alias).map_err(|e| CliError::msg(e.to_string()))?;
    let url = RoomUrl::parse(&url)
        .map_err(|e| CliError::msg(e.to_string()))?
        .as_str()
        .to_string();
    let client = Client::new(&url, &token, CALL_TIMEOUT);
    let (_, joined) = client.post("/join", &json!({}))?;
    let status = client.get("/status")?;
    if status["me"].as_str() != Some(alias.as_str())
        || joined["room"].as_str() != Some(room.as_str())
    {
        return Err(CliError::new(
            Exit::Unauthorized,
            "participant_mismatch",
            format!(
                "this token is {:?} in room {:?}, not {alias:?} in {room:?}",
                status["me"], joined["room"]
            ),
        ));
    }
    let previous = super::state::load_credentials(&ctx.home, &room, &alias)?;
    let creds = Credentials {
        room: room.clone(),
        alias: alias.clone(),
        url: url.clone(),
        token,
        is_host: status["is_host"].as_bool().unwrap_or(false),
        cursor: previous.map_or(0, |p| p.cursor),
    };
    set_current(&ctx.home, &creds)?;
    ctx.print(
        &json!({"ok": true, "room": room, "alias": alias, "url": url, "room_status": status["room_status"], "next_cmd": "agentgather attend --json"}),
        || format!("Joined room {room} as {alias} at {url}.\nNext: agentgather room brief view, then agentgather attend"),
    );
    Ok(())
}

pub fn current(ctx: &Ctx) -> Result<(), CliError> {
    let c = ctx.current()?;
    ctx.print(
        &json!({"ok": true, "room": c.room, "alias": c.alias, "url": c.url, "is_host": c.is_host, "cursor": c.cursor}),
        || format!("room {}\nalias {}{}\nurl {}\ncursor {}", c.room, c.alias, if c.is_host { " (host)" } else { "" }, c.url, c.cursor),
    );
    Ok(())
}

pub fn leave(ctx: &Ctx) -> Result<(), CliError> {
    let c = ctx.current()?;
    ctx.client(&c, CALL_TIMEOUT).post("/leave", &json!({}))?;
    save_state(&ctx.home, &CliState { current: None })?;
    ctx.print(
        &json!({"ok": true, "room": c.room, "alias": c.alias, "left": true}),
        || {
            format!(
                "Left room {} (join again with `agentgather room join {} --alias {} ...`).",
                c.room, c.room, c.alias
            )
        },
    );
    Ok(())
}

/// Posts with a fresh `client_msg_id`, retrying on network errors: the server answers a
/// repeat with the original message, so a retry never posts twice. Shared with the MCP
/// adapter, so both post the same way.
pub(crate) fn post_message(client: &Client, mut body: Value) -> Result<Value, CliError> {
    let cmid = mint_token().map_err(|e| CliError::msg(format!("no randomness: {e}")))?;
    body["client_msg_id"] = json!(format!("cli-{}", &cmid[4..]));
    let mut delay = Duration::from_millis(200);
    for attempt in 0..5 {
        match client.post("/messages", &body) {
            Ok((_, v)) => return Ok(v["message"].clone()),
            Err(e) if e.is_unreachable() && attempt < 4 => {
                eprintln!("agentgather: {e}; retrying in {} ms", delay.as_millis());
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::new(
        Exit::Unreachable,
        "unreachable",
        "the room server did not answer",
    ))
}

fn print_sent(ctx: &Ctx, m: &Value) {
    ctx.print(&json!({"ok": true, "message": m}), || {
        format!(
            "Sent #{} to room {}.",
            m["id"],
            m["room"].as_str().unwrap_or("?")
        )
    });
}

pub fn send(ctx: &Ctx, a: SendArgs) -> Result<(), CliError> {
    let c = ctx.current()?;
    let alias = a.alias.trim_start_matches('@');
    let text = format!("@{alias} {}", a.text.join(" "));
    let m = post_message(
        &ctx.client(&c, CALL_TIMEOUT),
        json!({"text": text, "type": a.kind, "to": alias}),
    )?;
    print_sent(ctx, &m);
    Ok(())
}

pub fn reply(ctx: &Ctx, a: ReplyArgs) -> Result<(), CliError> {
    let c = ctx.current()?;
    let m = post_message(
        &ctx.client(&c, CALL_TIMEOUT),
        json!({"text": a.text.join(" "), "type": "reply", "reply_to": a.id}),
    )?;
    print_sent(ctx, &m);
    Ok(())
}

/// The text of a handoff from `from` to `alias` embedding `summary`, within the cap:
/// 24,000 characters, or 64,000 when `large` (`large_hint` names the switch that allows
/// it, e.g. `--large`). Shared with the MCP adapter.
pub(crate) fn handoff_text(
    from: &str,
    alias: &str,
    summary: &str,
    large: bool,
    large_hint: &str,
) -> Result<String, CliError> {
    let text = format!("@{alias} handoff from {from}:\n\n{}", summary.trim_end());
    let cap = if large { 64_000 } else { 24_000 };
    let n = text.chars().count();
    if n > cap {
        let hint = if large {
            String::new()
        } else {
            format!("; {large_hint} allows 64,000")
        };
        return Err(CliError::msg(format!(
            "the handoff is {n} characters, over the cap of {cap}{hint}"
        )));
    }
    Ok(text)
}

pub fn handoff(ctx: &Ctx, a: HandoffArgs) -> Result<(), CliError> {
    let c = ctx.current()?;
    let alias = a.alias.trim_start_matches('@');
    let path = PathBuf::from(&a.summary);
    let summary = if path.is_file() {
        std::fs::read_to_string(&path)
            .map_err(|e| CliError::msg(format!("cannot read {}: {e}", path.display())))?
    } else {
        a.summary.clone()
    };
    let text = handoff_text(&c.alias, alias, &summary, a.large, "--large")?;
    let m = post_message(
        &ctx.client(&c, CALL_TIMEOUT),
        json!({"text": text, "type": "handoff", "to": alias}),
    )?;
    print_sent(ctx, &m);
    Ok(())
}

fn print_batch(ctx: &Ctx, msgs: &[Value], next: u64, extra: Value) {
    let mut v =
        json!({"ok": true, "messages": msgs, "next_since_id": next, "next_cmd": cli_next(next)});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    ctx.print(&v, || {
        format!(
            "{}\nNext: {}",
            format_messages(msgs),
            cli_next(next).replace(" --json", "")
        )
    });
}

pub fn messages(ctx: &Ctx, a: MessagesArgs) -> Result<(), CliError> {
    let c = ctx.current()?;
    let mut path = format!("/messages?since_id={}", a.since);
    if let Some(l) = a.limit {
        path.push_str(&format!("&limit={l}"));
    }
    let page = ctx.client(&c, CALL_TIMEOUT).get(&path)?;
    let msgs = page["messages"].as_array().cloned().unwrap_or_default();
    print_batch(
        ctx,
        &msgs,
        page["next_since_id"].as_u64().unwrap_or(a.since),
        json!({}),
    );
    Ok(())
}

fn advance_cursor(ctx: &Ctx, c: &mut Credentials, to: u64) -> Result<(), CliError> {
    if to > c.cursor {
        c.cursor = to;
        save_credentials(&ctx.home, c)?;
    }
    Ok(())
}

pub fn read(ctx: &Ctx, a: ReadArgs) -> Result<(), CliError> {
    let mut c = ctx.current()?;
    let client = ctx.client(&c, CALL_TIMEOUT);
    if let Some(id) = a.id {
        let page = client.get(&format!(
            "/messages?since_id={}&limit=1",
            id.saturating_sub(1)
        ))?;
        let m = page["messages"]
            .as_array()
            .and_then(|m| m.first())
            .filter(|m| m["id"].as_u64() == Some(id))
            .cloned();
        let m = m.ok_or_else(|| {
            CliError::new(
                Exit::Error,
                "not_found",
                format!("there is no message {id}"),
            )
        })?;
        print_batch(ctx, std::slice::from_ref(&m), c.cursor, json!({}));
        return Ok(());
    }
    let page = client.get(&format!("/messages?since_id={}", c.cursor))?;
    let msgs = page["messages"].as_array().cloned().unwrap_or_default();
    let next = page["next_since_id"].as_u64().unwrap_or(c.cursor);
    advance_cursor(ctx, &mut c, next)?;
    print_batch(ctx, &msgs, next, json!({}));
    Ok(())
}

fn wait_once(client: &Client, alias: &str, since: u64) -> Result<Value, ClientError> {
    client.get(&format!("/wait?participant={alias}&since_id={since}"))
}

pub fn watch(ctx: &Ctx, a: WatchArgs) -> Result<(), CliError> {
    let mut c = ctx.current()?;
    let since = a.since.unwrap_or(c.cursor);
    let w = wait_once(&ctx.client(&c, WAIT_TIMEOUT), &c.alias, since)?;
    let msgs = w["messages"].as_array().cloned().unwrap_or_default();
    let next = w["next_since_id"].as_u64().unwrap_or(since);
    advance_cursor(ctx, &mut c, next)?;
    let extra = json!({"mentioned": w["mentioned"], "heartbeat": w["heartbeat"], "room_status": w["room_status"], "keep_waiting": w["keep_waiting"]});
    if w["keep_waiting"].as_bool() == Some(false) {
        let v = json!({"ok": true, "messages": msgs, "next_since_id": next, "next_cmd": Value::Null,
            "room_status": w["room_status"], "keep_waiting": false, "mentioned": w["mentioned"]});
        ctx.print(&v, || {
            format!(
                "{}\nThe room is {}; nothing more to wait for.",
                format_messages(&msgs),
                w["room_status"].as_str().unwrap_or("closed")
            )
        });
        return Ok(());
    }
    print_batch(ctx, &msgs, next, extra);
    Ok(())
}

/// Follows `/wait` until the room closes; survives restarts and blips with capped backoff.
pub fn attend(ctx: &Ctx, a: AttendArgs) -> Result<(), CliError> {
    let mut c = ctx.current()?;
    let mut since = a.since.unwrap_or(c.cursor);
    let interrupted = Arc::new(AtomicBool::new(false));
    spawn_interrupt_handler(ctx, &c, interrupted.clone());
    if !ctx.json {
        eprintln!(
            "agentgather: attending room {} as {} from #{since}; ctrl-c leaves",
            c.room, c.alias
        );
    }
    let mut delay = Duration::from_millis(250);
    let mut was_down = false;
    loop {
        let client = ctx.client(&c, WAIT_TIMEOUT);
        match wait_once(&client, &c.alias, since) {
            Ok(w) => {
                if was_down {
                    eprintln!("agentgather: reconnected to {}", client.base());
                    was_down = false;
                }
                delay = Duration::from_millis(250);
                let msgs = w["messages"].as_array().cloned().unwrap_or_default();
                let next = w["next_since_id"].as_u64().unwrap_or(since);
                if !msgs.is_empty() {
                    since = next;
                    advance_cursor(ctx, &mut c, next)?;
                    let v = json!({"ok": true, "messages": msgs, "mentioned": w["mentioned"], "next_since_id": next, "room_status": w["room_status"]});
                    ctx.print(&v, || format_messages(&msgs));
                }
                if w["participant_status"].as_str() == Some("removed") {
                    return Err(CliError::new(
                        Exit::Removed,
                        "participant_removed",
                        "you were removed from the room by the host",
                    ));
                }
                if w["keep_waiting"].as_bool() == Some(false) {
                    let v = json!({"ok": true, "event": "room_closed", "room": c.room, "room_status": w["room_status"], "next_since_id": since, "next_cmd": Value::Null});
                    ctx.print(&v, || {
                        format!("Room {} is closed. Attendance over.", c.room)
                    });
                    return Ok(());
                }
            }
            Err(e) if e.is_unreachable() || e.status().is_some_and(|s| s >= 500 && s != 507) => {
                if interrupted.load(Ordering::SeqCst) {
                    return Ok(());
                }
                eprintln!("agentgather: {e}; retrying in {:.1} s", delay.as_secs_f32());
                was_down = true;
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// On ctrl-c or SIGTERM during `attend`: tell the room we left, then exit 0.
fn spawn_interrupt_handler(ctx: &Ctx, c: &Credentials, flag: Arc<AtomicBool>) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) else {
        return;
    };
    let client = ctx.client(c, Duration::from_secs(3));
    let json_out = ctx.json;
    let room = c.room.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            flag.store(true, Ordering::SeqCst);
            let left = client.post("/leave", &json!({})).is_ok();
            if json_out {
                println!(
                    "{}",
                    json!({"ok": true, "event": "left", "room": room, "left": left})
                );
            } else {
                eprintln!("agentgather: left room {room}");
            }
            std::process::exit(0);
        }
    });
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> Result<(), CliError> {
    if a.format != "md" && a.format != "json" {
        return Err(CliError::msg(format!(
            "--format must be md or json (got {:?})",
            a.format
        )));
    }
    let c = ctx.current()?;
    let text = if ctx.home.room_exists(&c.room) {
        let e = Export::load_readonly(&ctx.home, &c.room)?;
        if a.format == "md" {
            e.to_markdown()
        } else {
            serde_json::to_string_pretty(&e).map_err(|e| CliError::msg(e.to_string()))?
        }
    } else {
        let client = ctx.client(&c, Duration::from_secs(120));
        if a.format == "md" {
            client.get_text("/export?format=md")?
        } else {
            serde_json::to_string_pretty(&client.get("/export?format=json")?)
                .map_err(|e| CliError::msg(e.to_string()))?
        }
    };
    match a.output {
        Some(path) => {
            write_user_file(&path, text.as_bytes())?;
            ctx.print(
                &json!({"ok": true, "output": path, "format": a.format, "bytes": text.len()}),
                || {
                    format!(
                        "Exported room {} to {} ({} bytes).",
                        c.room,
                        path.display(),
                        text.len()
                    )
                },
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Exports hold the room's conversation, so they are written 0600 too.
fn write_user_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::msg(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| CliError::msg(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

pub fn instructions(ctx: &Ctx, a: InstructionsArgs) -> Result<(), CliError> {
    let flavor = match a.agent.as_deref() {
        None => AgentFlavor::Generic,
        Some("codex") => AgentFlavor::Codex,
        Some("claude") => AgentFlavor::Claude,
        Some("gemini") => AgentFlavor::Gemini,
        Some(other) => {
            return Err(CliError::msg(format!(
                "--agent must be codex, claude or gemini (got {other:?})"
            )));
        }
    };
    let text = agent_instructions(flavor);
    ctx.print(&json!({"ok": true, "instructions": text}), || text.clone());
    Ok(())
}

pub fn doctor(ctx: &Ctx) -> Result<(), CliError> {
    let checks = super::doctor::run(ctx);
    let problems = checks.iter().filter(|c| !c.ok).count();
    let v = json!({"ok": problems == 0, "checks": checks, "problems": problems});
    ctx.print(&v, || {
        let mut out = String::new();
        for c in &checks {
            out.push_str(&format!(
                "{} {:<12} {}\n",
                if c.ok { "ok " } else { "!! " },
                c.name,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    fix: {fix}\n"));
            }
        }
        out.push_str(&if problems == 0 {
            "All good.".to_string()
        } else {
            format!("{problems} problem(s).")
        });
        out
    });
    if problems > 0 {
        // The report is already printed (as the one JSON object with --json).
        std::process::exit(Exit::Error as i32);
    }
    Ok(())
}
