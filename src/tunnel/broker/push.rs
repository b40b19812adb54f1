//! Telling the peers about a new slug before its host learns it has it. The pull loop
//! ([`super::peers`]) asks every second, so a slug registered in the last second before
//! its instance died would be unknown to the survivors, and a stranger reaching one of
//! them first would get it, and with it the room participants' bearer tokens. So when an
//! instance takes a slug that is new to it, it pushes the reservation to every peer's
//! metrics listener (`POST /reservations`) and only then confirms the route to the host.
//!
//! Why it is built like this:
//! - Anyone who can reach a metrics listener could otherwise reserve any slug there, so
//!   a pushed entry carries an HMAC under the deployment's shared route key (every
//!   instance reads the same key file), over the slug's MAC, the route's end and the time
//!   it was sent; a peer checks it in constant time and refuses stale ones, so a captured
//!   push cannot be replayed later. The slug itself never travels: only its MAC, as in
//!   the lists the peers poll.
//! - A dead or slow peer must not hold up a registration: every peer is asked at once,
//!   each for at most [`TIMEOUT`], and the route is confirmed whatever they answered (a
//!   dead peer needs no warning; when it comes back, it polls).
//! - A peer keeps what was pushed beside what it polled, until the route's end or until
//!   a polled list names the slug (from then on that list speaks for it), so an answer
//!   to a question asked before the push cannot erase it.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::peers::{self, PeerError, RESERVATIONS_PATH};
use super::secrets::{hmac_sha256, is_lower_hex};
use super::state::Broker;
use crate::protocol::ApiError;
use crate::protocol::timefmt::now_ms;
use crate::protocol::token::to_hex;

/// How long one peer may take to take a pushed reservation.
pub(super) const TIMEOUT: Duration = Duration::from_millis(500);

/// How far a push's sending time may be from the receiver's clock (sending delay and
/// clock skew); older pushes are refused, so a captured one cannot be replayed later.
const FRESH_MS: i64 = 60_000;

/// The most a pushed body may hold (one entry is about 200 bytes).
pub(super) const MAX_PUSH_BYTES: usize = 4 * 1024;

/// One reservation pushed to a peer: the slug by MAC (as in `/reservations`), the end of
/// its route's lifetime, when it was sent, and the HMAC of those under the route key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushedEntry {
    pub slug_mac: String,
    pub expires_at_ms: i64,
    pub sent_at_ms: i64,
    /// Hex HMAC-SHA256; absent, the push is refused as unauthenticated.
    #[serde(default)]
    pub mac: Option<String>,
}

/// The answer to an accepted push.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PushAccepted {
    pub ok: bool,
}

/// Why a push is refused (nothing is kept).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum PushRefused {
    #[error("reservations are pushed with POST and listed with GET")]
    Method,
    #[error("the pushed reservation is larger than {MAX_PUSH_BYTES} bytes")]
    TooLarge,
    #[error("the body is not a pushed reservation: {0}")]
    Malformed(String),
    #[error("the pushed reservation carries no MAC")]
    Unsigned,
    #[error("the pushed reservation's MAC does not match this deployment's route key")]
    BadMac,
    #[error("the pushed reservation was not sent within the last minute")]
    Stale,
    #[error("this instance has no route key, so it cannot check a pushed reservation")]
    NoKey,
    #[error("this instance holds as many pushed reservations as it may")]
    Full,
}

impl PushRefused {
    fn code(&self) -> &'static str {
        match self {
            PushRefused::Method => "method_not_allowed",
            PushRefused::TooLarge => "push_too_large",
            PushRefused::Malformed(_) => "push_malformed",
            PushRefused::Unsigned | PushRefused::BadMac => "push_unauthenticated",
            PushRefused::Stale => "push_stale",
            PushRefused::NoKey => "push_no_route_key",
            PushRefused::Full => "push_table_full",
        }
    }

    fn status(&self) -> u16 {
        match self {
            PushRefused::Method => 405,
            PushRefused::TooLarge => 413,
            PushRefused::Malformed(_) => 400,
            PushRefused::Unsigned | PushRefused::BadMac | PushRefused::Stale => 401,
            PushRefused::NoKey => 409,
            PushRefused::Full => 503,
        }
    }

    /// The JSON error a peer answers (`{"error": code, "message": …}`).
    pub fn api_error(&self) -> ApiError {
        ApiError::new(self.status(), self.code(), self.to_string())
    }
}

