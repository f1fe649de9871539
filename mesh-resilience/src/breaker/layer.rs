//! `CircuitBreakerLayer`: `http2MaxRequests` on the request path.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use mesh_core::BoxError;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::state::{CircuitBreaker, Overflow, RequestPermit};

/// Applies a cluster's [`CircuitBreaker`] to every request: `http2MaxRequests` (DR-14, DR-15).
///
/// Place it per attempt, after the balancer has picked an endpoint (RES-5), so each try of a
/// retried request counts. Clones share the breaker's counters.
#[derive(Clone, Debug)]
#[must_use]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
}

impl CircuitBreakerLayer {
    /// A layer admitting requests through `breaker`.
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self { breaker }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker::new(inner, self.breaker.clone())
    }
}

/// The service of [`CircuitBreakerLayer`].
///
/// `call` takes a [`RequestPermit`]; when none is left the request fails at once with
/// [`Overflow`] as a `BoxError` (`FailureError(Failure::Overflow)`), never waiting (DR-15) and
/// without calling the inner service. `poll_ready` only asks the inner service: unlike tower's
/// `ConcurrencyLimit`, nothing is reserved there, because Envoy's breaker sheds instead of
/// applying backpressure.
#[derive(Clone, Debug)]
pub struct Breaker<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S> Breaker<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
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

impl<S, Req> Service<Req> for Breaker<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BreakerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_request() {
            Ok(permit) => BreakerFuture {
                inner: Some(self.inner.call(req)),
                permit: Some(permit),
            },
            Err(Overflow) => {
                tracing::debug!("circuit breaker overflow: max requests");
                BreakerFuture {
                    inner: None,
                    permit: None,
                }
            }
        }
    }
}

pin_project! {
    /// The future of [`Breaker`]: the inner call holding its [`RequestPermit`], or an overflow.
    ///
    /// The request counts as active until response headers arrive (or the inner call fails);
    /// the response body is not covered. Dropping the future before then drops the permit and
    /// the inner future: the request stops counting at once.
    pub struct BreakerFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<RequestPermit>,
    }
}

impl<F> fmt::Debug for BreakerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerFuture")
            .field("overflow", &self.inner.is_none())
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for BreakerFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(Overflow.into_box_error()));
        };
        let output = ready!(inner.poll(cx));
        drop(this.permit.take());
        Poll::Ready(output.map_err(Into::into))
    }
}
