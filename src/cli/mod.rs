//! The `agentgather` command line: clap definitions, the shared context, and the one
//! place errors become a one-line reason and an exit code. Commands talk to a running
//! room server through [`crate::session`] (the participant side it shares with `mcp`); only when no server holds the room does the
//! host CLI open the room files itself, through the same [`crate::store::Room`] engine.

mod approvals;
mod claims;
mod doctor;
mod host;
mod hosting;
mod manual;
mod offline;
mod output;
mod participant;
mod reach;
mod setup;
mod text;
mod topic;
mod tunnel;
mod typo;
mod wake;

use clap::{Args, Parser, Subcommand};

pub use output::{CliError, Exit};

const AFTER_HELP: &str = "\
Examples:
  agentgather up                         # a room with your browser link and an invite command
  agentgather room invite reviewer       # card, browser link and CLI join line for a participant
  agentgather attend --json              # an agent follows the room until it closes

Read cursor: `read`, `watch` and `attend` move your read cursor; `messages` never does.

Exit codes: 0 ok, 1 error, 2 usage, 3 server unreachable, 4 not authorized, 5 removed from the room, 6 room closed, 7 `ask --wait` timed out.
At close, one rule: a write to a closed room (send, say, reply, handoff, topic, ask) exits 6; a reader (watch, attend, wake) ends normally, exit 0, with room_status \"closed\".";

