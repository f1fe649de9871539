//! The response body the proxy hands downstream: an upstream body streamed through (returning
//! its connection to the pool at the end), or a local reply's fixed bytes. An enum rather than
//! a boxed trait object, so forwarding allocates nothing for the body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::pool::Pooled;

pin_project! {
    /// A body streamed from an upstream; when it ends, the upstream connection goes back to
    /// the pool. Dropping it early closes that connection instead (it may have unread bytes).
    #[derive(Debug)]
    pub struct UpstreamBody {
        #[pin]
        inner: Incoming,
        pooled: Option<Pooled>,
    }
}

impl UpstreamBody {
    pub(crate) fn new(inner: Incoming, pooled: Option<Pooled>) -> Self {
        let mut body = Self { inner, pooled };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some(p) = self.pooled.take() {
            p.release();
        }
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
        if ended && let Some(p) = this.pooled.take() {
            p.release();
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
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Local { data: None },
        }
    }
}

impl From<UpstreamBody> for ProxyBody {
    fn from(body: UpstreamBody) -> Self {
        Self {
            kind: Kind::Upstream { body },
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
        match self.project().kind.project() {
            KindProj::Upstream { body } => body.poll_frame(cx),
            KindProj::Local { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
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