/// The MAC of an entry under `key`.
fn entry_mac(key: &[u8], slug_mac: &str, expires_at_ms: i64, sent_at_ms: i64) -> String {
    let (exp, sent) = (expires_at_ms.to_string(), sent_at_ms.to_string());
    to_hex(&hmac_sha256(
        key,
        &[
            b"agentgather peer push v1\0",
            slug_mac.as_bytes(),
            b"\0",
            exp.as_bytes(),
            b"\0",
            sent.as_bytes(),
        ],
    ))
}

impl PushedEntry {
    /// The signed entry for the slug whose MAC is `slug_mac`, sent at `now`.
    pub fn signed(key: &[u8], slug_mac: String, expires_at_ms: i64, now: i64) -> PushedEntry {
        let mac = entry_mac(key, &slug_mac, expires_at_ms, now);
        PushedEntry {
            slug_mac,
            expires_at_ms,
            sent_at_ms: now,
            mac: Some(mac),
        }
    }

    /// Checks the entry against `key` at `now` (the MAC in constant time).
    pub fn verify(&self, key: &[u8], now: i64) -> Result<(), PushRefused> {
        let Some(given) = self.mac.as_deref() else {
            return Err(PushRefused::Unsigned);
        };
        if !is_lower_hex(&self.slug_mac, 32) {
            return Err(PushRefused::Malformed(
                "slug_mac is not 32 lowercase hex digits".into(),
            ));
        }
        let expected = entry_mac(key, &self.slug_mac, self.expires_at_ms, self.sent_at_ms);
        let genuine: bool = expected.as_bytes().ct_eq(given.as_bytes()).into();
        if !genuine {
            return Err(PushRefused::BadMac);
        }
        if now.abs_diff(self.sent_at_ms) > FRESH_MS as u64 {
            return Err(PushRefused::Stale);
        }
        Ok(())
    }
}

/// Takes a pushed reservation (the body of `POST /reservations`) into what `b` keeps
/// for its peers, once its MAC proves an instance of this deployment sent it. The route's
/// end is capped by this instance's `--max-lifetime`, as for its own routes: a peer (or
/// anyone holding the route key) cannot keep a slug here longer than a host could.
pub(super) async fn receive<B>(b: &Broker, body: B) -> Result<(), PushRefused>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(key) = b.cfg.route_key.as_deref() else {
        return Err(PushRefused::NoKey);
    };
    let body: Bytes = Limited::new(body, MAX_PUSH_BYTES)
        .collect()
        .await
        .map_err(|_| PushRefused::TooLarge)?
        .to_bytes();
    let entry: PushedEntry =
        serde_json::from_slice(&body).map_err(|e| PushRefused::Malformed(e.to_string()))?;
    let now = now_ms();
    entry.verify(key, now)?;
    let expires_at_ms = b.cfg.limits.capped_end(now, entry.expires_at_ms);
    if b.reserved.pushed(entry.slug_mac, expires_at_ms) {
        Ok(())
    } else {
        Err(PushRefused::Full)
    }
}

/// Tells every peer, at once, that this instance now holds `slug` until
/// `expires_at_ms`; returns when each has answered or timed out. Without a route key
/// there is nothing a peer could check (and no slug MAC): nothing is sent.
pub(super) async fn announce(b: &Broker, slug: &str, expires_at_ms: i64) {
    if b.cfg.peers.is_empty() {
        return;
    }
    let (Some(key), Some(slug_mac)) = (b.cfg.route_key.as_deref(), b.reserved.mac(slug)) else {
        return;
    };
    let entry = PushedEntry::signed(key, slug_mac, expires_at_ms, now_ms());
    let body = match serde_json::to_vec(&entry) {
        Ok(body) => Bytes::from(body),
        Err(e) => {
            tracing::warn!(error = %e, "could not encode a pushed reservation");
            return;
        }
    };
    let pushes = b.cfg.peers.iter().map(|peer| {
        let body = body.clone();
        async move {
            let sent = tokio::time::timeout(TIMEOUT, push_to(peer, body)).await;
            match sent.unwrap_or(Err(PeerError::TimedOut)) {
                Ok(()) => {}
                // A dead peer needs no warning: when it comes back, it polls.
                Err(e) => {
                    tracing::info!(peer = %peer, error = %e, "a peer did not take a reservation")
                }
            }
        }
    });
    futures_util::future::join_all(pushes).await;
}

