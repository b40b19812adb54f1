//! Property tests (proptest): mention parsing and cursor arithmetic hold for any input,
//! not only the examples in the unit tests.

use std::sync::atomic::{AtomicU64, Ordering};

use agentgather::protocol::mentions::resolve_mentions;
use agentgather::protocol::{Message, MessageType};
use agentgather::store::{FsyncMode, MessageLog};
use proptest::prelude::*;

fn alias() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

/// Prose that cannot itself create or hide a mention.
fn prose() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ,.!?]{0,40}"
}

proptest! {
    #[test]
    fn a_spoken_mention_of_a_participant_counts(names in proptest::collection::vec(alias(), 1..5), before in prose(), after in prose(), pick in any::<prop::sample::Index>()) {
        let who = pick.get(&names).clone();
        let text = format!("{before} @{who} {after}");
        let got = resolve_mentions(&text, |a| names.iter().any(|n| n == a));
        prop_assert!(got.contains(&who), "{text:?} -> {got:?}");
        prop_assert!(got.iter().all(|g| names.contains(g)));
    }

    #[test]
    fn code_hides_mentions(names in proptest::collection::vec(alias(), 1..5), body in prose(), pick in any::<prop::sample::Index>()) {
        let who = pick.get(&names).clone();
        let is = |a: &str| names.iter().any(|n| n == a);
        let span = format!("{body} `@{who}` {body}");
        let in_span = resolve_mentions(&span, is);
        prop_assert!(!in_span.contains(&who), "{span:?} -> {in_span:?}");
        let fenced = format!("```\n{body} @{who}\n```");
        prop_assert!(resolve_mentions(&fenced, is).is_empty());
    }

    #[test]
    fn a_mention_glued_to_a_word_does_not_count(names in proptest::collection::vec(alias(), 1..5), word in "[A-Za-z0-9_]{1,8}", pick in any::<prop::sample::Index>()) {
        let who = pick.get(&names).clone();
        let text = format!("{word}@{who}");
        prop_assert!(resolve_mentions(&text, |a| names.iter().any(|n| n == a)).is_empty());
    }
}

static N: AtomicU64 = AtomicU64::new(0);

fn log_with(gaps: &[u64]) -> (MessageLog, Vec<u64>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "ag-prop-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("messages.jsonl");
    let (mut log, _) = MessageLog::open(&path, FsyncMode::Off).unwrap();
    let mut ids = Vec::new();
    let mut id = 0;
    for g in gaps {
        id += g;
        let m = Message {
            id,
            room: "r".into(),
            ts: "t".into(),
            from: "a".into(),
            kind: MessageType::Message,
            text: format!("m{id}"),
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
        log.append(m).unwrap();
        ids.push(id);
    }
    (log, ids, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn since_is_exclusive_and_ordered(gaps in proptest::collection::vec(1u64..4, 0..60), since in 0u64..200) {
        let (log, ids, dir) = log_with(&gaps);
        let got: Vec<u64> = log.read_since(since, usize::MAX).unwrap().iter().map(|m| m.msg.id).collect();
        let want: Vec<u64> = ids.iter().copied().filter(|&i| i > since).collect();
        prop_assert_eq!(got, want);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn following_the_cursor_delivers_each_message_once(gaps in proptest::collection::vec(1u64..4, 0..60), page in 1usize..7) {
        let (log, ids, dir) = log_with(&gaps);
        let mut cursor = 0;
        let mut seen = Vec::new();
        loop {
            let batch = log.read_since(cursor, page).unwrap();
            // next_since_id is the highest delivered id, unchanged when nothing is new.
            let next = batch.last().map_or(cursor, |m| m.msg.id);
            prop_assert!(next >= cursor);
            if batch.is_empty() {
                break;
            }
            seen.extend(batch.iter().map(|m| m.msg.id));
            cursor = next;
        }
        prop_assert_eq!(seen, ids);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
