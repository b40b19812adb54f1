//! `messages.jsonl` is the room's source of truth. The server keeps an index of every
//! line's offset plus the newest messages parsed in memory, so a read or a `/wait` costs
//! O(new messages) however long the log, and start-up only scans for line ends and ids.
//!
//! Durability: an append is one `write` of the whole line at the end of the file, before
//! the caller acknowledges; if it fails part-way (disk full, file size limit) the file is
//! cut back to the last whole line, so the next start never meets a half line we wrote.
//! A torn last line left by a crash is dropped at start, since nobody was told it landed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use super::StoreError;
use super::fsutil::open_private_append;
use crate::protocol::Message;
use crate::protocol::bounds::page_takes;

/// When appends reach stable storage, beyond the page cache. Every mode writes the line
/// before the 201, so a process crash never loses an acknowledged message; the modes
/// differ in what survives a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncMode {
    /// `fdatasync` after every append, under the room lock, before the 201.
    Always,
    /// Group commit: the 201 waits for an `fdatasync` that covers the line, and one sync
    /// covers every append that arrived while the previous one ran. The default: durable
    /// acknowledgements at a fraction of `always`'s cost under concurrency.
    #[default]
    Batch,
    /// Never by us: a power loss may lose the newest acknowledged lines.
    Off,
}

impl std::str::FromStr for FsyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncMode::Always),
            "batch" => Ok(FsyncMode::Batch),
            "off" => Ok(FsyncMode::Off),
            _ => Err(format!("expected always|batch|off, got {s:?}")),
        }
    }
}

/// A message together with its exact stored JSON, so responses reuse the bytes.
#[derive(Debug)]
pub struct StoredMessage {
    pub msg: Message,
    pub raw: Box<RawValue>,
}

impl Serialize for StoredMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl StoredMessage {
    pub(crate) fn from_line(line: &[u8]) -> Option<StoredMessage> {
        let text = std::str::from_utf8(line).ok()?.trim();
        let msg: Message = serde_json::from_str(text).ok()?;
        let raw = RawValue::from_string(text.to_string()).ok()?;
        Some(StoredMessage { msg, raw })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    offset: u64,
    len: u32,
}

/// What start-up found in the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub messages: usize,
    pub last_id: u64,
    /// Bytes of a torn final line that were cut off.
    pub torn_bytes: u64,
    /// Complete lines that were not messages (or out of order) and are skipped on read.
    pub skipped_lines: usize,
}

/// How many of the newest messages stay parsed in memory...
pub const CACHE_MESSAGES: usize = 4096;
/// ...as long as they fit in this many bytes of lines (4,096 handoffs of 256 KB once
/// held 2 GB).
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// One page of `/messages` or `/wait`: at most this many messages...
pub const PAGE_MESSAGES: usize = 1000;
/// ...and at most this many bytes of lines (always at least one message): the one
/// bound every answer of the room server shares with the broker's response limit.
pub use crate::protocol::bounds::PAGE_BYTES;
/// How many bytes of lines a restart reads at a time for the idempotency keys.
const KEY_SCAN_BYTES: usize = 1024 * 1024;

pub struct MessageLog {
    path: PathBuf,
    file: File,
    index: Vec<Entry>,
    end: u64,
    cache: VecDeque<Arc<StoredMessage>>,
    /// The bytes of the cached lines.
    cache_bytes: usize,
    fsync: FsyncMode,
    /// Ids of the lines start-up saw mentioning `"topic`, for the topic index to parse.
    topic_ids: Vec<u64>,
    /// Ids of the lines start-up saw mentioning `"claim`, for the claim index to parse.
    claim_ids: Vec<u64>,
}

/// Whether a line may carry a topic field (`"topic…`): only those are parsed at start-up.
fn mentions_topic(line: &[u8]) -> bool {
    line.windows(6).any(|w| w == b"\"topic")
}

/// Whether a line may carry a claim field (`"claim…`): only those are parsed at start-up.
fn mentions_claim(line: &[u8]) -> bool {
    line.windows(6).any(|w| w == b"\"claim")
}

