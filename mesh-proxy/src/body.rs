//! The response body the proxy hands downstream: an upstream body streamed through (returning
//! its connection to the pool at the end), or a local reply's fixed bytes. An enum rather than
//! a boxed trait object, so forwarding allocates nothing for the body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::pool::Pooled;
use crate::telemetry::Record;
use mesh_resilience::breaker::RequestPermit;
use mesh_resilience::retry::ReplayBody;

/// The request body the pool sends: replayable for retries (RETRY-7), or a pass-through when
/// built with a zero buffer.
pub type SendBody = ReplayBody<RequestBody>;

pin_project! {
    /// A body streamed from an upstream; when it ends, the upstream connection goes back to
    /// the pool. Dropping it early closes that connection instead (it may have unread bytes).
    #[derive(Debug)]
    pub struct UpstreamBody {
        #[pin]
        inner: Incoming,
        pooled: Option<Pooled>,
        // The cluster's active-request permit (`http2MaxRequests`): an exchange counts as
        // active until its response body is done or dropped.
        hold: Option<RequestPermit>,
    }
}

impl UpstreamBody {
    pub(crate) fn new(
        inner: Incoming,
        pooled: Option<Pooled>,
        hold: Option<RequestPermit>,
    ) -> Self {
        let mut body = Self {
            inner,
            pooled,
            hold,
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some(p) = self.pooled.take() {
            p.release();
        }
        self.hold = None;
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let res = this.inner.as_mut().poll_frame(cx);
        let ended = matches!(res, Poll::Ready(None))
            || (matches!(res, Poll::Ready(Some(Ok(_)))) && this.inner.is_end_stream());
        if ended {
            if let Some(p) = this.pooled.take() {
                p.release();
            }
            *this.hold = None;
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// What the proxy answers with: an upstream body or a local reply's bytes.
    #[derive(Debug)]
    pub struct ProxyBody {
        #[pin]
        kind: Kind,
        // The request's telemetry, reported when the body is done (or dropped).
        record: Option<Box<Record>>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind {
        Upstream { #[pin] body: UpstreamBody },
        Local { data: Option<Bytes> },
    }
}

impl ProxyBody {
    /// A body of fixed bytes.
    pub fn local(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            kind: Kind::Local {
                data: Some(data).filter(|d| !d.is_empty()),
            },
            record: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Local { data: None },
            record: None,
        }
    }
}

impl ProxyBody {
    /// Reports `record` once the body has been sent.
    pub(crate) fn with_record(mut self, mut record: Box<Record>) -> Self {
        if self.is_end_stream() {
            record.end();
        }
        self.record = Some(record);
        self
    }
}

impl From<UpstreamBody> for ProxyBody {
    fn from(body: UpstreamBody) -> Self {
        Self {
            kind: Kind::Upstream { body },
            record: None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let (res, at_end) = match this.kind.project() {
            KindProj::Upstream { mut body } => {
                let res = body.as_mut().poll_frame(cx);
                (res, body.is_end_stream())
            }
            KindProj::Local { data } => {
                (Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))), true)
            }
        };
        if let Some(record) = this.record.as_mut() {
            match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        record.sent(d.len());
                    } else if let Some(t) = frame.trailers_ref() {
                        record.trailers(t);
                    }
                    if at_end {
                        record.end();
                    }
                }
                Poll::Ready(None) => record.end(),
                _ => {}
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream { body } => body.is_end_stream(),
            Kind::Local { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body } => body.size_hint(),
            Kind::Local { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

pin_project! {
    /// What the proxy sends upstream: the downstream body as it arrives, the same body copied
    /// to mirrors as it streams (VS-31), or a mirror's copy.
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        kind: RequestKind,
        // Counts the downstream body's bytes for the access log (the primary only).
        received: Option<Arc<AtomicU64>>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    #[derive(Debug)]
    enum RequestKind {
        Plain { #[pin] body: Incoming },
        Tee { #[pin] body: Incoming, copies: Vec<MirrorSender> },
        Copy { rx: tokio::sync::mpsc::Receiver<Bytes>, state: Arc<MirrorState> },
    }
}

/// Chunks a mirror may lag behind the primary before its copy is abandoned: a mirror never
/// slows the primary (VS-31).
const MIRROR_BUFFER: usize = 16;

#[derive(Debug, Default)]
struct MirrorState {
    aborted: AtomicBool,
}

/// The primary's end of one mirror copy. Dropped before the body's end (the primary failed
/// or went away, or the mirror fell behind), it marks the copy incomplete.
#[derive(Debug)]
struct MirrorSender {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    state: Arc<MirrorState>,
    complete: bool,
}

impl Drop for MirrorSender {
    fn drop(&mut self) {
        if !self.complete {
            self.state.aborted.store(true, Ordering::Release);
        }
    }
}

fn finish(copies: &mut Vec<MirrorSender>) {
    for c in copies.iter_mut() {
        c.complete = true;
    }
    copies.clear();
}

/// The downstream body stopped before its end: the mirror copy must fail, not look complete.
#[derive(Debug, thiserror::Error)]
#[error("the mirrored request body was not copied in full")]
pub struct MirrorAborted;

impl RequestBody {
    /// The downstream body, sent once.
    pub fn plain(body: Incoming) -> Self {
        Self {
            kind: RequestKind::Plain { body },
            received: None,
        }
    }

    /// Counts the body's bytes into `counter` as they pass (the access log's bytes received).
    pub(crate) fn metered(mut self, counter: Option<Arc<AtomicU64>>) -> Self {
        self.received = counter;
        self
    }

    /// The downstream body for the primary, plus one copy per mirror (VS-31).
    pub fn tee(body: Incoming, mirrors: usize) -> (Self, Vec<Self>) {
        let mut copies = Vec::with_capacity(mirrors);
        let mut senders = Vec::with_capacity(mirrors);
        for _ in 0..mirrors {
            let (tx, rx) = tokio::sync::mpsc::channel(MIRROR_BUFFER);
            let state = Arc::new(MirrorState::default());
            senders.push(MirrorSender {
                tx,
                state: Arc::clone(&state),
                complete: false,
            });
            copies.push(Self {
                kind: RequestKind::Copy { rx, state },
                received: None,
            });
        }
        if body.is_end_stream() {
            // Nothing to copy: the copies end as soon as they start.
            finish(&mut senders);
        }
        (
            Self {
                kind: RequestKind::Tee {
                    body,
                    copies: senders,
                },
                received: None,
            },
            copies,
        )
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = mesh_core::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let res = poll_request(this.kind, cx);
        if let (Some(counter), Poll::Ready(Some(Ok(frame)))) = (this.received.as_ref(), &res)
            && let Some(data) = frame.data_ref()
        {
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Plain { body } | RequestKind::Tee { body, .. } => body.is_end_stream(),
            RequestKind::Copy { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Plain { body } | RequestKind::Tee { body, .. } => body.size_hint(),
            RequestKind::Copy { .. } => SizeHint::default(),
        }
    }
}

fn poll_request(
    kind: Pin<&mut RequestKind>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, mesh_core::BoxError>>> {
    match kind.project() {
        RequestKindProj::Plain { body } => body.poll_frame(cx).map_err(Into::into),
        RequestKindProj::Tee { mut body, copies } => {
            let res = body.as_mut().poll_frame(cx);
            match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        // A mirror that cannot keep up loses its copy, never the primary.
                        copies.retain(|c| c.tx.try_send(data.clone()).is_ok());
                    }
                    if body.is_end_stream() {
                        finish(copies);
                    }
                }
                Poll::Ready(None) => finish(copies),
                Poll::Ready(Some(Err(_))) => copies.clear(),
                Poll::Pending => {}
            }
            res.map_err(Into::into)
        }
        RequestKindProj::Copy { rx, state } => match rx.poll_recv(cx) {
            Poll::Ready(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(None) if state.aborted.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(MirrorAborted.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        },
    }
}
