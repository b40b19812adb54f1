//! `agentgather setup claude|codex|gemini` (SPEC §11.3): one command registers
//! `agentgather mcp` with an agent harness, instead of a page of README per harness.
//!
//! Changes go through the harness's own `mcp add` / `mcp remove` commands, so its config
//! file stays its own business (every other entry kept, its format and locking its
//! own). What is registered now is read first (the config file, or Codex's `mcp get
//! --json`), so running setup twice changes nothing and `--dry-run` can say exactly what
//! would change. `doctor` reuses the same reading, and starts the registered server to
//! see that it answers an MCP `initialize`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::output::{CliError, Ctx};

/// The name the room's MCP server is registered under in every harness.
pub const SERVER_NAME: &str = "agentgather";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Harness {
    /// Claude Code (`claude`).
    Claude,
    /// OpenAI Codex CLI (`codex`).
    Codex,
    /// Gemini CLI (`gemini`).
    Gemini,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Every project of this user.
    User,
    /// This directory only (Claude Code's `.mcp.json`, Gemini CLI's `.gemini/settings.json`).
    Project,
}

#[derive(Args, Debug)]
pub struct SetupArgs {
    /// The agent CLI to register `agentgather mcp` with.
    #[arg(value_enum)]
    pub harness: Harness,
    /// The agentgather home its sessions act from (default: this one); set as
    /// AGENTGATHER_HOME in the registration when it is not ~/.agentgather.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Where the harness keeps the registration (Codex has only `user`).
    #[arg(long, value_enum, default_value = "user")]
    pub scope: Scope,
    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Undo the registration.
    #[arg(long)]
    pub remove: bool,
}

pub const SETUP_HELP: &str = "\
Examples:
  agentgather setup claude                 # Claude Code, every project
  agentgather setup codex --dry-run        # what would change, nothing changed
  agentgather setup gemini --scope project # this directory's .gemini/settings.json
  agentgather setup claude --remove

Runs the harness's own `mcp add` (or `mcp remove`) and prints it; running it twice
changes nothing. `agentgather doctor` shows each harness on PATH and whether its
registration starts.";

/// An MCP stdio server as a harness has it registered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `mcpServers` of a Claude Code (`.claude.json`, `.mcp.json`) or Gemini CLI
/// (`settings.json`) file; everything else in it is left alone (and unread).
#[derive(Debug, Default, Deserialize)]
struct McpServersFile {
    #[serde(default, rename = "mcpServers")]
    mcp_servers: BTreeMap<String, serde_json::Value>,
}

/// Codex's `mcp get --json`.
#[derive(Debug, Deserialize)]
struct CodexServer {
    transport: Registration,
}

impl Harness {
    pub const ALL: [Harness; 3] = [Harness::Claude, Harness::Codex, Harness::Gemini];

