//! Timeouts, retries, retry budgets, circuit breaking and outlier detection end to end: the
//! real proxy, real upstreams on loopback (SEMANTICS §2.7, §3, §4.3, §4.4, §11). Intervals are
//! scaled down so the tests take seconds; no test asserts on wall time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_test::{Reply, TestBody, TestServer, eventually, http1_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Harness, send, text};

/// A STATIC ServiceEntry `host` (namespace `test`, port 9080, HTTP) with `endpoints`, and a
/// DestinationRule with `policy` as its `trafficPolicy` (YAML flow map, or empty for none).
fn service(host: &str, endpoints: &[SocketAddr], policy: &str) -> String {
    let mut eps = String::new();
    for addr in endpoints {
        eps.push_str(&format!(
            "  - {{address: {}, ports: {{http: {}}}}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}, namespace: test}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n{eps}---\n"
    );
    if !policy.is_empty() {
        yaml.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}, namespace: test}}\nspec:\n  host: {host}\n  trafficPolicy: {policy}\n---\n"
        ));
    }
    yaml
}

/// A VirtualService for `host` with one route to it carrying `extra` (YAML flow-map entries
/// such as `retries: {attempts: 3}, timeout: 1s`).
fn route(host: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {host}, namespace: test}}\nspec:\n  hosts: [{host}]\n  http:\n  - {{route: [{{destination: {{host: {host}}}}}], {extra}}}\n---\n"
    )
}

async fn get(h: &Harness, path: &str) -> Response<Bytes> {
    send(
        h.out(),
        Request::get(format!("http://{}{path}", h.out())).header("host", "svc:9080"),
    )
    .await
}

async fn post(h: &Harness, body: Bytes) -> Response<Bytes> {
    let req = Request::post(format!("http://{}/upload", h.out()))
        .header("host", "svc:9080")
        .body(TestBody::from(body))
        .unwrap();
    let resp = http1_client::<TestBody>().request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// A port nothing listens on (bound, then released).
async fn dead_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn clusters(h: &Harness) -> String {
    text(&h.admin("/clusters").await).to_owned()
}

/// Lines of `/clusters` for endpoint `addr` of the service's cluster, by field.
fn endpoint_field(clusters: &str, addr: SocketAddr, field: &str) -> Option<String> {
    let prefix = format!("outbound|9080||svc.test.svc.cluster.local::{addr}::{field}::");
    clusters
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
}

fn ejected(clusters: &str, addr: SocketAddr) -> bool {
    endpoint_field(clusters, addr, "health_flags").as_deref() == Some("/failed_outlier_check")
}

#[tokio::test]
async fn istio_default_retries_connect_failures_but_not_503() {
    // SEMANTICS RETRY-2 (pitfall): without `retries`, a 503 from the upstream is returned as
    // is (Istio ≥ 1.24), while a connect failure is retried on another endpoint.
    let unavailable = TestServer::builder().status(503).start().await;
    let h = Harness::start(&service("svc", &[unavailable.addr()], "")).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        unavailable.request_count(),
        1,
        "503 is not retried by default"
    );

    let good = TestServer::builder().name("good").start().await;
    let dead = dead_port().await;
    let policy = "{loadBalancer: {simple: ROUND_ROBIN}}";
    let h = Harness::start(&service("svc", &[dead, good.addr()], policy)).await;
    for _ in 0..6 {
        let r = get(&h, "/").await;
        assert_eq!(r.status(), 200, "{}", text(&r));
    }
    assert_eq!(good.request_count(), 6);
}

