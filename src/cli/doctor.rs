//! `doctor`: checks what usually goes wrong (permissions, no current room, a server that
//! is not running, a full disk) and says the command that fixes each. It reports whether
//! a token is present, never the token.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use super::output::Ctx;
use crate::session::{CALL_TIMEOUT, Credentials, Session, load_credentials, load_state};
use crate::store::lock;

#[derive(Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &'static str, ok: bool, detail: String, fix: Option<String>) -> Check {
    Check {
        name,
        ok,
        detail,
        fix: if ok { None } else { fix },
    }
}

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

fn free_bytes(path: &Path) -> Option<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

fn private_tree(dir: &Path, bad: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if let Some(m) = mode(&p)
            && m & 0o077 != 0
        {
            bad.push(p.display().to_string());
        }
        if p.is_dir() {
            private_tree(&p, bad);
        }
    }
}

pub fn run(ctx: &Ctx) -> Vec<Check> {
    let mut out = home_checks(ctx);
    out.extend(harness_checks());
    let creds = identity_checks(ctx, &mut out);
    out.extend(host_identity_check(ctx, creds.as_ref()));
    let Some(creds) = creds else {
        return out;
    };
    if ctx.home.room_exists(&creds.room) {
        out.push(server_check(&ctx.home.room_dir(&creds.room)));
    }
    out.push(reachable_check(ctx, &creds));
    out
}

/// Each agent CLI on PATH: whether `agentgather mcp` is registered with it, and whether
/// the registered command answers an MCP `initialize` (SPEC §11.3).
fn harness_checks() -> Vec<Check> {
    use super::setup::{Harness, check_harnesses};
    check_harnesses()
        .into_iter()
        .map(|c| {
            let h = c.harness;
            let name = match h {
                Harness::Claude => "mcp in claude",
                Harness::Codex => "mcp in codex",
                Harness::Gemini => "mcp in gemini",
            };
            let setup = format!("agentgather setup {}", h.program());
            let Some(reg) = &c.registered else {
                let why = c.problem.map(|p| format!(" ({p})")).unwrap_or_default();
                return check(
                    name,
                    true,
                    format!("{} is on PATH; agentgather mcp is not registered with it{why}: `{setup}` does it", h.title()),
                    None,
                );
            };
            let scope = reg.scope;
            let home = reg
                .registration
                .env
                .get("AGENTGATHER_HOME")
                .map_or("the default home".to_string(), |h| h.clone());
            match &reg.starts {
                Ok(server) => check(
                    name,
                    true,
                    format!(
                        "registered with {} ({scope:?} scope, {home}); it starts and answers as {server}",
                        h.title()
                    ),
                    None,
                ),
                Err(why) => check(
                    name,
                    false,
                    format!(
                        "registered with {} ({scope:?} scope) but it does not start: {why}",
                        h.title()
                    ),
                    Some(setup),
                ),
            }
        })
        .collect()
}

/// The home's mode, the privacy of every file in it, and the free disk.
fn home_checks(ctx: &Ctx) -> Vec<Check> {
    let home = &ctx.home.root;
    let mut out = Vec::new();
    let hm = mode(home);
    out.push(check(
        "home",
        hm.is_some_and(|m| m & 0o077 == 0),
        match hm {
            Some(m) => format!("{} (mode {m:o})", home.display()),
            None => format!("{} does not exist yet", home.display()),
        },
        Some(match hm {
            Some(_) => format!("chmod 700 {}", home.display()),
            None => "agentgather up   (or agentgather room join '<invite-uri>')".into(),
        }),
    ));
    let mut bad = Vec::new();
    private_tree(home, &mut bad);
    out.push(check(
        "permissions",
        bad.is_empty(),
        if bad.is_empty() {
            "every file is private (0600/0700)".into()
        } else {
            format!("readable by others: {}", bad.join(", "))
        },
        Some(format!("chmod -R go-rwx {}", home.display())),
    ));
    if let Some(free) = free_bytes(if home.exists() { home } else { Path::new("/") }) {
        out.push(check(
            "disk",
            free > 100 * 1024 * 1024,
            format!("{} MB free", free / (1024 * 1024)),
            Some(
                "free some disk space; a full disk makes posts fail with 507 room_log_full".into(),
            ),
        ));
    }
    out
}

