//! A scripted stand-in for the Anthropic Messages API, for the tests that run the real
//! Claude Code CLI (npm `@anthropic-ai/claude-code`) with `ANTHROPIC_BASE_URL` pointed at
//! it. The stand-in speaks just enough HTTP/1.1 and server-sent events for Claude Code;
//! what the model "does" is the test's script: a function from the request body to the
//! next assistant turn. Test scaffolding only: nothing here is product code.
//!
//! Which Claude Code runs: `.ci/run` installs a pinned known-good release (in
//! `AGENTGATHER_AGENT_CLIS`) and the current `@latest` (in `AGENTGATHER_CLAUDE_LATEST`,
//! a `bin` folder), so a change upstream shows up as a failure of its own.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// One request the stand-in answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The request body, parsed (Null when it was not JSON).
    pub body: Value,
    /// What the stand-in answered with (a short label).
    pub answered: String,
}

/// The model's next turn: content blocks, the stop reason, and a label for the log.
pub struct Turn {
    pub blocks: Vec<Value>,
    pub stop: &'static str,
    pub label: String,
}

impl Turn {
    /// Ends the model's turn with a line of text.
    pub fn end(text_: &str, label: impl Into<String>) -> Turn {
        Turn {
            blocks: vec![text(text_)],
            stop: "end_turn",
            label: label.into(),
        }
    }

    /// Asks Claude Code to run one tool.
    pub fn tool(call: Value, label: impl Into<String>) -> Turn {
        Turn {
            blocks: vec![call],
            stop: "tool_use",
            label: label.into(),
        }
    }
}

type Script = dyn Fn(&Value) -> Turn + Send + Sync;

