//! SPEC §11.2 end to end: `agentgather mcp` pushes into a live session. A real MCP client
//! (the official TypeScript SDK from npm, driven by `tests/mcp_push/client.mjs`) runs the
//! adapter over stdio for a joined participant. While it is connected the adapter holds
//! the participant's wait (the roster shows them reachable) and, within a second of a
//! message that concerns them, sends Claude Code's channel notification naming ids,
//! senders and `room_read`, never the text. A client that ignores the notification is
//! unaffected.
//!
//! The SDK comes from `.ci/run` (`AGENTGATHER_MCP_SDK`, a `node_modules` folder); without
//! it the tests print a SKIP notice, unless `AGENTGATHER_REQUIRE_AGENT_CLIS=1`.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn sdk() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("AGENTGATHER_MCP_SDK")?);
    dir.join("@modelcontextprotocol/sdk/package.json")
        .exists()
        .then_some(dir)
}

/// The SDK, or a skip (a failure when the CLIs are required).
fn sdk_or_skip() -> Option<PathBuf> {
    let found = sdk();
    if found.is_none() {
        let require = std::env::var("AGENTGATHER_REQUIRE_AGENT_CLIS").is_ok_and(|v| v == "1");
        assert!(
            !require,
            "AGENTGATHER_REQUIRE_AGENT_CLIS=1 but AGENTGATHER_MCP_SDK names no @modelcontextprotocol/sdk"
        );
        eprintln!(
            "SKIP: the MCP SDK (npm @modelcontextprotocol/sdk) not found; set AGENTGATHER_MCP_SDK"
        );
    }
    found
}

struct JsClient {
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<Value>>>,
    next: u64,
}

impl JsClient {
    fn spawn(sdk: &PathBuf, home: &TempHome, mode: &str) -> JsClient {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_push/client.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(BIN)
            .arg(mode)
            .env("AGENTGATHER_HOME", &home.home)
            .env("HOME", &home.root)
            .env("AGENTGATHER_MCP_SDK", sdk)
            .env_remove("AGENTGATHER_WAKE_IDS")
            .env_remove("AGENTGATHER_SINCE_ID")
            .env_remove("AGENTGATHER_SESSION")
            .env_remove("AGENTGATHER_TURN")
            .current_dir(&home.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let lines = json_lines(child.stdout.take().unwrap());
        let c = JsClient {
            child,
            stdin,
            lines,
            next: 1,
        };
        c.until("the MCP handshake", Duration::from_secs(30), |l| {
            l["event"] == "ready"
        });
        c
    }

    fn until(&self, what: &str, within: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = self.lines.lock().unwrap().iter().find(|l| f(l)) {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn notifications(&self) -> Vec<Value> {
        let l = self.lines.lock().unwrap();
        l.iter()
            .filter(|v| v["event"] == "notification")
            .cloned()
            .collect()
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        let id = self.next;
        self.next += 1;
        writeln!(
            self.stdin,
            "{}",
            json!({"id": id, "tool": tool, "args": args})
        )
        .unwrap();
        let r = self.until(
            &format!("the {tool} result"),
            Duration::from_secs(60),
            |l| l["event"] == "result" && l["id"] == id,
        );
        assert!(r["error"].is_null(), "{r}");
        r["result"].clone()
    }
}

impl Drop for JsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reachable(r: &TestRoom, alias: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let e = r.roster_entry(alias);
        if e["reachable_now"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "never reachable: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_mention_reaches_a_connected_session_within_a_second_without_its_text() {
    let Some(sdk) = sdk_or_skip() else { return };
    let r = TestRoom::start("mcp-push");
    let inv = r.invite("pusher", "agent");
    let agent = inv.join_home("mcp-push-agent", &[]);
    let mut c = JsClient::spawn(&sdk, &agent, "listen");
    let ready = c.until("ready", Duration::from_secs(1), |l| l["event"] == "ready");
    assert!(
        ready["capabilities"]["experimental"]["claude/channel"].is_object(),
        "the server declares the channel capability: {ready}"
    );
    // The adapter holds the participant's wait itself.
    reachable(&r, "pusher");

    let started = Instant::now();
    let id = r.say(&r.token, "@pusher SECRET-ROOM-TEXT please rotate the keys")["id"]
        .as_u64()
        .unwrap();
    let n = c.until("the channel notification", Duration::from_secs(5), |l| {
        l["event"] == "notification"
    });
    let took = started.elapsed();
    println!("mention -> channel notification in {} ms", took.as_millis());
    assert!(took <= Duration::from_secs(1), "{} ms", took.as_millis());
    assert_eq!(n["method"], "notifications/claude/channel", "{n}");
    assert_eq!(n["params"]["meta"]["ids"], id.to_string(), "{n}");
    assert_eq!(n["params"]["meta"]["from"], "operator", "{n}");
    let all = n.to_string();
    assert!(
        !all.contains("SECRET-ROOM-TEXT") && !all.contains("rotate"),
        "{all}"
    );
    let content = n["params"]["content"].as_str().unwrap();
    assert!(
        content.contains(&format!("#{id}")) && content.contains("room_read"),
        "{content}"
    );

    // Something that does not concern the participant is not announced.
    r.say(&r.token, "just chatting with everyone else");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.notifications().len(), 1, "{:?}", c.notifications());

    // A reply to one of the participant's own messages is.
    let own = cli_json(
        &agent,
        &["send", "operator", "a question of mine", "--json"],
    );
    let own_id = own["message"]["id"].as_u64().unwrap();
    let (st, reply) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "an answer without a mention", "reply_to": own_id}),
    );
    assert_eq!(st, 201, "{reply}");
    let reply_id = reply["message"]["id"].as_u64().unwrap();
    let n2 = c.until("the reply's notification", Duration::from_secs(5), |l| {
        l["event"] == "notification" && l["params"]["meta"]["ids"] == json!(reply_id.to_string())
    });
    assert!(!n2.to_string().contains("without a mention"), "{n2}");

