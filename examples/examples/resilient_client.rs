//! Istio's resilience inside a Rust client, no sidecar: retries with a budget, a route timeout,
//! a circuit breaker and outlier detection around a plain hyper client, configured from the
//! same YAML a sidecar would read.
//!
//! `cargo run -p mesh-examples --example resilient_client`
//!
//! Three instances of `payments` run on loopback: one healthy, one that answers 500 to
//! everything, one that is slow now and then. The client sends 500 requests by service name.
//! `RoutingLayer` picks an instance; `OutlierDetectionLayer` watches each instance's answers and
//! ejects the failing one; `RetryLayer` sends a failed or slow try to another instance; the
//! breaker bounds concurrent requests; `TimeoutLayer` bounds the whole exchange.
//!
//! The stack, outermost first (the order matters: the outlier layer must see every try, so it
//! sits under routing, and the retry layer must be above routing to get a new pick per try):
//!
//! ```text
//! TimeoutLayer → RetryLayer → RoutingLayer → CircuitBreakerLayer → OutlierDetectionLayer → hyper
//! ```
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::Snapshot;
use mesh_core::endpoint::Health;
use mesh_core::loader::parse_str;
use mesh_core::registry::{Registry, Scope};
use mesh_resilience::breaker::{CircuitBreaker, CircuitBreakerLayer};
use mesh_resilience::outlier::{OutlierConfig, OutlierDetectionLayer, OutlierDetector};
use mesh_resilience::retry::{RetryLayer, RetryPolicy};
use mesh_resilience::timeout::TimeoutLayer;
use mesh_routing::{RouteTable, RoutingLayer};
use tower::{ServiceBuilder, ServiceExt};

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments}
spec:
  hosts: [payments]
  ports: [{number: 8080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: HEALTHY}}
  - {address: 127.0.0.1, ports: {http: FAILING}}
  - {address: 127.0.0.1, ports: {http: SLOW}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments}
spec:
  host: payments
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      http: {http2MaxRequests: 100}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments}
spec:
  hosts: [payments]
  http:
  - route: [{destination: {host: payments}}]
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: "5xx,reset,connect-failure"}
"#;

/// A server that answers with its name; `status` 500 for the failing one; every tenth request
/// of the slow one waits 300 ms.
async fn serve(name: &'static str, status: u16, slow: bool) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let count = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            let svc = service_fn(move |_req| {
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    if slow && n.is_multiple_of(10) {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let mut resp = http::Response::new(Full::new(Bytes::from(name)));
                    *resp.status_mut() = http::StatusCode::from_u16(status).expect("valid");
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, count)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (healthy, healthy_n) = serve("healthy", 200, false).await;
    let (failing, failing_n) = serve("failing", 500, false).await;
    let (slow, slow_n) = serve("slow", 200, true).await;
    let yaml = MESH
        .replace("HEALTHY", &healthy.port().to_string())
        .replace("FAILING", &failing.port().to_string())
        .replace("SLOW", &slow.port().to_string());

    let snapshot = Snapshot::new(
        parse_str(&yaml, std::path::Path::new("mesh.yaml"), "default").expect("valid YAML"),
    );
    let scope = Scope::new("default");
    let registry = Registry::build(&snapshot, &scope);
    let table = RouteTable::compile(&snapshot, &registry, &scope).expect("routes compile");

    // The policies, compiled once from the same YAML the sidecar reads.
    let vs = snapshot
        .virtual_services()
        .next()
        .expect("the VirtualService");
    let http_route = &vs.spec.http[0];
    let retry = RetryPolicy::from_config(http_route.retries.as_ref());
    let timeout = http_route.timeout.map(|t| t.as_std());
    let cluster = registry
        .clusters()
        .next()
        .expect("the payments cluster")
        .clone();
    let policy = cluster.policy();
    let breaker = CircuitBreaker::from_config(policy.connection_pool.as_ref(), None);
    let detector = Arc::new(OutlierDetector::new(OutlierConfig::from_config(
        policy
            .outlier_detection
            .as_ref()
            .expect("outlierDetection is set"),
    )));

    let client: Client<_, _> = Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(timeout))
        .layer(RetryLayer::new(retry).breaker(breaker.clone()))
        .layer(RoutingLayer::new(Arc::new(table)))
        .layer(CircuitBreakerLayer::new(breaker))
        .layer(OutlierDetectionLayer::new(Arc::clone(&detector)))
        .service(client);

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..500 {
        let req = http::Request::get("http://payments:8080/pay")
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let key = match svc.clone().oneshot(req).await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                let who = body
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                format!("{status} from {who}")
            }
            Err(error) => format!("error: {error}"),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    println!("500 requests to payments (attempts 3, perTryTimeout 100ms, outlier detection):");
    for (k, n) in &outcomes {
        println!("  {k:<24} {n:>4}");
    }
    println!("tries that reached each instance (retries included):");
    println!("  healthy {:>4}", healthy_n.load(Ordering::Relaxed));
    println!("  failing {:>4}", failing_n.load(Ordering::Relaxed));
    println!("  slow    {:>4}", slow_n.load(Ordering::Relaxed));
    let set = cluster.endpoints();
    for i in 0..set.len() {
        let s = set.stats(i);
        let state = if s.health() == Health::Healthy {
            "healthy"
        } else {
            "ejected"
        };
        println!(
            "  {} {state} (ejections {})",
            set.endpoint(i).addr,
            s.ejections()
        );
    }
}
