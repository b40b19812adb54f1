//! `broker serve` and `tunnel run`: the clap arguments and the glue to [`crate::tunnel`].
//! The tunnel client prints each state change (text, or one JSON object per line with
//! `--json`) so a host, or a script, can see the public URL and follow reconnects.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{CliError, Ctx, Exit};
use crate::protocol::{DEFAULT_PORT, validate_room_id};
use crate::session::{Credentials, load_credentials};
use crate::store::RoomMeta;
use crate::store::fsutil::{ensure_private_dir, read_json, write_private};
use crate::tunnel::broker::{BrokerConfig, BrokerLimits, DEFAULT_BROKER_PORT, Routing};
use crate::tunnel::relay::{Emit, Event, Finish, TunnelConfig};
use crate::tunnel::{TunnelError, random_token, read_key_file};

#[derive(Subcommand, Debug)]
pub enum BrokerCommand {
    /// Relay room links: `https://<slug>.<broker domain>/…` to the host holding `<slug>`.
    #[command(
        after_help = "Example:\n  agentgather broker serve --port 8799 --public-url https://rooms.example.com --host-key-file /etc/agentgather/host-keys\n\nRun it behind a TLS proxy with a wildcard name *.rooms.example.com (see docs/deploy-broker.md): each room is its own web origin. The access log (stdout, JSON lines) holds route hashes, methods, path classes, statuses, durations and byte counts only."
    )]
    Serve(BrokerServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum TunnelCommand {
    /// Keep a public link to a room open through a broker until the room closes or ctrl-c.
    #[command(
        after_help = "Example:\n  agentgather tunnel run --room current --broker https://rooms.example.com --subdomain release-review\n\nParticipants then use https://release-review.rooms.example.com/ exactly like the local URL; new cards, browser links and next_cmd use it."
    )]
    Run(TunnelRunArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 15m, 8h)"))
}

/// Bytes, optionally with a KB/MB suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 65536, 64KB, 1MB)"))?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("{s:?} is not a size (e.g. 65536, 64KB, 1MB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Args, Debug)]
pub struct BrokerServeArgs {
    /// Address to bind (keep loopback behind a local TLS proxy).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port to listen on (the TLS proxy in front forwards to it).
    #[arg(long, default_value_t = DEFAULT_BROKER_PORT)]
    pub port: u16,
    /// The public base URL (https://rooms.example.com); rooms are
    /// https://<slug>.rooms.example.com. Default: from each host's request.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Route https://<broker>/<slug>/ instead of https://<slug>.<broker>/. Every room then
    /// shares one web origin, so a host's page can read other rooms' browser storage: only
    /// for a broker whose hosts all trust each other.
    #[arg(long)]
    pub path_routing: bool,
    /// Serve Prometheus metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9799).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Another instance of this deployment, by its --metrics-addr (http://10.0.0.2:9799;
    /// repeat for each). The slugs it holds are refused to newcomers here, also after it
    /// dies, until their routes' lifetimes end; their hosts still reclaim them here.
    /// Needs the deployment's shared --route-key-file.
    #[arg(long = "peer", value_name = "URL", value_parser = parse_peer)]
    pub peers: Vec<String>,
    /// Only hosts presenting a key from this file (one per line) may register.
    #[arg(long)]
    pub host_key_file: Option<PathBuf>,
    /// The key that signs route secrets, so hosts reclaim their links after a broker
    /// restart (default: <home>/broker/route-key, made on the first start).
    #[arg(long)]
    pub route_key_file: Option<PathBuf>,
    /// Concurrent requests per route.
    #[arg(long, default_value_t = 512)]
    pub max_requests: u32,
    /// Concurrent held /wait requests per route.
    #[arg(long, default_value_t = 256)]
    pub max_waits: u32,
    /// Largest request body (bytes, or with KB/MB).
    #[arg(long, default_value = "64KB", value_parser = parse_size)]
    pub max_request_body: u64,
    /// Largest response (bytes, or with KB/MB); the default is twice the room server's
    /// page bound, so every answer of a room with default limits fits.
    #[arg(long, default_value_t = crate::protocol::bounds::RESPONSE_LIMIT, value_parser = parse_size)]
    pub max_response: u64,
    /// A route with no heartbeat or request for this long is closed.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A route is closed this long after it was registered.
    #[arg(long, default_value = "8h", value_parser = parse_duration)]
    pub max_lifetime: Duration,
    /// Requests per minute per client address without a token (and with a token the room
    /// refuses: 401/403/410).
    #[arg(long, default_value_t = 60)]
    pub ip_rate: u32,
    /// Requests per minute per client address with a token.
    #[arg(long, default_value_t = 600)]
    pub ip_authed_rate: u32,
    /// Requests per minute per route.
    #[arg(long, default_value_t = 6000)]
    pub route_rate: u32,
    /// Routes this broker holds at once.
    #[arg(long, default_value_t = 1000)]
    pub max_routes: usize,
    /// Open connections (hosts' tunnels and participants' requests); over it, new ones
    /// are closed at once.
    #[arg(long, default_value_t = 8192)]
    pub max_connections: usize,
    /// Requests one HTTP/2 connection may carry at once. The public listener also speaks
    /// h2c (HTTP/2 with prior knowledge) for an edge proxy that multiplexes participants'
    /// requests onto few connections (HAProxy `proto h2`, Caddy `versions h2c`).
    #[arg(long, default_value_t = 256)]
    pub h2_max_streams: u32,
    /// Live and reserved routes one client address may hold.
    #[arg(long, default_value_t = 10)]
    pub max_routes_per_address: usize,
    /// Live and reserved routes one operator key may hold.
    #[arg(long, default_value_t = 200)]
    pub max_routes_per_key: usize,
    /// How often hosts heartbeat (at most a third of --idle-timeout).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// How long a request may wait for the host's answer to begin.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How long SIGTERM lets requests in flight finish.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// After a (re)start, unknown slugs answer 503 for this long while hosts reconnect.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub restart_grace: Duration,
}

