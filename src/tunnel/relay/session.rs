//! One connection to the broker, from connect to hang-up, in three parts: the handshake
//! (register or reclaim, wait for the broker's answer), dispatch (the broker's frames:
//! requests, bodies, credit, cancels, the route's end), and stopping (let answers in
//! flight finish, release the route, wait for the broker to confirm).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::forward::{LocalRequest, Streams, start_request};
use super::room::{Stop, stopped};
use super::{Cx, Event, forget_route, save_route, spawn_url_setter};
use crate::protocol::timefmt::format_ms;
use crate::tunnel::lock;
use crate::tunnel::protocol::{
    BrokerFrame, Code, FrameTx, HostFrame, Inbound, PROTOCOL_VERSION, ROUTE_CHECK_PATH,
    RouteCredentials, RouteLimits, read_frame, spawn_writer, ws_config,
};

/// How a session ended.
pub(super) enum SessionEnd {
    Stopped(Stop),
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    Closed {
        code: String,
        message: String,
    },
    Lost(String),
}

type Incoming = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
>;

/// One connection to the broker, from connect to hang-up.
pub(super) async fn session(
    cx: &Cx,
    creds: &mut Option<RouteCredentials>,
    stop: &mut watch::Receiver<Option<Stop>>,
    registered: &mut bool,
) -> SessionEnd {
    // The slug in the query lets a balancer in front of several broker instances send the
    // host to the instance its room's name maps to.
    let url = format!("{}?slug={}", cx.ws_url, cx.cfg.slug);
    let request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => return SessionEnd::Lost(format!("bad broker URL: {e}")),
    };
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config()),
        true,
        Some(cx.connector.clone()),
    );
    let connected = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(10), connect) => r,
        s = stopped(stop) => return SessionEnd::Stopped(s),
    };
    let ws = match connected {
        Err(_) => return SessionEnd::Lost("the broker did not answer in time".into()),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            return SessionEnd::Lost(format!("the broker answered HTTP {}", resp.status()));
        }
        Ok(Err(e)) => return SessionEnd::Lost(format!("cannot reach the broker: {e}")),
        Ok(Ok((ws, _))) => ws,
    };
    let (sink, mut incoming) = ws.split();
    let (tx, writer) = spawn_writer(sink);
    let streams: Streams = Arc::new(Mutex::new(HashMap::new()));
    let end = match handshake(cx, creds.clone(), stop, &tx, &mut incoming).await {
        Ok((route, heartbeat, limits)) => {
            *creds = Some(route.clone());
            *registered = true;
            let mut live = Live {
                cx,
                tx: &tx,
                streams: &streams,
                route,
                limits,
                stopping: None,
                released_at: None,
            };
            live.run(&mut incoming, stop, heartbeat).await
        }
        Err(end) => end,
    };
    let tasks: Vec<AbortHandle> = lock(&streams).drain().filter_map(|(_, s)| s.task).collect();
    for t in tasks {
        t.abort();
    }
    tx.close();
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
    end
}

/// Registers (or reclaims with `creds`) and waits for the broker's answer.
async fn handshake(
    cx: &Cx,
    creds: Option<RouteCredentials>,
    stop: &mut watch::Receiver<Option<Stop>>,
    tx: &FrameTx,
    incoming: &mut Incoming,
) -> Result<(RouteCredentials, Duration, RouteLimits), SessionEnd> {
    tx.control(&HostFrame::Register {
        version: PROTOCOL_VERSION,
        slug: cx.cfg.slug.clone(),
        host_key: cx.cfg.host_key.clone(),
        reclaim: creds,
    });
    let first = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(15), incoming.next()) => r,
        s = stopped(stop) => return Err(SessionEnd::Stopped(s)),
    };
    let m = match first {
        Err(_) => {
            return Err(SessionEnd::Lost(
                "the broker did not confirm the route in time".into(),
            ));
        }
        Ok(Some(Ok(m))) => m,
        Ok(_) => {
            return Err(SessionEnd::Lost(
                "the broker hung up before confirming the route".into(),
            ));
        }
    };
    match read_frame::<BrokerFrame>(m) {
        Ok(Inbound::Control(BrokerFrame::Registered {
            route,
            public_url,
            reclaimed,
            heartbeat_ms,
            expires_at_ms,
            limits,
            ..
        })) => {
            save_route(&cx.cfg, &cx.ws_url, &route);
            lock(&cx.broker_urls).push(public_url.clone());
            (cx.emit)(Event::Registered {
                public_url: public_url.clone(),
                reclaimed,
                expires_at: format_ms(expires_at_ms),
            });
            spawn_url_setter(cx, public_url);
            Ok((route, Duration::from_millis(heartbeat_ms.max(100)), limits))
        }
        Ok(Inbound::Control(BrokerFrame::Refused {
            status,
            code,
            message,
        })) => Err(SessionEnd::Refused {
            status,
            code,
            message,
        }),
        _ => Err(SessionEnd::Lost(
            "the broker answered something unexpected".into(),
        )),
    }
}

