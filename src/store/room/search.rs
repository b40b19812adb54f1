//! Search (SPEC §9.2) over a compact in-memory corpus: each message's case-folded text
//! (its first [`SEARCH_TEXT_BYTES`], and its topic title), its sender and type, by id.
//! The corpus is built from the log the first time someone searches and then catches up
//! with new messages on each search, so start-up stays a line scan.
//!
//! The corpus has a lock of its own, and a search holds the room's lock only to read a
//! page of new messages or one hit at a time: matching and snippets run beside the posts,
//! never in front of them (a crafted query once held the room for 1.3 s). Bounding each
//! message's share of the corpus bounds both its memory and the cost of any one scan.

use std::collections::HashMap;
use std::ops::DerefMut;
use std::sync::{Arc, Mutex};

use super::Room;
use crate::protocol::bounds::{SEARCH_TEXT_BYTES, page_takes};
use crate::protocol::topic::{fold, snippet};
use crate::protocol::{ApiError, Message, MessageType};
use crate::store::log::{PAGE_MESSAGES, StoredMessage};

/// A matching message and its snippet.
pub type Hit = (Arc<StoredMessage>, String);

struct Doc {
    id: u64,
    from: u32,
    kind: MessageType,
    /// Folded topic title, a newline, the folded start of the text.
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

/// The part of a text search reads: its first [`SEARCH_TEXT_BYTES`], cut at a character.
pub fn searched_text(text: &str) -> &str {
    if text.len() <= SEARCH_TEXT_BYTES {
        return text;
    }
    let mut end = SEARCH_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
        folded.push_str(&fold(searched_text(&m.text)));
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

    /// The ids of the newest matches before `before_id`, newest first: at most
    /// `limit + 1`, so the caller knows whether more remain.
    fn matches(&self, q: &SearchQuery) -> Vec<u64> {
        let from = match &q.from {
            Some(f) => match self.sender_ids.get(f) {
                Some(&i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let end = match q.before_id {
            Some(b) => self.docs.partition_point(|d| d.id < b),
            None => self.docs.len(),
        };
        let mut ids = Vec::with_capacity(q.limit + 1);
        for d in self.docs[..end].iter().rev() {
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
        ids
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

/// One page of search results.
pub struct SearchPage {
    /// Newest first.
    pub hits: Vec<Hit>,
    pub has_more: bool,
    /// Where the next page starts (`before_id`), when there is one.
    pub next_before_id: Option<u64>,
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
    /// The corpus size in bytes (0 before the first search).
    pub fn search_corpus_bytes(&self) -> usize {
        lock(&self.search).approx_bytes()
    }
}

fn lock(c: &Mutex<SearchCorpus>) -> std::sync::MutexGuard<'_, SearchCorpus> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a search. `room` locks the room; it is taken only to read a page of new
/// messages into the corpus or one hit, so posts go on while the corpus is scanned.
/// The hits stop at `q.limit` or at a page's bytes ([`page_takes`]), whichever first.
pub fn search<G: DerefMut<Target = Room>>(
    room: impl Fn() -> G,
    q: &SearchQuery,
) -> Result<SearchPage, ApiError> {
    let corpus = room().search.clone();
    let ids = {
        let mut c = lock(&corpus);
        loop {
            let page = {
                let r = room();
                if c.through >= r.log.last_id() {
                    break;
                }
                r.log.read_since(c.through, PAGE_MESSAGES)?
            };
            let Some(last) = page.last().map(|m| m.msg.id) else {
                break;
            };
            for m in &page {
                c.push(&m.msg);
            }
            c.through = last;
        }
        c.matches(q)
    };
    let mut hits: Vec<Hit> = Vec::with_capacity(ids.len().min(q.limit));
    let mut bytes = 0usize;
    let mut has_more = ids.len() > q.limit;
    for &id in ids.iter().take(q.limit) {
        let Some(m) = room().log.get(id)? else {
            continue;
        };
        let snip = hit_snippet(&m.msg, &q.words);
        let size = m.raw.get().len() + snip.len();
        if !page_takes(bytes, size) {
            has_more = true;
            break;
        }
        bytes += size;
        hits.push((m, snip));
    }
    let next_before_id = has_more.then(|| hits.last().map(|h| h.0.msg.id)).flatten();
    Ok(SearchPage {
        hits,
        has_more,
        next_before_id,
    })
}

/// The snippet comes from the searched part of the text, or from the title when only
/// the title matched.
fn hit_snippet(m: &Message, words: &[String]) -> String {
    let text = searched_text(&m.text);
    let folded = fold(text);
    match &m.topic {
        Some(t) if !words.iter().any(|w| folded.contains(w.as_str())) => snippet(&t.title, words),
        _ => snippet(text, words),
    }
}
