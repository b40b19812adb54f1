//! Exports are how a room outlives its server. Built from a live [`Room`] a page at a time
//! (through the server, whose every answer stays within the page bound), or whole from
//! the files read-only (no lock taken, nothing written), so exporting never mutates the
//! log. The shapes and the Markdown are `protocol::export`'s.

use std::path::Path;
use std::sync::Arc;

use super::fsutil::read_json;
use super::log::{PAGE_MESSAGES, StoredMessage};
use super::records::{ParticipantsFile, RoomMeta};
use super::room::TopicIndex;
use super::{Home, ParticipantRecord, Room, StoreError};
use crate::protocol::bounds::fill_page;
use crate::protocol::export::{
    EXPORT_VERSION, Export, ExportBrief, ExportCursor, ExportHeader, ExportPage, ExportParticipant,
    ExportTopic, MarkdownPart,
};
use crate::protocol::timefmt::{format_ms, now_ms};

fn header(
    meta: &RoomMeta,
    brief: String,
    parts: &[ParticipantRecord],
    message_count: u64,
) -> ExportHeader {
    ExportHeader {
        version: EXPORT_VERSION,
        exported_at: format_ms(now_ms()),
        room: meta.room.clone(),
        room_status: meta.status,
        created_at: meta.created_at.clone(),
        closed_at: meta.closed_at.clone(),
        attendance_policy: meta.attendance_policy.to_string(),
        message_count,
        brief: ExportBrief {
            body: brief,
            brief_version: meta.brief_version,
            brief_updated_at: meta.brief_updated_at.clone(),
            brief_updated_by: meta.brief_updated_by.clone(),
        },
        participants: parts
            .iter()
            .map(|p| ExportParticipant {
                alias: p.alias.clone(),
                display_name: p.display_name.clone(),
                kind: p.kind,
                is_host: p.is_host,
                removed: p.removed,
            })
            .collect(),
    }
}

/// One page of a live room's export from `from`: the header, then topics by id and then
/// messages by id, as many as fit [`crate::protocol::bounds::PAGE_BYTES`] (at least one
/// item), and where the next page starts.
pub fn page(room: &Room, from: ExportCursor) -> Result<ExportPage<Arc<StoredMessage>>, StoreError> {
    let header = header(
        &room.meta,
        room.brief().to_string(),
        room.participants(),
        room.log.len() as u64,
    );
    let mut held = 0usize;
    let mut topics = Vec::new();
    let mut next = None;
    let mut messages_from = None;
    match from {
        ExportCursor::Topics { after } => {
            let all = room
                .topic_index()
                .after(after)
                .map(|(view, thread)| ExportTopic {
                    topic: view.clone(),
                    thread: thread.to_vec(),
                });
            let more;
            (topics, more) = fill_page(&mut held, all);
            if more {
                let last = topics.last().map_or(after, |t| t.topic.id);
                next = Some(ExportCursor::Topics { after: last });
            } else {
                messages_from = Some(0);
            }
        }
        ExportCursor::Messages { after } => messages_from = Some(after),
    }
    let mut messages = Vec::new();
    if let Some(after) = messages_from {
        messages = room.log.read_since_into(after, PAGE_MESSAGES, held)?;
        let last = messages.last().map_or(after, |m| m.msg.id);
        if last < room.log.last_id() {
            next = Some(ExportCursor::Messages { after: last });
        }
    }
    Ok(ExportPage::new(header, topics, messages, next))
}

/// The Markdown of a page made from `from`: pages made one after another from the first
/// concatenate into [`Export::to_markdown`] of the whole room.
pub fn page_markdown(page: &ExportPage<Arc<StoredMessage>>, from: ExportCursor) -> String {
    let messages_start = match from {
        ExportCursor::Messages { after } => after == 0,
        ExportCursor::Topics { .. } => page.next_after_topic.is_none(),
    };
    MarkdownPart {
        header: &page.header,
        from,
        topics: &page.topics,
        messages_start,
        messages: page.messages.iter().map(|m| &m.msg),
    }
    .render()
}

/// The whole export from the files, read-only; works whether or not a server runs or
/// the room is closed (the host's own process, which may hold it all).
pub fn load_readonly(home: &Home, room: &str) -> Result<Export<Arc<StoredMessage>>, StoreError> {
    let dir = home.room_dir(room);
    let mut meta: RoomMeta =
        read_json(&dir.join("room.json"))?.ok_or_else(|| StoreError::NoRoom(room.to_string()))?;
    if meta.room.is_empty() {
        meta.room = room.to_string();
    }
    let parts = read_json::<ParticipantsFile>(&dir.join("participants.json"))?
        .map(ParticipantsFile::into_records)
        .unwrap_or_default();
    let brief = std::fs::read_to_string(dir.join("brief.md")).unwrap_or_default();
    let messages = read_messages(&dir.join("messages.jsonl"))?;
    Ok(Export {
        header: header(&meta, brief, &parts, messages.len() as u64),
        topics: TopicIndex::summarize(messages.iter().map(|m| &m.msg))
            .into_iter()
            .map(|(topic, thread)| ExportTopic { topic, thread })
            .collect(),
        messages,
    })
}

fn read_messages(path: &Path) -> Result<Vec<Arc<StoredMessage>>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut last = 0;
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(m) = StoredMessage::from_line(line)
            && m.msg.id > last
        {
            last = m.msg.id;
            out.push(Arc::new(m));
        }
    }
    Ok(out)
}
