//! The operators' listener (`--metrics-addr`): Prometheus text metrics, `/healthz` (the
//! process answers), `/readyz` (it takes traffic: not draining), and `/reservations` for
//! the other instances (GET: the slugs held here, by MAC; POST: a peer's new slug, see
//! [`super::push`]). It is a listener of its own so that operators and peers never share
//! the public port's limits, and it sits above everything it serves (the route table,
//! the counters, the peers' lists and pushes): it only reads them or hands a request to
//! them, and nothing of the request path calls back into it. No label holds a slug, a
//! token or a path.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::counters::family;
use super::state::Broker;

/// The Prometheus text exposition of `b`.
fn render(b: &Broker) -> String {
    let mut by_status = [("connected", 0), ("awaiting_reclaim", 0), ("reserved", 0)];
    let (mut in_flight, mut waits) = (0, 0);
    for r in b.routes().values() {
        let status = r.status();
        if let Some((_, n)) = by_status.iter_mut().find(|(s, _)| *s == status) {
            *n += 1;
        }
        in_flight += r.requests_in_flight();
        waits += b.cfg.limits.max_waits as usize - r.waits.available_permits();
    }
    let connected = by_status[0].1;
    let mut out = String::new();
    family(
        &mut out,
        "agentgather_broker_routes",
        "gauge",
        "Routes in the table, by status.",
    );
    for (status, n) in by_status {
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
    b.counters.render(&mut out);
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
