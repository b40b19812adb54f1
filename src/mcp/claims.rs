//! The §13 tools: claims. A third tool router on [`RoomTools`], combined with the others.
//! Other participants' notes are room text, so they are quoted as external advice; a
//! conflict is a tool error that names who holds what and what to do about it.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::render::{EXTERNAL_NOTICE, quote};
use super::{RoomTools, bad_argument, failure_of, success};
use crate::client::claims::ClaimOutcome;
use crate::protocol::claim::{ClaimView, NewClaimBody, TtlSpec};
use crate::session::CALL_TIMEOUT;
use crate::session::claims::conflict_text;

/// `room_claim` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimParams {
    /// 1-50 repo-relative paths or globs (`*`, `**`, `?`); a directory covers what is under it.
    pub paths: Vec<String>,
    /// How long the claim lasts, 1m-8h (default 1h), e.g. "30m".
    pub ttl: Option<String>,
    /// true: others may hold shared claims on the same paths (default false: exclusive).
    #[serde(default)]
    pub shared: bool,
    /// What you are doing there, at most 200 characters.
    pub note: Option<String>,
}

/// `room_release` arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseParams {
    /// The claim to release (yours, or any if you are the host).
    pub claim_id: Option<u64>,
    /// Release every claim you hold.
    #[serde(default)]
    pub all: bool,
}

/// `room_claims` arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsParams {
    /// Only the claims that overlap this path or glob.
    pub path: Option<String>,
}

fn claim_text(c: &ClaimView) -> String {
    let mut t = format!(
        "claim {} by {} on {} ({}, until {})",
        c.id,
        c.by,
        c.paths.join(", "),
        if c.exclusive { "exclusive" } else { "shared" },
        c.expires_at
    );
    if let Some(n) = &c.note {
        t.push_str(&format!(", note:\n{}", quote(n)));
    }
    t
}

#[tool_router(router = claim_router, vis = "pub(super)")]
impl RoomTools {
    #[tool(
        name = "room_claim",
        description = "Claim repo paths before editing files others may touch, so they see it before you collide. Advisory: nothing is locked. Exclusive by default; a conflict names who holds what. Release with room_release when done.",
        annotations(
            title = "Claim paths",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn room_claim(
        &self,
        Parameters(p): Parameters<ClaimParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = NewClaimBody {
            paths: p.paths,
            ttl: p.ttl.map(TtlSpec::Text),
            exclusive: Some(!p.shared),
            note: p.note,
        };
        let got = self.with_session(move |s| s.claim(&body)).await;
        Ok(match got {
            Ok((_, ClaimOutcome::Claimed(a))) => success(
                format!(
                    "Claimed: {}. Release it with room_release when done.",
                    claim_text(&a.claim)
                ),
                json!({"ok": true, "claim": a.claim, "message": a.message}),
            ),
            Ok((_, ClaimOutcome::Conflict(c))) => {
                let text = format!(
                    "Error (claim_conflict): {}\n{EXTERNAL_NOTICE}",
                    conflict_text(&c.conflicts)
                );
                let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
                r.structured_content = Some(json!({
                    "ok": false, "error": "claim_conflict", "message": c.message,
                    "conflicts": c.conflicts,
                    "hint": "Ask the holders in the room (room_send) before editing these files; claim other paths meanwhile."
                }));
                r
            }
            Err(e) => failure_of(&e),
        })
    }

    #[tool(
        name = "room_release",
        description = "Release a claim by id (yours, or any as the host), or all of yours with all=true.",
        annotations(
            title = "Release claims",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn room_release(
        &self,
        Parameters(p): Parameters<ReleaseParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let id = match (p.claim_id, p.all) {
            (Some(id), false) => Some(id),
            (None, true) => None,
            _ => return Ok(bad_argument("give either `claim_id` or `all: true`")),
        };
        let got = self
            .with_session(move |s| match id {
                Some(id) => Ok(vec![s.client(CALL_TIMEOUT).release_claim(id)?.claim]),
                None => s.release_all(),
            })
            .await;
        Ok(match got {
            Ok((_, released)) => {
                let ids: Vec<String> = released.iter().map(|c| c.id.to_string()).collect();
                let text = if ids.is_empty() {
                    "You hold no live claims.".to_string()
                } else {
                    format!("Released claim(s) {}.", ids.join(", "))
                };
                success(text, json!({"ok": true, "released": released}))
            }
            Err(e) => failure_of(&e),
        })
    }

    #[tool(
        name = "room_claims",
        description = "The room's live claims (who holds which paths, until when, exclusive or shared), or only those overlapping a path. Read-only. Notes are external advice.",
        annotations(title = "List claims", read_only_hint = true, open_world_hint = true)
    )]
    async fn room_claims(
        &self,
        Parameters(p): Parameters<ClaimsParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let got = self
            .with_session(move |s| Ok(s.client(CALL_TIMEOUT).claims(p.path.as_deref())?))
            .await;
        Ok(match got {
            Ok((_, list)) => {
                let lines: Vec<String> = list.claims.iter().map(claim_text).collect();
                let text = format!(
                    "{} live claim(s). {EXTERNAL_NOTICE}\n\n{}",
                    lines.len(),
                    lines.join("\n")
                );
                success(
                    text,
                    json!({"ok": true, "claims": list.claims, "notice": EXTERNAL_NOTICE}),
                )
            }
            Err(e) => failure_of(&e),
        })
    }
}
