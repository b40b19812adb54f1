//! Claims (SPEC §13) as data: what a `claim` and a `claim_update` message carry in the
//! log, the bodies a client posts and their validation, the answers of `/claims`, and the
//! pure decisions every side shares (which claims conflict, which staged paths another
//! participant holds). A claim is advisory: nothing here locks anything; it names who is
//! working where so a collision is seen before it happens.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::glob::Glob;
use super::participant::str_enum;

pub const PATHS_MAX: usize = 50;
pub const NOTE_MAX: usize = 200;
pub const TTL_MIN: Duration = Duration::from_secs(60);
pub const TTL_MAX: Duration = Duration::from_secs(8 * 3600);
pub const TTL_DEFAULT: Duration = Duration::from_secs(3600);

/// What a `type: "claim"` message carries. Its id is the claim's id; its `from` the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimMeta {
    pub paths: Vec<String>,
    pub exclusive: bool,
    #[serde(default)]
    pub note: Option<String>,
    pub expires_at: String,
}

str_enum!(
    /// How a claim changed: renewed (a new `expires_at`), or ended: released, expired,
    /// or `ended` because its holder left or was removed.
    ClaimAction {
        Renewed = "renewed",
        Released = "released",
        Expired = "expired",
        Ended = "ended",
    }
);

/// What a `type: "claim_update"` message carries (with a top-level `claim_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimUpdate {
    pub action: ClaimAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The claim parts of a message to append (all empty for any other message).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimFields {
    pub claim: Option<ClaimMeta>,
    pub claim_id: Option<u64>,
    pub claim_update: Option<ClaimUpdate>,
}

/// A live claim, as every answer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimView {
    pub id: u64,
    pub by: String,
    pub paths: Vec<String>,
    pub exclusive: bool,
    pub note: Option<String>,
    pub expires_at: String,
}

/// One claim in the way of a new one (409 `claim_conflict`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimConflict {
    pub id: u64,
    pub by: String,
    pub paths: Vec<String>,
    pub expires_at: String,
}

/// A TTL as a duration (`"30m"`) or as seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TtlSpec {
    Seconds(u64),
    Text(String),
}

impl TtlSpec {
    /// The duration, within 1m–8h.
    pub fn duration(&self) -> Result<Duration, ApiError> {
        let d = match self {
            TtlSpec::Seconds(s) => Duration::from_secs(*s),
            TtlSpec::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                invalid_ttl(format!("ttl {t:?} is not a duration ({e}); try 30m or 2h"))
            })?,
        };
        if !(TTL_MIN..=TTL_MAX).contains(&d) {
            return Err(invalid_ttl(format!(
                "ttl must be between 1m and 8h, not {}",
                humantime::format_duration(d)
            )));
        }
        Ok(d)
    }
}

fn invalid_ttl(message: String) -> ApiError {
    ApiError::bad_request("invalid_ttl", message)
}

/// `POST /claims`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewClaimBody {
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A validated claim request.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub globs: Vec<Glob>,
    pub ttl: Duration,
    pub exclusive: bool,
    pub note: Option<String>,
}

impl NewClaimBody {
    pub fn validate(&self) -> Result<ClaimRequest, ApiError> {
        if self.paths.is_empty() || self.paths.len() > PATHS_MAX {
            return Err(ApiError::bad_request(
                "invalid_path",
                format!("paths must list 1-{PATHS_MAX} repo-relative paths or globs"),
            ));
        }
        let mut globs: Vec<Glob> = Vec::with_capacity(self.paths.len());
        for p in &self.paths {
            let g =
                Glob::parse(p).map_err(|e| ApiError::bad_request("invalid_path", e.to_string()))?;
            if !globs.contains(&g) {
                globs.push(g);
            }
        }
        let ttl = match &self.ttl {
            None => TTL_DEFAULT,
            Some(t) => t.duration()?,
        };
        let note = match self.note.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) if n.chars().count() > NOTE_MAX || n.chars().any(char::is_control) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("note must be one line of at most {NOTE_MAX} characters"),
                ));
            }
            Some(n) => Some(n.to_string()),
        };
        Ok(ClaimRequest {
            globs,
            ttl,
            exclusive: self.exclusive.unwrap_or(true),
            note,
        })
    }
}

/// `POST /claims/{id}/renew`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RenewBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSpec>,
}

impl RenewBody {
    pub fn duration(&self) -> Result<Duration, ApiError> {
        self.ttl.as_ref().map_or(Ok(TTL_DEFAULT), TtlSpec::duration)
    }
}

/// `POST /claims` (201) and `/claims/{id}/renew|release` (201): the claim after the
/// change and the message that records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimAnswer<M = super::Message> {
    pub ok: bool,
    pub claim: ClaimView,
    pub message: M,
}

/// `GET /claims[?after_id=N]`: the live claims by id, as many as a page holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimsAnswer {
    pub ok: bool,
    pub claims: Vec<ClaimView>,
    /// More live claims follow this page.
    #[serde(default)]
    pub has_more: bool,
    /// With `has_more`: the `after_id` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_id: Option<u64>,
}

/// The 409 body: the error contract plus the claims in the way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConflictAnswer {
    pub ok: bool,
    pub error: String,
    pub message: String,
    pub conflicts: Vec<ClaimConflict>,
}

