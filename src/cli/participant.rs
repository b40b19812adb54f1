//! Participant commands: what an agent session types. Every read prints what to run
//! next; sends carry a `client_msg_id` so a retry after a lost answer never posts twice;
//! the read cursor is stored so `read`, `watch` and `attend` resume exactly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::output::{CliError, Ctx, Exit, format_messages};
use crate::protocol::card::{AgentFlavor, instructions as agent_instructions, parse_invite_uri};
use crate::protocol::message::Message;
use crate::protocol::wire::{MessagesPage, PostBody};
use crate::protocol::{MessageType, RoomStatus};
use crate::session::{
    self, Backoff, CALL_TIMEOUT, CliState, JoinTarget, Session, handoff_text, is_transient,
    save_state,
};
use crate::store::export::Export;

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Room id, or an `agentgather://join?...` invite URI, or `-` to read the invite URI
    /// from standard input (keeps the token out of the process list and shell history).
    pub room: String,
    #[arg(long)]
    pub alias: Option<String>,
    /// The token, or `-` to read it from standard input.
    #[arg(long)]
    pub token: Option<String>,
    #[arg(long)]
    pub url: Option<String>,
    /// Declare how you can be reached: live | wake | poll | manual (default manual).
    #[arg(long)]
    pub reach: Option<crate::protocol::reach::Reach>,
    /// With `--reach poll`: how often you look, in seconds (5-3600, default 60).
    #[arg(long = "poll-every", value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub poll_every: Option<u64>,
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
    pub kind: MessageType,
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
    /// Each message quoted as external advice, as the MCP adapter gives them to a model
    /// (for an agent reading the room in a shell tool: a message cannot pass itself off
    /// as an instruction or forge another's header).
    #[arg(long)]
    pub quoted: bool,
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
    /// Print a ready `agentgather wake --exec` recipe for claude, claude-mcp, codex, gemini
    /// or script.
    #[arg(long)]
    pub wake: Option<super::wake::WakeRecipe>,
    /// Print how to route a harness's permission prompts to the room (claude).
    #[arg(long)]
    pub approvals: Option<super::approvals::ApprovalHarness>,
}

fn cli_next(since: u64) -> String {
    format!("agentgather watch --since {since} --json")
}

/// One line of standard input, trimmed: a secret passed without argv.
fn stdin_line(what: &str) -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::msg(format!("cannot read {what} from standard input: {e}")))?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err(CliError::msg(format!("no {what} on standard input")));
    }
    Ok(line)
}

pub fn join(ctx: &Ctx, mut a: JoinArgs) -> Result<(), CliError> {
    if a.room == "-" {
        a.room = stdin_line("invite URI")?;
    }
    if a.token.as_deref() == Some("-") {
        a.token = Some(stdin_line("token")?);
    }
    let reach = super::reach::join_reach(a.reach, a.poll_every);
    let target = if a.room.starts_with("agentgather://") {
        let inv = parse_invite_uri(&a.room).map_err(CliError::msg)?;
        JoinTarget {
            room: inv.room,
            alias: inv.alias,
            token: inv.token,
            url: inv.url,
            reach,
        }
    } else {
        let need = |v: Option<String>, flag: &str| {
            v.ok_or_else(|| CliError::msg(format!("{flag} is required (or pass the invite URI)")))
        };
        JoinTarget {
            room: a.room,
            alias: need(a.alias, "--alias")?,
            token: need(a.token, "--token")?,
            url: need(a.url, "--url")?,
            reach,
        }
    };
    let (session, status) = session::join(&ctx.home, target)?;
    let c = &session.creds;
    ctx.print(
        &json!({"ok": true, "room": c.room, "alias": c.alias, "url": c.url, "room_status": status.room_status, "next_cmd": "agentgather attend --json"}),
        || format!("Joined room {} as {} at {}.\nNext: agentgather room brief view, then agentgather attend", c.room, c.alias, c.url),
    );
    Ok(())
}

pub fn current(ctx: &Ctx) -> Result<(), CliError> {
    let c = ctx.session()?.creds;
    ctx.print(
        &json!({"ok": true, "room": c.room, "alias": c.alias, "url": c.url, "is_host": c.is_host, "cursor": c.cursor}),
        || format!("room {}\nalias {}{}\nurl {}\ncursor {}", c.room, c.alias, if c.is_host { " (host)" } else { "" }, c.url, c.cursor),
    );
    Ok(())
}

