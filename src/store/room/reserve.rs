//! Closing a room must work when nothing else does: on a full disk a host closes the room
//! to stop it, and closing rewrites `room.json` and appends a line. So every room keeps a
//! small file of real blocks (`close.reserve`, written at open, best effort), and when a
//! close cannot write, the reserve is given back to the file system and the close tried
//! again. The next open writes a new reserve once there is space.

use std::path::Path;

use super::{Closed, Room};
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::protocol::{ApiError, RoomStatus};
use crate::store::StoreError;
use crate::store::fsutil::write_private;

const RESERVE_FILE: &str = "close.reserve";
/// Enough for a temporary `room.json` and the close's line, with room for what the file
/// system needs around them.
const RESERVE_BYTES: usize = 64 * 1024;

/// Writes the reserve unless it is there already. A failure (no space right now) is
/// not an error: the room opens anyway, only without its reserve.
pub(super) fn ensure(dir: &Path) {
    let path = dir.join(RESERVE_FILE);
    let whole = std::fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64);
    if !whole && let Err(e) = write_private(&path, &vec![0u8; RESERVE_BYTES]) {
        tracing::warn!(error = %e, "no space for the close reserve");
    }
}

/// Gives the reserve back; whether there was one.
fn release(dir: &Path) -> bool {
    std::fs::remove_file(dir.join(RESERVE_FILE)).is_ok()
}

/// Runs a write, and once more after releasing the reserve if it failed for space.
fn with_reserve<T>(
    dir: &Path,
    mut write: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match write() {
        Err(StoreError::Write { .. }) if release(dir) => write(),
        other => other,
    }
}

impl Room {
    /// Closes the room with a `system` message saying why. Only a saved close changes
    /// the room: a failure leaves it open, and says so.
    pub fn close(&mut self, reason: &str) -> Result<Closed, ApiError> {
        if !self.is_open() {
            return Ok(Closed::Already);
        }
        let mut meta = self.meta.clone();
        meta.status = RoomStatus::Closed;
        meta.closed_at = Some(format_ms(now_ms()));
        meta.closed_reason = Some(reason.to_string());
        let dir = self.dir.clone();
        let path = dir.join("room.json");
        with_reserve(&dir, || crate::store::fsutil::write_json(&path, &meta))?;
        self.meta = meta;
        let text = format!("Room closed: {reason}.");
        let row = self.system(text.clone()).or_else(|e| {
            if release(&dir) {
                self.system(text)
            } else {
                Err(e)
            }
        });
        if let Err(e) = row {
            // The room is closed (room.json says so); only its notice could not be logged.
            tracing::warn!(error = %e.message, "the room closed without its closing row");
        }
        Ok(Closed::Now)
    }
}