#[derive(Parser, Debug)]
#[command(name = "agentgather", version, about = "A temporary room where AI agent sessions and humans gather to finish one goal.", after_help = AFTER_HELP)]
pub struct Cli {
    /// Print one JSON object instead of text.
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
    /// Post `@alias text` (mentions the alias); `send all` is `@all` (host or human).
    #[command(
        after_help = "Examples:\n  agentgather send reviewer 'please check PR 12'\n  agentgather send reviewer --file review.md\n  agentgather send all 'wrapping up in 5 minutes'   # host or human: @all"
    )]
    Send(participant::SendArgs),
    /// Post to the room without addressing anyone (everyone reads everything).
    #[command(
        after_help = "Examples:\n  agentgather say 'tests pass on main'\n  agentgather say --file notes.md\n  git log -3 --oneline | agentgather say -"
    )]
    Say(participant::SayArgs),
    /// Reply to a message by id (its author sees `concerns_you` in their wait).
    #[command(
        after_help = "Examples:\n  agentgather reply 12 'done, tests pass'\n  agentgather reply 12 --file review.md"
    )]
    Reply(participant::ReplyArgs),
    /// List messages after an id (default: all); never moves your read cursor.
    #[command(after_help = "Example:\n  agentgather messages --since 40 --json")]
    Messages(participant::MessagesArgs),
    /// Read one message, or the unread ones since your cursor (and move the cursor).
    #[command(
        after_help = "Examples:\n  agentgather read        # unread since the cursor\n  agentgather read 12     # one message"
    )]
    Read(participant::ReadArgs),
    /// Wait for what others post: one /wait turn (a heartbeat after 25 s), or with
    /// --timeout until someone else posts; moves your read cursor.
    #[command(
        after_help = "Examples:\n  agentgather watch --json                          # one turn, up to 25 s\n  agentgather watch --timeout 10m --json            # until someone else posts\n  agentgather watch --timeout 10m --concerning      # until something concerns you"
    )]
    Watch(participant::WatchArgs),
    /// Follow the room until it closes, printing each batch (with --json one line each,
    /// the fields of `watch --json`); moves your read cursor.
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
    /// A topic's id is the id of the message that opened it.
    #[command(
        subcommand,
        after_help = "Topic ids are message ids: the topic is the message that opened it.\nExamples:\n  agentgather topic new 'Which DB?' --text 'pg or sqlite' --option pg --option sqlite --to operator\n  agentgather topic comment 12 --file notes.md"
    )]
    Topic(topic::TopicCommand),
    /// Ask someone a question; with --wait, print their answer (exit 7 on timeout).
    #[command(
        after_help = "Examples:\n  agentgather ask operator 'Ship on Friday?' --option yes --option no\n  agentgather ask operator 'Which DB?' --text 'pg or sqlite' --wait --timeout 10m --json"
    )]
    Ask(topic::AskArgs),
    /// Search the room's messages and topic titles (every word, case-insensitive).
    #[command(after_help = "Example:\n  agentgather search deploy failure --from reviewer --json")]
    Search(topic::SearchArgs),
    /// Claim paths you are about to edit, so others see it before they collide (SPEC §13).
    #[command(
        after_help = "Examples:\n  agentgather claim 'src/web/**' --ttl 2h --note 'reworking the rail'\n  agentgather claim docs/claims.md --shared"
    )]
    Claim(claims::ClaimArgs),
    /// The live claims, or those overlapping a path or glob.
    #[command(after_help = "Example:\n  agentgather claims src/main.rs --json")]
    Claims(claims::ClaimsArgs),
    /// Release a claim by id, or all of yours.
    #[command(after_help = "Examples:\n  agentgather release 12\n  agentgather release --all")]
    Release(claims::ReleaseArgs),
    /// A git pre-commit check: warns about staged paths under another participant's claim.
    #[command(
        after_help = "Examples:\n  agentgather guard --install            # writes .git/hooks/pre-commit (keeps an existing hook)\n  agentgather guard --strict             # exit 1 instead of warning"
    )]
    Guard(claims::GuardArgs),
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
    /// The room's state and roster (same as `room status`).
    #[command(after_help = "Example:\n  agentgather status --json")]
    Status(host::StatusArgs),
    /// View or set the Room Brief (same as `room brief`).
    #[command(subcommand, after_help = "Example:\n  agentgather brief view")]
    Brief(BriefCommand),
    /// Add a participant (same as `room invite`).
    #[command(after_help = "Example:\n  agentgather invite reviewer --kind agent")]
    Invite(host::InviteArgs),
    /// Close the room (same as `room close`).
    #[command(after_help = "Example:\n  agentgather close")]
    Close,
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(
        after_help = "Examples:\n  source <(agentgather completions bash)\n  agentgather completions zsh > ~/.zfunc/_agentgather\n  agentgather completions fish > ~/.config/fish/completions/agentgather.fish"
    )]
    Completions(manual::CompletionsArgs),
    /// Print the man page (or write one page per command with --dir).
    #[command(
        after_help = "Examples:\n  agentgather man | man -l -\n  agentgather man --dir ~/.local/share/man/man1"
    )]
    Man(manual::ManArgs),
    /// Serve this home's participant as MCP tools over stdio (Claude Code, Codex, ...).
    #[command(
        after_help = "Examples:\n  claude mcp add agentgather -- agentgather mcp\n  AGENTGATHER_HOME=~/.agentgather-reviewer agentgather mcp   # speaks MCP on stdin/stdout\n\nTools: room_status, room_brief, room_read, room_send, room_wait, room_handoff, room_ask, room_search, topic_list, topic_show, topic_open, topic_comment, topic_answer, room_claim, room_release, room_claims, room_approve (for --permission-prompt-tool)."
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
    #[command(
        after_help = "Examples:\n  agentgather room status --json\n  agentgather room status --compact   # one line per current participant"
    )]
    Status(host::StatusArgs),
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
    Leave(participant::LeaveArgs),
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
    /// manual-ok | agents-foreground | all-foreground | host-directed.
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
        Err(e) => output::report_error(&output::explain_unreachable(e), json),
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
            RoomCommand::Status(a) => host::status(&ctx, a),
            RoomCommand::Remove(a) => host::remove(&ctx, a),
            RoomCommand::Close => host::close(&ctx),
            RoomCommand::Dashboard => host::dashboard(&ctx),
            RoomCommand::Join(a) => participant::join(&ctx, a),
            RoomCommand::Current => participant::current(&ctx),
            RoomCommand::Leave(a) => participant::leave(&ctx, a),
        },
        Command::Send(a) => participant::send(&ctx, a),
        Command::Say(a) => participant::say(&ctx, a),
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
        Command::Claim(a) => claims::claim(&ctx, a),
        Command::Claims(a) => claims::claims(&ctx, a),
        Command::Release(a) => claims::release(&ctx, a),
        Command::Guard(a) => claims::guard(&ctx, a),
        Command::Instructions(a) => participant::instructions(&ctx, a),
        Command::Wake(a) => wake::wake(&ctx, a),
        Command::Broker(c) => tunnel::broker(&ctx, c),
        Command::Tunnel(c) => tunnel::tunnel(&ctx, c),
        Command::Setup(a) => setup::setup(&ctx, a),
        Command::Status(a) => host::status(&ctx, a),
        Command::Brief(BriefCommand::View) => host::brief_view(&ctx),
        Command::Brief(BriefCommand::Set(b)) => host::brief_set(&ctx, b),
        Command::Invite(a) => host::invite(&ctx, a),
        Command::Close => host::close(&ctx),
        Command::Completions(a) => manual::completions(a),
        Command::Man(a) => manual::man(a),
        Command::Mcp => crate::mcp::run(ctx.home.clone())
            .map_err(|e| CliError::new(Exit::Error, "mcp_error", e.to_string())),
        Command::ApproveHook(a) => approvals::hook(&ctx, a),
        Command::Approvals => approvals::list(&ctx),
        Command::Approve(a) => approvals::answer(&ctx, a, true),
        Command::Deny(a) => approvals::answer(&ctx, a, false),
    }
}
