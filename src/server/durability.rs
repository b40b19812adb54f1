//! Group commit for `--fsync batch`. A post appends its line under the room lock as
//! always, then (outside the lock) waits until a sync covers its offset. One syncer task
//! runs `fdatasync` repeatedly, each covering every append that arrived meanwhile, so
//! durable acknowledgements cost one sync per burst, not one per message.

use std::fs::File;
use std::sync::Arc;

use tokio::sync::watch;

use crate::protocol::ApiError;

/// How far the log is known durable, and how many syncs failed so far.
#[derive(Debug, Clone, Copy, Default)]
struct Durable {
    offset: u64,
    failures: u64,
}

pub struct GroupCommit {
    requested: watch::Sender<u64>,
    durable: watch::Receiver<Durable>,
}

impl GroupCommit {
    /// Starts the syncer for `file`, whose first `initial` bytes count as durable.
    pub fn start(file: File, initial: u64) -> GroupCommit {
        let (requested, mut req_rx) = watch::channel(initial);
        let (durable_tx, durable) = watch::channel(Durable {
            offset: initial,
            failures: 0,
        });
        let file = Arc::new(file);
        tokio::spawn(async move {
            let mut state = Durable {
                offset: initial,
                failures: 0,
            };
            while req_rx.changed().await.is_ok() {
                let target = *req_rx.borrow_and_update();
                if target <= state.offset {
                    continue;
                }
                let f = file.clone();
                match tokio::task::spawn_blocking(move || f.sync_data()).await {
                    Ok(Ok(())) => state.offset = target,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "fdatasync of the message log failed");
                        state.failures += 1;
                    }
                    Err(_) => state.failures += 1,
                }
                durable_tx.send_replace(state);
            }
        });
        GroupCommit { requested, durable }
    }

    /// Waits until the log is durable through `offset`.
    pub async fn wait(&self, offset: u64) -> Result<(), ApiError> {
        let mut rx = self.durable.clone();
        let failures_before = rx.borrow().failures;
        self.requested.send_modify(|r| *r = (*r).max(offset));
        loop {
            let now = *rx.borrow_and_update();
            if now.offset >= offset {
                return Ok(());
            }
            if now.failures > failures_before {
                return Err(ApiError::storage(
                    "the message was written but could not be synced to disk",
                ));
            }
            if rx.changed().await.is_err() {
                return Err(ApiError::storage("the log syncer stopped"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_resolve_once_synced() {
        let path = std::env::temp_dir().join(format!("ag-gc-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let gc = GroupCommit::start(File::open(&path).unwrap(), 0);
        let waits: Vec<_> = (1..=10).map(|o| gc.wait(o)).collect();
        for w in waits {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .unwrap()
                .unwrap();
        }
        std::fs::remove_file(&path).unwrap();
    }
}
