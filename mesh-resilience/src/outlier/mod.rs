//! Outlier detection: passive health checking that ejects endpoints which keep failing.
//!
//! Istio's `trafficPolicy.outlierDetection` (SEMANTICS OD-1..OD-10) turns on Envoy's
//! consecutive-error detectors for a cluster; success-rate ejection stays off. Fields read, by
//! [`OutlierConfig::from_config`]: `consecutive5xxErrors` (default 5), `consecutiveGatewayErrors`
//! (default off), the deprecated `consecutiveErrors`, `splitExternalLocalOriginErrors`,
//! `consecutiveLocalOriginFailures` (default 5), `interval` (10 s), `baseEjectionTime` (30 s),
//! `maxEjectionPercent` (10), `minHealthPercent` (0) and `outlierDetectionHttpErrorCodes`.
//!
//! - **Accounting** (OD-2, OD-4): every real attempt to an endpoint is reported; 5xx responses
//!   (gRPC statuses mapped first: `UNAVAILABLE` is a 503) and local-origin failures (connect
//!   failure, reset, timeout) count in a row, anything else resets the count. Local overflow
//!   is never counted (OD-3).
//! - **Ejection** (OD-5, OD-6): a tripped endpoint is marked
//!   [`Health::FailedOutlierCheck`](mesh_core::endpoint::Health) in its
//!   [`EndpointSet`](mesh_core::endpoint::EndpointSet) — the balancers skip it (DR-8) — for
//!   base × k, k growing with each ejection, at most max(base, 300 s). Only if
//!   100 × (ejected + 1) / endpoints ≤ `maxEjectionPercent`: with the default 10 % and fewer
//!   than 10 endpoints **nothing is ever ejected** (pitfall).
//! - **Return** (OD-7): at the first sweep after the ejection time, with counters reset; each
//!   sweep lowers k of healthy endpoints. Sweeps run lazily on the request path
//!   ([`OutlierDetector::maybe_sweep`], one atomic load when none is due) and, for clusters
//!   that get no traffic, from [`OutlierDetector::run_sweeps`].
//!
//! State lives in the endpoints' [`EndpointStats`](mesh_core::endpoint::EndpointStats), so it
//! is per cluster (OD-9, one detector and one set per cluster) and survives reloads
//! (RELOAD-3). The panic threshold (`minHealthPercent`, OD-10) is the balancers' business.
//!
//! ```
//! use std::sync::Arc;
//! use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
//! use mesh_core::extensions::UpstreamEndpoint;
//! use mesh_resilience::outlier::{OutlierConfig, OutlierDetectionLayer, OutlierDetector};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let set = Arc::new(EndpointSet::new(vec![
//!     Endpoint::new("127.0.0.1:8081".parse().unwrap()),
//!     Endpoint::new("127.0.0.1:8082".parse().unwrap()),
//! ]));
//! // outlierDetection: {consecutive5xxErrors: 2, maxEjectionPercent: 50}
//! let config = OutlierConfig::default().with_consecutive_5xx(2).with_max_ejection_percent(50);
//! let detector = Arc::new(OutlierDetector::new(config));
//! let svc = ServiceBuilder::new()
//!     .layer(OutlierDetectionLayer::new(detector.clone()))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         let resp = http::Response::builder().status(503).body(()).unwrap();
//!         Ok::<_, std::convert::Infallible>(resp)
//!     }));
//!
//! for _ in 0..2 {
//!     // Routing inserts the picked endpoint.
//!     let mut req = http::Request::new(());
//!     req.extensions_mut().insert(UpstreamEndpoint::new(set.clone(), 0));
//!     svc.clone().oneshot(req).await.unwrap();
//! }
//! assert_eq!(set.stats(0).health(), Health::FailedOutlierCheck);
//! assert_eq!(OutlierDetector::active_ejections(&set), 1);
//! # }
//! ```

mod config;
mod detector;
mod layer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_timeouts;

pub use self::config::OutlierConfig;
pub use self::detector::{EjectionReason, OutlierDetector, Report};
pub use self::layer::{OutlierDetection, OutlierDetectionFuture, OutlierDetectionLayer};