pub struct StandIn {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    /// Serves on a loopback port; `script` answers every streamed `/v1/messages` request.
    pub fn start(script: impl Fn(&Value) -> Turn + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (log, script) = (log.clone(), script.clone());
                std::thread::spawn(move || serve_conn(conn, &log, &*script));
            }
        });
        StandIn { port, seen }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The streamed model requests, in order.
    pub fn model_requests(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.body["stream"] == true)
            .map(|s| s.body)
            .collect()
    }

    /// Every tool result of the longest conversation Claude Code sent.
    pub fn tool_results(&self) -> Vec<Value> {
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
    pub fn tools_offered(&self) -> Vec<String> {
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
    pub fn summary(&self) -> String {
        self.seen()
            .iter()
            .map(|s| format!("  {} {} -> {}", s.method, s.path, s.answered))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A readable dump of what the stand-in saw, for failure messages.
    pub fn dump(&self) -> String {
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

/// A content block with the role of the message that holds it.
pub type Block = (String, Value);

/// The content blocks of a request's messages, in order, each with its role (a string
/// content is one text block). A resumed conversation may merge consecutive messages of
/// one role, so blocks, not messages, are what a script can count on.
pub fn blocks(body: &Value) -> Vec<Block> {
    let mut out = Vec::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        let role = m["role"].as_str().unwrap_or_default().to_string();
        match &m["content"] {
            Value::String(s) => out.push((role, text(s))),
            Value::Array(parts) => out.extend(parts.iter().map(|p| (role.clone(), p.clone()))),
            _ => {}
        }
    }
    out
}

/// The `tool_result` blocks among `blocks`, in order.
pub fn results_in(blocks: &[Block]) -> Vec<Value> {
    blocks
        .iter()
        .filter(|(_, b)| b["type"] == "tool_result")
        .map(|(_, b)| b.clone())
        .collect()
}

/// The `tool_result` blocks of a Messages API request body, in order.
pub fn tool_results(body: &Value) -> Vec<Value> {
    results_in(&blocks(body))
}

/// The blocks of a request split at the current prompt: the last user text block that
/// contains `marker` starts the current part; what precedes it is a resumed
/// conversation's history.
pub fn split_at_prompt(body: &Value, marker: &str) -> (Vec<Block>, Vec<Block>) {
    let mut all = blocks(body);
    let start = all
        .iter()
        .rposition(|(role, b)| {
            role == "user"
                && b["type"] == "text"
                && b["text"].as_str().is_some_and(|t| t.contains(marker))
        })
        .unwrap_or(0);
    let current = all.split_off(start);
    (all, current)
}

/// Blocks as one JSON text, to search in.
pub fn blocks_text(blocks: &[Block]) -> String {
    Value::Array(blocks.iter().map(|(_, b)| b.clone()).collect()).to_string()
}

/// The digits (and `allowed` characters) after `marker` in `text`.
pub fn after<'a>(text: &'a str, marker: &str, allowed: &str) -> Option<&'a str> {
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
        if let Some(p) = std::env::var_os("STANDIN_DEBUG_LOG") {
            use std::io::Write as _;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
            {
                let _ = writeln!(f, "{body}");
            }
        }
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

/// Numbers the stand-in's messages: Claude Code joins the blocks of one message id, also
/// across the turns of a resumed conversation.
static MESSAGE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A streamed Messages API answer: the event sequence Claude Code reads.
fn sse(model: &Value, blocks: &[Value], stop: &str) -> Vec<u8> {
    let id = MESSAGE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ev = vec![json!({"type": "message_start", "message": {
        "id": format!("msg_standin_{id}"), "type": "message", "role": "assistant", "model": model,
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

pub fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

pub fn bash(id: &str, command: &str) -> Value {
    tool_use(
        id,
        "Bash",
        json!({"command": command, "description": "room step"}),
    )
}

pub fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

/// Answers one request: side requests get small fixed answers, streamed model requests
/// go to the script.
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
    let turn = script(body);
    (
        "200 OK",
        "text/event-stream",
        sse(model, &turn.blocks, turn.stop),
        turn.label,
    )
}

/// The Claude Code CLIs under test, by label: the pinned one (`AGENTGATHER_AGENT_CLIS`,
/// or PATH) and `@latest` (`AGENTGATHER_CLAUDE_LATEST`) when it is given.
pub fn claude_clis() -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = crate::common::find_cli("claude") {
        out.push(("pinned", p));
    }
    if let Some(dir) = std::env::var_os("AGENTGATHER_CLAUDE_LATEST") {
        let p = PathBuf::from(dir).join("claude");
        if p.exists() {
            out.push(("latest", p));
        }
    }
    out
}

/// [`claude_clis`], or, when there is none, a visible skip of `test` (a failure with
/// `AGENTGATHER_REQUIRE_AGENT_CLIS=1`).
pub fn claude_clis_or_skip(test: &str) -> Vec<(&'static str, PathBuf)> {
    let clis = claude_clis();
    if clis.is_empty() {
        crate::common::skip(
            test,
            "`claude`",
            Some("AGENTGATHER_REQUIRE_AGENT_CLIS"),
            "npm install @anthropic-ai/claude-code; set AGENTGATHER_AGENT_CLIS",
        );
    }
    clis
}

/// The `claude --version` line.
pub fn version(claude: &Path) -> String {
    Command::new(claude)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Points `cmd` (which runs Claude Code, directly or through a wake runner) at the
/// stand-in, with `claude`, the agentgather binary and node first on PATH, its own
/// `HOME`, and nothing of whatever Claude Code session runs the tests.
pub fn claude_env(cmd: &mut Command, claude: &Path, home: &Path, standin: &StandIn) {
    let dir_of = |p: &Path| p.parent().unwrap().to_path_buf();
    let mut path = vec![dir_of(Path::new(crate::common::BIN)), dir_of(claude)];
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    if let Some(node) = std::env::split_paths(&inherited)
        .map(|d| d.join("node"))
        .find(|p| p.exists())
    {
        path.push(dir_of(&node));
    }
    path.extend(std::env::split_paths(&inherited));
    cmd.env("PATH", std::env::join_paths(path).unwrap())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", standin.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("NO_COLOR", "1");
    for k in [
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_MODEL",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "CLAUDE_CONFIG_DIR",
        "CLAUDECODE",
        "CLAUDE_CODE_ENTRYPOINT",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "ENABLE_TOOL_SEARCH",
    ] {
        cmd.env_remove(k);
    }
}
