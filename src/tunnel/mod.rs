//! Public room links (SPEC §7). A room server binds loopback and refuses remote `Host`s;
//! a laptop behind NAT has no inbound port anyway. So the host runs `tunnel run`, which
//! keeps one outbound WebSocket to a `broker serve` on a public machine, and the broker
//! routes `https://<broker>/<slug>/…` through it to the room server, which sees ordinary
//! loopback requests. The broker relays and stores no room data.
//!
//! - [`protocol`]: the frames both ends speak (pure data).
//! - [`broker`]: the public relay, its limits, its privacy-preserving access log.
//! - [`client`]: the host side: register, relay, reconnect, set and restore the room's
//!   public URL.

pub mod broker;
pub mod client;
pub mod protocol;
mod rate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;

/// What can stop a broker or a tunnel client.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
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
            TunnelError::Bind { .. } => "bind_failed",
            TunnelError::Config(_) => "invalid_config",
            TunnelError::KeyFile { .. } => "key_file_unreadable",
            TunnelError::Refused { code, .. } | TunnelError::RouteEnded { code, .. } => code,
            TunnelError::Runtime(_) => "error",
        }
    }
}

/// `prefix` + `bytes` random bytes, base64url.
pub(crate) fn random_token(prefix: &str, bytes: usize) -> Result<String, TunnelError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| TunnelError::Runtime(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    ))
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

/// The one task that writes a tunnel WebSocket, on either end: every other task queues
/// frames on the returned sender, so no two writers interleave. It stops after a write
/// fails or a Close frame is sent, then closes the sink.
pub(crate) fn spawn_ws_writer<S>(
    mut sink: S,
) -> (
    tokio::sync::mpsc::UnboundedSender<tokio_tungstenite::tungstenite::Message>,
    tokio::task::JoinHandle<()>,
)
where
    S: futures_util::Sink<tokio_tungstenite::tungstenite::Message> + Unpin + Send + 'static,
{
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (tx, writer)
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
