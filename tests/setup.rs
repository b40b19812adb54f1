//! SPEC §11.3: `agentgather setup claude|codex|gemini` registers `agentgather mcp` through
//! each harness's own `mcp add`, checked against the real CLIs (npm, as `.ci/run`
//! installs them) in a temp `HOME`: the harness then reports the server (Claude Code:
//! connected), a second run changes nothing, `--dry-run` changes nothing, `--remove`
//! undoes it, and `doctor` reports the registration and that it starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// The CLI, or a skip (a failure when the CLIs are required).
fn harness_or_skip(name: &str) -> Option<PathBuf> {
    let found = find_cli(name);
    if found.is_none() {
        let require = std::env::var("AGENTGATHER_REQUIRE_AGENT_CLIS").is_ok_and(|v| v == "1");
        assert!(
            !require,
            "AGENTGATHER_REQUIRE_AGENT_CLIS=1 but `{name}` was not found"
        );
        eprintln!("SKIP: `{name}` not found; `setup {name}` is not checked");
    }
    found
}

/// PATH with the harness and node first (and not agentgather: setup registers itself by
/// its absolute path, so the harness needs no PATH entry for it).
fn path_with(cli: &Path) -> std::ffi::OsString {
    let mut dirs = vec![cli.parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn harness(home: &TempHome, cli: &Path, args: &[&str]) -> Output {
    Command::new(cli)
        .args(args)
        .current_dir(&home.root)
        .env("HOME", &home.root)
        .env("PATH", path_with(cli))
        .env("NO_COLOR", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("AGENTGATHER_HOME")
        .output()
        .unwrap()
}

fn setup(home: &TempHome, cli: &Path, args: &[&str]) -> Value {
    let mut all = vec!["setup"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = command(home, &all)
        .current_dir(&home.root)
        .env("PATH", path_with(cli))
        .env_remove("CLAUDE_CONFIG_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "setup {args:?}: {}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

fn doctor_check(home: &TempHome, cli: &Path, name: &str) -> Value {
    let out = command(home, &["doctor", "--json"])
        .current_dir(&home.root)
        .env("PATH", path_with(cli))
        .env_remove("CLAUDE_CONFIG_DIR")
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|_| panic!("doctor: {}", stdout(&out)));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} check: {v}"))
}

fn text(o: &Output) -> String {
    stdout(o) + &stderr(o)
}

#[test]
fn setup_claude_registers_with_the_real_claude_code_once_and_removes() {
    let Some(claude) = harness_or_skip("claude") else {
        return;
    };
    let home = TempHome::new("setup-claude");
    let config = home.root.join(".claude.json");

    let dry = setup(&home, &claude, &["claude", "--dry-run"]);
    assert_eq!(dry["action"], "added", "{dry}");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert!(
        dry["commands"][0]
            .as_str()
            .unwrap()
            .starts_with("claude mcp add --scope user agentgather"),
        "{dry}"
    );
    let before = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(
        !before.contains("agentgather"),
        "--dry-run changed nothing: {before}"
    );

    let added = setup(&home, &claude, &["claude"]);
    assert_eq!(added["action"], "added", "{added}");
    // The home is not ~/.agentgather, so the registration names it.
    assert_eq!(
        added["registration"]["env"]["AGENTGATHER_HOME"],
        home.home.display().to_string(),
        "{added}"
    );
    let got = harness(&home, &claude, &["mcp", "get", "agentgather"]);
    assert!(got.status.success(), "{}", text(&got));
    assert!(
        text(&got).contains("Connected"),
        "claude does not report it connected:\n{}",
        text(&got)
    );

    let again = setup(&home, &claude, &["claude"]);
    assert_eq!(again["action"], "unchanged", "{again}");
    assert_eq!(again["commands"], serde_json::json!([]), "{again}");

    let check = doctor_check(&home, &claude, "mcp in claude");
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("starts"),
        "{check}"
    );

    let removed = setup(&home, &claude, &["claude", "--remove"]);
    assert_eq!(removed["action"], "removed", "{removed}");
    let gone = harness(&home, &claude, &["mcp", "get", "agentgather"]);
    assert!(!gone.status.success(), "still registered: {}", text(&gone));
    let absent = setup(&home, &claude, &["claude", "--remove"]);
    assert_eq!(absent["action"], "absent", "{absent}");
}

#[test]
fn setup_codex_and_gemini_register_through_their_own_mcp_add() {
    for (name, list) in [
        ("codex", &["mcp", "get", "agentgather", "--json"][..]),
        ("gemini", &["mcp", "list"][..]),
    ] {
        let Some(cli) = harness_or_skip(name) else {
            continue;
        };
        let home = TempHome::new(&format!("setup-{name}"));
        let added = setup(&home, &cli, &[name]);
        assert_eq!(added["action"], "added", "{added}");
        let got = harness(&home, &cli, list);
        let exe = added["registration"]["command"].as_str().unwrap();
        assert!(
            got.status.success() && text(&got).contains(exe),
            "{name}: {}",
            text(&got)
        );
        let again = setup(&home, &cli, &[name]);
        assert_eq!(again["action"], "unchanged", "{name}: {again}");
        let check = doctor_check(&home, &cli, &format!("mcp in {name}"));
        assert_eq!(check["ok"], true, "{check}");
        assert!(
            check["detail"].as_str().unwrap().contains("starts"),
            "{check}"
        );
        let removed = setup(&home, &cli, &[name, "--remove"]);
        assert_eq!(removed["action"], "removed", "{name}: {removed}");
        let gone = harness(&home, &cli, list);
        assert!(!text(&gone).contains(exe), "{name}: {}", text(&gone));
    }
}
