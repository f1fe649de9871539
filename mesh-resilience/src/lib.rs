//! Resilience for the mesh SDK: Istio's and Envoy's request-path guard rails as tower layers.
//!
//! `mesh-resilience` is a leaf crate (DESIGN.md): it reads the config model and the shared
//! vocabulary of `mesh-core` — the [`Outcome`](mesh_core::classify::Outcome) of an attempt,
//! the endpoints' health in [`EndpointSet`](mesh_core::endpoint::EndpointSet), the
//! [`UpstreamEndpoint`](mesh_core::extensions::UpstreamEndpoint) and
//! [`Attempts`](mesh_core::extensions::Attempts) extensions routing fills in — and never
//! imports another leaf. `mesh-proxy` runs the same compiled policies on its outbound path.
//!
//! | module | Istio fields | rules |
//! |---|---|---|
//! | [`timeout`] | `http[].timeout`, gRPC `grpc-timeout` | VS-34, VS-35 |
//! | [`retry`] | `http[].retries` (`attempts`, `perTryTimeout`, `retryOn`, `backoff`, `retryIgnorePreviousHosts`) | RETRY-1..RETRY-13 |
//! | [`breaker`] | `trafficPolicy.connectionPool`, `trafficPolicy.retryBudget` | DR-13..DR-17, RETRY-12, RES-2, RES-4 |
//! | [`outlier`] | `trafficPolicy.outlierDetection` | OD-1..OD-10 |
//!
//! Beyond Istio's defaults, the SDK turns on the safety valve of SEMANTICS RES-4: a
//! [`RetryLayer`] without an explicit breaker limits retries with Envoy's retry budget (20 % of
//! active requests, at least 3 at once), so a full outage sees about the offered load instead
//! of `1 + attempts` times it.
//!
//! The order of the layers, outermost first, follows the request path of DESIGN.md:
//! [`TimeoutLayer`] (the route timeout covers every attempt and back-off) →
//! [`RetryLayer`] → routing and the balancer (`mesh_routing::RoutingLayer`, a new pick per
//! attempt) → [`CircuitBreakerLayer`] → [`OutlierDetectionLayer`] (sees every attempt's
//! outcome) → the client.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
//! use mesh_core::extensions::UpstreamEndpoint;
//! use mesh_resilience::{
//!     CircuitBreaker, CircuitBreakerLayer, OutlierConfig, OutlierDetectionLayer,
//!     OutlierDetector, RetryLayer, RetryPolicy, TimeoutLayer,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Two endpoints; the first always fails. (A RoutingLayer would pick them; here the test
//! // service below plays the balancer.)
//! let set = Arc::new(EndpointSet::new(vec![
//!     Endpoint::new("127.0.0.1:8081".parse().unwrap()),
//!     Endpoint::new("127.0.0.1:8082".parse().unwrap()),
//! ]));
//! let breaker = CircuitBreaker::unlimited();
//! let detector = Arc::new(OutlierDetector::new(
//!     OutlierConfig::default().with_consecutive_5xx(1).with_max_ejection_percent(50),
//! ));
//! let picks = Arc::new(AtomicU32::new(0));
//! let (set2, picks2) = (set.clone(), picks.clone());
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Some(Duration::from_secs(3))))
//!     .layer(RetryLayer::new(RetryPolicy::istio_default().with_retry_on("5xx")).breaker(breaker.clone()))
//!     // Plays the balancer: alternate endpoints, skipping ejected ones.
//!     .map_request(move |mut req: http::Request<_>| {
//!         let mut i = (picks2.fetch_add(1, Ordering::Relaxed) % 2) as usize;
//!         if set2.stats(i).health() != Health::Healthy {
//!             i = 1 - i;
//!         }
//!         req.extensions_mut().insert(UpstreamEndpoint::new(set2.clone(), i));
//!         req
//!     })
//!     .layer(CircuitBreakerLayer::new(breaker))
//!     .layer(OutlierDetectionLayer::new(detector))
//!     .service(service_fn(|req: http::Request<_>| async move {
//!         let index = req.extensions().get::<UpstreamEndpoint>().unwrap().index;
//!         let status = if index == 0 { 500 } else { 200 };
//!         Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(()).unwrap())
//!     }));
//!
//! for _ in 0..4 {
//!     let resp = svc.clone().oneshot(http::Request::new(String::new())).await.unwrap();
//!     assert_eq!(resp.status(), 200, "the 500 was retried on the other endpoint");
//! }
//! assert_eq!(set.stats(0).health(), Health::FailedOutlierCheck, "and the failing one ejected");
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod breaker;
pub mod outlier;
pub mod retry;
pub mod timeout;

pub use breaker::{CircuitBreaker, CircuitBreakerLayer, Limits, RetryBudget};
pub use outlier::{OutlierConfig, OutlierDetectionLayer, OutlierDetector};
pub use retry::{ReplayBody, RetryLayer, RetryPolicy};
pub use timeout::TimeoutLayer;
