//! The other instances of a deployment (`--peer`), asked every few seconds which slugs
//! they hold. Each instance keeps its reservations only in its own state file, so when
//! one dies its slugs move to a survivor (the balancer hashes them there) that would
//! otherwise not know them: a stranger could register such a slug first and receive the
//! room's participants' tokens while its host sleeps. With peers, the survivor keeps the
//! dead instance's last answer and refuses those slugs to anyone but their holder (who
//! proves it with the route secret, under the deployment's shared route key) until their
//! routes' lifetimes end. No shared store: each instance only reads the others' lists,
//! which name slugs by MAC only, on their metrics listeners. A slug registered since a
//! peer's last question is pushed to it before its host is told ([`super::push`]); the
//! questions still cover everything else, a peer that restarted included.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::Broker;
use super::reserve::Saved;

/// Where an instance answers with the slugs it holds (its metrics listener).
pub(super) const RESERVATIONS_PATH: &str = "/reservations";

/// How often each peer is asked.
const EVERY: Duration = Duration::from_secs(1);

/// How long one question may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The most a peer's answer may hold (a full table of MACs is well under this).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The `host:port` of a `--peer` URL (`http://host:port`, its metrics listener).
pub fn authority(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("a peer is its metrics listener as http://HOST:PORT, got {url:?}")
    })?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        return Err(format!(
            "a peer is its metrics listener as http://HOST:PORT, got {url:?}"
        ));
    }
    Ok(authority.to_string())
}

/// Asks every peer in turn, for as long as the broker runs.
pub(super) async fn follow(b: Arc<Broker>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for peer in &b.cfg.peers {
            match ask(peer).await {
                Ok(held) => b.reserved.heard_from(peer, held),
                // Keep what it said last: a peer that stopped answering may be dead, and
                // its slugs are the ones to protect.
                Err(e) => tracing::debug!(peer = %peer, error = %e, "peer did not answer"),
            }
        }
    }
}

/// Why a peer could not be asked or told something.
#[derive(Debug, thiserror::Error)]
pub(super) enum PeerError {
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("answered {0}")]
    Status(hyper::StatusCode),
    #[error("the answer is not a list of reservations: {0}")]
    Answer(String),
    #[error("timed out")]
    TimedOut,
}

/// Sends `req` to the peer at `authority` on a connection of its own.
pub(super) async fn exchange<B>(
    authority: &str,
    req: hyper::Request<B>,
) -> Result<hyper::Response<hyper::body::Incoming>, PeerError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(authority).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender.send_request(req).await?)
}

async fn ask(authority: &str) -> Result<Saved, PeerError> {
    let exchange = async {
        let req = hyper::Request::get(RESERVATIONS_PATH)
            .header(hyper::header::HOST, authority)
            .body(Empty::<Bytes>::new())?;
        let resp = exchange(authority, req).await?;
        if !resp.status().is_success() {
            return Err(PeerError::Status(resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| PeerError::Answer(e.to_string()))?
            .to_bytes();
        serde_json::from_slice::<Saved>(&body).map_err(|e| PeerError::Answer(e.to_string()))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| PeerError::TimedOut)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_named_by_its_metrics_listener() {
        assert_eq!(authority("http://10.0.0.2:9799").unwrap(), "10.0.0.2:9799");
        assert_eq!(authority("http://[::1]:9799/").unwrap(), "[::1]:9799");
        for bad in [
            "10.0.0.2:9799",
            "https://a:1",
            "http://a",
            "http://a:1/metrics",
            "http://",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }
}
