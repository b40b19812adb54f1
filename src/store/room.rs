//! The room engine: the in-memory state of one open room over its files, and every
//! mutation the contract allows, each with its guards and `system` message. The server
//! holds one `Room` behind a mutex; the host CLI opens one briefly when no server runs.
//! Holding a `Room` means holding the room's lock, so there is never a second writer.

mod approvals;
mod budget;
mod claims;
mod concerns;
mod reach;
mod reserve;
mod search;
mod topics;
mod views;

use budget::WriteBudget;
pub use budget::WriteKind;
pub use claims::ClaimIndex;
use search::SearchCorpus;
pub use search::{SearchPage, SearchQuery, search};
pub use topics::TopicIndex;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fsutil::{ensure_private_dir, read_json, write_json, write_private};
use super::lock::{LockInfo, RoomLock};
use super::log::{FsyncMode, MessageLog, Recovery, StoredMessage};
use super::records::{
    ParticipantRecord, ParticipantsFile, ParticipantsFileOut, ROOM_FILE_VERSION, RoomMeta,
    RoomStatus,
};
use super::{Home, StoreError};
use crate::protocol::claim::ClaimFields;
use crate::protocol::names::name_skeleton;
use crate::protocol::timefmt::{format_ms, now_ms, parse_ms};
use crate::protocol::token::{TokenHash, mint_token};
use crate::protocol::topic::TopicFields;
use crate::protocol::{
    ApiError, AttendancePolicy, Attention, Install, Kind, Limits, Location, Message, MessageInput,
    MessageType, validate_alias, validate_display_name,
};

/// How a room is opened.
#[derive(Debug, Clone, Default)]
pub struct RoomOptions {
    pub limits: Limits,
    pub fsync: FsyncMode,
    /// Recorded in the lock file: `serve`, or the CLI command holding it.
    pub purpose: String,
    /// The address a server listens on, for the lock record.
    pub addr: Option<String>,
}

/// What `room start` needs.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub room: String,
    pub host_alias: String,
    pub brief: String,
    pub policy: AttendancePolicy,
    pub ttl: Option<Duration>,
    pub url: String,
    /// The host's display name (validated by the caller), so the browser room need not ask.
    pub host_display_name: Option<String>,
}

/// How many recent `client_msg_id`s are remembered for idempotent retries.
const IDEMPOTENCY_WINDOW: usize = 10_000;
/// How far back start-up looks for them (one log cap's worth).
const IDEMPOTENCY_SCAN: usize = 50_000;

#[derive(Default)]
struct PostGuard {
    /// When the posts of the last minute were made, on the monotonic clock: a wall-clock
    /// step back must not lock a poster out.
    recent_posts: VecDeque<Instant>,
    consecutive_agent_posts: u32,
}

pub struct Room {
    dir: PathBuf,
    pub meta: RoomMeta,
    participants: Vec<ParticipantRecord>,
    by_alias: HashMap<String, usize>,
    by_hash: HashMap<TokenHash, usize>,
    brief: String,
    pub log: MessageLog,
    idempotency: HashMap<(String, String), u64>,
    idempotency_order: VecDeque<(String, String)>,
    guards: HashMap<usize, PostGuard>,
    lock: RoomLock,
    pub limits: Limits,
    participants_dirty: bool,
    pub recovery: Recovery,
    /// The newest message's time: new messages are never stamped earlier.
    last_ts_ms: i64,
    budget: WriteBudget,
    /// Each participant's last presence row and when it was written: a rejoin within a
    /// minute of a "left" row adds no row, and "left" follows only a "joined", so a
    /// join/leave loop adds at most two rows a minute.
    presence_rows: HashMap<usize, (Presence, Instant)>,
    topic_index: TopicIndex,
    claim_index: ClaimIndex,
    search: Arc<std::sync::Mutex<SearchCorpus>>,
}

/// A presence row's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Joined,
    Left,
}

/// What changed, so the server knows whom to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Now,
    Already,
}

