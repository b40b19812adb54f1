//! SPEC §13 claims end to end against the real binary on loopback: conflicts, bad paths,
//! release and renew rules, the log rows, leave/remove/close ending claims, the rebuild
//! after a restart, the CLI and the git pre-commit guard in a real repository.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn claim(r: &TestRoom, token: &str, body: Value) -> (u16, Value) {
    r.post("/claims", Some(token), &body)
}

fn claimed(r: &TestRoom, token: &str, body: Value) -> Value {
    let (s, v) = claim(r, token, body);
    assert_eq!(s, 201, "{v}");
    v
}

fn live_ids(r: &TestRoom, token: &str, query: &str) -> Vec<u64> {
    let (s, v) = r.get(&format!("/claims{query}"), Some(token));
    assert_eq!(s, 200, "{v}");
    v["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn conflicts_exclusive_shared_and_disjoint() {
    let r = TestRoom::start("claims-conflict");
    let bob = r.invite_http("bob", "agent");
    let cat = r.invite_http("cat", "agent");

    let a = claimed(
        &r,
        &bob.token,
        json!({"paths": ["src/web/**"], "ttl": "30m", "note": "reworking the rail"}),
    );
    let c = &a["claim"];
    let id = c["id"].as_u64().unwrap();
    assert_eq!(c["by"], "bob");
    assert_eq!(c["paths"], json!(["src/web/**"]));
    assert_eq!(c["exclusive"], true);
    assert_eq!(c["note"], "reworking the rail");
    assert!(c["expires_at"].as_str().unwrap().ends_with('Z'), "{c}");
    // The claim is a message of the log, and its id is the claim's.
    assert_eq!(a["message"]["type"], "claim");
    assert_eq!(a["message"]["id"], id);
    assert_eq!(a["message"]["claim"]["paths"], json!(["src/web/**"]));

    // Exclusive vs exclusive: 409 naming the holder, what they hold and until when.
    let (s, v) = claim(&r, &cat.token, json!({"paths": ["src/web/room.js"]}));
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"], "claim_conflict");
    assert!(v["message"].as_str().unwrap().contains("bob"), "{v}");
    let conflicts = v["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["id"], id);
    assert_eq!(conflicts[0]["by"], "bob");
    assert_eq!(conflicts[0]["paths"], json!(["src/web/**"]));
    assert_eq!(conflicts[0]["expires_at"], c["expires_at"]);
    // Shared vs exclusive conflicts too; nothing was stored by either refusal.
    let (s, v) = claim(
        &r,
        &cat.token,
        json!({"paths": ["src/**/*.js"], "exclusive": false}),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("claim_conflict")),
        "{v}"
    );
    assert_eq!(live_ids(&r, &cat.token, ""), vec![id]);

    // Disjoint globs pass; so does a holder's own overlapping claim.
    claimed(
        &r,
        &cat.token,
        json!({"paths": ["src/server/**", "docs/*.md"]}),
    );
    claimed(&r, &bob.token, json!({"paths": ["src/web/room.css"]}));
    // Shared vs shared passes; exclusive over a shared one conflicts.
    let sh = claimed(
        &r,
        &cat.token,
        json!({"paths": ["README.md"], "exclusive": false}),
    );
    claimed(
        &r,
        &bob.token,
        json!({"paths": ["README.md"], "exclusive": false}),
    );
    let (s, v) = claim(&r, &r.token, json!({"paths": ["*.md"]}));
    assert_eq!(s, 409, "{v}");
    let by: Vec<&str> = v["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["by"].as_str().unwrap())
        .collect();
    assert!(by.contains(&"cat") && by.contains(&"bob"), "{v}");
    assert!(
        v["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == sh["claim"]["id"]),
        "{v}"
    );

    // GET /claims?path= lists only the claims overlapping the path.
    assert_eq!(live_ids(&r, &r.token, "?path=src/web/room.js"), vec![id]);
    assert_eq!(
        live_ids(&r, &r.token, "?path=src/web").len(),
        2,
        "a directory: what is under it"
    );
    assert!(live_ids(&r, &r.token, "?path=Cargo.toml").is_empty());
}

/// The attack: patterns that are expensive to compare (300 characters of alternating `*`,
/// the most a claim may hold) against a live claim of the same shape. Compared exactly, each
/// of the 2,500 pairs fills a 300×300 table under the room's lock; the overlap budget
/// instead answers "unsure" once it is spent, which counts as overlapping: a prompt 409,
/// never a room held for seconds.
#[test]
fn hostile_patterns_cannot_hold_the_room() {
    let r = TestRoom::start("claims-hostile");
    let bob = r.invite_http("bob", "agent");
    let cat = r.invite_http("cat", "agent");
    let paths = |end: char| -> Vec<String> {
        (0..50)
            .map(|i| format!("{}{end}{i}", "*a".repeat(140)))
            .collect()
    };
    let held = claimed(&r, &bob.token, json!({"paths": paths('x')}));
    // Exactly these are disjoint (one segment ending in x… against one ending in y…).
    let (s, v) = claim(&r, &cat.token, json!({"paths": paths('y')}));
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["conflicts"][0]["id"], held["claim"]["id"], "{v}");
    // The room still answers everyone.
    r.say(&r.token, "still here");
}

#[test]
fn bad_paths_and_bodies_are_400() {
    let r = TestRoom::start("claims-bad");
    for (body, code) in [
        (json!({"paths": ["../etc/passwd"]}), "invalid_path"),
        (json!({"paths": ["src/../../x"]}), "invalid_path"),
        (json!({"paths": ["/etc/passwd"]}), "invalid_path"),
        (json!({"paths": [""]}), "invalid_path"),
        (json!({"paths": []}), "invalid_path"),
        (json!({"paths": ["ok", "  "]}), "invalid_path"),
        (json!({"paths": ["a"], "ttl": 10}), "invalid_ttl"),
        (json!({"paths": ["a"], "ttl": "9h"}), "invalid_ttl"),
        (json!({"paths": "a"}), "invalid_body"),
        (
            json!({"paths": ["a"], "note": "n".repeat(201)}),
            "invalid_body",
        ),
    ] {
        let (s, v) = claim(&r, &r.token, body.clone());
        assert_eq!(s, 400, "{body} -> {v}");
        assert_eq!(v["error"], code, "{body} -> {v}");
        assert_eq!(v["ok"], false);
    }
    let (s, v) = r.get("/claims?path=../x", Some(&r.token));
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_path")), "{v}");
    // Nothing was appended by any refusal.
    assert!(
        r.all_messages().iter().all(|m| m["type"] != "claim"),
        "no claim rows"
    );
    let (s, _) = r.post("/claims", None, &json!({"paths": ["a"]}));
    assert_eq!(s, 401);
    // A client cannot forge a claim row through POST /messages.
    let (s, v) = r.post(
        "/messages",
        Some(&r.token),
        &json!({"text": "x", "type": "claim"}),
    );
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_type")), "{v}");
}

#[test]
fn release_and_renew_by_holder_or_host_only() {
    let r = TestRoom::start("claims-release");
    let bob = r.invite_http("bob", "agent");
    let cat = r.invite_http("cat", "agent");
    let id = claimed(&r, &bob.token, json!({"paths": ["a/**"], "ttl": 120}))["claim"]["id"]
        .as_u64()
        .unwrap();

    // Another participant may neither renew nor release it.
    for what in ["renew", "release"] {
        let (s, v) = r.post(
            &format!("/claims/{id}/{what}"),
            Some(&cat.token),
            &json!({"ttl": "1h"}),
        );
        assert_eq!((s, v["error"].as_str()), (403, Some("forbidden")), "{v}");
    }
    // Unknown ids are 404.
    for path in ["/claims/999/release", "/claims/abc/renew"] {
        let (s, v) = r.post(path, Some(&bob.token), &json!({}));
        assert_eq!(
            (s, v["error"].as_str()),
            (404, Some("claim_not_found")),
            "{v}"
        );
    }
    // The holder renews: a claim_update with the new time.
    let (s, v) = r.post(
        &format!("/claims/{id}/renew"),
        Some(&bob.token),
        &json!({"ttl": "2h"}),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["type"], "claim_update");
    assert_eq!(v["message"]["claim_id"], id);
    assert_eq!(v["message"]["claim_update"]["action"], "renewed");
    assert_eq!(
        v["message"]["claim_update"]["expires_at"],
        v["claim"]["expires_at"]
    );
    let (s, v) = r.post(
        &format!("/claims/{id}/renew"),
        Some(&bob.token),
        &json!({"ttl": "10h"}),
    );
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_ttl")), "{v}");
    // The host may release anyone's claim; after that it is gone (404 to release again).
    let (s, v) = r.post(&format!("/claims/{id}/release"), Some(&r.token), &json!({}));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["from"], "operator");
    assert_eq!(v["message"]["claim_update"]["action"], "released");
    assert!(live_ids(&r, &bob.token, "").is_empty());
    let (s, v) = r.post(
        &format!("/claims/{id}/release"),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("claim_not_found")),
        "{v}"
    );
    // A released claim no longer conflicts.
    claimed(&r, &cat.token, json!({"paths": ["a/b.rs"]}));
}

