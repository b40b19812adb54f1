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
use super::text::post_text;
use crate::protocol::card::CURSOR_RULE;
use crate::protocol::card::{AgentFlavor, instructions as agent_instructions, parse_invite_uri};
use crate::protocol::message::Message;
use crate::protocol::wire::{MessagesPage, PostBody, ProfileAnswer, WaitAnswer};
use crate::protocol::{Kind, MessageType, RoomStatus};
use crate::session::{
    self, Backoff, CALL_TIMEOUT, CliState, Credentials, JoinTarget, Session, handoff_text,
    is_transient, load_credentials, save_state, set_current,
};
use crate::store::export;

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Room id, or an `agentgather://join?...` invite URI, or `-` to read the invite URI
    /// from standard input (keeps the token out of the process list and shell history).
    pub room: String,
    /// Your alias in the room (with --token and --url; alone, this home's stored identity).
    #[arg(long)]
    pub alias: Option<String>,
    /// The token, or `-` to read it from standard input.
    #[arg(long)]
    pub token: Option<String>,
    /// The room's URL, as the invite gives it.
    #[arg(long)]
    pub url: Option<String>,
    /// Declare how you can be reached: live | wake | poll | manual (default manual).
    #[arg(long)]
    pub reach: Option<crate::protocol::reach::Reach>,
    /// With `--reach poll`: how often you look, in seconds (5-3600, default 60).
    #[arg(long = "poll-every", value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub poll_every: Option<u64>,
    /// Join even though this home hosts an open room (it then stops acting as its host).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct LeaveArgs {
    /// Leave even though this home hosts the room (it then stops acting as its host).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Who to address (mentioned as @alias); `all` is everyone (host or human only).
    pub alias: String,
    #[command(flatten)]
    pub post: PostArgs,
}

#[derive(Args, Debug)]
pub struct SayArgs {
    #[command(flatten)]
    pub post: PostArgs,
}

/// What `send` and `say` post: the text, from the arguments or a file, and its type.
#[derive(Args, Debug)]
pub struct PostArgs {
    /// The message text (`-` reads it from standard input).
    pub text: Vec<String>,
    /// Read the text from this file (`-`: standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// message | question | status | request_review | request_debug
    #[arg(long = "type", default_value = "message")]
    pub kind: MessageType,
}