#[tokio::test]
async fn retries_count_attempts_and_prefer_another_endpoint() {
    // SEMANTICS RETRY-1, RETRY-11, RETRY-13: the retry goes to the other endpoint and carries
    // x-envoy-attempt-count 2; the first try carried 1.
    let bad = TestServer::builder().name("bad").status(503).start().await;
    let good = TestServer::builder().name("good").start().await;
    let yaml = service(
        "svc",
        &[bad.addr(), good.addr()],
        "{loadBalancer: {simple: ROUND_ROBIN}}",
    ) + &route("svc", "retries: {attempts: 2, retryOn: 5xx}");
    let h = Harness::start(&yaml).await;
    for _ in 0..10 {
        let r = get(&h, "/").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-served-by"], "good");
        assert!(
            r.headers().get("x-envoy-attempt-count").is_none(),
            "RETRY-11: request side only"
        );
    }
    for seen in bad.requests() {
        assert_eq!(seen.header("x-envoy-attempt-count"), Some("1"));
    }
    let attempts: Vec<_> = good
        .requests()
        .iter()
        .map(|r| r.header("x-envoy-attempt-count").unwrap().to_owned())
        .collect();
    assert!(attempts.contains(&"2".to_owned()), "{attempts:?}");
    assert!(bad.request_count() >= 1);
    let metrics = text(&h.admin("/stats/prometheus").await).to_owned();
    assert!(
        metrics.contains(
            "mesh_upstream_rq_retry_total{cluster=\"outbound|9080||svc.test.svc.cluster.local\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn exhausted_retries_return_the_last_failure() {
    // SEMANTICS RETRY-1 (attempts are retries: 1 + 2 tries), RETRY-6 (pitfall: a reset the
    // proxy turns into 503 does not match "503"), ERR-2 "retried" row with URX.
    let bad = TestServer::builder().status(503).start().await;
    let yaml = service("svc", &[bad.addr()], "")
        + &route("svc", "retries: {attempts: 2, retryOn: \"503\"}");
    let h = Harness::start(&yaml).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(bad.request_count(), 3);

    let closing = TestServer::builder().close_without_response().start().await;
    let yaml = service("svc", &[closing.addr()], "")
        + &route("svc", "retries: {attempts: 2, retryOn: \"503\"}");
    let h = Harness::start(&yaml).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        closing.connection_count(),
        1,
        "a reset does not match \"503\""
    );
    assert_eq!(
        text(&r),
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
    );

    let yaml = service("svc", &[closing.addr()], "")
        + &route("svc", "retries: {attempts: 2, retryOn: reset}");
    let h = Harness::start(&yaml).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 503);
    assert_eq!(closing.connection_count(), 4);
    assert_eq!(
        text(&r),
        "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection termination"
    );
}

#[tokio::test]
async fn route_timeout_and_per_try_timeout() {
    // SEMANTICS VS-34: 504 `upstream request timeout` when the route timeout passes.
    let slow = TestServer::builder()
        .delay(Duration::from_secs(5))
        .start()
        .await;
    let yaml = service("svc", &[slow.addr()], "") + &route("svc", "timeout: 200ms");
    let h = Harness::start(&yaml).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 504);
    assert_eq!(text(&r), "upstream request timeout");

    // RETRY-8 (pitfall): perTryTimeout with the default retryOn times out and is not retried.
    let slow = TestServer::builder()
        .delay(Duration::from_secs(5))
        .start()
        .await;
    let yaml = service("svc", &[slow.addr()], "")
        + &route("svc", "retries: {attempts: 2, perTryTimeout: 100ms}");
    let h = Harness::start(&yaml).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 504);
    assert_eq!(slow.request_count(), 1);

    // With `5xx` it is retried: 1 + 2 tries, then 504 (RETRY-9: all within the route timeout).
    let slow = TestServer::builder()
        .delay(Duration::from_secs(5))
        .start()
        .await;
    let yaml = service("svc", &[slow.addr()], "")
        + &route(
            "svc",
            "timeout: 10s, retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}",
        );
    let h = Harness::start(&yaml).await;
    let r = get(&h, "/").await;
    assert_eq!(r.status(), 504);
    assert_eq!(text(&r), "upstream request timeout");
    assert!(
        eventually(50, Duration::from_millis(10), || async {
            slow.request_count() == 3
        })
        .await,
        "three tries reached the upstream: {}",
        slow.request_count()
    );
}

