//! Cost of telemetry per request (SEMANTICS §9), and memory of Istio's metric families.
//!
//! - `telemetry/bare`: a trivial service called and its one-frame body read, no layers: the
//!   baseline the others are compared with.
//! - `telemetry/layers_1pct`: the same request through [`TraceContextLayer`] at Istio's 1 %
//!   sampling, [`MetricsLayer`] and [`AccessLogLayer`] with the log off. The difference from
//!   `bare` is the layers' overhead per request.
//! - `telemetry/layers_1pct_log`: the same with the access log on (JSON lines handed to the
//!   writer thread, which writes them to `/dev/null`).
//! - `telemetry/trace_start_inject`: reading a `traceparent`, starting this hop's span and
//!   writing the headers for the next hop.
//! - `telemetry/metrics_record`: one `IstioMetrics::record` with label sets built beforehand
//!   (the proxy's case: labels interned per connection and endpoint).
//!
//! Futures here are ready at once (no I/O), so they are polled with a no-op waker: the numbers
//! are CPU time on one core, without a runtime's scheduling.
//!
//! Memory (printed once, before the timings): the resident-set growth from creating the series
//! of 100 destinations × 4 response codes × 2 reporters (800 label sets, each in four families),
//! and the size of the `/metrics` text they produce.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_core::random::Random;
use mesh_telemetry::access_log::AccessLog;
use mesh_telemetry::layer::{AccessLogLayer, MetricsLayer, TraceContextLayer};
use mesh_telemetry::metrics::{
    DestinationService, IstioMetrics, Labels, Reporter, RequestLabels, RequestProtocol,
    RequestSample, SecurityPolicy, Workload,
};
use mesh_telemetry::trace_context::{Propagation, Sampler, SpanContext};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Polls a future that needs no I/O to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn request() -> Request<Full<Bytes>> {
    Request::get("/api/v1/reviews/42?lang=en")
        .header("host", "reviews.bookinfo.svc.cluster.local:9080")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json")
        .header("x-forwarded-proto", "http")
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

fn app() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"stars\":5}",
        ))))
    })
}

/// Calls `svc` once and reads the response body to its end.
fn call<S, B>(svc: &mut S, req: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    B: http_body::Body<Data = Bytes>,
    S::Error: std::fmt::Debug,
{
    let resp = ready(async {
        svc.ready().await.ok();
        svc.call(req).await
    });
    if let Ok(resp) = resp {
        let body = ready(resp.into_body().collect());
        black_box(body.ok().map(|b| b.to_bytes().len()));
    }
}

fn workload(name: &str, app: &str, version: &str) -> Workload {
    let labels = [
        ("app".to_owned(), app.to_owned()),
        ("version".to_owned(), version.to_owned()),
    ]
    .into();
    Workload::new(
        Some(name),
        Some("bookinfo"),
        &labels,
        Some(&format!("spiffe://cluster.local/ns/bookinfo/sa/{app}")),
        Some("Kubernetes"),
    )
}

fn service_labels(host: &str) -> DestinationService {
    DestinationService::new(host, Some("bookinfo"))
}

fn layers(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry");
    let mut bare = app();
    g.bench_function("bare", |b| {
        b.iter_batched(request, |req| call(&mut bare, req), BatchSize::SmallInput)
    });
    let metrics = IstioMetrics::new();
    let mut stack = ServiceBuilder::new()
        .layer(TraceContextLayer::new(Sampler::percent(1.0)))
        .layer(MetricsLayer::new(
            metrics.clone(),
            workload("reviews-v2", "reviews", "v2"),
            service_labels("reviews.bookinfo.svc.cluster.local"),
        ))
        .layer(AccessLogLayer::new(AccessLog::off()))
        .service(app());
    g.bench_function("layers_1pct", |b| {
        b.iter_batched(request, |req| call(&mut stack, req), BatchSize::SmallInput)
    });
    if let Ok(log) = AccessLog::file(std::path::Path::new("/dev/null")) {
        let mut logged = ServiceBuilder::new()
            .layer(TraceContextLayer::new(Sampler::percent(1.0)))
            .layer(MetricsLayer::new(
                metrics.clone(),
                workload("reviews-v2", "reviews", "v2"),
                service_labels("reviews.bookinfo.svc.cluster.local"),
            ))
            .layer(AccessLogLayer::new(log).json(true))
            .service(app());
        g.bench_function("layers_1pct_log", |b| {
            b.iter_batched(request, |req| call(&mut logged, req), BatchSize::SmallInput)
        });
    }

    let sampler = Sampler::percent(1.0);
    let traced = || {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
        );
        h
    };
    g.bench_function("trace_start_inject", |b| {
        b.iter_batched(
            traced,
            |mut h| {
                let span = SpanContext::start(&h, &sampler, &mut Random::thread());
                span.inject(&mut h, Propagation::default());
                black_box(h)
            },
            BatchSize::SmallInput,
        )
    });

    let labels = RequestLabels {
        reporter: Reporter::Source,
        source: Labels::new(workload("productpage-v1", "productpage", "v1")),
        destination: Labels::new(workload("reviews-v2", "reviews", "v2")),
        service: Labels::new(service_labels("reviews.bookinfo.svc.cluster.local")),
        protocol: RequestProtocol::Http,
        response_code: 200,
        grpc_status: None,
        response_flags: "-".into(),
        security: SecurityPolicy::Unknown,
    };
    let sample = RequestSample {
        duration: Duration::from_micros(2300),
        request_bytes: 310,
        response_bytes: 1800,
        trace_id: None,
    };
    g.bench_function("metrics_record", |b| {
        b.iter(|| metrics.record(black_box(&labels), black_box(&sample)))
    });
    g.finish();
}

/// Resident set size in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn memory(_c: &mut Criterion) {
    let metrics = IstioMetrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let me = Labels::new(workload("productpage-v1", "productpage", "v1"));
    let before = rss_kib();
    for d in 0..100 {
        let host = format!("svc-{d}.bookinfo.svc.cluster.local");
        let dest = Labels::new(workload(&format!("svc-{d}-v1"), &format!("svc-{d}"), "v1"));
        let service = Labels::new(service_labels(&host));
        for reporter in [Reporter::Source, Reporter::Destination] {
            for code in [200, 404, 503, 504] {
                let labels = RequestLabels {
                    reporter,
                    source: me.clone(),
                    destination: dest.clone(),
                    service: service.clone(),
                    protocol: RequestProtocol::Http,
                    response_code: code,
                    grpc_status: None,
                    response_flags: if code == 503 { "UF".into() } else { "-".into() },
                    security: SecurityPolicy::Unknown,
                };
                metrics.record(
                    &labels,
                    &RequestSample {
                        duration: Duration::from_millis(3),
                        request_bytes: 300,
                        response_bytes: 1200,
                        trace_id: None,
                    },
                );
            }
        }
    }
    let after = rss_kib();
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    let series = metrics.series_count();
    eprintln!(
        "metric memory: {series} label sets (100 destinations x 4 codes x 2 reporters) -> \
         RSS +{} KiB ({} bytes per label set, 4 families each); /metrics text {} KiB",
        after.saturating_sub(before),
        after.saturating_sub(before) * 1024 / series.max(1) as u64,
        text.len() / 1024
    );
}

criterion_group!(benches, memory, layers);
criterion_main!(benches);