#[test]
fn leave_remove_and_close_end_claims_and_a_restart_keeps_them() {
    let mut r = TestRoom::start("claims-end");
    let bob = r.invite_http("bob", "agent");
    let cat = r.invite_http("cat", "agent");
    let dan = r.invite_http("dan", "agent");
    let b = claimed(&r, &bob.token, json!({"paths": ["b/**"]}))["claim"]["id"].clone();
    let c = claimed(&r, &cat.token, json!({"paths": ["c/**"]}))["claim"]["id"].clone();
    let d = claimed(&r, &dan.token, json!({"paths": ["d/**"]}))["claim"]["id"].clone();

    // Live claims are rebuilt from the log after a restart.
    r.restart();
    assert_eq!(live_ids(&r, &r.token, "").len(), 3);

    // Leaving ends the holder's claims with a claim_update row.
    let (s, _) = r.post("/leave", Some(&bob.token), &json!({}));
    assert_eq!(s, 200);
    let ended = |id: &Value| {
        r.all_messages().into_iter().find(|m| {
            m["type"] == "claim_update"
                && m["claim_id"] == *id
                && m["claim_update"]["action"] == "ended"
        })
    };
    let row = ended(&b).expect("an ended row for bob's claim");
    assert_eq!(row["from"], "system");
    assert!(row["text"].as_str().unwrap().contains("bob left"), "{row}");
    // Removal ends them too.
    let (s, v) = r.post("/remove", Some(&r.token), &json!({"alias": "cat"}));
    assert_eq!(s, 200, "{v}");
    assert!(ended(&c).is_some());
    let left = live_ids(&r, &r.token, "");
    assert_eq!(left, vec![d.as_u64().unwrap()]);
    // What ended stays ended after a restart.
    r.restart();
    assert_eq!(live_ids(&r, &r.token, ""), vec![d.as_u64().unwrap()]);
    // Closing the room ends every claim.
    let (s, _) = r.post("/close", Some(&r.token), &json!({}));
    assert_eq!(s, 200);
    assert!(live_ids(&r, &r.token, "").is_empty());
    let (s, v) = claim(&r, &dan.token, json!({"paths": ["e"]}));
    assert_eq!((s, v["error"].as_str()), (403, Some("room_closed")), "{v}");
}

