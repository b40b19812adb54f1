//! One registered host's WebSocket, multiplexed: each participant request is a stream
//! with its own id, a one-shot for the head of its answer and a queue for its body. The
//! connection's reader task feeds answers in here; the request handlers read them out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use super::refusal::{host_disconnected, host_failure, response_too_large};
use crate::protocol::ApiError;
use crate::tunnel::lock;
use crate::tunnel::protocol::{BrokerFrame, Code, FrameTx};

/// The head of a host's answer.
pub(super) struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

pub(super) type HeadResult = Result<Head, ApiError>;
pub(super) type Chunk = Result<Bytes, std::io::Error>;

/// One request in flight on a host connection.
struct Slot {
    head: Option<oneshot::Sender<HeadResult>>,
    body: mpsc::UnboundedSender<Chunk>,
    received: u64,
}

/// A new stream's id and where its answer arrives.
pub(super) struct Opened {
    pub id: u64,
    pub head: oneshot::Receiver<HeadResult>,
    pub body: mpsc::UnboundedReceiver<Chunk>,
}

/// A registered host's WebSocket: a writer queue and the streams it is answering.
pub(super) struct HostConn {
    pub id: u64,
    pub tx: FrameTx,
    streams: Mutex<HashMap<u64, Slot>>,
    alive: AtomicBool,
    next_stream: AtomicU64,
    pub hangup: Notify,
    max_response: u64,
}

impl HostConn {
    pub fn new(id: u64, tx: FrameTx, max_response: u64) -> HostConn {
        HostConn {
            id,
            tx,
            streams: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            next_stream: AtomicU64::new(1),
            hangup: Notify::new(),
            max_response,
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        lock(&self.streams)
    }

    pub fn send(&self, frame: &BrokerFrame) -> bool {
        self.tx.control(frame)
    }

    pub fn send_data(&self, id: u64, payload: &[u8]) -> bool {
        self.tx.data(id, payload)
    }

    /// A new stream, or `None` when this connection is going away.
    pub fn open_stream(&self) -> Option<Opened> {
        let mut streams = self.streams();
        if !self.alive.load(Ordering::SeqCst) {
            return None;
        }
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (head_tx, head) = oneshot::channel();
        let (body_tx, body) = mpsc::unbounded_channel();
        streams.insert(
            id,
            Slot {
                head: Some(head_tx),
                body: body_tx,
                received: 0,
            },
        );
        Some(Opened { id, head, body })
    }

    /// Stops stream `id` here and tells the host, if it was still open.
    pub fn cancel(&self, id: u64) {
        if self.streams().remove(&id).is_some() {
            self.send(&BrokerFrame::Cancel { id });
        }
    }

    pub fn on_response(&self, id: u64, status: u16, headers: Vec<(String, String)>) {
        let head = self.streams().get_mut(&id).and_then(|s| s.head.take());
        if let Some(h) = head {
            let _ = h.send(Ok(Head { status, headers }));
        }
    }

    pub fn on_data(&self, id: u64, payload: Bytes) {
        let mut streams = self.streams();
        let Some(slot) = streams.get_mut(&id) else {
            return;
        };
        slot.received += payload.len() as u64;
        let too_large = slot.received > self.max_response;
        if slot.head.is_none() && !too_large {
            let _ = slot.body.send(Ok(payload));
            return;
        }
        let Some(slot) = streams.remove(&id) else {
            return;
        };
        drop(streams);
        fail_slot(slot, response_too_large(self.max_response));
        self.send(&BrokerFrame::Cancel { id });
    }

    pub fn on_end(&self, id: u64) {
        if let Some(slot) = self.streams().remove(&id)
            && let Some(h) = slot.head
        {
            let _ = h.send(Err(host_failure("")));
        }
    }

    pub fn on_fail(&self, id: u64, code: &str) {
        if let Some(slot) = self.streams().remove(&id) {
            fail_slot(slot, host_failure(code));
        }
    }

    /// The connection is gone: every stream in flight fails now rather than at a timeout.
    pub fn fail_all(&self) {
        let slots: Vec<Slot> = {
            let mut streams = self.streams();
            self.alive.store(false, Ordering::SeqCst);
            streams.drain().map(|(_, s)| s).collect()
        };
        for slot in slots {
            fail_slot(slot, host_disconnected());
        }
    }

    pub fn in_flight(&self) -> usize {
        self.streams().len()
    }

    /// Tells the host why it is cut off, then hangs up. Whether a route ends with it is
    /// not this connection's to decide: the route that it serves owns its end.
    pub fn hang_up(&self, code: Code, message: &str) {
        self.send(&BrokerFrame::Closed {
            code: code.as_str().into(),
            message: message.into(),
        });
        self.tx.close();
        self.hangup.notify_one();
    }
}

fn fail_slot(slot: Slot, err: ApiError) {
    match slot.head {
        Some(h) => {
            let _ = h.send(Err(err));
        }
        None => {
            let _ = slot
                .body
                .send(Err(std::io::Error::other(err.code.to_string())));
        }
    }
}
