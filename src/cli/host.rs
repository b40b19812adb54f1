//! Host commands. Each runs through the room's server when one holds the room (so the
//! server stays the single writer), else opens the room directly under its lock.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::{CliError, Ctx, Exit};
use crate::client::Client;
use crate::protocol::card::{browser_url, card_command, render_card};
use crate::protocol::ttl::parse_ttl;
use crate::protocol::url::{RoomUrl, shell_quote};
use crate::protocol::wire::{BriefView, CompactStatus, InviteAnswer, PolicyAnswer, StatusAnswer};
use crate::protocol::{
    AttendancePolicy, DEFAULT_PORT, Kind, Location, validate_alias, validate_room_id,
};
use crate::server::{ServeConfig, serve as run_server};
use crate::session::CALL_TIMEOUT;
use crate::session::state::{
    Credentials, load_credentials, load_host_tokens, remember_host_token, set_current,
};
use crate::store::room::NewRoom;
use crate::store::{FsyncMode, Room, RoomOptions};

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Room id: 1-64 of a-z, 0-9, '-'.
    pub room: String,
    /// Your alias in the room.
    #[arg(long, default_value = "host")]
    pub alias: String,
    /// The Room Brief (Markdown): the goal and context.
    #[arg(long, conflicts_with = "brief_file")]
    pub brief: Option<String>,
    /// Read the Room Brief from a file.
    #[arg(long)]
    pub brief_file: Option<PathBuf>,
    /// Attendance policy: manual-ok | agents-foreground | all-foreground | host-directed.
    #[arg(long, default_value = "manual-ok")]
    pub attendance: AttendancePolicy,
    /// Close the room by itself after this long (e.g. 30m, 2h, 1d).
    #[arg(long)]
    pub ttl: Option<String>,
    /// The URL participants will use.
    #[arg(long)]
    pub url: Option<String>,
    /// Your name as people see it in the browser room (default: ask on first visit).
    #[arg(long)]
    pub display_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The room to serve (default: the current room).
    #[arg(long)]
    pub room: Option<String>,
    /// The port to listen on (the room's stored loopback URL follows it).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to bind; anything but loopback needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The public URL participants use (e.g. your TLS proxy's https:// URL).
    #[arg(long)]
    pub url: Option<String>,
    /// Answer requests whose Host is not loopback (requires an https:// --url).
    #[arg(long)]
    pub allow_remote: bool,
    /// When appends reach the disk: batch (group commit before the 201; default), always (fsync each), off (page cache only).
    #[arg(long, default_value = "batch")]
    pub fsync: FsyncMode,
    /// Most simultaneous connections; more are closed at once.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// How long a client may take to send its request headers (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// How long a client may take to send a request body (e.g. 15s).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub body_timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Room id (default: gather).
    pub room: Option<String>,
    /// The port to serve on, on loopback.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Your alias when the room is created (default: $USER, else host).
    #[arg(long)]
    pub alias: Option<String>,
    /// Your name as people see it in the browser room, when the room is created.
    #[arg(long)]
    pub display_name: Option<String>,
    /// The agent to print a ready invite (its Attend Card command) for. Running `up` again
    /// prints the same invite, never a second participant.
    #[arg(long, default_value = "agent", conflicts_with = "no_invite")]
    pub invite: String,
    /// Print no invite; invite later with `room invite <alias>`.
    #[arg(long)]
    pub no_invite: bool,
}

#[derive(Args, Debug)]
pub struct InviteArgs {
    /// The new participant's alias.
    pub alias: String,
    /// agent (gets an Attend Card) or human (gets a browser link first).
    #[arg(long, default_value = "agent")]
    pub kind: Kind,
    /// local (on this machine) or remote (elsewhere; shown in the roster).
    #[arg(long, default_value = "local")]
    pub location: Location,
    /// Ask for a reach: live | wake | poll | manual (the card then says how to set it up).
    #[arg(long)]
    pub reach: Option<crate::protocol::reach::Reach>,
    /// Invite even when the alias is one slip away from one the room has.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct AliasArg {
    /// The participant's alias.
    pub alias: String,
}

