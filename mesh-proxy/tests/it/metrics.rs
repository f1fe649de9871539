//! Istio's standard metrics through real proxies (SEMANTICS MET-1..MET-6): an order-service
//! client proxy and a payment-service server proxy with mTLS between them. Both
//! `/stats/prometheus` pages must parse as Prometheus text, and their counters must match the
//! requests sent, once per reporter, with the labels Istio would give them.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use mesh_identity::TrustDomain;
use mesh_identity::ca::{DEFAULT_CA_TTL, DevCa};
use mesh_proxy::{IdentitySource, Proxy, ProxySettings, RunningProxy};
use mesh_test::prom::{Page, parse};
use mesh_test::{Reply, TestBody, TestServer, drain_and_count, http1_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{send, text};

/// Polls `f` (bounded: 50 tries, 100 ms apart) until it gives a value.
async fn poll<T, F, Fut>(mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..50 {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

const NS: &str = "production";
const HOST: &str = "payment-service.production.svc.cluster.local";

/// The payment service (one WorkloadEntry, at `inbound`) and the order-service workload, as
/// both proxies' config describes them.
fn registry(inbound: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment-service, namespace: {NS}}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: payment-service}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: payment-service-v1, namespace: {NS}}}
spec:
  address: {ip}
  ports: {{http: {port}}}
  labels: {{app: payment-service, version: v1}}
  serviceAccount: payment-service-sa
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: order-service-v2, namespace: {NS}}}
spec:
  address: 127.0.0.9
  labels: {{app: order-service, version: v2}}
  serviceAccount: order-service-sa
",
        ip = inbound.ip(),
        port = inbound.port()
    )
}

struct Side {
    proxy: RunningProxy,
    _dir: tempfile::TempDir,
}

async fn start(
    ca: &Arc<DevCa>,
    yaml: &str,
    sa: &str,
    labels: &[(&str, &str)],
    app: Option<SocketAddr>,
    edit: impl FnOnce(&mut ProxySettings),
) -> Side {
    mesh_test::trace_init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
    let mut settings = ProxySettings::loopback([dir.path().to_path_buf()]);
    settings.namespace = NS.into();
    settings.service_account = sa.into();
    settings.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(app) = app {
        settings.app = app;
    }
    settings.identity = IdentitySource::DevCa(Arc::clone(ca));
    edit(&mut settings);
    Side {
        proxy: Proxy::start(settings).await.unwrap(),
        _dir: dir,
    }
}

