//! How many pages one participant may have in flight. A page is built in memory (read,
//! parsed, encoded) and then held until the connection takes it; 500 concurrent reads
//! of unread pages from one token once took the server to 2 GB. Each participant gets a
//! few page slots: a read beyond them waits its turn (it is not refused, so a browser's
//! tabs and an agent's retries just queue), and a slot is released only when the last
//! bytes of its answer have been handed to the connection, so the bound covers the
//! encoded answer too, not only its construction.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pages one participant may have in flight at once.
pub const PAGE_SLOTS: usize = 4;

/// The page slots of every participant, by participant index.
#[derive(Default)]
pub struct PageReads {
    slots: Mutex<HashMap<usize, Arc<Semaphore>>>,
}

/// One taken slot (`None` only if the semaphore were closed, which it never is).
pub struct PageSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl PageReads {
    /// Waits for one of `who`'s slots.
    pub async fn slot(&self, who: usize) -> PageSlot {
        let sem = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(who)
            .or_insert_with(|| Arc::new(Semaphore::new(PAGE_SLOTS)))
            .clone();
        PageSlot {
            _permit: sem.acquire_owned().await.ok(),
        }
    }
}

impl PageSlot {
    /// `resp`, keeping this slot taken until its body has been handed over.
    pub fn answer(self, resp: Response) -> Response {
        let (parts, body) = resp.into_parts();
        Response::from_parts(
            parts,
            Body::new(SlotBody {
                inner: body,
                _slot: self,
            }),
        )
    }
}

/// A body that holds a page slot while it is being sent.
struct SlotBody {
    inner: Body,
    _slot: PageSlot,
}

impl HttpBody for SlotBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
