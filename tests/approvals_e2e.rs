//! Approvals (SPEC §12) end to end with the real Claude Code CLI pointed at the scripted
//! stand-in model (tests/claude_support): the model asks for a Bash command that would
//! create a canary file; Claude Code puts it to the room, through the `approve-hook`
//! PreToolUse hook (the settings `instructions --approvals claude` prints) or through
//! `--permission-prompt-tool mcp__agentgather__room_approve`; a person clicks Deny or
//! Allow on the card in headless Chromium at phone width (tests/browser/decide_approval.py).
//! Deny: the command never runs and the model reads the person's reason. Allow: it runs.
//!
//! Claude Code comes from `AGENTGATHER_AGENT_CLIS` (and `AGENTGATHER_CLAUDE_LATEST`);
//! without it, or without Chromium, the tests print a SKIP notice, unless
//! `AGENTGATHER_REQUIRE_AGENT_CLIS=1` / `AGENTGATHER_REQUIRE_BROWSER=1` make that a failure.

mod claude_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use claude_support::*;
use common::*;
use serde_json::{Value, json};

/// How Claude Code puts the call to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The `PreToolUse` hook of `instructions --approvals claude`.
    Hook,
    /// `--permission-prompt-tool mcp__agentgather__room_approve`.
    PromptTool,
}

/// What one run left behind.
struct Outcome {
    /// Claude Code's output and status.
    claude: Output,
    /// What the person's browser printed: the card's id and its outcome line.
    clicked: Value,
    /// The tool result Claude Code sent the model for the Bash call.
    tool_result: Value,
    /// The file the command would create, in the agent's home (kept until the checks).
    canary: PathBuf,
    room: TestRoom,
    _agent: TempHome,
}

/// The model: one Bash call (`command`, under a tool-use id of its own), then the end of
/// the turn once Claude Code reports what became of it.
fn model(command: String, call_id: String) -> StandIn {
    StandIn::start(move |body| {
        if tool_results(body).is_empty() {
            Turn::tool(bash(&call_id, &command), command.clone())
        } else {
            Turn::end("Done.", "end_turn")
        }
    })
}

/// The person at the browser: the host's link in headless Chromium, waiting for the card
/// to answer `decision` (with `reason`). Started before Claude Code, so the page is up.
fn person(r: &TestRoom, decision: &str, reason: &str) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/decide_approval.py");
    Command::new("python3")
        .arg(script)
        .arg(decision)
        .arg(reason)
        .env("AG_BROWSER_URL", format!("{}/#token={}", r.url, r.token))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run decide_approval.py")
}

