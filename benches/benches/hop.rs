//! Request throughput through two real `mesh-proxy` instances on loopback, plaintext against
//! mutual TLS (issue 6's "mTLS hop ≥ 70 % of plaintext"; DESIGN.md performance budget).
//!
//! The path is the sidecar-to-sidecar one: load client → client proxy (outbound listener) →
//! server proxy (inbound listener) → app. The app is a minimal hyper HTTP/1.1 server that
//! answers `200 ok`. Both proxies, the app and the load client run in this process on one
//! current-thread tokio runtime, so the time per request is the CPU cost of the whole chain
//! on one core.
//!
//! - `plaintext`: neither proxy has an identity, so auto mTLS falls back to plaintext and the
//!   server side accepts it (no PeerAuthentication).
//! - `mtls`: both proxies hold SVIDs from one development CA; the client proxy originates
//!   `ISTIO_MUTUAL` by auto mTLS (DR-19) and the server proxy terminates it under
//!   PeerAuthentication `STRICT`, with the seeds' AuthorizationPolicy allowing the call, so the
//!   mTLS case also pays for XFCC and the authorization decision.
//!
//! Each iteration is one request; `CONNECTIONS` keep-alive HTTP/1.1 connections from the load
//! client each run requests back to back, so the reported rate is requests per second at that
//! concurrency. Connections between the proxies are pooled and kept alive, as in a mesh: the
//! handshake cost is measured separately in `identity.rs`.
//!
//! ```sh
//! cargo bench -p mesh-benches --bench hop
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mesh_identity::ca::DEFAULT_CA_TTL;
use mesh_identity::{DevCa, TrustDomain};
use mesh_proxy::{IdentitySource, Proxy, ProxySettings, RunningProxy};
use tokio::net::{TcpListener, TcpStream};

/// Concurrent keep-alive connections from the load client.
const CONNECTIONS: usize = 16;

const HOST: &str = "payment-service.production.svc.cluster.local";

const STRICT_AND_POLICY: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: production}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: payment-service-authz, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/production/sa/order-service-sa]}}]
    to: [{operation: {methods: [POST], paths: [/v1/payments, /v1/payments/*]}}]
";

/// The client side's registry: payment-service is one WorkloadEntry at the server proxy.
fn registry(inbound: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment-service, namespace: production}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: payment-service}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: payment-service-1, namespace: production}}
spec:
  address: {ip}
  ports: {{http: {port}}}
  labels: {{app: payment-service}}
  serviceAccount: payment-service-sa
",
        ip = inbound.ip(),
        port = inbound.port()
    )
}

/// The app: `200 ok` to everything, HTTP/1.1 keep-alive.
async fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let addr = listener.local_addr().expect("app address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    // Read the body so the connection can be reused.
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

struct Side {
    proxy: RunningProxy,
    _dir: tempfile::TempDir,
}

async fn side(
    yaml: &str,
    sa: &str,
    app_label: &str,
    app: Option<SocketAddr>,
    identity: IdentitySource,
) -> Side {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write config");
    let mut settings = ProxySettings::loopback([dir.path().to_path_buf()]);
    settings.namespace = "production".into();
    settings.service_account = sa.into();
    settings.labels = [("app".to_owned(), app_label.to_owned())].into();
    if let Some(app) = app {
        settings.app = app;
    }
    settings.identity = identity;
    let proxy = Proxy::start(settings).await.expect("proxy starts");
    Side { proxy, _dir: dir }
}

/// The two proxies and the app; returns the client proxy's outbound address.
async fn mesh(mtls: bool) -> (Side, Side) {
    let app = app().await;
    let ca = mtls.then(|| {
        let td = TrustDomain::new("cluster.local").expect("trust domain");
        Arc::new(DevCa::new(&td, DEFAULT_CA_TTL).expect("dev CA"))
    });
    let identity = || match &ca {
        Some(ca) => IdentitySource::DevCa(Arc::clone(ca)),
        None => IdentitySource::None,
    };
    let server_yaml = if mtls { STRICT_AND_POLICY } else { "" };
    let server = side(
        server_yaml,
        "payment-service-sa",
        "payment-service",
        Some(app),
        identity(),
    )
    .await;
    let client = side(
        &registry(server.proxy.inbound_addr()),
        "order-service-sa",
        "order-service",
        None,
        identity(),
    )
    .await;
    (client, server)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn one(sender: &mut Sender) {
    sender.ready().await.expect("connection ready");
    let req = Request::post("/v1/payments")
        .header("host", format!("{HOST}:8080"))
        .body(Full::new(Bytes::from_static(b"{\"amount\":1}")))
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200, "the hop must succeed");
    let _ = res.into_body().collect().await.expect("body");
}

/// Runs `n` requests spread over the client connections; returns the wall time.
async fn run(senders: &mut Vec<Sender>, n: u64) -> Duration {
    let per = n.div_ceil(CONNECTIONS as u64);
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .drain(..)
        .map(|mut s| {
            tokio::spawn(async move {
                for _ in 0..per {
                    one(&mut s).await;
                }
                s
            })
        })
        .collect();
    for t in tasks {
        senders.push(t.await.expect("load task"));
    }
    // `per * CONNECTIONS` requests ran; scale to the `n` criterion asked for.
    start
        .elapsed()
        .mul_f64(n as f64 / (per * CONNECTIONS as u64) as f64)
}

fn hop(c: &mut Criterion) {
    // One thread for everything: the scheduling is the same from run to run, so the two cases
    // differ only by the work mTLS adds (on two workers the spread between runs was ±20 %).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("hop");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (name, mtls) in [("plaintext", false), ("mtls", true)] {
        let (client, server) = rt.block_on(mesh(mtls));
        let out = client.proxy.outbound_addr();
        let mut senders = rt.block_on(async {
            let mut v = Vec::with_capacity(CONNECTIONS);
            for _ in 0..CONNECTIONS {
                v.push(connect(out).await);
            }
            // Warm the pools between the proxies.
            for s in &mut v {
                one(s).await;
            }
            v
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(run(&mut senders, iters)));
        });
        drop(senders);
        client.proxy.shutdown();
        server.proxy.shutdown();
        rt.block_on(async {
            client.proxy.wait().await;
            server.proxy.wait().await;
        });
    }
    group.finish();
}

criterion_group!(benches, hop);
criterion_main!(benches);
