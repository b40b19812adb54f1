//! The `agentgather` command line: clap definitions, the shared context, and the one
//! place errors become a one-line reason and an exit code. Commands talk to a running
//! room server through [`crate::session`] (the participant side it shares with `mcp`); only when no server holds the room does the
//! host CLI open the room files itself, through the same [`crate::store::Room`] engine.

mod approvals;
mod doctor;
mod host;
mod output;
mod participant;
mod reach;
mod setup;
mod topic;
mod tunnel;
mod wake;

use clap::{Args, Parser, Subcommand};

pub use output::{CliError, Exit};

const AFTER_HELP: &str = "\
Examples:
  agentgather up                         # a room with your browser link and an invite command
  agentgather room invite reviewer       # card, browser link and CLI join line for a participant
  agentgather attend --json              # an agent follows the room until it closes

Exit codes: 0 ok, 1 error, 2 usage, 3 server unreachable, 4 not authorized, 5 removed from the room, 6 room closed, 7 `ask --wait` timed out.";

#[derive(Parser, Debug)]
#[command(name = "agentgather", version, about = "A temporary room where AI agent sessions and humans gather to finish one goal.", after_help = AFTER_HELP)]
pub struct Cli {
    /// Print one JSON object (for agents and scripts) instead of text.
    /// Repeating it is harmless (agents often append it to a command that has it).
    #[arg(long, global = true, overrides_with = "json")]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the room if needed, serve it, and print your browser link and a ready invite.
    #[command(
        after_help = "Examples:\n  agentgather up release-review --port 8787\n  agentgather up --invite reviewer"
    )]
    Up(host::UpArgs),
    /// Host and join rooms.
    #[command(
        subcommand,
        after_help = "Examples:\n  agentgather room start review --brief 'Goal: ship 1.2'\n  agentgather room invite reviewer --json\n  agentgather room join 'agentgather://join?...'"
    )]
    Room(RoomCommand),
    /// Post `@alias text` (mentions the alias).
    #[command(after_help = "Example:\n  agentgather send reviewer 'please check PR 12'")]
    Send(participant::SendArgs),
    /// Reply to a message by id.
    #[command(after_help = "Example:\n  agentgather reply 12 'done, tests pass'")]
    Reply(participant::ReplyArgs),
    /// List messages after an id (default: all).
    #[command(after_help = "Example:\n  agentgather messages --since 40 --json")]
    Messages(participant::MessagesArgs),
    /// Read one message, or the unread ones since your cursor (and move the cursor).
    #[command(
        after_help = "Examples:\n  agentgather read        # unread since the cursor\n  agentgather read 12     # one message"
    )]
    Read(participant::ReadArgs),
    /// One /wait turn: returns new messages, or a heartbeat after up to 25 s.
    #[command(after_help = "Example:\n  agentgather watch --json")]
    Watch(participant::WatchArgs),
    /// Follow the room until it closes, printing each batch (one JSON line each with --json).
    #[command(after_help = "Example:\n  agentgather attend --json")]
    Attend(participant::AttendArgs),
    /// Hand work over to someone with an embedded summary (file or text).
    #[command(after_help = "Example:\n  agentgather handoff reviewer --summary notes.md")]
    Handoff(participant::HandoffArgs),
    /// Export the room as Markdown (default) or JSON; never changes the log.
    #[command(after_help = "Example:\n  agentgather export --output room.md")]
    Export(participant::ExportArgs),
    /// Check this home, its room and server; each problem with the command that fixes it.
    #[command(after_help = "Example:\n  agentgather doctor --json")]
    Doctor,
    /// Topics: status-tracked threads and questions (new, list, show, comment, status, answer).
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Ask someone a question; with --wait, print their answer (exit 7 on timeout).
    #[command(
        after_help = "Examples:\n  agentgather ask operator 'Ship on Friday?' --option yes --option no\n  agentgather ask operator 'Which DB?' --text 'pg or sqlite' --wait --timeout 10m --json"
    )]
    Ask(topic::AskArgs),
    /// Search the room's messages and topic titles (every word, case-insensitive).
    #[command(after_help = "Example:\n  agentgather search deploy failure --from reviewer --json")]
    Search(topic::SearchArgs),
    /// The operating card for agents (works with no room).
    #[command(
        after_help = "Examples:\n  agentgather instructions --agent claude\n  agentgather instructions --wake claude   # a ready `agentgather wake --exec` line"
    )]
    Instructions(participant::InstructionsArgs),
    /// Keep this participant wakeable: run a command (one agent turn) whenever something concerns it.
    #[command(after_help = wake::WAKE_HELP)]
    Wake(wake::WakeArgs),
    /// Relay public room links: run on a public machine behind a TLS proxy.
    #[command(subcommand)]
    Broker(tunnel::BrokerCommand),
    /// Give the current room a public link through a broker (no inbound port needed).
    #[command(subcommand)]
    Tunnel(tunnel::TunnelCommand),
    /// Register `agentgather mcp` with an agent CLI (Claude Code, Codex, Gemini CLI).
    #[command(after_help = setup::SETUP_HELP)]
    Setup(setup::SetupArgs),
    /// Serve this home's participant as MCP tools over stdio (Claude Code, Codex, ...).
    #[command(
        after_help = "Examples:\n  claude mcp add agentgather -- agentgather mcp\n  AGENTGATHER_HOME=~/.agentgather-reviewer agentgather mcp   # speaks MCP on stdin/stdout\n\nTools: room_status, room_brief, room_read, room_send, room_wait, room_handoff, room_ask, room_search, topic_list, topic_show, topic_open, topic_comment, topic_answer, room_approve (for --permission-prompt-tool)."
    )]
    Mcp,
    /// Claude Code PreToolUse hook: put the tool call on stdin to a person in the room, print allow or deny.
    #[command(
        name = "approve-hook",
        after_help = "Set-up: agentgather instructions --approvals claude\nNo answer in time, an unreachable room or a closed room prints a deny."
    )]
    ApproveHook(approvals::HookArgs),
    /// The pending approvals (tool calls waiting for a person).
    #[command(after_help = "Example:\n  agentgather approvals --json")]
    Approvals,
    /// Allow a pending approval (as the host or its approver).
    #[command(after_help = "Example:\n  agentgather approve 12")]
    Approve(approvals::AnswerArgs),
    /// Deny a pending approval, with an optional reason the agent reads.
    #[command(after_help = "Example:\n  agentgather deny 12 --reason 'not on main'")]
    Deny(approvals::AnswerArgs),
}

