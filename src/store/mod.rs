//! Everything on disk: the home layout of SPEC §3, the room files, the message log, the
//! writer lock, and the [`Room`] engine that owns them while a room is open in this
//! process (the server, or the host CLI when no server runs). Nothing outside this module
//! writes room files, which is what makes "one writer per room" enforceable.

pub mod export;
pub mod fsutil;
pub mod lock;
pub mod log;
pub mod records;
pub mod room;

use std::path::{Path, PathBuf};

pub use lock::{LockInfo, RoomLock};
pub use log::{FsyncMode, MessageLog, StoredMessage};
pub use records::{ParticipantRecord, RoomMeta, RoomStatus};
pub use room::{Room, RoomOptions};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the room is in use by {}; stop it first (or use it: the CLI talks to it)",
        lock::holder_text(*pid, purpose, addr.as_deref()))]
    Locked {
        pid: u32,
        addr: Option<String>,
        purpose: String,
    },
    #[error("no room {0:?} here; create it with `agentgather room start {0}`")]
    NoRoom(String),
    #[error("room {0:?} already exists")]
    RoomExists(String),
    #[error("cannot find a home directory: set AGENTGATHER_HOME")]
    NoHome,
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn write(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The one mapping of a storage failure to the error contract: a failed write (a full
/// disk) is 507 `room_log_full`, anything else 500 `storage_error`.
impl From<StoreError> for crate::protocol::ApiError {
    fn from(e: StoreError) -> Self {
        use crate::protocol::ApiError;
        match &e {
            StoreError::Write { .. } => {
                ApiError::storage(format!("the room could not store it: {e}"))
            }
            _ => ApiError::new(500, "storage_error", e.to_string()),
        }
    }
}

/// `$AGENTGATHER_HOME` (default `~/.agentgather`): rooms, and the CLI's own state.
#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn from_env() -> Result<Home, StoreError> {
        if let Some(h) = std::env::var_os("AGENTGATHER_HOME").filter(|h| !h.is_empty()) {
            return Ok(Home {
                root: PathBuf::from(h),
            });
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(StoreError::NoHome)?;
        Ok(Home {
            root: PathBuf::from(home).join(".agentgather"),
        })
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Creates the home (0700) if needed.
    pub fn ensure(&self) -> Result<(), StoreError> {
        fsutil::ensure_private_dir(&self.root)
    }

    pub fn rooms_dir(&self) -> PathBuf {
        self.root.join("rooms")
    }

    /// `rooms/<room>`; the caller has validated `room` as a slug.
    pub fn room_dir(&self, room: &str) -> PathBuf {
        self.rooms_dir().join(room)
    }

    pub fn room_exists(&self, room: &str) -> bool {
        self.room_dir(room).join("room.json").is_file()
    }
}
