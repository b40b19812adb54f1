//! Claims (SPEC §13): the index of live claims, rebuilt at start-up from the lines the
//! log scan saw mentioning `"claim` and kept current on every append (the log stays the
//! one source of truth, as for topics), and the claim mutations. Every change is a
//! message: a `claim` when one is made, a `claim_update` when it is renewed, released,
//! expires, or ends because its holder left or was removed. Closing the room ends every
//! claim at once; its close row records that. Claim writes are under the write budget
//! but not the loop guard: an agent saying where it works is not chatter.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Room, WriteKind};
use crate::protocol::bounds::fill_page;
use crate::protocol::claim::{
    ClaimAction, ClaimConflict, ClaimFields, ClaimMeta, ClaimUpdate, ClaimView, NewClaimBody,
    RenewBody, collides, globs_of,
};
use crate::protocol::glob::{Glob, OVERLAP_BUDGET};
use crate::protocol::timefmt::{format_ms, now_ms, parse_ms};
use crate::protocol::topic::TopicFields;
use crate::protocol::{ApiError, Message, MessageType};
use crate::store::StoreError;
use crate::store::log::{MessageLog, StoredMessage};

struct LiveClaim {
    view: ClaimView,
    globs: Vec<Glob>,
    expires_ms: i64,
}

impl LiveClaim {
    fn live_at(&self, now: i64) -> bool {
        self.expires_ms > now
    }
}

/// The claims not yet released or ended, by id (some may be past their TTL until the
/// next sweep writes their `expired` row; every read filters by the clock).
#[derive(Default)]
pub struct ClaimIndex {
    claims: BTreeMap<u64, LiveClaim>,
}

impl ClaimIndex {
    /// Parses only the lines start-up flagged, oldest first.
    pub fn load(log: &mut MessageLog) -> Result<ClaimIndex, StoreError> {
        let mut index = ClaimIndex::default();
        for id in log.take_claim_ids() {
            if let Some(m) = log.get(id)? {
                index.apply(&m.msg);
            }
        }
        Ok(index)
    }

    /// Folds one appended message into the index.
    pub fn apply(&mut self, m: &Message) {
        match (m.kind, &m.claim, m.claim_id, &m.claim_update) {
            (MessageType::Claim, Some(meta), _, _) => {
                let view = ClaimView {
                    id: m.id,
                    by: m.from.clone(),
                    paths: meta.paths.clone(),
                    exclusive: meta.exclusive,
                    note: meta.note.clone(),
                    expires_at: meta.expires_at.clone(),
                };
                let claim = LiveClaim {
                    globs: globs_of(&view.paths),
                    expires_ms: parse_ms(&view.expires_at).unwrap_or(0),
                    view,
                };
                self.claims.insert(m.id, claim);
            }
            (MessageType::ClaimUpdate, _, Some(id), Some(u)) => match u.action {
                ClaimAction::Renewed => {
                    if let (Some(c), Some(at)) = (self.claims.get_mut(&id), &u.expires_at) {
                        c.expires_ms = parse_ms(at).unwrap_or(c.expires_ms);
                        c.view.expires_at = at.clone();
                    }
                }
                _ => {
                    self.claims.remove(&id);
                }
            },
            _ => {}
        }
    }

    fn live(&self, now: i64) -> impl Iterator<Item = &LiveClaim> {
        self.claims.values().filter(move |c| c.live_at(now))
    }
}

fn not_found(id: u64) -> ApiError {
    ApiError::new(
        404,
        "claim_not_found",
        format!("there is no live claim {id} (it may have been released or expired)"),
    )
}

/// `a, b and 3 more`: the paths of a claim for a one-line message.
fn paths_text(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = paths
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        s.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    s
}

