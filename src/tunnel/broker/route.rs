//! A slug's route: ephemeral metadata (never room data), its limits, the host connection
//! that serves it, and when it is due to end (past its lifetime or idle timeout).
//!
//! A route is the one owner of its end: whether the reaper, a release, a takeover or a
//! drain ends it, [`Route::close`] and [`Route::serve_by`] are where its connection is
//! taken and told why, so no end can leave a host serving a route the table forgot, or
//! forget to tell the host. The connection ([`super::conn`]) only carries the words and
//! hangs up. A route knows nothing of the table that holds it, so it can be read and
//! tested alone.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::conn::HostConn;
use super::secrets::digest;
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::tunnel::lock;
use crate::tunnel::protocol::{Code, RouteCredentials};
use crate::tunnel::rate::Bucket;

pub(super) struct RouteState {
    pub conn: Option<Arc<HostConn>>,
    pub last_seen: Instant,
    /// Idle past the timeout: ended for participants, the slug reserved for its secret.
    pub ended: bool,
}

/// One slug's route.
pub(super) struct Route {
    pub slug: String,
    /// Who registered it: the client address, and the operator key when keys are on.
    pub owner_ip: std::net::IpAddr,
    pub owner_key: Option<usize>,
    /// Each address's share of the route's request rate.
    pub shares: Mutex<std::collections::HashMap<std::net::IpAddr, Bucket>>,
    pub hash: String,
    pub id: String,
    pub secret_hash: [u8; 32],
    pub created_at_ms: i64,
    pub expires_at: Instant,
    pub expires_at_ms: i64,
    pub requests: Arc<Semaphore>,
    pub waits: Arc<Semaphore>,
    pub max_requests: u32,
    pub rate: Mutex<Bucket>,
    pub state: Mutex<RouteState>,
}

