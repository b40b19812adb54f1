//! Hosts: the WebSocket upgrade on [`TUNNEL_PATH`], registration (a new route, or the
//! reclaim of one by its secret; a slug new to this instance is pushed to its peers
//! before the host is told), and the reader loop that feeds a host's frames to its
//! connection until it hangs up, goes silent, or loses the route.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::conn::HostConn;
use super::refusal::{Refusal, draining, ip_limited};
use super::route::{Route, RouteState};
use super::secrets::{digest, new_credentials, verify};
use super::state::Broker;
use crate::protocol::ApiError;
use crate::protocol::timefmt::now_ms;
use crate::tunnel::protocol::{
    BrokerFrame, Code, HostFrame, Inbound, PROTOCOL_VERSION, RouteCredentials, read_frame,
    spawn_writer, validate_slug, ws_config,
};
use crate::tunnel::rate::Bucket;

/// Accepts a host's WebSocket on [`crate::tunnel::protocol::TUNNEL_PATH`].
pub(super) fn upgrade(
    b: &Arc<Broker>,
    peer: SocketAddr,
    ip: IpAddr,
    mut req: Request<Incoming>,
) -> Result<Response, Refusal> {
    if b.draining() {
        return Err(draining());
    }
    // Every connection attempt is unauthenticated until it registers.
    b.ips.take(ip).map_err(ip_limited)?;
    let h = req.headers();
    let is_upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = h
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = h.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes());
    let (true, true, Some(key)) = (is_upgrade, version_ok, key) else {
        return Err(Refusal::new(
            Code::WebsocketRequired,
            "this path is for `agentgather tunnel run` (a WebSocket)",
        ));
    };
    let accept = HeaderValue::from_str(&derive_accept_key(key)).map_err(|_| {
        Refusal::new(
            Code::WebsocketRequired,
            "the WebSocket key could not be answered",
        )
    })?;
    let base = b.public_base(h, peer);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let broker = b.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config()),
                )
                .await;
                // Split here, so that the connection's future holds only the halves (an
                // async fn keeps its arguments for as long as it runs).
                host_connection(broker, ws.split(), base, ip).await;
            }
            Err(e) => tracing::debug!(error = %e, "a tunnel upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(resp)
}

fn register_required() -> ApiError {
    Code::RegisterRequired.error("the first frame must be a register frame")
}

type WsHalves<S> = (
    futures_util::stream::SplitSink<WebSocketStream<S>, tokio_tungstenite::tungstenite::Message>,
    futures_util::stream::SplitStream<WebSocketStream<S>>,
);

/// One host connection, from registration to hang-up.
async fn host_connection<S>(
    b: Arc<Broker>,
    (sink, mut stream): WsHalves<S>,
    base: String,
    ip: IpAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, writer) = spawn_writer(sink);
    let conn = Arc::new(HostConn::new(
        b.next_conn.fetch_add(1, Ordering::Relaxed),
        tx,
        b.cfg.limits.max_response,
    ));
    let first = tokio::time::timeout(b.cfg.register_timeout, stream.next()).await;
    let registered = match first {
        Ok(Some(Ok(m))) => match read_frame::<HostFrame>(m) {
            Ok(Inbound::Control(HostFrame::Register {
                version,
                slug,
                host_key,
                reclaim,
            })) => {
                let claim = Claim {
                    ip,
                    version,
                    slug: &slug,
                    host_key: host_key.as_deref(),
                    reclaim: reclaim.as_ref(),
                };
                match register(&b, &conn, claim, &base) {
                    Ok(admitted) => Ok(confirm(&b, &conn, admitted, &base).await),
                    Err(e) => Err(e),
                }
            }
            _ => Err(register_required()),
        },
        Ok(_) => Err(register_required()),
        Err(_) => Err(Code::RegisterTimeout.error("no register frame arrived in time")),
    };
    match registered {
        Ok(route) => {
            serve_host(&b, &route, &conn, &mut stream).await;
            route.detach(conn.id);
        }
        Err(e) => {
            b.counters.refusal(e.code);
            conn.send(&BrokerFrame::Refused {
                status: e.status,
                code: e.code.into(),
                message: e.message,
            });
        }
    }
    conn.fail_all();
    conn.tx.close();
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// What a register frame asks for.
struct Claim<'a> {
    /// The client address the host connected from.
    ip: IpAddr,
    version: u32,
    slug: &'a str,
    host_key: Option<&'a str>,
    reclaim: Option<&'a RouteCredentials>,
}