impl Room {
    /// Creates a room and its host; returns it open, with the host's raw token.
    pub fn create(
        home: &Home,
        new: &NewRoom,
        opts: &RoomOptions,
    ) -> Result<(Room, String), StoreError> {
        let dir = home.room_dir(&new.room);
        if home.room_exists(&new.room) {
            return Err(StoreError::RoomExists(new.room.clone()));
        }
        home.ensure()?;
        ensure_private_dir(&home.rooms_dir())?;
        ensure_private_dir(&dir)?;
        ensure_private_dir(&dir.join("cursors"))?;
        ensure_private_dir(&dir.join("exports"))?;
        let lock = RoomLock::acquire(&dir, &lock_info(opts))?;
        reserve::ensure(&dir);
        let now = now_ms();
        let token =
            mint_token().map_err(|e| StoreError::io(&dir, std::io::Error::other(e.to_string())))?;
        let meta = RoomMeta {
            version: ROOM_FILE_VERSION,
            room: new.room.clone(),
            status: RoomStatus::Open,
            created_at: Some(format_ms(now)),
            closed_at: None,
            closed_reason: None,
            expires_at: new.ttl.map(|d| format_ms(now + d.as_millis() as i64)),
            attendance_policy: new.policy,
            brief_version: 1,
            brief_updated_at: Some(format_ms(now)),
            brief_updated_by: Some(new.host_alias.clone()),
            url: Some(new.url.clone()),
            host: Some(new.host_alias.clone()),
        };
        let host = ParticipantRecord {
            alias: new.host_alias.clone(),
            token_hash: TokenHash::of(&token).to_hex(),
            kind: Kind::Human,
            location: Location::Local,
            install: Install::Host,
            is_host: true,
            display_name: new.host_display_name.clone(),
            created_at: Some(format_ms(now)),
            joined_at: None,
            last_seen_ms: None,
            attention: Attention::Manual,
            removed: false,
            read_through_id: 0,
            invited_by: None,
            reach: Default::default(),
        };
        write_private(&dir.join("brief.md"), new.brief.as_bytes())?;
        write_json(
            &dir.join("participants.json"),
            &ParticipantsFileOut {
                version: ROOM_FILE_VERSION,
                participants: std::slice::from_ref(&host),
            },
        )?;
        // room.json last: its presence is what makes the room exist.
        write_json(&dir.join("room.json"), &meta)?;
        drop(lock);
        let mut room = Room::open(home, &new.room, opts)?;
        room.system(format!("Room opened by {}.", new.host_alias))
            .map_err(|e| StoreError::io(&dir, std::io::Error::other(e.message)))?;
        Ok((room, token))
    }

