//! Route secrets. A route secret is an HMAC of the route id and slug under the broker's
//! route key, and the route id carries the route's expiry under the same MAC, so any
//! broker process holding the key verifies a returning host with no stored table, and a
//! reclaim can never extend a route's lifetime.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tunnel::protocol::RouteCredentials;
use crate::tunnel::{TunnelError, random_token};

/// Whether `s` is `len` lowercase hex digits (how MACs, slug MACs and nonces travel).
pub(super) fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The secret of route `route_id` for `slug` under the broker's route key.
pub(super) fn derive_secret(key: &[u8], route_id: &str, slug: &str) -> String {
    let mac = hmac_sha256(
        key,
        &[
            b"agentgather route v1\0",
            route_id.as_bytes(),
            b"\0",
            slug.as_bytes(),
        ],
    );
    format!(
        "rts_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    )
}

/// The expiry (ms since the epoch) a route id carries after its last `-`.
pub(super) fn route_id_expiry(id: &str) -> Option<i64> {
    let (_, hex) = id.rsplit_once('-')?;
    i64::from_str_radix(hex, 16).ok()
}

pub(super) fn valid_route_id(id: &str) -> bool {
    id.starts_with("rt_")
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The expiry of the route `creds` prove for `slug` under `key`, if they are genuine.
pub(super) fn verify(key: &[u8], creds: &RouteCredentials, slug: &str) -> Option<i64> {
    if !valid_route_id(&creds.route_id) {
        return None;
    }
    let expected = derive_secret(key, &creds.route_id, slug);
    let genuine: bool = expected
        .as_bytes()
        .ct_eq(creds.route_secret.as_bytes())
        .into();
    if genuine {
        route_id_expiry(&creds.route_id)
    } else {
        None
    }
}

/// Fresh credentials for `slug`, ending at `expires_at_ms`: derived from the route key
/// when there is one, else random.
pub(super) fn new_credentials(
    key: Option<&[u8]>,
    slug: &str,
    expires_at_ms: i64,
) -> Result<RouteCredentials, TunnelError> {
    let route_id = format!("{}-{expires_at_ms:x}", random_token("rt_", 9)?);
    let route_secret = match key {
        Some(key) => derive_secret(key, &route_id, slug),
        None => random_token("rts_", 32)?,
    };
    Ok(RouteCredentials {
        route_id,
        route_secret,
    })
}

/// SHA-256 of a secret, for constant-time comparison without keeping the secret.
pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex = crate::protocol::token::to_hex(&mac);
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        let mac = hmac_sha256(
            &long_key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        let hex = crate::protocol::token::to_hex(&mac);
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derived_secrets_bind_the_route_and_the_slug() {
        let a = derive_secret(b"key", "rt_1", "demo");
        assert!(a.starts_with("rts_"));
        assert_eq!(a, derive_secret(b"key", "rt_1", "demo"));
        assert_ne!(a, derive_secret(b"key", "rt_2", "demo"));
        assert_ne!(a, derive_secret(b"key", "rt_1", "demo-2"));
        assert_ne!(a, derive_secret(b"other", "rt_1", "demo"));
        assert!(valid_route_id("rt_abc-_9"));
        assert_eq!(route_id_expiry("rt_a-b-c-ff"), Some(255));
        assert_eq!(route_id_expiry("rt_abc"), None);
        assert!(!valid_route_id("rt_a b"));
        assert!(!valid_route_id("xx_abc"));
    }

    #[test]
    fn credentials_verify_only_for_their_slug() {
        let c = new_credentials(Some(b"key"), "demo", 0xff).unwrap();
        assert_eq!(verify(b"key", &c, "demo"), Some(0xff));
        assert_eq!(verify(b"key", &c, "demo-2"), None);
        assert_eq!(verify(b"other", &c, "demo"), None);
    }
}
