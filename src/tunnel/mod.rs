//! Public room links (SPEC §7). A room server binds loopback and refuses remote `Host`s;
//! a laptop behind NAT has no inbound port anyway. So the host runs `tunnel run`, which
//! keeps one outbound WebSocket to a `broker serve` on a public machine, and the broker
//! routes `https://<slug>.<broker domain>/…` through it to the room server, which sees ordinary
//! loopback requests. The broker relays and stores no room data.
//!
//! - [`protocol`]: the frames both ends speak, their one reader and writer, and the
//!   typed codes of every refusal.
//! - [`broker`]: the public side (`broker serve`): routing, its limits, its
//!   privacy-preserving access log.
//! - [`relay`]: the host side (`tunnel run`): register, relay, reconnect, set and restore
//!   the room's public URL.
//!
//! Layering: this module speaks to a room server only over HTTP ([`crate::client`]); it
//! never reads room files (`crate::store`) nor links the server (`crate::server`).

pub mod broker;
pub mod protocol;
mod rate;
pub mod relay;

use std::path::{Path, PathBuf};

use base64::Engine;

/// What can stop a broker or a tunnel client.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Bind(#[from] crate::net::BindError),
    #[error("{0}")]
    Config(String),
    #[error("cannot read {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The broker refused the registration (a taken slug, a bad operator key, …).
    #[error("the broker refused the route: {message} ({code})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The broker ended the route for good (lifetime reached, taken over elsewhere).
    #[error("the broker ended the route: {message} ({code})")]
    RouteEnded { code: String, message: String },
    #[error("{0}")]
    Runtime(String),
}

impl TunnelError {
    /// The stable code of this error, for `--json` output.
    pub fn code(&self) -> &str {
        match self {
            TunnelError::Bind(_) => "bind_failed",
            TunnelError::Config(_) => "invalid_config",
            TunnelError::KeyFile { .. } => "key_file_unreadable",
            TunnelError::Refused { code, .. } | TunnelError::RouteEnded { code, .. } => code,
            TunnelError::Runtime(_) => "error",
        }
    }
}

/// `prefix` + `bytes` random bytes, base64url.
/// A mutex's guard even if a thread panicked while holding it: every table behind one here
/// stays consistent between statements, so the data is still good to use.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn random_token(prefix: &str, bytes: usize) -> Result<String, TunnelError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| TunnelError::Runtime(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    ))
}

/// Writes `bytes` to `path` whole and private (0600, its directory 0700).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::privfile::create_dir(dir)?;
    }
    crate::privfile::replace(path, bytes)
}

/// Operator keys from a file: one per line; blank lines and `#` comments are skipped.
pub fn read_key_file(path: &Path) -> Result<Vec<String>, TunnelError> {
    let text = std::fs::read_to_string(path).map_err(|source| TunnelError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(TunnelError::Config(format!(
            "{} holds no key (one key per line)",
            path.display()
        )));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_skip_comments_and_blanks() {
        let dir = std::env::temp_dir().join(format!("ag-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("keys");
        std::fs::write(&f, "# operators\n\n  key-one  \nkey-two\n").unwrap();
        assert_eq!(read_key_file(&f).unwrap(), vec!["key-one", "key-two"]);
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(read_key_file(&f).is_err());
        assert!(read_key_file(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_token("rts_", 32).unwrap();
        assert!(a.starts_with("rts_") && a.len() == 4 + 43);
        assert_ne!(a, random_token("rts_", 32).unwrap());
    }
}
