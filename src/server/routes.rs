//! The endpoints of SPEC §4. Each handler authenticates, does one thing to the room
//! under its lock, wakes the hub if the room changed, and answers in the contract's shape.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;

use super::api::{ApiResult, Caller, S, active, authenticate, check_participant, posted, typed};
use super::http::{bearer, json_response, ok_json, optional_number, query_param, since_id};
use super::plain::{PlainPost, post_body};
use super::reach;
use super::state::AppState;
use crate::protocol::card::render_card;
use crate::protocol::export::ExportCursor;
use crate::protocol::timefmt::now_ms;
use crate::protocol::url::RoomUrl;
use crate::protocol::wire::{
    BriefAnswer, BriefBody, CloseAnswer, CompactStatus, HistoryPage, InviteAnswer, InviteBody,
    JoinAnswer, LeaveAnswer, MessagesPage, PolicyAnswer, PolicyBody, PublicUrlAnswer,
    PublicUrlBody, RemoveAnswer, RemoveBody,
};
use crate::protocol::{
    ApiError, AttendancePolicy, Attention, Kind, Location, MessageInput, RoomStatus,
};
use crate::store::export;
use crate::store::log::PAGE_MESSAGES;
use crate::store::room::{Closed, WriteKind};

pub(super) async fn card(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let token = bearer(&headers)
        .map(str::to_string)
        .or_else(|| query_param(&uri, "token"));
    let c = authenticate(&s, token.as_deref())?;
    if c.removed {
        return Err(ApiError::removed());
    }
    check_participant(&uri, &c)?;
    let url = s.public_url();
    let text = render_card(&s.room().card_input(c.who, &c.token, &url));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

pub(super) async fn join(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let decl = reach::join_reach(body)?;
    let posted = {
        let mut room = s.room();
        let posted = room.join(c.who)?;
        if let Some(d) = decl {
            room.set_reach(c.who, d)?;
        }
        posted
    };
    if posted.is_some() {
        s.hub.notify();
    }
    let room = s.room();
    Ok(ok_json(&JoinAnswer {
        ok: true,
        room: room.id().to_string(),
        participant: c.alias,
        attention: Attention::Attending,
        room_status: room.meta.status,
        brief_version: room.meta.brief_version,
        last_id: room.log.last_id(),
    }))
}

fn brief_answer(s: &AppState) -> BriefAnswer {
    BriefAnswer {
        ok: true,
        brief: s.room().brief_view(),
    }
}

pub(super) async fn get_brief(State(s): S, headers: HeaderMap) -> ApiResult {
    active(&s, &headers)?;
    Ok(ok_json(&brief_answer(&s)))
}

pub(super) async fn set_brief(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let brief: BriefBody = typed(s.read_body(&headers, body).await?)?;
    s.room().set_brief(c.who, &brief.body)?;
    s.hub.notify();
    Ok(ok_json(&brief_answer(&s)))
}

pub(super) async fn get_attendance(State(s): S, headers: HeaderMap) -> ApiResult {
    active(&s, &headers)?;
    let policy = s.room().meta.attendance_policy;
    Ok(ok_json(&PolicyAnswer::of(policy)))
}

pub(super) async fn set_attendance(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body: PolicyBody = typed(s.read_body(&headers, body).await?)?;
    let policy = AttendancePolicy::parse(&body.policy).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_policy",
            format!("policy must be one of {}", AttendancePolicy::choices()),
        )
    })?;
    if s.room().set_policy(c.who, policy)?.is_some() {
        s.hub.notify();
    }
    Ok(ok_json(&PolicyAnswer::of(policy)))
}

pub(super) async fn get_profile(State(s): S, headers: HeaderMap) -> ApiResult {
    let c = active(&s, &headers)?;
    Ok(ok_json(&s.room().profile(c.who)))
}

pub(super) async fn set_profile(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let (name, decl) = reach::profile_body(body)?;
    let mut room = s.room();
    if let Some(name) = name {
        room.set_display_name(c.who, &name)?;
    }
    if let Some(d) = decl {
        room.set_reach(c.who, d)?;
    }
    Ok(ok_json(&room.profile(c.who)))
}

pub(super) async fn get_messages(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let c = active(&s, &headers)?;
    let slot = s.pages.slot(c.who).await;
    Ok(slot.answer(messages_page(&s, &c, uri)?))
}

