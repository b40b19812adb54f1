//! The JSON answers and request bodies of SPEC §4 as types, shared by the server that
//! builds them and the client that reads them: one definition per shape, so a field the
//! server adds is a field the CLI and the MCP adapter see, and nobody picks a `Value`
//! apart by name. Answers that carry messages are generic over the message type: the
//! server serializes its stored lines as they are (`Arc<StoredMessage>`), clients decode
//! [`Message`]s.

use serde::{Deserialize, Serialize};

use super::card::{browser_url, card_command, invite_uri};
use super::message::{Message, MessageType};
use super::participant::{
    AttendancePolicy, AttendanceState, Attention, Install, Kind, Location, ParticipantStatus,
    RoomStatus,
};
use super::reach::Reach;

fn is_false(b: &bool) -> bool {
    !*b
}

/// `{ok: false, error, message}`: every failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub ok: bool,
    pub error: String,
    pub message: String,
    /// On a 409 `claim_conflict`: the claims in the way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<super::claim::ClaimConflict>,
}

/// `GET /messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesPage<M = Message> {
    pub ok: bool,
    pub room: String,
    pub room_status: RoomStatus,
    pub messages: Vec<M>,
    pub next_since_id: u64,
    #[serde(default)]
    pub has_more: bool,
}

/// `GET /messages?before_id=N`: the newest messages before N, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPage<M = Message> {
    pub ok: bool,
    pub room: String,
    pub room_status: RoomStatus,
    pub messages: Vec<M>,
    pub has_more_before: bool,
}

/// `GET /wait`: new messages, a heartbeat, a closed room or a removal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitAnswer<M = Message> {
    pub ok: bool,
    pub room: String,
    pub room_status: RoomStatus,
    pub participant: String,
    pub participant_status: ParticipantStatus,
    pub heartbeat: bool,
    pub messages: Vec<M>,
    pub mentioned: bool,
    /// SPEC §10: one of `messages` concerns the caller by the wake rule of §8.2 (a
    /// mention, a reply to their message, a comment on or answer to their topic).
    #[serde(default)]
    pub concerns_you: bool,
    pub next_since_id: u64,
    pub keep_waiting: bool,
    pub next_cmd: Option<String>,
    #[serde(default)]
    pub brief_version: u64,
    /// More messages follow this page: the next wait answers at once.
    #[serde(default)]
    pub has_more: bool,
}

impl<M> WaitAnswer<M> {
    pub fn removed(&self) -> bool {
        self.participant_status == ParticipantStatus::Removed
    }
}

/// The Room Brief with its version record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BriefView {
    pub body: String,
    pub brief_version: u64,
    pub brief_updated_at: Option<String>,
    pub brief_updated_by: Option<String>,
}

/// `GET /brief`, `POST /brief`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BriefAnswer {
    pub ok: bool,
    pub brief: BriefView,
}

/// One roster entry of `/status`: never a token or hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParticipantView {
    pub alias: String,
    pub display_name: Option<String>,
    pub kind: Kind,
    pub location: Location,
    pub install: Install,
    pub attention: Attention,
    pub is_host: bool,
    pub removed: bool,
    /// A `/wait` of theirs is held right now.
    pub waiting: bool,
    pub last_seen_at: Option<String>,
    pub last_seen_age_ms: Option<i64>,
    pub attendance_required: bool,
    pub attendance_state: AttendanceState,
    pub read_through_id: u64,
    /// SPEC §8: declared reach, the host's request, and what is observed.
    #[serde(flatten)]
    pub reach: ReachView,
}

/// The §8 fields of a roster entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReachView {
    #[serde(default)]
    pub reach: Reach,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_every_s: Option<u64>,
    #[serde(default)]
    pub reach_requested: Option<Reach>,
    /// Observed: a `/wait` of theirs is held, or a poller looked within twice its period.
    #[serde(default)]
    pub reachable_now: bool,
    #[serde(default)]
    pub last_woken_at: Option<String>,
    /// Consecutive failed wake turns (0 after a success).
    #[serde(default)]
    pub wake_failing: u32,
}

/// `GET /status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub ok: bool,
    pub room: String,
    pub me: String,
    pub is_host: bool,
    pub room_status: RoomStatus,
    pub url: String,
    pub attendance_policy: AttendancePolicy,
    pub brief_version: u64,
    pub brief_updated_at: Option<String>,
    pub brief_updated_by: Option<String>,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    pub expires_at: Option<String>,
    pub stale_after_ms: u64,
    pub last_id: u64,
    pub message_count: u64,
    pub waiting_count: u64,
    pub participants: Vec<ParticipantView>,
}

/// `GET /status?compact=1` (SPEC §10): the room's state and one line per current
/// participant; removed participants only in the full form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompactStatus {
    pub ok: bool,
    pub room: String,
    pub me: String,
    pub is_host: bool,
    pub room_status: RoomStatus,
    pub attendance_policy: AttendancePolicy,
    pub brief_version: u64,
    pub expires_at: Option<String>,
    pub last_id: u64,
    pub participants: Vec<CompactParticipant>,
}

