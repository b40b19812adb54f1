//! SPEC §13: `POST /claims` while 500 claims are live. Every claim is checked for overlap
//! against every live claim of the others, so this is the cost that grows with a busy
//! room. Holders spread their claims over participants because claims are under the
//! write budget (30 changes a minute each). Measured: a claim that passes (then
//! released, so the room stays at 500), and one refused with 409 naming the holder.
//! Run: `cargo bench --bench load -- --only claims`.

use std::time::Instant;

use serde_json::{Value, json};

use crate::{Conn, Server, ms, pct};

/// `fsync`: the server's `--fsync` mode. The 201 waits for the disk in `batch`, so with
/// `off` the figure is the claim path itself (the disk's cost is the posts rows').
pub async fn claims(live: usize, samples: usize, fsync: &str) -> Value {
    const PER_HOLDER: usize = 10;
    let holders = live.div_ceil(PER_HOLDER);
    let mut s = Server::new("claims", holders + samples, 0);
    s.start(&["--fsync", fsync]);
    let mut c = Conn::open(s.port).await;
    for i in 0..live {
        let tok = &s.tokens[i / PER_HOLDER];
        let body = json!({"paths": [format!("crates/c{i}/src/**"), format!("docs/c{i}.md")], "note": "bench"});
        let (st, v) = c.call("POST", "/claims", tok, Some(body)).await;
        assert_eq!(st, 201, "{v}");
    }
    let mut pass = Vec::with_capacity(samples);
    let mut conflict = Vec::with_capacity(samples);
    for k in 0..samples {
        let tok = s.tokens[holders + k].clone();
        // A leading wildcard: no literal prefix lets the overlap walk skip a live claim.
        let body = json!({"paths": [format!("tools/t{k}/**"), format!("*/t{k}/*.rs")]});
        let t = Instant::now();
        let (st, v) = c.call("POST", "/claims", &tok, Some(body)).await;
        pass.push(ms(t.elapsed()));
        assert_eq!(st, 201, "{v}");
        let id = v["claim"]["id"].as_u64().expect("id");
        let (st, v) = c
            .call(
                "POST",
                &format!("/claims/{id}/release"),
                &tok,
                Some(json!({})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let body = json!({"paths": [format!("crates/c{}/src/lib.rs", k % live)]});
        let t = Instant::now();
        let (st, v) = c.call("POST", "/claims", &tok, Some(body)).await;
        conflict.push(ms(t.elapsed()));
        assert_eq!(st, 409, "{v}");
    }
    let (st, v) = c.call("GET", "/claims", &s.host_token, None).await;
    assert_eq!(st, 200);
    json!({
        "fsync": fsync, "live": v["claims"].as_array().map_or(0, Vec::len), "samples": samples,
        "claim_p50_ms": pct(&mut pass, 0.5), "claim_p99_ms": pct(&mut pass, 0.99),
        "conflict_p50_ms": pct(&mut conflict, 0.5), "conflict_p99_ms": pct(&mut conflict, 0.99),
    })
}