/// The checks before any route is looked at: version, slug, operator key. Returns which
/// operator key the host presented (when the broker has keys).
fn check_claim(b: &Broker, claim: &Claim<'_>) -> Result<Option<usize>, ApiError> {
    if claim.version != PROTOCOL_VERSION {
        return Err(Code::UnsupportedVersion.error(format!(
            "this broker speaks tunnel protocol {PROTOCOL_VERSION}; update agentgather"
        )));
    }
    validate_slug(claim.slug).map_err(|e| Code::InvalidSlug.error(e.to_string()))?;
    if b.key_hashes.is_empty() {
        return Ok(None);
    }
    let Some(key) = claim.host_key else {
        return Err(Code::HostKeyRequired
            .error("this broker only registers hosts with an operator key (--host-key-file)"));
    };
    match b.key_index(key) {
        Some(i) => Ok(Some(i)),
        None => Err(Code::HostKeyInvalid.error("the operator key is not accepted by this broker")),
    }
}

/// The per-address and per-key caps on live and reserved routes, so that a few
/// addresses cannot fill the route table.
fn check_owner_caps(
    b: &Broker,
    routes: &HashMap<String, Arc<Route>>,
    ip: IpAddr,
    key: Option<usize>,
) -> Result<(), ApiError> {
    let l = &b.cfg.limits;
    let (mut by_ip, mut by_key) = (0usize, 0usize);
    for r in routes.values() {
        by_ip += usize::from(r.owner_ip == ip);
        by_key += usize::from(key.is_some() && r.owner_key == key);
    }
    if by_ip >= l.max_routes_per_address {
        return Err(Code::TooManyRoutes.error(format!(
            "this address holds {by_ip} room links, the most this broker allows; release one first"
        )));
    }
    if by_key >= l.max_routes_per_key {
        return Err(Code::TooManyRoutes.error(format!(
            "this operator key holds {by_key} room links, the most this broker allows"
        )));
    }
    Ok(())
}

fn slug_taken() -> ApiError {
    Code::RouteSlugTaken
        .error("this slug is in use by another host, or kept for it; pick another --subdomain")
}

fn auth_failed() -> ApiError {
    Code::RouteAuthFailed.error("the route secret does not match this route")
}

/// A slug the table now holds for a host connection.
enum Admitted {
    /// A route the table already held, taken back by its secret: the host is told.
    Reclaimed(Arc<Route>),
    /// A slug new to this instance (fresh, or a reclaim of a route from before a restart
    /// or from another instance): held with no connection until the peers know it.
    New {
        route: Arc<Route>,
        creds: RouteCredentials,
        reclaimed: bool,
    },
}