fn messages_page(s: &AppState, c: &Caller, uri: Uri) -> ApiResult {
    if let Some(before) = optional_number(&uri, "before_id")? {
        return history_page(s, &uri, before);
    }
    let since = since_id(&uri)?;
    let limit = optional_number(&uri, "limit")?
        .map_or(PAGE_MESSAGES, |l| (l.max(1) as usize).min(PAGE_MESSAGES));
    // `tail=N`: only the newest N of those messages (a page opening a long room).
    let tail = optional_number(&uri, "tail")?.map(|t| (t.max(1) as usize).min(PAGE_MESSAGES));
    let mut room = s.room();
    let messages = match tail {
        Some(n) => room.log.read_tail(since, n),
        None => room.log.read_since(since, limit),
    }?;
    let next = messages.last().map_or(since, |m| m.msg.id);
    room.mark_delivered(c.who, next);
    let page = MessagesPage {
        ok: true,
        room: room.id().to_string(),
        room_status: room.meta.status,
        has_more: next < room.log.last_id(),
        messages,
        next_since_id: next,
    };
    drop(room);
    Ok(ok_json(&page))
}

/// `GET /messages?before_id=N&limit=L`: the newest L (default 100, at most 1,000)
/// messages with id < N, oldest first, for a reader scrolling back. It is a cursor of its
/// own, so `since_id` or `tail` with it is 400 `invalid_cursor`. Reading old pages is not
/// delivery: it never moves the reader's `read_through_id`.
fn history_page(s: &AppState, uri: &Uri, before: u64) -> ApiResult {
    if query_param(uri, "since_id").is_some() || query_param(uri, "tail").is_some() {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "before_id reads backwards and cannot be combined with since_id or tail",
        ));
    }
    let limit =
        optional_number(uri, "limit")?.map_or(100, |l| l.clamp(1, PAGE_MESSAGES as u64)) as usize;
    let room = s.room();
    let (messages, has_more_before) = room.log.read_before(before, limit)?;
    let body = HistoryPage {
        ok: true,
        room: room.id().to_string(),
        room_status: room.meta.status,
        messages,
        has_more_before,
    };
    drop(room);
    Ok(ok_json(&body))
}

pub(super) async fn post_message(
    State(s): S,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> ApiResult {
    let c = authenticate(&s, bearer(&headers))?;
    if c.removed {
        return Err(ApiError::removed());
    }
    let limits = s.room().limits.clone();
    let body = post_body(&s, &headers, &uri, body, PlainPost::Message).await?;
    let input = MessageInput::from_json(&body, &limits)?;
    let (stored, idempotent) = s.room().post(c.who, input)?;
    posted(&s, stored, idempotent).await
}

pub(super) async fn leave(State(s): S, headers: HeaderMap) -> ApiResult {
    let c = active(&s, &headers)?;
    let mut room = s.room();
    // SPEC §10: leaving a closed room changes nothing, and the answer says why.
    if !room.is_open() {
        return Ok(ok_json(&LeaveAnswer {
            ok: true,
            participant: c.alias,
            attention: room.participant(c.who).attention,
            room_status: RoomStatus::Closed,
        }));
    }
    let posted = room.leave(c.who)?;
    drop(room);
    if posted.is_some() {
        s.hub.notify();
    }
    Ok(ok_json(&LeaveAnswer {
        ok: true,
        participant: c.alias,
        attention: Attention::Away,
        room_status: RoomStatus::Open,
    }))
}

pub(super) async fn close(State(s): S, headers: HeaderMap) -> ApiResult {
    let c = active(&s, &headers)?;
    let closed = s.room().close_by(c.who)?;
    s.hub.notify();
    let room = s.room();
    Ok(ok_json(&CloseAnswer {
        ok: true,
        room: room.id().to_string(),
        room_status: RoomStatus::Closed,
        already_closed: closed == Closed::Already,
        closed_at: room.meta.closed_at.clone(),
    }))
}

pub(super) async fn status(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let c = active(&s, &headers)?;
    let url = s.public_url();
    let body = s.room().status_view(
        c.who,
        &url,
        now_ms(),
        |i| s.hub.is_holding(i),
        s.hub.held_count() as u64,
    );
    if query_param(&uri, "compact").is_some_and(|v| v == "1" || v == "true") {
        return Ok(ok_json(&CompactStatus::of(body)));
    }
    Ok(ok_json(&body))
}

pub(super) async fn invite(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body: InviteBody = typed(s.read_body(&headers, body).await?)?;
    let alias = body.alias.as_str();
    let kind = match body.kind.as_deref() {
        None => Kind::Agent,
        Some(k) => Kind::parse(k).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_kind",
                format!("kind must be one of {}", Kind::choices()),
            )
        })?,
    };
    let location = match body.location.as_deref() {
        None => Location::Local,
        Some(l) => Location::parse(l).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_location",
                format!("location must be one of {}", Location::choices()),
            )
        })?,
    };
    let requested = reach::requested_reach(body.reach.as_deref())?;
    let token = {
        let mut room = s.room();
        let token = room.invite(c.who, alias, kind, location)?;
        if let Some(r) = requested {
            room.request_reach(c.who, alias, r)?;
        }
        token
    };
    let url = s.public_url();
    let room_id = s.room().id().to_string();
    let mut answer = InviteAnswer::new(&room_id, alias, kind, &token, &url);
    answer.reach_requested = requested;
    Ok(json_response(StatusCode::CREATED, &answer))
}

