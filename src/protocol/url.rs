//! URLs and hosts, in one place: which `Host` is this machine's loopback, what origin a URL
//! has, and which URLs may be a room's URL. Every part of the binary that accepts a URL
//! (the server's `--url` and `POST /public-url`, `room join`, the broker's `--public-url`,
//! the tunnel's `--target`) goes through [`RoomUrl::parse`], because a room URL is pasted
//! into shell commands and HTML links: a lax prefix check once let
//! `http://localhost.evil.example` and `https://x/'; touch PWNED` through.

use std::fmt;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(String);

/// A checked room URL: `http(s)://host[:port][/path]`, no query, fragment or user info,
/// no trailing slash; `http` only for a loopback host unless [`RoomUrl::parse_any`] is
/// asked. Every character is one that needs no quoting inside `'…'` in a shell and no
/// escaping in an HTML attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomUrl {
    url: String,
    scheme_len: usize,
    authority_end: usize,
}

impl RoomUrl {
    /// A URL participants may be sent to: `https://…`, or `http://` on loopback.
    pub fn parse(url: &str) -> Result<RoomUrl, UrlError> {
        let u = RoomUrl::parse_any(url)?;
        if u.scheme() == "http" && !u.is_loopback() {
            return Err(UrlError(format!(
                "{url:?} is plain http:// off this machine; use an https:// URL (a TLS proxy or `agentgather tunnel run`)"
            )));
        }
        Ok(u)
    }

    /// Like [`RoomUrl::parse`], but `http://` may name any host (a URL the caller only
    /// connects to, e.g. a broker behind a proxy on the same network).
    pub fn parse_any(url: &str) -> Result<RoomUrl, UrlError> {
        let bad = |why: &str| UrlError(format!("{url:?} is not a usable room URL: {why}"));
        let trimmed = url.trim_end_matches('/');
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| bad("it must start with https:// or http://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("it must start with https:// or http://"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("it has no host"));
        }
        if !valid_authority(authority) {
            return Err(bad(
                "the host may hold only letters, digits, '-', '.', and a :port",
            ));
        }
        if !path.bytes().all(is_path_byte) {
            return Err(bad(
                "the path may hold only letters, digits and - . _ ~ / % (no query or fragment)",
            ));
        }
        let url = format!("{scheme}://{}{path}", authority.to_ascii_lowercase());
        Ok(RoomUrl {
            scheme_len: scheme.len(),
            authority_end: scheme.len() + 3 + authority.len(),
            url,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn scheme(&self) -> &str {
        &self.url[..self.scheme_len]
    }

    /// `host[:port]`, lowercased.
    pub fn authority(&self) -> &str {
        &self.url[self.scheme_len + 3..self.authority_end]
    }

    /// `scheme://host[:port]`: what a browser sends as `Origin`.
    pub fn origin(&self) -> &str {
        &self.url[..self.authority_end]
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.authority())
    }
}

impl fmt::Display for RoomUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)
}

/// `host[:port]` where host is a DNS name or IPv4 literal of `[a-z0-9.-]`, or a bracketed
/// IPv6 literal; the port all digits.
fn valid_authority(authority: &str) -> bool {
    let (host, port) = split_host_port(authority);
    let Some(host) = host else {
        return false;
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !host.starts_with(['-', '.'])
    };
    port_ok && host_ok
}

/// Splits `host[:port]` (IPv6 in brackets). None when the brackets are malformed, e.g.
/// `[::1]evil`: nothing but `:port` may follow the closing bracket.
fn split_host_port(authority: &str) -> (Option<&str>, Option<&str>) {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return (None, None);
        };
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => (Some(host), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (Some(host), Some(port)),
                None => (None, None),
            },
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (Some(host), Some(port)),
        None => (Some(authority), None),
    }
}

/// Whether a `Host` header (or URL authority) names this machine's loopback interface:
/// `localhost`, `127.0.0.0/8` or `[::1]`, with an optional numeric port.
pub fn is_loopback_host(host: &str) -> bool {
    let (Some(name), port) = split_host_port(host) else {
        return false;
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    name == "localhost"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]` of any URL-like string, lowercased, for comparing a request's
/// `Origin`/`Referer` with the origins a server is reached at.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// Quotes `s` for a POSIX shell: as is when it holds only safe characters, else in single
/// quotes. Every value a card or `next_cmd` pastes into a command goes through this.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.~:@%+=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.0.0.1:8787",
            "localhost:1",
            "LOCALHOST",
            "localhost.",
            "[::1]:80",
            "[::1]",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:8787",
            "127.0.0.1.evil.com",
            "",
            "[::2]:1",
            "localhost.evil",
            "[::1]evil",
            "[::1]evil:80",
            "[::1]:",
            "[::1",
            "localhost:80x",
            "localhost:",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:8787/x?y").as_deref(),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(
            origin_of("HTTPS://Ex.com").as_deref(),
            Some("https://ex.com")
        );
        assert_eq!(origin_of("null"), None);
    }

    #[test]
    fn room_urls_are_strict() {
        let u = RoomUrl::parse("https://Rooms.Example.com/r/").unwrap();
        assert_eq!(u.as_str(), "https://rooms.example.com/r");
        assert_eq!(u.origin(), "https://rooms.example.com");
        assert_eq!(u.authority(), "rooms.example.com");
        assert!(
            RoomUrl::parse("http://127.0.0.1:8787")
                .unwrap()
                .is_loopback()
        );
        assert!(RoomUrl::parse("http://[::1]:8787").is_ok());
        for bad in [
            "https://x/'; touch PWNED; echo '",
            "http://localhost.evil.example",
            "http://example.com",
            "ftp://x",
            "https://",
            "https://x?y=1",
            "https://x#frag",
            "https://user@x",
            "https://x:99999",
            "https://x:80a",
            "https://x y",
            "https://-x",
            "https://[::1]evil",
            "javascript:alert(1)",
            "https://x/a b",
            "https://x/$(id)",
        ] {
            assert!(RoomUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(RoomUrl::parse_any("http://broker.internal:8799").is_ok());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("abc-1"), "abc-1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
    }
}
