//! The operators' view (`--metrics-addr`): Prometheus text metrics on a listener of their
//! own, plus `/healthz` (the process answers) and `/readyz` (it takes traffic: not
//! draining, and past its restart grace), and `/reservations` for the other instances
//! (GET: the slugs held here, by MAC; POST: a peer's new slug, see [`super::push`]). No
//! label holds a slug, a token or a path: routes are counted by status, requests by path
//! class and status, refusals by code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::Broker;
use crate::tunnel::lock;

/// Counters the request path bumps; gauges are read from the route table when scraped.
#[derive(Default)]
pub(super) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub registrations: AtomicU64,
    pub reclaims: AtomicU64,
    /// Connections accepted on the public port, by protocol: whether the edge proxy
    /// really multiplexes participants over h2c shows here.
    pub connections_http1: AtomicU64,
    pub connections_h2c: AtomicU64,
}

impl Metrics {
    /// One request answered: its class, status, refusal code and bytes.
    pub fn request(
        &self,
        class: &'static str,
        status: u16,
        code: Option<&'static str>,
        bytes: (u64, u64),
    ) {
        *lock(&self.requests).entry((class, status)).or_default() += 1;
        if let Some(code) = code {
            *lock(&self.refusals).entry(code).or_default() += 1;
        }
        self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
    }

    pub fn refusal(&self, code: &'static str) {
        *lock(&self.refusals).entry(code).or_default() += 1;
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The Prometheus text exposition of `b`.
fn render(b: &Broker) -> String {
    let (mut connected, mut awaiting, mut reserved, mut in_flight, mut waits) = (0, 0, 0, 0, 0);
    for r in b.routes().values() {
        let st = r.state();
        match (st.conn.is_some(), st.ended) {
            (true, _) => connected += 1,
            (false, false) => awaiting += 1,
            (false, true) => reserved += 1,
        }
        drop(st);
        in_flight += r.max_requests as usize - r.requests.available_permits();
        waits += b.cfg.limits.max_waits as usize - r.waits.available_permits();
    }
    let m = &b.metrics;
    let mut out = String::new();
    family(
        &mut out,
        "agentgather_broker_routes",
        "gauge",
        "Routes in the table, by status.",
    );
    for (status, n) in [
        ("connected", connected),
        ("awaiting_reclaim", awaiting),
        ("reserved", reserved),
    ] {
        let _ = writeln!(out, "agentgather_broker_routes{{status=\"{status}\"}} {n}");
    }
    family(
        &mut out,
        "agentgather_broker_host_connections",
        "gauge",
        "Hosts connected and serving a route.",
    );
    let _ = writeln!(out, "agentgather_broker_host_connections {connected}");
    family(
        &mut out,
        "agentgather_broker_requests_in_flight",
        "gauge",
        "Participant requests being relayed.",
    );
    let _ = writeln!(out, "agentgather_broker_requests_in_flight {in_flight}");
    family(
        &mut out,
        "agentgather_broker_held_waits",
        "gauge",
        "Held /wait requests relayed to hosts.",
    );
    let _ = writeln!(out, "agentgather_broker_held_waits {waits}");
    family(
        &mut out,
        "agentgather_broker_requests_total",
        "counter",
        "Requests answered, by path class and status.",
    );
    for ((class, status), n) in lock(&m.requests).iter() {
        let _ = writeln!(
            out,
            "agentgather_broker_requests_total{{class=\"{class}\",status=\"{status}\"}} {n}"
        );
    }
    family(
        &mut out,
        "agentgather_broker_refusals_total",
        "counter",
        "Refusals, by code.",
    );
    for (code, n) in lock(&m.refusals).iter() {
        let _ = writeln!(
            out,
            "agentgather_broker_refusals_total{{code=\"{code}\"}} {n}"
        );
    }
    family(
        &mut out,
        "agentgather_broker_relayed_bytes_total",
        "counter",
        "Body bytes relayed, by direction.",
    );
    let _ = writeln!(
        out,
        "agentgather_broker_relayed_bytes_total{{direction=\"in\"}} {}",
        m.bytes_in.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "agentgather_broker_relayed_bytes_total{{direction=\"out\"}} {}",
        m.bytes_out.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "agentgather_broker_connections_total",
        "counter",
        "Connections accepted on the public port, by protocol.",
    );
    for (protocol, n) in [("http1", &m.connections_http1), ("h2c", &m.connections_h2c)] {
        let _ = writeln!(
            out,
            "agentgather_broker_connections_total{{protocol=\"{protocol}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "agentgather_broker_registrations_total",
        "counter",
        "New routes registered.",
    );
    let _ = writeln!(
        out,
        "agentgather_broker_registrations_total {}",
        m.registrations.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "agentgather_broker_reclaims_total",
        "counter",
        "Routes taken back by their host's secret.",
    );
    let _ = writeln!(
        out,
        "agentgather_broker_reclaims_total {}",
        m.reclaims.load(Ordering::Relaxed)
    );
    out
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_string(value).unwrap_or_default();
    text(status, "application/json", body)
}

/// `GET /reservations?nonce=…`: the slugs this instance holds, signed for the asking peer.
/// `POST /reservations`: a peer's new slug, pushed before its host is told.
async fn reservations(b: &Broker, req: Request<Incoming>) -> Response {
    let error = |e: crate::protocol::ApiError| {
        json(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            &e,
        )
    };
    match *req.method() {
        hyper::Method::GET => {
            let routes: Vec<Arc<super::route::Route>> = b.routes().values().cloned().collect();
            let authority = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let nonce = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("nonce="))
                .unwrap_or_default();
            match super::peers::list_for(b, b.reserved.held(&routes), authority, nonce) {
                Ok(list) => json(StatusCode::OK, &list),
                Err(e) => error(e.api_error()),
            }
        }
        hyper::Method::POST => match super::push::receive(b, req.into_body()).await {
            Ok(()) => json(StatusCode::OK, &super::push::PushAccepted { ok: true }),
            Err(e) => error(e.api_error()),
        },
        _ => error(super::push::PushRefused::Method.api_error()),
    }
}

async fn answer(
    b: Arc<Broker>,
    req: Request<Incoming>,
) -> Result<Response, std::convert::Infallible> {
    Ok(match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(&b),
        ),
        super::peers::RESERVATIONS_PATH => reservations(&b, req).await,
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/readyz" => {
            if b.draining() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "draining\n".into(),
                )
            } else {
                text(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    "ready\n".into(),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    })
}

/// Serves the operators' listener until the process ends.
pub(super) async fn serve(b: Arc<Broker>, listener: tokio::net::TcpListener) {
    let cap = Arc::new(tokio::sync::Semaphore::new(64));
    loop {
        let (stream, _peer, permit): (_, SocketAddr, _) =
            crate::net::accept_capped(&listener, &cap).await;
        let b = b.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| answer(b.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            drop(permit);
        });
    }
}
