//! Participants' requests: find the route, apply its limits, and relay the request over
//! the host's connection as a stream, then stream the answer back under the credit
//! window. The access log line of a streamed answer is written when its body ends.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::config::Routing;
use super::conn::{Chunk, Head, HostConn};
use super::refusal::{
    Access, Refusal, draining, host_disconnected, host_failure, ip_limited, not_found,
    request_too_large, response_too_large, unavailable,
};
use super::route::Route;
use super::state::Broker;
use crate::tunnel::protocol::{
    BrokerFrame, CHUNK_BYTES, Code, HEALTH_PATH, PROTOCOL_VERSION, ROUTE_CHECK_PATH, ROUTES_PATH,
    TLS_ASK_PATH, TUNNEL_PATH, forwards_request_header, forwards_response_header, header_pairs,
    path_class,
};
use crate::tunnel::rate::address_key;

enum Outcome {
    /// Answered here; log now.
    Done(Response, u64),
    /// Streaming from the host; the body logs when it ends.
    Streaming(Response),
}

fn json_response(body: String, no_store: bool) -> Outcome {
    let len = body.len() as u64;
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if no_store {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Outcome::Done(resp, len)
}

/// Every HTTP request the broker takes: a host's tunnel, the operator's paths, or a
/// participant's request for a room.
pub(super) async fn handle(
    b: Arc<Broker>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let mut log = Access::new(req.method().as_str(), b.counters.clone());
    let ip = client_ip(peer, req.headers());
    let outcome = match req.uri().path() {
        TUNNEL_PATH => {
            log.class = "tunnel";
            super::host::upgrade(&b, peer, ip, req).map(|r| Outcome::Done(r, 0))
        }
        HEALTH_PATH => {
            log.class = "health";
            let body = json!({
                "ok": true, "service": "agentgather-broker",
                "version": env!("CARGO_PKG_VERSION"), "protocol": PROTOCOL_VERSION,
                "status": if b.draining() { "draining" } else { "serving" },
            });
            Ok(json_response(body.to_string(), false))
        }
        ROUTE_CHECK_PATH => {
            log.class = "route_check";
            b.ips
                .take(ip)
                .map_err(ip_limited)
                .and_then(|()| route_check(&b, &req))
        }
        TLS_ASK_PATH => {
            log.class = "admin";
            if operator_on_this_machine(peer, req.headers()) {
                tls_ask(&b, &req)
            } else {
                Err(not_found())
            }
        }
        ROUTES_PATH => {
            log.class = "admin";
            if operator_on_this_machine(peer, req.headers()) {
                let mut routes: Vec<serde_json::Value> =
                    b.routes().values().map(|r| r.metadata()).collect();
                routes.sort_by(|a, b| a["slug"].as_str().cmp(&b["slug"].as_str()));
                let body = json!({"ok": true, "routes": routes});
                Ok(json_response(body.to_string(), true))
            } else {
                Err(not_found())
            }
        }
        _ => route_request(&b, ip, req, &mut log).await,
    };
    Ok(match outcome {
        Ok(Outcome::Streaming(resp)) => resp,
        Ok(Outcome::Done(resp, len)) => {
            log.status = resp.status().as_u16();
            log.bytes_out = len;
            log.write();
            resp
        }
        Err(r) => {
            let (resp, len) = r.response();
            log.status = r.err.status;
            log.code = Some(r.err.code);
            log.bytes_out = len;
            log.write();
            resp
        }
    })
}

/// The participant's address as every per-address limit counts it
/// ([`address_key`]: IPv6 by its /64): the peer, or, behind a proxy on this machine, the
/// address that proxy appended last to `X-Forwarded-For`.
pub(super) fn client_ip(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    address_key(sent_from(peer, headers))
}

fn sent_from(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if peer.ip().is_loopback()
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.ip()
}

/// A request straight from this machine, not relayed by a proxy: the operator.
fn operator_on_this_machine(peer: SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback()
        && ![
            "x-forwarded-for",
            "forwarded",
            "x-real-ip",
            "x-forwarded-host",
        ]
        .iter()
        .any(|h| headers.contains_key(*h))
}

/// The authority a request names: its `Host`, or over HTTP/2 its `:authority` (hyper puts
/// that in the URI). When both are there they must agree (RFC 9113 §8.3.1), so no proxy
/// in front can route by one while the broker routes by the other.
fn authority(req: &Request<Incoming>) -> Result<Option<&str>, ()> {
    let host = match req.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().map_err(|_| ())?),
        None => None,
    };
    match (host, req.uri().authority().map(|a| a.as_str())) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => Err(()),
        (h, a) => Ok(h.or(a)),
    }
}

