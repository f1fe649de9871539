//! Retries with Istio's semantics: a route's `retries` block as a tower layer.
//!
//! Why a layer of its own and not tower's `Retry`: Istio's retry behaviour is specific and
//! full of traps that users meet in production (SEMANTICS §3, §12). Since Istio 1.24 an
//! upstream **503 is not retried by default** (RETRY-2); a `"503"` in `retryOn` never matches a
//! reset the proxy turned into a 503 (RETRY-6); a per-try timeout with the default `retryOn` is
//! **not** retried (RETRY-8); a gRPC status in trailers is never retried (RETRY-5). This module
//! implements those rules once, on the shared classification of
//! [`mesh_core::classify::Outcome`], so the proxy and SDK users get the same answers.
//!
//! Istio fields read ([`RetryPolicy::from_config`] on `http[].retries`):
//!
//! | field | meaning | rule |
//! |---|---|---|
//! | (absent) | 2 retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`, no status codes | RETRY-2 |
//! | `attempts` | retries, not tries; ≤ 0 disables retrying | RETRY-1, RETRY-3 |
//! | `retryOn` | conditions, status codes, gRPC status names; empty → the default list | RETRY-4, RETRY-5 |
//! | `perTryTimeout` | each attempt's limit; retried only with `5xx`, `gateway-error`, `reset` | RETRY-8 |
//! | `backoff` | base of the jittered exponential back-off (25 ms) | RETRY-10 |
//! | `retryIgnorePreviousHosts` | avoid hosts already tried (through [`Attempts`](mesh_core::extensions::Attempts)) | RETRY-13 |
//!
//! On the request path ([`RetryLayer`]): each attempt carries `x-envoy-attempt-count`
//! (RETRY-11); request bodies are replayed from a buffer of up to 64 KiB and larger bodies are
//! sent once (RETRY-7, [`ReplayBody`]); before each retry a retry permit is asked of a
//! [`CircuitBreaker`](crate::breaker::CircuitBreaker) — by default the layer's own, with Envoy's
//! retry budget (RES-4). A retry loop that stops because `attempts` ran out marks the last
//! response with [`RetryExhausted`] (flag `URX`); one stopped by the retry limit marks it with
//! [`RetryOverflow`] (flag `UO`, RETRY-12); a last attempt without a response comes back as a
//! [`RetryError`] around its error.
//!
//! Layer order: the route [`TimeoutLayer`](crate::timeout::TimeoutLayer) goes **above** the
//! retry layer, because the route timeout covers every attempt and back-off (VS-34, RETRY-9);
//! the balancer and a [`CircuitBreakerLayer`](crate::breaker::CircuitBreakerLayer) go below it,
//! so each attempt picks an endpoint and counts (RES-5).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use mesh_resilience::retry::{ReplayBody, RetryLayer, RetryPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = Arc::clone(&calls);
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryPolicy::istio_default().with_retry_on("5xx")))
//!     .service(service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
//!         let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
//!         assert_eq!(req.headers()["x-envoy-attempt-count"], n.to_string().as_str());
//!         async move {
//!             let status = if n < 3 { 503 } else { 200 };
//!             Ok::<_, std::convert::Infallible>(
//!                 http::Response::builder().status(status).body(()).unwrap(),
//!             )
//!         }
//!     }));
//!
//! let req = http::Request::new(Full::new(Bytes::from_static(b"payload")));
//! let resp = svc.oneshot(req).await.unwrap();
//! assert_eq!(resp.status(), 200);
//! assert_eq!(calls.load(Ordering::SeqCst), 3, "one try and two retries");
//! # }
//! ```

mod layer;
mod policy;
mod replay;

#[cfg(test)]
mod tests;

pub use self::layer::{
    Retry, RetryError, RetryExhausted, RetryFuture, RetryLayer, RetryOverflow, attempt_count,
};
pub use self::policy::{DEFAULT_BACKOFF_BASE, RetryConditions, RetryOn, RetryPolicy};
pub use self::replay::{DEFAULT_MAX_REPLAY_BUFFER, ReplayBody, ReplayError};