#[tokio::test]
async fn request_bodies_are_replayed_only_while_buffered() {
    // SEMANTICS RETRY-7 (ours): a body up to 64 KiB is replayed identically on the retry; a
    // larger one is sent once and never retried.
    let bad = TestServer::builder().name("bad").status(503).start().await;
    let good = TestServer::builder().name("good").start().await;
    let yaml = service(
        "svc",
        &[bad.addr(), good.addr()],
        "{loadBalancer: {simple: ROUND_ROBIN}}",
    ) + &route("svc", "retries: {attempts: 1, retryOn: 5xx}");
    let h = Harness::start(&yaml).await;
    let small = Bytes::from((0..4000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for _ in 0..4 {
        let r = post(&h, small.clone()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), &small, "the echo got the same bytes");
    }
    let big = Bytes::from(vec![7u8; 200 * 1024]);
    let before = bad.request_count();
    let good_before = good.request_count();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = post(&h, big.clone()).await;
        if r.status() == 503 {
            // The upstream's own 503 (ERR-3), not a proxy reply about a broken retry.
            assert_eq!(r.headers()["x-served-by"], "bad", "{}", text(&r));
        } else {
            assert_eq!(r.body().len(), big.len());
        }
        statuses.push(r.status().as_u16());
    }
    let bad_big = bad.request_count() - before;
    assert!(bad_big >= 1, "round robin sent some big bodies to bad");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        bad_big,
        "every big body that met the 503 was not retried: {statuses:?}"
    );
    assert_eq!(
        good.request_count() - good_before,
        4 - bad_big,
        "no retry of a big body reached good"
    );
}

#[tokio::test]
async fn upstream_reset_mid_body_is_not_retried() {
    // SEMANTICS RETRY-7: nothing is retried once response headers went downstream; the client
    // sees the body cut short.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
                .await;
            drop(sock);
        }
    });
    let yaml = service("svc", &[addr], "")
        + &route("svc", "retries: {attempts: 3, retryOn: \"5xx,reset\"}");
    let h = Harness::start(&yaml).await;
    let req = Request::get(format!("http://{}/", h.out()))
        .header("host", "svc:9080")
        .body(TestBody::empty())
        .unwrap();
    let resp = http1_client::<TestBody>().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.into_body().collect().await.is_err(),
        "the body was cut short"
    );
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn circuit_breaker_overflow_is_immediate_and_never_retried() {
    // SEMANTICS DR-17: maxConnections 1 + http1MaxPendingRequests 1 with 3 concurrent
    // requests → one in flight, one queued, one 503 UO with x-envoy-overloaded (DR-15); the
    // overflow is not retried even under retryOn 5xx (DR-16, RETRY-7).
    let slow = TestServer::builder()
        .delay(Duration::from_millis(400))
        .http1_only()
        .start()
        .await;
    let policy = "{connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}}";
    let yaml = service("svc", &[slow.addr()], policy)
        + &route("svc", "retries: {attempts: 3, retryOn: \"5xx,reset\"}");
    let h = Arc::new(Harness::start(&yaml).await);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move { get(&h, "/").await }));
    }
    let mut ok = 0;
    let mut overflow = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(r.headers()["x-envoy-overloaded"], "true");
                assert_eq!(
                    text(&r),
                    "upstream connect error or disconnect/reset before headers. reset reason: overflow"
                );
                overflow += 1;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!((ok, overflow), (2, 1));
    assert_eq!(
        slow.request_count(),
        2,
        "the overflow never reached the upstream"
    );
    let c = clusters(&h).await;
    assert_eq!(
        endpoint_field(&c, slow.addr(), "outlier_ejections").as_deref(),
        Some("0")
    );
    assert!(
        c.contains(
            "outbound|9080||svc.test.svc.cluster.local::default_priority::max_connections::1"
        ),
        "{c}"
    );

    // http2MaxRequests: 1 bounds active requests of any protocol (DR-14).
    let slow2 = TestServer::builder()
        .delay(Duration::from_millis(300))
        .start()
        .await;
    let yaml = service(
        "svc",
        &[slow2.addr()],
        "{connectionPool: {http: {http2MaxRequests: 1}}}",
    );
    let h = Arc::new(Harness::start(&yaml).await);
    let first = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { get(&h, "/").await })
    };
    assert!(
        eventually(100, Duration::from_millis(5), || async {
            slow2.request_count() == 1
        })
        .await
    );
    let second = get(&h, "/").await;
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["x-envoy-overloaded"], "true");
    assert_eq!(first.await.unwrap().status(), 200);
}