fn read_brief(brief: Option<String>, file: Option<PathBuf>) -> Result<String, CliError> {
    match (brief, file) {
        (Some(b), _) => Ok(b),
        (None, Some(f)) => std::fs::read_to_string(&f)
            .map_err(|e| CliError::msg(format!("cannot read {}: {e}", f.display()))),
        (None, None) => Ok(String::new()),
    }
}

/// Validates an optional `--display-name` before anything is created.
fn display_name(name: Option<String>) -> Result<Option<String>, CliError> {
    name.map(|n| {
        crate::protocol::validate_display_name(&n).map_err(|e| CliError::msg(e.to_string()))
    })
    .transpose()
}

/// A `--url` as stored: checked by the one URL rule (https, or http on loopback).
fn check_url(url: &str) -> Result<String, CliError> {
    RoomUrl::parse(url)
        .map(|u| u.as_str().to_string())
        .map_err(|e| CliError::msg(format!("--url: {e}")))
}

fn create_room(ctx: &Ctx, new: &NewRoom) -> Result<Credentials, CliError> {
    let opts = RoomOptions {
        purpose: "agentgather room start".into(),
        ..Default::default()
    };
    let (room, token) = Room::create(&ctx.home, new, &opts)?;
    drop(room);
    let creds = Credentials {
        room: new.room.clone(),
        alias: new.host_alias.clone(),
        url: new.url.clone(),
        token: token.clone(),
        is_host: true,
        cursor: 0,
    };
    remember_host_token(&ctx.home, &new.room, &new.host_alias, &token)?;
    set_current(&ctx.home, &creds)?;
    Ok(creds)
}

pub fn start(ctx: &Ctx, a: StartArgs) -> Result<(), CliError> {
    validate_room_id(&a.room).map_err(|e| CliError::msg(e.to_string()))?;
    validate_alias(&a.alias).map_err(|e| CliError::msg(e.to_string()))?;
    let ttl = a
        .ttl
        .as_deref()
        .map(parse_ttl)
        .transpose()
        .map_err(CliError::msg)?;
    let url = a
        .url
        .unwrap_or_else(|| format!("http://127.0.0.1:{DEFAULT_PORT}"));
    let url = check_url(&url)?;
    let brief = read_brief(a.brief, a.brief_file)?;
    let limit = crate::protocol::Limits::default().brief_chars;
    if brief.chars().count() > limit {
        return Err(CliError::msg(format!(
            "the brief is over the limit of {limit} characters"
        )));
    }
    let new = NewRoom {
        room: a.room,
        host_alias: a.alias,
        brief,
        policy: a.attendance,
        ttl,
        url,
        host_display_name: display_name(a.display_name)?,
    };
    let creds = create_room(ctx, &new)?;
    ctx.print(
        &json!({"ok": true, "room": creds.room, "alias": creds.alias, "token": creds.token, "url": creds.url}),
        || {
            format!(
                "Room {} created; you are its host, {}.\nHost token (secret): {}\nNext: agentgather room serve   (then: agentgather room invite <alias>)",
                creds.room, creds.alias, creds.token
            )
        },
    );
    Ok(())
}

fn run_serve(cfg: ServeConfig) -> Result<(), CliError> {
    super::output::init_tracing();
    crate::net::compact_heap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run_server(cfg)).map_err(|e| match e {
        crate::server::ServeError::Store(s) => CliError::from(s),
        other => CliError::msg(other.to_string()),
    })
}

pub fn serve(ctx: &Ctx, a: ServeArgs) -> Result<(), CliError> {
    let room = match a.room {
        Some(r) => r,
        None => ctx.session()?.creds.room,
    };
    validate_room_id(&room).map_err(|e| CliError::msg(e.to_string()))?;
    let url = a.url.as_deref().map(check_url).transpose()?;
    let mut cfg = ServeConfig::new(ctx.home.clone(), room);
    cfg.port = a.port;
    cfg.host = a.host;
    cfg.url = url;
    cfg.allow_remote = a.allow_remote;
    cfg.fsync = a.fsync;
    cfg.max_connections = a.max_connections.max(1);
    cfg.header_timeout = a.header_timeout;
    cfg.body_timeout = a.body_timeout;
    run_serve(cfg)
}

