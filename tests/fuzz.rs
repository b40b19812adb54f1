//! Bounded fuzzing on every test run: the targets of `src/fuzzing.rs` (the same ones
//! `cargo fuzz` drives in `fuzz/`) fed with generated, structure-aware inputs from fixed
//! seeds, so a failure reproduces. Each target runs a fixed number of cases and then
//! keeps going until `AGENTGATHER_FUZZ_SECS` (default 5; CI sets 60) have passed; a
//! failing input is printed before the test fails.

use std::time::{Duration, Instant};

use agentgather::fuzzing;

fn budget() -> Duration {
    let secs = std::env::var("AGENTGATHER_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

/// Runs `target` on inputs from `make` for at least `min_cases` cases and the time budget.
fn drive(seed: u64, min_cases: u64, mut make: impl FnMut(&mut Rng) -> Vec<u8>, target: fn(&[u8])) {
    let mut r = Rng(seed);
    let start = Instant::now();
    let mut case = 0u64;
    while case < min_cases || start.elapsed() < budget() {
        let input = make(&mut r);
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            panic!(
                "case {case} of seed {seed:#x} failed on input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
        case += 1;
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "@",
    "@operator",
    "@Reviewer",
    "@bob-2-",
    "`",
    "``",
    "```",
    "~~~",
    "\n",
    " ",
    "a",
    "b",
    "-",
    "_",
    "mail@x",
    "é",
    "😀",
    "\\",
    "\"",
    "{",
    "}",
    "[",
    "]",
    "\t",
    "````\n",
    "```rust\n",
    "\u{2028}",
    "\0",
    "x",
    "12",
];

fn text(r: &mut Rng) -> String {
    let n = r.below(40);
    (0..n).map(|_| r.pick(PIECES)).collect()
}

fn json_value(r: &mut Rng, depth: u32) -> serde_json::Value {
    use serde_json::json;
    match r.below(if depth > 3 { 5 } else { 7 }) {
        0 => json!(null),
        1 => json!(r.below(2) == 0),
        2 => json!(r.next() as i64 % 1000),
        3 => json!(text(r)),
        4 => json!(-(r.below(10) as i64)),
        5 => serde_json::Value::Array((0..r.below(4)).map(|_| json_value(r, depth + 1)).collect()),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..r.below(4) {
                m.insert(text(r), json_value(r, depth + 1));
            }
            serde_json::Value::Object(m)
        }
    }
}

fn message_body(r: &mut Rng) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    let fields = [
        "text",
        "type",
        "reply_to",
        "client_msg_id",
        "to",
        "from",
        "id",
        "room",
    ];
    for f in fields {
        if r.below(3) > 0 {
            let v = match (f, r.below(3)) {
                ("text", 0) => serde_json::json!(text(r)),
                ("type", 0) => serde_json::json!(
                    r.pick(&["message", "question", "handoff", "system", "shout", ""])
                ),
                ("reply_to", 0) => serde_json::json!(r.below(5)),
                _ => json_value(r, 0),
            };
            m.insert(f.to_string(), v);
        }
    }
    let mut bytes = serde_json::to_vec(&serde_json::Value::Object(m)).unwrap_or_default();
    // Sometimes flip or cut bytes to leave valid JSON.
    if !bytes.is_empty() && r.below(4) == 0 {
        let at = r.below(bytes.len() as u64) as usize;
        bytes[at] = r.next() as u8;
    }
    if !bytes.is_empty() && r.below(6) == 0 {
        let cut = r.below(bytes.len() as u64) as usize;
        bytes.truncate(cut);
    }
    bytes
}

fn log_file(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut id = 0u64;
    for _ in 0..r.below(30) {
        match r.below(8) {
            0 => out.extend_from_slice(b"garbage line\n"),
            1 => out.extend_from_slice(b"\n"),
            2 => out.extend_from_slice(format!("{{\"id\": {}, broken\n", r.below(50)).as_bytes()),
            3 => out.extend_from_slice(b"{\"x\":1,\"id\":3,\"room\":\"r\",\"ts\":\"t\",\"from\":\"a\",\"type\":\"message\",\"text\":\"late id\"}\n"),
            _ => {
                id += 1 + r.below(3);
                if r.below(10) == 0 {
                    id = id.saturating_sub(4);
                }
                let line = serde_json::json!({"id": id, "room": "r", "ts": "t", "from": "a", "type": "message", "text": text(r), "mentions": []});
                out.extend_from_slice(line.to_string().as_bytes());
                out.push(b'\n');
            }
        }
    }
    // A torn tail, sometimes.
    if r.below(3) == 0 {
        let line = format!(
            "{{\"id\":{},\"room\":\"r\",\"ts\":\"t\",\"from\":\"a\"",
            id + 1
        );
        let cut = r.below(line.len() as u64) as usize;
        out.extend_from_slice(&line.as_bytes()[..cut]);
    }
    if r.below(5) == 0 {
        for _ in 0..r.below(64) {
            out.push(r.next() as u8);
        }
    }
    out
}

#[test]
fn fuzz_message_input() {
    drive(
        0x9e37_79b9_7f4a_7c15,
        30_000,
        message_body,
        fuzzing::message_input,
    );
}

#[test]
fn fuzz_mentions() {
    drive(
        0xdead_beef_cafe_f00d,
        50_000,
        |r| text(r).into_bytes(),
        fuzzing::mentions,
    );
}

#[test]
fn fuzz_mentions_raw_bytes() {
    drive(
        0x5151_5151_aaaa_0001,
        5_000,
        |r| (0..r.below(64)).map(|_| r.next() as u8).collect(),
        fuzzing::mentions,
    );
}

#[test]
fn fuzz_log_recovery() {
    drive(
        0x0123_4567_89ab_cdef,
        3_000,
        log_file,
        fuzzing::log_recovery,
    );
}
