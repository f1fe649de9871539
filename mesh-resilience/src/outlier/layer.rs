//! `OutlierDetectionLayer`: reports each attempt's outcome to the cluster's detector.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use mesh_core::BoxError;
use mesh_core::classify::{Failure, Outcome};
use mesh_core::extensions::{AttemptDeadline, UpstreamEndpoint};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::detector::OutlierDetector;

/// Feeds a cluster's [`OutlierDetector`] with the outcome of every attempt (OD-2).
///
/// **One detector per cluster** (OD-9): the layer trusts that every request it sees was routed
/// to the cluster the detector belongs to; the same endpoint reached through two subsets has
/// two detectors and two states.
///
/// Place it per attempt, after routing has inserted the [`UpstreamEndpoint`] extension, and
/// outside the per-try timeout and the circuit breaker: a per-try timeout must reach it as an
/// error (`Failure::PerTryTimeout`) to be counted, and a breaker overflow reaches it as
/// `Failure::Overflow`, which it ignores (OD-3).
#[derive(Clone, Debug)]
#[must_use]
pub struct OutlierDetectionLayer {
    detector: Arc<OutlierDetector>,
}

impl OutlierDetectionLayer {
    /// A layer reporting to `detector`.
    pub fn new(detector: Arc<OutlierDetector>) -> Self {
        Self { detector }
    }
}

impl<S> Layer<S> for OutlierDetectionLayer {
    type Service = OutlierDetection<S>;

    fn layer(&self, inner: S) -> OutlierDetection<S> {
        OutlierDetection::new(inner, Arc::clone(&self.detector))
    }
}

/// The service of [`OutlierDetectionLayer`].
///
/// For a request carrying an [`UpstreamEndpoint`]: sweeps the endpoint's set if a sweep is due
/// ([`OutlierDetector::maybe_sweep`]), calls the inner service, then reports
/// [`Outcome::from_response`] or [`Outcome::from_error`] for that endpoint. Requests without
/// the extension pass through untouched. Errors are boxed ([`BoxError`]), not changed.
#[derive(Clone, Debug)]
pub struct OutlierDetection<S> {
    inner: S,
    detector: Arc<OutlierDetector>,
}

impl<S> OutlierDetection<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, detector: Arc<OutlierDetector>) -> Self {
        Self { inner, detector }
    }

    /// The detector.
    pub fn detector(&self) -> &Arc<OutlierDetector> {
        &self.detector
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for OutlierDetection<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = OutlierDetectionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let target = req.extensions().get::<UpstreamEndpoint>().cloned();
        if let Some(target) = &target {
            self.detector.maybe_sweep(&target.set, Instant::now());
        }
        let deadline = req.extensions().get::<AttemptDeadline>().copied();
        OutlierDetectionFuture {
            inner: self.inner.call(req),
            report: target.map(|t| (Arc::clone(&self.detector), t)),
            deadline,
        }
    }
}

pin_project! {
    /// The future of [`OutlierDetection`]: the inner call, then a report.
    ///
    /// The outcome is reported when response headers arrive or the inner call fails. Dropped
    /// before then, it reports a timeout if the attempt's [`AttemptDeadline`] (set by the
    /// timeout and retry layers above) has passed — the per-try or route timer cut it short —
    /// and nothing otherwise: a cancelled attempt says nothing about the endpoint.
    pub struct OutlierDetectionFuture<F> {
        #[pin]
        inner: F,
        report: Option<(Arc<OutlierDetector>, UpstreamEndpoint)>,
        deadline: Option<AttemptDeadline>,
    }

    impl<F> PinnedDrop for OutlierDetectionFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let (Some((detector, target)), Some(deadline)) = (this.report.take(), *this.deadline)
            else {
                return;
            };
            let now = Instant::now();
            if now >= deadline.at {
                let failure = if deadline.per_try {
                    Failure::PerTryTimeout
                } else {
                    Failure::RouteTimeout
                };
                detector.report(&target.set, target.index, &Outcome::Failure(failure), now);
            }
        }
    }
}

impl<F> fmt::Debug for OutlierDetectionFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetectionFuture")
            .field("endpoint", &self.report.as_ref().map(|(_, t)| t.addr()))
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for OutlierDetectionFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx)).map_err(Into::into);
        if let Some((detector, target)) = this.report.take() {
            let outcome = match &output {
                Ok(response) => Outcome::from_response(response),
                Err(error) => {
                    let error: &(dyn std::error::Error + 'static) = &**error;
                    Outcome::from_error(error)
                }
            };
            detector.report(&target.set, target.index, &outcome, Instant::now());
        }
        Poll::Ready(output)
    }
}
