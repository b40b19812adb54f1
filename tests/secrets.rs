//! No raw token leaks (issue 6): a full session with debug logging, then every log line,
//! every CLI output that is not meant to show a token, and every file under the homes
//! except the 0600 credential files are searched for every token.

mod common;

use std::path::Path;

use common::{TestRoom, cli, stderr, stdout};
use serde_json::json;

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Files that exist to hold tokens: the CLI's own credentials and the host's minted tokens.
fn may_hold_tokens(home: &Path, file: &Path) -> bool {
    let rel = file.strip_prefix(home).unwrap();
    rel.starts_with("credentials") || (rel.starts_with("host") && rel.ends_with("tokens.json"))
}

#[test]
fn tokens_appear_only_where_asked_for() {
    let mut r = TestRoom::start("secrets");
    // Restart with debug logging so every log line is in the capture.
    r.server.kill();
    r.server = common::Server::try_spawn_with(&r.home, r.port, &[], |c| {
        c.env("RUST_LOG", "debug");
    })
    .unwrap_or_else(|(s, e)| panic!("{s}: {e}"));
    let agent = r.invite("agent-one", "agent");
    let human = r.invite("person", "human");
    let guest = agent.join_home("secrets-guest", &[]);
    let mut outputs = Vec::new();
    for args in [
        vec!["send", "operator", "hello with a secret-free text"],
        vec!["messages", "--json"],
        vec!["watch", "--json"],
        vec!["read"],
        vec!["room", "current", "--json"],
        vec!["doctor", "--json"],
        vec!["export", "--format", "json"],
        vec!["room", "brief", "view"],
    ] {
        let o = cli(&guest, &args);
        outputs.push((format!("guest {args:?}"), stdout(&o) + &stderr(&o)));
    }
    r.post(
        "/messages",
        Some(&human.token),
        &json!({"text": "@agent-one from a human", "client_msg_id": "c1"}),
    );
    r.get("/wait?timeout_ms=200", Some(&human.token));
    r.post("/brief", Some(&r.token), &json!({"body": "Goal: v2"}));
    for args in [
        vec!["room", "status", "--json"],
        vec!["doctor"],
        vec!["export"],
        vec!["room", "attendance", "view"],
        vec!["room", "remove", "person"],
        vec!["room", "close"],
    ] {
        let o = r.cli(&args);
        outputs.push((format!("host {args:?}"), stdout(&o) + &stderr(&o)));
    }
    r.server.kill();
    let log = r.server.log_text();
    assert!(
        log.contains("serving room"),
        "the server log was not captured: {log}"
    );
    let tokens = [&r.token, &agent.token, &human.token];
    for t in tokens {
        assert!(!log.contains(t.as_str()), "a token is in the server log");
        for (what, out) in &outputs {
            assert!(
                !out.contains(t.as_str()),
                "a token is in the output of {what}"
            );
        }
        for home in [&r.home.home, &guest.home] {
            let mut all = Vec::new();
            files(home, &mut all);
            assert!(!all.is_empty());
            for f in all {
                if may_hold_tokens(home, &f) {
                    continue;
                }
                let bytes = std::fs::read(&f).unwrap();
                assert!(
                    !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                    "a token is stored in {}",
                    f.display()
                );
            }
        }
    }
}