    /// Opens an existing room, taking its lock and recovering its log.
    pub fn open(home: &Home, room: &str, opts: &RoomOptions) -> Result<Room, StoreError> {
        let dir = home.room_dir(room);
        if !home.room_exists(room) {
            return Err(StoreError::NoRoom(room.to_string()));
        }
        let lock = RoomLock::acquire(&dir, &lock_info(opts))?;
        let meta_path = dir.join("room.json");
        let mut meta: RoomMeta =
            read_json(&meta_path)?.ok_or_else(|| StoreError::NoRoom(room.to_string()))?;
        if meta.room.is_empty() {
            meta.room = room.to_string();
        }
        let parts_path = dir.join("participants.json");
        let participants = read_json::<ParticipantsFile>(&parts_path)?
            .ok_or_else(|| {
                StoreError::corrupt(&parts_path, "missing: the room has no participants file")
            })?
            .into_records();
        let mut by_alias = HashMap::new();
        let mut by_hash = HashMap::new();
        for (i, p) in participants.iter().enumerate() {
            let hash = TokenHash::from_hex(&p.token_hash).ok_or_else(|| {
                StoreError::corrupt(
                    &parts_path,
                    format!("participant {:?} has a bad token_hash", p.alias),
                )
            })?;
            if by_alias.insert(p.alias.clone(), i).is_some() {
                return Err(StoreError::corrupt(
                    &parts_path,
                    format!("alias {:?} appears twice", p.alias),
                ));
            }
            by_hash.insert(hash, i);
        }
        if meta.host.is_none() {
            meta.host = participants
                .iter()
                .find(|p| p.is_host)
                .map(|p| p.alias.clone());
        }
        let brief = match std::fs::read_to_string(dir.join("brief.md")) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(StoreError::io(&dir.join("brief.md"), e)),
        };
        ensure_private_dir(&dir.join("cursors"))?;
        ensure_private_dir(&dir.join("exports"))?;
        let (mut log, recovery) = MessageLog::open(&dir.join("messages.jsonl"), opts.fsync)?;
        let topic_index = TopicIndex::load(&mut log)?;
        let claim_index = ClaimIndex::load(&mut log)?;
        let mut r = Room {
            dir,
            meta,
            participants,
            by_alias,
            by_hash,
            brief,
            log,
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
            guards: HashMap::new(),
            lock,
            limits: opts.limits.clone(),
            participants_dirty: false,
            recovery,
            last_ts_ms: 0,
            budget: WriteBudget::default(),
            presence_rows: HashMap::new(),
            topic_index,
            claim_index,
            search: Arc::default(),
        };
        r.last_ts_ms = r
            .log
            .recent()
            .next_back()
            .and_then(|m| parse_ms(&m.msg.ts))
            .unwrap_or(0);
        // Oldest first, so the window's eviction order matches the log's.
        let recent = r
            .log
            .recent_client_keys(IDEMPOTENCY_SCAN, IDEMPOTENCY_WINDOW)?;
        for (from, cmid, id) in recent.into_iter().rev() {
            r.remember_idempotency(from, cmid, id);
        }
        Ok(r)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn id(&self) -> &str {
        &self.meta.room
    }

    pub fn is_open(&self) -> bool {
        self.meta.status == RoomStatus::Open
    }

    /// Every topic by id (exports read it a page at a time).
    pub(super) fn topic_index(&self) -> &TopicIndex {
        &self.topic_index
    }

    pub fn brief(&self) -> &str {
        &self.brief
    }

    pub fn host_alias(&self) -> &str {
        self.meta.host.as_deref().unwrap_or("host")
    }

    pub fn url(&self) -> Option<&str> {
        self.meta.url.as_deref()
    }

    /// Records the lock holder's listening address.
    pub fn set_lock_info(&mut self, info: &LockInfo) -> Result<(), StoreError> {
        self.lock.update(info)
    }

    pub fn participants(&self) -> &[ParticipantRecord] {
        &self.participants
    }

    pub fn participant(&self, idx: usize) -> &ParticipantRecord {
        &self.participants[idx]
    }

    pub fn find(&self, alias: &str) -> Option<usize> {
        self.by_alias.get(alias).copied()
    }

    /// The participant a raw token belongs to (removed ones included).
    pub fn authenticate(&self, token: &str) -> Option<usize> {
        let hash = TokenHash::of(token);
        let idx = *self.by_hash.get(&hash)?;
        let stored = TokenHash::from_hex(&self.participants[idx].token_hash)?;
        stored.matches(&hash).then_some(idx)
    }

    fn is_current(&self, alias: &str) -> bool {
        self.find(alias)
            .is_some_and(|i| !self.participants[i].removed)
    }