fn default_alias() -> String {
    let user: String = std::env::var("USER")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let user = user.trim_matches('-').chars().take(64).collect::<String>();
    if validate_alias(&user).is_ok() {
        user
    } else {
        "host".into()
    }
}

fn is_loopback_url(url: &str) -> bool {
    RoomUrl::parse_any(url).is_ok_and(|u| u.is_loopback())
}

pub fn up(ctx: &Ctx, a: UpArgs) -> Result<(), CliError> {
    let room = a.room.unwrap_or_else(|| "gather".into());
    validate_room_id(&room).map_err(|e| CliError::msg(e.to_string()))?;
    let local_url = format!("http://127.0.0.1:{}", a.port);
    std::net::TcpListener::bind(("127.0.0.1", a.port)).map_err(|e| {
        CliError::msg(format!(
            "port {} is not free ({e}); try `agentgather up {room} --port <other>`",
            a.port
        ))
    })?;
    let creds = if ctx.home.room_exists(&room) {
        let meta: crate::store::RoomMeta =
            crate::store::fsutil::read_json(&ctx.home.room_dir(&room).join("room.json"))?
                .ok_or_else(|| CliError::msg(format!("room {room} has no room.json")))?;
        if meta.status != crate::protocol::RoomStatus::Open {
            return Err(closed_room(&ctx.home, &room, meta.closed_at.as_deref()));
        }
        let host = meta.host.unwrap_or_else(|| "host".into());
        if let Some(al) = a.alias.as_deref().filter(|al| *al != host) {
            return Err(CliError::msg(format!(
                "room {room} already exists with host `{host}`; --alias {al} applies only when up creates a room"
            )));
        }
        let creds = load_credentials(&ctx.home, &room, &host)?.ok_or_else(|| {
            CliError::msg(format!("this home has no host credentials for room {room}; run `agentgather up` in the home that created it"))
        })?;
        if let Some(name) = display_name(a.display_name)? {
            rename_host(ctx, &creds, &name)?;
        }
        set_current(&ctx.home, &creds)?;
        creds
    } else {
        let alias = match a.alias {
            Some(al) => {
                validate_alias(&al).map_err(|e| CliError::msg(e.to_string()))?;
                al
            }
            None => default_alias(),
        };
        let new = NewRoom {
            room: room.clone(),
            host_alias: alias,
            brief: String::new(),
            policy: AttendancePolicy::ManualOk,
            ttl: None,
            url: local_url.clone(),
            host_display_name: display_name(a.display_name)?,
        };
        create_room(ctx, &new)?
    };
    let public = if is_loopback_url(&creds.url) {
        local_url.clone()
    } else {
        creds.url.clone()
    };
    let ready = if a.no_invite {
        None
    } else {
        ready_invite(ctx, &creds, &a.invite)?
    };
    let mut lines: Vec<String> = Vec::new();
    lines.push(format!(
        "Agent Gather room {} is up at {public}",
        creds.room
    ));
    lines.push(String::new());
    lines.push(format!(
        "  Your browser link (as host `{}`; it holds your token, keep it private):",
        creds.alias
    ));
    lines.push(format!("    {}", browser_url(&public, &creds.token)));
    lines.push(String::new());
    let home_prefix = match std::env::var_os("AGENTGATHER_HOME") {
        Some(_) => format!(
            "AGENTGATHER_HOME={} ",
            shell_quote(&ctx.home.root.display().to_string())
        ),
        None => String::new(),
    };
    let me = self_command();
    match ready {
        Some(token) => {
            lines.push(format!(
                "  Invite an agent: give it this command (its Attend Card; it holds {}'s token):",
                a.invite
            ));
            lines.push(format!("    {}", card_command(&public, &a.invite, &token)));
            lines.push(format!(
                "  More invites:  {home_prefix}{me} room invite <alias>"
            ));
        }
        None => {
            lines.push("  Invite an agent (prints the card command to give it):".into());
            lines.push(format!("    {home_prefix}{me} room invite reviewer"));
        }
    }
    lines.push(format!(
        "  Set the goal:  {home_prefix}{me} room brief set --body 'Goal: ...'"
    ));
    lines.push(String::new());
    // The banner is written once; a reader that went away (`up | head`) must not stop
    // the server, which logs to stderr from here on.
    let mut stdout = std::io::stdout().lock();
    let banner = lines.join("\n") + "\n";
    let _ = std::io::Write::write_all(&mut stdout, banner.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut stdout));
    drop(stdout);
    let mut cfg = ServeConfig::new(ctx.home.clone(), creds.room.clone());
    cfg.port = a.port;
    cfg.url = Some(public);
    run_serve(cfg)
}

