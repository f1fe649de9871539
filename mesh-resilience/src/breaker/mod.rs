//! Circuit breaking from a DestinationRule's `connectionPool`, and the retry budget.
//!
//! Envoy's circuit breakers are not the open/half-open/closed state machine of client
//! libraries: they are concurrency thresholds per client proxy and per cluster (SEMANTICS
//! DR-13), summed over the cluster's endpoints, and a request that would exceed one fails
//! **immediately** with 503, flag `UO` and `x-envoy-overloaded: true` (DR-15). Such an overflow
//! is never retried and never counts against an endpoint (DR-16, OD-3).
//!
//! Fields read (DR-14), each compiled into [`Limits`] by [`Limits::from_config`]:
//!
//! | Istio field | checked by | default |
//! |---|---|---|
//! | `tcp.maxConnections` | [`CircuitBreaker::acquire_connection`] | unlimited |
//! | `http.http1MaxPendingRequests` | [`CircuitBreaker::acquire_connection`] (the wait queue) | unlimited |
//! | `http.http2MaxRequests` (every protocol) | [`CircuitBreaker::try_request`], [`CircuitBreakerLayer`] | unlimited |
//! | `http.maxRetries` | [`CircuitBreaker::try_retry`] (RETRY-12) | unlimited |
//! | `trafficPolicy.retryBudget` | [`CircuitBreaker::try_retry`], replacing `maxRetries` (RES-2) | none |
//!
//! **Unset or 0 means unlimited (2^32−1)**, because Istio always writes the thresholds: Envoy's
//! own defaults (1024 connections, pending and requests, 3 retries) never apply (pitfall).
//!
//! The order of checks for one attempt is RES-5's: retry limit (retries only) → endpoint pick
//! → `http2MaxRequests` → connection slot or pending queue. Counters survive a reload with
//! [`CircuitBreaker::carry_over`] (RELOAD-3).
//!
//! ```
//! use mesh_core::classify::{Failure, failure_of};
//! use mesh_resilience::breaker::{CircuitBreaker, CircuitBreakerLayer, Limits};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = CircuitBreaker::new(Limits::unlimited().with_max_requests(1));
//! let svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(()))
//!     }));
//!
//! // One request fits.
//! let resp = svc.clone().oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(resp.status(), 200);
//!
//! // While another holds the only slot, the next request overflows at once.
//! let held = breaker.try_request().unwrap();
//! let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
//! assert_eq!(failure_of(&*err), Failure::Overflow);
//! assert_eq!(breaker.stats().requests_overflow, 1);
//! drop(held);
//! # }
//! ```

mod layer;
mod limits;
mod state;

#[cfg(test)]
mod tests;

pub use self::layer::{Breaker, BreakerFuture, CircuitBreakerLayer};
pub use self::limits::{Limits, RetryBudget};
pub use self::state::{
    BreakerStats, CircuitBreaker, ConnectionPermit, Overflow, RequestPermit, RetryDenied,
    RetryPermit,
};
