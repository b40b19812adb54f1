//! One writer per room. The lock is an advisory `flock` on the room directory itself:
//! the kernel drops it when the holder dies, however it dies, so a crashed server's lock
//! is taken over by the next start with no stale-pid guessing. It is the directory, not a
//! file in it, because a lock file can be deleted from under its holder, and the next
//! writer would then lock a fresh file and get in. The file `rooms/<room>/lock` only
//! records who holds it (pid, address) so a refused start and `doctor` can say which
//! process; deleting it takes nothing away.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;

/// What the lock file says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    /// The local address a server holding the lock listens on, if it is a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default)]
    pub purpose: String,
}

/// Who holds a lock, in words: "process 41 (room serve) at http://…", or, when the record
/// was deleted from under its holder (pid 0), that some process does.
pub fn holder_text(pid: u32, purpose: &str, addr: Option<&str>) -> String {
    if pid == 0 {
        return "another process (its record, the room's `lock` file, was deleted)".into();
    }
    let mut text = format!("process {pid}");
    if !purpose.is_empty() {
        text.push_str(&format!(" ({purpose})"));
    }
    if let Some(a) = addr {
        text.push_str(&format!(" at http://{a}"));
    }
    text
}

/// A held room lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RoomLock {
    /// The locked room directory; the lock lives as long as this handle.
    _dir: File,
    /// The holder record.
    file: File,
    path: PathBuf,
}

fn open_dir(room_dir: &Path) -> std::io::Result<File> {
    File::open(room_dir)
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

fn read_info(file: &mut File) -> LockInfo {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or_default()
}

impl RoomLock {
    /// Takes the room's lock, or says who holds it.
    pub fn acquire(room_dir: &Path, info: &LockInfo) -> Result<RoomLock, StoreError> {
        let path = room_dir.join("lock");
        let dir = open_dir(room_dir).map_err(|e| StoreError::io(room_dir, e))?;
        let mut file = open_lock_file(&path)?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_info(&mut file);
                return Err(StoreError::Locked {
                    pid: holder.pid,
                    addr: holder.addr,
                    purpose: holder.purpose,
                });
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io(room_dir, e)),
        }
        let mut lock = RoomLock {
            _dir: dir,
            file,
            path,
        };
        lock.update(info)?;
        Ok(lock)
    }

    /// Rewrites the holder record (e.g. once the listening address is known).
    pub fn update(&mut self, info: &LockInfo) -> Result<(), StoreError> {
        let text = serde_json::to_string(info).unwrap_or_default();
        (|| -> std::io::Result<()> {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(text.as_bytes())?;
            self.file.flush()
        })()
        .map_err(|e| StoreError::io(&self.path, e))
    }
}

/// The live holder of a room's lock, or `None` if nobody holds it.
pub fn holder(room_dir: &Path) -> Result<Option<LockInfo>, StoreError> {
    let dir = match open_dir(room_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(room_dir, e)),
    };
    match dir.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => {
            let info = OpenOptions::new()
                .read(true)
                .open(room_dir.join("lock"))
                .map(|mut f| read_info(&mut f))
                .unwrap_or_default();
            Ok(Some(info))
        }
        Err(TryLockError::Error(e)) => Err(StoreError::io(room_dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_release_frees_it() {
        let dir = std::env::temp_dir().join(format!("ag-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = LockInfo {
            pid: std::process::id(),
            addr: Some("127.0.0.1:1".into()),
            purpose: "serve".into(),
        };
        let lock = RoomLock::acquire(&dir, &info).unwrap();
        assert_eq!(holder(&dir).unwrap(), Some(info.clone()));
        match RoomLock::acquire(&dir, &info) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, info.pid),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        assert_eq!(holder(&dir).unwrap(), None);
        assert!(RoomLock::acquire(&dir, &info).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn deleting_the_lock_file_lets_no_second_writer_in() {
        let dir = std::env::temp_dir().join(format!("ag-lock-unlink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = LockInfo {
            pid: std::process::id(),
            addr: None,
            purpose: "serve".into(),
        };
        let _held = RoomLock::acquire(&dir, &info).unwrap();
        std::fs::remove_file(dir.join("lock")).unwrap();
        let refused = RoomLock::acquire(&dir, &info);
        assert!(
            matches!(refused, Err(StoreError::Locked { .. })),
            "a second writer got in after the lock file was deleted"
        );
        let said = refused.unwrap_err().to_string();
        assert!(
            !said.contains("process 0") && said.contains("was deleted"),
            "{said}"
        );
        assert!(holder(&dir).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
