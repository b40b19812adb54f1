//! The operators' view: `/metrics` parses as Prometheus text and names no room. The
//! parser these tests need lives here with them.

use std::time::Duration;

use crate::common::*;
use crate::tunnel_support::*;

// ---------------------------------------------------------------------------------------
// The operators' view.

/// One Prometheus sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses Prometheus text exposition (0.0.4) strictly enough to catch a malformed line:
/// returns each sample as (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let ident = |s: &str, colon: bool| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic()
                    || c == '_'
                    || (colon && c == ':')
                    || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(ident(name, true), "bad metric name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "{line:?}"
                );
                typed.insert(name.to_string());
            } else {
                assert_eq!(kind, "HELP", "{line:?}");
            }
            continue;
        }
        assert!(!line.is_empty(), "an empty line in the exposition");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        assert!(ident(name, true), "bad metric name in {line:?}");
        assert!(typed.contains(name), "{name} has no TYPE line before it");
        let mut pairs = Vec::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("label=value");
            assert!(ident(k, false), "bad label name in {line:?}");
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .expect("quoted label value");
            assert!(!v.contains('"') && !v.contains('\n'), "{line:?}");
            pairs.push((k.to_string(), v.to_string()));
        }
        samples.push((name.to_string(), pairs, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

#[test]
fn metrics_parse_as_prometheus_text_and_name_no_room() {
    let room = TestRoom::start("tunnel-metrics");
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let broker = Broker::start(&room.home, &["--metrics-addr", &maddr]);
    let port = broker.port;
    let t = tunnel(&room.home, &broker.url(), "metered", &[]);
    t.wait_event("public_url_set", 1, Duration::from_secs(15));
    for _ in 0..3 {
        let r = get_via(port, "metered", "/status", &room.token);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = via(port, "no-such-slug", Req::get("/status").token(&room.token));
    assert_error_resp(&r, 404, "not_found");

    assert_eq!(Req::get("/healthz").send(mport).status, 200);
    assert_eq!(Req::get("/readyz").send(mport).status, 200);
    let r = Req::get("/metrics").send(mport);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text();
    let samples = parse_prometheus(&text);
    assert_eq!(
        sample(
            &samples,
            "agentgather_broker_routes",
            &[("status", "connected")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&samples, "agentgather_broker_host_connections", &[]),
        1.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "agentgather_broker_requests_total",
            &[("class", "status"), ("status", "200")]
        ) >= 3.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "agentgather_broker_refusals_total",
            &[("code", "not_found")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            "agentgather_broker_relayed_bytes_total",
            &[("direction", "out")]
        ) > 0.0,
        "{text}"
    );
    assert_eq!(
        sample(&samples, "agentgather_broker_registrations_total", &[]),
        1.0,
        "{text}"
    );
    // The tunnel and the requests above came over HTTP/1.1, none over h2c.
    assert!(
        sample(
            &samples,
            "agentgather_broker_connections_total",
            &[("protocol", "http1")]
        ) >= 5.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            "agentgather_broker_connections_total",
            &[("protocol", "h2c")]
        ),
        0.0,
        "{text}"
    );
    for secret in ["metered", "no-such-slug", room.token.as_str(), "/status"] {
        assert!(
            !text.contains(secret),
            "the metrics name {secret:?}:\n{text}"
        );
    }
    // Only on its own listener: the public port has no /metrics.
    let r = Req::get("/metrics").send(port);
    assert_eq!(r.status, 404);
}
