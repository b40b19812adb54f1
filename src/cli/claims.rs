//! `claim`, `claims`, `release` and `guard` (SPEC §13): text for people, one JSON object
//! with `--json`. The guard is a git pre-commit hook that must never block a commit
//! because the room is away: only `--strict` with a real hit exits non-zero.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::output::{CliError, Ctx, Exit, printable};
use crate::client::claims::ClaimOutcome;
use crate::protocol::claim::{ClaimView, GuardHit, NewClaimBody, TtlSpec};
use crate::protocol::url::shell_quote;
use crate::session::CALL_TIMEOUT;
use crate::session::claims::{GuardCheck, conflict_text, guard_check};

#[derive(Args, Debug)]
pub struct ClaimArgs {
    /// Repo-relative paths or globs (`*`, `**`, `?`); a directory covers what is under it.
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<String>,
    /// How long the claim lasts (1m-8h).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Others may hold shared claims on the same paths; only exclusive ones conflict.
    #[arg(long)]
    pub shared: bool,
    /// What you are doing there (at most 200 characters).
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct ClaimsArgs {
    /// Only the claims that overlap this path or glob.
    pub path: Option<String>,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The claim to release.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<u64>,
    /// Release every claim you hold.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct GuardArgs {
    /// Exit 1 when a staged path is under another participant's exclusive claim.
    #[arg(long)]
    pub strict: bool,
    /// Write .git/hooks/pre-commit to run this guard (an existing hook still runs first).
    #[arg(long)]
    pub install: bool,
}

fn until(at: &str) -> String {
    printable(at)
}

fn claim_line(c: &ClaimView) -> String {
    let mut line = format!(
        "#{:<4} {} {} [{}] until {}",
        c.id,
        printable(&c.by),
        printable(&c.paths.join(", ")),
        if c.exclusive { "exclusive" } else { "shared" },
        until(&c.expires_at)
    );
    if let Some(n) = &c.note {
        line.push_str(&format!(" — {}", printable(n)));
    }
    line
}

pub fn claim(ctx: &Ctx, a: ClaimArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let body = NewClaimBody {
        paths: a.paths,
        ttl: Some(TtlSpec::Text(a.ttl)),
        exclusive: Some(!a.shared),
        note: a.note,
    };
    match s.claim(&body)? {
        ClaimOutcome::Claimed(answer) => {
            ctx.print(&serde_json::to_value(&answer).unwrap_or_default(), || {
                format!(
                    "Claimed {}\nRelease it when done: agentgather release {}",
                    claim_line(&answer.claim),
                    answer.claim.id
                )
            });
            Ok(())
        }
        ClaimOutcome::Conflict(c) => {
            let mut e = CliError::new(
                Exit::Error,
                &c.error,
                printable(&conflict_text(&c.conflicts)),
            );
            e.conflicts = c.conflicts;
            Err(e)
        }
    }
}

pub fn claims(ctx: &Ctx, a: ClaimsArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let list = s.client(CALL_TIMEOUT).claims(a.path.as_deref())?;
    ctx.print(&serde_json::to_value(&list).unwrap_or_default(), || {
        if list.claims.is_empty() {
            return "(no live claims)".into();
        }
        list.claims
            .iter()
            .map(claim_line)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

pub fn release(ctx: &Ctx, a: ReleaseArgs) -> Result<(), CliError> {
    let s = ctx.session()?;
    let released = match a.id {
        Some(id) if !a.all => vec![s.client(CALL_TIMEOUT).release_claim(id)?.claim],
        _ => s.release_all()?,
    };
    ctx.print(&json!({"ok": true, "released": released}), || {
        if released.is_empty() {
            return "You hold no live claims.".into();
        }
        released
            .iter()
            .map(|c| format!("Released {}", claim_line(c)))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `git` with `args` in the current directory: its stdout, or why it failed.
fn git(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The staged paths (added, changed, renamed or deleted), repo-relative.
fn staged_paths() -> Result<Vec<String>, String> {
    let out = git(&["diff", "--cached", "--name-only", "-z"])?;
    Ok(out
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

fn hit_line(h: &GuardHit) -> String {
    format!(
        "{} is claimed by {} (claim {}: {}, until {})",
        printable(&h.path),
        printable(&h.by),
        h.claim_id,
        printable(&h.claim_paths.join(", ")),
        until(&h.expires_at)
    )
}

pub fn guard(ctx: &Ctx, a: GuardArgs) -> Result<(), CliError> {
    if a.install {
        return install(ctx, a.strict);
    }
    let staged = match staged_paths() {
        Ok(p) => p,
        Err(why) => return allow(ctx, &why),
    };
    if staged.is_empty() {
        ctx.print(
            &json!({"ok": true, "checked": true, "hits": []}),
            String::new,
        );
        return Ok(());
    }
    let (me, hits) = match guard_check(&ctx.home, &staged, GUARD_TIMEOUT) {
        GuardCheck::Checked { me, hits } => (me, hits),
        GuardCheck::Unknown(why) => return allow(ctx, &why),
    };
    if hits.is_empty() {
        ctx.print(
            &json!({"ok": true, "checked": true, "hits": []}),
            String::new,
        );
        return Ok(());
    }
    if ctx.json && !a.strict {
        println!(
            "{}",
            json!({"ok": true, "checked": true, "me": me, "hits": hits})
        );
    }
    for h in &hits {
        eprintln!("agentgather guard: {}", hit_line(h));
    }
    let mut holders: Vec<&str> = hits.iter().map(|h| h.by.as_str()).collect();
    holders.sort_unstable();
    holders.dedup();
    let at: Vec<String> = holders
        .iter()
        .map(|h| format!("@{}", printable(h)))
        .collect();
    eprintln!(
        "agentgather guard: ask in the room before committing, e.g. agentgather send '{} I need to commit these files; ok?'",
        at.join(" ")
    );
    if a.strict {
        let mut e = CliError::new(
            Exit::Error,
            "claimed_paths",
            format!(
                "commit refused: {} staged path(s) are under another participant's claim (--strict)",
                hits.len()
            ),
        );
        e.message.push_str("; commit with --no-verify to override");
        return Err(e);
    }
    eprintln!("agentgather guard: allowing the commit (claims are advisory; --strict refuses)");
    Ok(())
}

/// The guard cannot tell: warn and let the commit through.
fn allow(ctx: &Ctx, why: &str) -> Result<(), CliError> {
    ctx.print(
        &json!({"ok": true, "checked": false, "reason": why}),
        String::new,
    );
    eprintln!("agentgather guard: cannot check claims ({why}); allowing the commit");
    Ok(())
}

const MARKER: &str = "# agentgather guard hook";
const CHAINED: &str = "pre-commit.before-agentgather";

fn hook_text(strict: bool, exe: &Path, home: Option<&Path>) -> String {
    let mut t = format!(
        "#!/bin/sh\n{MARKER}: warns when staged files are under another participant's claim.\n\
         # The hook that was here before runs first, from {CHAINED}.\n"
    );
    t.push_str(&format!(
        "chained=\"$(dirname \"$0\")/{CHAINED}\"\nif [ -x \"$chained\" ]; then\n  \"$chained\" \"$@\" || exit $?\nfi\n"
    ));
    if let Some(h) = home {
        // The home the hook was installed from, unless the committer names another.
        t.push_str(&format!(
            "if [ -z \"${{AGENTGATHER_HOME:-}}\" ]; then\n  AGENTGATHER_HOME={}\n  export AGENTGATHER_HOME\nfi\n",
            shell_quote(&h.to_string_lossy())
        ));
    }
    t.push_str(&format!(
        "exec {} guard{}\n",
        shell_quote(&exe.to_string_lossy()),
        if strict { " --strict" } else { "" }
    ));
    t
}

fn hooks_dir() -> Result<PathBuf, CliError> {
    let out = git(&["rev-parse", "--git-path", "hooks"]).map_err(CliError::msg)?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out).trim());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn install(ctx: &Ctx, strict: bool) -> Result<(), CliError> {
    let dir = hooks_dir()?;
    let hook = dir.join("pre-commit");
    let exe = std::env::current_exe()?;
    let home = std::env::var_os("AGENTGATHER_HOME").map(PathBuf::from);
    let mut chained = false;
    match std::fs::read_to_string(&hook) {
        Ok(old) if old.contains(MARKER) => {}
        Ok(_) => {
            let keep = dir.join(CHAINED);
            if keep.exists() {
                return Err(CliError::msg(format!(
                    "{} and {} both exist; merge them by hand",
                    hook.display(),
                    keep.display()
                )));
            }
            std::fs::rename(&hook, &keep)?;
            chained = true;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    std::fs::write(&hook, hook_text(strict, &exe, home.as_deref()))?;
    set_executable(&hook)?;
    ctx.print(
        &json!({"ok": true, "hook": hook, "chained": chained, "strict": strict}),
        || {
            let mut t = format!("Installed the claims guard as {}", hook.display());
            if chained {
                t.push_str(&format!(
                    "\nThe hook that was there runs first, from {}",
                    dir.join(CHAINED).display()
                ));
            }
            t
        },
    );
    Ok(())
}

fn set_executable(p: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// How long the guard waits for the room: a commit must not hang on a slow link.
pub const GUARD_TIMEOUT: Duration = Duration::from_secs(5);
