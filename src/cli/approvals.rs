//! Approvals (SPEC §12) at the command line: the Claude Code hook that puts a tool call
//! to the room, the host's list of pending approvals and their answers, and the set-up
//! text of `instructions --approvals`.

use std::io::Read;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::{CliError, Ctx, printable};
use crate::protocol::approval::{
    ALLOW, DENY, Decision, NewApprovalBody, PreToolUseInput, TIMEOUT_DEFAULT_S, TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
};
use crate::protocol::topic::{AnswerBody, TopicFilter, TopicKind, TopicStatus, TopicView};
use crate::protocol::url::shell_quote;
use crate::session::CALL_TIMEOUT;

/// The tools routed to the room by the printed hook set-up: the ones that change things.
pub const HOOK_MATCHER: &str = "Bash|Write|Edit|MultiEdit|NotebookEdit";
/// How much longer than the approval Claude Code lets the hook run, so the hook always
/// answers (a hook Claude Code kills decides nothing, and the call falls through).
const HOOK_SLACK_S: u64 = 30;
/// The most of a hook payload read from standard input.
const HOOK_INPUT_MAX: u64 = 1024 * 1024;

#[derive(Args, Debug)]
pub struct HookArgs {
    /// Seconds the person has to answer (10-3600); no answer is a deny.
    #[arg(long, default_value_t = TIMEOUT_DEFAULT_S,
          value_parser = clap::value_parser!(u64).range(TIMEOUT_MIN_S..=TIMEOUT_MAX_S))]
    pub timeout: u64,
    /// Who decides: a human participant's alias (default: the host).
    #[arg(long)]
    pub approver: Option<String>,
}

#[derive(Args, Debug)]
pub struct AnswerArgs {
    /// The approval's id (its topic id).
    pub id: u64,
    /// Why (shown to the agent; with deny it is the reason the model reads).
    #[arg(long)]
    pub reason: Option<String>,
}

/// The harnesses `instructions --approvals` has a set-up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApprovalHarness {
    Claude,
}

/// `approve-hook`: reads Claude Code's `PreToolUse` JSON on stdin, puts the call to the
/// room, and prints the decision. Always exits 0 with a decision: a hook that fails
/// decides nothing, and Claude Code would then fall back to its own rules.
pub fn hook(ctx: &Ctx, a: HookArgs) -> Result<(), CliError> {
    let mut raw = String::new();
    let read = std::io::stdin()
        .take(HOOK_INPUT_MAX)
        .read_to_string(&mut raw);
    let decision = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<PreToolUseInput>(&raw).map_err(|e| e.to_string()))
    {
        Ok(input) => {
            let body = NewApprovalBody {
                tool: input.tool_name,
                input: input.tool_input,
                reason: input.cwd.map(|d| format!("in {d}")),
                approver: a.approver,
                timeout_s: Some(a.timeout),
                client_msg_id: NewApprovalBody::key_for_call(input.tool_use_id.as_deref()),
            };
            crate::session::approvals::decide(&ctx.home, body)
        }
        Err(e) => Decision::Deny(format!(
            "agentgather approve-hook could not read the PreToolUse input: {e}"
        )),
    };
    let out = serde_json::to_string(&decision.hook_output())
        .map_err(|e| CliError::msg(format!("cannot encode the decision: {e}")))?;
    println!("{out}");
    Ok(())
}

fn pending_line(t: &TopicView) -> String {
    let mut line = format!(
        "#{} {} from {}",
        t.id,
        printable(&t.title),
        printable(&t.from)
    );
    if let Some(to) = &t.to {
        line.push_str(&format!(", for {}", printable(to)));
    }
    if let Some(a) = &t.approval {
        line.push_str(&format!(", expires {}", a.expires_at));
        let input: String = a.input.to_string().chars().take(300).collect();
        line.push_str(&format!("\n    input: {}", printable(&input)));
        if let Some(r) = &a.reason {
            line.push_str(&format!("\n    reason: {}", printable(r)));
        }
    }
    line
}