#[derive(Args, Debug)]
pub struct TunnelRunArgs {
    /// The room: `current`, or a room id this home hosts.
    #[arg(long, default_value = "current")]
    pub room: String,
    /// The broker's base URL (https://rooms.example.com).
    #[arg(long, env = "AGENTGATHER_BROKER")]
    pub broker: String,
    /// The slug in the public URL: https://<subdomain>.<broker domain>/ (a-z, 0-9, '-').
    #[arg(long)]
    pub subdomain: String,
    /// The local room server (default: the server holding the room, else http://127.0.0.1:8787).
    #[arg(long)]
    pub target: Option<String>,
    /// A file holding the broker's operator key, if it requires one.
    #[arg(long, env = "AGENTGATHER_BROKER_KEY_FILE")]
    pub host_key_file: Option<PathBuf>,
    /// The longest pause between reconnect attempts.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// How often to check, through the broker's balancer, that the slug still maps to the
    /// instance holding the route (several broker instances); 0s turns the check off.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub route_check: Duration,
}

fn parse_peer(url: &str) -> Result<String, String> {
    crate::tunnel::broker::peer_authority(url)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    runtime_with(None)
}

/// `workers`: the runtime's worker threads (default: one per core).
fn runtime_with(workers: Option<usize>) -> Result<tokio::runtime::Runtime, CliError> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))
}

impl From<TunnelError> for CliError {
    fn from(e: TunnelError) -> Self {
        CliError::new(Exit::Error, e.code(), e.to_string())
    }
}

pub fn broker(ctx: &Ctx, c: BrokerCommand) -> Result<(), CliError> {
    let BrokerCommand::Serve(a) = c;
    let host_keys = match &a.host_key_file {
        Some(f) => read_key_file(f)?,
        None => Vec::new(),
    };
    let (route_key, routes_may_return) = route_key(ctx, a.route_key_file.as_deref())?;
    let cfg = BrokerConfig {
        host: a.host,
        port: a.port,
        routing: if a.path_routing {
            Routing::Path
        } else {
            Routing::Host
        },
        public_url: a.public_url.map(|u| u.trim_end_matches('/').to_string()),
        host_keys,
        limits: BrokerLimits {
            max_requests: a.max_requests.max(1),
            max_waits: a.max_waits.max(1),
            max_request_body: a.max_request_body,
            max_response: a.max_response,
            idle_timeout: a.idle_timeout.max(Duration::from_millis(300)),
            max_lifetime: a.max_lifetime,
            ip_requests_per_min: a.ip_rate.max(1),
            ip_authed_requests_per_min: a.ip_authed_rate.max(1),
            route_requests_per_min: a.route_rate.max(1),
            max_routes: a.max_routes.max(1),
            max_routes_per_address: a.max_routes_per_address.max(1),
            max_routes_per_key: a.max_routes_per_key.max(1),
        },
        heartbeat: a.heartbeat,
        request_timeout: a.request_timeout,
        drain_timeout: a.drain_timeout,
        restart_grace: a.restart_grace,
        route_key,
        routes_may_return,
        state_file: Some(ctx.home.root.join("broker").join("routes")),
        max_connections: a.max_connections.max(1),
        h2_max_streams: a.h2_max_streams.max(1),
        metrics_addr: a.metrics_addr,
        peers: a.peers,
        ..BrokerConfig::default()
    };
    super::output::init_tracing();
    crate::net::compact_heap();
    runtime()?.block_on(crate::tunnel::broker::serve(cfg))?;
    Ok(())
}

/// The route key and whether it outlived an earlier broker process. A missing default
/// key is made (0600); if that fails the broker still runs, with random route secrets.
fn route_key(ctx: &Ctx, file: Option<&Path>) -> Result<(Option<Vec<u8>>, bool), CliError> {
    if let Some(f) = file {
        let key = read_key_file(f)?.into_iter().next().unwrap_or_default();
        return Ok((Some(key.into_bytes()), true));
    }
    let path = ctx.home.root.join("broker").join("route-key");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            return Ok((Some(text.trim().as_bytes().to_vec()), true));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            eprintln!(
                "agentgather: warning: cannot read {} ({e}); links will not survive a broker restart",
                path.display()
            );
            return Ok((None, false));
        }
    }
    let made = random_token("", 32)
        .map_err(CliError::from)
        .and_then(|key| {
            ensure_private_dir(&ctx.home.root)?;
            ensure_private_dir(&ctx.home.root.join("broker"))?;
            write_private(&path, key.as_bytes())?;
            Ok(key)
        });
    match made {
        Ok(key) => Ok((Some(key.into_bytes()), false)),
        Err(e) => {
            eprintln!(
                "agentgather: warning: cannot keep a route key at {} ({}); links will not survive a broker restart",
                path.display(),
                e.message
            );
            Ok((None, false))
        }
    }
}

