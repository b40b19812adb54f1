//! Public room links end to end (SPEC §7): the real binary three times on loopback, a
//! room server, `broker serve` and `tunnel run`, and every participant request goes
//! through the broker only. Also: the broker's limits and their codes, route ownership
//! (forged secrets, a second host), privacy of the broker's logs (secret canaries), a
//! SIGTERM drain, and the same flow behind Caddy when it is installed.
//!
//! One test binary; each module holds the tests of one concern.

#[path = "../common/mod.rs"]
mod common;
#[path = "../tunnel_support/mod.rs"]
mod tunnel_support;

mod caddy_tls;
mod end_to_end;
mod limits;
mod metrics;
mod ownership;
