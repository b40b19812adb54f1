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
//! The parts: [`listen`] (a connection of the public listener: HTTP/1.1, or h2c from an
//! edge proxy), [`refusal`] (refusals and the access log), [`conn`] (a host connection's
//! multiplexed streams), [`route`] (route metadata and the reaper), [`secrets`] (route
//! secrets), [`host`] (upgrade, registration, a host's frames), [`proxy`] (participants'
//! requests), [`reserve`] (slugs kept across restarts), [`peers`] and [`push`] (what the
//! other instances of a deployment hold: asked every second, and told before a new slug
//! is confirmed); this file holds the configuration, the shared state and `serve`.

mod conn;
mod counters;
mod host;
mod listen;
mod operators;
mod peers;

pub use peers::authority as peer_authority;
mod proxy;
mod push;
mod refusal;
mod reserve;
mod route;
mod secrets;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::TunnelError;
use super::protocol::{Code, RouteLimits};
use super::rate::IpLimiter;
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::tunnel::lock;
use refusal::log_line;
use route::Route;

/// The default port of `broker serve`.
pub const DEFAULT_BROKER_PORT: u16 = 8799;

/// Per-route limits and broker-wide caps (SPEC §7 defaults).
#[derive(Debug, Clone)]
pub struct BrokerLimits {
    pub max_requests: u32,
    pub max_waits: u32,
    pub max_request_body: u64,
    pub max_response: u64,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Requests per minute per address without a token (and with one the room refused).
    pub ip_requests_per_min: u32,
    /// Requests per minute per address with a token.
    pub ip_authed_requests_per_min: u32,
    pub route_requests_per_min: u32,
    pub max_routes: usize,
    /// Live and reserved routes one client address may hold.
    pub max_routes_per_address: usize,
    /// Live and reserved routes one operator key may hold.
    pub max_routes_per_key: usize,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        BrokerLimits {
            max_requests: 512,
            max_waits: 256,
            max_request_body: 64 * 1024,
            max_response: crate::protocol::bounds::RESPONSE_LIMIT,
            idle_timeout: Duration::from_secs(15 * 60),
            max_lifetime: Duration::from_secs(8 * 60 * 60),
            ip_requests_per_min: 60,
            ip_authed_requests_per_min: 600,
            route_requests_per_min: 6_000,
            max_routes: 1_000,
            max_routes_per_address: 10,
            max_routes_per_key: 200,
        }
    }
}

/// How the broker finds the room a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// `https://<slug>.<broker domain>/…`: one web origin per room, so no room's page can
    /// read another room's storage, register a service worker over it, or share its Web
    /// Lock and BroadcastChannel (wildcard DNS and certificate, or on-demand TLS).
    #[default]
    Host,
    /// `https://<broker>/<slug>/…`: every room on the broker shares one origin. Only
    /// behind the operator's explicit `--path-routing`.
    Path,
}

/// How `broker serve` runs.
#[derive(Clone)]
pub struct BrokerConfig {
    pub host: IpAddr,
    pub port: u16,
    pub routing: Routing,
    /// The public base URL (`https://broker.example`); default: from each host's request.
    pub public_url: Option<String>,
    /// Operator keys; when any are set, only hosts presenting one may register.
    pub host_keys: Vec<String>,
    pub limits: BrokerLimits,
    /// How often hosts heartbeat and the broker pings.
    pub heartbeat: Duration,
    /// How long a request may wait for the head of its answer.
    pub request_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests.
    pub drain_timeout: Duration,
    /// After start, unknown slugs answer 503 (hosts are reconnecting) instead of 404.
    pub restart_grace: Duration,
    pub register_timeout: Duration,
    pub max_connections: usize,
    /// Concurrent requests one HTTP/2 (h2c) connection may carry: an edge proxy's
    /// connection to the broker carries many participants' requests.
    pub h2_max_streams: u32,
    /// Derives route secrets, so that a restarted broker can verify a host's reclaim of
    /// the route it held before (keep the key across restarts). None: random secrets.
    pub route_key: Option<Vec<u8>>,
    /// The key outlived an earlier broker process: if that process left no record of its
    /// slugs (`state_file`), only reclaims may register during the restart grace.
    pub routes_may_return: bool,
    /// Where the slugs held (and until when) are kept across restarts, by MAC only.
    pub state_file: Option<std::path::PathBuf>,
    /// A separate listener for `/metrics` (Prometheus text), `/healthz` and `/readyz`.
    pub metrics_addr: Option<SocketAddr>,
    /// The other instances of this deployment, as `host:port` of their metrics
    /// listeners: the slugs they hold are refused to newcomers here, also once they die.
    pub peers: Vec<String>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("routing", &self.routing)
            .field("public_url", &self.public_url)
            .field("host_keys", &self.host_keys.len())
            .field("limits", &self.limits)
            .field("route_key", &self.route_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_BROKER_PORT,
            routing: Routing::Host,
            public_url: None,
            host_keys: Vec::new(),
            limits: BrokerLimits::default(),
            heartbeat: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            restart_grace: Duration::from_secs(30),
            register_timeout: Duration::from_secs(10),
            max_connections: 8192,
            h2_max_streams: 256,
            route_key: None,
            routes_may_return: false,
            state_file: None,
            metrics_addr: None,
            peers: Vec::new(),
        }
    }
}