#[derive(Subcommand, Debug)]
pub enum RoomCommand {
    /// Create a room and become its host (prints the host token).
    #[command(
        after_help = "Example:\n  agentgather room start release-review --brief 'Goal: ship 1.2' --ttl 2h"
    )]
    Start(host::StartArgs),
    /// Serve the current room over HTTP (loopback by default).
    #[command(after_help = "Example:\n  agentgather room serve --port 8787")]
    Serve(host::ServeArgs),
    /// View or set the Room Brief.
    #[command(
        subcommand,
        after_help = "Examples:\n  agentgather room brief view\n  agentgather room brief set --file brief.md"
    )]
    Brief(BriefCommand),
    /// View or set the attendance policy.
    #[command(
        subcommand,
        after_help = "Examples:\n  agentgather room attendance view\n  agentgather room attendance set --policy agents-foreground"
    )]
    Attendance(AttendanceCommand),
    /// Add a participant: prints its token, card command, browser URL and invite URI.
    #[command(after_help = "Example:\n  agentgather room invite reviewer --kind agent --json")]
    Invite(host::InviteArgs),
    /// Print a participant's Attend Card again (it holds their token).
    #[command(
        name = "invite-card",
        after_help = "Example:\n  agentgather room invite-card reviewer"
    )]
    InviteCard(host::AliasArg),
    /// The room's state and roster.
    #[command(after_help = "Example:\n  agentgather room status --json")]
    Status,
    /// Remove a participant; their token stops working.
    #[command(after_help = "Example:\n  agentgather room remove reviewer")]
    Remove(host::AliasArg),
    /// Close the room: everyone's wait ends, nothing more can be posted.
    #[command(after_help = "Example:\n  agentgather room close")]
    Close,
    /// Open the browser room (prints the link if no browser can be opened).
    #[command(after_help = "Example:\n  agentgather room dashboard")]
    Dashboard,
    /// Join a room as a participant, from an invite URI or --alias/--token/--url.
    #[command(
        after_help = "Examples:\n  agentgather room join 'agentgather://join?room=r&alias=a&url=...&token=...'\n  pbpaste | agentgather room join -      # the invite URI from standard input\n  agentgather room join r --alias a --token - --url http://127.0.0.1:8787 < token.txt"
    )]
    Join(participant::JoinArgs),
    /// Which room, alias and server this home uses.
    #[command(after_help = "Example:\n  agentgather room current --json")]
    Current,
    /// Leave the current room (you can join again with the same invite).
    #[command(after_help = "Example:\n  agentgather room leave")]
    Leave,
}

