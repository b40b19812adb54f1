//! The broker's counters: what the request path, registration and the public listener
//! bump as they go, and their Prometheus text. A leaf on purpose: the code that counts
//! (refusals, the access log, hosts, the listener) sits below the operators' listener
//! that shows the counts, so counting must not need anything of the broker. No label
//! holds a slug, a token or a path: requests are counted by path class and status,
//! refusals by code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tunnel::lock;

/// Counters the request path bumps (gauges are read from the route table when scraped).
#[derive(Default)]
pub(super) struct Counters {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub registrations: AtomicU64,
    pub reclaims: AtomicU64,
    /// Connections accepted on the public port, by protocol: whether the edge proxy
    /// really multiplexes participants over h2c shows here.
    pub connections_http1: AtomicU64,
    pub connections_h2c: AtomicU64,
}

impl Counters {
    /// One request answered: its class, status, refusal code and bytes.
    pub fn request(
        &self,
        class: &'static str,
        status: u16,
        code: Option<&'static str>,
        bytes: (u64, u64),
    ) {
        *lock(&self.requests).entry((class, status)).or_default() += 1;
        if let Some(code) = code {
            *lock(&self.refusals).entry(code).or_default() += 1;
        }
        self.bytes_in.fetch_add(bytes.0, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes.1, Ordering::Relaxed);
    }

    pub fn refusal(&self, code: &'static str) {
        *lock(&self.refusals).entry(code).or_default() += 1;
    }

    /// Appends the counters' families to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "agentgather_broker_requests_total",
            "counter",
            "Requests answered, by path class and status.",
        );
        for ((class, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "agentgather_broker_requests_total{{class=\"{class}\",status=\"{status}\"}} {n}"
            );
        }
        family(
            out,
            "agentgather_broker_refusals_total",
            "counter",
            "Refusals, by code.",
        );
        for (code, n) in lock(&self.refusals).iter() {
            let _ = writeln!(
                out,
                "agentgather_broker_refusals_total{{code=\"{code}\"}} {n}"
            );
        }
        family(
            out,
            "agentgather_broker_relayed_bytes_total",
            "counter",
            "Body bytes relayed, by direction.",
        );
        for (direction, n) in [("in", &self.bytes_in), ("out", &self.bytes_out)] {
            let _ = writeln!(
                out,
                "agentgather_broker_relayed_bytes_total{{direction=\"{direction}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        family(
            out,
            "agentgather_broker_connections_total",
            "counter",
            "Connections accepted on the public port, by protocol.",
        );
        for (protocol, n) in [
            ("http1", &self.connections_http1),
            ("h2c", &self.connections_h2c),
        ] {
            let _ = writeln!(
                out,
                "agentgather_broker_connections_total{{protocol=\"{protocol}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (name, help, n) in [
            (
                "agentgather_broker_registrations_total",
                "New routes registered.",
                &self.registrations,
            ),
            (
                "agentgather_broker_reclaims_total",
                "Routes taken back by their host's secret.",
                &self.reclaims,
            ),
        ] {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", n.load(Ordering::Relaxed));
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_by_class_status_and_code_only() {
        let c = Counters::default();
        c.request("wait", 200, None, (10, 20));
        c.request("wait", 429, Some("ip_rate_limited"), (0, 5));
        c.refusal("route_slug_taken");
        c.registrations.fetch_add(1, Ordering::Relaxed);
        let mut out = String::new();
        c.render(&mut out);
        for line in [
            "agentgather_broker_requests_total{class=\"wait\",status=\"200\"} 1",
            "agentgather_broker_requests_total{class=\"wait\",status=\"429\"} 1",
            "agentgather_broker_refusals_total{code=\"ip_rate_limited\"} 1",
            "agentgather_broker_refusals_total{code=\"route_slug_taken\"} 1",
            "agentgather_broker_relayed_bytes_total{direction=\"in\"} 10",
            "agentgather_broker_relayed_bytes_total{direction=\"out\"} 25",
            "agentgather_broker_registrations_total 1",
            "agentgather_broker_reclaims_total 0",
            "# TYPE agentgather_broker_reclaims_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }
}