/// The broker's shared state.
struct Broker {
    cfg: BrokerConfig,
    routes: Mutex<HashMap<String, Arc<Route>>>,
    reserved: reserve::Reservations,
    counters: Arc<counters::Counters>,
    /// Requests without a token, and those the room refused (401/403/410), per address.
    ips: IpLimiter,
    /// Requests with a token, per address.
    ips_authed: IpLimiter,
    hash_key: [u8; 32],
    key_hashes: Vec<[u8; 32]>,
    next_conn: AtomicU64,
    draining: AtomicBool,
    started: Instant,
    local_url: String,
}

impl Broker {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, Arc<Route>>> {
        lock(&self.routes)
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The name of a route in logs: a hash keyed by a per-process secret, so the log
    /// cannot be matched against a list of guessed slugs.
    fn route_hash(&self, slug: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.hash_key);
        h.update(slug.as_bytes());
        crate::protocol::token::to_hex(&h.finalize()[..8])
    }

    /// Which operator key `key` is (constant time), if any.
    fn key_index(&self, key: &str) -> Option<usize> {
        let k: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.key_hashes
            .iter()
            .enumerate()
            .fold(None, |found, (i, h)| {
                if bool::from(h.ct_eq(&k)) {
                    Some(i)
                } else {
                    found
                }
            })
    }

    /// The most of a route's request rate (per minute) one address may use while
    /// `active` addresses use the route: an equal part of it, so the budget is shared
    /// fairly however many participants there are; at most half, so one address alone
    /// never starves the participants still to come; at least a 64th, so a page load
    /// still fits in a crowded room (past 64 addresses the route's own rate still caps
    /// the sum).
    fn route_share(&self, active: usize) -> u32 {
        let parts = active.clamp(2, 64) as u32;
        (self.cfg.limits.route_requests_per_min / parts).max(1)
    }

    fn heartbeat(&self) -> Duration {
        self.cfg
            .heartbeat
            .min(self.cfg.limits.idle_timeout / 3)
            .max(Duration::from_millis(100))
    }

    fn route_limits(&self) -> RouteLimits {
        let l = &self.cfg.limits;
        RouteLimits {
            max_requests: l.max_requests,
            max_waits: l.max_waits,
            max_request_body: l.max_request_body,
            max_response: l.max_response,
            idle_timeout_ms: l.idle_timeout.as_millis() as u64,
            max_lifetime_ms: l.max_lifetime.as_millis() as u64,
            route_requests_per_min: l.route_requests_per_min,
            ip_requests_per_min: l.ip_requests_per_min,
        }
    }