#[derive(Args, Debug)]
pub struct ReplyArgs {
    /// The id of the message you answer.
    pub id: u64,
    /// The reply text (`-` reads it from standard input).
    pub text: Vec<String>,
    /// Read the text from this file (`-`: standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// Only messages with a greater id (`--after` is the same).
    #[arg(long, alias = "after", default_value_t = 0)]
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
    /// Keep waiting through heartbeats until someone else posts, or this long passes
    /// (e.g. 90s, 10m; default one 25 s turn).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Return only for something that concerns you (a mention, a reply to you, a
    /// comment on or answer to your topic, a handoff to you, an @all).
    #[arg(long)]
    pub concerning: bool,
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
    let stored = match (a.alias.as_deref(), &a.token, &a.url) {
        (Some(alias), None, None) if !a.room.starts_with("agentgather://") => {
            load_credentials(&ctx.home, &a.room, alias)?
        }
        _ => None,
    };
    // The host needs no server to act as the host again; anyone else joins with the
    // token and URL this home stored, as from their invite.
    if let Some(host) = stored.as_ref().filter(|c| c.is_host) {
        return rejoin_host(ctx, host, a.force);
    }
    let reach = super::reach::join_reach(a.reach, a.poll_every);
    let target = if let Some(c) = stored {
        JoinTarget {
            room: c.room,
            alias: c.alias,
            token: c.token,
            url: c.url,
            reach,
        }
    } else if a.room.starts_with("agentgather://") {
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
    super::hosting::guard(
        &ctx.home,
        Some((&target.room, &target.alias)),
        a.force,
        &format!("join room {} as {}", target.room, target.alias),
    )?;
    let (session, status) = session::join(&ctx.home, target)?;
    let c = &session.creds;
    // An agent that works in turns cannot run `attend` (it never returns); one that
    // stays can. Both are offered, the turn-friendly one first.
    let turns = "agentgather watch --timeout 10m --json";
    let stays = "agentgather attend --json";
    ctx.print(
        &json!({"ok": true, "room": c.room, "alias": c.alias, "url": c.url, "room_status": status.room_status, "next_cmd": turns, "next_cmd_if_you_stay": stays}),
        || format!(
            "Joined room {} as {} at {}.\nNext: agentgather room brief view, then\n  {}   # you work in turns: returns on the next message from someone else\n  {}                # you stay: follows the room until it closes\n{}",
            c.room, c.alias, c.url, turns.replace(" --json", ""), stays.replace(" --json", ""), CURSOR_RULE
        ),
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

/// `room join <room> --alias <host>` with no token: this home's stored host identity
/// becomes current again (after the home was used for someone else).
fn rejoin_host(ctx: &Ctx, c: &Credentials, force: bool) -> Result<(), CliError> {
    super::hosting::guard(
        &ctx.home,
        Some((&c.room, &c.alias)),
        force,
        &format!("act as {} in room {}", c.alias, c.room),
    )?;
    set_current(&ctx.home, c)?;
    ctx.print(
        &json!({"ok": true, "room": c.room, "alias": c.alias, "url": c.url, "is_host": true, "stored": true}),
        || format!("This home acts as {} (host) in room {} again.", c.alias, c.room),
    );
    Ok(())
}

pub fn leave(ctx: &Ctx, a: LeaveArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    super::hosting::guard(
        &ctx.home,
        None,
        a.force,
        &format!("leave room {}", s.creds.room),
    )?;
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

/// Posts as this participant: directly into the room's files when this home hosts it and
/// no server runs, else through the server, saying once on stderr that it retries (the
/// same post, never twice: it carries a `client_msg_id`).
fn post(ctx: &Ctx, s: &Session, body: PostBody) -> Result<Message, CliError> {
    let to = body.to.clone().unwrap_or_default();
    let posted = match super::offline::open(ctx, &s.creds, "agentgather CLI")? {
        Some(mut room) => room.post(&body),
        None => {
            let mut told = false;
            s.post(body, |e, _| {
                if !told {
                    eprintln!("agentgather: {e}; retrying for a few seconds");
                    told = true;
                }
            })
            .map_err(CliError::from)
        }
    };
    posted.map_err(|e| super::typo::explain_unknown(ctx, s, &to, e))
}

fn print_sent(ctx: &Ctx, m: &Message) {
    ctx.print(&json!({"ok": true, "message": m}), || {
        format!("Sent #{} to room {}.", m.id, m.room)
    });
}

pub fn send(ctx: &Ctx, a: SendArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let alias = a.alias.trim_start_matches('@');
    let text = post_text(&a.post.text, a.post.file.as_deref())?;
    if alias == "all" {
        return send_all(ctx, &s, &text, a.post.kind);
    }
    let body = PostBody {
        text: format!("@{alias} {text}"),
        kind: Some(a.post.kind),
        to: Some(alias.to_string()),
        ..Default::default()
    };
    print_sent(ctx, &post(ctx, &s, body)?);
    Ok(())
}

/// SPEC §10: `send all` is `say '@all …'` from the host or a human; an agent's `@all` is
/// plain text (§8.3), so from an agent it is refused with the command that fits.
fn send_all(ctx: &Ctx, s: &Session, text: &str, kind: MessageType) -> Result<(), CliError> {
    let kind_of_me = if s.creds.is_host {
        Kind::Human
    } else {
        s.client(CALL_TIMEOUT)
            .get::<ProfileAnswer>("/profile")?
            .kind
    };
    if kind_of_me == Kind::Agent {
        return Err(CliError::new(
            Exit::Error,
            "invalid_args",
            "an agent cannot address @all (it is plain text from an agent); to post to everyone without addressing anyone, use `agentgather say TEXT`",
        ));
    }
    let body = PostBody {
        text: format!("@all {text}"),
        kind: Some(kind),
        ..Default::default()
    };
    print_sent(ctx, &post(ctx, s, body)?);
    Ok(())
}

/// `say`: a post to the room that addresses no one (everyone reads everything).
pub fn say(ctx: &Ctx, a: SayArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let body = PostBody {
        text: post_text(&a.post.text, a.post.file.as_deref())?,
        kind: Some(a.post.kind),
        ..Default::default()
    };
    print_sent(ctx, &post(ctx, &s, body)?);
    Ok(())
}

pub fn reply(ctx: &Ctx, a: ReplyArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let body = PostBody {
        text: post_text(&a.text, a.file.as_deref())?,
        kind: Some(MessageType::Reply),
        reply_to: Some(a.id),
        ..Default::default()
    };
    print_sent(ctx, &post(ctx, &s, body)?);
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
    print_sent(ctx, &post(ctx, &s, body)?);
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

/// The extra fields of a `watch` answer (and of each `attend --json` line).
#[derive(Serialize)]
struct WaitFlags {
    mentioned: bool,
    concerns_you: bool,
    heartbeat: bool,
    room_status: RoomStatus,
    keep_waiting: bool,
}

/// A `/wait` answer as `watch` and `attend` print it: the same fields in both.
fn wait_batch(w: &WaitAnswer) -> Batch<'_> {
    Batch {
        ok: true,
        messages: &w.messages,
        next_since_id: w.next_since_id,
        next_cmd: w.keep_waiting.then(|| cli_next(w.next_since_id)),
        has_more: None,
        wait: Some(WaitFlags {
            mentioned: w.mentioned,
            concerns_you: w.concerns_you,
            heartbeat: w.heartbeat,
            room_status: w.room_status,
            keep_waiting: w.keep_waiting,
        }),
    }
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
    let page = match super::offline::open(ctx, &s.creds, "agentgather messages")? {
        Some(room) => room.messages(a.since, a.limit)?,
        None => s.client(CALL_TIMEOUT).messages(a.since, a.limit)?,
    };
    if a.quoted {
        println!(
            "{}\nNext: agentgather messages --since {} --quoted",
            crate::mcp::render::messages_text(&page.messages, &s.creds.alias),
            page.next_since_id
        );
        return Ok(());
    }
    let batch = page_batch(&page);
    ctx.print(&json!(batch), || {
        format!(
            "{}\nThis listing did not move your read cursor (#{}): `read`, `watch` and `attend` do.",
            format_messages(&page.messages),
            s.creds.cursor
        )
    });
    Ok(())
}

pub fn read(ctx: &Ctx, a: ReadArgs) -> Result<(), CliError> {
    let mut s = ctx.session()?;
    let offline = super::offline::open(ctx, &s.creds, "agentgather read")?;
    let client = s.client(CALL_TIMEOUT);
    let page_after = |since: u64, limit: Option<u64>| match &offline {
        Some(room) => room.messages(since, limit),
        None => Ok(client.messages(since, limit)?),
    };
    if let Some(id) = a.id {
        let page = page_after(id.saturating_sub(1), Some(1))?;
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
    let page = page_after(s.creds.cursor, None)?;
    drop(offline);
    s.advance_cursor(page.next_since_id)?;
    print_batch(ctx, &page_batch(&page));
    Ok(())
}

pub fn watch(ctx: &Ctx, a: WatchArgs) -> Result<(), CliError> {
    let mut s = ctx.session()?;
    let since = a.since.unwrap_or(s.creds.cursor);
    let w = match a.timeout {
        // Without --timeout: one /wait turn, as always (--concerning alone waits one
        // turn's length for something that concerns you).
        None if !a.concerning => s.wait(since, None)?,
        t => s.watch_for(
            since,
            t.unwrap_or(Duration::from_millis(crate::protocol::WAIT_HOLD_MS)),
            a.concerning,
        )?,
    };
    s.advance_cursor(w.next_since_id)?;
    print_batch(ctx, &wait_batch(&w));
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
                since = since.max(w.next_since_id);
                if !w.messages.is_empty() {
                    s.advance_cursor(since)?;
                    ctx.print(&json!(wait_batch(&w)), || format_messages(&w.messages));
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
    let markdown = a.format == "md";
    let text = if ctx.home.room_exists(&c.room) {
        let e = export::load_readonly(&ctx.home, &c.room)?;
        if markdown {
            e.to_markdown(|m| &m.msg)
        } else {
            serde_json::to_string_pretty(&e).map_err(|e| CliError::msg(e.to_string()))?
        }
    } else {
        let e = s.client(Duration::from_secs(120)).export()?;
        if markdown {
            e.to_markdown(|m| m)
        } else {
            serde_json::to_string_pretty(&e).map_err(|e| CliError::msg(e.to_string()))?
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
            format!("{}.", super::output::plural(problems as u64, "problem"))
        });
        out
    });
    if problems > 0 {
        // The report is already printed (as the one JSON object with --json).
        std::process::exit(Exit::Error as i32);
    }
    Ok(())
}