    #[allow(clippy::too_many_arguments)] // one per message field the caller decides
    fn append(
        &mut self,
        from: &str,
        kind: MessageType,
        text: String,
        mentions: Vec<String>,
        reply_to: Option<u64>,
        client_msg_id: Option<String>,
        topic: TopicFields,
        claim: ClaimFields,
    ) -> Result<Arc<StoredMessage>, ApiError> {
        // A clock stepped back must not make the log's times run backwards.
        let ts_ms = now_ms().max(self.last_ts_ms);
        let msg = Message {
            id: self.log.last_id() + 1,
            room: self.meta.room.clone(),
            ts: format_ms(ts_ms),
            from: from.to_string(),
            kind,
            text,
            mentions,
            reply_to,
            client_msg_id,
            topic: topic.topic,
            topic_id: topic.topic_id,
            topic_update: topic.topic_update,
            claim: claim.claim,
            claim_id: claim.claim_id,
            claim_update: claim.claim_update,
        };
        let stored = self.log.append(msg).map_err(ApiError::from)?;
        self.last_ts_ms = ts_ms;
        self.topic_index.apply(&stored.msg);
        self.claim_index.apply(&stored.msg);
        Ok(stored)
    }

    /// Appends a `system` message. System messages are not held to the log cap, so a
    /// full room can still be closed and still says so.
    pub fn system(&mut self, text: String) -> Result<Arc<StoredMessage>, ApiError> {
        let mentions = Vec::new();
        let topic = TopicFields::default();
        self.append(
            "system",
            MessageType::System,
            text,
            mentions,
            None,
            None,
            topic,
            ClaimFields::default(),
        )
    }

    fn remember_idempotency(&mut self, from: String, cmid: String, id: u64) {
        let key = (from, cmid);
        if self.idempotency.insert(key.clone(), id).is_none() {
            self.idempotency_order.push_back(key);
            if self.idempotency_order.len() > IDEMPOTENCY_WINDOW
                && let Some(old) = self.idempotency_order.pop_front()
            {
                self.idempotency.remove(&old);
            }
        }
    }

    fn require_active(&self, who: usize) -> Result<(), ApiError> {
        if self.participants[who].removed {
            return Err(ApiError::removed());
        }
        Ok(())
    }

    fn require_host(&self, who: usize, what: &str) -> Result<(), ApiError> {
        self.require_active(who)?;
        if !self.participants[who].is_host {
            return Err(ApiError::host_required(what));
        }
        Ok(())
    }

    fn require_open(&self) -> Result<(), ApiError> {
        if !self.is_open() {
            return Err(ApiError::room_closed());
        }
        Ok(())
    }

    /// Posts a participant's message with every guard of SPEC §4. Returns the stored
    /// message and whether it is an idempotent repeat of an earlier post.
    pub fn post(
        &mut self,
        who: usize,
        input: MessageInput,
    ) -> Result<(Arc<StoredMessage>, bool), ApiError> {
        self.require_active(who)?;
        self.require_open()?;
        let alias = self.participants[who].alias.clone();
        if let Some(cmid) = &input.client_msg_id
            && let Some(&id) = self.idempotency.get(&(alias.clone(), cmid.clone()))
            && let Ok(Some(original)) = self.log.get(id)
        {
            return Ok((original, true));
        }
        if let Some(r) = input.reply_to
            && !self.log.contains(r)
        {
            return Err(ApiError::bad_request(
                "invalid_reply_to",
                format!("there is no message {r} to reply to"),
            ));
        }
        self.check_comment(&input)?;
        for to in &input.to {
            if !self.is_current(to) {
                return Err(ApiError::bad_request(
                    "unknown_participant",
                    format!("{to:?} in `to` is not a participant of this room"),
                ));
            }
        }
        let now = now_ms();
        let tick = Instant::now();
        let kind = self.participants[who].kind;
        let limits = &self.limits;
        let guard = self.guards.entry(who).or_default();
        budget::expire(&mut guard.recent_posts, tick);
        if guard.recent_posts.len() >= limits.posts_per_minute as usize {
            return Err(budget::rate_limited(
                format!(
                    "more than {} posts in a minute; slow down and try again shortly",
                    limits.posts_per_minute
                ),
                budget::retry_after(&guard.recent_posts, tick),
            ));
        }
        if kind == Kind::Agent && guard.consecutive_agent_posts >= limits.loop_guard {
            return Err(ApiError::new(
                429,
                "loop_guard",
                format!(
                    "{} posts in a row with no human post in between; wait for a human to answer",
                    limits.loop_guard
                ),
            ));
        }
        self.require_log_room()?;
        // A topic update is text the server writes around the user's title, note and
        // answer: it mentions only whom it is addressed to, never what those words say.
        let mut mentions = match input.kind {
            MessageType::TopicUpdate => Vec::new(),
            _ => self.mentions_of(who, &input.text),
        };
        for to in input.to {
            if !mentions.contains(&to) {
                mentions.push(to);
            }
        }
        let stored = self.append(
            &alias,
            input.kind,
            input.text,
            mentions,
            input.reply_to,
            input.client_msg_id.clone(),
            input.topic,
            ClaimFields::default(),
        )?;
        let guard = self.guards.entry(who).or_default();
        guard.recent_posts.push_back(tick);
        if kind == Kind::Human {
            for g in self.guards.values_mut() {
                g.consecutive_agent_posts = 0;
            }
        } else {
            guard.consecutive_agent_posts += 1;
        }
        if let Some(cmid) = input.client_msg_id {
            self.remember_idempotency(alias, cmid, stored.msg.id);
        }
        self.touch(who, now);
        Ok((stored, false))
    }

