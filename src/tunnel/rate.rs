//! Token buckets for the broker's per-IP and per-route request rates. A bucket holds up
//! to one minute's allowance and refills continuously, so a burst up to the limit is fine
//! and a steady stream above it is refused with an honest `Retry-After`.

use crate::tunnel::lock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The address a per-address limit counts a client under: an IPv4 address as it is, an
/// IPv6 address by its /64. One subscriber or server is routinely given a whole /64, so
/// keyed on the full address a single client would get 2^64 separate allowances (and
/// fill the limiter's table with them). An IPv4-mapped IPv6 address counts as its IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(per_minute: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(per_minute),
            last: now,
        }
    }

    fn refill(&mut self, per_minute: u32, now: Instant) {
        let cap = f64::from(per_minute);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * cap / 60.0).min(cap);
        self.last = now;
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, per_minute: u32, now: Instant) -> Result<(), Duration> {
        self.refill(per_minute, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let per_sec = f64::from(per_minute.max(1)) / 60.0;
        Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
    }

    /// Whether a token is there, without taking it.
    pub fn peek(&mut self, per_minute: u32, now: Instant) -> Result<(), Duration> {
        self.refill(per_minute, now);
        if self.tokens >= 1.0 {
            return Ok(());
        }
        let per_sec = f64::from(per_minute.max(1)) / 60.0;
        Err(Duration::from_secs_f64((1.0 - self.tokens) / per_sec))
    }

    /// Takes a token after the fact (down to empty, never below).
    pub fn charge(&mut self, per_minute: u32, now: Instant) {
        self.refill(per_minute, now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    pub fn is_full(&mut self, per_minute: u32, now: Instant) -> bool {
        self.refill(per_minute, now);
        self.tokens >= f64::from(per_minute)
    }
}

/// One bucket per client address; full buckets are forgotten, so memory follows the
/// number of recently active addresses, not every address ever seen.
pub struct IpLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// A bucket operation on one address's bucket.
type Op = fn(&mut Bucket, u32, Instant) -> Result<(), Duration>;

/// Past this many tracked addresses the full buckets are swept on the spot.
const SWEEP_AT: usize = 50_000;

impl IpLimiter {
    pub fn new(per_minute: u32) -> IpLimiter {
        IpLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with(&self, ip: IpAddr, op: Op) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = lock(&self.buckets);
        if map.len() >= SWEEP_AT {
            let per_minute = self.per_minute;
            map.retain(|_, b| !b.is_full(per_minute, now));
        }
        let bucket = map
            .entry(ip)
            .or_insert_with(|| Bucket::full(self.per_minute, now));
        op(bucket, self.per_minute, now)
    }

    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.with(ip, Bucket::take)
    }

    /// Whether `ip` has a token left, without taking it.
    pub fn peek(&self, ip: IpAddr) -> Result<(), Duration> {
        self.with(ip, Bucket::peek)
    }

    /// Charges `ip` one request after the fact.
    pub fn charge(&self, ip: IpAddr) {
        let _ = self.with(ip, |b, per_minute, now| {
            b.charge(per_minute, now);
            Ok(())
        });
    }

    /// Forgets addresses whose bucket has refilled.
    pub fn sweep(&self) {
        let now = Instant::now();
        let per_minute = self.per_minute;
        lock(&self.buckets).retain(|_, b| !b.is_full(per_minute, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_then_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        assert!(b.take(3, t0).is_ok());
        assert!(b.take(3, t0).is_ok());
        assert!(b.take(3, t0).is_ok());
        let wait = b.take(3, t0).unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20));
        assert!(b.take(3, t0 + Duration::from_secs(20)).is_ok());
    }

    #[test]
    fn addresses_have_separate_buckets() {
        let l = IpLimiter::new(1);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.take(a).is_ok());
        assert!(l.take(a).is_err());
        assert!(l.take(b).is_ok());
        l.sweep();
    }

    #[test]
    fn ipv6_counts_by_its_64_and_ipv4_as_itself() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:198.51.100.7"), key("198.51.100.7"));
        assert_ne!(key("198.51.100.7"), key("198.51.100.8"));
        let l = IpLimiter::new(1);
        assert!(l.take(key("2001:db8::1")).is_ok());
        assert!(l.take(key("2001:db8::2")).is_err());
        assert!(l.take(key("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn charges_after_the_fact_empty_the_bucket() {
        let l = IpLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.peek(a).is_ok());
        l.charge(a);
        l.charge(a);
        l.charge(a);
        assert!(l.peek(a).is_err());
        assert!(l.take(a).is_err());
    }
}