#[test]
fn claims_are_under_the_write_budget() {
    let r = TestRoom::start("claims-budget");
    let bob = r.invite_http("bob", "agent");
    let mut limited = None;
    for i in 0..40 {
        let (s, v) = claim(&r, &bob.token, json!({"paths": [format!("f{i}")]}));
        if s == 429 {
            limited = Some((i, v));
            break;
        }
        assert_eq!(s, 201, "{v}");
    }
    let (i, v) = limited.expect("a 429 within 40 claims a minute");
    assert_eq!(v["error"], "rate_limited", "{v}");
    assert!(i >= 10, "the budget allows ordinary use: refused after {i}");
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn repo(home: &TempHome) -> std::path::PathBuf {
    let dir = home.root.join("repo");
    std::fs::create_dir_all(dir.join("src/web")).unwrap();
    git(&dir, &["init", "-q"]);
    git(&dir, &["config", "user.email", "t@example.com"]);
    git(&dir, &["config", "user.name", "t"]);
    std::fs::write(dir.join("src/web/room.js"), "x\n").unwrap();
    std::fs::write(dir.join("notes.md"), "y\n").unwrap();
    git(&dir, &["add", "."]);
    dir
}

fn guard(home: &TempHome, dir: &Path, args: &[&str]) -> std::process::Output {
    command(home, &[&["guard"][..], args].concat())
        .current_dir(dir)
        .output()
        .expect("run guard")
}

#[test]
fn cli_claim_claims_release_and_the_conflict_advice() {
    let r = TestRoom::start("claims-cli");
    let bob = r.invite("bob", "agent");
    let bob_home = bob.join_home("claims-cli-bob", &[]);
    let cat = r.invite("cat", "agent");
    let cat_home = cat.join_home("claims-cli-cat", &[]);

    let v = cli_json(
        &bob_home,
        &[
            "claim",
            "src/web/**",
            "docs/x.md",
            "--ttl",
            "2h",
            "--note",
            "rail",
            "--json",
        ],
    );
    let id = v["claim"]["id"].as_u64().unwrap();
    assert_eq!(v["claim"]["paths"], json!(["src/web/**", "docs/x.md"]));
    let o = cli(&cat_home, &["claim", "src/web/room.js"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("bob") && err.contains("src/web/**"), "{err}");
    assert!(
        err.contains("agentgather send '@bob"),
        "suggests asking: {err}"
    );
    let o = cli(&cat_home, &["claim", "src/web/room.js", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"], "claim_conflict");
    assert_eq!(v["conflicts"][0]["id"], id);
    let o = cli(&cat_home, &["claim", "../x"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(".."), "{}", stderr(&o));

    let list = cli_json(&cat_home, &["claims", "src/web/a.js", "--json"]);
    assert_eq!(list["claims"][0]["by"], "bob");
    let text = stdout(&cli(&cat_home, &["claims"]));
    assert!(text.contains("bob") && text.contains("rail"), "{text}");
    let o = cli(&cat_home, &["release", &id.to_string()]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "another's claim is forbidden: {}",
        stderr(&o)
    );
    cli_json(&bob_home, &["claim", "more/**", "--shared", "--json"]);
    let v = cli_json(&bob_home, &["release", "--all", "--json"]);
    assert_eq!(v["released"].as_array().unwrap().len(), 2, "{v}");
    assert!(
        cli_json(&cat_home, &["claims", "--json"])["claims"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn guard_warns_strict_refuses_and_a_missing_room_allows() {
    let r = TestRoom::start("claims-guard");
    let bob = r.invite_http("bob", "agent");
    let cat = r.invite("cat", "agent");
    let cat_home = cat.join_home("claims-guard-cat", &[]);
    let dir = repo(&cat_home);

    // No claims: allowed, silently.
    let o = guard(&cat_home, &dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    claimed(
        &r,
        &bob.token,
        json!({"paths": ["src/web/**"], "note": "rail"}),
    );
    // Another's exclusive claim on a staged path: a warning naming holder and path, exit 0.
    let o = guard(&cat_home, &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("src/web/room.js is claimed by bob"), "{err}");
    assert!(!err.contains("notes.md"), "{err}");
    // --strict refuses the commit.
    let o = guard(&cat_home, &dir, &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("claimed by bob"));
    // The committer's own claim is no hit.
    claimed(&r, &cat.token, json!({"paths": ["notes.md"]}));
    let o = guard(&cat_home, &dir, &[]);
    assert!(!stderr(&o).contains("notes.md"), "{}", stderr(&o));

    // No room joined in this home: allowed with a warning.
    let lone = TempHome::new("claims-guard-lone");
    let o = guard(&lone, &dir, &["--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("allowing the commit"), "{}", stderr(&o));
    // The server down: allowed with a warning, even --strict.
    let mut r = r;
    r.server.kill();
    let o = guard(&cat_home, &dir, &["--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot check claims"), "{}", stderr(&o));
}

#[test]
fn guard_install_keeps_an_existing_hook_and_runs_in_a_real_commit() {
    let r = TestRoom::start("claims-hook");
    let bob = r.invite_http("bob", "agent");
    let cat = r.invite("cat", "agent");
    let cat_home = cat.join_home("claims-hook-cat", &[]);
    let dir = repo(&cat_home);
    let hooks = dir.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let marker = dir.join("old-hook-ran");
    std::fs::write(
        hooks.join("pre-commit"),
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        hooks.join("pre-commit"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let o = guard(&cat_home, &dir, &["--install", "--strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hook = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    assert!(hook.contains("guard --strict"), "{hook}");
    assert!(
        std::fs::read_to_string(hooks.join("pre-commit.before-agentgather"))
            .unwrap()
            .contains("old-hook-ran")
    );
    // Installing again keeps the chain as it is.
    let o = guard(&cat_home, &dir, &["--install", "--strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(hooks.join("pre-commit.before-agentgather"))
            .unwrap()
            .contains("old-hook-ran")
    );

    // A real commit runs both: the old hook, then the guard, which refuses (strict).
    claimed(&r, &bob.token, json!({"paths": ["src/**"]}));
    let commit = |msg: &str| {
        Command::new("git")
            .args(["commit", "-q", "-m", msg])
            .current_dir(&dir)
            .env("AGENTGATHER_HOME", &cat_home.home)
            .env("HOME", &cat_home.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap()
    };
    let o = commit("first");
    assert!(!o.status.success(), "strict guard refuses");
    assert!(marker.exists(), "the existing hook ran first");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("src/web/room.js is claimed by bob"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Released: the commit goes through.
    let (s, _) = r.post("/claims/0/release", Some(&bob.token), &json!({}));
    assert_eq!(s, 404);
    let v = cli_json(&cat_home, &["claims", "--json"]);
    let id = v["claims"][0]["id"].as_u64().unwrap();
    let (s, v) = r.post(
        &format!("/claims/{id}/release"),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(s, 201, "{v}");
    let o = commit("second");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