/// Why `up` does not serve a closed room, and the command that starts a fresh one (a
/// closed room stays closed: its log is the record of what was decided).
fn closed_room(home: &crate::store::Home, room: &str, closed_at: Option<&str>) -> CliError {
    let fresh = (2..100)
        .map(|n| format!("{room}-{n}"))
        .find(|r| !home.room_exists(r) && validate_room_id(r).is_ok())
        .unwrap_or_else(|| "new-room".into());
    let when = closed_at.map(|t| format!(" at {t}")).unwrap_or_default();
    CliError::new(
        Exit::Closed,
        "room_closed",
        format!(
            "room {room} was closed{when} and stays closed; start a new room with `agentgather up {fresh}` (`agentgather export` still exports {room})"
        ),
    )
}

/// Opens the room's files directly (no server holds them), with the host's index.
pub(super) fn open_as_host(
    ctx: &Ctx,
    creds: &Credentials,
    purpose: &str,
) -> Result<(Room, usize), CliError> {
    let opts = RoomOptions {
        purpose: purpose.into(),
        ..Default::default()
    };
    let room = Room::open(&ctx.home, &creds.room, &opts)?;
    let host = room.find(&creds.alias).ok_or_else(|| {
        CliError::msg(format!(
            "{} is not in room {}'s participants",
            creds.alias, creds.room
        ))
    })?;
    Ok((room, host))
}

/// `up --display-name` on an existing room: the host's name changes before serving.
fn rename_host(ctx: &Ctx, creds: &Credentials, name: &str) -> Result<(), CliError> {
    let (mut room, host) = open_as_host(ctx, creds, "agentgather up")?;
    room.set_display_name(host, name)?;
    Ok(())
}

/// The token of `alias`'s invite for `up` to print: the one this home minted before (so a
/// second `up` does not pile up participants), else a new invite. None when `alias` cannot
/// get one here: the room is closed, `alias` was removed, or another home invited it.
fn ready_invite(ctx: &Ctx, creds: &Credentials, alias: &str) -> Result<Option<String>, CliError> {
    validate_alias(alias).map_err(|e| CliError::msg(format!("--invite: {e}")))?;
    if alias == creds.alias {
        return Err(CliError::msg(format!(
            "--invite {alias} names you, the host; pick the alias of the agent to invite"
        )));
    }
    let (mut room, host) = open_as_host(ctx, creds, "agentgather up")?;
    if !room.is_open() {
        return Ok(None);
    }
    if let Some(idx) = room.find(alias) {
        if room.participant(idx).removed {
            return Ok(None);
        }
        let known = load_host_tokens(&ctx.home, &creds.room)?
            .tokens
            .remove(alias);
        return Ok(known.filter(|t| room.authenticate(t) == Some(idx)));
    }
    let token = room.invite(host, alias, Kind::Agent, Location::Local)?;
    remember_host_token(&ctx.home, &creds.room, alias, &token)?;
    Ok(Some(token))
}

/// How to run this binary again from a shell: `agentgather` when that name on `PATH` is
/// this binary, else its full path (e.g. right after `cargo run`).
fn self_command() -> String {
    let Ok(me) = std::env::current_exe() else {
        return "agentgather".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::canonicalize(dir.join("agentgather"))
                .is_ok_and(|p| std::fs::canonicalize(&me).is_ok_and(|m| m == p))
        })
    });
    if on_path {
        "agentgather".into()
    } else {
        shell_quote(&me.display().to_string())
    }
}

/// Where a host command runs.
enum HostOp {
    Server(Client),
    Direct(Box<Room>, usize),
}

