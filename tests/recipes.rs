//! The wake recipes of `agentgather instructions --wake …` name flags of other programs
//! (Claude Code, with the CLI or with MCP, Codex, Gemini CLI). Those flags change between
//! releases, so each recipe's flags are checked against the real CLI's `--help`. The CLIs
//! come from npm: `.ci/run` installs them and points `AGENTGATHER_AGENT_CLIS` at their `bin`
//! folder; without them the test prints a skip notice, unless
//! `AGENTGATHER_REQUIRE_AGENT_CLIS=1`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn help(cli: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(cli)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", cli.display()));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn wake_recipes_use_flags_the_real_clis_have() {
    let require = std::env::var("AGENTGATHER_REQUIRE_AGENT_CLIS").is_ok_and(|v| v == "1");
    // (harness, CLI binary, the help to read, flags the recipe must use)
    let cases: [(&str, &str, &[&str], &[&str]); 4] = [
        (
            "claude",
            "claude",
            &["--help"],
            &["-p", "--allowedTools", "--session-id", "--resume"],
        ),
        (
            "claude-mcp",
            "claude",
            &["--help"],
            &[
                "-p",
                "--strict-mcp-config",
                "--mcp-config",
                "--allowedTools",
                "--session-id",
                "--resume",
            ],
        ),
        (
            "codex",
            "codex",
            &["exec", "--help"],
            &["--sandbox", "-c", "workspace-write", "resume", "--last"],
        ),
        (
            "gemini",
            "gemini",
            &["--help"],
            &["-p", "--allowed-tools", "--session-id", "--resume"],
        ),
    ];
    let home = TempHome::new("recipes");
    let mut checked = 0;
    for (harness, bin, help_args, flags) in cases {
        let out = cli(&home, &["instructions", "--wake", harness]);
        assert!(out.status.success(), "{}", stderr(&out));
        let recipe = stdout(&out);
        let line = recipe
            .lines()
            .find(|l| l.contains("agentgather wake --exec"))
            .unwrap_or_else(|| panic!("no wake line in the {harness} recipe:\n{recipe}"));
        assert!(line.contains(&format!(" {bin} ")), "{harness}: {line}");
        let Some(path) = find_cli(bin) else {
            assert!(
                !require,
                "AGENTGATHER_REQUIRE_AGENT_CLIS=1 but `{bin}` was not found"
            );
            eprintln!("SKIP: `{bin}` not found; its recipe's flags are not checked");
            continue;
        };
        let text = help(&path, help_args);
        for flag in flags {
            assert!(
                line.split_whitespace()
                    .any(|w| w.trim_matches('\'') == *flag),
                "{harness}: the recipe does not use {flag}: {line}"
            );
            assert!(
                text.contains(flag),
                "{harness}: `{bin} {}` does not list {flag}; the recipe is out of date:\n{text}",
                help_args.join(" ")
            );
        }
        checked += 1;
    }
    eprintln!("checked the flags of {checked} of 4 recipes against the real CLIs");
}
