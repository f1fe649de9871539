//! Overhead of the resilience layers on a request that succeeds at once (SEMANTICS §3, §4.3,
//! §4.4): route timeout + retry (with the default budget) + circuit breaker + outlier
//! detection around an inner service that answers 200 immediately, against the same inner
//! service bare. Both run on a current-thread tokio runtime, one `block_on` per request, so the
//! difference is the layers' cost. Target: under 300 ns.
//!
//! `primitives` measures what the proxy's outbound path does per attempt without tower: a
//! request permit, a retry decision, an outlier report and the sweep check.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::classify::Outcome;
use mesh_core::endpoint::{Endpoint, EndpointSet};
use mesh_core::extensions::UpstreamEndpoint;
use mesh_resilience::breaker::{CircuitBreaker, CircuitBreakerLayer};
use mesh_resilience::outlier::{OutlierConfig, OutlierDetectionLayer, OutlierDetector};
use mesh_resilience::retry::{RetryLayer, RetryPolicy};
use mesh_resilience::timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn endpoints() -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new(
        (0..3u16)
            .map(|i| Endpoint::new(std::net::SocketAddr::from(([10, 0, 0, 1], 8080 + i))))
            .collect(),
    ))
}

fn request(set: &Arc<EndpointSet>) -> http::Request<String> {
    let mut req = http::Request::get("http://10.0.0.1:8080/")
        .body(String::new())
        .expect("valid");
    req.extensions_mut()
        .insert(UpstreamEndpoint::new(Arc::clone(set), 0));
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let set = endpoints();
    let mut group = c.benchmark_group("resilience");

    let bare = service_fn(|_req: http::Request<_>| async {
        Ok::<_, Infallible>(http::Response::new(String::new()))
    });
    group.bench_function("bare_service", |b| {
        let mut svc = bare;
        b.iter(|| {
            let resp = rt.block_on(async { svc.ready().await?.call(request(&set)).await });
            black_box(resp.expect("200"));
        });
    });

    let breaker = CircuitBreaker::unlimited();
    let detector = Arc::new(OutlierDetector::new(
        OutlierConfig::default().with_max_ejection_percent(50),
    ));
    let stack = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Some(Duration::from_secs(15))))
        .layer(RetryLayer::new(RetryPolicy::istio_default()))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(OutlierDetectionLayer::new(Arc::clone(&detector)))
        .service(service_fn(|_req: http::Request<_>| async {
            Ok::<_, Infallible>(http::Response::new(String::new()))
        }));
    group.bench_function("timeout_retry_breaker_outlier", |b| {
        let mut svc = stack.clone();
        b.iter(|| {
            let resp = rt.block_on(async { svc.ready().await?.call(request(&set)).await });
            black_box(resp.expect("200"));
        });
    });

    // Each layer alone, to see where the stack's cost goes.
    macro_rules! alone {
        ($name:literal, $layer:expr) => {
            let one = ServiceBuilder::new().layer($layer).service(service_fn(
                |_req: http::Request<_>| async {
                    Ok::<_, Infallible>(http::Response::new(String::new()))
                },
            ));
            group.bench_function($name, |b| {
                let mut svc = one.clone();
                b.iter(|| {
                    let resp = rt.block_on(async { svc.ready().await?.call(request(&set)).await });
                    black_box(resp.expect("200"));
                });
            });
        };
    }
    alone!(
        "timeout_alone",
        TimeoutLayer::new(Some(Duration::from_secs(15)))
    );
    alone!("retry_alone", RetryLayer::new(RetryPolicy::istio_default()));
    alone!("breaker_alone", CircuitBreakerLayer::new(breaker.clone()));
    alone!(
        "outlier_alone",
        OutlierDetectionLayer::new(Arc::clone(&detector))
    );

    let policy = RetryPolicy::istio_default();
    let ok = http::Response::new(());
    group.bench_function("primitives", |b| {
        b.iter(|| {
            let permit = breaker.try_request().expect("unlimited");
            let now = Instant::now();
            detector.maybe_sweep(&set, now);
            let outcome = Outcome::from_response(&ok);
            let retry = policy.should_retry(&outcome, Some(ok.headers()));
            let report = detector.report(&set, 0, &outcome, now);
            drop(permit);
            black_box((retry, report));
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