/// A registered session.
struct Live<'a> {
    cx: &'a Cx,
    tx: &'a FrameTx,
    streams: &'a Streams,
    route: RouteCredentials,
    limits: RouteLimits,
    /// Why and until when answers in flight may finish before the release.
    stopping: Option<(Stop, Instant)>,
    released_at: Option<Instant>,
}

impl Live<'_> {
    async fn run(
        &mut self,
        incoming: &mut Incoming,
        stop: &mut watch::Receiver<Option<Stop>>,
        heartbeat: Duration,
    ) -> SessionEnd {
        let mut hb = tokio::time::interval(heartbeat);
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let silent_after = heartbeat * 3 + Duration::from_secs(5);
        let mut last_heard = Instant::now();
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        let every = self.cx.cfg.route_check.unwrap_or(Duration::from_secs(3600));
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe: Option<tokio::task::JoinHandle<bool>> = None;
        loop {
            tokio::select! {
                _ = check.tick(), if self.cx.cfg.route_check.is_some() && probe.is_none() => {
                    probe = Some(self.spawn_route_check());
                }
                moved = async {
                    match probe.as_mut() {
                        Some(p) => p.await.unwrap_or(false),
                        None => std::future::pending().await,
                    }
                } => {
                    probe = None;
                    if moved {
                        return SessionEnd::Lost(
                            "the broker's balancer now sends this slug to another instance; moving there".into(),
                        );
                    }
                }
                m = incoming.next() => {
                    let Some(Ok(m)) = m else {
                        return self.hung_up("the connection to the broker dropped");
                    };
                    last_heard = Instant::now();
                    if let Some(end) = self.dispatch(m) {
                        return end;
                    }
                }
                _ = hb.tick() => {
                    if last_heard.elapsed() > silent_after {
                        return SessionEnd::Lost("the broker went silent".into());
                    }
                    self.tx.control(&HostFrame::Heartbeat { route: self.route.clone() });
                }
                s = stopped(stop), if self.stopping.is_none() => {
                    // Let answers in flight finish: a closing room's last waits carry the news.
                    let grace = match s {
                        Stop::RoomClosed => Duration::from_secs(5),
                        Stop::Signal => Duration::from_secs(1),
                    };
                    self.stopping = Some((s, Instant::now() + grace));
                }
                _ = poll.tick(), if self.stopping.is_some() => {
                    if let Some(end) = self.stop_step() {
                        return end;
                    }
                }
            }
        }
    }

    /// Asks the broker, through its balancer (a new connection, so it lands where
    /// participants land), whether that instance holds this route; `true` when it
    /// answers that it does not.
    fn spawn_route_check(&self) -> tokio::task::JoinHandle<bool> {
        let base = self.cx.cfg.broker.clone();
        let path = format!(
            "{}?slug={}&route_id={}",
            ROUTE_CHECK_PATH, self.cx.cfg.slug, self.route.route_id
        );
        tokio::task::spawn_blocking(move || {
            let client = crate::client::Client::new(&base, "", Duration::from_secs(5));
            match client.get::<serde_json::Value>(&path) {
                Ok(_) => false,
                Err(e) => e.status() == Some(404) && e.code() == Some("not_found"),
            }
        })
    }

    /// The broker hung up: the end of a release we asked for, or a lost connection.
    fn hung_up(&self, why: &str) -> SessionEnd {
        match (self.stopping, self.released_at) {
            (Some((s, _)), Some(_)) => SessionEnd::Stopped(s),
            _ => SessionEnd::Lost(why.into()),
        }
    }

    /// One message from the broker; `Some` ends the session.
    fn dispatch(&mut self, m: tokio_tungstenite::tungstenite::Message) -> Option<SessionEnd> {
        match read_frame::<BrokerFrame>(m) {
            Ok(Inbound::Control(f)) => self.on_control(f),
            Ok(Inbound::Data { id, payload }) => {
                self.on_data(id, payload);
                None
            }
            Ok(Inbound::Close) => Some(self.hung_up("the broker closed the connection")),
            Ok(Inbound::Other) => None,
            Err(crate::tunnel::protocol::FrameError::Data) => None,
            Err(_) => Some(SessionEnd::Lost(
                "the broker sent an unreadable frame".into(),
            )),
        }
    }

    fn on_control(&mut self, f: BrokerFrame) -> Option<SessionEnd> {
        match f {
            BrokerFrame::Request {
                id,
                method,
                path,
                headers,
            } => {
                let req = LocalRequest {
                    id,
                    method,
                    path,
                    headers,
                };
                start_request(
                    &self.cx.target,
                    self.tx,
                    self.streams,
                    req,
                    self.limits.max_response,
                );
            }
            BrokerFrame::End { id } => {
                if let Some(s) = lock(self.streams).get_mut(&id) {
                    s.body = None;
                }
            }
            BrokerFrame::Cancel { id } => {
                if let Some(t) = lock(self.streams).remove(&id).and_then(|s| s.task) {
                    t.abort();
                }
            }
            BrokerFrame::Credit { id, bytes } => {
                if let Some(s) = lock(self.streams).get(&id) {
                    s.window.add_permits(bytes as usize);
                }
            }
            BrokerFrame::Error { code, message } => {
                (self.cx.emit)(Event::Warning {
                    message: format!("the broker refused a frame: {message} ({code})"),
                });
            }
            BrokerFrame::Closed { code, message } => {
                if Code::parse(&code) == Some(Code::RouteReleased)
                    && let Some((s, _)) = self.stopping
                {
                    forget_route(&self.cx.cfg);
                    (self.cx.emit)(Event::Released);
                    return Some(SessionEnd::Stopped(s));
                }
                return Some(SessionEnd::Closed { code, message });
            }
            _ => {}
        }
        None
    }

    /// A piece of a request body; past the limit the request is failed.
    fn on_data(&mut self, id: u64, payload: Bytes) {
        let over = {
            let mut map = lock(self.streams);
            match map.get_mut(&id) {
                Some(s) => {
                    s.received += payload.len() as u64;
                    if s.received > self.limits.max_request_body {
                        true
                    } else {
                        if let Some(b) = &s.body {
                            let _ = b.send(payload);
                        }
                        false
                    }
                }
                None => false,
            }
        };
        if over {
            if let Some(t) = lock(self.streams).remove(&id).and_then(|s| s.task) {
                t.abort();
            }
            self.tx.control(&HostFrame::Fail {
                id,
                code: Code::RequestTooLarge.as_str().into(),
                message: "the request body is over the limit".into(),
            });
        }
    }

    /// Stopping: release once answers in flight are done (or their grace is over), then
    /// give the broker a moment to confirm.
    fn stop_step(&mut self) -> Option<SessionEnd> {
        let (s, deadline) = self.stopping?;
        match self.released_at {
            None => {
                if lock(self.streams).is_empty() || Instant::now() >= deadline {
                    self.tx.control(&HostFrame::Release {
                        route: self.route.clone(),
                    });
                    self.released_at = Some(Instant::now());
                }
                None
            }
            Some(at) if at.elapsed() > Duration::from_secs(3) => Some(SessionEnd::Stopped(s)),
            Some(_) => None,
        }
    }
}