fn host_op(ctx: &Ctx) -> Result<(Credentials, HostOp), CliError> {
    let session = ctx.session()?;
    let creds = session.creds.clone();
    if !creds.is_host {
        return Err(CliError::new(
            Exit::Unauthorized,
            "host_required",
            format!(
                "{} is not the host of room {}; host commands run in the host's home",
                creds.alias, creds.room
            ),
        ));
    }
    if ctx.local_server(&creds.room).is_none() && ctx.home.room_exists(&creds.room) {
        let (room, who) = open_as_host(ctx, &creds, "agentgather CLI")?;
        return Ok((creds, HostOp::Direct(Box::new(room), who)));
    }
    Ok((creds, HostOp::Server(session.client(CALL_TIMEOUT))))
}

fn print_brief(ctx: &Ctx, brief: &BriefView) {
    ctx.print(&json!({"ok": true, "brief": brief}), || {
        format!(
            "Room Brief v{} (by {}, {}):\n\n{}",
            brief.brief_version,
            brief.brief_updated_by.as_deref().unwrap_or("?"),
            brief.brief_updated_at.as_deref().unwrap_or("?"),
            super::output::printable(&brief.body)
        )
    });
}

/// Whether this home hosts `creds`' room with no server running: then host reads open
/// the room files directly.
pub(super) fn direct_read(ctx: &Ctx, creds: &Credentials) -> bool {
    creds.is_host && ctx.local_server(&creds.room).is_none() && ctx.home.room_exists(&creds.room)
}

pub fn brief_view(ctx: &Ctx) -> Result<(), CliError> {
    let session = ctx.session()?;
    let brief = if direct_read(ctx, &session.creds) {
        match host_op(ctx)?.1 {
            HostOp::Direct(room, _) => room.brief_view(),
            HostOp::Server(c) => c.brief()?,
        }
    } else {
        session.client(CALL_TIMEOUT).brief()?
    };
    print_brief(ctx, &brief);
    Ok(())
}

pub fn brief_set(ctx: &Ctx, b: super::BodyArgs) -> Result<(), CliError> {
    let body = read_brief(b.body, b.file)?;
    let (_, op) = host_op(ctx)?;
    let brief = match op {
        HostOp::Server(c) => c.set_brief(&body)?,
        HostOp::Direct(mut room, who) => {
            room.set_brief(who, &body)?;
            room.brief_view()
        }
    };
    print_brief(ctx, &brief);
    Ok(())
}

fn print_policy(ctx: &Ctx, policy: AttendancePolicy) {
    ctx.print(&json!(PolicyAnswer::of(policy)), || {
        policy.describe().to_string()
    });
}

pub fn attendance_view(ctx: &Ctx) -> Result<(), CliError> {
    let session = ctx.session()?;
    let policy = if direct_read(ctx, &session.creds) {
        match host_op(ctx)?.1 {
            HostOp::Direct(room, _) => room.meta.attendance_policy,
            HostOp::Server(c) => c.policy()?.policy,
        }
    } else {
        session.client(CALL_TIMEOUT).policy()?.policy
    };
    print_policy(ctx, policy);
    Ok(())
}

pub fn attendance_set(ctx: &Ctx, policy: AttendancePolicy) -> Result<(), CliError> {
    let (_, op) = host_op(ctx)?;
    match op {
        HostOp::Server(c) => {
            c.set_policy(policy)?;
        }
        HostOp::Direct(mut room, who) => {
            room.set_policy(who, policy)?;
        }
    }
    print_policy(ctx, policy);
    Ok(())
}

