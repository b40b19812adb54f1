//! Search (SPEC §9.2) over a compact in-memory corpus: each message's case-folded text
//! (and topic title), its sender and type, by id. The corpus is built from the log the
//! first time someone searches and then catches up with new messages on each search (from
//! the tail cache), so start-up stays a line scan and no search reads the whole log.

use std::collections::HashMap;
use std::sync::Arc;

use super::Room;
use crate::protocol::topic::{fold, snippet};
use crate::protocol::{ApiError, Message, MessageType};
use crate::store::log::StoredMessage;

/// A matching message and its snippet.
pub type Hit = (Arc<StoredMessage>, String);

struct Doc {
    id: u64,
    from: u32,
    kind: MessageType,
    /// Folded topic title, a newline, folded text.
    folded: Box<str>,
}

/// The searchable form of every message through `through`.
#[derive(Default)]
pub struct SearchCorpus {
    through: u64,
    docs: Vec<Doc>,
    senders: Vec<String>,
    sender_ids: HashMap<String, u32>,
    bytes: usize,
}

impl SearchCorpus {
    fn push(&mut self, m: &Message) {
        let next = self.senders.len() as u32;
        let from = *self.sender_ids.entry(m.from.clone()).or_insert_with(|| {
            self.senders.push(m.from.clone());
            next
        });
        let mut folded = String::new();
        if let Some(t) = &m.topic {
            folded.push_str(&fold(&t.title));
        }
        folded.push('\n');
        folded.push_str(&fold(&m.text));
        self.bytes += folded.len() + std::mem::size_of::<Doc>();
        self.docs.push(Doc {
            id: m.id,
            from,
            kind: m.kind,
            folded: folded.into_boxed_str(),
        });
        self.through = m.id;
    }

    /// Bytes the corpus holds (text and per-message overhead), for the benchmark.
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }
}

/// A validated `GET /search`.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Case-folded words; every one must occur.
    pub words: Vec<String>,
    pub from: Option<String>,
    pub kind: Option<MessageType>,
    pub limit: usize,
    pub before_id: Option<u64>,
}

impl SearchQuery {
    /// The one check of a search's parameters, for the server and the host's direct
    /// read alike: 1-200 characters with a word, and a limit of 1-200 (default 50).
    pub fn parse(
        q: &str,
        from: Option<String>,
        kind: Option<MessageType>,
        limit: Option<u64>,
        before_id: Option<u64>,
    ) -> Result<SearchQuery, ApiError> {
        let words = crate::protocol::topic::query_words(q)?;
        let limit = limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be 1-200",
            ));
        }
        Ok(SearchQuery {
            words,
            from: from.filter(|f| !f.is_empty()),
            kind,
            limit: limit as usize,
            before_id,
        })
    }
}

impl Room {
    /// Brings the corpus up to the log's last message.
    fn catch_up_search(&mut self) -> Result<(), ApiError> {
        while self.search.through < self.log.last_id() {
            let page = self
                .log
                .read_since(self.search.through, 1000)
                .map_err(ApiError::from)?;
            let Some(last) = page.last().map(|m| m.msg.id) else {
                break;
            };
            for m in &page {
                self.search.push(&m.msg);
            }
            self.search.through = last;
        }
        Ok(())
    }

    /// The newest matches (before `before_id`), each with a snippet, and whether older
    /// matches remain.
    pub fn search(&mut self, q: &SearchQuery) -> Result<(Vec<Hit>, bool), ApiError> {
        self.catch_up_search()?;
        let corpus = &self.search;
        let from = match &q.from {
            Some(f) => match corpus.sender_ids.get(f) {
                Some(&i) => Some(i),
                None => return Ok((Vec::new(), false)),
            },
            None => None,
        };
        let end = match q.before_id {
            Some(b) => corpus.docs.partition_point(|d| d.id < b),
            None => corpus.docs.len(),
        };
        let mut ids = Vec::with_capacity(q.limit + 1);
        for d in corpus.docs[..end].iter().rev() {
            if from.is_some_and(|f| f != d.from)
                || q.kind.is_some_and(|k| k != d.kind)
                || !q.words.iter().all(|w| d.folded.contains(w.as_str()))
            {
                continue;
            }
            ids.push(d.id);
            if ids.len() > q.limit {
                break;
            }
        }
        let has_more = ids.len() > q.limit;
        ids.truncate(q.limit);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.log.get(id).map_err(ApiError::from)? {
                let snip = hit_snippet(&m.msg, &q.words);
                out.push((m, snip));
            }
        }
        Ok((out, has_more))
    }

    /// The corpus size in bytes (0 before the first search).
    pub fn search_corpus_bytes(&self) -> usize {
        self.search.approx_bytes()
    }
}

/// The snippet comes from the text, or from the title when only the title matched.
fn hit_snippet(m: &Message, words: &[String]) -> String {
    let folded = fold(&m.text);
    match &m.topic {
        Some(t) if !words.iter().any(|w| folded.contains(w.as_str())) => snippet(&t.title, words),
        _ => snippet(&m.text, words),
    }
}
