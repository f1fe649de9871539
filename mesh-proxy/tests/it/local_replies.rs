//! Replies the proxy makes itself (SEMANTICS ERR-1, ERR-2): exact bodies, statuses, headers.

use http::Request;
use mesh_test::{TestBody, TestServer, h2c_client, raw_http1};

use crate::harness::{Harness, service, text};

async fn closed_addr() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn unknown_host_is_404_with_no_body() {
    // SEMANTICS HOST-7, ERR-2 (NR)
    let h = Harness::start("").await;
    let r = h.get("nowhere.example.com", "/").await;
    assert_eq!(r.status(), 404);
    assert!(r.body().is_empty());
    assert_eq!(r.headers()["content-length"], "0");
    assert_eq!(r.headers()["server"], "envoy");
}

#[tokio::test]
async fn no_endpoint_is_503_no_healthy_upstream() {
    // SEMANTICS ERR-2 (UH)
    let h = Harness::start(&service("empty", "empty.example.com", 80, "HTTP", &[])).await;
    let r = h.get("empty.example.com", "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(text(&r), "no healthy upstream");
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.headers()["content-length"], "19");
}

#[tokio::test]
async fn refused_connect_is_503_remote_connection_failure() {
    // SEMANTICS ERR-2 (UF). Istio's default retry policy (RETRY-2) retries connect failures
    // twice, so without a VirtualService the reply is the "retried" row (UF,URX).
    let addr = closed_addr().await;
    let h = Harness::start(&service("down", "down.example.com", 80, "HTTP", &[addr])).await;
    let r = h.get("down.example.com", "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        text(&r),
        "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure"
    );
    assert!(r.headers().get("x-envoy-upstream-service-time").is_none());
    // With retries off (RETRY-3), the plain UF row.
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: down, namespace: test}\nspec:\n  hosts: [down.example.com]\n  http:\n  - {route: [{destination: {host: down.example.com}}], retries: {attempts: 0}}\n";
    let h = Harness::start(&(service("down", "down.example.com", 80, "HTTP", &[addr]) + vs)).await;
    let r = h.get("down.example.com", "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        text(&r),
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
}

#[tokio::test]
async fn upstream_closing_before_headers_is_connection_termination() {
    // SEMANTICS ERR-2 (UC)
    let up = TestServer::builder().close_without_response().start().await;
    let h = Harness::start(&service(
        "rude",
        "rude.example.com",
        80,
        "HTTP",
        &[up.addr()],
    ))
    .await;
    let r = h.get("rude.example.com", "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        text(&r),
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    );
}

#[tokio::test]
async fn upstream_5xx_passes_through_unchanged() {
    // SEMANTICS ERR-3: only local replies use Envoy's bodies.
    let up = TestServer::builder()
        .status(503)
        .body("app says no")
        .start()
        .await;
    let h = Harness::start(&service("app", "app.example.com", 80, "HTTP", &[up.addr()])).await;
    let r = h.get("app.example.com", "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(text(&r), "app says no");
}

#[tokio::test]
async fn grpc_requests_get_trailers_only_local_replies() {
    // SEMANTICS ERR-1: 404 → grpc-status 12 (UNIMPLEMENTED), HTTP 200.
    let h = Harness::start("").await;
    let req = Request::post(format!("http://{}/pkg.Svc/Method", h.out()))
        .header("host", "nowhere.example.com")
        .header("content-type", "application/grpc")
        .body(TestBody::empty())
        .unwrap();
    let r = h2c_client::<TestBody>().request(req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["grpc-status"], "12");
    assert_eq!(r.headers()["content-type"], "application/grpc");
}

#[tokio::test]
async fn malformed_requests_get_400_and_no_panic() {
    let h = Harness::start("").await;
    // A header line without a colon.
    let reply = raw_http1(
        h.out(),
        "GET / HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // No Host at all (HTTP/1.1 requires one): nothing to route on.
    let reply = raw_http1(h.out(), "GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.ends_with("Bad Request"), "{reply}");
    // The proxy still serves.
    assert_eq!(h.get("nowhere.example.com", "/").await.status(), 404);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    // DESIGN.md limit: request headers over 60 KiB.
    let h = Harness::start("").await;
    let big = "a".repeat(70 * 1024);
    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n");
    let reply = raw_http1(h.out(), raw).await.unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 431"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert_eq!(h.get("nowhere.example.com", "/").await.status(), 404);
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_start_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = mesh_proxy::ProxySettings::loopback([dir.path().to_path_buf()]);
    settings.outbound = taken.local_addr().unwrap();
    let error = mesh_proxy::Proxy::start(settings).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot listen on {} (outbound):",
            taken.local_addr().unwrap()
        )),
        "{text}"
    );
}
