//! `ReplayBody`: a request body that a retry can send again (SEMANTICS RETRY-7).
//!
//! The first attempt streams the body as it arrives; every frame it reads is also kept in a
//! buffer shared by all copies. A copy made for a retry replays the buffered frames first and
//! then continues reading the original body where the buffer ends, so a retry never waits for
//! the whole upload. Past a byte cap ([`DEFAULT_MAX_REPLAY_BUFFER`] by default) the buffer is
//! dropped: the body is still sent once, but no further copy can be made (a large upload is
//! not retried), and a copy made earlier fails with [`ReplayError::BufferDropped`] instead of
//! sending a truncated body as if it were complete.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use mesh_core::BoxError;

/// Bytes of request body kept for replay by default: 64 KiB (SEMANTICS RETRY-7, ours;
/// DESIGN.md's limit). Larger bodies are sent once and never retried.
pub const DEFAULT_MAX_REPLAY_BUFFER: usize = 64 * 1024;

/// Why a copy of a [`ReplayBody`] cannot produce its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The body outgrew the replay buffer after this copy was made; the buffer is gone.
    #[error("request body cannot be replayed: it outgrew the replay buffer")]
    BufferDropped,
    /// Reading the original body failed in another copy; it cannot be read again.
    #[error("request body cannot be replayed: reading it failed in an earlier attempt")]
    Failed,
}

/// A request body that can be copied for retries while it is read (see the module docs).
///
/// Built with a `max_buffer` of 0 it is a plain pass-through (no allocation, no shared
/// state) and [`ReplayBody::try_clone`] always returns `None`.
///
/// The wrapped body must be `Unpin` (hyper's `Incoming` and `http-body-util`'s bodies are);
/// wrap another body in `Pin<Box<_>>` first. `ReplayBody<B>` is `Send` and `Sync` when `B` is
/// `Send`.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use mesh_resilience::retry::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 1024);
/// let copy = body.try_clone().expect("nothing read yet");
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
/// assert_eq!(copy.collect().await.unwrap().to_bytes(), "hello");
/// # }
/// ```
pub struct ReplayBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    /// A body known to be empty (`is_end_stream` at the start, as for most GETs): every copy
    /// is empty too, so no buffer, no `Arc` and no lock are needed.
    Empty,
    /// Not replayable. The mutex is never locked on the read path (`get_mut`); it only makes
    /// the body `Sync` for a `Send` inner body.
    Once(Mutex<B>),
    Replay(Replay<B>),
}

/// One copy of a replayable body: its read position in the shared state.
struct Replay<B> {
    shared: Arc<Mutex<Shared<B>>>,
    id: u64,
    /// Index of the next buffered chunk to send.
    pos: usize,
    /// Data bytes this copy has produced.
    consumed: usize,
    trailers_sent: bool,
    /// This copy returned its end (or an error): nothing more.
    done: bool,
}

/// What all copies share.
struct Shared<B> {
    /// The original body; `None` once it ended or failed.
    inner: Option<B>,
    /// Data frames read so far, while the body is replayable.
    chunks: Vec<Bytes>,
    /// Data bytes read from `inner`.
    read: usize,
    max: usize,
    /// Trailers, once read (replayed to every copy).
    trailers: Option<HeaderMap>,
    /// `inner` reached its end.
    ended: bool,
    status: Status,
    next_id: u64,
    /// Copies waiting for `inner` to produce a frame. The inner body keeps only the waker of
    /// the last copy that polled it, so whoever reads a frame wakes the others.
    waiters: Vec<(u64, Waker)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Replayable,
    /// The buffer was dropped; only copy `leader` (which read past the cap) may go on.
    Capped {
        leader: u64,
    },
    Failed,
}

// === impl ReplayBody ===

impl<B: Body> ReplayBody<B> {
    /// Wraps `body`, keeping up to `max_buffer` bytes for replay (0 = never replayable).
    pub fn new(body: B, max_buffer: usize) -> Self {
        if max_buffer > 0 && body.is_end_stream() {
            // Nothing to send: replaying nothing is free (and the trailers-less empty body is
            // what every copy sends).
            return Self { kind: Kind::Empty };
        }
        if max_buffer == 0 {
            return Self {
                kind: Kind::Once(Mutex::new(body)),
            };
        }
        let shared = Shared {
            inner: Some(body),
            chunks: Vec::new(),
            read: 0,
            max: max_buffer,
            trailers: None,
            ended: false,
            status: Status::Replayable,
            next_id: 1,
            waiters: Vec::new(),
        };
        Self {
            kind: Kind::Replay(Replay::new(Arc::new(Mutex::new(shared)), 0)),
        }
    }
}

impl<B> ReplayBody<B> {
    /// A copy that sends the body from its start: the frames read so far, then the rest of
    /// the original body. `None` when the body is not replayable: built with a zero buffer,
    /// more than `max_buffer` bytes already read, or reading it failed.
    pub fn try_clone(&self) -> Option<Self> {
        let r = match &self.kind {
            Kind::Empty => return Some(Self { kind: Kind::Empty }),
            Kind::Once(_) => return None,
            Kind::Replay(r) => r,
        };
        let id = {
            let mut s = lock(&r.shared);
            if s.status != Status::Replayable {
                return None;
            }
            let id = s.next_id;
            s.next_id += 1;
            id
        };
        Some(Self {
            kind: Kind::Replay(Replay::new(Arc::clone(&r.shared), id)),
        })
    }

