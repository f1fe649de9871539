//! Timeouts above the outlier layer count against the endpoint (SEMANTICS OD-2, RETRY-8).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
use mesh_core::extensions::UpstreamEndpoint;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::{OutlierConfig, OutlierDetectionLayer, OutlierDetector};
use crate::retry::{RetryLayer, RetryPolicy};

#[tokio::test(start_paused = true)]
async fn od2_per_try_timeouts_from_the_retry_layer_are_reported() {
    // OD-2: a per-try timeout counts as a locally originated error. The retry layer's timer
    // drops the attempt; the outlier layer below sees the passed deadline and reports it.
    let set = Arc::new(EndpointSet::new(vec![
        Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 9001))),
        Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 9002))),
    ]));
    let detector = Arc::new(OutlierDetector::new(
        OutlierConfig::default()
            .with_consecutive_5xx(2)
            .with_max_ejection_percent(50),
    ));
    let picked = Arc::clone(&set);
    let policy = RetryPolicy::istio_default()
        .with_attempts(1)
        .with_retry_on("5xx")
        .with_per_try_timeout(Some(Duration::from_millis(100)));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .map_request(move |mut req: http::Request<_>| {
            req.extensions_mut()
                .insert(UpstreamEndpoint::new(Arc::clone(&picked), 0));
            req
        })
        .layer(OutlierDetectionLayer::new(Arc::clone(&detector)))
        .service(service_fn(|_req: http::Request<_>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
    let err = svc
        .oneshot(http::Request::new(String::new()))
        .await
        .unwrap_err();
    assert_eq!(
        mesh_core::classify::failure_of(&*err),
        mesh_core::classify::Failure::PerTryTimeout
    );
    // Two timed-out tries on endpoint 0: ejected.
    assert_eq!(set.stats(0).health(), Health::FailedOutlierCheck);
}

#[tokio::test(start_paused = true)]
async fn od3_a_cancelled_attempt_is_not_reported() {
    // A caller that goes away before any deadline says nothing about the endpoint.
    let set = Arc::new(EndpointSet::new(vec![Endpoint::new(SocketAddr::from((
        [127, 0, 0, 1],
        9001,
    )))]));
    let detector = Arc::new(OutlierDetector::new(
        OutlierConfig::default()
            .with_consecutive_5xx(1)
            .with_max_ejection_percent(100),
    ));
    let picked = Arc::clone(&set);
    let svc = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<()>| {
            req.extensions_mut()
                .insert(UpstreamEndpoint::new(Arc::clone(&picked), 0));
            req
        })
        .layer(OutlierDetectionLayer::new(detector))
        .service(service_fn(|_req: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
    let call = svc.oneshot(http::Request::new(()));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), call)
            .await
            .is_err()
    );
    assert_eq!(set.stats(0).health(), Health::Healthy);
}
