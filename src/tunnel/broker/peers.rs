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
//!
//! A list is signed like a push: whoever answers on a dead peer's address could otherwise
//! answer "nothing" and make the survivors forget the dead peer's slugs. Each question
//! carries a fresh nonce, and the answer's HMAC under the shared route key covers the
//! nonce, the peer's name as the asker used it (`Host`) and every entry, so an unsigned,
//! forged or replayed list is treated like no answer (the last good one is kept). An
//! instance refuses to sign for a name that is one of its own `--peer`s, so a live
//! instance cannot be made to vouch for a dead one's address either.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::reserve::Saved;
use super::secrets::{hmac_sha256, is_lower_hex};
use super::state::Broker;
use crate::protocol::ApiError;
use crate::protocol::token::to_hex;

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
        let Some(key) = b.cfg.route_key.as_deref() else {
            // No key, no slug MACs and nothing a list could be checked against.
            return;
        };
        for peer in &b.cfg.peers {
            match ask(peer, key).await {
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
    #[error("the list is not signed for this question under the route key: {0}")]
    Unsigned(ListRefused),
    #[error("timed out")]
    TimedOut,
    #[error("no randomness for a nonce: {0}")]
    Nonce(String),
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

async fn ask(authority: &str, key: &[u8]) -> Result<Saved, PeerError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| PeerError::Nonce(e.to_string()))?;
    let nonce = to_hex(&nonce);
    let exchange = async {
        let req = hyper::Request::get(format!("{RESERVATIONS_PATH}?nonce={nonce}"))
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
        let list: SignedList =
            serde_json::from_slice(&body).map_err(|e| PeerError::Answer(e.to_string()))?;
        list.verify(key, authority, &nonce)
            .map_err(PeerError::Unsigned)?;
        Ok(Saved {
            reserved: list.reserved,
        })
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| PeerError::TimedOut)?
}

/// The answer to `GET /reservations?nonce=…`: the slugs an instance holds (by MAC, with
/// the end of each route's lifetime), the asker's nonce, and the HMAC of all that and the
/// name it was asked by under the route key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedList {
    pub reserved: HashMap<String, i64>,
    pub nonce: String,
    /// Hex HMAC-SHA256; absent, the list is taken for no answer.
    #[serde(default)]
    pub mac: Option<String>,
}

/// Why a list is not taken (or not given).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum ListRefused {
    #[error("the list carries no MAC")]
    Unsigned,
    #[error("the list answers another question")]
    OtherNonce,
    #[error("the list's MAC does not match this deployment's route key")]
    BadMac,
    #[error("the nonce is not 32 lowercase hex digits")]
    BadNonce,
    #[error("this instance has no route key, so it has no list to sign")]
    NoKey,
    #[error("{0} is another instance of this deployment: this one does not answer for it")]
    NotThisInstance(String),
}

impl ListRefused {
    /// The JSON error an instance answers when it does not give its list.
    pub fn api_error(&self) -> ApiError {
        let (status, code) = match self {
            ListRefused::BadNonce => (400, "list_bad_nonce"),
            ListRefused::NoKey => (409, "list_no_route_key"),
            ListRefused::NotThisInstance(_) => (421, "list_misdirected"),
            ListRefused::Unsigned | ListRefused::OtherNonce | ListRefused::BadMac => {
                (401, "list_unauthenticated")
            }
        };
        ApiError::new(status, code, self.to_string())
    }
}

/// The MAC of a list under `key`: the name it answers for, the nonce, and its entries in
/// one order whatever the map's.
fn list_mac(key: &[u8], authority: &str, nonce: &str, reserved: &HashMap<String, i64>) -> String {
    let mut entries: Vec<(&String, &i64)> = reserved.iter().collect();
    entries.sort();
    let mut body = Vec::with_capacity(entries.len() * 48);
    for (mac, exp) in entries {
        body.extend_from_slice(mac.as_bytes());
        body.push(0);
        body.extend_from_slice(exp.to_string().as_bytes());
        body.push(b'\n');
    }
    to_hex(&hmac_sha256(
        key,
        &[
            b"agentgather peer list v1\0",
            authority.as_bytes(),
            b"\0",
            nonce.as_bytes(),
            b"\0",
            &body,
        ],
    ))
}