    // The model reads the text through room_read, quoted as external advice.
    let read = c.call("room_read", json!({"since_id": id - 1}));
    let text = text_of(&read);
    assert!(
        text.contains("SECRET-ROOM-TEXT") && text.contains("external advice"),
        "{text}"
    );

    // A room_wait of the model takes the wait over and is not announced twice.
    let before = c.notifications().len();
    let poster = {
        let (port, token) = (r.port, r.token.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            post(
                port,
                "/messages",
                Some(&token),
                &json!({"text": "@pusher during your wait"}),
            )
        })
    };
    let waited = c.call("room_wait", json!({"timeout_seconds": 20}));
    let (st, posted) = poster.join().unwrap();
    assert_eq!(st, 201, "{posted}");
    assert!(text_of(&waited).contains("during your wait"), "{waited}");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(c.notifications().len(), before, "{:?}", c.notifications());
    // After the call the adapter holds the wait again: the next mention is announced.
    let again = r.say(&r.token, "@pusher and once more")["id"]
        .as_u64()
        .unwrap();
    c.until(
        "a notification after room_wait",
        Duration::from_secs(5),
        |l| l["event"] == "notification" && l["params"]["meta"]["ids"] == json!(again.to_string()),
    );
}

#[test]
fn a_client_that_ignores_the_notification_is_unaffected() {
    let Some(sdk) = sdk_or_skip() else { return };
    let r = TestRoom::start("mcp-push-ignore");
    let inv = r.invite("quiet", "agent");
    let agent = inv.join_home("mcp-push-quiet", &[]);
    let mut c = JsClient::spawn(&sdk, &agent, "ignore");
    reachable(&r, "quiet");
    let id = r.say(&r.token, "@quiet are you there")["id"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let read = c.call("room_read", json!({"since_id": id - 1}));
    assert!(text_of(&read).contains("are you there"), "{read}");
    let sent = c.call("room_send", json!({"text": "here", "reply_to": id}));
    assert_ne!(sent["isError"], true, "{sent}");
    let mine = r
        .all_messages()
        .into_iter()
        .find(|m| m["from"] == "quiet")
        .unwrap();
    assert_eq!(mine["reply_to"], id, "{mine}");
    assert!(
        c.child.try_wait().unwrap().is_none(),
        "the client is still running"
    );
}
