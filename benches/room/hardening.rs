//! The second audit's resource findings as bench rows (issue 22): a pathological search
//! and the posts beside it (NM1), and peak memory of a restart over a 1 GB log and of
//! 500 concurrent unread page reads from one participant (NM2).
//!
//!     cargo bench --bench load -- --only hardening
//!     AG_BENCH_BIGLOG_MB=256 cargo bench --bench load -- --only hardening
//!
//! Peak memory is the server's `VmHWM` (its high-water resident set), read from /proc.

use super::*;

/// The server's peak resident memory so far, in KB.
fn peak_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM:")
}

fn pid(s: &Server) -> u32 {
    s.child.as_ref().map_or(0, Child::id)
}

/// Appends `n` lines of `text_chars` characters to the room's log, every one with an
/// idempotency key (what a restart reads back), from id `first`.
fn write_lines(s: &Server, first: u64, n: u64, text_chars: usize, kind: &str) {
    let log = s.home.join("rooms/bench/messages.jsonl");
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("log"),
    );
    let text = "lorem ipsum ".repeat(text_chars / 12 + 1);
    let text = &text[..text_chars];
    for id in first..first + n {
        writeln!(
            f,
            r#"{{"id":{id},"room":"bench","ts":"2026-11-25T12:00:00.000Z","from":"a0","type":"{kind}","text":"{text}","mentions":[],"client_msg_id":"k-{id}"}}"#
        )
        .expect("write");
    }
}

/// NM1: 200 handoffs of 64 KB, three searchers asking a 200-character query whose word
/// almost matches everywhere, and one participant posting beside them.
async fn pathological_search() -> Value {
    let mut s = Server::new("hardening-search", 1, 0);
    {
        let log = s.home.join("rooms/bench/messages.jsonl");
        std::fs::write(&log, b"").expect("truncate");
        let word = "a".repeat(199) + "b";
        let text = format!(
            "{} {word} {}",
            "a".repeat(3_000),
            "a".repeat(64_000 - 3_000 - 202)
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("log");
        for id in 1..=200 {
            writeln!(
                f,
                r#"{{"id":{id},"room":"bench","ts":"2026-11-25T12:00:00.000Z","from":"a0","type":"handoff","text":"{text}","mentions":[]}}"#
            )
            .expect("write");
        }
    }
    s.start(&[]);
    let port = s.port;
    let query = format!("/search?q={}&limit=200", "a".repeat(199) + "b");
    let searcher_tok = s.tokens[0].clone();
    let mut searchers = Vec::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for _ in 0..3 {
        let (tok, q, stop) = (searcher_tok.clone(), query.clone(), stop.clone());
        searchers.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            let mut lat = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let (st, _) = c.call("GET", &q, &tok, None).await;
                assert_eq!(st, 200);
                lat.push(ms(t.elapsed()));
            }
            lat
        }));
    }
    let mut poster = Conn::open(port).await;
    let mut posts = Vec::new();
    // The host posts: a human, so no loop guard, and 100 posts stay within its budget.
    let poster_tok = s.host_token.clone();
    for i in 0..100 {
        let t = Instant::now();
        let (st, _) = poster
            .call(
                "POST",
                "/messages",
                &poster_tok,
                Some(json!({"text": format!("beside the search {i}")})),
            )
            .await;
        assert_eq!(st, 201);
        posts.push(ms(t.elapsed()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut searches = Vec::new();
    for h in searchers {
        searches.extend(h.await.expect("searcher"));
    }
    json!({
        "searches": searches.len(),
        "search_p50_ms": pct(&mut searches, 0.5), "search_max_ms": pct(&mut searches, 1.0),
        "post_p50_ms": pct(&mut posts, 0.5), "post_p90_ms": pct(&mut posts, 0.9),
        "post_max_ms": pct(&mut posts, 1.0),
        "peak_rss_kb": peak_kb(pid(&s)),
    })
}

/// NM2: `room serve` over a log of `mb` MB (lines of 64,000 characters, each with an
/// idempotency key): start-up time and peak memory.
async fn big_log_restart(mb: u64) -> Value {
    let mut s = Server::new("hardening-biglog", 1, 0);
    let line_chars = 64_000;
    let n = mb * 1024 * 1024 / (line_chars as u64 + 200);
    std::fs::write(s.home.join("rooms/bench/messages.jsonl"), b"").expect("truncate");
    write_lines(&s, 1, n, line_chars, "handoff");
    let startup = s.start(&[]);
    let peak = peak_kb(pid(&s));
    // The newest page through a read, so the numbers include serving it.
    let mut c = Conn::open(s.port).await;
    let (st, _) = c
        .call("GET", "/messages?tail=1000", &s.host_token, None)
        .await;
    assert_eq!(st, 200);
    json!({
        "log_mb": mb, "messages": n, "startup_ms": ms(startup), "peak_rss_kb": peak,
        "peak_after_a_page_kb": peak_kb(pid(&s)),
    })
}

/// NM2: one participant asks for its whole unread log 500 times at once (each answer a
/// full page), on 500 connections.
async fn unread_pages(requests: usize) -> Value {
    let mut s = Server::new("hardening-unread", 1, 0);
    std::fs::write(s.home.join("rooms/bench/messages.jsonl"), b"").expect("truncate");
    write_lines(&s, 1, 400, 24_000, "message");
    s.start(&[]);
    let before = s.rss_kb();
    let port = s.port;
    let tok = s.tokens[0].clone();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..requests {
        let tok = tok.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(port).await;
            let (st, v) = c.call("GET", "/messages?since_id=0", &tok, None).await;
            (st, v["messages"].as_array().map_or(0, Vec::len))
        }));
    }
    let mut ok = 0;
    let mut per_page = 0;
    for h in tasks {
        let (st, n) = h.await.expect("reader");
        if st == 200 {
            ok += 1;
            per_page = n;
        }
    }
    json!({
        "requests": requests, "answered": ok, "messages_per_page": per_page,
        "seconds": t.elapsed().as_secs_f64(), "rss_before_kb": before,
        "peak_rss_kb": peak_kb(pid(&s)),
    })
}