impl SignedList {
    /// `held` signed for the asker who named this instance `authority` and sent `nonce`.
    pub fn signed(key: &[u8], authority: &str, nonce: String, held: Saved) -> SignedList {
        let mac = list_mac(key, authority, &nonce, &held.reserved);
        SignedList {
            reserved: held.reserved,
            nonce,
            mac: Some(mac),
        }
    }

    /// Checks that this is the answer to the question `nonce` sent to `authority` (the MAC
    /// in constant time).
    pub fn verify(&self, key: &[u8], authority: &str, nonce: &str) -> Result<(), ListRefused> {
        let Some(given) = self.mac.as_deref() else {
            return Err(ListRefused::Unsigned);
        };
        if self.nonce != nonce {
            return Err(ListRefused::OtherNonce);
        }
        let expected = list_mac(key, authority, nonce, &self.reserved);
        let genuine: bool = expected.as_bytes().ct_eq(given.as_bytes()).into();
        if genuine {
            Ok(())
        } else {
            Err(ListRefused::BadMac)
        }
    }
}

/// This instance's list for the asker that sent `nonce` to the name `authority`: refused
/// when that name is another instance's (a `--peer` that is not this instance's own
/// metrics address), so no instance vouches for another's address.
pub(super) fn list_for(
    b: &Broker,
    held: Saved,
    authority: &str,
    nonce: &str,
) -> Result<SignedList, ListRefused> {
    let Some(key) = b.cfg.route_key.as_deref() else {
        return Err(ListRefused::NoKey);
    };
    if !nonce.is_empty() && !is_lower_hex(nonce, 32) {
        return Err(ListRefused::BadNonce);
    }
    let own = b.cfg.metrics_addr.map(|a| a.to_string());
    if b.cfg.peers.iter().any(|p| p == authority) && own.as_deref() != Some(authority) {
        return Err(ListRefused::NotThisInstance(authority.to_string()));
    }
    Ok(SignedList::signed(key, authority, nonce.to_string(), held))
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

    fn held(entries: &[(&str, i64)]) -> Saved {
        Saved {
            reserved: entries.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    const NONCE: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn a_list_verifies_only_for_its_question_key_and_name() {
        let list = SignedList::signed(
            b"key",
            "10.0.0.2:9799",
            NONCE.into(),
            held(&[("aa", 5), ("bb", 7)]),
        );
        assert_eq!(list.verify(b"key", "10.0.0.2:9799", NONCE), Ok(()));
        let json = serde_json::to_string(&list).unwrap();
        let back: SignedList = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify(b"key", "10.0.0.2:9799", NONCE), Ok(()));
        assert_eq!(
            list.verify(b"other", "10.0.0.2:9799", NONCE),
            Err(ListRefused::BadMac)
        );
        assert_eq!(
            list.verify(b"key", "10.0.0.3:9799", NONCE),
            Err(ListRefused::BadMac)
        );
        let other = "ffeeddccbbaa99887766554433221100";
        assert_eq!(
            list.verify(b"key", "10.0.0.2:9799", other),
            Err(ListRefused::OtherNonce)
        );
    }

    #[test]
    fn every_entry_is_under_the_mac() {
        let list = SignedList::signed(b"key", "p:1", NONCE.into(), held(&[("aa", 5)]));
        let mut emptied = list.clone();
        emptied.reserved.clear();
        assert_eq!(
            emptied.verify(b"key", "p:1", NONCE),
            Err(ListRefused::BadMac)
        );
        let mut shorter = list.clone();
        shorter.reserved.insert("aa".into(), 4);
        assert_eq!(
            shorter.verify(b"key", "p:1", NONCE),
            Err(ListRefused::BadMac)
        );
        let mut unsigned = list;
        unsigned.mac = None;
        assert_eq!(
            unsigned.verify(b"key", "p:1", NONCE),
            Err(ListRefused::Unsigned)
        );
        let old = serde_json::from_str::<SignedList>(r#"{"reserved":{}}"#);
        assert!(old.is_err(), "a list without a nonce is no answer");
    }
}
