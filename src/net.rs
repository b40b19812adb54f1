//! What the room server and the tunnel broker share about taking connections: binding,
//! admission under a connection cap (over the cap a connection is closed at once, never
//! queued, so a flood cannot pile up memory), the stop signal (SIGINT or SIGTERM, as
//! systemd sends) and the drain that lets connections in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// A listener that could not be opened, with the address it was for.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds `addr`, returning the listener and the address it got (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let fail = |source| BindError { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

/// The connections a server has in flight, and the signal asking them to finish.
/// Each connection task holds a [`DrainWatch`]; [`Drain::drain`] asks them all to stop
/// taking requests and waits (bounded) until the last one is gone.
pub struct Drain {
    stop: watch::Sender<bool>,
    live: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

/// A connection's view of the [`Drain`]: it lives as long as the connection, and holds
/// the connection's place under the connection cap until then.
pub struct DrainWatch {
    stop: watch::Receiver<bool>,
    _live: mpsc::Sender<()>,
    _admitted: OwnedSemaphorePermit,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    pub fn new() -> Drain {
        let (live, done) = mpsc::channel(1);
        Drain {
            stop: watch::channel(false).0,
            live,
            done,
        }
    }

    /// The watch of a connection admitted with `permit` ([`accept_capped`]).
    pub fn watch(&self, permit: OwnedSemaphorePermit) -> DrainWatch {
        DrainWatch {
            stop: self.stop.subscribe(),
            _live: self.live.clone(),
            _admitted: permit,
        }
    }

    /// Asks every connection to finish, then waits up to `timeout` for them; `true` when
    /// all finished in time.
    pub async fn drain(self, timeout: Duration) -> bool {
        let Drain {
            stop,
            live,
            mut done,
        } = self;
        stop.send_replace(true);
        drop(live);
        tokio::time::timeout(timeout, done.recv()).await.is_ok()
    }
}

impl DrainWatch {
    /// Resolves once a drain was asked for.
    pub async fn stopping(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }

    /// Drives a connection to its end; once a drain starts, asks it to finish what is in
    /// flight (`finish`, e.g. hyper's `graceful_shutdown`) and waits for that.
    ///
    /// Spawn this future itself, and build `conn` in the call: the connection is then
    /// stored once, in this future's arguments, and polled in place (it is taken `Unpin`
    /// for that). A copy moved into another future, by pinning, by `.await` on a value
    /// or by a wrapping `async move` block, would cost ~1 KB more for every idle
    /// connection a server holds.
    pub async fn serve<C: Future + Unpin>(mut self, mut conn: C, finish: impl FnOnce(Pin<&mut C>)) {
        tokio::select! {
            _ = &mut conn => return,
            _ = self.stopping() => finish(Pin::new(&mut conn)),
        }
        let _ = (&mut conn).await;
    }
}

/// The next connection admitted under `cap`, with the permit it holds until dropped.
/// Accept errors (e.g. out of file descriptors) are logged and retried after a pause.
pub async fn accept_capped(
    listener: &TcpListener,
    cap: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = cap.clone().try_acquire_owned() else {
            // Over the connection cap: close at once rather than queue.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        return (stream, peer, permit);
    }
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Packs the heap of a server that holds many idle connections. Each connection keeps a
/// few small buffers that the runtime's worker threads allocate and free on whichever
/// thread runs it; with glibc's default per-thread arenas, pages freed in one arena are
/// not reused by the other, so held waits cost more resident memory. One arena brings a
/// held `/wait` from about 16.5 KB to under 15 KB (README, Performance); posts at the
/// default `--fsync batch` measured the same, unsynced posts lost ~15% of their peak to
/// the shared arena's lock. Call it before any thread starts; `MALLOC_ARENA_MAX` in the
/// environment still wins.
pub fn compact_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc tunable, and no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