impl Route {
    pub fn state(&self) -> MutexGuard<'_, RouteState> {
        lock(&self.state)
    }

    /// Whether `creds` name this route and carry its secret (constant time).
    pub fn owned_by(&self, creds: &RouteCredentials) -> bool {
        let id_ok: bool = creds.route_id.as_bytes().ct_eq(self.id.as_bytes()).into();
        let secret_ok: bool = digest(&creds.route_secret).ct_eq(&self.secret_hash).into();
        id_ok & secret_ok
    }

    pub fn conn(&self) -> Option<Arc<HostConn>> {
        self.state().conn.clone()
    }

    pub fn is_served_by(&self, conn_id: u64) -> bool {
        self.state().conn.as_ref().is_some_and(|c| c.id == conn_id)
    }

    /// Serves the route by `conn` from now on: the newest connection holding the secret
    /// wins, and one it replaces is told so and hung up.
    pub fn serve_by(&self, conn: &Arc<HostConn>) {
        let replaced = {
            let mut st = self.state();
            st.last_seen = Instant::now();
            st.ended = false;
            st.conn.replace(conn.clone())
        };
        if let Some(old) = replaced.filter(|o| o.id != conn.id) {
            old.hang_up(
                Code::RouteReplaced,
                "another connection holding this route's secret took it over",
            );
        }
    }

    /// Unbinds `conn_id` if it still serves the route (the route waits for a reclaim).
    pub fn detach(&self, conn_id: u64) {
        let mut st = self.state();
        if st.conn.as_ref().is_some_and(|c| c.id == conn_id) {
            st.conn = None;
            st.last_seen = Instant::now();
        }
    }

    pub fn is_ended(&self) -> bool {
        self.state().ended
    }

    /// Ends the route for participants (a table that keeps it keeps only its slug, for
    /// its secret) and tells its host why; returns the requests still in flight on the
    /// connection that served it. Every end of a route comes through here.
    pub fn close(&self, code: Code, message: &str) -> usize {
        let conn = {
            let mut st = self.state();
            st.ended = true;
            st.conn.take()
        };
        conn.map_or(0, |conn| {
            let busy = conn.in_flight();
            conn.hang_up(code, message);
            busy
        })
    }

    pub fn touch(&self) {
        self.state().last_seen = Instant::now();
    }

    /// `connected`, `awaiting_reclaim` (its host is gone, its secret may take it back)
    /// or `reserved` (ended, the slug kept for its secret): the route table's and the
    /// metrics' word for it.
    pub fn status(&self) -> &'static str {
        Self::status_of(&self.state())
    }

    fn status_of(st: &RouteState) -> &'static str {
        match (st.conn.is_some(), st.ended) {
            (true, _) => "connected",
            (false, false) => "awaiting_reclaim",
            (false, true) => "reserved",
        }
    }

    /// Participant requests being relayed on this route.
    pub fn requests_in_flight(&self) -> usize {
        self.max_requests as usize - self.requests.available_permits()
    }

    /// Everything the broker holds about this route (the route table view).
    pub fn metadata(&self) -> serde_json::Value {
        let (conn, idle, status) = {
            let st = self.state();
            (
                st.conn.as_ref().map(|c| c.id),
                st.last_seen.elapsed(),
                Self::status_of(&st),
            )
        };
        json!({
            "slug": self.slug,
            "route_id": self.id,
            "route_hash": self.hash,
            "host_connection": conn,
            "status": status,
            "created_at": format_ms(self.created_at_ms),
            "last_seen_at": format_ms(now_ms() - idle.as_millis() as i64),
            "expires_at": format_ms(self.expires_at_ms),
            "requests_in_flight": self.requests_in_flight(),
        })
    }

    /// Takes one request from `ip`'s share of the route's rate, then from the route's.
    /// `share` gives an address's share when that many addresses use the route, so each
    /// address's allowance follows the number of active ones (a bucket holds at most its
    /// current share).
    pub fn take_rate(
        &self,
        ip: std::net::IpAddr,
        share: impl Fn(usize) -> u32,
        per_minute: u32,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        {
            let mut shares = lock(&self.shares);
            let active = shares.len() + usize::from(!shares.contains_key(&ip));
            let share = share(active);
            shares
                .entry(ip)
                .or_insert_with(|| Bucket::full(share, now))
                .take(share, now)?;
        }
        lock(&self.rate).take(per_minute, now)
    }

    /// Forgets the addresses that have not used the route for a while (their bucket
    /// refilled), so they no longer count as active.
    pub fn sweep_shares(&self, share: impl Fn(usize) -> u32, now: Instant) {
        let mut shares = lock(&self.shares);
        let share = share(shares.len());
        shares.retain(|_, b| !b.is_full(share, now));
    }

    /// Why the route should end now, if it should.
    pub fn expiry(&self, now: Instant, idle: Duration) -> Option<(Code, &'static str)> {
        if now >= self.expires_at {
            return Some((
                Code::RouteLifetimeExpired,
                "the route reached the broker's maximum lifetime; start the tunnel again",
            ));
        }
        let busy = self.requests_in_flight() > 0;
        let (last, ended) = {
            let st = self.state();
            (st.last_seen, st.ended)
        };
        if !busy && !ended && now.saturating_duration_since(last) > idle {
            return Some((
                Code::RouteIdleExpired,
                "the route was idle past the broker's idle timeout",
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(per_minute: u32) -> Route {
        let now = Instant::now();
        Route {
            slug: "demo".into(),
            owner_ip: [127, 0, 0, 1].into(),
            owner_key: None,
            shares: Mutex::new(std::collections::HashMap::new()),
            hash: String::new(),
            id: String::new(),
            secret_hash: [0; 32],
            created_at_ms: 0,
            expires_at: now + Duration::from_secs(60),
            expires_at_ms: 0,
            requests: Arc::new(Semaphore::new(1)),
            waits: Arc::new(Semaphore::new(1)),
            max_requests: 1,
            rate: Mutex::new(Bucket::full(per_minute, now)),
            state: Mutex::new(RouteState {
                conn: None,
                last_seen: now,
                ended: false,
            }),
        }
    }

    /// An equal part per active address, at most half (as `Broker::route_share`).
    fn share(n: usize) -> u32 {
        120 / n.clamp(2, 64) as u32
    }

    fn taken(r: &Route, ip: [u8; 4], tries: usize) -> usize {
        (0..tries)
            .filter(|_| r.take_rate(ip.into(), share, 120).is_ok())
            .count()
    }

    #[test]
    fn each_address_gets_an_equal_part_as_more_arrive() {
        let r = route(120);
        // Alone, an address gets half the route: the rest waits for the others.
        assert_eq!(taken(&r, [10, 0, 0, 1], 200), 60);
        // A second address gets the other half.
        assert_eq!(taken(&r, [10, 0, 0, 2], 200), 60);
        // The route is spent: a third address is refused by the route's own rate.
        assert_eq!(taken(&r, [10, 0, 0, 3], 5), 0);

        // With four addresses on a fresh route, none gets more than a quarter, however
        // hard it tries, and together they still get (almost) all of the route.
        let r = route(120);
        for last in 1..=4u8 {
            let _ = r.take_rate([10, 0, 1, last].into(), share, 120);
        }
        let more: Vec<usize> = (1..=4u8).map(|i| taken(&r, [10, 0, 1, i], 100)).collect();
        assert!(more.iter().all(|n| *n <= 30), "{more:?}");
        assert!(more.iter().sum::<usize>() >= 110, "{more:?}");
    }
}
