//! The broker's shared state: the route table and what every request, host and peer
//! reads beside it (limits, rates, reservations, counters, the drain flag), with the
//! rules that only need that state (which room a request names, the public URL, an
//! address's share of a route), and the reaper that keeps the table. It sits above the
//! route and its host connection and below every listener, so the code that serves
//! requests and hosts shares one state without the file that starts the broker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::{BrokerConfig, Routing};
use super::counters::Counters;
use super::refusal::log_line;
use super::reserve::Reservations;
use super::route::Route;
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::tunnel::TunnelError;
use crate::tunnel::lock;
use crate::tunnel::protocol::{Code, RouteLimits};
use crate::tunnel::rate::IpLimiter;

/// The broker's shared state.
pub(super) struct Broker {
    pub cfg: BrokerConfig,
    routes: Mutex<HashMap<String, Arc<Route>>>,
    pub reserved: Reservations,
    pub counters: Arc<Counters>,
    /// Requests without a token, and those the room refused (401/403/410), per address.
    pub ips: IpLimiter,
    /// Requests with a token, per address.
    pub ips_authed: IpLimiter,
    hash_key: [u8; 32],
    pub key_hashes: Vec<[u8; 32]>,
    pub next_conn: AtomicU64,
    draining: AtomicBool,
    pub started: Instant,
    local_url: String,
}

impl Broker {
    /// The state of a broker that is about to serve `cfg` at `local_url`: an empty route
    /// table, the reservations an earlier process left, a fresh key for route hashes.
    pub fn new(cfg: BrokerConfig, local_url: String) -> Result<Broker, TunnelError> {
        let mut hash_key = [0u8; 32];
        getrandom::fill(&mut hash_key).map_err(|e| TunnelError::Config(e.to_string()))?;
        let key_hashes = cfg
            .host_keys
            .iter()
            .map(|k| Sha256::digest(k.as_bytes()).into())
            .collect();
        Ok(Broker {
            reserved: Reservations::load(cfg.state_file.clone(), cfg.route_key.clone()),
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
            local_url,
        })
    }

    pub fn routes(&self) -> MutexGuard<'_, HashMap<String, Arc<Route>>> {
        lock(&self.routes)
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// From now on the public listener takes no new requests and `/readyz` says so.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The name of a route in logs: a hash keyed by a per-process secret, so the log
    /// cannot be matched against a list of guessed slugs.
    pub fn route_hash(&self, slug: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.hash_key);
        h.update(slug.as_bytes());
        crate::protocol::token::to_hex(&h.finalize()[..8])
    }

    /// Which operator key `key` is (constant time), if any.
    pub fn key_index(&self, key: &str) -> Option<usize> {
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
    pub fn route_share(&self, active: usize) -> u32 {
        let parts = active.clamp(2, 64) as u32;
        (self.cfg.limits.route_requests_per_min / parts).max(1)
    }

    pub fn heartbeat(&self) -> Duration {
        self.cfg
            .heartbeat
            .min(self.cfg.limits.idle_timeout / 3)
            .max(Duration::from_millis(100))
    }

    pub fn route_limits(&self) -> RouteLimits {
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
    pub fn public_base(&self, headers: &HeaderMap, peer: SocketAddr) -> String {
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
    pub fn room_url(&self, base: &str, slug: &str) -> String {
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
    pub fn slug_of_host(&self, host: &str) -> Option<String> {
        let name = host_name(host).to_ascii_lowercase();
        let (slug, rest) = name.split_once('.')?;
        let ok = match self.domain() {
            Some(d) => rest.trim_end_matches('.') == d,
            None => !rest.is_empty(),
        };
        (ok && crate::tunnel::protocol::validate_slug(slug).is_ok()).then(|| slug.to_string())
    }

    /// The slug a request is for and the path left for the room server. `host` is the
    /// authority the request names (`Host`, or `:authority` over HTTP/2).
    pub fn route_of(&self, host: Option<&str>, path: &str) -> Option<(String, String)> {
        match self.cfg.routing {
            Routing::Path => {
                let (slug, rest) = crate::tunnel::protocol::split_slug(path)?;
                crate::tunnel::protocol::validate_slug(slug).ok()?;
                Some((slug.to_string(), rest.to_string()))
            }
            Routing::Host => {
                let slug = self.slug_of_host(host?)?;
                Some((slug, path.to_string()))
            }
        }
    }

    pub fn event(&self, event: &str, route: &str, extra: serde_json::Value) {
        let mut line = json!({"ts": format_ms(now_ms()), "event": event, "route": route});
        if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
            obj.extend(more);
        }
        log_line(&line);
    }

    /// Removes `route` from the table if it is still the one there.
    pub fn remove_route(&self, route: &Arc<Route>) -> bool {
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

    /// Closes `route` (see [`Route::close`]) and logs it; returns the requests still in
    /// flight on its connection.
    pub fn close_route(&self, route: &Route, code: Code, message: &str) -> usize {
        let busy = route.close(code, message);
        self.event("route_closed", &route.hash, json!({"code": code.as_str()}));
        busy
    }

    /// Tells every host the broker is going away; returns the requests still in flight.
    pub fn close_all(&self) -> usize {
        let routes: Vec<Arc<Route>> = self.routes().drain().map(|(_, r)| r).collect();
        // Their slugs stay reserved for their hosts across the restart.
        self.reserved.changed();
        self.reserved.save(&routes);
        routes
            .iter()
            .map(|route| {
                self.close_route(
                    route,
                    Code::BrokerShutdown,
                    "the broker is restarting; reconnect and reclaim the route",
                )
            })
            .sum()
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

/// Ends routes past their lifetime or idle timeout.
pub(super) async fn reap(b: Arc<Broker>) {
    let idle = b.cfg.limits.idle_timeout;
    let period = (idle.min(b.cfg.limits.max_lifetime) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut last_sweep = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let now = Instant::now();
        let mut expired = Vec::new();
        // At its lifetime a route is gone; idle, it ends but keeps its slug reserved.
        b.routes().retain(|_, r| match r.expiry(now, idle) {
            Some(why) => {
                expired.push((r.clone(), why));
                why.0 != Code::RouteLifetimeExpired
            }
            None => true,
        });
        for (route, (code, message)) in expired {
            b.close_route(&route, code, message);
            b.reserved.changed();
        }
        let table: Vec<Arc<Route>> = b.routes().values().cloned().collect();
        // The save syncs a file when something changed: on the blocking pool, so a slow
        // disk never stalls the requests this worker relays.
        let saver = b.clone();
        let _ = tokio::task::spawn_blocking(move || saver.reserved.save(&table)).await;
        if last_sweep.elapsed() > Duration::from_secs(10) {
            b.ips.sweep();
            b.ips_authed.sweep();
            for r in b.routes().values() {
                r.sweep_shares(|n| b.route_share(n), now);
            }
            last_sweep = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(routing: Routing, public_url: Option<&str>) -> Broker {
        let cfg = BrokerConfig {
            routing,
            public_url: public_url.map(str::to_string),
            ..BrokerConfig::default()
        };
        Broker::new(cfg, "http://127.0.0.1:1".into()).expect("randomness for the hash key")
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