#[derive(Subcommand, Debug)]
pub enum BriefCommand {
    /// Print the brief.
    #[command(after_help = "Example:\n  agentgather room brief view")]
    View,
    /// Replace the brief (host); bumps its version and tells the room.
    #[command(after_help = "Example:\n  agentgather room brief set --file brief.md")]
    Set(BodyArgs),
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct BodyArgs {
    /// The new brief text.
    #[arg(long)]
    pub body: Option<String>,
    /// A file holding the new brief.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AttendanceCommand {
    /// Print the policy.
    #[command(after_help = "Example:\n  agentgather room attendance view")]
    View,
    /// Set the policy (host): manual-ok | agents-foreground | all-foreground | host-directed.
    #[command(
        after_help = "Example:\n  agentgather room attendance set --policy agents-foreground"
    )]
    Set(PolicyArgs),
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[arg(long)]
    pub policy: crate::protocol::AttendancePolicy,
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    match run(cli) {
        Ok(()) => 0,
        Err(e) => output::report_error(&e, json),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = output::Ctx::new(cli.json)?;
    match cli.command {
        Command::Up(a) => host::up(&ctx, a),
        Command::Room(r) => match r {
            RoomCommand::Start(a) => host::start(&ctx, a),
            RoomCommand::Serve(a) => host::serve(&ctx, a),
            RoomCommand::Brief(BriefCommand::View) => host::brief_view(&ctx),
            RoomCommand::Brief(BriefCommand::Set(b)) => host::brief_set(&ctx, b),
            RoomCommand::Attendance(AttendanceCommand::View) => host::attendance_view(&ctx),
            RoomCommand::Attendance(AttendanceCommand::Set(p)) => {
                host::attendance_set(&ctx, p.policy)
            }
            RoomCommand::Invite(a) => host::invite(&ctx, a),
            RoomCommand::InviteCard(a) => host::invite_card(&ctx, a),
            RoomCommand::Status => host::status(&ctx),
            RoomCommand::Remove(a) => host::remove(&ctx, a),
            RoomCommand::Close => host::close(&ctx),
            RoomCommand::Dashboard => host::dashboard(&ctx),
            RoomCommand::Join(a) => participant::join(&ctx, a),
            RoomCommand::Current => participant::current(&ctx),
            RoomCommand::Leave => participant::leave(&ctx),
        },
        Command::Send(a) => participant::send(&ctx, a),
        Command::Reply(a) => participant::reply(&ctx, a),
        Command::Messages(a) => participant::messages(&ctx, a),
        Command::Read(a) => participant::read(&ctx, a),
        Command::Watch(a) => participant::watch(&ctx, a),
        Command::Attend(a) => participant::attend(&ctx, a),
        Command::Handoff(a) => participant::handoff(&ctx, a),
        Command::Export(a) => participant::export(&ctx, a),
        Command::Doctor => participant::doctor(&ctx),
        Command::Topic(t) => topic::run(&ctx, t),
        Command::Ask(a) => topic::ask(&ctx, a),
        Command::Search(a) => topic::search(&ctx, a),
        Command::Instructions(a) => participant::instructions(&ctx, a),
        Command::Wake(a) => wake::wake(&ctx, a),
        Command::Broker(c) => tunnel::broker(&ctx, c),
        Command::Tunnel(c) => tunnel::tunnel(&ctx, c),
        Command::Setup(a) => setup::setup(&ctx, a),
        Command::Mcp => crate::mcp::run(ctx.home.clone())
            .map_err(|e| CliError::new(Exit::Error, "mcp_error", e.to_string())),
        Command::ApproveHook(a) => approvals::hook(&ctx, a),
        Command::Approvals => approvals::list(&ctx),
        Command::Approve(a) => approvals::answer(&ctx, a, true),
        Command::Deny(a) => approvals::answer(&ctx, a, false),
    }
}
