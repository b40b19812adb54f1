//! Which open rooms this home hosts. The host's home is the one place where the host's
//! token and the room's files live together, and its current identity is what every
//! host command acts as. Running an invite's `room join` line (or `room leave`) there
//! would silently turn the host into someone else, so those commands ask for `--force`
//! first, `room join <room> --alias <host>` goes back to the stored host identity, and
//! `doctor` flags a home that acts as someone other than the host of the room it holds.

use super::output::CliError;
use crate::protocol::validate_room_id;
use crate::session::{Credentials, load_credentials, load_state};
use crate::store::{Home, RoomMeta, RoomStatus};

/// An open room of this home and its host's stored identity.
pub struct Hosted {
    pub room: String,
    pub host: Credentials,
}

/// The open rooms whose files and host credentials are both in this home.
pub fn open_rooms(home: &Home) -> Vec<Hosted> {
    let Ok(entries) = std::fs::read_dir(home.rooms_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<Hosted> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|room| validate_room_id(room).is_ok())
        .filter_map(|room| {
            let path = home.room_dir(&room).join("room.json");
            let meta: RoomMeta = crate::store::fsutil::read_json(&path).ok().flatten()?;
            if meta.status != RoomStatus::Open {
                return None;
            }
            let host = load_credentials(home, &room, meta.host.as_deref()?)
                .ok()
                .flatten()
                .filter(|c| c.is_host)?;
            Some(Hosted { room, host })
        })
        .collect();
    out.sort_by(|a, b| a.room.cmp(&b.room));
    out
}

/// The open rooms this home hosts whose host it would stop acting as if its identity
/// became `next` (`None`: no identity, as after `room leave`).
pub fn displaced(home: &Home, next: Option<(&str, &str)>) -> Vec<Hosted> {
    let current = load_state(home).ok().and_then(|s| s.current);
    open_rooms(home)
        .into_iter()
        .filter(|h| {
            let acting = current
                .as_ref()
                .is_some_and(|c| c.room == h.room && c.alias == h.host.alias);
            let stays = next.is_some_and(|(r, a)| r == h.room && a == h.host.alias);
            acting && !stays
        })
        .collect()
}

/// Refuses to turn a hosting home into someone else unless `force`; `doing` names the
/// change ("join room r as a", "leave room r").
pub fn guard(
    home: &Home,
    next: Option<(&str, &str)>,
    force: bool,
    doing: &str,
) -> Result<(), CliError> {
    if force {
        return Ok(());
    }
    let Some(h) = displaced(home, next).into_iter().next() else {
        return Ok(());
    };
    Err(CliError::new(
        super::output::Exit::Error,
        "hosting_home",
        format!(
            "this home hosts open room {room} as `{host}`; to {doing} here would make it stop acting as the host. Use another home for a participant (AGENTGATHER_HOME=~/.agentgather-<alias> agentgather room join ...), close the room first (`agentgather room close`), or pass --force",
            room = h.room,
            host = h.host.alias,
        ),
    ))
}