/// Whether a new claim (`exclusive`, over `globs`) by `by` collides with `live`: an
/// exclusive claim collides with any other participant's overlapping claim, a shared one
/// only with an exclusive one. The holder's own claims never collide. The overlap walks
/// are paid from `budget` (see [`OVERLAP_BUDGET`](super::glob::OVERLAP_BUDGET)).
pub fn collides(
    by: &str,
    exclusive: bool,
    globs: &[Glob],
    live: &ClaimView,
    live_globs: &[Glob],
    budget: &mut usize,
) -> bool {
    live.by != by
        && (exclusive || live.exclusive)
        && globs
            .iter()
            .any(|g| live_globs.iter().any(|h| g.overlaps_within(h, budget)))
}

/// The parsed patterns of a claim as stored (they were validated when it was made; a
/// line edited by hand into something invalid is skipped, never trusted as "everything").
pub fn globs_of(paths: &[String]) -> Vec<Glob> {
    paths.iter().filter_map(|p| Glob::parse(p).ok()).collect()
}

/// A staged path under another participant's live exclusive claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardHit {
    pub path: String,
    pub claim_id: u64,
    pub by: String,
    pub claim_paths: Vec<String>,
    pub expires_at: String,
}

/// The pre-commit guard's rule: each of `paths` held exclusively by someone other than
/// `me` (one hit per path, the first claim that covers it).
pub fn guard_hits(me: &str, claims: &[ClaimView], paths: &[String]) -> Vec<GuardHit> {
    let held: Vec<(&ClaimView, Vec<Glob>)> = claims
        .iter()
        .filter(|c| c.exclusive && c.by != me)
        .map(|c| (c, globs_of(&c.paths)))
        .collect();
    let mut hits = Vec::new();
    for path in paths {
        if let Some((c, _)) = held
            .iter()
            .find(|(_, gs)| gs.iter().any(|g| g.matches(path)))
        {
            hits.push(GuardHit {
                path: path.clone(),
                claim_id: c.id,
                by: c.by.clone(),
                claim_paths: c.paths.clone(),
                expires_at: c.expires_at.clone(),
            });
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Result<ClaimRequest, ApiError> {
        serde_json::from_value::<NewClaimBody>(v)
            .unwrap()
            .validate()
    }

    #[test]
    fn validates_paths_ttl_and_note() {
        let r =
            body(json!({"paths": ["src/**", "./src/**"], "ttl": "30m", "note": " x "})).unwrap();
        assert_eq!(r.globs.len(), 1);
        assert_eq!(r.ttl, Duration::from_secs(1800));
        assert!(r.exclusive);
        assert_eq!(r.note.as_deref(), Some("x"));
        assert_eq!(
            body(json!({"paths": ["a"], "ttl": 600})).unwrap().ttl,
            Duration::from_secs(600)
        );
        let code = |v| body(v).unwrap_err().code;
        assert_eq!(code(json!({"paths": []})), "invalid_path");
        assert_eq!(code(json!({"paths": [""]})), "invalid_path");
        assert_eq!(code(json!({"paths": ["../x"]})), "invalid_path");
        assert_eq!(code(json!({"paths": ["/abs"]})), "invalid_path");
        assert_eq!(code(json!({"paths": ["a"], "ttl": 59})), "invalid_ttl");
        assert_eq!(code(json!({"paths": ["a"], "ttl": "9h"})), "invalid_ttl");
        assert_eq!(code(json!({"paths": ["a"], "ttl": "soon"})), "invalid_ttl");
        assert_eq!(
            code(json!({"paths": ["a"], "note": "x".repeat(201)})),
            "invalid_body"
        );
        let many: Vec<String> = (0..51).map(|i| format!("f{i}")).collect();
        assert_eq!(code(json!({"paths": many})), "invalid_path");
    }

    fn view(id: u64, by: &str, paths: &[&str], exclusive: bool) -> ClaimView {
        ClaimView {
            id,
            by: by.into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            exclusive,
            note: None,
            expires_at: "2030-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn collision_rules() {
        let ex = view(1, "bob", &["src/**"], true);
        let sh = view(2, "bob", &["src/**"], false);
        let mine = globs_of(&["src/main.rs".to_string()]);
        let other = globs_of(&["docs/**".to_string()]);
        let mut unlimited = usize::MAX;
        let b = &mut unlimited;
        assert!(collides("ann", true, &mine, &ex, &globs_of(&ex.paths), b));
        assert!(collides("ann", false, &mine, &ex, &globs_of(&ex.paths), b));
        assert!(collides("ann", true, &mine, &sh, &globs_of(&sh.paths), b));
        assert!(!collides("ann", false, &mine, &sh, &globs_of(&sh.paths), b));
        assert!(!collides("ann", true, &other, &ex, &globs_of(&ex.paths), b));
        assert!(!collides("bob", true, &mine, &ex, &globs_of(&ex.paths), b));
    }

    #[test]
    fn guard_names_exclusive_claims_of_others() {
        let claims = [
            view(1, "bob", &["src/web/**"], true),
            view(2, "cat", &["docs/**"], false),
            view(3, "me", &["src/**"], true),
        ];
        let paths = ["src/web/a.js", "docs/x.md", "src/main.rs"].map(String::from);
        let hits = guard_hits("me", &claims, &paths);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].path.as_str(), hits[0].by.as_str()),
            ("src/web/a.js", "bob")
        );
    }
}
