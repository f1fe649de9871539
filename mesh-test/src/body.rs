//! Bodies for tests: a boxed [`TestBody`], a large body of zeros that is never held in memory
//! ([`counting_body`]) and a byte-counting drain ([`drain_and_count`]).
//!
//! Large-transfer tests (a 1 GiB upload through the proxy) must keep memory flat on both ends:
//! [`CountingBody`] hands out slices of one shared chunk, and [`drain_and_count`] drops each
//! frame as soon as it has counted it.

use std::convert::Infallible;
use std::fmt;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::BoxError;

// === impl TestBody ===

/// A type-erased request or response body (`Bytes` data, [`BoxError`] errors).
///
/// The body type to pick for [`http1_client`](crate::http1_client) and
/// [`h2c_client`](crate::h2c_client): build it from a string, `Bytes`, a `Vec<u8>`, a
/// [`CountingBody`], or any other body with [`TestBody::new`].
pub struct TestBody(UnsyncBoxBody<Bytes, BoxError>);

impl TestBody {
    /// Wraps any body whose data is `Bytes`.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(UnsyncBoxBody::new(body.map_err(Into::into)))
    }

    /// An empty body (ends at once, `content-length: 0` where one is sent).
    pub fn empty() -> Self {
        Self::new(Empty::<Bytes>::new())
    }

    /// A body of `total_bytes` zeros sent in frames of `chunk_size` bytes; see
    /// [`counting_body`].
    pub fn zeros(total_bytes: u64, chunk_size: usize) -> Self {
        Self::new(counting_body(total_bytes, chunk_size))
    }

    fn full(bytes: Bytes) -> Self {
        Self::new(Full::new(bytes))
    }
}

impl Default for TestBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for TestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBody")
            .field("size_hint", &self.0.size_hint())
            .finish_non_exhaustive()
    }
}

impl From<Bytes> for TestBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<&'static str> for TestBody {
    fn from(s: &'static str) -> Self {
        Self::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for TestBody {
    fn from(s: &'static [u8]) -> Self {
        Self::full(Bytes::from_static(s))
    }
}

impl From<String> for TestBody {
    fn from(s: String) -> Self {
        Self::full(Bytes::from(s))
    }
}

impl From<Vec<u8>> for TestBody {
    fn from(v: Vec<u8>) -> Self {
        Self::full(Bytes::from(v))
    }
}

impl From<CountingBody> for TestBody {
    fn from(body: CountingBody) -> Self {
        Self::new(body)
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

// === impl CountingBody ===

/// A body of zeros of a given length, produced frame by frame from one shared chunk.
///
/// Made by [`counting_body`]. Memory use is one chunk however long the body is. By default it
/// reports its exact length, so HTTP/1 clients send `content-length`; call
/// [`CountingBody::unknown_length`] to have them use `transfer-encoding: chunked` instead.
#[derive(Clone, Debug)]
pub struct CountingBody {
    remaining: u64,
    chunk: Bytes,
    exact_length: bool,
}

/// A body of `total_bytes` zeros, sent as frames of at most `chunk_size` bytes.
///
/// Only one chunk is ever allocated (frames are slices of it), so a 1 GiB upload costs
/// `chunk_size` bytes of memory. A `chunk_size` of 0 is treated as 1.
pub fn counting_body(total_bytes: u64, chunk_size: usize) -> CountingBody {
    CountingBody {
        remaining: total_bytes,
        chunk: Bytes::from(vec![0u8; chunk_size.max(1)]),
        exact_length: true,
    }
}

impl CountingBody {
    /// Stops reporting the exact length: HTTP/1 clients then frame the body with
    /// `transfer-encoding: chunked` rather than `content-length`.
    #[must_use]
    pub fn unknown_length(mut self) -> Self {
        self.exact_length = false;
        self
    }

    /// Bytes not yet produced.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = self
            .chunk
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact_length {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::new()
        }
    }
}

// === drain_and_count ===

/// Reads `body` to its end, dropping each frame once counted, and returns the number of data
/// bytes it carried. Trailers are read and ignored.
///
/// Returns the body's error if it fails midway (a reset stream, a truncated HTTP/1 body).
pub async fn drain_and_count<B: Body>(body: B) -> Result<u64, B::Error> {
    let mut body = pin!(body);
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            total += data.remaining() as u64;
        }
    }
    Ok(total)
}

// === impl Counted (server side) ===

/// What [`Counted`] has seen of one body so far, shared with the request log.
#[derive(Debug, Default)]
pub(crate) struct BodyStats {
    bytes: AtomicU64,
    complete: AtomicBool,
}

impl BodyStats {
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    pub(crate) fn complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }
}

/// Forwards an inner body frame by frame, counting data bytes into [`BodyStats`] as they pass.
#[derive(Debug)]
pub(crate) struct Counted<B> {
    inner: B,
    stats: Arc<BodyStats>,
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, stats: Arc<BodyStats>) -> Self
    where
        B: Body,
    {
        if inner.is_end_stream() {
            stats.complete.store(true, Ordering::Release);
        }
        Self { inner, stats }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.stats
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::AcqRel);
                }
                if this.inner.is_end_stream() {
                    this.stats.complete.store(true, Ordering::Release);
                }
            }
            Poll::Ready(None) => this.stats.complete.store(true, Ordering::Release),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // hyper may never poll a body that reports its end, so record completion here too.
        let end = self.inner.is_end_stream();
        if end {
            self.stats.complete.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