    /// Counts one write of `kind` by `who` against the write budget (429 when spent).
    pub fn charge(&mut self, who: usize, kind: WriteKind) -> Result<(), ApiError> {
        self.budget.charge(who, kind, self.limits.writes_per_minute)
    }

    fn log_full(&self) -> bool {
        self.log.len() as u64 >= self.limits.log_cap
    }

    /// 507 when the log holds its cap: only closing and removal still append then.
    fn require_log_room(&self) -> Result<(), ApiError> {
        if self.log_full() {
            return Err(ApiError::storage(format!(
                "the room's log holds its cap of {} messages; the host can export it and open a new room",
                self.limits.log_cap
            )));
        }
        Ok(())
    }

    /// A "joined"/"left" row for `who`, unless it would repeat presence noise (see
    /// `presence_rows`), the room is closed or its log is full (presence still changes;
    /// only the row is left out).
    fn presence_row(
        &mut self,
        who: usize,
        presence: Presence,
    ) -> Result<Option<Arc<StoredMessage>>, ApiError> {
        let now = Instant::now();
        let last = self.presence_rows.get(&who).copied();
        let noise = match (presence, last) {
            (Presence::Joined, Some((Presence::Left, at))) => {
                now.duration_since(at) < Duration::from_secs(60)
            }
            (Presence::Left, Some((Presence::Left, _))) => true,
            _ => false,
        };
        if noise || !self.is_open() || self.log_full() {
            return Ok(None);
        }
        let alias = &self.participants[who].alias;
        let text = match presence {
            Presence::Joined => format!("{alias} joined."),
            Presence::Left => format!("{alias} left."),
        };
        let row = self.system(text)?;
        self.presence_rows.insert(who, (presence, now));
        Ok(Some(row))
    }

    /// Records a sign of life.
    pub fn touch(&mut self, who: usize, now: i64) {
        self.participants[who].last_seen_ms = Some(now);
        self.participants_dirty = true;
    }

    /// Records that messages through `id` were delivered to `who`. A receipt never runs
    /// past the log: `since_id=u64::MAX` must not mark the future as read.
    pub fn mark_delivered(&mut self, who: usize, id: u64) {
        let id = id.min(self.log.last_id());
        let p = &mut self.participants[who];
        if id > p.read_through_id {
            p.read_through_id = id;
            self.participants_dirty = true;
        }
    }

    pub fn set_attention(&mut self, who: usize, attention: Attention) {
        if self.participants[who].attention != attention {
            self.participants[who].attention = attention;
            self.participants_dirty = true;
        }
    }

