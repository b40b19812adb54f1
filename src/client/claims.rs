//! The endpoints of SPEC §13 (claims), typed. A conflict is an expected answer, not a
//! failure to report and forget: its body names the claims in the way, so `claim`
//! returns it as an outcome the caller can show.

use super::{Client, ClientError};
use crate::protocol::claim::{ClaimAnswer, ClaimsAnswer, ConflictAnswer, NewClaimBody, RenewBody};

/// How `POST /claims` ended.
#[derive(Debug, Clone)]
pub enum ClaimOutcome {
    Claimed(Box<ClaimAnswer>),
    /// 409 `claim_conflict`: nothing was stored.
    Conflict(ConflictAnswer),
}

impl Client {
    pub fn claim(&self, body: &NewClaimBody) -> Result<ClaimOutcome, ClientError> {
        let (status, ctype, text) = self.send_post("/claims", body)?;
        if status == 409
            && let Ok(c) = serde_json::from_str::<ConflictAnswer>(&text)
            && c.error == "claim_conflict"
        {
            return Ok(ClaimOutcome::Conflict(c));
        }
        self.decode(status, &ctype, &text)
            .map(|a| ClaimOutcome::Claimed(Box::new(a)))
    }

    pub fn renew_claim(&self, id: u64, body: &RenewBody) -> Result<ClaimAnswer, ClientError> {
        self.post(&format!("/claims/{id}/renew"), body)
    }

    pub fn release_claim(&self, id: u64) -> Result<ClaimAnswer, ClientError> {
        self.post(&format!("/claims/{id}/release"), &serde_json::json!({}))
    }

    /// The live claims; those overlapping `path` when given.
    pub fn claims(&self, path: Option<&str>) -> Result<ClaimsAnswer, ClientError> {
        match path {
            None => self.get("/claims"),
            Some(p) => {
                let q = form_urlencoded::Serializer::new(String::new())
                    .append_pair("path", p)
                    .finish();
                self.get(&format!("/claims?{q}"))
            }
        }
    }
}