    /// Whether [`Self::try_clone`] would return a copy now.
    pub fn is_replayable(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Once(_) => false,
            Kind::Replay(r) => lock(&r.shared).status == Status::Replayable,
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ReplayBody");
        match &self.kind {
            Kind::Empty => d.field("empty", &true),
            Kind::Once(_) => d.field("replayable", &false),
            Kind::Replay(r) => d
                .field("copy", &r.id)
                .field("pos", &r.pos)
                .field("consumed", &r.consumed),
        }
        .finish_non_exhaustive()
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Once(body) => {
                let body = body.get_mut().unwrap_or_else(PoisonError::into_inner);
                Pin::new(body)
                    .poll_frame(cx)
                    .map_ok(|f| f.map_data(into_bytes))
                    .map_err(Into::into)
            }
            Kind::Replay(r) => r.poll_frame(cx),
            Kind::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Once(body) => lock(body).is_end_stream(),
            Kind::Replay(r) => r.is_end_stream(),
            Kind::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Once(body) => lock(body).size_hint(),
            Kind::Replay(r) => r.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
        }
    }
}

// === impl Replay ===

impl<B> Replay<B> {
    fn new(shared: Arc<Mutex<Shared<B>>>, id: u64) -> Self {
        Self {
            shared,
            id,
            pos: 0,
            consumed: 0,
            trailers_sent: false,
            done: false,
        }
    }

    /// Whether this copy lost the race for the body: the buffer was dropped (or reading
    /// failed) and it is not the copy still streaming the original.
    fn is_lost(&self, s: &Shared<B>) -> bool {
        match s.status {
            Status::Replayable => false,
            Status::Capped { leader } => leader != self.id,
            Status::Failed => true,
        }
    }
}

impl<B> Replay<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // The lock is held for this one poll only, never across an await.
        let shared = Arc::clone(&self.shared);
        let mut s = lock(&shared);
        if self.is_lost(&s) {
            self.done = true;
            let error = if s.status == Status::Failed {
                ReplayError::Failed
            } else {
                ReplayError::BufferDropped
            };
            return Poll::Ready(Some(Err(error.into())));
        }
        if let Some(chunk) = s.chunks.get(self.pos) {
            self.pos += 1;
            self.consumed += chunk.len();
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if s.ended {
            return Poll::Ready(self.finish(&s));
        }
        let Some(inner) = s.inner.as_mut() else {
            // Not ended and no body: only after a failure, handled above.
            self.done = true;
            return Poll::Ready(Some(Err(ReplayError::Failed.into())));
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match polled {
            Poll::Pending => {
                let waker = cx.waker();
                match s.waiters.iter_mut().find(|(id, _)| *id == self.id) {
                    Some((_, w)) => w.clone_from(waker),
                    None => s.waiters.push((self.id, waker.clone())),
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                s.ended = true;
                s.inner = None;
                wake_others(&mut s, self.id);
                Poll::Ready(self.finish(&s))
            }
            Poll::Ready(Some(Err(e))) => {
                s.status = Status::Failed;
                s.inner = None;
                s.chunks = Vec::new();
                wake_others(&mut s, self.id);
                self.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = frame.map_data(into_bytes);
                wake_others(&mut s, self.id);
                if let Some(data) = frame.data_ref() {
                    s.read = s.read.saturating_add(data.len());
                    self.consumed += data.len();
                    if s.status == Status::Replayable {
                        if s.read > s.max {
                            // RETRY-7 (ours): past the cap the body is sent once; the buffer
                            // goes, and so does every other copy.
                            s.status = Status::Capped { leader: self.id };
                            s.chunks = Vec::new();
                        } else {
                            s.chunks.push(data.clone());
                            self.pos += 1;
                        }
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    s.trailers = Some(trailers.clone());
                    s.ended = true;
                    s.inner = None;
                    self.trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    /// The end of this copy once every data frame was sent: the trailers once, then `None`.
    fn finish(&mut self, s: &Shared<B>) -> Option<Result<Frame<Bytes>, BoxError>> {
        match &s.trailers {
            Some(t) if !self.trailers_sent => {
                self.trailers_sent = true;
                Some(Ok(Frame::trailers(t.clone())))
            }
            _ => {
                self.done = true;
                None
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        let s = lock(&self.shared);
        if self.is_lost(&s) || self.pos < s.chunks.len() {
            return false;
        }
        if s.ended {
            return s.trailers.is_none() || self.trailers_sent;
        }
        s.inner.as_ref().is_some_and(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(0);
        }
        let s = lock(&self.shared);
        if self.is_lost(&s) {
            return SizeHint::default();
        }
        // While replayable every byte read is buffered; a capped leader has read them all.
        let buffered = match s.status {
            Status::Replayable => s.read.saturating_sub(self.consumed),
            _ => 0,
        };
        let buffered = u64::try_from(buffered).unwrap_or(u64::MAX);
        match (&s.inner, s.ended) {
            (Some(inner), false) => {
                let rest = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(buffered));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(buffered));
                }
                hint
            }
            _ => SizeHint::with_exact(buffered),
        }
    }
}

impl<B> Drop for Replay<B> {
    fn drop(&mut self) {
        // If this copy was the last to poll the original body, the body holds its waker:
        // wake the others so one of them polls (and registers) again.
        let mut s = lock(&self.shared);
        s.waiters.retain(|(id, _)| *id != self.id);
        wake_others(&mut s, self.id);
    }
}

fn wake_others<B>(s: &mut Shared<B>, me: u64) {
    for (id, waker) in s.waiters.drain(..) {
        if id != me {
            waker.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn into_bytes<D: Buf>(mut data: D) -> Bytes {
    // Free for `Bytes` (it hands over its own storage).
    let len = data.remaining();
    data.copy_to_bytes(len)
}
