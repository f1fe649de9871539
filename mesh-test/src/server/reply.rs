//! [`Reply`]: what a [`TestServer`](crate::TestServer) answers to one request.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// What the server answers to one request: status, extra headers, body and delay.
///
/// [`Reply::echo`] (also the `Default`) answers 200 and streams the request body back.
/// Setting a body with [`Reply::body`] replaces the echo: the server then reads the whole
/// request body (counting it, keeping none of it) before it answers, so HTTP/1 connections
/// stay reusable. [`TestServerBuilder`](crate::TestServerBuilder) holds one `Reply` for every
/// request; a [handler](crate::TestServerBuilder::handler) returns one per request.
///
/// Invalid input (a status outside 100..=999, a header name or value that is not valid HTTP)
/// is not a panic: the builder's [`try_start`](crate::TestServerBuilder::try_start) reports it,
/// and a handler's invalid reply is answered with 500 and the error text as body.
#[derive(Clone)]
#[must_use]
pub struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// `None`: echo the request body.
    pub(crate) body: Option<Bytes>,
    /// `(chunks, interval)` of a slow body.
    pub(crate) slow: Option<(usize, Duration)>,
    pub(crate) delay: Duration,
    /// The first invalid input given to a builder method.
    pub(crate) error: Option<String>,
}

impl Reply {
    /// 200 with the request body streamed back as it arrives.
    pub fn echo() -> Self {
        Self {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: None,
            slow: None,
            delay: Duration::ZERO,
            error: None,
        }
    }

    /// `status` with an empty body (the request body is read and discarded first).
    pub fn new(status: u16) -> Self {
        Self::echo().status(status).body(Bytes::new())
    }

    /// Sets the status code (100..=999).
    pub fn status(mut self, status: u16) -> Self {
        match StatusCode::from_u16(status) {
            Ok(status) => self.status = status,
            Err(_) => self.fail(format!("invalid status code {status}")),
        }
        self
    }

    /// Adds a response header (appended, so a name may repeat). A name the server sets itself
    /// (`x-served-by`, `x-seen-*`) is replaced by the value given here.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.fail(format!("invalid header {name:?}: {value:?}")),
        }
        self
    }

    /// Answers with this fixed body instead of echoing the request body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Waits this long before sending the response headers.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the headers at once, then the body as `chunks` frames, each after waiting
    /// `interval`. Each frame is the [`body`](Reply::body) if one was set, else the single byte
    /// `.`. The request body is read and discarded first. Sent without `content-length` (HTTP/1
    /// uses chunked framing).
    pub fn slow_body(mut self, chunks: usize, interval: Duration) -> Self {
        self.slow = Some((chunks, interval));
        self
    }

    fn fail(&mut self, error: String) {
        self.error.get_or_insert(error);
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::echo()
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Reply");
        d.field("status", &self.status)
            .field("headers", &self.headers);
        match &self.body {
            None => d.field("body", &"<echo>"),
            Some(body) => d.field("body", body),
        };
        d.field("slow", &self.slow)
            .field("delay", &self.delay)
            .field("error", &self.error)
            .finish()
    }
}

// === impl SlowBody ===

/// A body that yields `remaining` copies of `chunk`, one per `interval`.
pub(crate) struct SlowBody {
    chunk: Bytes,
    remaining: usize,
    interval: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl SlowBody {
    pub(crate) fn new(chunk: Bytes, chunks: usize, interval: Duration) -> Self {
        Self {
            chunk,
            remaining: chunks,
            interval,
            sleep: Box::pin(tokio::time::sleep(interval)),
        }
    }
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        ready!(self.sleep.as_mut().poll(cx));
        self.remaining -= 1;
        let next = Instant::now() + self.interval;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}
