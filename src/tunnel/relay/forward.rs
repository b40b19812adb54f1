//! One relayed request: an ordinary loopback HTTP request to the room server (its own
//! task, so a held `/wait` never delays anything else), its answer streamed back to the
//! broker in data frames under the stream's credit window.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Either, Empty, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::tunnel::TunnelError;
use crate::tunnel::lock;
use crate::tunnel::protocol::{
    CHUNK_BYTES, Code, FrameTx, HostFrame, INITIAL_WINDOW, forwards_request_header,
    forwards_response_header, header_pairs,
};

/// The loopback room server requests go to, and the kept-alive connections to it that
/// no request is using.
pub(super) struct Target {
    /// `host:port` to connect to, also the `Host` header.
    pub authority: String,
    idle: Mutex<Vec<Local>>,
}

/// A connection to the room server: its sender and the task driving it (ended when
/// this is dropped, so a cancelled request's connection is never reused).
struct Local {
    sender: SendRequest<LocalBody>,
    since: Instant,
    _conn: AbortOnDrop,
}

/// Idle connections kept to the room server. Reusing one saves a connect, an accept and
/// a handshake on every relayed request (most of what the tunnel added to a short one).
const MAX_IDLE: usize = 16;

/// How long an idle connection is reused: the room server closes one idle for 10 s
/// (its header read timeout), so it is retired well before.
const IDLE_FOR: Duration = Duration::from_secs(4);

impl Target {
    /// An idle connection ready for a request, if one is left.
    async fn take_idle(&self) -> Option<Local> {
        loop {
            let mut c = lock(&self.idle).pop()?;
            if c.since.elapsed() < IDLE_FOR
                && !c.sender.is_closed()
                && c.sender.ready().await.is_ok()
            {
                return Some(c);
            }
        }
    }

    /// A connection whose answer was read whole, kept for the next request.
    fn put_back(&self, mut c: Local) {
        if c.sender.is_closed() {
            return;
        }
        c.since = Instant::now();
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    async fn connect(&self) -> Result<Local, Failure> {
        let stream =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&self.authority))
                .await
                .map_err(|_| unreachable("connect timed out"))?
                .map_err(unreachable)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake::<_, LocalBody>(TokioIo::new(stream))
                .await
                .map_err(unreachable)?;
        Ok(Local {
            sender,
            since: Instant::now(),
            _conn: AbortOnDrop(tokio::spawn(conn).abort_handle()),
        })
    }

    /// Sends `request` on an idle connection, or on a new one when there is none or the
    /// idle one closed before taking it (the request comes back unsent then).
    async fn send(
        &self,
        request: Request<LocalBody>,
    ) -> Result<(Local, Response<Incoming>), Failure> {
        let request = match self.take_idle().await {
            Some(mut c) => match c.sender.try_send_request(request).await {
                Ok(resp) => return Ok((c, resp)),
                Err(mut e) => match e.take_message() {
                    Some(r) => r,
                    None => return Err(unreachable(e.into_error())),
                },
            },
            None => request,
        };
        let mut c = self.connect().await?;
        let resp = c.sender.send_request(request).await.map_err(unreachable)?;
        Ok((c, resp))
    }
}

pub(super) fn parse_target(url: &str) -> Result<Target, TunnelError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        TunnelError::Config(format!(
            "--target must be a loopback http:// URL (got {url:?})"
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    if !crate::protocol::url::is_loopback_host(authority) {
        return Err(TunnelError::Config(format!(
            "--target must be a room server on this machine (loopback), got {url:?}"
        )));
    }
    let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']')
    }) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        idle: Mutex::new(Vec::new()),
    })
}

/// A request being answered: where its body goes, its credit, its task.
pub(super) struct Stream {
    pub body: Option<mpsc::UnboundedSender<Bytes>>,
    pub received: u64,
    pub window: Arc<Semaphore>,
    pub task: Option<AbortHandle>,
}

pub(super) type Streams = Arc<Mutex<HashMap<u64, Stream>>>;

