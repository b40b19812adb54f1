//! Every file we write holds room content or secrets, so the only way to create one is
//! private (0700 dirs, 0600 files); whole-file rewrites are `crate::privfile`'s, with its
//! errors as storage errors.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::StoreError;

/// Creates `dir` (and parents) as 0700, and tightens it if it already existed looser.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StoreError> {
    crate::privfile::create_private_dir(dir).map_err(|e| StoreError::io(dir, e))
}

/// Replaces `path` with `bytes` atomically, mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    // A failed rewrite is a write failure (a full disk answers 507, not 500).
    crate::privfile::replace(path, bytes).map_err(|e| StoreError::write(path, e))
}

/// Writes `value` as pretty JSON, atomically, 0600.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::corrupt(path, format!("cannot serialize: {e}")))?;
    bytes.push(b'\n');
    write_private(path, &bytes)
}

/// Reads and parses a JSON file; `Ok(None)` if it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::corrupt(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Opens (creating 0600) a file for reading and appending.
pub fn open_private_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}