impl Room {
    /// `POST /claims`: a claim, unless it collides with another participant's live one
    /// (409 `claim_conflict` naming them, and nothing is stored).
    pub fn claim(
        &mut self,
        who: usize,
        body: &NewClaimBody,
    ) -> Result<(ClaimView, Arc<StoredMessage>), ApiError> {
        self.require_active(who)?;
        self.require_open()?;
        let req = body.validate()?;
        self.charge(who, WriteKind::Claim)?;
        let me = self.participants[who].alias.clone();
        let now = now_ms();
        let mut budget = OVERLAP_BUDGET;
        let conflicts: Vec<ClaimConflict> = self
            .claim_index
            .live(now)
            .filter(|c| {
                collides(
                    &me,
                    req.exclusive,
                    &req.globs,
                    &c.view,
                    &c.globs,
                    &mut budget,
                )
            })
            .map(|c| ClaimConflict {
                id: c.view.id,
                by: c.view.by.clone(),
                paths: c.view.paths.clone(),
                expires_at: c.view.expires_at.clone(),
            })
            .collect();
        if !conflicts.is_empty() {
            let names: Vec<String> = conflicts
                .iter()
                .map(|c| format!("{} holds {} (claim {})", c.by, paths_text(&c.paths), c.id))
                .collect();
            let mut e = ApiError::new(
                409,
                "claim_conflict",
                format!(
                    "{}; ask them in the room before editing these files",
                    names.join("; ")
                ),
            );
            e.conflicts = conflicts;
            return Err(e);
        }
        self.require_log_room()?;
        let paths: Vec<String> = req.globs.iter().map(|g| g.as_str().to_string()).collect();
        let expires_at = format_ms(now + req.ttl.as_millis() as i64);
        let mut text = format!(
            "{me} claimed {} ({}, until {expires_at}).",
            paths_text(&paths),
            if req.exclusive { "exclusive" } else { "shared" }
        );
        if let Some(n) = &req.note {
            text.push_str(&format!(" {n}"));
        }
        let meta = ClaimMeta {
            paths,
            exclusive: req.exclusive,
            note: req.note,
            expires_at,
        };
        let fields = ClaimFields {
            claim: Some(meta),
            ..ClaimFields::default()
        };
        let stored = self.claim_row(&me, MessageType::Claim, text, fields)?;
        self.touch(who, now);
        let view = self
            .claim_view(stored.msg.id)
            .ok_or_else(|| not_found(stored.msg.id))?;
        Ok((view, stored))
    }

    fn claim_view(&self, id: u64) -> Option<ClaimView> {
        self.claim_index.claims.get(&id).map(|c| c.view.clone())
    }

    /// The live claim `id` for its holder or the host to change (404, then 403).
    fn claim_for(&self, who: usize, id: u64, now: i64) -> Result<ClaimView, ApiError> {
        self.require_active(who)?;
        self.require_open()?;
        let c = self
            .claim_index
            .claims
            .get(&id)
            .filter(|c| c.live_at(now))
            .ok_or_else(|| not_found(id))?;
        let p = &self.participants[who];
        if p.alias != c.view.by && !p.is_host {
            return Err(ApiError::new(
                403,
                "forbidden",
                format!(
                    "claim {id} is {}'s; only they or the host may change it",
                    c.view.by
                ),
            ));
        }
        Ok(c.view.clone())
    }

    /// `POST /claims/{id}/renew`: a new TTL from now.
    pub fn renew_claim(
        &mut self,
        who: usize,
        id: u64,
        body: &RenewBody,
    ) -> Result<(ClaimView, Arc<StoredMessage>), ApiError> {
        let now = now_ms();
        let claim = self.claim_for(who, id, now)?;
        let ttl = body.duration()?;
        self.charge(who, WriteKind::Claim)?;
        self.require_log_room()?;
        let me = self.participants[who].alias.clone();
        let expires_at = format_ms(now + ttl.as_millis() as i64);
        let text = format!(
            "{me} renewed claim {id} on {} until {expires_at}.",
            paths_text(&claim.paths)
        );
        let stored = self.update_row(&me, id, ClaimAction::Renewed, Some(expires_at), text)?;
        self.touch(who, now);
        let view = self.claim_view(id).ok_or_else(|| not_found(id))?;
        Ok((view, stored))
    }

    /// `POST /claims/{id}/release`: the claim ends now. Answers the claim as it was.
    pub fn release_claim(
        &mut self,
        who: usize,
        id: u64,
    ) -> Result<(ClaimView, Arc<StoredMessage>), ApiError> {
        let now = now_ms();
        let claim = self.claim_for(who, id, now)?;
        self.charge(who, WriteKind::Claim)?;
        let me = self.participants[who].alias.clone();
        let text = format!("{me} released claim {id} on {}.", paths_text(&claim.paths));
        // Like a close, ending a claim is allowed on a full log: it only takes back.
        let stored = self.update_row(&me, id, ClaimAction::Released, None, text)?;
        self.touch(who, now);
        Ok((claim, stored))
    }