#[tokio::test]
async fn ejection_grows_and_the_endpoint_returns() {
    // SEMANTICS OD-2, OD-6, OD-7, OD-8: ejected after consecutive 5xx, shown in /clusters with
    // its time left; back after the ejection time; ejected again for twice as long.
    let bad = TestServer::builder().name("bad").status(500).start().await;
    let good = TestServer::builder().name("good").start().await;
    let policy = "{loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {consecutive5xxErrors: 2, interval: 50ms, baseEjectionTime: 300ms, maxEjectionPercent: 50}}";
    let yaml = service("svc", &[bad.addr(), good.addr()], policy)
        + &route("svc", "retries: {attempts: 0}");
    let h = Harness::start(&yaml).await;
    // Round robin: every other request meets bad until two 500s in a row eject it.
    for _ in 0..4 {
        let _ = get(&h, "/").await;
    }
    let c = clusters(&h).await;
    assert!(ejected(&c, bad.addr()), "{c}");
    assert_eq!(
        endpoint_field(&c, bad.addr(), "outlier_ejections").as_deref(),
        Some("1")
    );
    let first_left: u64 = endpoint_field(&c, bad.addr(), "ejection_time_left_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(first_left <= 300);
    // While ejected, everything goes to good.
    let before = bad.request_count();
    for _ in 0..6 {
        assert_eq!(get(&h, "/").await.status(), 200);
    }
    assert_eq!(bad.request_count(), before);
    // It returns after its time (OD-7)…
    assert!(
        eventually(100, Duration::from_millis(20), || async {
            !ejected(&clusters(&h).await, bad.addr())
        })
        .await,
        "bad came back"
    );
    // …fails again and is ejected for 2 × base (OD-6).
    assert!(
        eventually(50, Duration::from_millis(1), || async {
            let _ = get(&h, "/").await;
            ejected(&clusters(&h).await, bad.addr())
        })
        .await
    );
    let c = clusters(&h).await;
    assert_eq!(
        endpoint_field(&c, bad.addr(), "outlier_ejections").as_deref(),
        Some("2")
    );
    let second_left: u64 = endpoint_field(&c, bad.addr(), "ejection_time_left_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        second_left > 300,
        "second ejection lasts 2 × base: {second_left} ms left"
    );
    let metrics = text(&h.admin("/stats/prometheus").await).to_owned();
    assert!(
        metrics.contains(
            "mesh_outlier_ejections_active{cluster=\"outbound|9080||svc.test.svc.cluster.local\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"consecutive_5xx\""), "{metrics}");
}

#[tokio::test]
async fn max_ejection_percent_is_never_exceeded() {
    // SEMANTICS OD-5 (pitfall): 4 failing endpoints at 50 % → at most 2 ejected at once; with
    // the default 10 % and 3 endpoints nothing is ever ejected.
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(TestServer::builder().status(500).start().await);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(TestServer::addr).collect();
    let policy = "{outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}}";
    let yaml = service("svc", &addrs, policy) + &route("svc", "retries: {attempts: 0}");
    let h = Harness::start(&yaml).await;
    for _ in 0..40 {
        let r = get(&h, "/").await;
        assert_eq!(r.status(), 500);
        let c = clusters(&h).await;
        let n = addrs.iter().filter(|a| ejected(&c, **a)).count();
        assert!(n <= 2, "{n} ejected");
    }
    let c = clusters(&h).await;
    assert_eq!(addrs.iter().filter(|a| ejected(&c, **a)).count(), 2);
    let metrics = text(&h.admin("/stats/prometheus").await).to_owned();
    assert!(
        metrics.contains("mesh_outlier_ejections_overflow_total"),
        "{metrics}"
    );

    let addrs3 = &addrs[..3];
    let policy =
        "{outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s}}";
    let yaml = service("svc", addrs3, policy) + &route("svc", "retries: {attempts: 0}");
    let h = Harness::start(&yaml).await;
    for _ in 0..20 {
        let _ = get(&h, "/").await;
    }
    let c = clusters(&h).await;
    assert_eq!(addrs3.iter().filter(|a| ejected(&c, **a)).count(), 0, "{c}");
}

/// Sends `total` GETs with `concurrency` in flight; returns the statuses.
async fn load(h: &Arc<Harness>, total: usize, concurrency: usize) -> Vec<u16> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let h = Arc::clone(h);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let client = http1_client::<TestBody>();
            let mut statuses = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total as u64 {
                let req = Request::get(format!("http://{}/", h.out()))
                    .header("host", "svc:9080")
                    .body(TestBody::empty())
                    .unwrap();
                let status = match client.request(req).await {
                    Ok(resp) => {
                        let s = resp.status().as_u16();
                        let _ = resp.into_body().collect().await;
                        s
                    }
                    Err(_) => 0,
                };
                statuses.push(status);
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_three_endpoints_one_failing_one_spiky() {
    // The seeds' scenario (SEMANTICS RETRY-5, RETRY-8, OD-2, OD-5): one endpoint always 500,
    // one with latency spikes, one healthy; attempts 3, perTryTimeout, retryOn
    // 5xx,reset,connect-failure; consecutive5xxErrors, maxEjectionPercent 50. Intervals
    // scaled down. ≥ 99.9 % of 10,000 requests succeed.
    let failing = TestServer::builder()
        .name("failing")
        .status(500)
        .start()
        .await;
    let spiky = TestServer::builder()
        .name("spiky")
        .handler(|req| {
            if req.index % 10 == 0 {
                Reply::echo().delay(Duration::from_millis(300))
            } else {
                Reply::echo()
            }
        })
        .start()
        .await;
    let healthy = TestServer::builder().name("healthy").start().await;
    let policy = "{outlierDetection: {consecutive5xxErrors: 3, interval: 100ms, baseEjectionTime: 2s, maxEjectionPercent: 50}}";
    let yaml = service(
        "svc",
        &[failing.addr(), spiky.addr(), healthy.addr()],
        policy,
    ) + &route(
        "svc",
        "retries: {attempts: 3, perTryTimeout: 100ms, retryOn: \"5xx,reset,connect-failure\"}",
    );
    let h = Arc::new(Harness::start(&yaml).await);
    let statuses = load(&h, 10_000, 32).await;
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let upstream = failing.request_count() + spiky.request_count() + healthy.request_count();
    // The closing note's numbers (shown with --nocapture).
    eprintln!(
        "chaos: {ok}/10000 succeeded; upstream attempts {upstream} (×{:.3}); failing {} spiky {} healthy {}",
        upstream as f64 / 10_000.0,
        failing.request_count(),
        spiky.request_count(),
        healthy.request_count()
    );
    assert!(ok >= 9_990, "{ok} of 10000 succeeded");
    let c = clusters(&h).await;
    assert!(
        endpoint_field(&c, failing.addr(), "outlier_ejections")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1,
        "{c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_outage_with_and_without_a_retry_budget() {
    // SEMANTICS RES-1, RES-2, RETRY-12: every endpoint down (503). Without a budget each
    // request makes 1 + attempts upstream requests; with the DestinationRule's retryBudget
    // the retries are capped by concurrency, so the upstream sees close to the offered load.
    let down = TestServer::builder().status(503).start().await;
    let yaml =
        service("svc", &[down.addr()], "") + &route("svc", "retries: {attempts: 3, retryOn: 5xx}");
    let h = Arc::new(Harness::start(&yaml).await);
    let statuses = load(&h, 400, 40).await;
    assert!(statuses.iter().all(|&s| s == 503));
    let without = down.request_count() as f64 / 400.0;
    assert_eq!(down.request_count(), 1600, "1 + 3 attempts each");

    let down = TestServer::builder().status(503).start().await;
    let yaml = service(
        "svc",
        &[down.addr()],
        "{retryBudget: {percent: 20, minRetryConcurrency: 3}}",
    ) + &route("svc", "retries: {attempts: 3, retryOn: 5xx}");
    let h = Arc::new(Harness::start(&yaml).await);
    let statuses = load(&h, 400, 40).await;
    assert!(statuses.iter().all(|&s| s == 503));
    let with = down.request_count() as f64 / 400.0;
    eprintln!("full outage: upstream load ×{without:.2} without a budget, ×{with:.2} with one");
    assert!(with < 2.0, "the budget kept the multiplier at ×{with:.2}");
    let metrics = text(&h.admin("/stats/prometheus").await).to_owned();
    assert!(
        metrics.contains("mesh_retry_budget_exhausted_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn inbound_retries_only_what_never_reached_the_app() {
    // SEMANTICS RETRY-14: inbound, Istio retries `reset-before-request` twice: a refused
    // connection to the app is retried; an app's 503 is not.
    let down = dead_port().await;
    let h = Harness::start_with("", |s| s.app = down).await;
    let inbound = h.proxy.inbound_addr();
    let r = send(
        inbound,
        Request::get(format!("http://{inbound}/")).header("host", "checkout:8080"),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        text(&r),
        "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure"
    );
    assert_eq!(r.headers()["server"], "istio-envoy");

    let app = TestServer::builder().status(503).start().await;
    let h = Harness::start_with("", |s| s.app = app.addr()).await;
    let inbound = h.proxy.inbound_addr();
    let r = send(
        inbound,
        Request::post(format!("http://{inbound}/")).header("host", "checkout:8080"),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(app.request_count(), 1);
}

#[tokio::test]
async fn grpc_timeout_is_capped_by_the_route_timeout() {
    // SEMANTICS VS-35: for gRPC the deadline is min(route timeout, grpc-timeout) and the
    // upstream sees it: `grpc-timeout: 5S` under `timeout: 1s` arrives as `1000m`.
    let up = TestServer::builder().start().await;
    let yaml = service("svc", &[up.addr()], "") + &route("svc", "timeout: 1s");
    let h = Harness::start(&yaml).await;
    let r = send(
        h.out(),
        Request::post(format!("http://{}/pkg.Svc/Call", h.out()))
            .header("host", "svc:9080")
            .header("content-type", "application/grpc")
            .header("grpc-timeout", "5S"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests()[0].header("grpc-timeout"), Some("1000m"));
}

#[tokio::test]
async fn max_requests_per_connection_one_disables_keep_alive() {
    // SEMANTICS DR-14: `maxRequestsPerConnection: 1` → one request per upstream connection.
    let up = TestServer::builder().http1_only().start().await;
    let yaml = service(
        "svc",
        &[up.addr()],
        "{connectionPool: {http: {maxRequestsPerConnection: 1}}}",
    );
    let h = Harness::start(&yaml).await;
    for _ in 0..4 {
        assert_eq!(get(&h, "/").await.status(), 200);
    }
    assert_eq!(up.request_count(), 4);
    assert_eq!(up.connection_count(), 4);
}
