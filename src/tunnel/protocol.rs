//! The wire between a host's `tunnel run` and `broker serve`: one WebSocket carrying
//! JSON control frames (text messages) and body bytes (binary messages), so many HTTP
//! requests share the one outbound connection a host behind NAT can open.
//!
//! A request travels as `request {id,…}`, zero or more data frames, then `end {id}`; the
//! answer comes back as `response {id,…}`, data frames, `end {id}` (or `fail {id,…}`).
//! Response bytes are credit-based: the host may have at most [`INITIAL_WINDOW`] bytes of
//! a stream unacknowledged, and the broker returns `credit` as the participant reads, so a
//! slow reader can never stall the other streams on the shared connection (a held `/wait`
//! costs nothing while it waits). Request bodies need no credit: the broker caps them.
//!
//! Data frames are binary: one tag byte ([`DATA_FRAME`]), the stream id as 8 bytes big
//! endian, then the payload. Both ends read and write frames only through [`read_frame`]
//! and [`FrameTx`] (one writer task per connection, [`spawn_writer`]), so the layout lives
//! here alone; every refusal either end sends is a [`Code`].

use std::fmt;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Bumped on any incompatible change; a broker refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;
/// Where hosts open their WebSocket. `_` can never start a room slug, so no room collides.
pub const TUNNEL_PATH: &str = "/_agentgather/tunnel";
/// A liveness probe for operators (no route data).
pub const HEALTH_PATH: &str = "/_agentgather/health";
/// The route table, for an operator on the broker machine only (loopback, no proxy).
pub const ROUTES_PATH: &str = "/_agentgather/routes";
/// A host asks here, through the balancer, whether the instance its slug maps to is the
/// one holding its route (`?slug=…&route_id=…`): 200 if so, else 404 and it reconnects.
pub const ROUTE_CHECK_PATH: &str = "/_agentgather/route-check";
/// Caddy's on-demand TLS asks here whether a name is a room on this broker (operator only).
pub const TLS_ASK_PATH: &str = "/_agentgather/tls-ask";
/// The tag byte of a binary data frame.
pub const DATA_FRAME: u8 = 1;
/// Bodies travel in pieces of at most this many bytes.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Unacknowledged response bytes a host may send on one stream.
pub const INITIAL_WINDOW: u32 = 256 * 1024;
/// The largest WebSocket message either side accepts (a data frame or a control frame).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Request headers a participant's request keeps on its way to the room server. Nothing
/// else crosses: no cookies, no forwarding headers, no `Host` (the host sets its own).
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "origin",
    "referer",
    "accept",
];

/// Response headers that never cross a proxy hop, and those a host could use against
/// its origin's later visitors: cookies, a service worker scope wider than its script,
/// and wiping the origin's storage.
pub const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "set-cookie",
    "service-worker-allowed",
    "clear-site-data",
];

/// The headers of `map` that `keep` lets through the tunnel, as name/value text pairs
/// (values that are not visible ASCII are dropped).
pub fn header_pairs(map: &hyper::HeaderMap, keep: fn(&str) -> bool) -> Vec<(String, String)> {
    map.iter()
        .filter(|(n, _)| keep(n.as_str()))
        .filter_map(|(n, v)| {
            v.to_str()
                .ok()
                .map(|v| (n.as_str().to_string(), v.to_string()))
        })
        .collect()
}

pub fn forwards_request_header(name: &str) -> bool {
    FORWARDED_REQUEST_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

pub fn forwards_response_header(name: &str) -> bool {
    !DROPPED_RESPONSE_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// What proves a connection owns a route. The secret is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCredentials {
    pub route_id: String,
    pub route_secret: String,
}

impl fmt::Debug for RouteCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteCredentials")
            .field("route_id", &self.route_id)
            .field("route_secret", &"<redacted>")
            .finish()
    }
}

/// The per-route limits the broker enforces, told to the host on registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLimits {
    pub max_requests: u32,
    pub max_waits: u32,
    pub max_request_body: u64,
    pub max_response: u64,
    pub idle_timeout_ms: u64,
    pub max_lifetime_ms: u64,
    pub route_requests_per_min: u32,
    pub ip_requests_per_min: u32,
}

/// Host → broker control frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostFrame {
    /// The first frame: claim `slug` (or take back the route `reclaim` names).
    Register {
        version: u32,
        slug: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reclaim: Option<RouteCredentials>,
    },
    /// Keeps the route from idling out.
    Heartbeat { route: RouteCredentials },
    /// Gives the slug up; the broker answers `closed` and hangs up.
    Release { route: RouteCredentials },
    /// The head of the answer to request `id`.
    Response {
        id: u64,
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// The answer to `id` is complete.
    End { id: u64 },
    /// Request `id` could not be answered (the room server is down, too slow, too big).
    Fail {
        id: u64,
        code: String,
        message: String,
    },
}