/// The current room and its credentials; the credentials when they are usable.
fn identity_checks(ctx: &Ctx, out: &mut Vec<Check>) -> Option<Credentials> {
    let state = load_state(&ctx.home).ok().and_then(|s| s.current);
    let Some(cur) = state else {
        out.push(check(
            "room",
            false,
            "no current room".into(),
            Some("agentgather room join '<invite-uri>'   (or host: agentgather up)".into()),
        ));
        return None;
    };
    let creds = load_credentials(&ctx.home, &cur.room, &cur.alias)
        .ok()
        .flatten();
    out.push(check(
        "room",
        creds.is_some(),
        format!("current room {} as {}", cur.room, cur.alias),
        Some(format!(
            "agentgather room join {} --alias {} --token <token> --url <url>",
            cur.room, cur.alias
        )),
    ));
    let creds = creds?;
    out.push(check(
        "token",
        creds.token.starts_with("tgl_"),
        if creds.token.starts_with("tgl_") {
            "present (not shown)".into()
        } else {
            "missing or malformed".into()
        },
        Some("join again with your invite".into()),
    ));
    Some(creds)
}

/// Whether this home, which hosts an open room, still acts as that room's host (an
/// invite's join line run here makes it someone else). None when it hosts no open room.
fn host_identity_check(ctx: &Ctx, current: Option<&Credentials>) -> Option<Check> {
    let hosted = super::hosting::open_rooms(&ctx.home);
    if hosted.is_empty() {
        return None;
    }
    let acting_host = |h: &super::hosting::Hosted| {
        current.is_some_and(|c| c.room == h.room && c.alias == h.host.alias)
    };
    if let Some(h) = hosted.iter().find(|h| acting_host(h)) {
        return Some(check(
            "host",
            true,
            format!(
                "this home acts as {}, the host of room {}",
                h.host.alias, h.room
            ),
            None,
        ));
    }
    let h = &hosted[0];
    let acting = current.map_or("no one".to_string(), |c| {
        format!("{} in room {}", c.alias, c.room)
    });
    Some(check(
        "host",
        false,
        format!(
            "this home hosts open room {} as {} but acts as {acting}; host commands will not work",
            h.room, h.host.alias
        ),
        Some(format!(
            "agentgather room join {} --alias {}",
            h.room, h.host.alias
        )),
    ))
}

/// Whether a server holds the room this home hosts.
fn server_check(room_dir: &Path) -> Check {
    let lock_file = room_dir.join("lock");
    match lock::holder(room_dir) {
        Ok(Some(info)) => check(
            "server",
            true,
            format!(
                "room serve is running: {}",
                crate::store::lock::holder_text(info.pid, &info.purpose, info.addr.as_deref())
            ),
            None,
        ),
        Ok(None) => check(
            "server",
            false,
            if lock_file.exists() {
                "no server holds the room (the last holder is gone; its lock is free)".into()
            } else {
                "no server has served this room yet".into()
            },
            Some("agentgather room serve".into()),
        ),
        Err(e) => check(
            "server",
            false,
            format!("cannot check the lock: {e}"),
            Some(format!("ls -l {}", lock_file.display())),
        ),
    }
}

/// Whether the room's server answers this participant.
fn reachable_check(ctx: &Ctx, creds: &Credentials) -> Check {
    let client = Session::new(ctx.home.clone(), creds.clone()).client(CALL_TIMEOUT);
    match client.status() {
        Ok(s) => check(
            "reachable",
            true,
            format!(
                "{} answers: room {} is {}",
                client.base(),
                s.room,
                s.room_status
            ),
            None,
        ),
        Err(e) => check(
            "reachable",
            false,
            e.to_string(),
            Some(if creds.is_host {
                "agentgather room serve".into()
            } else {
                "ask the host whether the room is still served".into()
            }),
        ),
    }
}