    /// The base participants use: `--public-url`, else what the host's request shows
    /// (its `Host`, and `X-Forwarded-Proto` when a local proxy set it).
    fn public_base(&self, headers: &HeaderMap, peer: SocketAddr) -> String {
        if let Some(u) = &self.cfg.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_authority(h));
        let proto = peer
            .ip()
            .is_loopback()
            .then(|| {
                headers
                    .get("x-forwarded-proto")
                    .and_then(|h| h.to_str().ok())
            })
            .flatten()
            .filter(|p| *p == "https" || *p == "http");
        match host {
            Some(h) => format!("{}://{h}", proto.unwrap_or("http")),
            None => self.local_url.clone(),
        }
    }

    /// The room's public URL under `base`: its own origin, or a path on the broker's.
    fn room_url(&self, base: &str, slug: &str) -> String {
        match (self.cfg.routing, base.split_once("://")) {
            (Routing::Host, Some((scheme, authority))) => format!("{scheme}://{slug}.{authority}"),
            _ => format!("{base}/{slug}"),
        }
    }

    /// The broker's own host name (no port), when `--public-url` names it.
    fn domain(&self) -> Option<String> {
        let url = self.cfg.public_url.as_deref()?;
        let authority = url.split_once("://")?.1.split('/').next()?;
        Some(host_name(authority).to_ascii_lowercase())
    }

    /// The slug a `Host` names under host routing: `<slug>.<broker domain>`. Without
    /// `--public-url` the broker's domain is whatever follows the first label.
    fn slug_of_host(&self, host: &str) -> Option<String> {
        let name = host_name(host).to_ascii_lowercase();
        let (slug, rest) = name.split_once('.')?;
        let ok = match self.domain() {
            Some(d) => rest.trim_end_matches('.') == d,
            None => !rest.is_empty(),
        };
        (ok && super::protocol::validate_slug(slug).is_ok()).then(|| slug.to_string())
    }

    /// The slug a request is for and the path left for the room server. `host` is the
    /// authority the request names (`Host`, or `:authority` over HTTP/2).
    fn route_of(&self, host: Option<&str>, path: &str) -> Option<(String, String)> {
        match self.cfg.routing {
            Routing::Path => {
                let (slug, rest) = super::protocol::split_slug(path)?;
                super::protocol::validate_slug(slug).ok()?;
                Some((slug.to_string(), rest.to_string()))
            }
            Routing::Host => {
                let slug = self.slug_of_host(host?)?;
                Some((slug, path.to_string()))
            }
        }
    }

    fn event(&self, event: &str, route: &str, extra: serde_json::Value) {
        let mut line = json!({"ts": format_ms(now_ms()), "event": event, "route": route});
        if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
            obj.extend(more);
        }
        log_line(&line);
    }

    /// Removes `route` from the table if it is still the one there.
    fn remove_route(&self, route: &Arc<Route>) -> bool {
        let mut routes = self.routes();
        if routes
            .get(&route.slug)
            .is_some_and(|r| Arc::ptr_eq(r, route))
        {
            routes.remove(&route.slug);
            self.reserved.changed();
            true
        } else {
            false
        }
    }

    /// Tells every host the broker is going away; returns the requests still in flight.
    fn close_all(&self) -> usize {
        let routes: Vec<Arc<Route>> = self.routes().drain().map(|(_, r)| r).collect();
        // Their slugs stay reserved for their hosts across the restart.
        self.reserved.changed();
        self.reserved.save(&routes);
        let mut busy = 0usize;
        for route in routes {
            if let Some(conn) = route.take_conn() {
                busy += conn.in_flight();
                conn.close_route(
                    Code::BrokerShutdown,
                    "the broker is restarting; reconnect and reclaim the route",
                );
            }
            self.event(
                "route_closed",
                &route.hash,
                json!({"code": Code::BrokerShutdown.as_str()}),
            );
        }
        busy
    }
}