/// Registers (or reclaims) a slug for `conn`.
fn register(
    b: &Arc<Broker>,
    conn: &Arc<HostConn>,
    claim: Claim<'_>,
    base: &str,
) -> Result<Admitted, ApiError> {
    let key = check_claim(b, &claim)?;
    let slug = claim.slug;
    let mut routes = b.routes();
    if let Some(existing) = routes.get(slug).cloned() {
        return match claim.reclaim {
            Some(c) if existing.owned_by(c) => {
                existing.serve_by(conn);
                drop(routes);
                conn.send(&registered_frame(b, &existing, c.clone(), base, true));
                b.counters.reclaims.fetch_add(1, Ordering::Relaxed);
                b.event("route_reclaimed", &existing.hash, json!({}));
                Ok(Admitted::Reclaimed(existing))
            }
            Some(_) => Err(auth_failed()),
            None => Err(slug_taken()),
        };
    }
    // A route from before a restart: its secret proves it with no state kept, and its id
    // carries its expiry (under the same MAC), so a reclaim never extends a lifetime.
    let returning = match (&b.cfg.route_key, claim.reclaim) {
        (Some(key), Some(c)) => verify(key, c, slug).map(|exp| (c.clone(), exp)),
        _ => None,
    };
    let now_wall = now_ms();
    if returning.as_ref().is_some_and(|(_, exp)| *exp <= now_wall) {
        return Err(Code::RouteLifetimeExpired
            .error("this route reached the broker's maximum lifetime; start the tunnel again"));
    }
    if returning.is_none() && b.reserved.held_before(slug) {
        // Held by a route of an earlier process that has not reached its lifetime.
        return Err(slug_taken());
    }
    let no_record = b.cfg.routes_may_return && !b.reserved.loaded;
    if returning.is_none() && no_record && b.started.elapsed() < b.cfg.restart_grace {
        return Err(Code::BrokerStarting.error(
            "the broker just restarted and its hosts are reclaiming their links; retry in a few seconds",
        ));
    }
    if routes.len() >= b.cfg.limits.max_routes {
        return Err(Code::BrokerFull.error("this broker holds as many routes as it may; try later"));
    }
    check_owner_caps(b, &routes, claim.ip, key)?;
    let lifetime_end = b.cfg.limits.lifetime_end(now_wall);
    let reclaimed = returning.is_some();
    let (creds, expires_at_ms) = match returning {
        Some((c, exp)) => (c, b.cfg.limits.capped_end(now_wall, exp)),
        None => {
            let c = new_credentials(b.cfg.route_key.as_deref(), slug, lifetime_end)
                .map_err(|e| Code::Internal.error(e.to_string()))?;
            (c, lifetime_end)
        }
    };
    let owner = (claim.ip, key);
    let route = new_route(b, slug, &creds, owner, (now_wall, expires_at_ms));
    routes.insert(slug.to_string(), route.clone());
    drop(routes);
    b.reserved.taken_back(slug);
    Ok(Admitted::New {
        route,
        creds,
        reclaimed,
    })
}