    pub fn program(self) -> &'static str {
        match self {
            Harness::Claude => "claude",
            Harness::Codex => "codex",
            Harness::Gemini => "gemini",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Harness::Claude => "Claude Code",
            Harness::Codex => "Codex",
            Harness::Gemini => "Gemini CLI",
        }
    }

    fn scope_arg(scope: Scope) -> &'static str {
        match scope {
            Scope::User => "user",
            Scope::Project => "project",
        }
    }

    /// The config file that holds a registration of this scope (Codex: none read here).
    fn config_file(self, scope: Scope) -> Option<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from)?;
        match (self, scope) {
            (Harness::Claude, Scope::User) => Some(
                std::env::var_os("CLAUDE_CONFIG_DIR")
                    .map_or(home, PathBuf::from)
                    .join(".claude.json"),
            ),
            (Harness::Claude, Scope::Project) => Some(PathBuf::from(".mcp.json")),
            (Harness::Gemini, Scope::User) => Some(home.join(".gemini/settings.json")),
            (Harness::Gemini, Scope::Project) => Some(PathBuf::from(".gemini/settings.json")),
            (Harness::Codex, _) => None,
        }
    }

    /// What is registered under [`SERVER_NAME`] now, if anything.
    pub fn registered(self, scope: Scope) -> Result<Option<Registration>, String> {
        if self == Harness::Codex {
            let out = Command::new(self.program())
                .args(["mcp", "get", SERVER_NAME, "--json"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run codex: {e}"))?;
            if !out.status.success() {
                return Ok(None);
            }
            let s: CodexServer = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("cannot read `codex mcp get --json`: {e}"))?;
            return Ok(Some(s.transport));
        }
        let Some(path) = self.config_file(scope) else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let file: McpServersFile = serde_json::from_str(&text)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match file.mcp_servers.get(SERVER_NAME) {
            None => Ok(None),
            // An entry of another shape (a URL server, say) is a registration too: it
            // differs from the wanted one, so setup replaces it.
            Some(v) => Ok(Some(serde_json::from_value(v.clone()).unwrap_or_default())),
        }
    }

    /// The harness command that registers `want`.
    fn add_command(self, scope: Scope, want: &Registration) -> Vec<String> {
        let mut c: Vec<String> = vec![self.program().into(), "mcp".into(), "add".into()];
        match self {
            Harness::Claude => {
                c.extend([
                    "--scope".into(),
                    Self::scope_arg(scope).into(),
                    SERVER_NAME.into(),
                ]);
                for (k, v) in &want.env {
                    c.extend(["-e".into(), format!("{k}={v}")]);
                }
                c.push("--".into());
            }
            Harness::Codex => {
                c.push(SERVER_NAME.into());
                for (k, v) in &want.env {
                    c.extend(["--env".into(), format!("{k}={v}")]);
                }
                c.push("--".into());
            }
            Harness::Gemini => {
                c.extend(["--scope".into(), Self::scope_arg(scope).into()]);
                for (k, v) in &want.env {
                    c.extend(["-e".into(), format!("{k}={v}")]);
                }
                c.push(SERVER_NAME.into());
            }
        }
        c.push(want.command.clone());
        c.extend(want.args.iter().cloned());
        c
    }

    /// The harness command that removes the registration.
    fn remove_command(self, scope: Scope) -> Vec<String> {
        let mut c: Vec<String> = vec![self.program().into(), "mcp".into(), "remove".into()];
        if self != Harness::Codex {
            c.extend(["--scope".into(), Self::scope_arg(scope).into()]);
        }
        c.push(SERVER_NAME.into());
        c
    }
}

/// Whether `program` is an executable file somewhere on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// What setup registers: this binary (by absolute path, so the harness finds it whatever
/// its PATH) as `… mcp`, with `AGENTGATHER_HOME` when the home is not the default one.
fn wanted(home: &Path) -> Result<Registration, CliError> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::msg(format!("cannot tell where agentgather is installed: {e}")))?;
    let mut env = BTreeMap::new();
    let default = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".agentgather"));
    if default.as_deref() != Some(home) {
        env.insert("AGENTGATHER_HOME".to_string(), home.display().to_string());
    }
    Ok(Registration {
        command: exe.display().to_string(),
        args: vec!["mcp".into()],
        env,
    })
}

