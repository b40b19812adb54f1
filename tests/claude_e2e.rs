//! The Claude Code wake recipes end to end, with the real Claude Code CLI (npm
//! `@anthropic-ai/claude-code`) pointed at a scripted stand-in for the Anthropic Messages
//! API (`ANTHROPIC_BASE_URL`). A mention wakes `agentgather wake --exec '<the recipe's own
//! command>'`; Claude Code runs `claude -p`; the stand-in model asks it to read the room, to
//! run something the recipe does not allow, and to reply. The reply must land in the room
//! from the woken participant. Two recipes, one scenario: `--wake claude` does it with the
//! CLI through the Bash tool, `--wake claude-mcp` with the room's MCP tools
//! (`agentgather mcp`, started by Claude Code from the recipe's `--mcp-config`).
//!
//! The CLI comes from `.ci/run` (`AGENTGATHER_AGENT_CLIS`); without it the tests print a
//! SKIP notice, unless `AGENTGATHER_REQUIRE_AGENT_CLIS=1`, where a missing CLI fails.

mod claude_support;
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_support::*;
use common::*;
use serde_json::{Value, json};

/// How the woken Claude Code reaches the room: which recipe, and so which tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `--wake claude`: `agentgather` commands through the Bash tool.
    Cli,
    /// `--wake claude-mcp`: the tools of `agentgather mcp`.
    Mcp,
}

impl Variant {
    /// The `instructions --wake` value of the recipe.
    fn recipe(self) -> &'static str {
        match self {
            Variant::Cli => "claude",
            Variant::Mcp => "claude-mcp",
        }
    }

    /// What precedes the cursor in the recipe's prompt.
    fn since_marker(self) -> &'static str {
        match self {
            Variant::Cli => "--since ",
            Variant::Mcp => "since_id ",
        }
    }

    /// The tool call that reads the room after `since`: for the CLI, the command the
    /// recipe's prompt names (as the runner expanded it), run as the model would. Tool
    /// call ids carry `tag` (the wake's first id): a resumed conversation holds the
    /// earlier turns' calls, and Claude Code drops a call whose id it has seen.
    fn read(self, since: &str, convo: &str, tag: &str) -> (Value, String) {
        match self {
            Variant::Cli => {
                let named = convo
                    .find(READ_MARKER)
                    .map(|i| &convo[i + READ_MARKER.len()..])
                    .and_then(|rest| rest.split(". ").next())
                    .filter(|cmd| cmd.starts_with("agentgather messages --since "))
                    .unwrap_or("echo the prompt named no read command");
                let cmd = named.to_string();
                (bash(&format!("toolu_read_{tag}"), &cmd), cmd)
            }
            Variant::Mcp => {
                let since: u64 = since.parse().unwrap();
                let input = json!({"since_id": since});
                let label = format!("{MCP_READ} {input}");
                (
                    tool_use(&format!("toolu_read_{tag}"), MCP_READ, input),
                    label,
                )
            }
        }
    }

    /// The tool call that answers message `id` with `text`.
    fn reply(self, id: &str, text: &str) -> (Value, String) {
        match self {
            Variant::Cli => {
                let cmd = format!("agentgather reply {id} '{text}'");
                (bash(&format!("toolu_reply_{id}"), &cmd), cmd)
            }
            Variant::Mcp => {
                let id: u64 = id.parse().unwrap();
                let input = json!({"text": text, "reply_to": id});
                let label = format!("{MCP_SEND} {input}");
                (
                    tool_use(&format!("toolu_reply_{id}"), MCP_SEND, input),
                    label,
                )
            }
        }
    }
}

/// What the CLI recipe's prompt says before the command that reads the room.
const READ_MARKER: &str = "Read them with: ";

/// The MCP tools as Claude Code names them: `mcp__<server in --mcp-config>__<tool>`.
const MCP_READ: &str = "mcp__agentgather__room_read";
const MCP_SEND: &str = "mcp__agentgather__room_send";

/// What the stand-in model wants done, fixed by the test before the wake.
struct Script {
    /// Which tools the model calls to read and reply.
    variant: Variant,
    /// Text every room message that wakes the agent holds; the read must show it.
    mention_text: String,
    /// A command the recipe's `--allowedTools` must refuse.
    forbidden: String,
}

/// The reply the model posts for a wake by message `id`.
fn reply_text(id: &str) -> String {
    format!("build of #{id} confirmed green by claude code")
}

/// What the recipes' prompts begin with: where a woken turn's prompt starts.
const PROMPT_MARKER: &str = "You were woken";