async fn push_to(authority: &str, body: Bytes) -> Result<(), PeerError> {
    let req = hyper::Request::post(RESERVATIONS_PATH)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(body))?;
    let resp = peers::exchange(authority, req).await?;
    if !resp.status().is_success() {
        return Err(PeerError::Status(resp.status()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLUG_MAC: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn a_signed_entry_verifies_under_its_key_only() {
        let now = 1_800_000_000_000;
        let e = PushedEntry::signed(b"key", SLUG_MAC.into(), now + 60_000, now);
        assert_eq!(e.verify(b"key", now), Ok(()));
        assert_eq!(e.verify(b"key", now + 5_000), Ok(()));
        assert_eq!(e.verify(b"other", now), Err(PushRefused::BadMac));
        let json = serde_json::to_string(&e).unwrap();
        let back: PushedEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.verify(b"key", now), Ok(()));
    }

    #[test]
    fn every_field_is_under_the_mac() {
        let now = 1_800_000_000_000;
        let e = PushedEntry::signed(b"key", SLUG_MAC.into(), now + 60_000, now);
        let mut later = e.clone();
        later.expires_at_ms += 1;
        assert_eq!(later.verify(b"key", now), Err(PushRefused::BadMac));
        let mut other = e.clone();
        other.slug_mac = "ffeeddccbbaa99887766554433221100".into();
        assert_eq!(other.verify(b"key", now), Err(PushRefused::BadMac));
        let mut resent = e.clone();
        resent.sent_at_ms += 1;
        assert_eq!(resent.verify(b"key", now), Err(PushRefused::BadMac));
        let mut unsigned = e.clone();
        unsigned.mac = None;
        assert_eq!(unsigned.verify(b"key", now), Err(PushRefused::Unsigned));
        let mut short = e.clone();
        short.mac = e.mac.as_deref().map(|m| m[..10].to_string());
        assert_eq!(short.verify(b"key", now), Err(PushRefused::BadMac));
        let mut clear = e;
        clear.slug_mac = "demo".into();
        assert!(matches!(
            clear.verify(b"key", now),
            Err(PushRefused::Malformed(_))
        ));
    }

    #[test]
    fn an_old_push_cannot_be_replayed() {
        let now = 1_800_000_000_000;
        let e = PushedEntry::signed(b"key", SLUG_MAC.into(), now + 3_600_000, now);
        assert_eq!(e.verify(b"key", now + FRESH_MS), Ok(()));
        assert_eq!(
            e.verify(b"key", now + FRESH_MS + 1),
            Err(PushRefused::Stale)
        );
        assert_eq!(
            e.verify(b"key", now - FRESH_MS - 1),
            Err(PushRefused::Stale)
        );
    }

    #[tokio::test]
    async fn a_pushed_end_is_capped_by_max_lifetime() {
        use super::super::config::{BrokerConfig, BrokerLimits};
        let file = std::env::temp_dir().join(format!("ag-push-cap-{}", std::process::id()));
        let hour = Duration::from_secs(3600);
        let cfg = BrokerConfig {
            route_key: Some(b"key".to_vec()),
            // Never written here: the file only gives the reservations their key.
            state_file: Some(file),
            limits: BrokerLimits {
                max_lifetime: hour,
                ..BrokerLimits::default()
            },
            ..BrokerConfig::default()
        };
        let b = Broker::new(cfg, "http://127.0.0.1:1".into()).expect("a broker");
        let slug_mac = b.reserved.mac("demo").expect("a route key");
        let sent = now_ms();
        let ten_years = 10 * 365 * 24 * hour.as_millis() as i64;
        let entry = PushedEntry::signed(b"key", slug_mac.clone(), sent + ten_years, sent);
        let body = serde_json::to_vec(&entry).expect("an entry encodes");
        receive(&b, http_body_util::Full::new(Bytes::from(body)))
            .await
            .expect("a genuine push is taken");
        let kept = b
            .reserved
            .pushed_until(&slug_mac)
            .expect("the push is kept");
        let hour_ms = hour.as_millis() as i64;
        assert!(kept >= sent + hour_ms, "{kept} ends before the cap");
        assert!(kept <= now_ms() + hour_ms, "{kept} outlives --max-lifetime");
    }

    #[test]
    fn unknown_fields_and_junk_are_malformed() {
        let junk = serde_json::from_str::<PushedEntry>(
            r#"{"slug_mac":"a","expires_at_ms":1,"sent_at_ms":1,"mac":"b","slug":"demo"}"#,
        );
        assert!(junk.is_err());
        let refusal = PushRefused::Malformed("x".into()).api_error();
        assert_eq!((refusal.status, refusal.code), (400, "push_malformed"));
        let refusal = PushRefused::BadMac.api_error();
        assert_eq!(
            (refusal.status, refusal.code),
            (401, "push_unauthenticated")
        );
    }
}