/// The route a request names and the path left for the room server.
fn find_route(b: &Broker, req: &Request<Incoming>) -> Option<(Arc<Route>, String)> {
    let (slug, rest) = b.route_of(authority(req).ok()?, req.uri().path())?;
    let route = b.routes().get(&slug).cloned()?;
    // An ended route is gone for participants (its slug is only kept for its host).
    (!route.is_ended()).then_some((route, rest))
}

/// On-demand TLS (Caddy's `ask`): may the proxy get a certificate for `domain`? Only for
/// the name of a route this broker holds, so nobody makes it request certificates for
/// names of their choosing.
fn tls_ask(b: &Broker, req: &Request<Incoming>) -> Result<Outcome, Refusal> {
    let domain = query_value(req, "domain").ok_or_else(not_found)?;
    let slug = b.slug_of_host(domain).ok_or_else(not_found)?;
    if b.cfg.routing != Routing::Host || !b.routes().contains_key(&slug) {
        return Err(not_found());
    }
    Ok(json_response(json!({"ok": true}).to_string(), true))
}

/// The value of `name` in a query string (no decoding: slugs and route ids need none).
fn query_value<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Whether this instance holds `slug` for `route_id` with its host connected: what a host
/// behind a balancer asks to learn that its slug now maps to another instance.
fn route_check(b: &Broker, req: &Request<Incoming>) -> Result<Outcome, Refusal> {
    let slug = query_value(req, "slug").ok_or_else(not_found)?;
    let id = query_value(req, "route_id").ok_or_else(not_found)?;
    let here = b
        .routes()
        .get(slug)
        .is_some_and(|r| r.id == id && r.conn().is_some());
    if !here {
        return Err(not_found());
    }
    Ok(json_response(json!({"ok": true}).to_string(), true))
}

/// `/<slug>` → `/<slug>/`, relative, so the browser room's relative URLs resolve under
/// the slug whatever prefix a proxy adds.
fn slug_redirect(route: &Route, req: &Request<Incoming>) -> Result<Outcome, Refusal> {
    let mut location = format!("{}/", route.slug);
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let value = HeaderValue::from_str(&location).map_err(|_| not_found())?;
    resp.headers_mut().insert(header::LOCATION, value);
    Ok(Outcome::Done(resp, 0))
}

type Permits = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

/// The route's rate (the address's share, then the route's), concurrency and wait limits,
/// in that order.
fn admit(b: &Broker, route: &Route, ip: IpAddr, class: &str) -> Result<Permits, Refusal> {
    route
        .take_rate(
            ip,
            |n| b.route_share(n),
            b.cfg.limits.route_requests_per_min,
        )
        .map_err(|wait| {
            Refusal::new(
                Code::RouteRateLimited,
                "this room link is over its request rate; slow down",
            )
            .retry(wait)
        })?;
    let request_permit = route.requests.clone().try_acquire_owned().map_err(|_| {
        Refusal::new(
            Code::RouteBusy,
            "this room link has too many requests in flight; retry shortly",
        )
        .retry(Duration::from_secs(1))
    })?;
    let wait_permit = if class == "wait" {
        Some(route.waits.clone().try_acquire_owned().map_err(|_| {
            Refusal::new(
                Code::RouteWaitLimit,
                "this room link holds too many waits; retry shortly",
            )
            .retry(Duration::from_secs(2))
        })?)
    } else {
        None
    };
    Ok((request_permit, wait_permit))
}