/// The scripted model. Each woken turn goes: read the room → try the forbidden command →
/// reply to the mention → end the turn. Only the current prompt's messages count: a
/// resumed conversation carries the earlier turns before it.
fn script_turn(script: &Script, body: &Value) -> Turn {
    let (_, current) = split_at_prompt(body, PROMPT_MARKER);
    let convo = blocks_text(&current);
    // The ids come from the recipe's prompt, as the runner expanded them.
    let wake_ids = after(&convo, "because messages ", ",");
    let since = after(&convo, script.variant.since_marker(), "");
    let results = results_in(&current);
    let (Some(wake_ids), Some(since)) = (wake_ids, since) else {
        return Turn::end("The prompt named no ids.", "end: no ids in the prompt");
    };
    let first_id = wake_ids.split(',').next().unwrap().to_string();
    match results.len() {
        0 => {
            let (read, label) = script.variant.read(since, &convo, &first_id);
            Turn {
                blocks: vec![text("Reading the room."), read],
                stop: "tool_use",
                label,
            }
        }
        1 if !results[0].to_string().contains(&script.mention_text) => Turn::end(
            "The read did not show the room message.",
            "end: the read missed the mention",
        ),
        // Both recipes must give the model room text quoted as external advice.
        1 if !results[0].to_string().contains("external advice") => Turn::end(
            "The read gave room text unquoted.",
            "end: the read was not quoted as external advice",
        ),
        1 => Turn::tool(
            bash(&format!("toolu_forbidden_{first_id}"), &script.forbidden),
            script.forbidden.clone(),
        ),
        2 => {
            let (reply, label) = script.variant.reply(&first_id, &reply_text(&first_id));
            Turn::tool(reply, label)
        }
        _ => Turn::end("Replied in the room.", "end_turn"),
    }
}

// ---------------------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------------------

