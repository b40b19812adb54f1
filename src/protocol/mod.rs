//! The contract of SPEC §2 as plain data and pure functions: names, messages, mentions,
//! tokens, TTLs and the texts we hand to agents (cards, instructions). Nothing here does
//! I/O, so every rule of the contract can be unit-tested in isolation and shared by the
//! server, the store and the CLI without any of them depending on each other.

pub mod approval;
pub mod bounds;
pub mod card;
pub mod claim;
pub mod error;
pub mod export;
pub mod glob;
pub mod mentions;
pub mod message;
pub mod names;
pub mod participant;
pub mod reach;
pub mod timefmt;
pub mod token;
pub mod topic;
pub mod ttl;
pub mod url;
pub mod wire;

pub use error::ApiError;
pub use message::{Message, MessageInput, MessageType};
pub use names::{NameError, validate_alias, validate_display_name, validate_room_id};
pub use participant::{
    AttendancePolicy, AttendanceState, Attention, Install, Kind, Location, ParticipantStatus,
    RoomStatus,
};

/// Limits of SPEC §4 "Guards". Defaults; the server takes them as configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: usize,
    pub text_chars: usize,
    pub handoff_chars: usize,
    pub brief_chars: usize,
    pub posts_per_minute: u32,
    /// Per participant and write endpoint other than posts (join, leave, profile, …).
    pub writes_per_minute: u32,
    pub loop_guard: u32,
    pub log_cap: u64,
    pub stale_after_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 256 * 1024,
            text_chars: 24_000,
            handoff_chars: 64_000,
            brief_chars: 16_000,
            posts_per_minute: 120,
            writes_per_minute: 30,
            loop_guard: 30,
            log_cap: 50_000,
            stale_after_ms: 90_000,
        }
    }
}

/// How long a `/wait` is held before it answers as a heartbeat.
pub const WAIT_HOLD_MS: u64 = 25_000;
/// The default port of `room serve`.
pub const DEFAULT_PORT: u16 = 8787;
