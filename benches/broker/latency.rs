//! The latency the broker adds to a request (issue 14, item 7): the same `GET /status`
//! to a room server directly and through the broker and `tunnel run`, interleaved request
//! by request so that both paths see the same moments of the machine, with canaries
//! watching how fast the host let the machine run meanwhile (`host_speed`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::broker::{Broker, DOMAIN, load_avg};
use crate::host_speed::{Canary, HostSpeed};
use crate::{BIN, Server, pct};

/// One keep-alive connection sending `GET /status` with a chosen `Host`.
struct Conn {
    tx: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(port: u16, host: &str) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        Conn {
            tx,
            host: host.to_string(),
        }
    }

    async fn status(&mut self, token: &str) -> u16 {
        let req = Request::builder()
            .uri("/status")
            .header("host", &self.host)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.tx.ready().await.expect("ready");
        let resp = self.tx.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        status
    }
}

type Pool = Vec<Arc<tokio::sync::Mutex<Conn>>>;

async fn pool(port: u16, host: &str, conns: usize) -> Pool {
    let mut v = Vec::new();
    for _ in 0..conns {
        v.push(Arc::new(tokio::sync::Mutex::new(
            Conn::open(port, host).await,
        )));
    }
    v
}

/// CPU time (user + system) process `pid` has used, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) * 1000.0 / hz
}

/// One request's outcome: which path, when it left, how long it took.
struct Sample {
    brokered: bool,
    sent: Instant,
    took: Duration,
}

/// `rate` requests per second on each path for `secs` seconds, interleaved: the brokered
/// request leaves half a period after the direct one, so both paths sample the same
/// moments of the machine.
async fn paced(direct: &Pool, brokered: &Pool, token: &str, rate: u32, secs: u64) -> Vec<Sample> {
    let total = u64::from(rate) * secs * 2;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(0.5 / f64::from(rate)));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let is_brokered = i % 2 == 1;
        let pool = if is_brokered { brokered } else { direct };
        let c = pool[(i / 2) as usize % pool.len()].clone();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = c.lock().await;
            let sent = Instant::now();
            let s = c.status(&token).await;
            (
                s,
                Sample {
                    brokered: is_brokered,
                    sent,
                    took: sent.elapsed(),
                },
            )
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (status, sample) = t.await.expect("request");
        assert_eq!(status, 200, "a paced request failed");
        out.push(sample);
    }
    out
}

/// p50 and p99 of each path over the samples `keep` selects, and how many it kept.
fn figures(samples: &[Sample], keep: impl Fn(&Sample) -> bool) -> Value {
    let pick = |brokered: bool| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.brokered == brokered && keep(s))
            .map(|s| s.took.as_secs_f64() * 1000.0)
            .collect()
    };
    let (mut direct, mut via) = (pick(false), pick(true));
    if std::env::var_os("AG_BENCH_DEBUG").is_some() {
        for (name, xs) in [("direct", &mut direct), ("through", &mut via)] {
            let qs: Vec<String> = [0.5, 0.9, 0.99, 0.999, 1.0]
                .iter()
                .map(|q| format!("{q}:{:.2}", pct(xs, *q)))
                .collect();
            eprintln!("{name} ({} requests): {}", xs.len(), qs.join(" "));
        }
    }
    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    let (b50, b99) = (pct(&mut via, 0.5), pct(&mut via, 0.99));
    json!({
        "requests": via.len(), "direct_requests": direct.len(),
        "direct_p50_ms": d50, "direct_p99_ms": d99,
        "broker_p50_ms": b50, "broker_p99_ms": b99,
        "added_p50_ms": b50 - d50, "added_p99_ms": b99 - d99,
    })
}

/// The latency the broker adds at `rate` requests per second on each path, over every
/// request and over those no host spell touched.
pub async fn latency(rate: u32, secs: u64) -> Value {
    let mut room = Server::new("broker-latency", 0, 0);
    room.start(&[]);
    let broker = Broker::start("latency");
    let mut tunnel = std::process::Command::new(BIN)
        .args(["tunnel", "run", "--json", "--room", "current"])
        .args(["--subdomain", "lat"])
        .args(["--broker", &format!("http://127.0.0.1:{}", broker.port)])
        .env("AGENTGATHER_HOME", &room.home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tunnel");
    let host = format!("lat.{DOMAIN}");
    let t = Instant::now();
    loop {
        let mut c = Conn::open(broker.port, &host).await;
        if c.status(&room.host_token).await == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the tunnel did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let direct_host = format!("127.0.0.1:{}", room.port);
    let direct_pool = pool(room.port, &direct_host, 16).await;
    let via_pool = pool(broker.port, &host, 16).await;
    let cpu0 = [cpu_ms(broker.child.id()), cpu_ms(tunnel.id())];
    let canary = Canary::start();
    let samples = paced(&direct_pool, &via_pool, &room.host_token, rate, secs).await;
    let host_speed = canary.finish();
    let cpu1 = [cpu_ms(broker.child.id()), cpu_ms(tunnel.id())];
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    let n = samples.iter().filter(|s| s.brokered).count().max(1) as f64;
    let cpu_us = [
        (cpu1[0] - cpu0[0]) * 1000.0 / n,
        (cpu1[1] - cpu0[1]) * 1000.0 / n,
    ];
    let all = figures(&samples, |_| true);
    let quiet = figures(&samples, |s| !touched_by_host(&host_speed, s));
    json!({
        "rate": rate,
        "all": all,
        "quiet": quiet,
        "host_slowed_pct": host_speed.slowed_share * 100.0,
        "host_worst_factor": host_speed.worst_factor,
        "cpu_us_per_request": {"broker": cpu_us[0], "tunnel": cpu_us[1]},
        "load_avg": load_avg(),
    })
}

fn touched_by_host(h: &HostSpeed, s: &Sample) -> bool {
    h.slowed_during(s.sent, s.sent + s.took)
}

/// The latency row of the broker table: met when the requests no host spell touched
/// stay within the target; every request's figure beside it.
pub fn row(x: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
    let (all, quiet) = (&x["all"], &x["quiet"]);
    let met = quiet["added_p99_ms"]
        .as_f64()
        .is_some_and(|v| v <= TARGET_ADDED_P99_MS);
    format!(
        "| added latency at {}/s on each path (`GET /status` through broker + tunnel vs direct, interleaved) | outside host spells ({} of {} requests; the host slowed the machine over {}× for {}% of the run): p50 +{} ms, p99 +{} ms (direct p99 {}, through p99 {} ms); every request: p50 +{} ms, p99 +{} ms (direct p99 {}, through p99 {} ms); CPU per request: broker {} µs, tunnel {} µs | p99 ≤ 2 ms added | {} | {} |\n",
        x["rate"],
        quiet["requests"],
        all["requests"],
        crate::host_speed::SLOWED,
        f(&x["host_slowed_pct"]),
        f(&quiet["added_p50_ms"]),
        f(&quiet["added_p99_ms"]),
        f(&quiet["direct_p99_ms"]),
        f(&quiet["broker_p99_ms"]),
        f(&all["added_p50_ms"]),
        f(&all["added_p99_ms"]),
        f(&all["direct_p99_ms"]),
        f(&all["broker_p99_ms"]),
        x["cpu_us_per_request"]["broker"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.0}")),
        x["cpu_us_per_request"]["tunnel"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.0}")),
        if met { "met" } else { "NOT met" },
        f(&x["load_avg"]),
    )
}

const TARGET_ADDED_P99_MS: f64 = 2.0;