/// Reads the id of a line written as `{"id": N, ...}` without parsing the rest.
fn fast_id(line: &[u8]) -> Option<u64> {
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < line.len() && line[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    if !line[i..].starts_with(b"\"id\"") {
        return None;
    }
    i += 4;
    skip_ws(&mut i);
    if line.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    let start = i;
    while i < line.len() && line[i].is_ascii_digit() {
        i += 1;
    }
    if i == start || i - start > 19 {
        return None;
    }
    let id = std::str::from_utf8(&line[start..i]).ok()?.parse().ok()?;
    skip_ws(&mut i);
    matches!(line.get(i), Some(b',') | Some(b'}')).then_some(id)
}

fn line_id(line: &[u8]) -> Option<u64> {
    fast_id(line).or_else(|| StoredMessage::from_line(line).map(|m| m.msg.id))
}

impl MessageLog {
    /// Opens (creating) the log, indexes it and repairs a torn tail.
    pub fn open(path: &Path, fsync: FsyncMode) -> Result<(MessageLog, Recovery), StoreError> {
        let mut file = open_private_append(path)?;
        let io = |e| StoreError::io(path, e);
        let mut index = Vec::new();
        let mut rec = Recovery::default();
        let mut offset = 0u64;
        let mut tail: Option<(u64, Vec<u8>)> = None;
        let mut topic_ids = Vec::new();
        let mut claim_ids = Vec::new();
        {
            let mut reader = BufReader::with_capacity(1 << 20, &file);
            reader.seek(SeekFrom::Start(0)).map_err(io)?;
            let mut line = Vec::with_capacity(512);
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).map_err(io)?;
                if n == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    tail = Some((offset, line.clone()));
                    break;
                }
                let body = &line[..n - 1];
                if !body.iter().all(u8::is_ascii_whitespace) {
                    match line_id(body) {
                        Some(id) if n <= u32::MAX as usize => {
                            let entry = Entry {
                                id,
                                offset,
                                len: (n - 1) as u32,
                            };
                            if Self::push_in_order(&file, path, &mut index, entry)? {
                                rec.skipped_lines += 1;
                            }
                            if mentions_topic(body) {
                                topic_ids.push(id);
                            }
                            if mentions_claim(body) {
                                claim_ids.push(id);
                            }
                        }
                        _ => rec.skipped_lines += 1,
                    }
                }
                offset += n as u64;
            }
        }
        if let Some((at, bytes)) = tail {
            // A complete message without its newline is kept (whole); anything else was
            // never acknowledged and is cut.
            let last_id = index.last().map_or(0, |e| e.id);
            match StoredMessage::from_line(&bytes) {
                Some(m) if m.msg.id > last_id => {
                    file.write_all(b"\n").map_err(io)?;
                    if mentions_topic(&bytes) {
                        topic_ids.push(m.msg.id);
                    }
                    if mentions_claim(&bytes) {
                        claim_ids.push(m.msg.id);
                    }
                    index.push(Entry {
                        id: m.msg.id,
                        offset: at,
                        len: bytes.len() as u32,
                    });
                    offset += bytes.len() as u64 + 1;
                }
                _ => {
                    file.set_len(at).map_err(io)?;
                    rec.torn_bytes = bytes.len() as u64;
                }
            }
        }
        let mut log = MessageLog {
            path: path.to_path_buf(),
            file,
            index,
            end: offset,
            cache: VecDeque::new(),
            cache_bytes: 0,
            fsync,
            topic_ids,
            claim_ids,
        };
        rec.skipped_lines += log.fill_cache()?;
        rec.messages = log.index.len();
        rec.last_id = log.last_id();
        Ok((log, rec))
    }

    /// Adds a scanned line to the index, keeping ids strictly increasing. The scan trusts
    /// a line's id prefix without parsing the rest (that keeps start-up fast), so when a
    /// line's id does not exceed the previous one, the previous lines are checked in
    /// full: garbage that only looked like a message gives way, a real message stays and
    /// the out-of-order line is skipped. Returns whether a line was skipped.
    fn push_in_order(
        file: &File,
        path: &Path,
        index: &mut Vec<Entry>,
        entry: Entry,
    ) -> Result<bool, StoreError> {
        let mut skipped = false;
        while let Some(top) = index.last().copied() {
            if entry.id > top.id {
                break;
            }
            let mut buf = vec![0u8; top.len as usize];
            file.read_exact_at(&mut buf, top.offset)
                .map_err(|e| StoreError::io(path, e))?;
            if StoredMessage::from_line(&buf).is_some_and(|m| m.msg.id == top.id) {
                return Ok(true);
            }
            index.pop();
            skipped = true;
        }
        index.push(entry);
        Ok(skipped)
    }

    /// Parses the newest lines into the cache. The cache must mirror the tail of the
    /// index entry for entry, so an indexed line that is not a whole message (its id
    /// was readable, the rest is not) leaves the index here; returns how many did.
    fn fill_cache(&mut self) -> Result<usize, StoreError> {
        let mut dropped = 0;
        loop {
            let from = self.cache_start();
            let tail: Vec<Entry> = self.index.drain(from..).collect();
            let mut cache = VecDeque::with_capacity(tail.len());
            let mut bytes = 0;
            for e in tail {
                let mut buf = vec![0u8; e.len as usize];
                self.file
                    .read_exact_at(&mut buf, e.offset)
                    .map_err(|err| StoreError::io(&self.path, err))?;
                match StoredMessage::from_line(&buf) {
                    Some(m) if m.msg.id == e.id => {
                        self.index.push(e);
                        bytes += e.len as usize;
                        cache.push_back(Arc::new(m));
                    }
                    _ => dropped += 1,
                }
            }
            self.cache = cache;
            self.cache_bytes = bytes;
            // Dropped lines leave room for older ones: refill until full or done.
            if self.cache_start() == self.index.len() - self.cache.len() {
                return Ok(dropped);
            }
        }
    }

    /// Where the cache should start in the index: the newest entries up to
    /// [`CACHE_MESSAGES`] and [`CACHE_BYTES`] (at least one).
    fn cache_start(&self) -> usize {
        let len = self.index.len();
        self.span_back(0, len, CACHE_MESSAGES, CACHE_BYTES)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest id in the log, 0 if empty.
    pub fn last_id(&self) -> u64 {
        self.index.last().map_or(0, |e| e.id)
    }

    /// The byte length of the log's whole lines: a sync covering this offset makes every
    /// message appended so far durable.
    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// The sync mode the log was opened with.
    pub fn fsync_mode(&self) -> FsyncMode {
        self.fsync
    }

    /// A second handle on the log file, for syncing outside the room lock.
    pub fn sync_handle(&self) -> Result<File, StoreError> {
        self.file
            .try_clone()
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// How many messages the log holds.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The newest messages, parsed (up to [`CACHE_MESSAGES`]).
    /// The ids of the lines start-up saw mentioning `"topic` (once: it hands them over).
    pub fn take_topic_ids(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.topic_ids)
    }

    /// The ids of the lines start-up saw mentioning `"claim` (once: it hands them over).
    pub fn take_claim_ids(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.claim_ids)
    }

    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Arc<StoredMessage>> {
        self.cache.iter()
    }

    /// Appends `msg` (whose id must exceed [`Self::last_id`]) as one line.
    pub fn append(&mut self, msg: Message) -> Result<Arc<StoredMessage>, StoreError> {
        debug_assert!(msg.id > self.last_id());
        let json = serde_json::to_string(&msg)
            .map_err(|e| StoreError::corrupt(&self.path, e.to_string()))?;
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        if let Err(e) = self.write_line(&line) {
            // Cut back whatever part of the line reached the file.
            let _ = self.file.set_len(self.end);
            return Err(StoreError::write(&self.path, e));
        }
        self.index.push(Entry {
            id: msg.id,
            offset: self.end,
            len: json.len() as u32,
        });
        self.end += line.len() as u64;
        let raw = RawValue::from_string(json)
            .map_err(|e| StoreError::corrupt(&self.path, e.to_string()))?;
        let stored = Arc::new(StoredMessage { msg, raw });
        self.cache.push_back(stored.clone());
        self.cache_bytes += stored.raw.get().len();
        while self.cache.len() > 1
            && (self.cache.len() > CACHE_MESSAGES || self.cache_bytes > CACHE_BYTES)
        {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= old.raw.get().len();
            }
        }
        Ok(stored)
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.file.write_all(line)?;
        if self.fsync == FsyncMode::Always {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Messages with id > `since`, oldest first: at most `limit` of them and at most
    /// [`PAGE_BYTES`] of lines (but at least one). Whether more follow is whether the
    /// last one returned is not the log's last.
    pub fn read_since(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Arc<StoredMessage>>, StoreError> {
        self.read_since_into(since, limit, 0)
    }

    /// [`Self::read_since`] for a page that already holds `held` bytes: what still fits
    /// (nothing, if the next message does not and the page is not empty).
    pub fn read_since_into(
        &self,
        since: u64,
        limit: usize,
        held: usize,
    ) -> Result<Vec<Arc<StoredMessage>>, StoreError> {
        let from = self.index.partition_point(|e| e.id <= since);
        let most = self.index.len().min(from.saturating_add(limit));
        let mut to = from;
        let mut bytes = held;
        while to < most && page_takes(bytes, self.index[to].len as usize) {
            bytes += self.index[to].len as usize;
            to += 1;
        }
        self.read_entries(from, to)
    }

    /// Where a span of entries that ends at index `to` starts: at most `n` entries back,
    /// not below `floor`, within `max_bytes` of lines (but at least one entry).
    fn span_back(&self, floor: usize, to: usize, n: usize, max_bytes: usize) -> usize {
        let mut from = to;
        let mut bytes = 0usize;
        while from > floor && to - from < n {
            bytes += self.index[from - 1].len as usize;
            if bytes > max_bytes && from < to {
                break;
            }
            from -= 1;
        }
        from
    }

    /// Every message with id > `since`, oldest first, unpaged: for exports, which
    /// are the host's to ask for.
    pub fn read_every(&self, since: u64) -> Result<Vec<Arc<StoredMessage>>, StoreError> {
        let from = self.index.partition_point(|e| e.id <= since);
        self.read_entries(from, self.index.len())
    }

    /// The newest `n` messages with id > `since`, oldest first, within [`PAGE_BYTES`]
    /// (at least one).
    pub fn read_tail(&self, since: u64, n: usize) -> Result<Vec<Arc<StoredMessage>>, StoreError> {
        let floor = self.index.partition_point(|e| e.id <= since);
        let to = self.index.len();
        self.read_entries(self.span_back(floor, to, n, PAGE_BYTES), to)
    }

    /// The `(from, client_msg_id, id)` of the newest messages that carry an idempotency
    /// key, newest first: at most `max_keys` of them, looking at most `max_messages`
    /// back. Read from the file in spans of at most [`KEY_SCAN_BYTES`] (at least one
    /// line), each line decoded only for its id, sender and key, so a restart's memory
    /// stays flat however large the messages are.
    pub fn recent_client_keys(
        &self,
        max_messages: usize,
        max_keys: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Keyed {
            id: u64,
            from: String,
            #[serde(default)]
            client_msg_id: Option<String>,
        }
        let mut keys = Vec::new();
        let floor = self.index.len().saturating_sub(max_messages);
        let mut to = self.index.len();
        let mut buf = Vec::new();
        while to > floor && keys.len() < max_keys {
            let from = self.span_back(floor, to, usize::MAX, KEY_SCAN_BYTES);
            let start = self.index[from].offset;
            let last = self.index[to - 1];
            buf.resize((last.offset + last.len as u64 - start) as usize, 0);
            self.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| StoreError::io(&self.path, e))?;
            for e in self.index[from..to].iter().rev() {
                let s = (e.offset - start) as usize;
                let line = &buf[s..s + e.len as usize];
                // Only lines that mention a key are decoded at all.
                if !line.windows(15).any(|w| w == b"\"client_msg_id\"") {
                    continue;
                }
                if let Ok(Keyed {
                    id,
                    from,
                    client_msg_id: Some(key),
                }) = serde_json::from_slice::<Keyed>(line)
                    && id == e.id
                {
                    keys.push((from, key, id));
                    if keys.len() == max_keys {
                        break;
                    }
                }
            }
            to = from;
        }
        Ok(keys)
    }

    /// The newest `n` messages with id < `before`, oldest first, and whether older ones
    /// remain: one page of history read backwards (`GET /messages?before_id=`). Pages
    /// older than the tail cache come from the file, through the offset index.
    pub fn read_before(
        &self,
        before: u64,
        n: usize,
    ) -> Result<(Vec<Arc<StoredMessage>>, bool), StoreError> {
        let to = self.index.partition_point(|e| e.id < before);
        let from = self.span_back(0, to, n, PAGE_BYTES);
        Ok((self.read_entries(from, to)?, from > 0))
    }

    /// The message with this id, if any.
    pub fn get(&self, id: u64) -> Result<Option<Arc<StoredMessage>>, StoreError> {
        let at = self.index.partition_point(|e| e.id < id);
        match self.index.get(at) {
            Some(e) if e.id == id => Ok(self.read_entries(at, at + 1)?.pop()),
            _ => Ok(None),
        }
    }

    /// Whether a message with this id exists.
    pub fn contains(&self, id: u64) -> bool {
        self.index.binary_search_by_key(&id, |e| e.id).is_ok()
    }

    fn read_entries(&self, from: usize, to: usize) -> Result<Vec<Arc<StoredMessage>>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let cache_from = self.index.len() - self.cache.len();
        let mut out = Vec::with_capacity(to - from);
        if from < cache_from {
            let disk_to = to.min(cache_from);
            let start = self.index[from].offset;
            let last = self.index[disk_to - 1];
            let mut buf = vec![0u8; (last.offset + last.len as u64 - start) as usize];
            self.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| StoreError::io(&self.path, e))?;
            for e in &self.index[from..disk_to] {
                let s = (e.offset - start) as usize;
                // A line that indexed by id but is not a whole message is skipped.
                if let Some(m) = StoredMessage::from_line(&buf[s..s + e.len as usize]) {
                    out.push(Arc::new(m));
                }
            }
        }
        let first_cached = from.max(cache_from);
        for i in first_cached..to {
            out.push(self.cache[i - cache_from].clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageType;

    fn msg(id: u64) -> Message {
        Message {
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
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ag-log-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("messages.jsonl")
    }

    #[test]
    fn fast_id_reads_both_spacings() {
        assert_eq!(fast_id(br#"{"id":12,"x":1}"#), Some(12));
        assert_eq!(fast_id(br#"{"id": 7, "x": 1}"#), Some(7));
        assert_eq!(fast_id(br#"{"x":1,"id":7}"#), None);
        assert_eq!(fast_id(br#"{"id":"7"}"#), None);
        assert_eq!(fast_id(b"garbage"), None);
    }

    #[test]
    fn appends_reads_and_recovers_a_torn_tail() {
        let p = tmp("torn");
        let _ = std::fs::remove_file(&p);
        {
            let (mut log, rec) = MessageLog::open(&p, FsyncMode::Off).unwrap();
            assert_eq!(rec.last_id, 0);
            for id in 1..=5 {
                log.append(msg(id)).unwrap();
            }
            let got: Vec<u64> = log
                .read_since(2, 100)
                .unwrap()
                .iter()
                .map(|m| m.msg.id)
                .collect();
            assert_eq!(got, [3, 4, 5]);
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"not json\n{\"id\":6,\"room\":\"r\",\"ts")
            .unwrap();
        drop(f);
        let (mut log, rec) = MessageLog::open(&p, FsyncMode::Off).unwrap();
        assert_eq!(rec.last_id, 5);
        assert_eq!(rec.skipped_lines, 1);
        assert!(rec.torn_bytes > 0);
        log.append(msg(6)).unwrap();
        drop(log);
        let (log, rec) = MessageLog::open(&p, FsyncMode::Off).unwrap();
        assert_eq!((rec.last_id, rec.torn_bytes), (6, 0));
        let all: Vec<u64> = log
            .read_every(0)
            .unwrap()
            .iter()
            .map(|m| m.msg.id)
            .collect();
        assert_eq!(all, [1, 2, 3, 4, 5, 6]);
        assert_eq!(log.get(4).unwrap().unwrap().msg.text, "m4");
        let tail: Vec<u64> = log
            .read_tail(0, 2)
            .unwrap()
            .iter()
            .map(|m| m.msg.id)
            .collect();
        assert_eq!(tail, [5, 6]);
        let tail: Vec<u64> = log
            .read_tail(5, 10)
            .unwrap()
            .iter()
            .map(|m| m.msg.id)
            .collect();
        assert_eq!(tail, [6]);
        assert!(log.get(9).unwrap().is_none());
    }

    #[test]
    fn garbage_with_a_high_id_never_hides_real_messages() {
        let p = tmp("highid");
        let good = |id: u64| serde_json::to_string(&msg(id)).unwrap() + "\n";
        let data = format!("{}{{\"id\": 45, not json\n{}", good(1), good(2));
        std::fs::write(&p, data).unwrap();
        let (mut log, rec) = MessageLog::open(&p, FsyncMode::Off).unwrap();
        assert_eq!((rec.last_id, rec.skipped_lines), (2, 1));
        log.append(msg(3)).unwrap();
        drop(log);
        let (log, _) = MessageLog::open(&p, FsyncMode::Off).unwrap();
        let ids: Vec<u64> = log
            .read_since(0, 10)
            .unwrap()
            .iter()
            .map(|m| m.msg.id)
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    /// A log of 50 messages more than the cache holds, reopened (so the oldest are only
    /// on disk); with its message count.
    fn reopened_beyond_the_cache(name: &str) -> (MessageLog, u64, PathBuf) {
        let p = tmp(name);
        let _ = std::fs::remove_file(&p);
        let n = CACHE_MESSAGES as u64 + 50;
        {
            let (mut log, _) = MessageLog::open(&p, FsyncMode::Off).unwrap();
            for id in 1..=n {
                log.append(msg(id)).unwrap();
            }
        }
        (MessageLog::open(&p, FsyncMode::Off).unwrap().0, n, p)
    }

    #[test]
    fn reads_beyond_the_cache_come_from_disk() {
        let (log, n, p) = reopened_beyond_the_cache("big");
        let got = log.read_since(10, 100).unwrap();
        assert_eq!(got.first().unwrap().msg.id, 11);
        assert_eq!(got.len(), 100);
        let all = log.read_every(0).unwrap();
        assert_eq!(all.len() as u64, n);
        assert!(all.windows(2).all(|w| w[0].msg.id + 1 == w[1].msg.id));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn pages_before_an_id_span_the_file_and_the_cache() {
        let (log, n, p) = reopened_beyond_the_cache("before");
        let ids = |before, k| {
            let (page, more) = log.read_before(before, k).unwrap();
            (page.iter().map(|m| m.msg.id).collect::<Vec<u64>>(), more)
        };
        // newest page: from the cache
        assert_eq!(ids(n + 1, 3), (vec![n - 2, n - 1, n], true));
        // a page across the cache's lower edge: file lines, then cached ones
        let edge = n - CACHE_MESSAGES as u64; // the newest message only on disk
        let (page, more) = ids(edge + 3, 5);
        assert_eq!(page, (edge - 2..edge + 3).collect::<Vec<u64>>());
        assert!(more);
        assert_eq!(
            log.read_before(edge + 3, 5).unwrap().0[0].msg.text,
            format!("m{}", edge - 2)
        );
        // the oldest page says nothing older remains
        assert_eq!(ids(4, 10), (vec![1, 2, 3], false));
        assert_eq!(ids(4, 3), (vec![1, 2, 3], false));
        assert_eq!(ids(5, 3), (vec![2, 3, 4], true));
        assert_eq!(ids(1, 10), (vec![], false));
        assert_eq!(ids(0, 10), (vec![], false));
        // an id beyond the end reads the newest page
        assert_eq!(ids(u64::MAX, 1), (vec![n], true));
        let _ = std::fs::remove_file(&p);
    }
}