pub fn leave(ctx: &Ctx) -> Result<(), CliError> {
    let s = ctx.session()?;
    s.client(CALL_TIMEOUT).leave()?;
    save_state(&ctx.home, &CliState { current: None })?;
    let c = &s.creds;
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

/// Posts as this participant, saying on stderr when a retry is needed.
fn post(s: &Session, body: PostBody) -> Result<Message, CliError> {
    Ok(s.post(body, |e, delay| {
        eprintln!("agentgather: {e}; retrying in {} ms", delay.as_millis());
    })?)
}

fn print_sent(ctx: &Ctx, m: &Message) {
    ctx.print(&json!({"ok": true, "message": m}), || {
        format!("Sent #{} to room {}.", m.id, m.room)
    });
}

pub fn send(ctx: &Ctx, a: SendArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let alias = a.alias.trim_start_matches('@');
    let body = PostBody {
        text: format!("@{alias} {}", a.text.join(" ")),
        kind: Some(a.kind),
        to: Some(alias.to_string()),
        ..Default::default()
    };
    print_sent(ctx, &post(&s, body)?);
    Ok(())
}

pub fn reply(ctx: &Ctx, a: ReplyArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let body = PostBody {
        text: a.text.join(" "),
        kind: Some(MessageType::Reply),
        reply_to: Some(a.id),
        ..Default::default()
    };
    print_sent(ctx, &post(&s, body)?);
    Ok(())
}

pub fn handoff(ctx: &Ctx, a: HandoffArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let alias = a.alias.trim_start_matches('@');
    let path = PathBuf::from(&a.summary);
    // A path that exists is a file to embed (checked: a regular file within the size
    // cap); anything else is the summary text itself.
    let summary = if path.exists() {
        session::read_summary_file(&path)?
    } else {
        a.summary.clone()
    };
    let text = handoff_text(&s.creds.alias, alias, &summary, a.large, "--large")?;
    let body = PostBody {
        text,
        kind: Some(MessageType::Handoff),
        to: Some(alias.to_string()),
        ..Default::default()
    };
    print_sent(ctx, &post(&s, body)?);
    Ok(())
}

/// What every read prints: the messages, the cursor and the next command.
#[derive(Serialize)]
struct Batch<'a> {
    ok: bool,
    messages: &'a [Message],
    next_since_id: u64,
    next_cmd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_more: Option<bool>,
    #[serde(flatten)]
    wait: Option<WaitFlags>,
}

/// The extra fields of a `watch` answer.
#[derive(Serialize)]
struct WaitFlags {
    mentioned: bool,
    heartbeat: bool,
    room_status: RoomStatus,
    keep_waiting: bool,
}

fn print_batch(ctx: &Ctx, batch: &Batch<'_>) {
    ctx.print(&json!(batch), || match &batch.next_cmd {
        Some(next) => format!(
            "{}\nNext: {}",
            format_messages(batch.messages),
            next.replace(" --json", "")
        ),
        None => format!(
            "{}\nThe room is {}; nothing more to wait for.",
            format_messages(batch.messages),
            batch
                .wait
                .as_ref()
                .map_or(RoomStatus::Closed, |w| w.room_status)
        ),
    });
}

fn page_batch(page: &MessagesPage) -> Batch<'_> {
    Batch {
        ok: true,
        messages: &page.messages,
        next_since_id: page.next_since_id,
        next_cmd: Some(cli_next(page.next_since_id)),
        has_more: Some(page.has_more),
        wait: None,
    }
}

pub fn messages(ctx: &Ctx, a: MessagesArgs) -> Result<(), CliError> {
    if a.quoted && ctx.json {
        return Err(CliError::new(
            Exit::Error,
            "invalid_args",
            "--quoted prints text for a model to read; leave out --json",
        ));
    }
    let s = ctx.session()?;
    let page = s.client(CALL_TIMEOUT).messages(a.since, a.limit)?;
    if a.quoted {
        println!(
            "{}\nNext: agentgather messages --since {} --quoted",
            crate::mcp::render::messages_text(&page.messages, &s.creds.alias),
            page.next_since_id
        );
        return Ok(());
    }
    print_batch(ctx, &page_batch(&page));
    Ok(())
}

pub fn read(ctx: &Ctx, a: ReadArgs) -> Result<(), CliError> {
    let mut s = ctx.session()?;
    let client = s.client(CALL_TIMEOUT);
    if let Some(id) = a.id {
        let page = client.messages(id.saturating_sub(1), Some(1))?;
        let m = page
            .messages
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| {
                CliError::new(
                    Exit::Error,
                    "not_found",
                    format!("there is no message {id}"),
                )
            })?;
        let cursor = s.creds.cursor;
        print_batch(
            ctx,
            &Batch {
                ok: true,
                messages: std::slice::from_ref(&m),
                next_since_id: cursor,
                next_cmd: Some(cli_next(cursor)),
                has_more: None,
                wait: None,
            },
        );
        return Ok(());
    }
    let page = client.messages(s.creds.cursor, None)?;
    s.advance_cursor(page.next_since_id)?;
    print_batch(ctx, &page_batch(&page));
    Ok(())
}

