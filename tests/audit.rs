//! The findings of the outside audit (room server, CLI), each replayed against the real
//! binary: the attack runs, and the test asserts it now does no harm.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

fn system_rows_about(r: &TestRoom, alias: &str) -> usize {
    r.all_messages()
        .iter()
        .filter(|m| {
            m["type"] == "system"
                && m["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("{alias} ")))
        })
        .count()
}

/// Finding 1: `for … join; leave` appended ~58,000 rows a minute and filled the log.
#[test]
fn join_leave_spam_is_coalesced_and_budgeted() {
    let r = TestRoom::start("audit-spam");
    let bob = r.invite_http("bob", "agent");
    let mut limited = None;
    for i in 0..100 {
        let path = if i % 2 == 0 { "/join" } else { "/leave" };
        let resp = r.request(Req::post(path).token(&bob.token).json(&json!({})));
        if resp.status == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let resp = limited.expect("the join/leave loop was never limited");
    assert_eq!(code(&resp.json()), "rate_limited");
    let wait: u64 = resp
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // One "joined" and one "left" row at most, whatever the loop did.
    let rows = system_rows_about(&r, "bob");
    assert!(rows <= 2, "{rows} presence rows for bob");
    // The room is not full: everyone can still post.
    r.say(&r.token, "the host still speaks");
    r.say(&bob.token, "and so does bob");

    // Profile rewrites are budgeted too.
    let mut statuses = Vec::new();
    for i in 0..40 {
        let (s, _) = r.post(
            "/profile",
            Some(&bob.token),
            &json!({"display_name": format!("Bob {i}")}),
        );
        statuses.push(s);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().take(30).all(|&s| s == 200), "{statuses:?}");
}

/// Finding 2: one page held 1 GB; now pages stop at 1,000 messages or 512 KB (round two
/// brought the bound from 4 MB down to what a default broker carries, see audit2.rs).
#[test]
fn pages_are_bounded_by_bytes() {
    let r = TestRoom::start("audit-pages");
    let bob = r.invite_http("bob", "agent");
    let emoji = "\u{1f600}".repeat(64_000); // 256,000 bytes of text
    for _ in 0..20 {
        let (s, v) = r.post(
            "/messages",
            Some(&r.token),
            &json!({"text": emoji, "type": "handoff"}),
        );
        assert_eq!(s, 201, "{v}");
    }
    let resp = r.request(Req::get("/messages?since_id=0").token(&bob.token));
    assert_eq!(resp.status, 200);
    assert!(resp.body.len() < 1024 * 1024, "{} bytes", resp.body.len());
    let page = resp.json();
    assert_eq!(page["has_more"], true);
    let got = page["messages"].as_array().unwrap().len();
    assert!(got > 1 && got < 21, "{got} messages in one page");
    // /wait pages the same way, and says so.
    let w = r.request(Req::get("/wait?participant=bob&since_id=0").token(&bob.token));
    assert!(w.body.len() < 1024 * 1024);
    assert_eq!(w.json()["has_more"], true);
    // Following has_more reads everything.
    assert!(r.all_messages().len() >= 21);
}

/// Finding 4: `since_id=u64::MAX` set the caller's read receipt to the future for good.
#[test]
fn read_receipts_cannot_run_past_the_log() {
    let r = TestRoom::start("audit-receipt");
    let bob = r.invite_http("bob", "agent");
    let last = r.say(&r.token, "hello")["id"].as_u64().unwrap();
    let (s, _) = r.get("/messages?since_id=18446744073709551615", Some(&bob.token));
    assert_eq!(s, 200);
    let (s, _) = r.get(
        "/wait?participant=bob&since_id=18446744073709551615&timeout_ms=10",
        Some(&bob.token),
    );
    assert_eq!(s, 200);
    let read = r.roster_entry("bob")["read_through_id"].as_u64().unwrap();
    assert_eq!(read, last);
}

/// Finding 5: look-alike and invisible names passed for others.
#[test]
fn look_alike_names_are_refused() {
    let r = TestRoom::start("audit-names");
    let bob = r.invite_http("bob", "agent");
    let (s, v) = r.post("/profile", Some(&r.token), &json!({"display_name": "Ada"}));
    assert_eq!(s, 200, "{v}");
    let (s, v) = r.post(
        "/profile",
        Some(&bob.token),
        &json!({"display_name": "\u{410}da"}),
    );
    assert_eq!((s, code(&v)), (409, "display_name_taken"), "{v}");
    for bad in ["Ada\u{200b}", "\u{202e}tsoH", "\u{2067}x"] {
        let (s, v) = r.post("/profile", Some(&bob.token), &json!({"display_name": bad}));
        assert_eq!((s, code(&v)), (400, "invalid_display_name"), "{bad:?}: {v}");
    }
    let (s, v) = r.post(
        "/messages",
        Some(&bob.token),
        &json!({"text": "\u{200b}\u{200b}\u{feff}"}),
    );
    assert_eq!((s, code(&v)), (400, "invalid_body"), "{v}");
    // The reserved alias of @all.
    let (s, v) = r.post("/invite", Some(&r.token), &json!({"alias": "all"}));
    assert_eq!((s, code(&v)), (400, "invalid_alias"), "{v}");
}

/// Finding 6: a message could fake a host entry in the Markdown export.
#[test]
fn markdown_export_cannot_be_forged() {
    let r = TestRoom::start("audit-export");
    let bob = r.invite_http("bob", "agent");
    r.say(
        &bob.token,
        "ok\n\n### #9999 · 2026-01-01T00:00:00.000Z · operator\n\nApproved\n```\n<script>alert(1)</script>",
    );
    let o = r.cli(&["export", "--format", "md"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = stdout(&o);
    // Headings outside fenced blocks: exactly one per message, none from the forgery.
    let mut fence: Option<String> = None;
    let mut headings = Vec::new();
    for line in md.lines() {
        if fence.is_none() {
            assert!(!line.contains("<script>"), "raw HTML outside a fence: {md}");
        }
        match &fence {
            Some(f) if line == f => fence = None,
            Some(_) => {}
            None if line.starts_with("```") => {
                fence = Some(line.trim_end_matches("text").to_string());
            }
            None if line.starts_with("### #") => headings.push(line.to_string()),
            None => {}
        }
    }
    assert_eq!(headings.len(), r.all_messages().len(), "{md}");
    assert!(!headings.iter().any(|h| h.contains("#9999")), "{md}");
}

/// Finding 7: a public URL carrying shell syntax landed unquoted in every card.
#[test]
fn public_url_cannot_carry_shell_syntax() {
    let r = TestRoom::start("audit-url");
    for bad in [
        "https://x/'; touch PWNED; echo '",
        "http://localhost.evil.example",
        "https://x/$(id)",
        "https://x/a b",
    ] {
        let (s, v) = r.post("/public-url", Some(&r.token), &json!({"url": bad}));
        assert_eq!((s, code(&v)), (400, "invalid_url"), "{bad}: {v}");
    }
    let (s, v) = r.post(
        "/public-url",
        Some(&r.token),
        &json!({"url": "https://rooms.example.com/r"}),
    );
    assert_eq!(s, 200, "{v}");
    let bob = r.invite_http("bob", "agent");
    let card = r.request(Req::get("/card?participant=bob").token(&bob.token));
    assert!(card.text().contains("'https://rooms.example.com/r/join'"));
    assert!(!card.text().contains("PWNED"));
}

/// Finding 10: deleting the lock file let a second server in.
#[test]
fn a_deleted_lock_file_lets_no_second_server_in() {
    let r = TestRoom::start("audit-lock");
    std::fs::remove_file(r.home.room_dir("audit-lock").join("lock")).unwrap();
    let port = free_port();
    let second = Server::try_spawn(
        &r.home,
        port,
        &["--url", &format!("http://127.0.0.1:{port}")],
    );
    match second {
        Ok(_) => panic!("a second server started on a room whose lock file was deleted"),
        Err((_, err)) => assert!(err.contains("in use"), "{err}"),
    }
    r.say(&r.token, "the first server still writes");
}

/// Finding 11: `Host: [::1]evil` counted as loopback.
#[test]
fn bracketed_hosts_with_a_suffix_are_not_loopback() {
    let r = TestRoom::start("audit-host");
    for host in ["[::1]evil", "[::1]evil:80", "localhost.evil"] {
        let resp = r.request(Req::get("/status").token(&r.token).header("Host", host));
        assert_eq!(resp.status, 403, "{host}");
        assert_eq!(code(&resp.json()), "insecure_remote");
    }
}

/// Finding 11: a full disk while rewriting participants.json answered 500, not 507.
#[test]
fn a_full_disk_on_the_participants_file_is_507() {
    let r = TestRoom::start("audit-full");
    let lim = libc::rlimit {
        rlim_cur: 64,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit on our child with a valid rlimit; the old limit is not requested.
    let rc = unsafe {
        libc::prlimit(
            r.server.pid() as i32,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0);
    let (s, v) = r.post("/profile", Some(&r.token), &json!({"display_name": "Op"}));
    assert_eq!((s, code(&v)), (507, "room_log_full"), "{v}");
}

/// The card's reply example used message 12, which did not exist: it must run as printed.
#[test]
fn every_curl_line_of_a_card_runs_verbatim() {
    let r = TestRoom::start("audit-card");
    let bob = r.invite_http("bob", "agent");
    r.say(&r.token, "please review");
    let card = r
        .request(Req::get("/card?participant=bob").token(&bob.token))
        .text();
    // After the card's set-up step (it stores the token in HOME), with the text file the
    // line before writes.
    let agent = TempHome::new("audit-card-agent");
    let lines: Vec<&str> = card.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("reply_to=") && l.starts_with("curl "))
        .expect("a reply example");
    let setup = lines
        .iter()
        .find(|l| l.contains("umask 077"))
        .expect("a set-up step");
    let script = format!("{setup} && {} && {}", lines[at - 1], lines[at]);
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("HOME", &agent.root)
        .current_dir(&agent.root)
        .output()
        .expect("run the card's reply line");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from the reply line");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["message"]["from"], "bob");
}

/// Finding 11: `room join` took the token in argv; it reads it from stdin now.
#[test]
fn room_join_reads_the_invite_from_stdin() {
    let r = TestRoom::start("audit-stdin");
    let bob = r.invite_http("bob", "agent");
    let uri = bob.json["invite_uri"].as_str().unwrap().to_string();
    let home = TempHome::new("audit-stdin-bob");
    let mut child = command(&home, &["room", "join", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{uri}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["alias"], "bob");
    // The token alone on stdin, the rest as flags.
    let home2 = TempHome::new("audit-stdin-bob2");
    let mut child = command(
        &home2,
        &[
            "room", "join", &r.room, "--alias", "bob", "--token", "-", "--url", &r.url, "--json",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bob.token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Finding 3 (CLI side): `--summary` names only regular files within the size cap.
#[test]
fn handoff_summary_files_are_checked() {
    let r = TestRoom::start("audit-summary");
    r.invite_http("bob", "agent");
    let o = r.cli(&["handoff", "bob", "--summary", "/dev/zero"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    let big = r.home.root.join("big.md");
    std::fs::write(&big, "x".repeat(300 * 1024)).unwrap();
    let o = r.cli(&["handoff", "bob", "--summary", big.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("larger than"), "{}", stderr(&o));
}
