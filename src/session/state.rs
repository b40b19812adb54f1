//! A participant's own state under the home (the CLI's and the MCP adapter's alike): which room is current and, per room, the alias,
//! URL, token and read cursor of this home's participant. Tokens live only in 0600 files
//! here (never in `rooms/`), and are printed back only by commands that exist to do so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::fsutil::{ensure_private_dir, read_json, write_json};
use crate::store::{Home, StoreError};

/// `state.json`: what `room current` shows.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CliState {
    #[serde(default)]
    pub current: Option<Current>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Current {
    pub room: String,
    pub alias: String,
}

/// `credentials/<room>/<alias>.json`: one participant identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub room: String,
    pub alias: String,
    pub url: String,
    pub token: String,
    #[serde(default)]
    pub is_host: bool,
    /// The highest message id this participant has read through the CLI.
    #[serde(default)]
    pub cursor: u64,
}

/// Tokens the host minted, so `room invite-card` can print a card again.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct HostTokens {
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

pub fn state_path(home: &Home) -> PathBuf {
    home.root.join("state.json")
}

fn credentials_path(home: &Home, room: &str, alias: &str) -> PathBuf {
    home.root
        .join("credentials")
        .join(room)
        .join(format!("{alias}.json"))
}

fn host_tokens_path(home: &Home, room: &str) -> PathBuf {
    home.root.join("host").join(room).join("tokens.json")
}

pub fn load_state(home: &Home) -> Result<CliState, StoreError> {
    Ok(read_json(&state_path(home))?.unwrap_or_default())
}

pub fn save_state(home: &Home, state: &CliState) -> Result<(), StoreError> {
    home.ensure()?;
    write_json(&state_path(home), state)
}

pub fn load_credentials(
    home: &Home,
    room: &str,
    alias: &str,
) -> Result<Option<Credentials>, StoreError> {
    read_json(&credentials_path(home, room, alias))
}

pub fn save_credentials(home: &Home, c: &Credentials) -> Result<(), StoreError> {
    let path = credentials_path(home, &c.room, &c.alias);
    home.ensure()?;
    if let Some(dir) = path.parent() {
        ensure_private_dir(&home.root.join("credentials"))?;
        ensure_private_dir(dir)?;
    }
    write_json(&path, c)
}

/// Makes `c` this home's current identity, saving it.
pub fn set_current(home: &Home, c: &Credentials) -> Result<(), StoreError> {
    save_credentials(home, c)?;
    save_state(
        home,
        &CliState {
            current: Some(Current {
                room: c.room.clone(),
                alias: c.alias.clone(),
            }),
        },
    )
}

pub fn load_host_tokens(home: &Home, room: &str) -> Result<HostTokens, StoreError> {
    Ok(read_json(&host_tokens_path(home, room))?.unwrap_or_default())
}

pub fn remember_host_token(
    home: &Home,
    room: &str,
    alias: &str,
    token: &str,
) -> Result<(), StoreError> {
    let path = host_tokens_path(home, room);
    ensure_private_dir(&home.root.join("host"))?;
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
    }
    let mut t = load_host_tokens(home, room)?;
    t.tokens.insert(alias.to_string(), token.to_string());
    write_json(&path, &t)
}