    /// The live claims, oldest first; those overlapping `filter` if given. A closed room
    /// has none.
    pub fn claims(&self, filter: Option<&Glob>, now: i64) -> Vec<ClaimView> {
        self.live_claims(filter, now, 0).cloned().collect()
    }

    /// `GET /claims`: [`Self::claims`] after claim id `after`, as many as one page holds;
    /// and whether more follow. Only the page's claims are copied.
    pub fn claims_page(
        &self,
        filter: Option<&Glob>,
        now: i64,
        after: u64,
    ) -> (Vec<ClaimView>, bool) {
        let (page, more) = fill_page(&mut 0, self.live_claims(filter, now, after));
        (page.into_iter().cloned().collect(), more)
    }

    fn live_claims<'a>(
        &'a self,
        filter: Option<&'a Glob>,
        now: i64,
        after: u64,
    ) -> impl Iterator<Item = &'a ClaimView> {
        let mut budget = OVERLAP_BUDGET;
        self.claim_index
            .live(now)
            .filter(move |c| {
                self.is_open()
                    && c.view.id > after
                    && filter
                        .is_none_or(|f| c.globs.iter().any(|g| g.overlaps_within(f, &mut budget)))
            })
            .map(|c| &c.view)
    }

    /// Appends a `claim` or `claim_update` row.
    fn claim_row(
        &mut self,
        from: &str,
        kind: MessageType,
        text: String,
        fields: ClaimFields,
    ) -> Result<Arc<StoredMessage>, ApiError> {
        let topic = TopicFields::default();
        self.append(from, kind, text, Vec::new(), None, None, topic, fields)
    }

    /// Appends the `claim_update` row of claim `id`.
    fn update_row(
        &mut self,
        from: &str,
        id: u64,
        action: ClaimAction,
        expires_at: Option<String>,
        text: String,
    ) -> Result<Arc<StoredMessage>, ApiError> {
        let fields = ClaimFields {
            claim_id: Some(id),
            claim_update: Some(ClaimUpdate { action, expires_at }),
            ..ClaimFields::default()
        };
        self.claim_row(from, MessageType::ClaimUpdate, text, fields)
    }

    /// Ends each claim of `due` (its id and the row's text) with a `system` row.
    fn end_each(
        &mut self,
        due: Vec<(u64, String)>,
        action: ClaimAction,
    ) -> Result<Vec<Arc<StoredMessage>>, ApiError> {
        let mut rows = Vec::with_capacity(due.len());
        for (id, text) in due {
            rows.push(self.update_row("system", id, action, None, text)?);
        }
        Ok(rows)
    }

    /// Ends every claim of participant `idx` (they left or were removed); the last row
    /// written, if any. Like `system` rows these are not held to the log cap.
    pub(super) fn end_claims_of(
        &mut self,
        idx: usize,
        why: &str,
    ) -> Result<Option<Arc<StoredMessage>>, ApiError> {
        if !self.is_open() {
            return Ok(None);
        }
        let alias = self.participants[idx].alias.clone();
        let due: Vec<(u64, String)> = self
            .claim_index
            .claims
            .values()
            .filter(|c| c.view.by == alias)
            .map(|c| {
                let id = c.view.id;
                let paths = paths_text(&c.view.paths);
                (id, format!("Claim {id} on {paths} ended: {alias} {why}."))
            })
            .collect();
        Ok(self.end_each(due, ClaimAction::Ended)?.pop())
    }

    /// Writes the `expired` row of every claim whose TTL has passed at `now` (the
    /// server's sweep; `now` is a parameter so tests need not wait an hour). Returns the
    /// rows written.
    pub fn expire_claims(&mut self, now: i64) -> Result<Vec<Arc<StoredMessage>>, ApiError> {
        if !self.is_open() {
            return Ok(Vec::new());
        }
        let due: Vec<(u64, String)> = self
            .claim_index
            .claims
            .values()
            .filter(|c| !c.live_at(now))
            .map(|c| {
                let (id, by) = (c.view.id, &c.view.by);
                let paths = paths_text(&c.view.paths);
                (id, format!("{by}'s claim {id} on {paths} expired."))
            })
            .collect();
        self.end_each(due, ClaimAction::Expired)
    }
}
