//! Bounded fuzzing on every test run: the targets of `src/fuzzing.rs` (the same ones
//! `cargo fuzz` drives in `fuzz/`) fed with generated, structure-aware inputs from fixed
//! seeds, so a failure reproduces.

use agentgather::fuzzing;

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
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..30_000 {
        fuzzing::message_input(&message_body(&mut r));
    }
}

#[test]
fn fuzz_mentions() {
    let mut r = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..50_000 {
        fuzzing::mentions(text(&mut r).as_bytes());
    }
    for _ in 0..5_000 {
        let raw: Vec<u8> = (0..r.below(64)).map(|_| r.next() as u8).collect();
        fuzzing::mentions(&raw);
    }
}

#[test]
fn fuzz_log_recovery() {
    let mut r = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..3_000 {
        fuzzing::log_recovery(&log_file(&mut r));
    }
}
