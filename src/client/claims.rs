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
    /// Read page by page.
    pub fn claims(&self, path: Option<&str>) -> Result<ClaimsAnswer, ClientError> {
        let page_path = |after: u64| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(p) = path {
                q.append_pair("path", p);
            }
            if after > 0 {
                q.append_pair("after_id", &after.to_string());
            }
            format!("/claims?{}", q.finish())
        };
        let mut all: ClaimsAnswer = self.get(&page_path(0))?;
        while let (true, Some(after)) = (all.has_more, all.next_after_id) {
            let asked = page_path(after);
            let next: ClaimsAnswer = self.get(&asked)?;
            self.check_progress(&asked, after, next.next_after_id)?;
            all.claims.extend(next.claims);
            all.has_more = next.has_more;
            all.next_after_id = next.next_after_id;
        }
        Ok(all)
    }
}
