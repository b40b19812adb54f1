//! The endpoints of SPEC §4. Each handler authenticates, does one thing to the room
//! under its lock, wakes the hub if the room changed, and answers in the contract's shape.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::AppState;
use super::http::{
    bearer, check_origin, json_response, ok_json, optional_number, query_param, since_id,
};
use super::plain::{PlainPost, post_body};
use crate::protocol::card::render_card;
use crate::protocol::timefmt::now_ms;
use crate::protocol::url::{RoomUrl, is_loopback_host};
use crate::protocol::wire::{
    BriefAnswer, CloseAnswer, CompactStatus, HistoryPage, InviteAnswer, JoinAnswer, LeaveAnswer,
    MessagesPage, PolicyAnswer, PostAnswer, PublicUrlAnswer, RemoveAnswer,
};
use crate::protocol::{
    ApiError, AttendancePolicy, Attention, Kind, Location, MessageInput, RoomStatus,
};
use crate::store::StoredMessage;
use crate::store::export::Export;
use crate::store::log::PAGE_MESSAGES;
use crate::store::room::{Closed, WriteKind};

mod reach;
mod wait;

type S = State<Arc<AppState>>;
type ApiResult = Result<Response, ApiError>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(crate::web::index))
        .route("/assets/{file}", get(crate::web::asset))
        .route("/card", get(card))
        .route("/join", post(join))
        .route("/brief", get(get_brief).post(set_brief))
        .route("/attendance", get(get_attendance).post(set_attendance))
        .route("/profile", get(get_profile).post(set_profile))
        .route("/messages", get(get_messages).post(post_message))
        .route("/wait", get(wait::wait))
        .route("/leave", post(leave))
        .route("/close", post(close))
        .route("/status", get(status))
        .route("/invite", post(invite))
        .route("/remove", post(remove))
        .route("/export", get(export))
        .route("/public-url", post(set_public_url))
        .merge(super::topics::routes())
        .merge(super::claims::routes())
        .merge(super::approvals::routes())
        .route("/wake", post(reach::wake))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            exposure_guard,
        ))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// SPEC §4 exposure rules: a non-loopback `Host` is refused unless `--allow-remote`, and
/// writes from another origin are refused always.
async fn exposure_guard(State(s): S, req: Request, next: Next) -> Response {
    if !s.allow_remote {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_loopback_host(host) {
            return ApiError::new(
                403,
                "insecure_remote",
                "this room server only answers on loopback; reach it through a TLS tunnel or proxy (see `agentgather tunnel run`)",
            )
            .into_response();
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut allowed = s.allowed_origins();
        // The page may be opened as localhost or 127.0.0.1: its own loopback origin is
        // same-origin. (A foreign page cannot claim a loopback Origin.)
        if let Some(host) = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            && is_loopback_host(host)
        {
            allowed.push(format!("http://{}", host.to_ascii_lowercase()));
        }
        if let Err(e) = check_origin(req.headers(), &allowed) {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// An authenticated caller.
pub(super) struct Caller {
    pub(super) who: usize,
    alias: String,
    token: String,
    removed: bool,
    is_host: bool,
}

fn authenticate(s: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(ApiError::unauthorized)?;
    let mut room = s.room();
    let who = room
        .authenticate(token)
        .ok_or_else(ApiError::unauthorized)?;
    let p = room.participant(who);
    let caller = Caller {
        who,
        alias: p.alias.clone(),
        token: token.to_string(),
        removed: p.removed,
        is_host: p.is_host,
    };
    if !caller.removed {
        room.touch(who, now_ms());
    }
    Ok(caller)
}

/// The caller, refusing removed participants (410).
pub(super) fn active(s: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let c = authenticate(s, bearer(headers))?;
    if c.removed {
        return Err(ApiError::removed());
    }
    Ok(c)
}

fn check_participant(uri: &Uri, c: &Caller) -> Result<(), ApiError> {
    match query_param(uri, "participant") {
        Some(p) if !p.is_empty() && p != c.alias => Err(ApiError::new(
            403,
            "participant_mismatch",
            format!("this token belongs to {:?}, not {p:?}", c.alias),
        )),
        _ => Ok(()),
    }
}

fn str_field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_body",
            format!("{name} is required and must be a string"),
        )
    })
}

