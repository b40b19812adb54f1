//! What `broker serve` is told: its limits, its routing and every option of the command,
//! with the defaults of SPEC §7. A leaf, so that every layer of the broker can read its
//! configuration without reaching up to the file that starts it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::tunnel::TunnelError;

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

impl BrokerLimits {
    /// The latest a route held from `now_ms` on may end: `--max-lifetime` from now.
    pub fn lifetime_end(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.max_lifetime.as_millis() as i64)
    }

    /// The end of a route whose holder asks for `expires_at_ms` (a returning host's
    /// route id, a peer's push): never past [`lifetime_end`](Self::lifetime_end), so no
    /// one keeps a slug here longer than this instance would give it.
    pub fn capped_end(&self, now_ms: i64, expires_at_ms: i64) -> i64 {
        expires_at_ms.min(self.lifetime_end(now_ms))
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

/// Refuses a configuration `serve` could not honour.
pub(super) fn check(cfg: &BrokerConfig) -> Result<(), TunnelError> {
    if let Some(u) = &cfg.public_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(TunnelError::Config(format!(
            "--public-url must start with https:// (got {u:?})"
        )));
    }
    Ok(())
}