/// A request as the broker relayed it.
pub(super) struct LocalRequest {
    pub id: u64,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Starts answering `req` in its own task.
pub(super) fn start_request(
    target: &Arc<Target>,
    tx: &FrameTx,
    streams: &Streams,
    req: LocalRequest,
    max_response: u64,
) {
    let id = req.id;
    let (body_tx, body_rx) = mpsc::unbounded_channel();
    let window = Arc::new(Semaphore::new(INITIAL_WINDOW as usize));
    lock(streams).insert(
        id,
        Stream {
            body: Some(body_tx),
            received: 0,
            window: window.clone(),
            task: None,
        },
    );
    let target = target.clone();
    let tx2 = tx.clone();
    let streams2 = streams.clone();
    let handle = tokio::spawn(async move {
        let out = Outbound {
            id,
            window: &window,
            tx: &tx2,
            max_response,
        };
        if let Err((code, message)) = forward(&target, req, body_rx, out).await {
            tx2.control(&HostFrame::Fail {
                id,
                code: code.as_str().into(),
                message,
            });
        }
        lock(&streams2).remove(&id);
    });
    if let Some(s) = lock(streams).get_mut(&id) {
        s.task = Some(handle.abort_handle());
    }
}

/// Aborts a task when dropped (the local connection of a cancelled request).
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the room server may take to answer (a held `/wait` is 25 s).
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

type Failure = (Code, String);

fn unreachable(e: impl std::fmt::Display) -> Failure {
    (
        Code::TargetUnreachable,
        format!("the room server did not answer: {e}"),
    )
}

/// Where an answer goes: its stream on the broker connection, under its credit.
struct Outbound<'a> {
    id: u64,
    window: &'a Semaphore,
    tx: &'a FrameTx,
    max_response: u64,
}

type LocalBody = Either<
    Empty<Bytes>,
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>,
>;

/// The request as hyper sends it to the room server: `Host` is always the target.
fn local_request(
    target: &Target,
    req: &LocalRequest,
    body_rx: mpsc::UnboundedReceiver<Bytes>,
) -> Result<Request<LocalBody>, Failure> {
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| (Code::BadRequest, "an unknown method".to_string()))?;
    if !req.path.starts_with('/') {
        return Err((Code::BadRequest, "a path must start with /".into()));
    }
    let has_length = req
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    let bodyless = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let body: LocalBody = if bodyless && !has_length {
        Either::Left(Empty::new())
    } else {
        let s = futures_util::stream::unfold(body_rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        Either::Right(StreamBody::new(s.boxed()))
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(req.path.as_str())
        .header(header::HOST, target.authority.as_str());
    for (k, v) in &req.headers {
        if forwards_request_header(k) {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    builder
        .body(body)
        .map_err(|e| (Code::BadRequest, format!("an unusable request: {e}")))
}

/// Sends one request to the room server and streams its answer back.
async fn forward(
    target: &Target,
    req: LocalRequest,
    body_rx: mpsc::UnboundedReceiver<Bytes>,
    out: Outbound<'_>,
) -> Result<(), Failure> {
    let request = local_request(target, &req, body_rx)?;
    let (local, resp) = tokio::time::timeout(LOCAL_TIMEOUT, target.send(request))
        .await
        .map_err(|_| {
            (
                Code::TargetTimeout,
                "the room server did not answer in time".to_string(),
            )
        })??;
    let (parts, mut body) = resp.into_parts();
    let headers = header_pairs(&parts.headers, forwards_response_header);
    let id = out.id;
    out.tx.control(&HostFrame::Response {
        id,
        status: parts.status.as_u16(),
        headers,
    });
    let mut total = 0u64;
    loop {
        let frame = match tokio::time::timeout(LOCAL_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err((
                    Code::TargetTimeout,
                    "the room server stalled mid-answer".into(),
                ));
            }
            Ok(None) => break,
            Ok(Some(f)) => f.map_err(unreachable)?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > out.max_response {
            return Err((
                Code::ResponseTooLarge,
                "the answer is over the broker's limit".into(),
            ));
        }
        for chunk in data.chunks(CHUNK_BYTES) {
            out.window
                .acquire_many(chunk.len() as u32)
                .await
                .map_err(|_| (Code::Cancelled, String::new()))?
                .forget();
            if !out.tx.data(id, chunk) {
                return Ok(());
            }
        }
    }
    out.tx.control(&HostFrame::End { id });
    target.put_back(local);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_loopback() {
        assert_eq!(
            parse_target("http://127.0.0.1:8787").unwrap().authority,
            "127.0.0.1:8787"
        );
        assert_eq!(
            parse_target("http://localhost/").unwrap().authority,
            "localhost:80"
        );
        assert!(parse_target("http://10.0.0.1:8787").is_err());
        assert!(parse_target("https://127.0.0.1:8787").is_err());
    }
}