async fn scrape(side: &Side) -> Page {
    let a = side.proxy.admin_addr();
    let res = send(a, Request::get(format!("http://{a}/stats/prometheus"))).await;
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = text(&res).to_owned();
    parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// A server proxy in front of `app` and a client proxy routing to it; the server's inbound
/// listener is bound first so the registry can name it.
async fn pair(app: &TestServer) -> (Side, Side) {
    let ca =
        Arc::new(DevCa::new(&TrustDomain::new("cluster.local").unwrap(), DEFAULT_CA_TTL).unwrap());
    // The server's own config only needs the registry for its service and its callers; its
    // inbound address is not known before it starts, and nothing routes to it from there.
    let server = start(
        &ca,
        &registry("127.0.0.1:1".parse().unwrap()),
        "payment-service-sa",
        &[("app", "payment-service"), ("version", "v1")],
        Some(app.addr()),
        |s| s.workload_name = Some("payment-service-v1".into()),
    )
    .await;
    let client = start(
        &ca,
        &registry(server.proxy.inbound_addr()),
        "order-service-sa",
        &[("app", "order-service"), ("version", "v2")],
        None,
        |s| {
            s.workload_name = Some("order-service-v2".into());
            s.cluster_name = Some("east".into());
        },
    )
    .await;
    (server, client)
}

#[tokio::test]
async fn counters_match_the_requests_sent_once_per_reporter() {
    let app = TestServer::builder()
        .handler(|req| match req.uri.path() {
            "/fail" => Reply::new(503).body("busy"),
            _ => Reply::new(200).body("paid"),
        })
        .start()
        .await;
    let (server, client) = pair(&app).await;
    let out = client.proxy.outbound_addr();
    let call = |path: &'static str, host: &'static str| async move {
        let req = Request::post(format!("http://{out}{path}"))
            .header("host", host)
            .body(TestBody::from("amount=10"))
            .unwrap();
        let resp = http1_client::<TestBody>().request(req).await.unwrap();
        let status = resp.status();
        drain_and_count(resp.into_body()).await.unwrap();
        status
    };
    for _ in 0..5 {
        assert_eq!(
            call("/pay", "payment-service.production.svc.cluster.local:8080").await,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            call("/fail", "payment-service.production.svc.cluster.local:8080").await,
            503
        );
    }
    // No route: a local reply counted by the client proxy alone (MET-2).
    assert_eq!(call("/x", "nowhere.example:8080").await, 404);

    // The counters move when the response body ends, just after the client got it: poll
    // (bounded) until all eight are in.
    let client_page = poll(|| async {
        let p = scrape(&client).await;
        (p.value("istio_requests_total", &[]) == Some(8.0)).then_some(p)
    })
    .await
    .expect("the client proxy counts every request");
    let server_page = poll(|| async {
        let p = scrape(&server).await;
        (p.value("istio_requests_total", &[]) == Some(7.0)).then_some(p)
    })
    .await
    .expect("the server proxy counts what reached it");

    // Families and types (MET-1).
    for page in [&client_page, &server_page] {
        assert_eq!(page.types["istio_requests_total"], "counter");
        for h in [
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        ] {
            assert_eq!(page.types[h], "histogram", "{h}");
        }
    }

    // reporter="source": the client proxy's view (MET-4).
    let ok_src = [
        ("reporter", "source"),
        ("response_code", "200"),
        ("source_workload", "order-service-v2"),
        ("source_workload_namespace", NS),
        (
            "source_principal",
            "spiffe://cluster.local/ns/production/sa/order-service-sa",
        ),
        ("source_app", "order-service"),
        ("source_version", "v2"),
        ("source_canonical_service", "order-service"),
        ("source_canonical_revision", "v2"),
        ("source_cluster", "east"),
        ("destination_workload", "payment-service-v1"),
        ("destination_workload_namespace", NS),
        (
            "destination_principal",
            "spiffe://cluster.local/ns/production/sa/payment-service-sa",
        ),
        ("destination_app", "payment-service"),
        ("destination_version", "v1"),
        ("destination_service", HOST),
        ("destination_service_name", "payment-service"),
        ("destination_service_namespace", NS),
        ("destination_canonical_service", "payment-service"),
        ("destination_canonical_revision", "v1"),
        ("destination_cluster", "east"),
        ("request_protocol", "http"),
        ("grpc_response_status", ""),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ];
    assert_eq!(
        client_page.value("istio_requests_total", &ok_src),
        Some(5.0)
    );
    let fail_src = [
        ("reporter", "source"),
        ("response_code", "503"),
        ("response_flags", "-"),
    ];
    assert_eq!(
        client_page.value("istio_requests_total", &fail_src),
        Some(2.0)
    );
    let nr = [
        ("response_code", "404"),
        ("response_flags", "NR"),
        ("destination_service", "unknown"),
        ("destination_workload", "unknown"),
    ];
    assert_eq!(
        client_page.value("istio_requests_total", &nr),
        Some(1.0),
        "a raw Host never becomes a label value"
    );

    // reporter="destination": the server proxy's view, the caller known by its SPIFFE ID and
    // the WorkloadEntry that runs as it.
    let ok_dst = [
        ("reporter", "destination"),
        ("response_code", "200"),
        ("source_workload", "order-service-v2"),
        ("source_workload_namespace", NS),
        (
            "source_principal",
            "spiffe://cluster.local/ns/production/sa/order-service-sa",
        ),
        ("source_app", "order-service"),
        ("source_version", "v2"),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", "payment-service-v1"),
        (
            "destination_principal",
            "spiffe://cluster.local/ns/production/sa/payment-service-sa",
        ),
        ("destination_app", "payment-service"),
        ("destination_service", HOST),
        ("destination_service_name", "payment-service"),
        ("destination_cluster", "Kubernetes"),
        ("connection_security_policy", "mutual_tls"),
    ];
    assert_eq!(
        server_page.value("istio_requests_total", &ok_dst),
        Some(5.0)
    );

    // Every HTTP series carries all 25 labels (MET-3).
    for s in client_page.select("istio_requests_total", &[]) {
        assert_eq!(s.labels.len(), 25, "{:?}", s.labels);
    }
    // Histograms count the same requests; request bytes include the head and the body.
    assert_eq!(
        client_page.value(
            "istio_request_duration_milliseconds_count",
            &[("response_code", "200")]
        ),
        Some(5.0)
    );
    let req_bytes = server_page
        .value("istio_request_bytes_sum", &[("response_code", "200")])
        .unwrap();
    assert!(req_bytes > 5.0 * 60.0, "head and body counted: {req_bytes}");
    let resp_bytes = server_page
        .value("istio_response_bytes_sum", &[("response_code", "200")])
        .unwrap();
    assert!(resp_bytes > 5.0 * 40.0, "{resp_bytes}");
    assert_eq!(
        server_page.value(
            "istio_response_bytes_bucket",
            &[("response_code", "200"), ("le", "+Inf")]
        ),
        Some(5.0)
    );
}

#[tokio::test]
async fn openmetrics_scrapes_get_trace_exemplars() {
    let app = TestServer::builder().start().await;
    let (server, _client) = pair(&app).await;
    // A sampled request in plaintext straight to the server's inbound listener (PERMISSIVE
    // by default): no principal, `connection_security_policy="none"`.
    let inbound = server.proxy.inbound_addr();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = send(
        inbound,
        Request::get(format!("http://{inbound}/x"))
            .header("host", HOST)
            .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01")),
    )
    .await;
    assert_eq!(res.status(), 200);
    let a = server.proxy.admin_addr();
    let page = poll(|| async {
        let res = send(
            a,
            Request::get(format!("http://{a}/stats/prometheus"))
                .header("accept", "application/openmetrics-text; version=1.0.0"),
        )
        .await;
        let body = text(&res).to_owned();
        body.contains("istio_request_duration_milliseconds_bucket")
            .then_some((res.headers()["content-type"].clone(), body))
    })
    .await
    .unwrap();
    assert!(
        page.0
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(page.1.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(
        page.1.contains(&format!("# {{trace_id=\"{trace}\"}}")),
        "the sampled request's trace is an exemplar:\n{}",
        page.1
    );
    let plaintext = [
        ("connection_security_policy", "none"),
        ("source_principal", "unknown"),
    ];
    let plain = scrape(&server).await;
    assert_eq!(plain.value("istio_requests_total", &plaintext), Some(1.0));
}

#[tokio::test]
async fn tcp_connections_are_counted_with_their_bytes() {
    // MET-1: opaque TCP on the inbound side counts connections and bytes, no HTTP series.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let ca =
        Arc::new(DevCa::new(&TrustDomain::new("cluster.local").unwrap(), DEFAULT_CA_TTL).unwrap());
    let server = start(
        &ca,
        &registry("127.0.0.1:1".parse().unwrap()),
        "payment-service-sa",
        &[("app", "payment-service")],
        Some(echo_addr),
        |_| {},
    )
    .await;
    let mut c = tokio::net::TcpStream::connect(server.proxy.inbound_addr())
        .await
        .unwrap();
    // Not HTTP: a binary greeting (sniffed as TCP).
    c.write_all(b"\x00\x01hello-binary-protocol").await.unwrap();
    let mut back = [0u8; 23];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"\x00\x01hello-binary-protocol");
    drop(c);
    let page = poll(|| async {
        let p = scrape(&server).await;
        (p.value("istio_tcp_connections_closed_total", &[]) == Some(1.0)).then_some(p)
    })
    .await
    .expect("the close is counted");
    let labels = [
        ("reporter", "destination"),
        ("destination_service", HOST),
        ("connection_security_policy", "none"),
        ("response_flags", "-"),
    ];
    assert_eq!(
        page.value("istio_tcp_connections_opened_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        page.value("istio_tcp_received_bytes_total", &labels),
        Some(23.0)
    );
    assert_eq!(
        page.value("istio_tcp_sent_bytes_total", &labels),
        Some(23.0)
    );
    for s in page.select("istio_tcp_sent_bytes_total", &[]) {
        assert!(!s.labels.contains_key("response_code"));
        assert!(!s.labels.contains_key("request_protocol"));
    }
    assert_eq!(page.value("istio_requests_total", &[]), None);
}