async fn card(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
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

async fn join(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let decl = reach::join_reach(&body)?;
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

async fn get_brief(State(s): S, headers: HeaderMap) -> ApiResult {
    active(&s, &headers)?;
    Ok(ok_json(&brief_answer(&s)))
}

async fn set_brief(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let text = str_field(&body, "body")?;
    s.room().set_brief(c.who, text)?;
    s.hub.notify();
    Ok(ok_json(&brief_answer(&s)))
}

async fn get_attendance(State(s): S, headers: HeaderMap) -> ApiResult {
    active(&s, &headers)?;
    let policy = s.room().meta.attendance_policy;
    Ok(ok_json(&PolicyAnswer::of(policy)))
}

async fn set_attendance(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let raw = str_field(&body, "policy")?;
    let policy = AttendancePolicy::parse(raw).ok_or_else(|| {
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

async fn get_profile(State(s): S, headers: HeaderMap) -> ApiResult {
    let c = active(&s, &headers)?;
    Ok(ok_json(&s.room().profile(c.who)))
}

async fn set_profile(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let (name, decl) = reach::profile_body(&body)?;
    let mut room = s.room();
    if let Some(name) = name {
        room.set_display_name(c.who, &name)?;
    }
    if let Some(d) = decl {
        room.set_reach(c.who, d)?;
    }
    Ok(ok_json(&room.profile(c.who)))
}

async fn get_messages(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
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

async fn post_message(State(s): S, headers: HeaderMap, uri: Uri, body: Body) -> ApiResult {
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

/// Answers a post (a message, a topic, a status change, an answer): after the sync that
/// covers it (with `--fsync batch`; the log's end now is at or past its line), 201 and a
/// wake, or 200 for an idempotent repeat.
pub(super) async fn posted(
    s: &AppState,
    stored: Arc<StoredMessage>,
    idempotent: bool,
) -> ApiResult {
    let end = s.room().log.end_offset();
    if let Some(gc) = &s.group_commit {
        gc.wait(end).await?;
    }
    let answer = PostAnswer {
        ok: true,
        message: stored,
        idempotent,
    };
    if idempotent {
        return Ok(ok_json(&answer));
    }
    s.hub.notify();
    Ok(json_response(StatusCode::CREATED, &answer))
}

async fn leave(State(s): S, headers: HeaderMap) -> ApiResult {
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

async fn close(State(s): S, headers: HeaderMap) -> ApiResult {
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

async fn status(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
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

async fn invite(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let alias = str_field(&body, "alias")?;
    let kind = match body.get("kind").and_then(Value::as_str) {
        None => Kind::Agent,
        Some(k) => Kind::parse(k).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_kind",
                format!("kind must be one of {}", Kind::choices()),
            )
        })?,
    };
    let location = match body.get("location").and_then(Value::as_str) {
        None => Location::Local,
        Some(l) => Location::parse(l).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_location",
                format!("location must be one of {}", Location::choices()),
            )
        })?,
    };
    let requested = reach::requested_reach(&body)?;
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

async fn remove(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    let body = s.read_body(&headers, body).await?;
    let alias = str_field(&body, "alias")?;
    s.room().remove(c.who, alias)?;
    s.hub.notify();
    Ok(ok_json(&RemoveAnswer {
        ok: true,
        removed: alias.to_string(),
    }))
}

async fn export(State(s): S, headers: HeaderMap, uri: Uri) -> ApiResult {
    let c = active(&s, &headers)?;
    if !c.is_host {
        return Err(ApiError::host_required("export the room"));
    }
    let format = query_param(&uri, "format").unwrap_or_else(|| "json".into());
    let export = Export::from_room(&s.room())?;
    match format.as_str() {
        "json" => Ok(ok_json(&export)),
        "md" | "markdown" => {
            let name = format!("attachment; filename=\"{}.md\"", export.room);
            Ok((
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        "text/markdown; charset=utf-8".to_string(),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                export.to_markdown(),
            )
                .into_response())
        }
        other => Err(ApiError::bad_request(
            "invalid_format",
            format!("format must be md or json, got {other:?}"),
        )),
    }
}

/// Host only: the URL participants should use (the tunnel client sets it).
async fn set_public_url(State(s): S, headers: HeaderMap, body: Body) -> ApiResult {
    let c = active(&s, &headers)?;
    if !c.is_host {
        return Err(ApiError::host_required("set the public URL"));
    }
    let body = s.read_body(&headers, body).await?;
    let url = RoomUrl::parse(str_field(&body, "url")?)
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