async fn route_request(
    b: &Arc<Broker>,
    ip: IpAddr,
    req: Request<Incoming>,
    log: &mut Access,
) -> Result<Outcome, Refusal> {
    if b.draining() {
        return Err(draining());
    }
    // Every request counts against its address: without a token at the strict rate;
    // with one at a higher rate, as long as the address has not used up the strict one
    // with tokens the room refused (those are charged to it below).
    let authed = req.headers().contains_key(header::AUTHORIZATION);
    if authed {
        b.ips.peek(ip).map_err(ip_limited)?;
        b.ips_authed.take(ip).map_err(ip_limited)?;
    } else {
        b.ips.take(ip).map_err(ip_limited)?;
    }
    let Some((route, rest)) = find_route(b, &req) else {
        // Every miss counts against the address, token or not: probing slugs is not free.
        if authed {
            b.ips.take(ip).map_err(ip_limited)?;
        }
        if b.started.elapsed() < b.cfg.restart_grace {
            return Err(unavailable());
        }
        return Err(not_found());
    };
    log.route = Some(route.hash.clone());
    log.class = path_class(&rest);
    if rest.is_empty() {
        return slug_redirect(&route, &req);
    }
    if req.headers().contains_key("service-worker") {
        // A room never needs a service worker, and one registered by a hostile host's
        // page could intercept what the browser later sends to that origin.
        return Err(Refusal::new(
            Code::ServiceWorkerRefused,
            "this broker serves no service worker scripts",
        ));
    }
    let permits = admit(b, &route, ip, log.class)?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > b.cfg.limits.max_request_body) {
        return Err(request_too_large(b.cfg.limits.max_request_body));
    }
    let conn = route.conn().ok_or_else(unavailable)?;
    route.touch();
    let is_head = req.method() == hyper::Method::HEAD;
    let (stream, head, body_rx) = send_request(b, &conn, req, rest, log).await?;
    if authed && matches!(head.status, 401 | 403 | 410) {
        // A token the room refused buys nothing: charged like a request without one.
        b.ips.charge(ip);
    }
    answer(b, route, stream, head, body_rx, is_head, permits, log)
}

/// Cancels a stream if the request ends before its body takes over.
struct StreamGuard {
    conn: Arc<HostConn>,
    id: u64,
    armed: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.armed {
            self.conn.cancel(self.id);
        }
    }
}

enum PumpError {
    TooLarge,
    Broken,
}

/// Streams the participant's body to the host in chunks, counting against the limit.
async fn pump_body(
    conn: &HostConn,
    id: u64,
    mut body: Incoming,
    limit: u64,
) -> Result<u64, PumpError> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| PumpError::Broken)?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(PumpError::TooLarge);
            }
            for chunk in data.chunks(CHUNK_BYTES) {
                if !conn.send_data(id, chunk) {
                    return Err(PumpError::Broken);
                }
            }
        }
    }
    Ok(total)
}

/// Sends the request to the host as stream `id` and waits for the head of the answer
/// while the body is still being pumped.
async fn send_request(
    b: &Broker,
    conn: &Arc<HostConn>,
    req: Request<Incoming>,
    rest: String,
    log: &mut Access,
) -> Result<(StreamGuard, Head, mpsc::UnboundedReceiver<Chunk>), Refusal> {
    let (parts, body) = req.into_parts();
    let path = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let headers = header_pairs(&parts.headers, forwards_request_header);
    let method = parts.method.as_str().to_string();
    // Nothing of the request's head is kept while it waits for its answer: its bytes
    // pin hyper's read buffer, which a held wait would otherwise keep.
    drop(parts);
    let opened = conn.open_stream().ok_or_else(unavailable)?;
    let id = opened.id;
    let guard = StreamGuard {
        conn: conn.clone(),
        id,
        armed: true,
    };
    if !conn.send(&BrokerFrame::Request {
        id,
        method,
        path,
        headers,
    }) {
        return Err(unavailable());
    }
    let limit = b.cfg.limits.max_request_body;
    let pump = pump_body(conn, id, body, limit);
    tokio::pin!(pump);
    let head_wait = tokio::time::timeout(b.cfg.request_timeout, opened.head);
    tokio::pin!(head_wait);
    let mut pumping = true;
    let head = loop {
        tokio::select! {
            r = &mut pump, if pumping => {
                pumping = false;
                match r {
                    Ok(n) => {
                        log.bytes_in = n;
                        conn.send(&BrokerFrame::End { id });
                    }
                    Err(PumpError::TooLarge) => return Err(request_too_large(limit)),
                    Err(PumpError::Broken) => {
                        return Err(Refusal::new(Code::RequestAborted, "the request body did not arrive whole"));
                    }
                }
            }
            h = &mut head_wait => break h,
        }
    };
    let head = match head {
        Err(_) => {
            return Err(Refusal::new(
                Code::HostTimeout,
                "the host did not answer in time",
            ));
        }
        Ok(Err(_)) => return Err(host_disconnected().into()),
        Ok(Ok(Err(e))) => return Err(e.into()),
        Ok(Ok(Ok(h))) => h,
    };
    Ok((guard, head, opened.body))
}