pub fn invite(ctx: &Ctx, a: InviteArgs) -> Result<(), CliError> {
    validate_alias(&a.alias).map_err(|e| CliError::msg(e.to_string()))?;
    let (creds, op) = host_op(ctx)?;
    let aliases: Vec<String> = match &op {
        HostOp::Server(c) => c
            .status()?
            .participants
            .into_iter()
            .map(|p| p.alias)
            .collect(),
        HostOp::Direct(room, _) => room
            .participants()
            .iter()
            .map(|p| p.alias.clone())
            .collect(),
    };
    super::typo::confirm_new_alias(&a.alias, &aliases, a.yes)?;
    let answer = match op {
        HostOp::Server(c) => c.invite(&a.alias, a.kind, a.location, a.reach)?,
        HostOp::Direct(mut room, who) => {
            let token = room.invite(who, &a.alias, a.kind, a.location)?;
            if let Some(r) = a.reach {
                room.request_reach(who, &a.alias, r)?;
            }
            let url = room.url().unwrap_or(&creds.url).to_string();
            let mut answer = InviteAnswer::new(&creds.room, &a.alias, a.kind, &token, &url);
            answer.reach_requested = a.reach;
            answer
        }
    };
    remember_host_token(&ctx.home, &creds.room, &a.alias, &answer.token)?;
    ctx.print(&json!(answer), || invite_text(&answer));
    Ok(())
}

/// What `room invite` prints: for a person the browser link first, for an agent the card
/// command first.
fn invite_text(a: &InviteAnswer) -> String {
    let head = format!(
        "Invited {alias} ({kind}) to room {room}. These lines hold {alias}'s token: share them only with {alias}.",
        alias = a.alias,
        kind = a.kind,
        room = a.room,
    );
    let join = format!("agentgather room join {}", shell_quote(&a.invite_uri));
    if a.kind == Kind::Human {
        format!(
            "{head}\n\n  Browser room (send {alias} this link):\n    {browser}\n\n  Their card, as text:\n    {card}\n\n  Or from a terminal:\n    {join}",
            alias = a.alias,
            browser = a.browser_url,
            card = a.card_command,
        )
    } else {
        format!(
            "{head}\n\n  Attend Card (give this command to the agent):\n    {card}\n\n  Browser room:\n    {browser}\n\n  CLI join:\n    {join}",
            card = a.card_command,
            browser = a.browser_url,
        )
    }
}

pub fn invite_card(ctx: &Ctx, a: AliasArg) -> Result<(), CliError> {
    let creds = ctx.session()?.creds;
    let tokens = load_host_tokens(&ctx.home, &creds.room)?;
    let token = tokens.tokens.get(&a.alias).ok_or_else(|| {
        let known: Vec<String> = tokens.tokens.keys().cloned().collect();
        match super::typo::nearest(&a.alias, &known) {
            Some(near) => CliError::msg(format!(
                "this home has no token for {:?} in room {}; did you mean `{near}`?",
                a.alias, creds.room
            )),
            None => CliError::msg(format!("this home has no token for {:?} in room {}; invite it with `agentgather room invite {}`", a.alias, creds.room, a.alias)),
        }
    })?;
    let text = match ctx.local_server(&creds.room) {
        Some(base) => Client::new(&base, token, CALL_TIMEOUT).card(&a.alias)?,
        None => {
            let (room, _) = open_as_host(ctx, &creds, "agentgather room invite-card")?;
            let who = room
                .find(&a.alias)
                .filter(|&i| room.authenticate(token) == Some(i))
                .ok_or_else(|| {
                    CliError::msg(format!(
                        "{:?} is not a participant of room {} with the token this home holds",
                        a.alias, creds.room
                    ))
                })?;
            let url = room.url().unwrap_or(&creds.url).to_string();
            render_card(&room.card_input(who, token, &url))
        }
    };
    ctx.print(&json!({"ok": true, "alias": a.alias, "card": text}), || {
        text.clone()
    });
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The room's state and one line per current participant (alias, kind, reach,
    /// reachable now, attention); removed participants only in the full form.
    #[arg(long)]
    pub compact: bool,
}

pub fn status(ctx: &Ctx, a: StatusArgs) -> Result<(), CliError> {
    let session = ctx.session()?;
    let (s, served) = match super::offline::open(ctx, &session.creds, "agentgather room status")? {
        Some(o) => (o.status(), false),
        None => (session.client(CALL_TIMEOUT).status()?, true),
    };
    let offline_note = (!served).then(|| {
        format!(
            "\nNo server holds the room now (read from its files); serve it with `agentgather up {}`.\n",
            s.room
        )
    });
    if a.compact {
        let c = CompactStatus::of(s);
        ctx.print(&json!(c), || {
            format_compact_status(&c) + offline_note.as_deref().unwrap_or_default()
        });
        return Ok(());
    }
    ctx.print(&json!(s), || {
        format_status(&s) + offline_note.as_deref().unwrap_or_default()
    });
    Ok(())
}