/// `host[:port]` without the port (IPv6 literals keep their brackets).
fn host_name(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn valid_authority(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

fn check_config(cfg: &BrokerConfig) -> Result<(), TunnelError> {
    if let Some(u) = &cfg.public_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(TunnelError::Config(format!(
            "--public-url must start with https:// (got {u:?})"
        )));
    }
    Ok(())
}

/// Serves until SIGINT/SIGTERM, then drains and returns.
pub async fn serve(cfg: BrokerConfig) -> Result<(), TunnelError> {
    check_config(&cfg)?;
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let (listener, local) = crate::net::bind(addr).await?;
    let mut hash_key = [0u8; 32];
    getrandom::fill(&mut hash_key).map_err(|e| TunnelError::Config(e.to_string()))?;
    let key_hashes = cfg
        .host_keys
        .iter()
        .map(|k| Sha256::digest(k.as_bytes()).into())
        .collect();
    let max_connections = cfg.max_connections;
    let reserved = reserve::Reservations::load(cfg.state_file.clone(), cfg.route_key.clone());
    let metrics_listener = match cfg.metrics_addr {
        Some(addr) => Some(crate::net::bind(addr).await?),
        None => None,
    };
    let b = Arc::new(Broker {
        reserved,
        counters: Arc::default(),
        ips: IpLimiter::new(cfg.limits.ip_requests_per_min),
        ips_authed: IpLimiter::new(cfg.limits.ip_authed_requests_per_min),
        cfg,
        routes: Mutex::new(HashMap::new()),
        hash_key,
        key_hashes,
        next_conn: AtomicU64::new(1),
        draining: AtomicBool::new(false),
        started: Instant::now(),
        local_url: format!("http://{local}"),
    });
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
    let reaper = tokio::spawn(route::reap(b.clone()));
    let following = (!b.cfg.peers.is_empty()).then(|| tokio::spawn(peers::follow(b.clone())));
    if let Some((listener, addr)) = metrics_listener {
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
    b.draining.store(true, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(routing: Routing, public_url: Option<&str>) -> Broker {
        Broker {
            cfg: BrokerConfig {
                routing,
                public_url: public_url.map(str::to_string),
                ..BrokerConfig::default()
            },
            routes: Mutex::new(HashMap::new()),
            reserved: reserve::Reservations::load(None, None),
            counters: Arc::default(),
            ips: IpLimiter::new(1),
            ips_authed: IpLimiter::new(1),
            hash_key: [0; 32],
            key_hashes: Vec::new(),
            next_conn: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            local_url: "http://127.0.0.1:1".into(),
        }
    }

    fn host(h: &str) -> Option<&str> {
        Some(h)
    }

    #[test]
    fn host_routing_gives_each_room_its_own_origin() {
        let b = broker(Routing::Host, Some("https://rooms.example.com"));
        assert_eq!(
            b.room_url("https://rooms.example.com", "demo"),
            "https://demo.rooms.example.com"
        );
        let r = b.route_of(host("Demo.Rooms.Example.com:443"), "/wait");
        assert_eq!(r, Some(("demo".into(), "/wait".into())));
        assert_eq!(b.route_of(host("rooms.example.com"), "/demo/wait"), None);
        assert_eq!(b.route_of(host("a.b.rooms.example.com"), "/"), None);
        assert_eq!(b.route_of(host("demo.evil.example"), "/"), None);
        assert_eq!(b.route_of(host("_x.rooms.example.com"), "/"), None);
        let open = broker(Routing::Host, None);
        assert_eq!(
            open.route_of(host("demo.localhost:8799"), "/"),
            Some(("demo".into(), "/".into()))
        );
        assert_eq!(open.route_of(host("localhost:8799"), "/"), None);
    }

    #[test]
    fn path_routing_is_the_old_shared_origin() {
        let b = broker(Routing::Path, Some("https://rooms.example.com"));
        assert_eq!(
            b.room_url("https://rooms.example.com", "demo"),
            "https://rooms.example.com/demo"
        );
        let r = b.route_of(host("rooms.example.com"), "/demo/wait");
        assert_eq!(r, Some(("demo".into(), "/wait".into())));
    }

    #[test]
    fn an_address_gets_an_equal_part_of_a_route_at_most_half() {
        let b = broker(Routing::Host, None);
        assert_eq!(b.route_share(1), 3_000);
        assert_eq!(b.route_share(2), 3_000);
        assert_eq!(b.route_share(6), 1_000);
        assert_eq!(b.route_share(64), 93);
        assert_eq!(b.route_share(10_000), 93);
    }

    #[test]
    fn authorities_are_plain() {
        assert!(valid_authority("broker.example:8443"));
        assert!(valid_authority("[::1]:80"));
        assert!(!valid_authority("evil.example/path"));
        assert!(!valid_authority(""));
        assert!(!valid_authority("a b"));
    }
}
