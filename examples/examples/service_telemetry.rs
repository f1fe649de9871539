//! A Rust service with the mesh's telemetry and no sidecar: trace context, Istio's standard
//! metrics and an access log, as three tower layers around a hyper server.
//!
//! `cargo run -p mesh-examples --example service_telemetry`
//!
//! The `reviews` service answers `GET /reviews/{id}` by calling a `ratings` backend. Its stack:
//!
//! ```text
//! TraceContextLayer → MetricsLayer (reporter="destination") → AccessLogLayer → handler
//! ```
//!
//! The handler takes the request's `SpanContext` and injects a child of it into its own call,
//! so `ratings` sees the same trace id with `reviews`' span as parent (SEMANTICS TRACE-5).
//! The example sends three requests (one continuing a caller's trace, sampled), prints the
//! access-log lines as they are written, what `ratings` received, and an excerpt of the
//! `/metrics` page, then exits.
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use mesh_core::extensions::Downstream;
use mesh_core::random::Random;
use mesh_telemetry::access_log::AccessLog;
use mesh_telemetry::layer::{AccessLogLayer, MetricsLayer, TraceContextLayer};
use mesh_telemetry::metrics::{DestinationService, IstioMetrics, Workload, to_prometheus_text};
use mesh_telemetry::trace_context::{Propagation, Sampler, SpanContext};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, service_fn};

type BoxError = Box<dyn Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Serves `svc` on a fresh loopback port until the process ends.
async fn serve<S, B>(svc: S) -> Result<SocketAddr, BoxError>
where
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            // The connection's addresses, for the access log (and the mTLS peer, when the
            // server terminates TLS: see the server_authz example).
            let conn = Downstream::new(peer, addr);
            let svc = TowerToHyperService::new(
                ServiceBuilder::new()
                    .map_request(move |mut req: http::Request<Incoming>| {
                        req.extensions_mut().insert(conn.clone());
                        req
                    })
                    .service(svc.clone()),
            );
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // ratings: remembers the traceparent of every call it gets.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    let ratings = serve(service_fn(move |req: http::Request<Incoming>| {
        let tp = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        log.lock().map(|mut l| l.push(tp)).ok();
        async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("5 stars")))) }
    }))
    .await?;

    // reviews: the three layers around a handler that calls ratings.
    let metrics = IstioMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let registry = Arc::new(registry);
    let labels = [
        ("app".to_owned(), "reviews".to_owned()),
        ("version".to_owned(), "v2".to_owned()),
    ]
    .into();
    let me = Workload::new(Some("reviews-v2"), Some("bookinfo"), &labels, None, None);
    let service = DestinationService::new("reviews.bookinfo.svc.cluster.local", Some("bookinfo"));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let handler = service_fn(move |req: http::Request<Incoming>| {
        let (client, registry) = (client.clone(), Arc::clone(&registry));
        async move {
            if req.uri().path() == "/metrics" {
                let mut text = String::new();
                prometheus_client::encoding::text::encode(&mut text, &registry)?;
                let body = Full::new(Bytes::from(to_prometheus_text(&text)));
                return Ok::<_, BoxError>(http::Response::new(body));
            }
            // Continue the trace on the outgoing call: a child of this request's span.
            let mut call = http::Request::get(format!("http://{ratings}/ratings"))
                .body(Empty::<Bytes>::new())?;
            if let Some(span) = req.extensions().get::<SpanContext>() {
                let child = span.child(&mut Random::thread());
                child.inject(call.headers_mut(), Propagation::default());
            }
            let rating = client.request(call).await?.into_body().collect().await?;
            let text = format!(
                "review {}: {}",
                req.uri().path(),
                String::from_utf8_lossy(&rating.to_bytes())
            );
            Ok(http::Response::new(Full::new(Bytes::from(text))))
        }
    });
    let reviews = serve(
        ServiceBuilder::new()
            .layer(TraceContextLayer::new(Sampler::percent(1.0)))
            .layer(MetricsLayer::new(metrics, me, service))
            .layer(AccessLogLayer::new(AccessLog::stdout()))
            .service(handler),
    )
    .await?;

    println!("reviews on http://{reviews}, ratings on http://{ratings}\n\naccess log:");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for (i, traceparent) in [
        None,
        Some(format!("00-{caller_trace}-00f067aa0ba902b7-01")),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let mut req = http::Request::get(format!("http://{reviews}/reviews/{i}"))
            .body(Empty::<Bytes>::new())?;
        if let Some(tp) = traceparent {
            req.headers_mut().insert("traceparent", tp.parse()?);
        }
        let resp = client.request(req).await?;
        resp.into_body().collect().await?;
    }
    // The access log is written by its own thread: give it a moment before printing more.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    println!("\nratings received:");
    for tp in seen.lock().map(|l| l.clone()).unwrap_or_default() {
        let mark = if tp.contains(caller_trace) {
            "  <- the caller's trace, continued"
        } else {
            ""
        };
        println!("  traceparent: {tp}{mark}");
    }

    let page = client
        .get(format!("http://{reviews}/metrics").parse()?)
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    println!("\n/metrics (excerpt):");
    for line in String::from_utf8_lossy(&page).lines() {
        if line.starts_with("istio_requests_total")
            || line.starts_with("istio_request_duration_milliseconds_count")
        {
            println!("  {line}");
        }
    }
    Ok(())
}
