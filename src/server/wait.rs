//! `GET /wait`, the core primitive (SPEC §4, §10). A wait is not ended by the caller's
//! own posts and does not hand them back (they wrote them; a round trip for their own
//! words is noise), yet its cursor moves past them, so a client that passes
//! `next_since_id` back never sees them again. `include_own=1` keeps them (the browser,
//! whose tabs share one wait, and the wake runner, which tracks its own ids, use it).
//! A post of one's own that @mentions oneself is not noise but a note addressed to
//! oneself (a reminder, a test of the room), so it is delivered like anyone's mention.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};

use super::api::{ApiResult, Caller, S, authenticate, check_participant};
use super::http::{bearer, ok_json, optional_number, query_param, since_id};
use super::state::AppState;
use crate::protocol::card::wait_command;
use crate::protocol::timefmt::now_ms;
use crate::protocol::wire::WaitAnswer;
use crate::protocol::{ApiError, Attention, Message, ParticipantStatus, WAIT_HOLD_MS};
use crate::store::StoredMessage;
use crate::store::log::PAGE_MESSAGES;

/// How far one wait has looked: `scanned` runs ahead of the client's `since_id` past the
/// caller's own messages, which are skipped, not delivered.
struct Scan {
    scanned: u64,
    include_own: bool,
}

/// The answer to a wait if there is one now: new messages (not the caller's own, unless
/// asked), a closed room, or removal; with `heartbeat`, an answer in any case.
fn wait_answer(
    s: &AppState,
    c: &Caller,
    scan: &mut Scan,
    heartbeat: bool,
) -> Result<Option<WaitAnswer<Arc<StoredMessage>>>, ApiError> {
    let mut room = s.room();
    let removed = room.participant(c.who).removed;
    let open = room.is_open();
    let mut messages = Vec::new();
    // Page after page until something not the caller's own, or the end of the log.
    while !removed && messages.is_empty() && scan.scanned < room.log.last_id() {
        let page = room.log.read_since(scan.scanned, PAGE_MESSAGES)?;
        let Some(last) = page.last().map(|m| m.msg.id) else {
            break;
        };
        scan.scanned = last;
        messages.extend(
            page.into_iter()
                .filter(|m| scan.include_own || delivered_to(&m.msg, &c.alias)),
        );
    }
    if !heartbeat && messages.is_empty() && open && !removed && !s.shutting_down() {
        return Ok(None);
    }
    let next = scan.scanned;
    let mentioned = messages.iter().any(|m| m.msg.mentions.contains(&c.alias));
    let concerns_you = messages.iter().any(|m| room.concerns(&m.msg, &c.alias));
    room.mark_delivered(c.who, next);
    let keep_waiting = open && !removed;
    let next_cmd = keep_waiting.then(|| wait_command(&s.public_url(), room.id(), &c.alias, next));
    let participant_status = if removed {
        ParticipantStatus::Removed
    } else if !open {
        ParticipantStatus::Left
    } else {
        ParticipantStatus::Active
    };
    Ok(Some(WaitAnswer {
        ok: true,
        room: room.id().to_string(),
        room_status: room.meta.status,
        participant: c.alias.clone(),
        participant_status,
        heartbeat: messages.is_empty() && keep_waiting,
        messages,
        mentioned,
        concerns_you,
        next_since_id: next,
        keep_waiting,
        next_cmd,
        brief_version: room.meta.brief_version,
        has_more: next < room.log.last_id(),
    }))
}

/// Whether a wait hands `m` to `alias`: anyone else's message, or their own that
/// mentions them.
fn delivered_to(m: &Message, alias: &str) -> bool {
    m.from != alias || m.mentions.iter().any(|a| a == alias)
}

pub(super) async fn wait(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let c = authenticate(&s, bearer(&headers))?;
    check_participant(&uri, &c)?;
    let mut scan = Scan {
        scanned: since_id(&uri)?,
        include_own: query_param(&uri, "include_own").is_some_and(|v| v == "1" || v == "true"),
    };
    let hold_ms =
        optional_number(&uri, "timeout_ms")?.map_or(WAIT_HOLD_MS, |t| t.min(WAIT_HOLD_MS));
    // The request's header and URI bytes share hyper's read buffer; let it go before the
    // long sleep (about 8 KB per held wait).
    drop((headers, uri));
    let mut changed = s.hub.subscribe();
    // A page in flight holds one of the caller's page slots until it is handed over.
    let slot = s.pages.slot(c.who).await;
    if let Some(a) = wait_answer(&s, &c, &mut scan, false)? {
        return Ok(slot.answer(ok_json(&a)));
    }
    drop(slot);
    let held = s.hub.hold(c.who);
    s.room().set_attention(c.who, Attention::Attending);
    let deadline = tokio::time::sleep(Duration::from_millis(hold_ms));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = held.superseded.notified() => break,
            r = changed.changed() => {
                if r.is_err() {
                    break;
                }
                let slot = s.pages.slot(c.who).await;
                if let Some(a) = wait_answer(&s, &c, &mut scan, false)? {
                    return Ok(slot.answer(ok_json(&a)));
                }
            }
        }
    }
    drop(held);
    s.room().touch(c.who, now_ms());
    let slot = s.pages.slot(c.who).await;
    let a = wait_answer(&s, &c, &mut scan, true)?
        .ok_or_else(|| ApiError::new(500, "internal", "no wait answer"))?;
    Ok(slot.answer(ok_json(&a)))
}
