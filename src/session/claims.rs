//! Claims from the participant side, shared by the CLI and the MCP adapter: making one
//! (a conflict is an outcome to show, with who holds what and the suggestion to ask
//! them), releasing all of one's own, and the pre-commit guard's check. The guard must
//! never be the reason a commit fails when the room is away: every way of not knowing
//! (no room joined, no server, an error) is an [`GuardCheck::Unknown`] the caller
//! allows with a warning.

use std::time::Duration;

use super::{CALL_TIMEOUT, Session, SessionError};
use crate::client::claims::ClaimOutcome;
use crate::protocol::claim::{ClaimConflict, ClaimView, GuardHit, NewClaimBody, guard_hits};
use crate::store::Home;

/// One line per conflict and the suggestion: what a person or a model reads on a 409.
pub fn conflict_text(conflicts: &[ClaimConflict]) -> String {
    let mut out = String::from("Not claimed: these claims are in the way:\n");
    for c in conflicts {
        out.push_str(&format!(
            "  claim {} by {}: {} (until {})\n",
            c.id,
            c.by,
            c.paths.join(", "),
            c.expires_at
        ));
    }
    let mut holders: Vec<&str> = conflicts.iter().map(|c| c.by.as_str()).collect();
    holders.sort_unstable();
    holders.dedup();
    let at = holders
        .iter()
        .map(|h| format!("@{h}"))
        .collect::<Vec<_>>()
        .join(" ");
    out.push_str(&format!(
        "Ask them in the room before editing, e.g.: agentgather send '{at} may I take over these files, or when will you be done?'"
    ));
    out
}

/// What the guard found.
#[derive(Debug, Clone)]
pub enum GuardCheck {
    /// The staged paths held exclusively by others (empty: nothing in the way).
    Checked { me: String, hits: Vec<GuardHit> },
    /// The claims could not be read; why, for the warning.
    Unknown(String),
}

impl Session {
    pub fn claim(&self, body: &NewClaimBody) -> Result<ClaimOutcome, SessionError> {
        Ok(self.client(CALL_TIMEOUT).claim(body)?)
    }

    /// Releases every live claim this participant holds; the claims released.
    pub fn release_all(&self) -> Result<Vec<ClaimView>, SessionError> {
        let client = self.client(CALL_TIMEOUT);
        let mine: Vec<ClaimView> = client
            .claims(None)?
            .claims
            .into_iter()
            .filter(|c| c.by == self.creds.alias)
            .collect();
        let mut released = Vec::with_capacity(mine.len());
        for c in mine {
            released.push(client.release_claim(c.id)?.claim);
        }
        Ok(released)
    }
}

/// The guard's check of `staged` (repo-relative paths) against this home's current room.
pub fn guard_check(home: &Home, staged: &[String], timeout: Duration) -> GuardCheck {
    let s = match Session::current(home) {
        Ok(s) => s,
        Err(e) => return GuardCheck::Unknown(e.to_string()),
    };
    match s.client(timeout).claims(None) {
        Ok(list) => GuardCheck::Checked {
            hits: guard_hits(&s.creds.alias, &list.claims, staged),
            me: s.creds.alias,
        },
        Err(e) => GuardCheck::Unknown(e.to_string()),
    }
}