/// Waits for `child` to exit within `within` (killed and failed otherwise).
fn wait_output(mut child: Child, within: Duration, what: &str) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} did not finish within {within:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// One scenario: `claude -p` in a fresh room and agent home, the model asking for
/// `touch <canary>`, a person answering `decision` in Chromium. None when Chromium is
/// missing (a SKIP).
fn run(claude: &Path, route: Route, decision: &str, reason: &str) -> Option<Outcome> {
    let r = TestRoom::start("approvals-e2e");
    let agent = r
        .invite("claude-agent", "agent")
        .join_home("approvals-e2e-agent", &[]);
    let work = agent.root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let canary = work.join("canary");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let call_id = format!("toolu_canary_{nanos}");
    let standin = model(format!("touch {}", canary.display()), call_id.clone());
    let browser = person(&r, decision, reason);

    let mut cmd = Command::new(claude);
    cmd.arg("-p");
    match route {
        Route::Hook => {
            // The settings exactly as `instructions --approvals claude` prints them.
            let setup = cli_json(&agent, &["instructions", "--approvals", "claude", "--json"]);
            let settings = agent.root.join("settings.json");
            std::fs::write(&settings, setup["hook_settings"].to_string()).unwrap();
            cmd.arg("--settings").arg(&settings);
        }
        Route::PromptTool => {
            let config = json!({"mcpServers": {"agentgather": {
                "command": BIN, "args": ["mcp"],
                "env": {"AGENTGATHER_HOME": agent.home.display().to_string()}}}});
            let file = agent.root.join("mcp.json");
            std::fs::write(&file, config.to_string()).unwrap();
            cmd.arg("--mcp-config").arg(&file).args([
                "--strict-mcp-config",
                "--permission-prompt-tool",
                "mcp__agentgather__room_approve",
            ]);
        }
    }
    cmd.arg("Create the canary file.")
        .current_dir(&work)
        .env("AGENTGATHER_HOME", &agent.home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    claude_env(&mut cmd, claude, &agent.root, &standin);
    let started = Instant::now();
    let mut claude_run = cmd.spawn().expect("run claude");

    let clicked = wait_output(browser, Duration::from_secs(180), "the person's browser");
    if clicked.status.code() == Some(3) {
        let _ = claude_run.kill();
        let _ = claude_run.wait();
        skip(
            "approvals_e2e (the person's browser)",
            "Chromium or chromedriver",
            Some("AGENTGATHER_REQUIRE_BROWSER"),
            "apt-get install -y chromium chromium-driver",
        );
        return None;
    }
    let out = wait_output(claude_run, Duration::from_secs(120), "claude");
    assert!(
        clicked.status.success(),
        "the person could not answer in the browser: {}{}\nclaude: {}{}\nthe stand-in saw:\n{}",
        stdout(&clicked),
        stderr(&clicked),
        stdout(&out),
        stderr(&out),
        standin.dump()
    );
    println!(
        "approvals e2e ({route:?}, {decision}): claude done in {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        standin.summary()
    );
    let clicked: Value = serde_json::from_slice(&clicked.stdout).expect("the click's JSON line");
    let tool_result = standin
        .tool_results()
        .into_iter()
        .find(|t| t["tool_use_id"] == call_id.as_str())
        .unwrap_or_else(|| panic!("no result for the Bash call:\n{}", standin.dump()));
    Some(Outcome {
        claude: out,
        clicked,
        tool_result,
        canary,
        room: r,
        _agent: agent,
    })
}

/// The approval the run opened: one, for Bash, holding the command, answered `option`.
fn check_approval(o: &Outcome, option: &str) {
    let (_, list) = o.room.get("/topics?kind=approval", Some(&o.room.token));
    let topics = list["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 1, "{list}");
    let t = &topics[0];
    assert_eq!(
        t["id"], o.clicked["id"],
        "the card clicked is the call's: {list}"
    );
    assert_eq!(t["approval"]["tool"], "Bash", "{list}");
    let command = t["approval"]["input"]["command"].as_str().unwrap_or("");
    assert!(command.ends_with("/canary"), "{list}");
    assert_eq!(t["answer"]["option"], option, "{list}");
}

/// Deny, then Allow, through `route`, with every Claude Code under test.
fn deny_then_allow(route: Route) {
    let clis = claude_clis_or_skip(&format!("approvals_e2e ({route:?})"));
    for (label, claude) in &clis {
        println!("Claude Code {label}: {}", version(claude));
        let reason = "not on this machine";
        let Some(o) = run(claude, route, "deny", reason) else {
            return;
        };
        let outcome = o.clicked["outcome"].as_str().unwrap_or("");
        assert!(outcome.contains("Denied"), "{}", o.clicked);
        assert!(!o.canary.exists(), "the denied command ran ({label})");
        assert_eq!(o.tool_result["is_error"], true, "{}", o.tool_result);
        assert!(
            o.tool_result.to_string().contains(reason),
            "the model did not get the person's reason: {}",
            o.tool_result
        );
        assert!(o.claude.status.success(), "{}", stderr(&o.claude));
        check_approval(&o, "deny");

        let Some(o) = run(claude, route, "allow", "") else {
            return;
        };
        let outcome = o.clicked["outcome"].as_str().unwrap_or("");
        assert!(outcome.contains("Allowed"), "{}", o.clicked);
        assert!(
            o.canary.exists(),
            "the allowed command did not run ({label}): {}",
            o.tool_result
        );
        assert_ne!(o.tool_result["is_error"], true, "{}", o.tool_result);
        assert!(o.claude.status.success(), "{}", stderr(&o.claude));
        check_approval(&o, "allow");
    }
}

#[test]
fn claude_code_asks_the_room_through_the_hook() {
    deny_then_allow(Route::Hook);
}

#[test]
fn claude_code_asks_the_room_through_the_permission_prompt_tool() {
    deny_then_allow(Route::PromptTool);
}
