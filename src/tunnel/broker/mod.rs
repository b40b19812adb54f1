//! `broker serve`: the public half of a room link. It runs on a machine with a public
//! name, behind a TLS proxy, and routes `https://<slug>.<broker domain>/…` to whichever
//! host holds `<slug>` over that host's one outbound WebSocket (see [`super::protocol`]).
//! Each room is its own web origin ([`Routing::Host`]); the shared-origin path routing is
//! only there behind the operator's explicit `--path-routing`.
//!
//! Why it is built like this:
//! - It holds no room data. Requests and answers stream through in chunks; the only
//!   state is route metadata (slug, route id, the hash of the route secret, the host
//!   connection, created / last-seen / expiry). The access log on stdout names a route by
//!   a keyed hash that changes with every broker process, and a path by a fixed class.
//! - Every route is owned by the connection that registered it, proven by a secret only
//!   that host learned. A second host can neither take a live slug (409
//!   `route_slug_taken`) nor act on it; a reclaim needs the secret (403
//!   `route_auth_failed`).
//! - A public service is abused, so every limit of SPEC §7 refuses with its own stable
//!   [`Code`](super::protocol::Code).
//! - SIGTERM drains: no new requests, in-flight ones (held waits included) finish, then
//!   hosts are told `broker_shutdown` so they reconnect to the next broker process.
//! - Restarts keep links: a route secret is an HMAC of the route id (which carries the
//!   expiry) and slug under a persistent route key ([`secrets`]), so the next process
//!   verifies a returning host with no stored table, and for a grace period admits only
//!   returning hosts, so no one can take a slug whose host is reconnecting.
//!
//! The files are layers: each imports only files below it, so a change to one layer can
//! be read and tested without the ones above. From the bottom:
//! 1. Leaves, importing nothing of the broker: [`config`] (the options), [`counters`]
//!    (what is counted, bumped from every layer above), [`secrets`] (route secrets).
//! 2. [`refusal`] (refusals and the access log, which counts), [`conn`] (a host
//!    connection's multiplexed streams), [`route`] (a slug's route over its connection,
//!    and the one owner of its end), [`reserve`] (slugs kept across restarts).
//! 3. [`state`]: the shared state with the route table, and its reaper.
//! 4. What the other instances hold: [`peers`] (asked every second) and [`push`] (told
//!    before a new slug is confirmed).
//! 5. [`host`] (upgrade, registration, a host's frames), then [`proxy`] (participants'
//!    requests, which hand the tunnel path to `host`).
//! 6. The listeners: [`listen`] (the public one: HTTP/1.1, or h2c from an edge proxy) and
//!    [`operators`] (metrics, health, `/reservations` for the peers).
//! 7. This file: `serve`, which starts them all and drains; nothing imports it.

mod config;
mod conn;
mod counters;
mod host;
mod listen;
mod operators;
mod peers;
mod proxy;
mod push;
mod refusal;
mod reserve;
mod route;
mod secrets;
mod state;

pub use config::{BrokerConfig, BrokerLimits, DEFAULT_BROKER_PORT, Routing};
pub use peers::authority as peer_authority;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::TunnelError;
use state::Broker;

/// Serves until SIGINT/SIGTERM, then drains and returns.
pub async fn serve(cfg: BrokerConfig) -> Result<(), TunnelError> {
    config::check(&cfg)?;
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let (listener, local) = crate::net::bind(addr).await?;
    let max_connections = cfg.max_connections;
    let operators_listener = match cfg.metrics_addr {
        Some(addr) => Some(crate::net::bind(addr).await?),
        None => None,
    };
    let b = Arc::new(Broker::new(cfg, format!("http://{local}"))?);
    if b.cfg.routing == Routing::Path {
        eprintln!(
            "agentgather: warning: --path-routing: every room on this broker shares one web origin, so a host's page can read what other rooms' pages keep in the browser; prefer https://<slug>.<domain> (docs/deploy-broker.md)"
        );
    }
    eprintln!(
        "agentgather: broker listening on {local}; public URL {}; {}; ctrl-c or SIGTERM drains and stops",
        b.cfg
            .public_url
            .as_deref()
            .unwrap_or("(from each host's request)"),
        if b.key_hashes.is_empty() {
            "any host may register"
        } else {
            "hosts need an operator key"
        }
    );
    let reaper = tokio::spawn(state::reap(b.clone()));
    let following = (!b.cfg.peers.is_empty()).then(|| tokio::spawn(peers::follow(b.clone())));
    if let Some((listener, addr)) = operators_listener {
        eprintln!("agentgather: broker metrics on http://{addr}/metrics (and /healthz, /readyz)");
        tokio::spawn(operators::serve(b.clone(), listener));
    }
    let drain = crate::net::Drain::new();
    let connections = Arc::new(Semaphore::new(max_connections));
    let servers = Arc::new(listen::Servers::new(b.cfg.h2_max_streams, b.heartbeat()));
    let stop = crate::net::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            (stream, peer, permit) = crate::net::accept_capped(&listener, &connections) => {
                tokio::spawn(listen::serve(servers.clone(), b.clone(), stream, peer, drain.watch(permit)));
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    eprintln!("agentgather: broker draining: no new requests, finishing those in flight");
    b.start_draining();
    let drained = drain.drain(b.cfg.drain_timeout).await;
    reaper.abort();
    if let Some(f) = following {
        f.abort();
    }
    let writers_busy = b.close_all();
    // Give the host writers a moment to put the closing frames on the wire.
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!(
        "agentgather: broker stopped{}",
        if drained && writers_busy == 0 {
            ""
        } else {
            " (some requests were cut at the drain timeout)"
        }
    );
    Ok(())
}