pub(super) async fn remove(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body: RemoveBody = typed(s.read_body(&headers, body).await?)?;
    s.room().remove(c.who, &body.alias)?;
    s.hub.notify();
    Ok(ok_json(&RemoveAnswer {
        ok: true,
        removed: body.alias,
    }))
}

/// `GET /export?format=json|md[&after_topic=N|&after_id=N]`: the room's export a page
/// at a time (topics, then messages), so no answer passes the page bound. JSON pages say
/// `has_more` and where the next starts; a Markdown page names its next page's query in
/// `x-agentgather-next`, and the pages concatenate into the whole transcript.
pub(super) async fn export(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let c = active(&s, &headers)?;
    if !c.is_host {
        return Err(ApiError::host_required("export the room"));
    }
    let format = query_param(&uri, "format").unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "md" | "markdown") {
        return Err(ApiError::bad_request(
            "invalid_format",
            format!("format must be md or json, got {format:?}"),
        ));
    }
    let from = export_cursor(&uri)?;
    let slot = s.pages.slot(c.who).await;
    let page = export::page(&s.room(), from)?;
    if format == "json" {
        return Ok(slot.answer(ok_json(&page)));
    }
    let name = format!("attachment; filename=\"{}.md\"", page.header.room);
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "text/markdown; charset=utf-8".to_string(),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        export::page_markdown(&page, from),
    )
        .into_response();
    if let Some(next) = page
        .next()
        .and_then(|n| HeaderValue::from_str(&n.query()).ok())
    {
        response.headers_mut().insert(EXPORT_NEXT, next);
    }
    Ok(slot.answer(response))
}

/// The header of a Markdown export page that names the query of the next page.
const EXPORT_NEXT: &str = "x-agentgather-next";

/// Where an export page starts: `after_topic=N` or `after_id=N` (not both); the first
/// page without either.
fn export_cursor(uri: &Uri) -> Result<ExportCursor, ApiError> {
    match (
        optional_number(uri, "after_topic")?,
        optional_number(uri, "after_id")?,
    ) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_query",
            "send after_topic or after_id, not both",
        )),
        (Some(after), None) => Ok(ExportCursor::Topics { after }),
        (None, Some(after)) => Ok(ExportCursor::Messages { after }),
        (None, None) => Ok(ExportCursor::START),
    }
}

/// Host only: the URL participants should use (the tunnel client sets it).
pub(super) async fn set_public_url(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    if !c.is_host {
        return Err(ApiError::host_required("set the public URL"));
    }
    let body: PublicUrlBody = typed(s.read_body(&headers, body).await?)?;
    let url = RoomUrl::parse(&body.url)
        .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))?;
    let url = url.as_str();
    {
        let mut room = s.room();
        room.charge(c.who, WriteKind::PublicUrl)?;
        room.set_url(url)?;
    }
    s.set_public_url(url);
    Ok(ok_json(&PublicUrlAnswer {
        ok: true,
        url: url.to_string(),
    }))
}