/// The host identity of `room` in this home.
fn host_credentials(ctx: &Ctx, room: &str) -> Result<Credentials, CliError> {
    let creds = if room == "current" {
        ctx.session()?.creds
    } else {
        validate_room_id(room).map_err(|e| CliError::msg(e.to_string()))?;
        let meta: RoomMeta = read_json(&ctx.home.room_dir(room).join("room.json"))?
            .ok_or_else(|| CliError::msg(format!("this home hosts no room {room}")))?;
        let host = meta.host.unwrap_or_else(|| "host".into());
        load_credentials(&ctx.home, room, &host)?.ok_or_else(|| {
            CliError::msg(format!("the host credentials of room {room} are missing"))
        })?
    };
    if !creds.is_host {
        return Err(CliError::new(
            Exit::Unauthorized,
            "host_required",
            format!(
                "only the host can open a public link; this home is {} in room {}",
                creds.alias, creds.room
            ),
        ));
    }
    Ok(creds)
}

fn describe(e: &Event) -> String {
    match e {
        Event::Connecting { broker, attempt } => {
            format!("agentgather: connecting to the broker {broker} (attempt {attempt})")
        }
        Event::Registered {
            public_url,
            reclaimed,
            expires_at,
        } => format!(
            "agentgather: room link {}: {public_url}/  (the broker ends it by {expires_at})",
            if *reclaimed { "back up" } else { "up" }
        ),
        Event::PublicUrlSet { url } => format!(
            "agentgather: the room now gives {url} in new cards, browser links and next_cmd"
        ),
        Event::Disconnected {
            reason,
            retry_in_ms,
        } => format!(
            "agentgather: disconnected: {reason}; reconnecting in {:.1} s",
            *retry_in_ms as f64 / 1000.0
        ),
        Event::Warning { message } => format!("agentgather: warning: {message}"),
        Event::Released => "agentgather: route released".to_string(),
        Event::PublicUrlRestored { url } => {
            format!("agentgather: the room's public URL is back to {url}")
        }
    }
}

pub fn tunnel(ctx: &Ctx, c: TunnelCommand) -> Result<(), CliError> {
    let TunnelCommand::Run(a) = c;
    let creds = host_credentials(ctx, &a.room)?;
    let target = a
        .target
        .or_else(|| ctx.local_server(&creds.room))
        .unwrap_or_else(|| format!("http://127.0.0.1:{DEFAULT_PORT}"));
    let host_key = match &a.host_key_file {
        Some(f) => read_key_file(f)?.into_iter().next(),
        None => None,
    };
    let cfg = TunnelConfig {
        broker: a.broker.trim_end_matches('/').to_string(),
        slug: a.subdomain,
        target: target.trim_end_matches('/').to_string(),
        host_token: creds.token.clone(),
        host_key,
        state_file: Some(
            ctx.home
                .root
                .join("tunnel")
                .join(format!("{}.json", creds.room)),
        ),
        initial_backoff: Duration::from_millis(250),
        max_backoff: a.max_backoff.max(Duration::from_millis(250)),
        route_check: (!a.route_check.is_zero())
            .then(|| a.route_check.max(Duration::from_millis(250))),
    };
    let json = ctx.json;
    let emit: Emit = Arc::new(move |e: Event| {
        if json {
            if let Ok(line) = serde_json::to_string(&e) {
                println!("{line}");
            }
        } else {
            println!("{}", describe(&e));
        }
    });
    super::output::init_tracing();
    // One room's relay runs on one worker thread: a relayed request passes through
    // several tasks, and with two workers they are often handed between threads (a
    // futex wake and a context switch each). On the loaded 2-core bench machine one
    // worker measured ~100-145 µs of CPU per relayed request against ~125-150 µs, and at
    // 1,000 requests/s it used about a tenth of a core. Blocking work (the room's HTTP
    // client) still runs on the blocking pool.
    let finish = runtime_with(Some(1))?.block_on(crate::tunnel::relay::run(cfg, emit))?;
    ctx.print(
        &json!({"ok": true, "event": "stopped", "reason": finish.as_str(), "room": creds.room}),
        || match finish {
            Finish::RoomClosed => {
                format!("agentgather: room {} is closed; tunnel stopped", creds.room)
            }
            Finish::Signal => "agentgather: tunnel stopped".to_string(),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KB"), Ok(65536));
        assert_eq!(parse_size("1mb"), Ok(1 << 20));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1TB").is_err());
    }
}