fn format_compact_status(s: &CompactStatus) -> String {
    let mut out = format!(
        "Room {} · {} · brief v{} · policy {} · last #{}",
        s.room, s.room_status, s.brief_version, s.attendance_policy, s.last_id
    );
    for p in &s.participants {
        out.push_str(&format!(
            "\n{} {} reach {}{} · {}",
            p.alias,
            p.kind.as_str(),
            p.reach,
            if p.reachable_now {
                " (reachable now)"
            } else {
                ""
            },
            p.attention.as_str()
        ));
    }
    out
}

fn format_status(s: &StatusAnswer) -> String {
    let mut out = format!(
        "Room {} · {} · brief v{} · policy {} · {}",
        s.room,
        s.room_status,
        s.brief_version,
        s.attendance_policy,
        super::output::plural(s.message_count, "message"),
    );
    if let Some(e) = &s.expires_at {
        out.push_str(&format!(" · closes at {e}"));
    }
    out.push_str(&format!(
        "\nURL {}\n\n{:<20} {:<6} {:<10} {:<14} {:<12} {:>8} {:>6}\n",
        s.url, "ALIAS", "KIND", "ATTENTION", "STATE", "REACH", "SEEN", "READ"
    ));
    for p in &s.participants {
        let seen = p
            .last_seen_age_ms
            .map_or("never".to_string(), |ms| format!("{}s ago", ms / 1000));
        let mut alias = p.alias.clone();
        if p.is_host {
            alias.push_str(" (host)");
        }
        out.push_str(&format!(
            "{:<20} {:<6} {:<10} {:<14} {:<12} {:>8} {:>6}\n",
            alias,
            p.kind.as_str(),
            p.attention.as_str(),
            p.attendance_state.as_str(),
            super::reach::reach_cell(p),
            seen,
            p.read_through_id,
        ));
    }
    out.push_str(&super::reach::reach_warnings(s));
    out
}

pub fn remove(ctx: &Ctx, a: AliasArg) -> Result<(), CliError> {
    let (_, op) = host_op(ctx)?;
    let removed: Result<(), CliError> = match op {
        HostOp::Server(c) => c.remove(&a.alias).map(drop).map_err(CliError::from),
        HostOp::Direct(mut room, who) => {
            room.remove(who, &a.alias).map(drop).map_err(CliError::from)
        }
    };
    if let Err(e) = removed {
        return Err(super::typo::explain_unknown(
            ctx,
            &ctx.session()?,
            &a.alias,
            e,
        ));
    }
    ctx.print(&json!({"ok": true, "removed": a.alias}), || {
        format!("Removed {}; their token no longer works.", a.alias)
    });
    Ok(())
}

pub fn close(ctx: &Ctx) -> Result<(), CliError> {
    let (creds, op) = host_op(ctx)?;
    match op {
        HostOp::Server(c) => {
            c.close()?;
        }
        HostOp::Direct(mut room, who) => {
            room.close_by(who)?;
        }
    }
    ctx.print(
        &json!({"ok": true, "room": creds.room, "room_status": "closed"}),
        || {
            format!(
                "Room {} is closed. Export it with `agentgather export --output {}.md`.",
                creds.room, creds.room
            )
        },
    );
    Ok(())
}

pub fn dashboard(ctx: &Ctx) -> Result<(), CliError> {
    let creds = ctx.session()?.creds;
    let base = ctx
        .local_server(&creds.room)
        .unwrap_or_else(|| creds.url.clone());
    let link = browser_url(&base, &creds.token);
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let opened = std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
        || cfg!(target_os = "macos");
    let opened = opened
        && std::process::Command::new(opener)
            .arg(&link)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    ctx.print(
        &json!({"ok": true, "browser_url": link, "opened": opened}),
        || {
            if opened {
                format!("Opened the browser room: {link}")
            } else {
                format!("Open this link in your browser (it holds your host token):\n  {link}")
            }
        },
    );
    Ok(())
}
