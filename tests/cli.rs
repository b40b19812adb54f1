//! The host CLI end to end: the real binary in a temp home, with and without a running
//! server, checked through its output, the HTTP API and the files it leaves.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Every file under `dir` with its bytes (empty if `dir` does not exist).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[track_caller]
fn assert_fails(o: &std::process::Output, what: &str) {
    assert!(
        !o.status.success(),
        "{what} should fail:\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        !stderr(o).trim().is_empty(),
        "{what} fails with a reason on stderr"
    );
}

// ---------------------------------------------------------------------------------------
// --version, --help

#[test]
fn version() {
    let home = TempHome::new("version");
    let o = cli(&home, &["--version"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("agentgather"), "{out}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    assert!(!home.home.exists(), "--version touches no home");
}

const LEAF_COMMANDS: &[&[&str]] = &[
    &[],
    &["up"],
    &["room", "start"],
    &["room", "serve"],
    &["room", "brief", "view"],
    &["room", "brief", "set"],
    &["room", "attendance", "view"],
    &["room", "attendance", "set"],
    &["room", "invite"],
    &["room", "invite-card"],
    &["room", "status"],
    &["room", "remove"],
    &["room", "close"],
    &["room", "dashboard"],
    &["room", "join"],
    &["room", "current"],
    &["room", "leave"],
    &["send"],
    &["reply"],
    &["messages"],
    &["read"],
    &["watch"],
    &["attend"],
    &["handoff"],
    &["export"],
    &["doctor"],
    &["instructions"],
];

const GROUP_COMMANDS: &[&[&str]] = &[&["room"], &["room", "brief"], &["room", "attendance"]];

fn help(home: &TempHome, cmd: &[&str]) -> String {
    let mut args = cmd.to_vec();
    args.push("--help");
    let o = cli(home, &args);
    assert!(
        o.status.success(),
        "{args:?} exits {:?}: {}",
        o.status,
        stderr(&o)
    );
    stdout(&o)
}

#[test]
fn help_on_every_command_has_an_example() {
    let home = TempHome::new("help");
    for cmd in LEAF_COMMANDS {
        let out = help(&home, cmd);
        assert!(out.contains("Usage"), "{cmd:?}: {out}");
        assert!(
            out.contains("Example"),
            "{cmd:?} --help has no example:\n{out}"
        );
    }
    for cmd in GROUP_COMMANDS {
        let out = help(&home, cmd);
        assert!(out.contains("Usage"), "{cmd:?}: {out}");
    }
    // The top level names the exit codes and the room subcommands.
    let top = help(&home, &[]);
    assert!(top.contains("Exit codes"), "{top}");
    let room = help(&home, &["room"]);
    for sub in [
        "start",
        "serve",
        "brief",
        "attendance",
        "invite",
        "invite-card",
        "status",
        "remove",
        "close",
        "dashboard",
    ] {
        assert!(room.contains(sub), "room --help lacks {sub}: {room}");
    }
    // `help` creates nothing.
    assert!(!home.home.exists(), "--help touches no home");
    // A usage error exits 2.
    let o = cli(&home, &["room", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = cli(&home, &["room", "attendance", "set", "--policy", "bogus"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn help_on_group_commands_has_an_example() {
    let home = TempHome::new("help-groups");
    for cmd in GROUP_COMMANDS {
        let out = help(&home, cmd);
        assert!(
            out.contains("Example"),
            "{cmd:?} --help has no example:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Validation before the disk

#[test]
fn invalid_room_ids_and_aliases_touch_nothing() {
    let home = TempHome::new("invalid-names");
    let long = "a".repeat(65);
    let bad_rooms = [
        "Bad", "a.b", "..", "../x", "a/b", "-a", "a-", "a b", "", "é", &long, "a\\b", ".hidden",
    ];
    for bad in bad_rooms {
        let o = cli(
            &home,
            &["room", "start", bad, "--url", "http://127.0.0.1:1"],
        );
        assert_fails(&o, &format!("room start {bad:?}"));
        let o = cli(&home, &["room", "serve", "--room", bad, "--port", "1"]);
        assert_fails(&o, &format!("room serve --room {bad:?}"));
        let o = cli(
            &home,
            &[
                "room",
                "join",
                bad,
                "--alias",
                "bob",
                "--token",
                "tgl_x",
                "--url",
                "http://127.0.0.1:1",
            ],
        );
        assert_fails(&o, &format!("room join {bad:?}"));
        let o = cli(&home, &["up", bad, "--port", "1"]);
        assert_fails(&o, &format!("up {bad:?}"));
    }
    let bad_aliases = ["Bad", "system", "a.b", "../x", "", "-x", "x y", &long];
    for bad in bad_aliases {
        let o = cli(
            &home,
            &[
                "room",
                "start",
                "fine",
                "--alias",
                bad,
                "--url",
                "http://127.0.0.1:1",
            ],
        );
        assert_fails(&o, &format!("room start --alias {bad:?}"));
    }
    assert!(
        snapshot(&home.home).is_empty(),
        "invalid names created files: {:?}",
        snapshot(&home.home).keys().collect::<Vec<_>>()
    );

    // With a room: bad invite aliases change nothing.
    let port = free_port();
    start_room(&home, "fine", port, &[]);
    let before = snapshot(&home.home);
    for bad in bad_aliases {
        let o = cli(&home, &["room", "invite", bad]);
        assert_fails(&o, &format!("room invite {bad:?}"));
    }
    // Bad --url, --ttl, --attendance on start: nothing created either.
    for args in [
        vec!["room", "start", "other", "--url", "ftp://x"],
        vec!["room", "start", "other", "--ttl", "soon"],
        vec!["room", "start", "other", "--ttl", "10s"],
        vec!["room", "start", "other", "--attendance", "whenever"],
    ] {
        let o = cli(&home, &args);
        assert_fails(&o, &format!("{args:?}"));
    }
    // A duplicate room is refused.
    let o = cli(
        &home,
        &["room", "start", "fine", "--url", "http://127.0.0.1:1"],
    );
    assert_fails(&o, "room start on an existing room");
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(
        snapshot(&home.home),
        before,
        "refused commands changed the home"
    );
}

#[test]
fn room_start_layout_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let home = TempHome::new("layout");
    let port = free_port();
    let v = start_room(&home, "layout", port, &["--attendance", "all-foreground"]);
    let token = v["token"].as_str().unwrap();
    let dir = home.room_dir("layout");
    for f in [
        "room.json",
        "participants.json",
        "brief.md",
        "messages.jsonl",
    ] {
        let p = dir.join(f);
        assert!(p.is_file(), "{f} missing");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} mode {mode:o}");
    }
    for d in [&home.home, &home.home.join("rooms"), &dir] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} mode {mode:o}", d.display());
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("brief.md")).unwrap(),
        DEFAULT_BRIEF
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("room.json")).unwrap()).unwrap();
    assert_eq!(meta["attendance_policy"], "all-foreground", "{meta}");
    assert_eq!(meta["brief_version"], 1);
    // The room directory holds hashes only.
    for (name, bytes) in snapshot(&dir) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(token),
            "{name} holds the raw host token"
        );
    }
    // The log opens with a system message.
    let lines = read_log_lines(&dir.join("messages.jsonl"));
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["type"], "system");
    // --brief-file works too.
    let f = home.root.join("brief.txt");
    std::fs::write(&f, "# From a file\nGoal: x").unwrap();
    let o = cli(
        &home,
        &[
            "room",
            "start",
            "from-file",
            "--brief-file",
            f.to_str().unwrap(),
            "--url",
            "http://127.0.0.1:1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(home.room_dir("from-file").join("brief.md")).unwrap(),
        "# From a file\nGoal: x"
    );
    // A brief over 16,000 characters is refused.
    let o = cli(
        &home,
        &[
            "room",
            "start",
            "too-long",
            "--brief",
            &"b".repeat(16_001),
            "--url",
            "http://127.0.0.1:1",
        ],
    );
    assert_fails(&o, "room start with a huge brief");
    assert!(!home.room_dir("too-long").exists());
}

// ---------------------------------------------------------------------------------------
// Host commands through the server and directly

#[test]
fn brief_set_through_the_server_and_directly() {
    let mut r = TestRoom::start("cli-brief");
    let bob = r.invite("bob", "agent");
    let v = r.cli_json(&[
        "room",
        "brief",
        "set",
        "--body",
        "Goal: via the server",
        "--json",
    ]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["brief"]["brief_version"], 2);
    let (s, b) = r.get("/brief", Some(&bob.token));
    assert_eq!(s, 200);
    assert_eq!(b["brief"]["body"], "Goal: via the server");
    assert_eq!(b["brief"]["brief_version"], 2);
    assert_eq!(b["brief"]["brief_updated_by"], "operator");
    let last = r.last_message();
    assert_eq!(last["type"], "system", "the server announced it: {last}");
    // From a file.
    let f = r.home.root.join("b.md");
    std::fs::write(&f, "Goal: from a file").unwrap();
    let v = r.cli_json(&[
        "room",
        "brief",
        "set",
        "--file",
        f.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["brief"]["brief_version"], 3);
    let v = r.cli_json(&["room", "brief", "view", "--json"]);
    assert_eq!(v["brief"]["body"], "Goal: from a file", "{v}");
    let o = r.cli(&["room", "brief", "view"]);
    assert!(stdout(&o).contains("Goal: from a file"), "{}", stdout(&o));
    // Too long: refused through the server, nothing changes.
    let o = r.cli(&["room", "brief", "set", "--body", &"b".repeat(16_001)]);
    assert_fails(&o, "a brief over the limit");

    // No server: the CLI writes the room itself.
    r.server.kill();
    let v = r.cli_json(&["room", "brief", "set", "--body", "Goal: direct", "--json"]);
    assert_eq!(v["brief"]["brief_version"], 4, "{v}");
    let v = r.cli_json(&["room", "brief", "view", "--json"]);
    assert_eq!(v["brief"]["body"], "Goal: direct");
    assert_eq!(
        std::fs::read_to_string(r.home.room_dir(&r.room).join("brief.md")).unwrap(),
        "Goal: direct"
    );
    read_log_lines(&r.log_path());
    r.restart();
    let (_, b) = r.get("/brief", Some(&bob.token));
    assert_eq!(b["brief"]["body"], "Goal: direct");
    assert_eq!(b["brief"]["brief_version"], 4);
    assert!(
        r.all_messages()
            .iter()
            .any(|m| m["type"] == "system" && m["text"].as_str().unwrap().contains("version 4")),
        "the direct change was logged too"
    );
    // A participant's home cannot set the brief.
    let guest = bob.join_home("cli-brief-guest", &[]);
    let o = cli(&guest, &["room", "brief", "set", "--body", "hijack"]);
    assert_fails(&o, "brief set by a participant");
    let (_, b) = r.get("/brief", Some(&bob.token));
    assert_eq!(b["brief"]["body"], "Goal: direct");
    // ...but can view it.
    let o = cli(&guest, &["room", "brief", "view", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Goal: direct"));
}

#[test]
fn attendance_set_and_view() {
    let mut r = TestRoom::start("cli-attendance");
    let v = r.cli_json(&["room", "attendance", "view", "--json"]);
    assert_eq!(v["policy"], "manual-ok", "{v}");
    let v = r.cli_json(&[
        "room",
        "attendance",
        "set",
        "--policy",
        "agents-foreground",
        "--json",
    ]);
    assert_eq!(v["policy"], "agents-foreground", "{v}");
    let (_, a) = r.get("/attendance", Some(&r.token));
    assert_eq!(a["policy"], "agents-foreground");
    let v = r.cli_json(&["room", "attendance", "view", "--json"]);
    assert_eq!(v["policy"], "agents-foreground");
    let o = r.cli(&["room", "attendance", "view"]);
    assert!(o.status.success());
    assert!(!stdout(&o).trim().is_empty());
    // Directly, with no server.
    r.server.kill();
    let v = r.cli_json(&[
        "room",
        "attendance",
        "set",
        "--policy",
        "host-directed",
        "--json",
    ]);
    assert_eq!(v["policy"], "host-directed");
    let v = r.cli_json(&["room", "attendance", "view", "--json"]);
    assert_eq!(v["policy"], "host-directed");
    r.restart();
    assert_eq!(r.status(&r.token)["attendance_policy"], "host-directed");
}

#[test]
fn invite_invite_card_status_remove_close() {
    let mut r = TestRoom::start("cli-host");
    let bob = r.invite("bob", "agent");
    for f in ["token", "card_command", "browser_url", "invite_uri"] {
        assert!(
            bob.json[f].is_string(),
            "invite --json lacks {f}: {}",
            bob.json
        );
    }
    assert_eq!(
        bob.json["browser_url"],
        format!("{}/#token={}", r.url, bob.token).as_str()
    );
    assert!(
        bob.json["invite_uri"]
            .as_str()
            .unwrap()
            .starts_with("agentgather://join?")
    );
    // The card command works as printed (curl-style URL against the server).
    let card_url = bob.json["card_command"]
        .as_str()
        .unwrap()
        .split('\'')
        .nth(1)
        .unwrap()
        .to_string();
    let path = card_url.strip_prefix(&r.url).unwrap();
    let resp = r.request(Req::get(path));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains(DEFAULT_BRIEF));
    // Text output names the commands too.
    let o = r.cli(&["room", "invite", "carol", "--kind", "human"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/#token="), "{}", stdout(&o));
    // A taken alias.
    let o = r.cli(&["room", "invite", "bob"]);
    assert_fails(&o, "inviting bob twice");

    // invite-card, through the server.
    let o = r.cli(&["room", "invite-card", "bob"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let card = stdout(&o);
    assert!(card.contains(&bob.token), "{card}");
    assert!(card.contains(DEFAULT_BRIEF), "{card}");
    let v = r.cli_json(&["room", "invite-card", "bob", "--json"]);
    assert_eq!(v["alias"], "bob");
    assert!(v["card"].as_str().unwrap().contains(&bob.token));
    let o = r.cli(&["room", "invite-card", "nobody"]);
    assert_fails(&o, "invite-card for an unknown alias");

    // status.
    let v = r.cli_json(&["room", "status", "--json"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["room"], "cli-host");
    assert_eq!(v["me"], "operator");
    assert_eq!(v["is_host"], true);
    let aliases: Vec<&str> = v["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, vec!["operator", "bob", "carol"]);
    let o = r.cli(&["room", "status"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("bob") && text.contains("carol"), "{text}");
    assert!(!text.contains(&bob.token), "status never prints tokens");

    // remove.
    let v = r.cli_json(&["room", "remove", "bob", "--json"]);
    assert_eq!(v["removed"], "bob", "{v}");
    assert_error(
        r.post(
            "/messages",
            Some(&bob.token),
            &serde_json::json!({"text": "hi"}),
        ),
        410,
        "participant_removed",
    );
    let o = r.cli(&["room", "remove", "bob"]);
    assert_fails(&o, "removing bob twice");
    let o = r.cli(&["room", "remove", "operator"]);
    assert_fails(&o, "removing the host");

    // Without a server: invite, invite-card and status work directly from the files.
    r.server.kill();
    let dave = r.invite("dave", "agent");
    let o = r.cli(&["room", "invite-card", "dave"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&dave.token));
    let v = r.cli_json(&["room", "status", "--json"]);
    assert!(
        v["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["alias"] == "dave"),
        "status read from the files: {v}"
    );
    r.restart();
    assert_eq!(
        r.status(&dave.token)["me"],
        "dave",
        "a direct invite works once served"
    );

    // close.
    let v = r.cli_json(&["room", "close", "--json"]);
    assert_eq!(v["room_status"], "closed", "{v}");
    assert_eq!(r.status(&r.token)["room_status"], "closed");
    assert_error(
        r.post(
            "/messages",
            Some(&r.token),
            &serde_json::json!({"text": "late"}),
        ),
        403,
        "room_closed",
    );
    // Sending into a closed room exits 6.
    let o = r.cli(&["send", "dave", "too late"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    // Closing again is fine.
    let o = r.cli(&["room", "close"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn close_directly_without_a_server() {
    let mut r = TestRoom::start("cli-close-direct");
    r.server.kill();
    let v = r.cli_json(&["room", "close", "--json"]);
    assert_eq!(v["room_status"], "closed");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(r.home.room_dir(&r.room).join("room.json")).unwrap())
            .unwrap();
    assert_eq!(meta["status"], "closed");
    r.restart();
    assert_eq!(r.status(&r.token)["room_status"], "closed");
    let (_, w) = r.get(
        "/wait?participant=operator&since_id=0&timeout_ms=5000",
        Some(&r.token),
    );
    assert_eq!(w["keep_waiting"], false);
}

#[test]
fn export_never_changes_the_log() {
    let r = TestRoom::start("cli-export");
    let bob = r.invite("bob", "agent");
    r.say(&bob.token, "a line for the export");
    r.say(&r.token, "and a reply");
    // Let the server flush read receipts etc.; the log is what must not change.
    let log_before = std::fs::read(r.log_path()).unwrap();
    let o = r.cli(&["export", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("export --format json is JSON");
    assert!(v["version"].is_u64(), "export has a version: {v}");
    assert_eq!(v["room"], "cli-export");
    let msgs = v["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["text"] == "a line for the export"));
    assert_eq!(msgs.len(), r.all_messages().len());
    assert!(
        !o.stdout.windows(4).any(|w| w == b"tgl_"),
        "no tokens in an export"
    );
    // Markdown to a file.
    let out = r.home.root.join("room.md");
    let o = r.cli(&["export", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("a line for the export"), "{md}");
    assert!(md.contains(DEFAULT_BRIEF), "{md}");
    let o = r.cli(&["export", "--format", "xml"]);
    assert_fails(&o, "export --format xml");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read(r.log_path()).unwrap(),
        log_before,
        "export changed messages.jsonl"
    );
    // And with no server running.
    let mut r = r;
    r.server.kill();
    let o = r.cli(&["export", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v2: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v2["messages"], v["messages"]);
    assert_eq!(std::fs::read(r.log_path()).unwrap(), log_before);
}

#[test]
fn room_start_can_name_the_host_for_the_browser() {
    let r = TestRoom::start_with("named-host", &["--display-name", "Ada Host"]);
    assert_eq!(r.roster_entry("operator")["display_name"], "Ada Host");
    let (s, v) = r.get("/profile", Some(&r.token));
    assert_eq!(
        (s, &v["display_name"]),
        (200, &serde_json::json!("Ada Host"))
    );
    // A bad name is refused before anything is created.
    let home = TempHome::new("bad-display-name");
    let o = cli(&home, &["room", "start", "x", "--display-name", "a\u{7}b"]);
    assert_fails(&o, "a display name with a control character");
    assert!(!home.home.join("rooms").join("x").exists());
}

/// Runs `up --port PORT [extra]` until its banner has printed the invite lines; returns
/// the running child and the banner.
fn run_up(home: &TempHome, port: u16, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let port_s = port.to_string();
    let mut args = vec!["up", "--port", &port_s];
    args.extend_from_slice(extra);
    let mut child = command(home, &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn up");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read up's stdout");
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Set the goal") {
            break;
        }
    }
    // Keep reading, so a later line never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    // The banner prints before the port opens: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "up did not serve: {banner}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, banner)
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait for up");
    assert!(status.success(), "up exits 0 on SIGTERM: {status}");
}

/// The line after the one containing `label`, trimmed.
fn line_after(banner: &str, label: &str) -> String {
    let mut lines = banner.lines();
    lines.find(|l| l.contains(label));
    lines
        .next()
        .unwrap_or_else(|| panic!("no line after {label:?} in:\n{banner}"))
        .trim()
        .to_string()
}

#[test]
fn up_serves_and_prints_a_ready_invite_once() {
    let home = TempHome::new("up");
    let port = free_port();
    let (child, banner) = run_up(&home, port, &[]);
    let browser = line_after(&banner, "Your browser link");
    assert!(
        browser.starts_with(&format!("http://127.0.0.1:{port}/#token=tgl_")),
        "{banner}"
    );
    let card_cmd = line_after(&banner, "Invite an agent");
    assert!(card_cmd.starts_with("curl "), "{banner}");
    // The printed command is a working Attend Card for `agent`.
    let url = card_cmd
        .split('\'')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted URL in {card_cmd}"));
    let path = url
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("card URL {url} is not on the room's port"));
    let card = Req::get(path).send(port);
    assert_eq!(card.status, 200, "{}", card.text());
    assert!(card.text().contains("`agent`"), "{}", card.text());
    stop(child);

    // Again: the same invite, not a second participant; a named one is added once.
    let (child, again) = run_up(&home, port, &[]);
    assert_eq!(line_after(&again, "Invite an agent"), card_cmd);
    stop(child);
    let (child, named) = run_up(&home, port, &["--invite", "reviewer"]);
    assert!(
        line_after(&named, "Invite an agent").contains("participant=reviewer"),
        "{named}"
    );
    let status = cli_json(&home, &["room", "status", "--json"]);
    let aliases: Vec<&str> = status["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases.len(), 3, "{aliases:?}");
    assert!(aliases.contains(&"agent") && aliases.contains(&"reviewer"));
    stop(child);

    // On an existing room, --display-name renames the host before serving.
    let (child, _) = run_up(&home, port, &["--display-name", "Ada Lovelace"]);
    let host = cli_json(&home, &["room", "status", "--json"])["participants"][0].clone();
    assert_eq!(host["display_name"], "Ada Lovelace", "{host}");
    stop(child);

    // Bad --invite values, and an --alias the existing room's host does not have, fail
    // before anything is printed or served.
    let port_s = free_port().to_string();
    for bad in [
        &["--invite", "Not An Alias"][..],
        &["--invite", aliases[0]],
        &["--alias", "someone-else"],
    ] {
        let mut args = vec!["up", "--port", &port_s];
        args.extend_from_slice(bad);
        let o = cli(&home, &args);
        assert_fails(&o, &format!("up {bad:?}"));
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    }
}

#[test]
fn a_repeated_json_flag_is_harmless() {
    let home = TempHome::new("json-twice");
    let v = cli_json(&home, &["instructions", "--json", "--json"]);
    assert!(
        v["instructions"]
            .as_str()
            .is_some_and(|t| t.contains("Agent Gather")),
        "{v}"
    );
}

#[test]
fn human_invites_are_browser_first() {
    let r = TestRoom::start("cli-human-invite");
    let o = r.cli(&["room", "invite", "alice", "--kind", "human"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let link = out.find("/#token=").expect("a browser link");
    let card = out
        .find("/card?participant=alice")
        .expect("the card command");
    assert!(link < card, "the browser link comes first: {out}");
    // The human's card leads with the link and holds no curl recipe.
    let v = r.cli_json(&["room", "invite-card", "alice", "--json"]);
    let text = v["card"].as_str().unwrap();
    assert!(text.contains("/#token="), "{text}");
    assert!(!text.contains("curl"), "{text}");
    // Agents keep the command card first.
    let o = r.cli(&["room", "invite", "bot"]);
    let out = stdout(&o);
    assert!(out.find("/card?participant=bot").unwrap() < out.find("/#token=").unwrap());
}