/// Tells the host its route is registered: for a slug new to this instance, only once
/// every peer took the reservation or could not be reached in time ([`push`]), so that a
/// stranger who reaches a survivor after this instance dies is refused the slug.
///
/// [`push`]: super::push
async fn confirm(
    b: &Arc<Broker>,
    conn: &Arc<HostConn>,
    admitted: Admitted,
    base: &str,
) -> Arc<Route> {
    let (route, creds, reclaimed) = match admitted {
        Admitted::Reclaimed(route) => return route,
        Admitted::New {
            route,
            creds,
            reclaimed,
        } => (route, creds, reclaimed),
    };
    super::push::announce(b, &route.slug, route.expires_at_ms).await;
    // Another connection with the secret may have taken the route meanwhile; the newest
    // one serves it, as with any reclaim.
    route.serve_by(conn);
    conn.send(&registered_frame(b, &route, creds, base, reclaimed));
    let counter = if reclaimed {
        &b.counters.reclaims
    } else {
        &b.counters.registrations
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let event = if reclaimed {
        "route_reclaimed"
    } else {
        "route_registered"
    };
    b.event(event, &route.hash, json!({}));
    route
}

fn new_route(
    b: &Broker,
    slug: &str,
    creds: &RouteCredentials,
    (owner_ip, owner_key): (IpAddr, Option<usize>),
    (now_wall, expires_at_ms): (i64, i64),
) -> Arc<Route> {
    let l = &b.cfg.limits;
    let now = Instant::now();
    let left = Duration::from_millis(expires_at_ms.saturating_sub(now_wall).max(0) as u64);
    Arc::new(Route {
        slug: slug.to_string(),
        owner_ip,
        owner_key,
        shares: std::sync::Mutex::new(HashMap::new()),
        hash: b.route_hash(slug),
        id: creds.route_id.clone(),
        secret_hash: digest(&creds.route_secret),
        expires_at: now + left,
        created_at_ms: now_wall,
        expires_at_ms,
        requests: Arc::new(Semaphore::new(l.max_requests as usize)),
        waits: Arc::new(Semaphore::new(l.max_waits as usize)),
        max_requests: l.max_requests,
        rate: std::sync::Mutex::new(Bucket::full(l.route_requests_per_min, now)),
        // No connection until the host is told (see `confirm`): meanwhile participants
        // are answered as while a host reconnects.
        state: std::sync::Mutex::new(RouteState {
            conn: None,
            last_seen: now,
            ended: false,
        }),
    })
}

fn registered_frame(
    b: &Broker,
    route: &Route,
    creds: RouteCredentials,
    base: &str,
    reclaimed: bool,
) -> BrokerFrame {
    BrokerFrame::Registered {
        route: creds,
        slug: route.slug.clone(),
        public_url: b.room_url(base, &route.slug),
        reclaimed,
        heartbeat_ms: b.heartbeat().as_millis() as u64,
        expires_at_ms: route.expires_at_ms,
        limits: b.route_limits(),
    }
}

/// Reads a registered host's frames until it hangs up, goes silent, or loses the route.
async fn serve_host<S>(
    b: &Arc<Broker>,
    route: &Arc<Route>,
    conn: &Arc<HostConn>,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let heartbeat = b.heartbeat();
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let dead_after = heartbeat * 3 + Duration::from_secs(5);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            m = stream.next() => {
                let Some(Ok(m)) = m else { return };
                last_heard = Instant::now();
                match read_frame::<HostFrame>(m) {
                    Ok(Inbound::Control(frame)) => {
                        if !on_host_frame(b, route, conn, frame) {
                            return;
                        }
                    }
                    Ok(Inbound::Data { id, payload }) => conn.on_data(id, payload),
                    Ok(Inbound::Close) => return,
                    Ok(Inbound::Other) => {}
                    Err(e) => {
                        conn.hang_up(Code::ProtocolError, &e.to_string());
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > dead_after {
                    return;
                }
                conn.tx.ping();
            }
            _ = conn.hangup.notified() => return,
        }
    }
}

/// Handles one control frame; `false` ends the connection.
fn on_host_frame(b: &Arc<Broker>, route: &Arc<Route>, conn: &Arc<HostConn>, f: HostFrame) -> bool {
    let refuse = |code: Code, message: &str| {
        conn.send(&BrokerFrame::Error {
            code: code.as_str().into(),
            message: message.into(),
        });
    };
    let owner = |creds: &RouteCredentials| route.owned_by(creds) && route.is_served_by(conn.id);
    match f {
        HostFrame::Register { .. } => {
            refuse(
                Code::AlreadyRegistered,
                "this connection already serves a route",
            );
            true
        }
        HostFrame::Heartbeat { route: creds } => {
            if owner(&creds) {
                route.touch();
            } else {
                refuse(Code::RouteAuthFailed, &auth_failed().message);
            }
            true
        }
        HostFrame::Release { route: creds } => {
            if !owner(&creds) {
                refuse(Code::RouteAuthFailed, &auth_failed().message);
                return true;
            }
            b.remove_route(route);
            b.close_route(route, Code::RouteReleased, "the route is released");
            false
        }
        HostFrame::Response {
            id,
            status,
            headers,
        } => {
            conn.on_response(id, status, headers);
            true
        }
        HostFrame::End { id } => {
            conn.on_end(id);
            true
        }
        HostFrame::Fail { id, code, .. } => {
            conn.on_fail(id, &code);
            true
        }
    }
}
