//! A newcomer's first hour, on the real binary: the host's commands with no server, a
//! hosting home that an invite's join line must not silently turn into someone else,
//! `up` on a closed room, typos answered with the roster, help that describes every
//! argument, completions that bash loads and a man page that `man` renders.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

#[track_caller]
fn fails(o: &std::process::Output, code: i32, want: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit {:?}, want {code}:\nstdout: {}\nstderr: {err}",
        o.status,
        stdout(o)
    );
    assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    err
}

#[track_caller]
fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

// ---------------------------------------------------------------------------------------
// Point 3: the host's commands work with no server.

#[test]
fn host_reads_and_sends_work_without_a_server() {
    let home = TempHome::new("offline-host");
    start_room(&home, "quiet", free_port(), &[]);
    ok(&cli(&home, &["room", "invite", "reviewer", "--json"]));

    // A send is one line, and lands in the log.
    let out = ok(&cli(&home, &["send", "reviewer", "please", "look"]));
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("Sent #"), "{out}");

    let status = cli_json(&home, &["room", "status", "--json"]);
    assert_eq!(status["room"], "quiet");
    assert_eq!(status["is_host"], true);
    let aliases: Vec<&str> = status["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alias"].as_str().unwrap())
        .collect();
    assert!(aliases.contains(&"reviewer"), "{status}");
    let text = ok(&cli(&home, &["room", "status"]));
    assert!(text.contains("No server holds the room"), "{text}");

    let page = cli_json(&home, &["messages", "--json"]);
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"@reviewer please look"), "{page}");

    let found = cli_json(&home, &["search", "please", "--json"]);
    assert_eq!(found["results"].as_array().unwrap().len(), 1, "{found}");
    let topics = cli_json(&home, &["topic", "list", "--json"]);
    assert_eq!(topics["topics"], Value::Array(vec![]), "{topics}");

    // A write that needs the server says so in one line, with what to run.
    let o = cli(&home, &["topic", "new", "Ship?", "--text", "now"]);
    let err = fails(&o, 3, "agentgather up quiet");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_send_to_a_gone_server_says_so_once_and_how_to_rejoin() {
    let mut r = TestRoom::start("gone");
    let inv = r.invite("reviewer", "agent");
    let agent = inv.join_home("gone-agent", &[]);
    r.server.kill();
    let o = cli(&agent, &["send", "operator", "hello?"]);
    let err = fails(&o, 3, "cannot reach");
    assert!(
        err.lines().count() <= 2,
        "one retry notice and one error:\n{err}"
    );
    assert!(
        err.contains("moved it") && err.contains("agentgather room join"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Point 2: the host's home stays the host's.

#[test]
fn a_hosting_home_does_not_silently_become_a_participant() {
    let r = TestRoom::start("hosting");
    let inv = r.invite("reviewer", "agent");
    let uri = inv.json["invite_uri"].as_str().unwrap();

    let err = fails(&r.cli(&["room", "join", uri]), 1, "--force");
    assert!(err.contains("hosts open room hosting"), "{err}");
    fails(&r.cli(&["room", "leave"]), 1, "--force");
    let doc = ok(&r.cli(&["doctor"]));
    assert!(doc.contains("the host of room hosting"), "{doc}");

    // Forced, the home acts as the participant, and doctor says so with the fix.
    ok(&r.cli(&["room", "join", uri, "--force"]));
    let o = r.cli(&["doctor", "--json"]);
    assert!(!o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let host = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "host")
        .expect("a host check");
    assert_eq!(host["ok"], false, "{v}");
    assert_eq!(
        host["fix"],
        "agentgather room join hosting --alias operator"
    );

    // The fix: the stored host identity comes back, no token needed.
    let back = cli_json(
        &r.home,
        &["room", "join", "hosting", "--alias", "operator", "--json"],
    );
    assert_eq!(back["is_host"], true, "{back}");
    let st = r.cli_json(&["room", "status", "--json"]);
    assert_eq!(st["me"], "operator");
    ok(&r.cli(&["doctor"]));

    // A participant's own home: leaving is fine, and the alias alone joins again with
    // the stored token and URL.
    let agent = inv.join_home("hosting-agent", &[]);
    ok(&cli(&agent, &["room", "leave"]));
    let again = cli_json(
        &agent,
        &["room", "join", "hosting", "--alias", "reviewer", "--json"],
    );
    assert_eq!(again["alias"], "reviewer", "{again}");
    assert_eq!(
        again["room_status"], "open",
        "joined through the server: {again}"
    );
}

// ---------------------------------------------------------------------------------------
// Point 4: `up` on a closed room.

#[test]
fn up_on_a_closed_room_says_so_and_how_to_start_another() {
    let home = TempHome::new("up-closed");
    start_room(&home, "done", free_port(), &[]);
    ok(&cli(&home, &["room", "close"]));
    let port = free_port().to_string();
    let o = cli(&home, &["up", "done", "--port", &port]);
    let err = fails(&o, 6, "room done was closed");
    assert!(err.contains("agentgather up done-2"), "{err}");
    assert!(!stdout(&o).contains("is up"), "{}", stdout(&o));
}

// ---------------------------------------------------------------------------------------
// Point 5: typos.

#[test]
fn mistyped_aliases_get_the_nearest_one_from_the_roster() {
    let r = TestRoom::start("typos");
    r.invite("reviewer", "agent");
    r.invite("agent1", "agent");

    let err = fails(
        &r.cli(&["send", "reviwer", "hi"]),
        1,
        "did you mean `reviewer`?",
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    fails(
        &r.cli(&["room", "remove", "reviewr"]),
        1,
        "did you mean `reviewer`?",
    );
    fails(
        &r.cli(&["room", "invite-card", "reviewr"]),
        1,
        "did you mean `reviewer`?",
    );
    ok(&r.cli(&["send", "reviewer", "hi"]));
    fails(
        &r.cli(&["search", "hi", "--from", "reviwer"]),
        1,
        "did you mean `reviewer`?",
    );

    // A near-duplicate invite needs a yes; a numbered series does not.
    fails(&r.cli(&["room", "invite", "reviewr"]), 1, "--yes");
    ok(&r.cli(&["room", "invite", "reviewr", "--yes"]));
    ok(&r.cli(&["room", "invite", "agent2"]));
}

#[test]
fn top_level_status_brief_invite_and_close_are_the_room_commands() {
    let r = TestRoom::start("aliases");
    let st = r.cli_json(&["status", "--json"]);
    assert_eq!(st["room"], "aliases");
    let brief = ok(&r.cli(&["brief", "view"]));
    assert!(brief.contains(DEFAULT_BRIEF), "{brief}");
    let inv = r.cli_json(&["invite", "helper", "--json"]);
    assert_eq!(inv["alias"], "helper");
    let closed = r.cli_json(&["close", "--json"]);
    assert_eq!(closed["room_status"], "closed");
}

// ---------------------------------------------------------------------------------------
// Point 6: help and text.

#[test]
fn topics_take_text_alike_and_show_a_questions_options() {
    let r = TestRoom::start("topic-text");
    let a = r.cli_json(&[
        "topic", "new", "Ship?", "CI", "is", "green", "--kind", "question", "--option", "yes",
        "--option", "no", "--json",
    ]);
    let id = a["message"]["id"].as_u64().unwrap().to_string();
    assert_eq!(a["message"]["text"], "CI is green");
    let b = r.cli_json(&["topic", "new", "Naming", "--text", "ideas?", "--json"]);
    assert_eq!(b["message"]["text"], "ideas?");
    let c = r.cli_json(&["topic", "comment", &id, "--text", "one arg", "--json"]);
    assert_eq!(c["message"]["text"], "one arg");
    let d = r.cli_json(&["topic", "comment", &id, "two", "words", "--json"]);
    assert_eq!(d["message"]["text"], "two words");
    let shown = ok(&r.cli(&["topic", "show", &id]));
    assert!(shown.contains("Options: yes | no"), "{shown}");
    assert!(shown.contains("(2 comments)"), "{shown}");
    let one = ok(&r.cli(&["topic", "list"]));
    assert!(one.contains("(0 comments)"), "{one}");
    fails(&r.cli(&["topic", "new", "No body"]), 2, "");
}

#[test]
fn status_counts_in_the_right_number() {
    let home = TempHome::new("plural");
    start_room(&home, "plural", free_port(), &[]);
    // `room start` posts no message: 0 messages; one send makes 1 message.
    let before = cli_json(&home, &["room", "status", "--json"])["message_count"]
        .as_u64()
        .unwrap();
    let text = ok(&cli(&home, &["room", "status"]));
    let want = if before == 1 {
        "· 1 message\n".to_string()
    } else {
        format!("· {before} messages\n")
    };
    assert!(text.contains(&want), "{text}");
    assert!(!text.contains("1 messages"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Point 9: completions and the man page.

#[test]
fn bash_loads_the_completion_script_and_every_shell_gets_one() {
    let script = format!(
        "source <({} completions bash) && complete -p agentgather",
        BIN
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    let out = ok(&o);
    assert!(out.contains("agentgather"), "{out}");
    let home = TempHome::new("completions");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let text = ok(&cli(&home, &["completions", shell]));
        assert!(
            text.contains("agentgather") && text.contains("invite"),
            "{shell}"
        );
    }
    fails(&cli(&home, &["completions", "tcsh"]), 2, "tcsh");
}

#[test]
fn man_renders_the_page_and_writes_one_per_command() {
    let home = TempHome::new("man");
    let page = home.root.join("agentgather.1");
    let o = cli(&home, &["man"]);
    std::fs::write(&page, &o.stdout).unwrap();
    ok(&o);
    let has_man = Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_man {
        skip(
            "man_renders_the_page_and_writes_one_per_command",
            "man",
            Some("AGENTGATHER_REQUIRE_MAN"),
            "apt-get install -y man-db",
        );
    } else {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = ok(&rendered);
        assert!(text.contains("agentgather"), "{text}");
        assert!(
            text.contains("completions"),
            "every subcommand is listed:\n{text}"
        );
    }
    let dir = home.root.join("man1");
    ok(&cli(&home, &["man", "--dir", dir.to_str().unwrap()]));
    for name in [
        "agentgather.1",
        "agentgather-room.1",
        "agentgather-room-start.1",
        "agentgather-topic-new.1",
    ] {
        assert!(dir.join(name).is_file(), "{name} in {}", dir.display());
    }
}

// ---------------------------------------------------------------------------------------
// Point 8: the README's commands run as written.

/// The README's shell lines (```sh blocks) with their section, comments cut off.
fn readme_lines() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let mut out = Vec::new();
    let mut section = String::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.to_string();
        }
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() => {
                let cmd = l.split("  #").next().unwrap_or(l).trim().to_string();
                out.push((section.clone(), cmd));
            }
            _ => {}
        }
    }
    out
}

/// Whether `args` parse: clap checks every subcommand, flag and value up to a final
/// `--help`, then prints help and exits 0.
#[track_caller]
fn parses(home: &TempHome, args: &[String]) {
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let o = cli(home, &with_help);
    assert!(
        o.status.success(),
        "README: `agentgather {}` does not parse:\n{}",
        args.join(" "),
        stderr(&o)
    );
}

/// Spawns `up` on a free port and waits for its banner; returns the child.
fn spawn_up(home: &TempHome, args: &[String]) -> std::process::Child {
    use std::io::BufRead;
    let port = free_port().to_string();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--port", &port]);
    let mut child = command(home, &all)
        .current_dir(&home.root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn up");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains("is up at"), "up printed: {first}");
    // Keep reading so the banner's pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn the_readmes_commands_run_as_written() {
    let lines = readme_lines();
    assert!(lines.len() >= 10, "{lines:?}");
    let cargo_toml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let rust_version = cargo_toml
        .lines()
        .find_map(|l| {
            l.strip_prefix("rust-version = ")
                .map(|v| v.trim_matches('"').to_string())
        })
        .expect("Cargo.toml states rust-version");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("Rust {rust_version} or newer")),
        "README names the MSRV {rust_version}"
    );
    assert!(readme.lines().count() <= 190, "the README stays short");

    let home = TempHome::new("readme");
    let mut quick = Vec::new();
    for (section, line) in &lines {
        let words = shell_words::split(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        match words.first().map(String::as_str) {
            Some("agentgather") => {
                // `agentgather man | man -l -`: the part before the pipe.
                let end = words.iter().position(|w| w == "|").unwrap_or(words.len());
                parses(&home, &words[1..end]);
                if section == "Quick start" {
                    quick.push(words[1..].to_vec());
                }
            }
            Some("cargo") => match &words[1..] {
                [run, release, dashdash, rest @ ..]
                    if run == "run" && release == "--release" && dashdash == "--" =>
                {
                    parses(&home, rest)
                }
                // Installing and testing are what this very run did.
                [install, ..] if install == "install" => {}
                [test, ..] if test == "test" => {}
                other => panic!("README: an unchecked cargo line: {other:?}"),
            },
            Some("source") => {
                // `source <(agentgather completions bash)`, with this build as agentgather.
                let script =
                    format!("agentgather() {{ {BIN} \"$@\"; }}; {line} && complete -p agentgather");
                let o = Command::new("bash").args(["-c", &script]).output().unwrap();
                ok(&o);
            }
            // The release's installer (docs/releasing.md), from the repository the
            // release tool publishes to.
            Some("curl") => {
                let repo = cargo_toml
                    .lines()
                    .find_map(|l| l.strip_prefix("repository = "))
                    .expect("Cargo.toml names the repository")
                    .trim_matches('"');
                let url = format!("{repo}/releases/latest/download/agentgather-installer.sh");
                assert!(line.contains(&url), "{line} should fetch {url}");
            }
            other => panic!("README: an unchecked shell line starting {other:?}: {line}"),
        }
    }

    // The quick start, in order, in a fresh home: `up` keeps serving in the background.
    assert!(quick.len() >= 5, "{quick:?}");
    let qs = TempHome::new("readme-quick");
    let mut up = None;
    for args in &quick {
        if args[0] == "up" {
            up = Some(spawn_up(&qs, args));
            continue;
        }
        let strs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = command(&qs, &strs).current_dir(&qs.root).output().unwrap();
        assert!(
            o.status.success(),
            "README quick start: `agentgather {}` failed:\n{}",
            args.join(" "),
            stderr(&o)
        );
    }
    let mut up = up.expect("the quick start runs `up`");
    let _ = up.kill();
    let _ = up.wait();
    let record = std::fs::read_to_string(qs.root.join("gather.md")).expect("the export");
    assert!(record.contains("please check PR 12"), "{record}");
}
