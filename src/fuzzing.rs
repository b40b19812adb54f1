//! Fuzz targets: the parsers that take bytes from strangers (a posted body, a message
//! text, the log file at start-up), each with the invariants it must keep on any input.
//! `fuzz/` drives them with libFuzzer (`cargo fuzz`, coverage-guided); `tests/fuzz.rs`
//! drives the same functions with generated inputs in a bounded run on every test.

use std::io::Write;

use crate::protocol::mentions::{candidate_mentions, resolve_mentions};
use crate::protocol::{Limits, Message, MessageInput, MessageType};
use crate::store::{FsyncMode, MessageLog};

/// A posted body: parses or is refused with a contract error, never panics; what parses
/// respects the limits.
pub fn message_input(data: &[u8]) {
    let limits = Limits::default();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match MessageInput::from_json(&value, &limits) {
        Ok(m) => {
            assert!(!m.text.trim().is_empty());
            assert_ne!(m.kind, MessageType::System);
            let cap = if m.kind == MessageType::Handoff {
                limits.handoff_chars
            } else {
                limits.text_chars
            };
            assert!(m.text.chars().count() <= cap);
            assert!(m.reply_to.is_none_or(|r| r > 0));
        }
        Err(e) => {
            assert!((400..500).contains(&e.status));
            assert!(!e.code.is_empty());
        }
    }
}

/// Mentions of any text: lowercase slugs, no repeats, a subset of the candidates, and
/// never found inside a fenced block that encloses the whole text.
pub fn mentions(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let found = candidate_mentions(text);
    for (i, m) in found.iter().enumerate() {
        assert!(!m.is_empty() && m.len() <= 65);
        assert!(
            m.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(!m.ends_with('-'));
        assert!(!found[..i].contains(m), "repeated mention");
    }
    let some = resolve_mentions(text, |a| a.len() % 2 == 0);
    assert!(some.iter().all(|m| found.contains(m)));
    if !text.contains("```") && !text.contains('\n') {
        let fenced = format!("```\n{text}\n```");
        assert!(
            candidate_mentions(&fenced).is_empty(),
            "a mention escaped a fence"
        );
    }
}

/// Any bytes as `messages.jsonl`: start-up recovers (never panics), ids strictly increase,
/// an append continues after the last id, and a second start sees the same log plus it.
pub fn log_recovery(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!(
        "ag-fuzz-log-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("messages.jsonl");
    if let Ok(mut f) = std::fs::File::create(&path) {
        let _ = f.write_all(data);
    }
    let Ok((mut log, rec)) = MessageLog::open(&path, FsyncMode::Off) else {
        return;
    };
    let all = log.read_every(0).unwrap_or_default();
    assert!(
        all.windows(2).all(|w| w[0].msg.id < w[1].msg.id),
        "ids out of order"
    );
    assert!(all.len() <= rec.messages);
    let next = log.last_id() + 1;
    if next < u64::MAX / 2 {
        let msg = Message {
            id: next,
            room: "r".into(),
            ts: "t".into(),
            from: "a".into(),
            kind: MessageType::Message,
            text: "after".into(),
            mentions: vec![],
            reply_to: None,
            client_msg_id: None,
            topic: None,
            topic_id: None,
            topic_update: None,
            claim: None,
            claim_id: None,
            claim_update: None,
        };
        log.append(msg).expect("append after recovery");
        drop(log);
        let (again, _) = MessageLog::open(&path, FsyncMode::Off).expect("reopen");
        assert_eq!(again.last_id(), next);
        let got = again.read_since(next - 1, 1).expect("read");
        assert_eq!(got.first().map(|m| m.msg.text.as_str()), Some("after"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