    /// `POST /join`: attending, and a `system` message unless already attending.
    pub fn join(&mut self, who: usize) -> Result<Option<Arc<StoredMessage>>, ApiError> {
        self.require_active(who)?;
        self.charge(who, WriteKind::Join)?;
        let now = now_ms();
        self.touch(who, now);
        let p = &mut self.participants[who];
        let was = p.attention;
        let first = p.joined_at.is_none();
        if first {
            p.joined_at = Some(format_ms(now));
        }
        p.attention = Attention::Attending;
        self.save_participants().map_err(ApiError::from)?;
        if first || was != Attention::Attending {
            return self.presence_row(who, Presence::Joined);
        }
        Ok(None)
    }

    /// `POST /leave`: away, with a `system` message.
    pub fn leave(&mut self, who: usize) -> Result<Option<Arc<StoredMessage>>, ApiError> {
        self.require_active(who)?;
        self.charge(who, WriteKind::Leave)?;
        self.touch(who, now_ms());
        let was = self.participants[who].attention;
        self.participants[who].attention = Attention::Away;
        self.save_participants().map_err(ApiError::from)?;
        let row = if was != Attention::Away {
            self.presence_row(who, Presence::Left)?
        } else {
            None
        };
        let ended = self.end_claims_of(who, "left")?;
        Ok(row.or(ended))
    }

    /// `POST /brief`: a new version, written before it is announced.
    pub fn set_brief(&mut self, who: usize, body: &str) -> Result<Arc<StoredMessage>, ApiError> {
        self.require_host(who, "set the brief")?;
        self.require_open()?;
        self.require_log_room()?;
        self.charge(who, WriteKind::Brief)?;
        let chars = body.chars().count();
        if chars > self.limits.brief_chars {
            return Err(ApiError::too_large(
                "brief_too_large",
                format!(
                    "the brief is {chars} characters; the limit is {}",
                    self.limits.brief_chars
                ),
            ));
        }
        write_private(&self.dir.join("brief.md"), body.as_bytes()).map_err(ApiError::from)?;
        self.brief = body.to_string();
        let by = self.participants[who].alias.clone();
        self.meta.brief_version += 1;
        self.meta.brief_updated_at = Some(format_ms(now_ms()));
        self.meta.brief_updated_by = Some(by.clone());
        self.save_meta().map_err(ApiError::from)?;
        self.system(format!(
            "{by} updated the Room Brief to version {}.",
            self.meta.brief_version
        ))
    }

    /// `POST /attendance`.
    pub fn set_policy(
        &mut self,
        who: usize,
        policy: AttendancePolicy,
    ) -> Result<Option<Arc<StoredMessage>>, ApiError> {
        self.require_host(who, "set the attendance policy")?;
        self.require_open()?;
        if self.meta.attendance_policy == policy {
            return Ok(None);
        }
        self.require_log_room()?;
        self.charge(who, WriteKind::Policy)?;
        self.meta.attendance_policy = policy;
        self.save_meta().map_err(ApiError::from)?;
        let by = self.participants[who].alias.clone();
        self.system(format!("{by} set the attendance policy to {policy}."))
            .map(Some)
    }

    /// Adds a participant; returns their raw token (shown once, never stored).
    pub fn invite(
        &mut self,
        who: usize,
        alias: &str,
        kind: Kind,
        location: Location,
    ) -> Result<String, ApiError> {
        self.require_host(who, "invite")?;
        self.require_open()?;
        validate_alias(alias).map_err(|e| ApiError::bad_request("invalid_alias", e.to_string()))?;
        if self.by_alias.contains_key(alias) {
            return Err(ApiError::new(
                409,
                "alias_taken",
                format!("{alias:?} is already a participant of this room"),
            ));
        }
        let token = mint_token()
            .map_err(|e| ApiError::new(500, "internal", format!("no randomness: {e}")))?;
        let hash = TokenHash::of(&token);
        self.participants.push(ParticipantRecord {
            alias: alias.to_string(),
            token_hash: hash.to_hex(),
            kind,
            location,
            install: Install::Lite,
            is_host: false,
            display_name: None,
            created_at: Some(format_ms(now_ms())),
            joined_at: None,
            last_seen_ms: None,
            attention: Attention::Manual,
            removed: false,
            read_through_id: 0,
            invited_by: Some(self.participants[who].alias.clone()),
            reach: Default::default(),
        });
        let idx = self.participants.len() - 1;
        self.by_alias.insert(alias.to_string(), idx);
        self.by_hash.insert(hash, idx);
        if let Err(e) = self.save_participants() {
            self.participants.pop();
            self.by_alias.remove(alias);
            self.by_hash.remove(&hash);
            return Err(e.into());
        }
        Ok(token)
    }

