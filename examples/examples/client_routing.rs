//! Istio routing inside a Rust client, no sidecar: a header canary plus a 90/10 split, from one
//! YAML file, around a plain hyper client.
//!
//! `cargo run -p mesh-examples --example client_routing`
//!
//! The example starts two tiny HTTP servers on loopback (reviews v1 and v2), writes the YAML
//! below with their ports, compiles it with `mesh-routing`, and wraps a hyper client in
//! [`RoutingLayer`]. Requests name the *service* (`http://reviews:9080/…`); the layer picks the
//! route, the subset and the endpoint, and the client connects to that endpoint.
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::Snapshot;
use mesh_core::loader::parse_str;
use mesh_core::registry::{Registry, Scope};
use mesh_routing::{RouteTable, RoutingLayer};
use tower::{Layer, ServiceExt};

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: V1_PORT}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: V2_PORT}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: canary
    match: [{headers: {x-canary: {exact: "true"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
"#;

/// A server that answers with its name.
async fn serve(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = service_fn(move |_req| async move {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(name))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    addr
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let v1 = serve("reviews-v1").await;
    let v2 = serve("reviews-v2").await;
    let yaml = MESH
        .replace("V1_PORT", &v1.port().to_string())
        .replace("V2_PORT", &v2.port().to_string());

    // Compile once per config version; a watcher would swap a new table in (RoutingLayer::shared).
    let snapshot = Snapshot::new(
        parse_str(&yaml, std::path::Path::new("mesh.yaml"), "default").expect("valid YAML"),
    );
    let scope = Scope::new("default");
    let registry = Registry::build(&snapshot, &scope);
    let table = RouteTable::compile(&snapshot, &registry, &scope).expect("routes compile");

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let routed = RoutingLayer::new(Arc::new(table)).layer(client);

    let mut served: BTreeMap<(bool, String), usize> = BTreeMap::new();
    for i in 0..200 {
        let canary = i % 4 == 0;
        let mut req = http::Request::get("http://reviews:9080/reviews/1");
        if canary {
            req = req.header("x-canary", "true");
        }
        let req = req.body(Empty::new()).expect("a valid request");
        let resp = routed.clone().oneshot(req).await.expect("a response");
        let body = resp.into_body().collect().await.expect("a body").to_bytes();
        *served
            .entry((canary, String::from_utf8_lossy(&body).into_owned()))
            .or_default() += 1;
    }
    for ((canary, who), n) in &served {
        let kind = if *canary {
            "x-canary: true"
        } else {
            "no header"
        };
        println!("{kind:<15} → {who:<11} {n:>4}");
    }
}
