//! The JSON records of `room.json` and `participants.json`. Every field but the key ones
//! has a default, so a file from an older version (or hand-edited) still loads; the
//! participants file also accepts the bare-array form of version 0.

use serde::{Deserialize, Serialize};

pub use crate::protocol::RoomStatus;
use crate::protocol::reach::Reach;
use crate::protocol::{AttendancePolicy, Attention, Install, Kind, Location};

fn one() -> u64 {
    1
}

pub const ROOM_FILE_VERSION: u32 = 1;

/// `room.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMeta {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub room: String,
    #[serde(default)]
    pub status: RoomStatus,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default = "default_policy")]
    pub attendance_policy: AttendancePolicy,
    #[serde(default = "one")]
    pub brief_version: u64,
    #[serde(default)]
    pub brief_updated_at: Option<String>,
    #[serde(default)]
    pub brief_updated_by: Option<String>,
    /// The URL participants use (public when tunnelled or proxied).
    #[serde(default)]
    pub url: Option<String>,
    /// The host's alias.
    #[serde(default)]
    pub host: Option<String>,
}

fn default_policy() -> AttendancePolicy {
    AttendancePolicy::ManualOk
}

/// One entry of `participants.json`. Holds the token's hash, never the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParticipantRecord {
    pub alias: String,
    pub token_hash: String,
    #[serde(default = "default_kind")]
    pub kind: Kind,
    #[serde(default = "default_location")]
    pub location: Location,
    #[serde(default = "default_install")]
    pub install: Install,
    #[serde(default)]
    pub is_host: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<String>,
    /// Milliseconds since the epoch of the last sign of life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
    #[serde(default = "default_attention")]
    pub attention: Attention,
    #[serde(default)]
    pub removed: bool,
    /// The highest message id delivered to this participant.
    #[serde(default)]
    pub read_through_id: u64,
    /// The alias of the host who invited them (absent for the host, and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<String>,
    /// SPEC §8 (absent from older files: manual, nothing requested).
    #[serde(flatten)]
    pub reach: ReachRecord,
}

/// A participant's reach: declared, requested by the host, and the wake runner's reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReachRecord {
    #[serde(default)]
    pub reach: Reach,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_every_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach_requested: Option<Reach>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_woken_at: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wake_failing: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_kind() -> Kind {
    Kind::Agent
}
fn default_location() -> Location {
    Location::Local
}
fn default_install() -> Install {
    Install::Lite
}
fn default_attention() -> Attention {
    Attention::Manual
}

/// `participants.json`, in either of its forms.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ParticipantsFile {
    Versioned {
        #[serde(default)]
        version: u32,
        participants: Vec<ParticipantRecord>,
    },
    Legacy(Vec<ParticipantRecord>),
}

impl ParticipantsFile {
    pub fn into_records(self) -> Vec<ParticipantRecord> {
        match self {
            ParticipantsFile::Versioned { participants, .. }
            | ParticipantsFile::Legacy(participants) => participants,
        }
    }
}

#[derive(Serialize)]
pub struct ParticipantsFileOut<'a> {
    pub version: u32,
    pub participants: &'a [ParticipantRecord],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_old_and_partial_files() {
        let meta: RoomMeta = serde_json::from_str(r#"{"room":"r"}"#).unwrap();
        assert_eq!(meta.brief_version, 1);
        assert_eq!(meta.status, RoomStatus::Open);
        let legacy: ParticipantsFile =
            serde_json::from_str(r#"[{"alias":"a","token_hash":"00"}]"#).unwrap();
        let recs = legacy.into_records();
        assert_eq!(recs[0].kind, Kind::Agent);
        assert_eq!(recs[0].reach.reach, Reach::Manual);
        assert_eq!(recs[0].reach.reach_requested, None);
        let v1: ParticipantsFile = serde_json::from_str(
            r#"{"version":1,"participants":[{"alias":"h","token_hash":"00","kind":"human","is_host":true}]}"#,
        )
        .unwrap();
        assert!(v1.into_records()[0].is_host);
    }
}