/// What a streaming answer holds until its last byte: the permits, the log line, and
/// the duty to cancel the host's work if the participant goes away first.
struct BodyState {
    rx: mpsc::UnboundedReceiver<Chunk>,
    conn: Arc<HostConn>,
    route: Arc<Route>,
    id: u64,
    finished: bool,
    /// The declared length: hyper stops reading once it has that many bytes.
    expected: Option<u64>,
    log: Access,
    _permits: Permits,
}

impl BodyState {
    /// The host sent the whole answer: nothing to cancel.
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for BodyState {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.cancel(self.id);
            self.log.aborted = true;
        }
        self.route.touch();
        self.log.write();
    }
}

/// The host's answer as the participant's response, its body streamed under credit.
#[allow(clippy::too_many_arguments)]
fn answer(
    b: &Broker,
    route: Arc<Route>,
    mut stream: StreamGuard,
    head: Head,
    body_rx: mpsc::UnboundedReceiver<Chunk>,
    is_head: bool,
    permits: Permits,
    log: &mut Access,
) -> Result<Outcome, Refusal> {
    let declared = head
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > b.cfg.limits.max_response) {
        return Err(response_too_large(b.cfg.limits.max_response).into());
    }
    // Informational and switching answers cannot be relayed as a plain response.
    let status = StatusCode::from_u16(head.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| host_failure(""))?;
    // From here the body stream cancels the host's work if the participant goes away.
    stream.armed = false;
    let conn = stream.conn.clone();
    let id = stream.id;
    let state = BodyState {
        rx: body_rx,
        conn,
        route,
        id,
        // Nothing to read (an empty or HEAD answer): hyper may never poll the body.
        finished: declared == Some(0) || is_head,
        expected: declared,
        log: log.take(status.as_u16()),
        _permits: permits,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        match st.rx.recv().await {
            Some(Ok(bytes)) => {
                let n = bytes.len();
                st.log.bytes_out += n as u64;
                if st.expected == Some(st.log.bytes_out) {
                    st.finish();
                } else {
                    st.conn.send(&BrokerFrame::Credit {
                        id: st.id,
                        bytes: n as u32,
                    });
                }
                Some((Ok(bytes), st))
            }
            Some(Err(e)) => Some((Err(e), st)),
            None => {
                st.finish();
                None
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in &head.headers {
        if !forwards_response_header(k) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(name, value);
        }
    }
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    Ok(Outcome::Streaming(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_a_local_proxy() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let h = hm(&[("x-forwarded-for", "198.51.100.1, 198.51.100.2")]);
        assert_eq!(
            client_ip(local, &h),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(remote, &h), remote.ip());
        assert_eq!(client_ip(local, &HeaderMap::new()), local.ip());
        let junk = hm(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(local, &junk), local.ip());
        let v6 = hm(&[("x-forwarded-for", "2001:db8:1:2:aaaa::7")]);
        assert_eq!(
            client_ip(local, &v6),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
    }
}
