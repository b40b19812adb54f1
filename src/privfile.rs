//! Every file this crate writes holds room content or secrets (room logs, tokens, route
//! secrets, the broker's reservations), so there is one way to write a file whole: private
//! (0600, in a 0700 directory) and through a temporary file and a rename, so a crash leaves
//! the old version or the new one, never half of each. A leaf: `store` maps its errors to
//! storage errors, `tunnel` uses it as is.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates what is missing of `dir` (and its parents) as 0700; a directory that exists is
/// left as it is (an operator may point a file into a shared directory such as
/// `/var/lib`).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Like [`create_dir`], and tightens `dir` itself to 0700 if it existed looser: for the
/// directories this crate owns (a home, a room).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    create_dir(dir)?;
    if fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically, mode 0600, synced (the file, then the rename
/// as far as the filesystem allows). The temporary file is named for this process, so two
/// processes rewriting the same file never write into one temporary file, and it is
/// removed when the rewrite fails.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            // Persist the rename itself; best effort, some filesystems refuse.
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_private_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ag-privfile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        create_private_dir(&dir.join("sub")).unwrap();
        let file = dir.join("sub").join("secret.json");
        replace(&file, b"one").unwrap();
        replace(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.join("sub")), 0o700);
        let names: Vec<_> = fs::read_dir(dir.join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
        // A looser directory is left alone by create_dir, tightened by create_private_dir.
        fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o755)).unwrap();
        create_dir(&dir.join("sub")).unwrap();
        assert_eq!(mode(&dir.join("sub")), 0o755);
        create_private_dir(&dir.join("sub")).unwrap();
        assert_eq!(mode(&dir.join("sub")), 0o700);
        // A rewrite that cannot happen (the target is a directory) leaves no temporary.
        assert!(replace(&dir.join("sub"), b"x").is_err());
        assert!(
            fs::read_dir(&dir)
                .unwrap()
                .all(|e| { !e.unwrap().file_name().to_string_lossy().contains("tmp-") })
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
