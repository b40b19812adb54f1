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

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The stand-in model: a tiny HTTP/1.1 server speaking the Messages API, scripted by how
// many tool results the conversation already holds.
// ---------------------------------------------------------------------------------------

/// One request the stand-in answered.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// The request body, parsed (Null when it was not JSON).
    body: Value,
    /// What the stand-in answered with (a short label).
    answered: String,
}

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
    /// recipe's prompt names (as the runner expanded it), run as the model would.
    fn read(self, since: &str, convo: &str) -> (Value, String) {
        match self {
            Variant::Cli => {
                let named = convo
                    .find(READ_MARKER)
                    .map(|i| &convo[i + READ_MARKER.len()..])
                    .and_then(|rest| rest.split(". ").next())
                    .filter(|cmd| cmd.starts_with("agentgather messages --since "))
                    .unwrap_or("echo the prompt named no read command");
                let cmd = named.to_string();
                (bash("toolu_read", &cmd), cmd)
            }
            Variant::Mcp => {
                let since: u64 = since.parse().unwrap();
                let input = json!({"since_id": since});
                let label = format!("{MCP_READ} {input}");
                (tool_use("toolu_read", MCP_READ, input), label)
            }
        }
    }

    /// The tool call that answers message `id` with `text`.
    fn reply(self, id: &str, text: &str) -> (Value, String) {
        match self {
            Variant::Cli => {
                let cmd = format!("agentgather reply {id} '{text}'");
                (bash("toolu_reply", &cmd), cmd)
            }
            Variant::Mcp => {
                let id: u64 = id.parse().unwrap();
                let input = json!({"text": text, "reply_to": id});
                let label = format!("{MCP_SEND} {input}");
                (tool_use("toolu_reply", MCP_SEND, input), label)
            }
        }
    }
}

/// The MCP tools as Claude Code names them: `mcp__<server in --mcp-config>__<tool>`.
const MCP_READ: &str = "mcp__agentgather__room_read";
const MCP_SEND: &str = "mcp__agentgather__room_send";

/// What the stand-in model wants done, fixed by the test before the wake.
struct Script {
    /// Which tools the model calls to read and reply.
    variant: Variant,
    /// Text of the room message that must show up in the read's tool result.
    mention_text: String,
    /// The reply the model asks Claude Code to post.
    reply_text: String,
    /// A command the recipe's `--allowedTools` must refuse.
    forbidden: String,
}

struct StandIn {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    fn start(script: Script) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (log, script) = (log.clone(), script.clone());
                std::thread::spawn(move || serve_conn(conn, &log, &script));
            }
        });
        StandIn { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every tool result Claude Code sent back, by tool_use id (latest request wins).
    fn tool_results(&self) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for s in self.seen() {
            let r = tool_results(&s.body);
            if r.len() > out.len() {
                out = r;
            }
        }
        out
    }

    /// The tool names Claude Code offered the model, over every request.
    fn tools_offered(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.seen() {
            for t in s.body["tools"].as_array().into_iter().flatten() {
                if let Some(name) = t["name"].as_str().filter(|n| !out.iter().any(|o| o == n)) {
                    out.push(name.to_string());
                }
            }
        }
        out
    }

    /// One line per request: what came in and how the stand-in answered.
    fn summary(&self) -> String {
        self.seen()
            .iter()
            .map(|s| format!("  {} {} -> {}", s.method, s.path, s.answered))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A readable dump of what the stand-in saw, for failure messages.
    fn dump(&self) -> String {
        self.seen()
            .iter()
            .map(|s| {
                format!(
                    "{} {} -> {} (tool results: {})",
                    s.method,
                    s.path,
                    s.answered,
                    Value::Array(tool_results(&s.body))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The `tool_result` blocks of a Messages API request body, in order.
fn tool_results(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        for c in m["content"].as_array().into_iter().flatten() {
            if c["type"] == "tool_result" {
                out.push(c.clone());
            }
        }
    }
    out
}

/// The digits after `marker` in `text` (ids and commas for the wake ids).
/// What the CLI recipe's prompt says before the command that reads the room.
const READ_MARKER: &str = "Read them with: ";

fn after<'a>(text: &'a str, marker: &str, allowed: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && !allowed.contains(c))
        .unwrap_or(rest.len());
    let got = rest[..end].trim_end_matches(',');
    (!got.is_empty()).then_some(got)
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body). None at end of stream.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut len, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().ok()?,
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((method, path, body))
}

fn serve_conn(conn: TcpStream, log: &Mutex<Vec<Seen>>, script: &Script) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some((method, path, body)) = read_request(&mut r) {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, ctype, out, answered) = answer(&method, &path, &body, script);
        log.lock().unwrap().push(Seen {
            method,
            path,
            body,
            answered,
        });
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\
             request-id: req_standin\r\nconnection: keep-alive\r\n\r\n",
            out.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(&out).is_err() {
            return;
        }
    }
}