/// `approvals`: the open approvals, latest first.
pub fn list(ctx: &Ctx) -> Result<(), CliError> {
    let s = ctx.session()?;
    let filter = TopicFilter {
        status: Some(TopicStatus::Open),
        kind: Some(TopicKind::Approval),
        tag: None,
    };
    let list = s.client(CALL_TIMEOUT).topics(&filter)?;
    ctx.print(&json!({"ok": true, "approvals": list.topics}), || {
        if list.topics.is_empty() {
            return "No pending approvals.".to_string();
        }
        let lines: Vec<String> = list.topics.iter().map(pending_line).collect();
        format!(
            "{}\n\nAnswer with: agentgather approve ID  or  agentgather deny ID --reason '...'",
            lines.join("\n")
        )
    });
    Ok(())
}

/// `approve ID` / `deny ID`: answers an approval as this home's participant.
pub fn answer(ctx: &Ctx, a: AnswerArgs, allow: bool) -> Result<(), CliError> {
    let s = ctx.session()?;
    let option = if allow { ALLOW } else { DENY };
    let body = AnswerBody {
        option: Some(option.to_string()),
        text: a.reason,
    };
    let posted = s.client(CALL_TIMEOUT).answer_topic(a.id, &body)?;
    ctx.print(&json!({"ok": true, "message": posted.message}), || {
        format!("Answered approval #{}: {option}.", a.id)
    });
    Ok(())
}

/// `instructions --approvals claude`: both ways to route Claude Code's permission
/// prompts to the room, with this binary and home filled in.
pub fn setup_text(ctx: &Ctx, _harness: ApprovalHarness) -> (String, serde_json::Value) {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "agentgather".to_string());
    let home = std::env::var_os("AGENTGATHER_HOME")
        .filter(|h| !h.is_empty())
        .map(|_| {
            format!(
                "AGENTGATHER_HOME={}",
                shell_quote(&ctx.home.root.to_string_lossy())
            )
        });
    let exe = shell_quote(&exe);
    let command = match &home {
        Some(h) => format!("{h} {exe} approve-hook"),
        None => format!("{exe} approve-hook"),
    };
    let register = match &home {
        Some(_) => format!(
            "agentgather setup claude --home {}",
            shell_quote(&ctx.home.root.to_string_lossy())
        ),
        None => "agentgather setup claude".to_string(),
    };
    let settings = json!({
        "hooks": {
            "PreToolUse": [{
                "matcher": HOOK_MATCHER,
                "hooks": [{
                    "type": "command",
                    "command": command,
                    "timeout": TIMEOUT_DEFAULT_S + HOOK_SLACK_S,
                }],
            }],
        },
    });
    let pretty = serde_json::to_string_pretty(&settings).unwrap_or_default();
    let flag = "claude -p --permission-prompt-tool mcp__agentgather__room_approve 'your task'";
    let text = format!(
        "Approvals from the room for Claude Code: a person allows or denies a tool call from the browser room (or `agentgather approve ID` / `deny ID`). Use one of the two set-ups.

1. A PreToolUse hook (interactive sessions and print mode alike). Merge this into .claude/settings.json (this project) or ~/.claude/settings.json (every project):

{pretty}

Only the tools the matcher names ({HOOK_MATCHER}) go to the room; widen or narrow it as you like, but routing every tool (reads included) makes a person answer for each file read. The hook waits up to {TIMEOUT_DEFAULT_S} s (`approve-hook --timeout S`, 10-3600; keep the settings' timeout {HOOK_SLACK_S} s longer). No answer in time, an unreachable room or a closed room is a deny; only a person's Allow lets the call run.

2. Print mode through the MCP server (register it first: `{register}`):

  {flag}

Claude Code then asks the tool room_approve whenever a call needs permission, and the person's answer decides it the same way.
"
    );
    let value = json!({
        "ok": true,
        "hook_settings": settings,
        "permission_prompt_tool": "mcp__agentgather__room_approve",
        "print_mode_command": flag,
        "instructions": text,
    });
    (text, value)
}