/// The `--exec` argument of the recipe's `agentgather wake --exec '…'` line, unquoted by
/// `sh` itself (the line is shell syntax).
fn recipe_exec(home: &TempHome, variant: Variant) -> String {
    let out = cli(home, &["instructions", "--wake", variant.recipe()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recipe = stdout(&out);
    let line = recipe
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("agentgather wake --exec "))
        .unwrap_or_else(|| panic!("no wake line in the {variant:?} recipe:\n{recipe}"));
    let quoted = &line["agentgather wake --exec ".len()..];
    let o = Command::new("sh")
        .args(["-c", &format!("printf '%s' {quoted}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "sh could not parse: {line}");
    let exec = String::from_utf8(o.stdout).unwrap();
    assert!(exec.contains("claude -p "), "{exec}");
    exec
}

struct Runner {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Runner {
    fn turns(&self) -> Vec<Value> {
        let l = self.lines.lock().unwrap();
        l.iter().filter(|v| v["event"] == "turn").cloned().collect()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mentions_wake_real_claude_code_which_reads_and_replies_with_the_cli_in_one_conversation() {
    for_each_claude(Variant::Cli);
}

#[test]
fn mentions_wake_real_claude_code_which_reads_and_replies_with_the_mcp_tools_in_one_conversation() {
    for_each_claude(Variant::Mcp);
}

/// Runs the scenario with every Claude Code under test (the pinned release and
/// `@latest`), each a failure of its own.
fn for_each_claude(variant: Variant) {
    let clis = claude_clis_or_skip(&format!("mentions_wake_claude_code ({variant:?})"));
    if std::env::var_os("AGENTGATHER_CLAUDE_LATEST").is_none() {
        eprintln!(
            "note: AGENTGATHER_CLAUDE_LATEST is not set; only the pinned Claude Code is tested"
        );
    }
    for (label, claude) in clis {
        println!("== {label}: {}", version(&claude));
        mentions_wake_claude_code(variant, &claude, label);
    }
}

/// The scenario both recipes share: join, run the recipe's wake line, mention the agent
/// twice, and check what Claude Code did, what landed in the room, and that the second
/// woken turn continued the first one's conversation.
fn mentions_wake_claude_code(variant: Variant, claude: &Path, label: &str) {
    let r = TestRoom::start("claude-e2e");
    let inv = r.invite("claude-agent", "agent");
    let agent = inv.join_home(&format!("claude-e2e-{label}"), &[]);
    let work = agent.root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let forbidden_file = work.join("denied-canary");

    let script = Script {
        variant,
        mention_text: "please confirm build".into(),
        forbidden: "sh -c 'echo owned > denied-canary'".into(),
    };
    let standin = StandIn::start(move |body| script_turn(&script, body));

    let exec = recipe_exec(&agent, variant);
    let mut cmd = command(&agent, &["wake", "--exec", &exec, "--json"]);
    let runner_log = agent.root.join("runner.log");
    cmd.current_dir(&work)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&runner_log).unwrap());
    claude_env(&mut cmd, claude, &agent.root, &standin);
    let mut child = cmd.spawn().unwrap();
    let lines = json_lines(child.stdout.take().unwrap());
    let runner = Runner { child, lines };
    until(
        "the wake runner's wait",
        Duration::from_secs(15),
        || {
            let e = r.roster_entry("claude-agent");
            e["reach"] == "wake" && e["reachable_now"] == true
        },
        || r.roster_entry("claude-agent").to_string(),
    );

    let mut mention_ids = Vec::new();
    for (n, build) in [4711, 4712].into_iter().enumerate() {
        let started = Instant::now();
        let mention = r.say(
            &r.token,
            &format!("@claude-agent please confirm build {build} is green"),
        );
        let mention_id = mention["id"].as_u64().unwrap();
        mention_ids.push(mention_id);
        until(
            "a finished wake turn",
            Duration::from_secs(90),
            || runner.turns().len() > n,
            || format!("the stand-in saw:\n{}", standin.dump()),
        );
        let turn = runner.turns()[n].clone();
        println!(
            "claude e2e ({variant:?}, {label}): mention -> reply turn {} done in {:.1} s; {turn}",
            n + 1,
            started.elapsed().as_secs_f64()
        );
        assert_eq!(turn["exit_code"], 0, "{turn}\n{}", standin.dump());
        assert_eq!(turn["ids"], json!([mention_id]), "{turn}");
        assert_eq!(turn["turn"], n as u64 + 1, "{turn}");

        // The reply is in the room, from the woken participant, answering the mention.
        let want = reply_text(&mention_id.to_string());
        let reply = r
            .all_messages()
            .into_iter()
            .find(|m| m["from"] == "claude-agent" && m["text"] == want.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no reply {want:?} from claude-agent: {:?}\n{}",
                    r.all_messages(),
                    standin.dump()
                )
            });
        assert_eq!(reply["reply_to"], mention_id, "{reply}");
    }
    println!("the stand-in saw:\n{}", standin.summary());
    let turns = runner.turns();
    assert_eq!(turns[0]["session"], turns[1]["session"], "{turns:?}");

    if variant == Variant::Mcp {
        // Claude Code started the recipe's `agentgather mcp` and offered its tools.
        let offered = standin.tools_offered();
        for t in [MCP_READ, MCP_SEND] {
            assert!(
                offered.iter().any(|o| o == t),
                "{t} not offered: {offered:?}"
            );
        }
    }
    // Each turn read the room, was refused the forbidden command, and replied: six tool
    // results in the one conversation the second turn carried.
    let results = standin.tool_results();
    assert_eq!(results.len(), 6, "{}", standin.dump());
    let reads: Vec<&Value> = results
        .iter()
        .filter(|t| {
            t["tool_use_id"]
                .as_str()
                .is_some_and(|i| i.starts_with("toolu_read"))
        })
        .collect();
    assert_eq!(reads.len(), 2, "{}", standin.dump());
    for (read, build) in reads.iter().zip(["4711", "4712"]) {
        assert_ne!(read["is_error"], true, "{read}");
        assert!(read.to_string().contains(build), "{read}");
    }
    for denied in results.iter().filter(|t| {
        t["tool_use_id"]
            .as_str()
            .is_some_and(|i| i.starts_with("toolu_forbidden"))
    }) {
        assert_eq!(denied["is_error"], true, "{denied}");
    }
    assert!(
        !forbidden_file.exists(),
        "Claude Code ran a command the recipe does not allow"
    );
    for replied in results.iter().filter(|t| {
        t["tool_use_id"]
            .as_str()
            .is_some_and(|i| i.starts_with("toolu_reply"))
    }) {
        assert_ne!(replied["is_error"], true, "{replied}");
    }

    // The conversation continued: the second turn's requests carry the first turn's
    // prompt and its read of build 4711 before the new prompt.
    let second = standin
        .model_requests()
        .into_iter()
        .find(|b| {
            let (_, current) = split_at_prompt(b, PROMPT_MARKER);
            blocks_text(&current).contains(&format!("because messages {}", mention_ids[1]))
        })
        .unwrap_or_else(|| panic!("no request of the second turn\n{}", standin.dump()));
    let (history, _) = split_at_prompt(&second, PROMPT_MARKER);
    let history = blocks_text(&history);
    assert!(
        history.contains(&format!("because messages {}", mention_ids[0]))
            && history.contains("please confirm build 4711"),
        "the second turn started blank: {history}"
    );

    if variant == Variant::Cli {
        // A session the harness lost (its files deleted) is started afresh, and said so.
        std::fs::remove_dir_all(agent.root.join(".claude/projects")).unwrap();
        let lost = r.say(&r.token, "@claude-agent please confirm build 4713 is green")["id"]
            .as_u64()
            .unwrap();
        until(
            "a turn after the session was lost",
            Duration::from_secs(90),
            || runner.turns().len() > 2,
            || format!("the stand-in saw:\n{}", standin.dump()),
        );
        let turn = runner.turns()[2].clone();
        assert_eq!(turn["exit_code"], 0, "{turn}\n{}", standin.dump());
        assert_eq!(turn["turn"], 3, "{turn}");
        let log = std::fs::read_to_string(&runner_log).unwrap();
        assert!(log.contains("started it afresh"), "{log}");
        let want = reply_text(&lost.to_string());
        assert!(
            r.all_messages().iter().any(|m| m["text"] == want.as_str()),
            "no reply to #{lost}"
        );
    }

    // The turns left the participant as it declared itself: woken on demand.
    let e = r.roster_entry("claude-agent");
    assert_eq!(e["reach"], "wake", "{e}");
    assert!(e["last_woken_at"].is_string(), "{e}");
    assert_eq!(e["wake_failing"], 0, "{e}");
}
