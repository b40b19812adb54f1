//! The four independent axes of a participant (SPEC §2). They stay separate types so no
//! code can collapse "remote human watching in a browser" into a single label.

use serde::{Deserialize, Serialize};

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted spellings, for error messages.
            pub fn choices() -> String {
                [$($text),+].join("|")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::parse(s).ok_or_else(|| format!("expected one of {}, got {s:?}", $name::choices()))
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// Who is behind the alias. `system` is never a participant kind: it is the server.
    Kind { Agent = "agent", Human = "human" }
);
str_enum!(Location { Local = "local", Remote = "remote" });
str_enum!(
    /// How the participant takes part: curl only (`lite`), the CLI (`core`), or the host.
    Install { Lite = "lite", Core = "core", Host = "host" }
);
str_enum!(
    /// Observed from behaviour (a held `/wait` means attending), never declared by the host.
    Attention {
        Manual = "manual",
        Attending = "attending",
        Standby = "standby",
        Away = "away",
        Managed = "managed",
    }
);
str_enum!(
    /// A contract shown in cards and the roster; the server never claims to wake anyone.
    AttendancePolicy {
        ManualOk = "manual-ok",
        AgentsForeground = "agents-foreground",
        AllForeground = "all-foreground",
        HostDirected = "host-directed",
    }
);

str_enum!(
    /// Whether a room still takes posts.
    RoomStatus { Open = "open", Closed = "closed" }
);

// str_enum! derives no Default, so it is written out.
#[allow(clippy::derivable_impls)]
impl Default for RoomStatus {
    fn default() -> Self {
        RoomStatus::Open
    }
}

str_enum!(
    /// Where a participant stands: taking part, gone (they left, or the room closed
    /// under them), or removed (their token no longer works for writes).
    ParticipantStatus { Active = "active", Left = "left", Removed = "removed" }
);

str_enum!(
    /// What the roster shows for a participant: their observed attention, or what is wrong
    /// with it (`stale`: attending but silent too long; `not_attending`: the policy asks
    /// for attendance and they are not; `removed`).
    AttendanceState {
        Manual = "manual",
        Attending = "attending",
        Standby = "standby",
        Away = "away",
        Managed = "managed",
        Stale = "stale",
        NotAttending = "not_attending",
        Removed = "removed",
    }
);

impl From<Attention> for AttendanceState {
    fn from(a: Attention) -> Self {
        match a {
            Attention::Manual => AttendanceState::Manual,
            Attention::Attending => AttendanceState::Attending,
            Attention::Standby => AttendanceState::Standby,
            Attention::Away => AttendanceState::Away,
            Attention::Managed => AttendanceState::Managed,
        }
    }
}

impl AttendancePolicy {
    /// Whether this policy asks a participant of `kind` to keep attending.
    pub fn requires(self, kind: Kind, is_host: bool) -> bool {
        if is_host {
            return false;
        }
        match self {
            AttendancePolicy::ManualOk => false,
            AttendancePolicy::AgentsForeground => kind == Kind::Agent,
            AttendancePolicy::AllForeground | AttendancePolicy::HostDirected => true,
        }
    }

    /// One line on what the policy asks of participants, for cards and the roster.
    pub fn describe(self) -> &'static str {
        match self {
            AttendancePolicy::ManualOk => {
                "manual-ok: attending is welcome but not required; check in when you can."
            }
            AttendancePolicy::AgentsForeground => {
                "agents-foreground: agents keep a /wait loop (or `agentgather attend`) running in the foreground until the room closes."
            }
            AttendancePolicy::AllForeground => {
                "all-foreground: every participant, agent or human, stays attending until the room closes."
            }
            AttendancePolicy::HostDirected => {
                "host-directed: stay attending and act when the host directs you; the host decides when you may stop."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text() {
        for p in AttendancePolicy::ALL {
            assert_eq!(AttendancePolicy::parse(p.as_str()), Some(*p));
        }
        assert_eq!("agent".parse::<Kind>(), Ok(Kind::Agent));
        assert!("system".parse::<Kind>().is_err());
        assert_eq!(
            serde_json::to_string(&AttendancePolicy::ManualOk).unwrap(),
            "\"manual-ok\""
        );
    }

    #[test]
    fn policy_requirements() {
        use AttendancePolicy::*;
        assert!(!ManualOk.requires(Kind::Agent, false));
        assert!(AgentsForeground.requires(Kind::Agent, false));
        assert!(!AgentsForeground.requires(Kind::Human, false));
        assert!(AllForeground.requires(Kind::Human, false));
        assert!(!AllForeground.requires(Kind::Human, true));
    }
}