    /// Removes a participant: their token stops working for writes at once.
    pub fn remove(&mut self, who: usize, alias: &str) -> Result<Arc<StoredMessage>, ApiError> {
        self.require_host(who, "remove participants")?;
        let idx = self
            .find(alias)
            .ok_or_else(|| ApiError::not_found(format!("no participant {alias:?} in this room")))?;
        if self.participants[idx].is_host {
            return Err(ApiError::new(
                409,
                "cannot_remove_host",
                "the host cannot be removed; close the room instead",
            ));
        }
        if self.participants[idx].removed {
            return Err(ApiError::new(
                409,
                "already_removed",
                format!("{alias:?} was already removed"),
            ));
        }
        self.participants[idx].removed = true;
        self.participants[idx].attention = Attention::Away;
        self.save_participants().map_err(ApiError::from)?;
        let by = self.participants[who].alias.clone();
        let row = self.system(format!("{alias} was removed by {by}."))?;
        self.end_claims_of(idx, "was removed")?;
        Ok(row)
    }

    /// Sets a participant's display name (unique per room, case-insensitively).
    pub fn set_display_name(&mut self, who: usize, name: &str) -> Result<String, ApiError> {
        self.require_active(who)?;
        self.charge(who, WriteKind::Profile)?;
        let name = validate_display_name(name)
            .map_err(|e| ApiError::bad_request("invalid_display_name", e.to_string()))?;
        let skeleton = name_skeleton(&name);
        let taken = self.participants.iter().enumerate().any(|(i, p)| {
            i != who
                && (p
                    .display_name
                    .as_deref()
                    .is_some_and(|d| name_skeleton(d) == skeleton)
                    || name_skeleton(&p.alias) == skeleton)
        });
        if taken {
            return Err(ApiError::new(
                409,
                "display_name_taken",
                format!("{name:?} is already used in this room; pick another"),
            ));
        }
        self.participants[who].display_name = Some(name.clone());
        self.save_participants().map_err(ApiError::from)?;
        Ok(name)
    }

    /// The host `who` closes the room ("closed by <alias>").
    pub fn close_by(&mut self, who: usize) -> Result<Closed, ApiError> {
        self.require_host(who, "close the room")?;
        let reason = format!("closed by {}", self.participants[who].alias);
        self.close(&reason)
    }

    /// Sets the URL participants use (the public one when tunnelled).
    pub fn set_url(&mut self, url: &str) -> Result<(), StoreError> {
        if self.meta.url.as_deref() != Some(url) {
            self.meta.url = Some(url.to_string());
            self.save_meta()?;
        }
        Ok(())
    }

    pub fn save_meta(&self) -> Result<(), StoreError> {
        write_json(&self.dir.join("room.json"), &self.meta)
    }

    pub fn save_participants(&mut self) -> Result<(), StoreError> {
        write_json(
            &self.dir.join("participants.json"),
            &ParticipantsFileOut {
                version: ROOM_FILE_VERSION,
                participants: &self.participants,
            },
        )?;
        self.participants_dirty = false;
        Ok(())
    }

    /// Writes last-seen times and read receipts if they changed.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.participants_dirty {
            self.save_participants()?;
        }
        Ok(())
    }
}

fn lock_info(opts: &RoomOptions) -> LockInfo {
    LockInfo {
        pid: std::process::id(),
        addr: opts.addr.clone(),
        purpose: opts.purpose.clone(),
    }
}
