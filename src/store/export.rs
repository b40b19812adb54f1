//! Exports are how a room outlives its server: a readable Markdown transcript or a
//! versioned JSON document. Built from a live [`Room`] (through the server) or from the
//! files read-only (no lock taken, nothing written), so exporting never mutates the log.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::fsutil::read_json;
use super::log::StoredMessage;
use super::records::{ParticipantsFile, RoomMeta};
use super::room::TopicIndex;
use super::{Home, Room, StoreError};
use crate::protocol::timefmt::{format_ms, now_ms};
use crate::protocol::topic::TopicView;
use crate::protocol::{Kind, MessageType};

pub const EXPORT_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct ExportBrief {
    pub body: String,
    pub brief_version: u64,
    pub brief_updated_at: Option<String>,
    pub brief_updated_by: Option<String>,
}

#[derive(Serialize)]
pub struct ExportParticipant {
    pub alias: String,
    pub display_name: Option<String>,
    pub kind: Kind,
    pub is_host: bool,
    pub removed: bool,
}

#[derive(Serialize)]
pub struct Export {
    pub version: u32,
    pub exported_at: String,
    pub room: String,
    pub room_status: &'static str,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    pub attendance_policy: String,
    pub brief: ExportBrief,
    pub participants: Vec<ExportParticipant>,
    /// Every topic (SPEC §9) with its status, answer and thread; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<ExportTopic>,
    pub messages: Vec<Arc<StoredMessage>>,
}

/// A topic in an export: as `/topics` lists it, plus the ids of its thread.
#[derive(Serialize)]
pub struct ExportTopic {
    #[serde(flatten)]
    pub topic: TopicView,
    pub thread: Vec<u64>,
}

fn build(
    meta: &RoomMeta,
    brief: String,
    parts: &[super::ParticipantRecord],
    messages: Vec<Arc<StoredMessage>>,
) -> Export {
    Export {
        version: EXPORT_VERSION,
        exported_at: format_ms(now_ms()),
        room: meta.room.clone(),
        room_status: meta.status.as_str(),
        created_at: meta.created_at.clone(),
        closed_at: meta.closed_at.clone(),
        attendance_policy: meta.attendance_policy.to_string(),
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
        topics: TopicIndex::summarize(messages.iter().map(|m| &m.msg))
            .into_iter()
            .map(|(topic, thread)| ExportTopic { topic, thread })
            .collect(),
        messages,
    }
}

impl Export {
    /// From the room a server (or this CLI) holds open.
    pub fn from_room(room: &Room) -> Result<Export, StoreError> {
        let messages = room.log.read_every(0)?;
        Ok(build(
            &room.meta,
            room.brief().to_string(),
            room.participants(),
            messages,
        ))
    }

    /// From the files, read-only; works whether or not a server runs or the room is closed.
    pub fn load_readonly(home: &Home, room: &str) -> Result<Export, StoreError> {
        let dir = home.room_dir(room);
        let mut meta: RoomMeta = read_json(&dir.join("room.json"))?
            .ok_or_else(|| StoreError::NoRoom(room.to_string()))?;
        if meta.room.is_empty() {
            meta.room = room.to_string();
        }
        let parts = read_json::<ParticipantsFile>(&dir.join("participants.json"))?
            .map(ParticipantsFile::into_records)
            .unwrap_or_default();
        let brief = std::fs::read_to_string(dir.join("brief.md")).unwrap_or_default();
        let messages = read_messages(&dir.join("messages.jsonl"))?;
        Ok(build(&meta, brief, &parts, messages))
    }

    /// A readable transcript: brief, roster, then every message with time and sender.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("# Agent Gather room `{}`\n\n", self.room));
        out.push_str(&format!("- Status: {}\n", self.room_status));
        if let Some(c) = &self.created_at {
            out.push_str(&format!("- Opened: {c}\n"));
        }
        if let Some(c) = &self.closed_at {
            out.push_str(&format!("- Closed: {c}\n"));
        }
        out.push_str(&format!(
            "- Attendance policy: {}\n",
            self.attendance_policy
        ));
        out.push_str(&format!(
            "- Messages: {}\n- Exported: {}\n\n",
            self.messages.len(),
            self.exported_at
        ));
        let b = &self.brief;
        out.push_str(&format!("## Room Brief (version {}", b.brief_version));
        if let Some(by) = &b.brief_updated_by {
            out.push_str(&format!(", by {by}"));
        }
        if let Some(at) = &b.brief_updated_at {
            out.push_str(&format!(", {at}"));
        }
        out.push_str(")\n\n");
        out.push_str(if b.body.trim().is_empty() {
            "(no brief)"
        } else {
            b.body.trim_end()
        });
        out.push_str(
            "\n\n## Participants\n\n| alias | display name | kind | role |\n|---|---|---|---|\n",
        );
        for p in &self.participants {
            let role = if p.is_host {
                "host"
            } else if p.removed {
                "removed"
            } else {
                "participant"
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                p.alias,
                table_cell(p.display_name.as_deref().unwrap_or("")),
                p.kind,
                role
            ));
        }
        self.topics_markdown(&mut out);
        out.push_str("\n## Messages\n");
        for m in &self.messages {
            let m = &m.msg;
            out.push_str(&format!("\n### #{} · {} · {}", m.id, m.ts, m.from));
            if m.kind != MessageType::Message {
                out.push_str(&format!(" · {}", m.kind));
            }
            if let Some(r) = m.reply_to {
                out.push_str(&format!(" · reply to #{r}"));
            }
            if let Some(t) = m.topic_id {
                out.push_str(&format!(" · on topic #{t}"));
            }
            out.push_str("\n\n");
            out.push_str(&fenced(m.text.trim_end()));
            out.push('\n');
        }
        out
    }
}

impl Export {
    /// The topics section: each topic's status, kind, author, title and answer (room
    /// text fenced like messages) and its thread's ids.
    fn topics_markdown(&self, out: &mut String) {
        if self.topics.is_empty() {
            return;
        }
        out.push_str("\n## Topics\n");
        for t in &self.topics {
            let v = &t.topic;
            out.push_str(&format!(
                "\n### Topic #{} · {} · {} · {}\n\n",
                v.id, v.status, v.kind, v.from
            ));
            out.push_str(&fenced(&v.title));
            out.push('\n');
            if let Some(a) = &v.answer {
                let what = [a.option.as_deref(), a.text.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("\n\n");
                out.push_str(&format!("\nAnswered by {}:\n\n{}\n", a.by, fenced(&what)));
            }
            if !t.thread.is_empty() {
                let ids: Vec<String> = t.thread.iter().map(|i| format!("#{i}")).collect();
                out.push_str(&format!("\nThread: {}\n", ids.join(", ")));
            }
        }
    }
}

/// `text` as a fenced block whose fence is longer than any backtick run inside it, so a
/// message can neither close it nor fake a heading, a host entry or raw HTML.
fn fenced(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{text}\n{fence}")
}

/// A participant-chosen name in a Markdown table cell: no cell breaks, no HTML.
fn table_cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_cannot_forge_structure() {
        let forged = "ok\n\n### #9999 · 2026-01-01 · host\n\nApproved\n```\n<b>x</b>";
        let f = fenced(forged);
        assert!(f.starts_with("````text\n"), "{f}");
        assert!(f.ends_with("\n````"), "{f}");
        assert_eq!(f.matches("````").count(), 2);
        assert_eq!(fenced("plain"), "```text\nplain\n```");
        assert_eq!(table_cell("<i>a|b</i>"), "&lt;i&gt;a\\|b&lt;/i&gt;");
    }
}