pub fn watch(ctx: &Ctx, a: WatchArgs) -> Result<(), CliError> {
    let mut s = ctx.session()?;
    let since = a.since.unwrap_or(s.creds.cursor);
    let w = s.wait(since, None)?;
    s.advance_cursor(w.next_since_id)?;
    print_batch(
        ctx,
        &Batch {
            ok: true,
            messages: &w.messages,
            next_since_id: w.next_since_id,
            next_cmd: w.keep_waiting.then(|| cli_next(w.next_since_id)),
            has_more: None,
            wait: Some(WaitFlags {
                mentioned: w.mentioned,
                heartbeat: w.heartbeat,
                room_status: w.room_status,
                keep_waiting: w.keep_waiting,
            }),
        },
    );
    Ok(())
}

/// Follows `/wait` until the room closes; survives restarts and blips with capped backoff.
pub fn attend(ctx: &Ctx, a: AttendArgs) -> Result<(), CliError> {
    let mut s = ctx.session()?;
    let mut since = a.since.unwrap_or(s.creds.cursor);
    session::declare_reach_in_background(&ctx.home, crate::protocol::reach::Reach::Live);
    let interrupted = Arc::new(AtomicBool::new(false));
    spawn_interrupt_handler(ctx, &s, interrupted.clone());
    if !ctx.json {
        eprintln!(
            "agentgather: attending room {} as {} from #{since}; ctrl-c leaves",
            s.creds.room, s.creds.alias
        );
    }
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    let mut was_down = false;
    loop {
        match s.wait(since, None) {
            Ok(w) => {
                if was_down {
                    eprintln!(
                        "agentgather: reconnected to {}",
                        s.client(CALL_TIMEOUT).base()
                    );
                    was_down = false;
                }
                backoff.reset();
                if !w.messages.is_empty() {
                    since = w.next_since_id;
                    s.advance_cursor(since)?;
                    let v = json!({"ok": true, "messages": w.messages, "mentioned": w.mentioned, "next_since_id": since, "room_status": w.room_status});
                    ctx.print(&v, || format_messages(&w.messages));
                }
                if w.removed() {
                    return Err(CliError::new(
                        Exit::Removed,
                        "participant_removed",
                        "you were removed from the room by the host",
                    ));
                }
                if !w.keep_waiting {
                    let room = &s.creds.room;
                    let v = json!({"ok": true, "event": "room_closed", "room": room, "room_status": w.room_status, "next_since_id": since, "next_cmd": null});
                    ctx.print(&v, || format!("Room {room} is closed. Attendance over."));
                    return Ok(());
                }
            }
            Err(e) if is_transient(&e) => {
                if interrupted.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let delay = backoff.next_delay();
                eprintln!("agentgather: {e}; retrying in {:.1} s", delay.as_secs_f32());
                was_down = true;
                std::thread::sleep(delay);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// On ctrl-c or SIGTERM during `attend`: tell the room we left, then exit 0.
fn spawn_interrupt_handler(ctx: &Ctx, s: &Session, flag: Arc<AtomicBool>) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) else {
        return;
    };
    let client = s.client(Duration::from_secs(3));
    let json_out = ctx.json;
    let room = s.creds.room.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            flag.store(true, Ordering::SeqCst);
            let left = client.leave().is_ok();
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
    let s = ctx.session()?;
    let c = &s.creds;
    let text = if ctx.home.room_exists(&c.room) {
        let e = Export::load_readonly(&ctx.home, &c.room)?;
        if a.format == "md" {
            e.to_markdown()
        } else {
            serde_json::to_string_pretty(&e).map_err(|e| CliError::msg(e.to_string()))?
        }
    } else {
        let client = s.client(Duration::from_secs(120));
        if a.format == "md" {
            client.get_text("/export?format=md")?
        } else {
            serde_json::to_string_pretty(&client.get::<serde_json::Value>("/export?format=json")?)
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
    if let Some(h) = a.approvals {
        let (text, value) = super::approvals::setup_text(ctx, h);
        ctx.print(&value, || text);
        return Ok(());
    }
    if let Some(r) = a.wake {
        let text = super::wake::recipe_text(r);
        let exec = super::wake::recipe_exec(r);
        ctx.print(
            &json!({"ok": true, "wake": r.name(), "exec": exec, "instructions": text}),
            || text.clone(),
        );
        return Ok(());
    }
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
