//! What a newcomer opens first: the page at `/`, the card (by bearer and by query token)
//! and the commands it prints, and `/join`.

use serde_json::{Value, json};

use crate::common::*;
use crate::wait_path;

// ---------------------------------------------------------------------------------------
// GET /, /card, /join

#[test]
fn index_is_a_shell_with_csp_and_no_secrets() {
    let r = TestRoom::start("index-shell");
    let resp = r.request(Req::get("/"));
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        resp.headers
    );
    let csp = resp
        .header("content-security-policy")
        .expect("a Content-Security-Policy header");
    assert!(csp.contains("default-src"), "{csp}");
    assert!(csp.contains("script-src"), "{csp}");
    assert!(!csp.contains("'unsafe-inline'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    let html = resp.text();
    assert!(html.to_lowercase().contains("<html"), "{html}");
    assert!(!html.contains("tgl_"), "the shell must not embed a token");
    assert!(!html.contains(&r.token));
    assert!(
        !html.contains(DEFAULT_BRIEF),
        "the shell must hold no room data"
    );
    // Its assets are served without a token too.
    for asset in ["/assets/room.js", "/assets/room.css"] {
        let a = r.request(Req::get(asset));
        assert_eq!(a.status, 200, "{asset}");
        assert!(!a.text().contains(&r.token));
    }
    assert_error_resp(&r.request(Req::get("/assets/nope.js")), 404, "not_found");
}

#[test]
fn card_by_bearer_and_by_query_token() {
    let r = TestRoom::start("card");
    let bob = r.invite("bob", "agent");
    // Bearer.
    let resp = r.request(Req::get("/card?participant=bob").token(&bob.token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        resp.headers
    );
    let card = resp.text();
    assert!(
        card.contains(DEFAULT_BRIEF),
        "the card carries the brief:\n{card}"
    );
    assert!(card.contains("/wait"), "{card}");
    assert!(card.contains("/join"), "{card}");
    assert!(card.contains("/messages"), "{card}");
    assert!(
        card.contains(&bob.token),
        "the card holds its owner's commands"
    );
    assert!(!card.contains(&r.token), "never the host's token");
    // ?token= (the onboarding URL from card_command).
    let path = format!("/card?participant=bob&token={}", bob.token);
    let resp = r.request(Req::get(&path));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains(DEFAULT_BRIEF));
    // The card_command printed by `room invite` points at the same URL.
    let cmd = bob.json["card_command"].as_str().unwrap();
    assert!(
        cmd.contains(&format!("{}/card?participant=bob&token=", r.url)),
        "{cmd}"
    );
    // Without participant it is still the token's own card.
    let resp = r.request(Req::get("/card").token(&bob.token));
    assert_eq!(resp.status, 200);
    // Participant mismatch: bob's token, alice's card.
    r.invite("alice", "agent");
    assert_error_resp(
        &r.request(Req::get("/card?participant=alice").token(&bob.token)),
        403,
        "participant_mismatch",
    );
    let path = format!("/card?participant=alice&token={}", bob.token);
    assert_error_resp(&r.request(Req::get(&path)), 403, "participant_mismatch");
    // No or a wrong token.
    assert_error_resp(
        &r.request(Req::get("/card?participant=bob")),
        401,
        "unauthorized",
    );
    assert_error_resp(
        &r.request(Req::get("/card?participant=bob&token=tgl_nope")),
        401,
        "unauthorized",
    );
}

#[test]
fn join_marks_attending_and_posts_system_message() {
    let r = TestRoom::start("join");
    let bob = r.invite("bob", "agent");
    let (s, v) = r.post("/join", Some(&bob.token), &json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["participant"], "bob");
    assert_eq!(v["attention"], "attending");
    let last = r.last_message();
    assert_eq!(last["type"], "system", "{last}");
    assert_eq!(last["from"], "system", "{last}");
    assert!(
        last["text"].as_str().unwrap().contains("bob joined"),
        "{last}"
    );
    let p = r.roster_entry("bob");
    assert_eq!(p["attention"], "attending", "{p}");
    assert!(p["last_seen_age_ms"].as_u64().is_some(), "{p}");
    // An empty body (no JSON at all) is fine too.
    let resp = r.request(Req::post("/join").token(&bob.token));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_error(r.post("/join", None, &json!({})), 401, "unauthorized");
}

#[test]
fn card_commands_work_as_printed() {
    // The card is the no-install interface: its curl lines must run as they are.
    if !curl_or_skip("card_commands_work_as_printed") {
        return;
    }
    let r = TestRoom::start("card-curl");
    let bob = r.invite("bob", "agent");
    // The card_command itself, through a shell.
    let card_cmd = bob.json["card_command"].as_str().unwrap();
    let o = std::process::Command::new("sh")
        .args(["-c", card_cmd])
        .output()
        .unwrap();
    assert!(o.status.success());
    let card = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(card.contains(DEFAULT_BRIEF), "{card}");
    assert!(
        !card.contains("\"from\""),
        "the card never tells a client to send from"
    );
    // SPEC §10: the curl section's lines run in order, verbatim, in a shell whose HOME
    // is the agent's (the first line stores the token there; the others read it).
    let section = &card[card.find("## Take part with curl").unwrap()..];
    let section = &section[..section[3..].find("\n## ").unwrap() + 3];
    let commands: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(str::trim)
        .collect();
    assert!(commands.len() >= 8, "{card}");
    assert!(
        commands[0].contains("umask 077"),
        "the set-up comes first: {card}"
    );
    let agent = TempHome::new("card-curl-agent");
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .env("HOME", &agent.root)
            .current_dir(&agent.root)
            .output()
            .unwrap()
    };
    let mut ran = 0;
    for cmd in &commands {
        // Leave runs last.
        if cmd.contains("/leave") {
            continue;
        }
        let cmd = cmd.replace("/wait?", "/wait?timeout_ms=500&");
        let o = sh(&cmd);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        if !cmd.starts_with("curl ") {
            continue;
        }
        assert!(
            !cmd.contains(&bob.token),
            "only the set-up carries the token: {cmd}"
        );
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{cmd} printed no JSON ({e}): {}", stdout(&o)));
        assert_eq!(v["ok"], true, "{cmd} -> {v}");
        ran += 1;
    }
    assert!(ran >= 6);
    let msgs = r.all_messages();
    assert!(
        msgs.iter()
            .any(|m| m["from"] == "bob" && m["type"] != "system")
    );
    assert!(
        msgs.iter()
            .any(|m| m["text"].as_str().unwrap().contains("bob joined"))
    );
    let leave = commands.iter().find(|c| c.contains("/leave")).unwrap();
    let o = sh(leave);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["attention"], "away");
    // The wait's next_cmd runs as printed too.
    let (_, w) = r.get(&wait_path("bob", 0, 500), Some(&bob.token));
    let next = w["next_cmd"]
        .as_str()
        .unwrap()
        .replace("/wait?", "/wait?timeout_ms=300&");
    let o = sh(&next);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["heartbeat"], true, "{v}");
}