/// Broker → host control frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerFrame {
    /// Registration accepted: keep `route` to heartbeat, release or reclaim it.
    Registered {
        route: RouteCredentials,
        slug: String,
        public_url: String,
        reclaimed: bool,
        heartbeat_ms: u64,
        expires_at_ms: i64,
        limits: RouteLimits,
    },
    /// Registration refused; the broker hangs up after this frame.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// A participant's request for the room server.
    Request {
        id: u64,
        method: String,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// The request body of `id` is complete.
    End { id: u64 },
    /// The participant went away: stop working on `id`.
    Cancel { id: u64 },
    /// The participant has read `bytes` more of the answer to `id`.
    Credit { id: u64, bytes: u32 },
    /// A frame was refused (for example a forged route secret); the connection stays.
    Error { code: String, message: String },
    /// The route is gone (released, expired, replaced, broker shutdown); hang up.
    Closed { code: String, message: String },
}

/// The bytes before a data frame's payload: the tag and the stream id.
const DATA_HEADER: usize = 9;

/// Encodes a binary data frame.
pub fn encode_data(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_HEADER + payload.len());
    out.push(DATA_FRAME);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes a binary data frame into its stream id and payload.
pub fn decode_data(frame: &[u8]) -> Option<(u64, &[u8])> {
    let (&tag, rest) = frame.split_first()?;
    if tag != DATA_FRAME || rest.len() < 8 {
        return None;
    }
    let (id, payload) = rest.split_at(8);
    let id = u64::from_be_bytes(id.try_into().ok()?);
    Some((id, payload))
}

/// One WebSocket message as a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<T> {
    Control(T),
    Data {
        id: u64,
        payload: Bytes,
    },
    /// The peer closed the WebSocket.
    Close,
    /// A ping or pong: liveness only.
    Other,
}

/// A message that is not a frame of this protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an unreadable control frame")]
    Control,
    #[error("an unreadable data frame")]
    Data,
}

/// Reads one WebSocket message as a control frame `T` or a data frame (the payload shares
/// the message's buffer, no copy).
pub fn read_frame<T: DeserializeOwned>(m: Message) -> Result<Inbound<T>, FrameError> {
    match m {
        Message::Text(text) => serde_json::from_str(&text)
            .map(Inbound::Control)
            .map_err(|_| FrameError::Control),
        Message::Binary(data) => {
            let (id, _) = decode_data(&data).ok_or(FrameError::Data)?;
            Ok(Inbound::Data {
                id,
                payload: data.slice(DATA_HEADER..),
            })
        }
        Message::Close(_) => Ok(Inbound::Close),
        _ => Ok(Inbound::Other),
    }
}

/// The sending side of a tunnel WebSocket: frames queue here for the connection's one
/// writer task ([`spawn_writer`]), so no two writers interleave. A send reports whether
/// the writer is still there.
#[derive(Clone)]
pub struct FrameTx(mpsc::UnboundedSender<Message>);

impl FrameTx {
    pub fn control(&self, frame: &impl Serialize) -> bool {
        match serde_json::to_string(frame) {
            Ok(text) => self.0.send(Message::text(text)).is_ok(),
            Err(_) => false,
        }
    }

    pub fn data(&self, id: u64, payload: &[u8]) -> bool {
        self.0
            .send(Message::binary(encode_data(id, payload)))
            .is_ok()
    }

    pub fn ping(&self) -> bool {
        self.0.send(Message::Ping(Bytes::new())).is_ok()
    }

    /// Queues a Close: the writer sends it and stops.
    pub fn close(&self) {
        let _ = self.0.send(Message::Close(None));
    }
}

/// The one task that writes a tunnel WebSocket, on either end. It stops after a write
/// fails or a Close frame is sent, then closes the sink.
///
/// Frames queued together go out together: the writer takes what is already queued (up
/// to [`WRITE_BATCH`] frames) before it flushes, so an answer's head, its body and its end
/// usually reach the other process in one segment, which wakes it once instead of three
/// times (on a busy machine each wake-up can wait for a CPU).
pub fn spawn_writer<S>(mut sink: S) -> (FrameTx, tokio::task::JoinHandle<()>)
where
    S: futures_util::Sink<Message> + Unpin + Send + 'static,
{
    use futures_util::SinkExt;
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        'frames: while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            let mut batch = 0;
            while let Some(m) = next.take() {
                let close = matches!(m, Message::Close(_));
                if sink.feed(m).await.is_err() {
                    break 'frames;
                }
                if close {
                    let _ = sink.flush().await;
                    break 'frames;
                }
                batch += 1;
                if batch < WRITE_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (FrameTx(tx), writer)
}

/// The most frames the writer takes before it flushes.
const WRITE_BATCH: usize = 32;

/// The WebSocket limits both ends set. The read buffer is a reading chunk, not a cap
/// (larger messages still arrive whole); tungstenite's default of 128 KB, allocated per
/// connection up front, was most of what an idle route cost the broker.
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK_BYTES)
        // Frames fed one after another (see `spawn_writer`) collect up to this much
        // before they are written; a flush writes whatever is there.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// How much a WebSocket reads at a time.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// How much a WebSocket's writer collects before it writes without a flush.
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