/// One current participant in [`CompactStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompactParticipant {
    pub alias: String,
    pub kind: Kind,
    pub reach: Reach,
    pub reachable_now: bool,
    pub attention: Attention,
}

impl CompactStatus {
    /// The compact form of a full status.
    pub fn of(full: StatusAnswer) -> CompactStatus {
        CompactStatus {
            ok: full.ok,
            room: full.room,
            me: full.me,
            is_host: full.is_host,
            room_status: full.room_status,
            attendance_policy: full.attendance_policy,
            brief_version: full.brief_version,
            expires_at: full.expires_at,
            last_id: full.last_id,
            participants: full
                .participants
                .into_iter()
                .filter(|p| !p.removed)
                .map(|p| CompactParticipant {
                    alias: p.alias,
                    kind: p.kind,
                    reach: p.reach.reach,
                    reachable_now: p.reach.reachable_now,
                    attention: p.attention,
                })
                .collect(),
        }
    }
}

/// `POST /messages`, also what `send`/`reply`/`handoff --json` print.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostAnswer<M = Message> {
    pub ok: bool,
    pub message: M,
    #[serde(default, skip_serializing_if = "is_false")]
    pub idempotent: bool,
}

/// A `POST /messages` body as a client sends it (the server validates it as
/// [`MessageInput`](super::MessageInput)).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostBody {
    pub text: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<MessageType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `POST /brief`: the new brief.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BriefBody {
    pub body: String,
}

/// `POST /attendance`. The policy travels as text, so an unknown one is its own error
/// (`invalid_policy`) rather than a body that does not fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyBody {
    pub policy: String,
}

/// `POST /invite`. Kind, location and reach travel as text for the same reason: each
/// unknown value has its own error code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteBody {
    pub alias: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<String>,
}

/// `POST /remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveBody {
    pub alias: String,
}

/// `POST /public-url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicUrlBody {
    pub url: String,
}

/// `POST /join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinAnswer {
    pub ok: bool,
    pub room: String,
    pub participant: String,
    pub attention: Attention,
    pub room_status: RoomStatus,
    pub brief_version: u64,
    pub last_id: u64,
}

/// `POST /leave`. On a closed room it changes nothing and says so (`room_status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveAnswer {
    pub ok: bool,
    pub participant: String,
    pub attention: Attention,
    #[serde(default)]
    pub room_status: RoomStatus,
}

/// `GET/POST /attendance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyAnswer {
    pub ok: bool,
    pub policy: AttendancePolicy,
    pub description: String,
}

impl PolicyAnswer {
    pub fn of(policy: AttendancePolicy) -> PolicyAnswer {
        PolicyAnswer {
            ok: true,
            policy,
            description: policy.describe().to_string(),
        }
    }
}

/// `GET/POST /profile`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileAnswer {
    pub ok: bool,
    pub alias: String,
    pub display_name: Option<String>,
    pub kind: Kind,
    pub is_host: bool,
    #[serde(default)]
    pub reach: Reach,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_every_s: Option<u64>,
    /// Who invited this participant (an alias): the first visit names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<String>,
}

/// `POST /invite` and `room invite --json`: the new participant's token and the three
/// ways in, built from one place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteAnswer {
    pub ok: bool,
    pub room: String,
    pub alias: String,
    pub kind: Kind,
    pub token: String,
    pub url: String,
    pub card_command: String,
    pub browser_url: String,
    pub invite_uri: String,
    /// SPEC §8: the reach the host asked of this participant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach_requested: Option<Reach>,
}

impl InviteAnswer {
    pub fn new(room: &str, alias: &str, kind: Kind, token: &str, url: &str) -> InviteAnswer {
        InviteAnswer {
            ok: true,
            room: room.to_string(),
            alias: alias.to_string(),
            kind,
            token: token.to_string(),
            url: url.to_string(),
            card_command: card_command(url, alias, token),
            browser_url: browser_url(url, token),
            invite_uri: invite_uri(room, alias, url, token),
            reach_requested: None,
        }
    }
}

/// `POST /close`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseAnswer {
    pub ok: bool,
    pub room: String,
    pub room_status: RoomStatus,
    pub already_closed: bool,
    pub closed_at: Option<String>,
}

/// `POST /remove`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveAnswer {
    pub ok: bool,
    pub removed: String,
}

/// `POST /public-url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicUrlAnswer {
    pub ok: bool,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_body_sends_only_what_is_set() {
        let b = PostBody {
            text: "hi".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"text":"hi"}"#);
        let b = PostBody {
            text: "@a x".into(),
            kind: Some(MessageType::Handoff),
            to: Some("a".into()),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::to_value(&b).unwrap();
        assert_eq!(v["type"], "handoff");
        assert_eq!(v["to"], "a");
    }

    #[test]
    fn invite_links_come_from_one_place() {
        let i = InviteAnswer::new("r", "rev", Kind::Agent, "tgl_x", "http://127.0.0.1:1");
        assert!(i.card_command.contains("/card?participant=rev&token=tgl_x"));
        assert_eq!(i.browser_url, "http://127.0.0.1:1/#token=tgl_x");
        assert!(
            i.invite_uri
                .starts_with("agentgather://join?room=r&alias=rev")
        );
    }
}