/// A command line as a person would type it.
fn shown(cmd: &[String]) -> String {
    cmd.iter()
        .map(|a| crate::protocol::url::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_harness(cmd: &[String]) -> Result<(), CliError> {
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CliError::msg(format!("cannot run {}: {e}", cmd[0])))?;
    if out.status.success() {
        return Ok(());
    }
    let (err, stdout) = (
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    let why = err
        .lines()
        .chain(stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no reason given");
    Err(CliError::msg(format!("`{}` failed: {why}", shown(cmd))))
}

pub fn setup(ctx: &Ctx, a: SetupArgs) -> Result<(), CliError> {
    let h = a.harness;
    if h == Harness::Codex && a.scope == Scope::Project {
        return Err(CliError::msg(
            "Codex registers MCP servers for the user only: drop --scope project",
        ));
    }
    if !on_path(h.program()) {
        return Err(CliError::msg(format!(
            "`{}` ({}) is not on PATH: install it first, then run this again",
            h.program(),
            h.title()
        )));
    }
    let home = match &a.home {
        Some(p) => std::path::absolute(p)
            .map_err(|e| CliError::msg(format!("bad --home {}: {e}", p.display())))?,
        None => std::path::absolute(&ctx.home.root).unwrap_or_else(|_| ctx.home.root.clone()),
    };
    let want = wanted(&home)?;
    let now = h.registered(a.scope).map_err(CliError::msg)?;
    let (action, commands): (&str, Vec<Vec<String>>) = match (&now, a.remove) {
        (None, true) => ("absent", vec![]),
        (Some(_), true) => ("removed", vec![h.remove_command(a.scope)]),
        (Some(r), false) if *r == want => ("unchanged", vec![]),
        (Some(_), false) => (
            "replaced",
            vec![h.remove_command(a.scope), h.add_command(a.scope, &want)],
        ),
        (None, false) => ("added", vec![h.add_command(a.scope, &want)]),
    };
    if !a.dry_run {
        for c in &commands {
            run_harness(c)?;
        }
    }
    let scope = Harness::scope_arg(a.scope);
    let lines: Vec<String> = commands.iter().map(|c| shown(c)).collect();
    ctx.print(
        &json!({"ok": true, "harness": h.program(), "scope": scope, "action": action,
            "dry_run": a.dry_run, "commands": lines, "registration": want}),
        || {
            let what = match (action, a.dry_run) {
                ("absent", _) => "is not registered: nothing to remove".to_string(),
                ("unchanged", _) => "is already registered as wanted: nothing changed".to_string(),
                (_, true) => format!("would be {action} (dry run: nothing changed)"),
                _ => action.to_string(),
            };
            let mut out = format!("{} ({scope} scope): agentgather mcp {what}", h.title());
            for l in &lines {
                out.push_str(&format!("\n  {} {l}", if a.dry_run { "would run:" } else { "ran:" }));
            }
            if !a.remove && action != "unchanged" && !a.dry_run {
                out.push_str(&format!(
                    "\n  acts as this home's participant: {} (join a room there with `agentgather room join`)",
                    home.display()
                ));
            }
            out
        },
    );
    Ok(())
}

/// What `doctor` says of one harness on PATH: its registration and whether it starts.
pub struct HarnessCheck {
    pub harness: Harness,
    pub registered: Option<Registered>,
    pub problem: Option<String>,
}

/// A registration found, and whether its command starts.
pub struct Registered {
    pub scope: Scope,
    pub registration: Registration,
    /// `Ok(server name)` when the registered command answered `initialize`.
    pub starts: Result<String, String>,
}

pub fn check_harnesses() -> Vec<HarnessCheck> {
    Harness::ALL
        .into_iter()
        .filter(|h| on_path(h.program()))
        .map(|h| {
            let mut problem = None;
            let mut registered = None;
            for scope in [Scope::User, Scope::Project] {
                match h.registered(scope) {
                    Ok(Some(r)) => {
                        registered = Some((scope, r));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => problem = Some(e),
                }
                if h == Harness::Codex {
                    break;
                }
            }
            HarnessCheck {
                harness: h,
                registered: registered.map(|(scope, registration)| Registered {
                    scope,
                    starts: probe(&registration),
                    registration,
                }),
                problem,
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct InitializeReply {
    result: Option<InitializeResult>,
}

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "serverInfo")]
    server_info: ServerInfo,
}

#[derive(Deserialize)]
struct ServerInfo {
    name: String,
}

/// Starts a registered MCP server and asks it to `initialize`; the answer's server name.
pub fn probe(r: &Registration) -> Result<String, String> {
    let mut child = Command::new(&r.command)
        .args(&r.args)
        .envs(&r.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", r.command))?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "agentgather-doctor", "version": env!("CARGO_PKG_VERSION")}}});
    let (tx, rx) = std::sync::mpsc::channel();
    if let (Some(mut stdin), Some(out)) = (child.stdin.take(), child.stdout.take()) {
        let _ = writeln!(stdin, "{init}");
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
            drop(stdin);
        });
    }
    let got = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = got.map_err(|_| "it did not answer `initialize` within 10 s".to_string())?;
    let reply: InitializeReply =
        serde_json::from_str(&line).map_err(|_| "it did not answer in MCP".to_string())?;
    reply
        .result
        .map(|r| r.server_info.name)
        .ok_or_else(|| "it refused `initialize`".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_commands_follow_each_harness_syntax() {
        let want = Registration {
            command: "/bin/agentgather".into(),
            args: vec!["mcp".into()],
            env: [("AGENTGATHER_HOME".to_string(), "/h".to_string())].into(),
        };
        assert_eq!(
            shown(&Harness::Claude.add_command(Scope::User, &want)),
            "claude mcp add --scope user agentgather -e AGENTGATHER_HOME=/h -- /bin/agentgather mcp"
        );
        assert_eq!(
            shown(&Harness::Codex.add_command(Scope::User, &want)),
            "codex mcp add agentgather --env AGENTGATHER_HOME=/h -- /bin/agentgather mcp"
        );
        assert_eq!(
            shown(&Harness::Gemini.add_command(Scope::Project, &want)),
            "gemini mcp add --scope project -e AGENTGATHER_HOME=/h agentgather /bin/agentgather mcp"
        );
        assert_eq!(
            shown(&Harness::Codex.remove_command(Scope::User)),
            "codex mcp remove agentgather"
        );
    }
}
