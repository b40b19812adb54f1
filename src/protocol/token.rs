//! Tokens are impersonation credentials. They are minted here, and from here on only
//! their SHA-256 hash is kept or compared (in constant time), so neither the room
//! directory nor a timing side channel gives one away.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const TOKEN_PREFIX: &str = "tgl_";

/// Lower-case hex of `bytes` (hashes and MACs on the wire and on disk).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a token, the only form the room keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    pub fn to_hex(self) -> String {
        to_hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Option<TokenHash> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(TokenHash(out))
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// Mints `tgl_` + 24 random bytes, base64url without padding.
pub fn mint_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_have_the_contract_shape() {
        let a = mint_token().unwrap();
        let b = mint_token().unwrap();
        assert!(a.starts_with("tgl_"));
        assert_eq!(a.len(), 4 + 32);
        assert_ne!(a, b);
    }

    #[test]
    fn hash_round_trips_hex() {
        let h = TokenHash::of("tgl_x");
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert!(h.matches(&TokenHash::of("tgl_x")));
        assert!(!h.matches(&TokenHash::of("tgl_y")));
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert!(!format!("{h:?}").contains(&h.to_hex()));
    }
}