macro_rules! codes {
    ($($variant:ident = $text:literal, $status:literal;)*) => {
        /// Every refusal and ending either end of a tunnel sends, with its HTTP status.
        /// On the wire (and to participants) a code is its stable snake_case text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $($variant),* }

        impl Code {
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text),* }
            }
            pub fn status(self) -> u16 {
                match self { $(Code::$variant => $status),* }
            }
            pub fn parse(text: &str) -> Option<Code> {
                match text { $($text => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    NotFound = "not_found", 404;
    RouteSlugTaken = "route_slug_taken", 409;
    RouteAuthFailed = "route_auth_failed", 403;
    RouteUnavailable = "route_unavailable", 503;
    RouteBusy = "route_busy", 503;
    RouteWaitLimit = "route_wait_limit", 503;
    RequestTooLarge = "request_too_large", 413;
    RequestAborted = "request_aborted", 400;
    ResponseTooLarge = "response_too_large", 502;
    RouteIdleExpired = "route_idle_expired", 410;
    RouteLifetimeExpired = "route_lifetime_expired", 403;
    RouteReleased = "route_released", 410;
    RouteReplaced = "route_replaced", 409;
    IpRateLimited = "ip_rate_limited", 429;
    RouteRateLimited = "route_rate_limited", 429;
    BrokerFull = "broker_full", 503;
    TooManyRoutes = "too_many_routes", 429;
    BrokerStarting = "broker_starting", 503;
    BrokerDraining = "broker_draining", 503;
    BrokerShutdown = "broker_shutdown", 503;
    HostKeyRequired = "host_key_required", 401;
    HostKeyInvalid = "host_key_invalid", 401;
    UnsupportedVersion = "unsupported_version", 400;
    InvalidSlug = "invalid_slug", 400;
    RegisterRequired = "register_required", 400;
    RegisterTimeout = "register_timeout", 408;
    AlreadyRegistered = "already_registered", 409;
    ProtocolError = "protocol_error", 400;
    WebsocketRequired = "websocket_required", 400;
    HostDisconnected = "host_disconnected", 502;
    HostTimeout = "host_timeout", 504;
    HostError = "host_error", 502;
    TargetUnreachable = "target_unreachable", 502;
    TargetTimeout = "target_timeout", 504;
    BadRequest = "bad_request", 400;
    Cancelled = "cancelled", 499;
    ServiceWorkerRefused = "service_worker_refused", 403;
    Internal = "internal", 500;
}

impl Code {
    /// This code as the error contract, with `message`.
    pub fn error(self, message: impl Into<String>) -> crate::protocol::ApiError {
        crate::protocol::ApiError::new(self.status(), self.as_str(), message)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A route slug: a safe slug like a room id (`a-z0-9-`, no edge dash) that is also a
/// plain host-name label, since it names the room's origin (`<slug>.<broker domain>`): at
/// most 63 characters, and never the IDNA-reserved form with `--` in its 3rd and 4th
/// places, so no `xn--` label shows in a browser as a look-alike Unicode name.
pub fn validate_slug(slug: &str) -> Result<(), crate::protocol::NameError> {
    crate::protocol::validate_room_id(slug)?;
    if slug.len() > 63 || slug.get(2..4) == Some("--") {
        return Err(crate::protocol::NameError::NotAHostLabel(slug.to_string()));
    }
    Ok(())
}

/// Splits `/<slug>/rest` into the slug and `/rest` (empty when the path is just `/<slug>`).
pub fn split_slug(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    match rest.find('/') {
        Some(i) => Some((&rest[..i], &rest[i..])),
        None => Some((rest, "")),
    }
}

/// The class of a room-server path for the access log: a fixed vocabulary, so nothing a
/// participant put in the path (ids, aliases, slugs, typos) ever reaches the log.
pub fn path_class(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or("");
    match path {
        "" | "/" | "/index.html" => "page",
        "/wait" => "wait",
        "/messages" => "messages",
        "/card" => "card",
        "/join" => "join",
        "/status" => "status",
        "/brief" => "brief",
        "/attendance" => "attendance",
        "/profile" => "profile",
        "/leave" => "leave",
        "/close" => "close",
        "/invite" => "invite",
        "/remove" => "remove",
        "/export" => "export",
        p if p.starts_with("/assets/") => "asset",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_round_trip() {
        let f = encode_data(0x0102_0304_0506_0708, b"hello");
        assert_eq!(f[0], DATA_FRAME);
        assert_eq!(
            decode_data(&f),
            Some((0x0102_0304_0506_0708, &b"hello"[..]))
        );
        assert_eq!(decode_data(&encode_data(7, b"")), Some((7, &b""[..])));
        assert_eq!(decode_data(&[DATA_FRAME, 1, 2]), None);
        assert_eq!(decode_data(&[9, 0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(decode_data(&[]), None);
    }

    #[test]
    fn frames_read_back_as_written() {
        let m = Message::binary(encode_data(42, b"body"));
        assert_eq!(
            read_frame::<HostFrame>(m),
            Ok(Inbound::Data {
                id: 42,
                payload: Bytes::from_static(b"body")
            })
        );
        let m = Message::text(r#"{"type":"end","id":3}"#);
        assert_eq!(
            read_frame::<HostFrame>(m),
            Ok(Inbound::Control(HostFrame::End { id: 3 }))
        );
        assert_eq!(
            read_frame::<HostFrame>(Message::text("{")),
            Err(FrameError::Control)
        );
        assert_eq!(
            read_frame::<HostFrame>(Message::binary(vec![DATA_FRAME, 1])),
            Err(FrameError::Data)
        );
        assert_eq!(
            read_frame::<HostFrame>(Message::Close(None)),
            Ok(Inbound::Close)
        );
    }

    #[test]
    fn codes_round_trip_their_text() {
        for c in [Code::RouteSlugTaken, Code::IpRateLimited, Code::Internal] {
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        assert_eq!(Code::RouteSlugTaken.status(), 409);
        assert_eq!(Code::parse("<script>"), None);
        assert_eq!(Code::NotFound.error("x").code, "not_found");
    }

    #[test]
    fn control_frames_have_a_type_tag() {
        let f = HostFrame::Register {
            version: 1,
            slug: "demo".into(),
            host_key: None,
            reclaim: None,
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(text, r#"{"type":"register","version":1,"slug":"demo"}"#);
        assert_eq!(serde_json::from_str::<HostFrame>(&text).unwrap(), f);
        let c: BrokerFrame =
            serde_json::from_str(r#"{"type":"credit","id":3,"bytes":10}"#).unwrap();
        assert_eq!(c, BrokerFrame::Credit { id: 3, bytes: 10 });
        assert!(serde_json::from_str::<HostFrame>(r#"{"type":"nope"}"#).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = RouteCredentials {
            route_id: "rt_1".into(),
            route_secret: "rts_canary".into(),
        };
        assert!(!format!("{c:?}").contains("canary"));
    }

    #[test]
    fn slugs_split_off_the_path() {
        assert_eq!(split_slug("/demo/wait"), Some(("demo", "/wait")));
        assert_eq!(split_slug("/demo/"), Some(("demo", "/")));
        assert_eq!(split_slug("/demo"), Some(("demo", "")));
        assert_eq!(
            split_slug("/demo/assets/room.js"),
            Some(("demo", "/assets/room.js"))
        );
        assert_eq!(split_slug("demo"), None);
        assert!(validate_slug("demo-1").is_ok());
        assert!(validate_slug("_agentgather").is_err());
        assert!(validate_slug("").is_err());
        // Host-name labels: no punycode (an `xn--` label renders as Unicode, e.g. a
        // Cyrillic look-alike of another room's name), no reserved `??--`, at most 63.
        for bad in ["xn--80ak6aa92e", "ab--cd", &"a".repeat(64)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
        assert!(validate_slug(&"a".repeat(63)).is_ok());
        assert!(
            validate_slug("a--b").is_ok(),
            "a double dash elsewhere is plain"
        );
    }

    #[test]
    fn path_classes_are_a_fixed_vocabulary() {
        assert_eq!(path_class("/"), "page");
        assert_eq!(path_class("/wait"), "wait");
        assert_eq!(path_class("/assets/room.js"), "asset");
        assert_eq!(path_class("/messages?since_id=3"), "messages");
        assert_eq!(path_class("/secret-canary"), "other");
    }

    #[test]
    fn header_allowlists() {
        assert!(forwards_request_header("Authorization"));
        assert!(forwards_request_header("origin"));
        assert!(!forwards_request_header("cookie"));
        assert!(!forwards_request_header("host"));
        assert!(!forwards_request_header("x-forwarded-for"));
        assert!(forwards_response_header("content-security-policy"));
        assert!(!forwards_response_header("Set-Cookie"));
        assert!(!forwards_response_header("transfer-encoding"));
        assert!(!forwards_response_header("Service-Worker-Allowed"));
        assert!(!forwards_response_header("clear-site-data"));
    }
}