/// A streamed Messages API answer: the event sequence Claude Code reads.
fn sse(model: &Value, blocks: &[Value], stop: &str) -> Vec<u8> {
    let mut ev = vec![json!({"type": "message_start", "message": {
        "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 1}}})];
    for (i, b) in blocks.iter().enumerate() {
        if b["type"] == "text" {
            ev.push(json!({"type": "content_block_start", "index": i,
                "content_block": {"type": "text", "text": ""}}));
            ev.push(json!({"type": "content_block_delta", "index": i,
                "delta": {"type": "text_delta", "text": b["text"]}}));
        } else {
            ev.push(
                json!({"type": "content_block_start", "index": i, "content_block":
                {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}),
            );
            ev.push(json!({"type": "content_block_delta", "index": i, "delta":
                {"type": "input_json_delta", "partial_json": b["input"].to_string()}}));
        }
        ev.push(json!({"type": "content_block_stop", "index": i}));
    }
    ev.push(json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": 5}}));
    ev.push(json!({"type": "message_stop"}));
    let mut out = String::new();
    for e in ev {
        out.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap()
        ));
    }
    out.into_bytes()
}

fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

fn bash(id: &str, command: &str) -> Value {
    tool_use(
        id,
        "Bash",
        json!({"command": command, "description": "room step"}),
    )
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

/// The scripted model. Streamed turns go: read the room → try the forbidden command →
/// reply to the mention → end the turn. Anything else gets a small sensible answer.
fn answer(
    method: &str,
    path: &str,
    body: &Value,
    script: &Script,
) -> (&'static str, &'static str, Vec<u8>, String) {
    let json_ct = "application/json";
    if method == "HEAD" || (method == "GET" && (path == "/" || path.is_empty())) {
        return ("200 OK", json_ct, Vec::new(), "empty 200".into());
    }
    if path.starts_with("/v1/messages/count_tokens") {
        let out = json!({"input_tokens": 10}).to_string().into_bytes();
        return ("200 OK", json_ct, out, "token count".into());
    }
    if !path.starts_with("/v1/messages") {
        let out = json!({"type": "error", "error": {"type": "not_found_error",
            "message": "the stand-in serves only /v1/messages"}});
        return (
            "404 Not Found",
            json_ct,
            out.to_string().into_bytes(),
            "404".into(),
        );
    }
    let model = &body["model"];
    if body["stream"] != true {
        // A side request (a title, a quota check): one short text answer.
        let out = json!({"id": "msg_side", "type": "message", "role": "assistant",
            "model": model, "content": [text("Room reply")], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}});
        return (
            "200 OK",
            json_ct,
            out.to_string().into_bytes(),
            "non-streamed text".into(),
        );
    }
    // The ids come from the recipe's prompt, as the runner expanded them.
    let convo = body["messages"].to_string();
    let wake_ids = after(&convo, "because messages ", ",");
    let since = after(&convo, script.variant.since_marker(), "");
    let results = tool_results(body);
    let sse_ct = "text/event-stream";
    let (Some(wake_ids), Some(since)) = (wake_ids, since) else {
        let out = sse(model, &[text("The prompt named no ids.")], "end_turn");
        return ("200 OK", sse_ct, out, "end: no ids in the prompt".into());
    };
    let first_id = wake_ids.split(',').next().unwrap().to_string();
    let (blocks, stop, label) = match results.len() {
        0 => {
            let (read, label) = script.variant.read(since, &convo);
            (vec![text("Reading the room."), read], "tool_use", label)
        }
        1 if !results[0].to_string().contains(&script.mention_text) => (
            vec![text("The read did not show the room message.")],
            "end_turn",
            "end: the read missed the mention".into(),
        ),
        // Both recipes must give the model room text quoted as external advice.
        1 if !results[0].to_string().contains("external advice") => (
            vec![text("The read gave room text unquoted.")],
            "end_turn",
            "end: the read was not quoted as external advice".into(),
        ),
        1 => (
            vec![bash("toolu_forbidden", &script.forbidden)],
            "tool_use",
            script.forbidden.clone(),
        ),
        2 => {
            let (reply, label) = script.variant.reply(&first_id, &script.reply_text);
            (vec![reply], "tool_use", label)
        }
        _ => (
            vec![text("Replied in the room.")],
            "end_turn",
            "end_turn".into(),
        ),
    };
    ("200 OK", sse_ct, sse(model, &blocks, stop), label)
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
    assert!(exec.starts_with("claude -p "), "{exec}");
    exec
}

struct Runner {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
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

fn dir_of(p: &Path) -> PathBuf {
    p.parent().unwrap().to_path_buf()
}

#[test]
fn a_mention_wakes_real_claude_code_which_reads_and_replies_with_the_cli() {
    mention_wakes_claude_code(Variant::Cli);
}

#[test]
fn a_mention_wakes_real_claude_code_which_reads_and_replies_with_the_mcp_tools() {
    mention_wakes_claude_code(Variant::Mcp);
}

/// The scenario both recipes share: join, run the recipe's wake line, mention the agent,
/// and check what Claude Code did and what landed in the room.
fn mention_wakes_claude_code(variant: Variant) {
    let Some(claude) = find_cli("claude") else {
        skip(
            &format!("mention_wakes_claude_code ({variant:?})"),
            "`claude`",
            Some("AGENTGATHER_REQUIRE_AGENT_CLIS"),
            "npm install @anthropic-ai/claude-code; set AGENTGATHER_AGENT_CLIS",
        );
        return;
    };

    let r = TestRoom::start("claude-e2e");
    let inv = r.invite("claude-agent", "agent");
    let agent = inv.join_home("claude-e2e-agent", &[]);
    let work = agent.root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let forbidden_file = work.join("denied-canary");

    let mention_text = "@claude-agent please confirm build 4711 is green";
    let standin = StandIn::start(Script {
        variant,
        mention_text: "confirm build 4711 is green".into(),
        reply_text: "build 4711 confirmed green by claude code".into(),
        forbidden: "sh -c 'echo owned > denied-canary'".into(),
    });

    // PATH: the agentgather binary, the agent CLIs, node, then the rest.
    let mut path = vec![dir_of(Path::new(BIN)), dir_of(&claude)];
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    if let Some(node) = std::env::split_paths(&inherited)
        .map(|d| d.join("node"))
        .find(|p| p.exists())
    {
        path.push(dir_of(&node));
    }
    path.extend(std::env::split_paths(&inherited));
    let path = std::env::join_paths(path).unwrap();

    let exec = recipe_exec(&agent, variant);
    let mut cmd = command(&agent, &["wake", "--exec", &exec, "--json"]);
    cmd.current_dir(&work)
        .env("PATH", &path)
        .env("HOME", &agent.root)
        .env(
            "ANTHROPIC_BASE_URL",
            format!("http://127.0.0.1:{}", standin.port),
        )
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Whatever session this test runs in, the woken Claude Code must see only the above.
    for k in [
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_MODEL",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "CLAUDE_CONFIG_DIR",
        "CLAUDECODE",
        "CLAUDE_CODE_ENTRYPOINT",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
    ] {
        cmd.env_remove(k);
    }
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

    let started = Instant::now();
    let mention = r.say(&r.token, mention_text);
    let mention_id = mention["id"].as_u64().unwrap();

    let turns = || -> Vec<Value> {
        let l = runner.lines.lock().unwrap();
        l.iter().filter(|v| v["event"] == "turn").cloned().collect()
    };
    until(
        "one finished wake turn",
        Duration::from_secs(90),
        || !turns().is_empty(),
        || format!("the stand-in saw:\n{}", standin.dump()),
    );
    let took = started.elapsed();
    let turn = turns()[0].clone();
    println!(
        "claude e2e ({variant:?}): mention -> reply turn done in {:.1} s; turn {turn}",
        took.as_secs_f64()
    );
    println!("the stand-in saw:\n{}", standin.summary());
    assert_eq!(turn["exit_code"], 0, "{turn}\n{}", standin.dump());
    assert_eq!(turn["ids"], json!([mention_id]), "{turn}");

    // Claude Code really read the room (the CLI, or `agentgather mcp` it started): the
    // read's result holds the room message.
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
    let results = standin.tool_results();
    assert_eq!(results.len(), 3, "{}", standin.dump());
    let by_id = |id: &str| -> Value {
        results
            .iter()
            .find(|t| t["tool_use_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no tool result for {id}: {}", standin.dump()))
    };
    let read = by_id("toolu_read");
    assert_ne!(read["is_error"], true, "{read}");
    assert!(
        read.to_string().contains("confirm build 4711 is green"),
        "{read}"
    );
    // The recipe's --allowedTools refused what is not a room command or tool.
    let denied = by_id("toolu_forbidden");
    assert_eq!(denied["is_error"], true, "{denied}");
    assert!(
        !forbidden_file.exists(),
        "Claude Code ran a command the recipe does not allow: {denied}"
    );
    let replied = by_id("toolu_reply");
    assert_ne!(replied["is_error"], true, "{replied}");

    // The reply is in the room, from the woken participant, answering the mention.
    let reply = r
        .all_messages()
        .into_iter()
        .find(|m| m["from"] == "claude-agent")
        .unwrap_or_else(|| panic!("no message from claude-agent: {:?}", r.all_messages()));
    assert_eq!(reply["reply_to"], mention_id, "{reply}");
    assert_eq!(
        reply["text"], "build 4711 confirmed green by claude code",
        "{reply}"
    );
    // The turn left the participant as it declared itself: woken on demand.
    let e = r.roster_entry("claude-agent");
    assert_eq!(e["reach"], "wake", "{e}");
    assert!(e["last_woken_at"].is_string(), "{e}");
    assert_eq!(e["wake_failing"], 0, "{e}");
}