pub async fn run() -> Value {
    let mb = env_usize("AG_BENCH_BIGLOG_MB", 1024) as u64;
    json!({
        "pathological_search": pathological_search().await,
        "big_log_restart": big_log_restart(mb).await,
        "unread_pages": unread_pages(500).await,
    })
}

pub fn table(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.0}"));
    let mb = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{:.0}", x / 1024.0))
    };
    let mut t = String::from("\n| hardening (issue 22) | measured |\n|---|---|\n");
    let x = &r["pathological_search"];
    t += &format!(
        "| {} searches of 200 × 64 KB handoffs, 200-char query, 3 at once | p50 {} ms, max {} ms |\n",
        x["searches"],
        f(&x["search_p50_ms"]),
        f(&x["search_max_ms"])
    );
    t += &format!(
        "| posts beside them | p50 {} ms, p90 {} ms, max {} ms |\n",
        f(&x["post_p50_ms"]),
        f(&x["post_p90_ms"]),
        f(&x["post_max_ms"])
    );
    let x = &r["big_log_restart"];
    t += &format!(
        "| restart over a {} MB log ({} handoffs with keys) | {} ms, peak RSS {} MB |\n",
        x["log_mb"],
        x["messages"],
        f(&x["startup_ms"]),
        mb(&x["peak_rss_kb"])
    );
    let x = &r["unread_pages"];
    t += &format!(
        "| {} unread page reads at once from one participant ({} messages a page) | {} answered in {:.1} s, peak RSS {} MB |\n",
        x["requests"],
        x["messages_per_page"],
        x["answered"],
        x["seconds"].as_f64().unwrap_or(f64::NAN),
        mb(&x["peak_rss_kb"])
    );
    t
}
