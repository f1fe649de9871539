//! Tests of the harness itself, over real loopback sockets with both clients.

use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::{
    Reply, TestBody, TestServer, counting_body, drain_and_count, eventually, h2c_client,
    http1_client, raw_http1, raw_http1_with_timeout, send_via_proxy, trace_init,
};

const MIB: u64 = 1024 * 1024;

type TestClient = Client<HttpConnector, TestBody>;

fn clients() -> [(TestClient, Version); 2] {
    [
        (http1_client(), Version::HTTP_11),
        (h2c_client(), Version::HTTP_2),
    ]
}

async fn body_string(body: impl Body<Error: std::fmt::Debug>) -> String {
    let bytes = body.collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

fn post(uri: http::Uri, body: impl Into<TestBody>) -> Request<TestBody> {
    Request::post(uri).body(body.into()).expect("valid request")
}

// === echo ===

#[tokio::test]
async fn echo_reports_what_it_saw_over_http1_and_h2c() {
    trace_init();
    let server = TestServer::builder().name("v1").start().await;
    let authority = server.addr().to_string();

    for (client, version) in clients() {
        let rsp = client
            .request(post(server.uri("/echo?q=1"), "hello"))
            .await
            .expect("response");
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(rsp.version(), version);
        let h = rsp.headers();
        assert_eq!(h["x-served-by"], "v1");
        assert_eq!(h["x-seen-method"], "POST");
        assert_eq!(h["x-seen-uri"], "/echo?q=1");
        assert_eq!(h["x-seen-version"], format!("{version:?}"));
        assert_eq!(h["x-seen-host"], authority.as_str());
        assert_eq!(body_string(rsp.into_body()).await, "hello");
    }

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(server.request_count(), 2);
    for (req, version) in seen.iter().zip([Version::HTTP_11, Version::HTTP_2]) {
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.uri.path_and_query().map(|p| p.as_str()),
            Some("/echo?q=1")
        );
        assert_eq!(req.version, version);
        assert_eq!(req.body_bytes, 5);
        assert!(req.body_complete);
    }
    assert_eq!(seen[0].index, 1);
    assert_eq!(seen[1].index, 2);
    assert_eq!(seen[0].header("host"), Some(authority.as_str()));
    assert_eq!(
        seen[1].uri.authority().map(|a| a.as_str()),
        Some(authority.as_str())
    );
}

#[tokio::test]
async fn get_without_body_is_logged_complete() {
    let server = TestServer::builder().start().await;
    for (client, _) in clients() {
        let rsp = client.get(server.uri("/")).await.expect("response");
        assert_eq!(rsp.headers()["x-served-by"], "test-server");
        assert_eq!(rsp.headers()["x-seen-method"], "GET");
        assert_eq!(drain_and_count(rsp.into_body()).await.expect("body"), 0);
    }
    for req in server.requests() {
        assert_eq!(req.body_bytes, 0);
        assert!(req.body_complete);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_64_mib_echo_both_protocols() {
    let server = TestServer::builder().start().await;
    let total = 64 * MIB;
    let bodies = [
        (http1_client(), counting_body(total, 64 * 1024)),
        (
            http1_client(),
            counting_body(total, 64 * 1024).unknown_length(),
        ),
        (h2c_client(), counting_body(total, 16 * 1024)),
    ];
    for (client, body) in bodies {
        let rsp = client
            .request(post(server.uri("/upload"), body))
            .await
            .expect("response");
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(drain_and_count(rsp.into_body()).await.expect("echo"), total);
    }
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].header("content-length"), Some("67108864"));
    assert_eq!(seen[1].header("transfer-encoding"), Some("chunked"));
    for req in seen {
        assert_eq!(req.body_bytes, total);
        assert!(req.body_complete);
    }
}

// === connections ===

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let server = TestServer::builder().start().await;

    let client: TestClient = http1_client();
    for _ in 0..3 {
        let rsp = client.get(server.uri("/")).await.expect("response");
        drain_and_count(rsp.into_body()).await.expect("body");
    }
    assert_eq!(server.connection_count(), 1);

    // HTTP/2 multiplexes concurrent requests on one more connection.
    let h2: TestClient = h2c_client();
    let (a, b) = tokio::join!(h2.get(server.uri("/a")), h2.get(server.uri("/b")));
    drain_and_count(a.expect("a").into_body())
        .await
        .expect("a body");
    drain_and_count(b.expect("b").into_body())
        .await
        .expect("b body");
    assert_eq!(server.connection_count(), 2);

    let seen = server.requests();
    assert_eq!(seen.len(), 5);
    assert!(seen[..3].iter().all(|r| r.connection == seen[0].connection));
    assert!(seen[3..].iter().all(|r| r.connection == seen[3].connection));
    assert_ne!(seen[0].connection, seen[3].connection);

    // A new client cannot reuse the old pool.
    let other: TestClient = http1_client();
    let rsp = other.get(server.uri("/")).await.expect("response");
    drain_and_count(rsp.into_body()).await.expect("body");
    assert_eq!(server.connection_count(), 3);
}

#[tokio::test]
async fn protocol_restrictions() {
    let h1 = TestServer::builder().http1_only().start().await;
    let h2 = TestServer::builder().http2_only().start().await;

    let rsp = http1_client::<TestBody>()
        .get(h1.uri("/"))
        .await
        .expect("h1 served");
    assert_eq!(rsp.headers()["x-seen-version"], "HTTP/1.1");
    assert!(h2c_client::<TestBody>().get(h1.uri("/")).await.is_err());

    let rsp = h2c_client::<TestBody>()
        .get(h2.uri("/"))
        .await
        .expect("h2 served");
    assert_eq!(rsp.headers()["x-seen-version"], "HTTP/2.0");
    assert!(http1_client::<TestBody>().get(h2.uri("/")).await.is_err());
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = TestServer::builder().start().await;
    let addr = server.addr();
    drop(server);
    // Abort completes on the runtime, so the listener closes shortly after the drop.
    let closed = eventually(100, Duration::from_millis(10), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(closed, "listener closed after drop");
}

// === replies ===

#[tokio::test]
async fn fixed_reply_status_headers_body() {
    let server = TestServer::builder()
        .name("fixed")
        .status(201)
        .header("x-version", "2")
        .header("x-served-by", "override")
        .body("created")
        .start()
        .await;
    for (client, _) in clients() {
        let rsp = client
            .request(post(server.uri("/"), TestBody::zeros(100_000, 4096)))
            .await
            .expect("response");
        assert_eq!(rsp.status(), StatusCode::CREATED);
        assert_eq!(rsp.headers()["x-version"], "2");
        assert_eq!(rsp.headers()["x-served-by"], "override");
        assert_eq!(rsp.headers()["x-seen-method"], "POST");
        assert_eq!(body_string(rsp.into_body()).await, "created");
    }
    // The request body was read (and counted) before the fixed reply.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.body_bytes == 100_000 && r.body_complete)
    );
}

#[tokio::test]
async fn handler_chooses_per_request() {
    let server = TestServer::builder()
        .handler(|req| match req.uri.path() {
            "/missing" => Reply::new(404).body("no such thing"),
            "/teapot" => Reply::new(418).header("x-index", &req.index.to_string()),
            "/bad" => Reply::echo().header("bad header", "x"),
            _ => Reply::echo(),
        })
        .start()
        .await;
    let client: TestClient = http1_client();

    let rsp = client.get(server.uri("/missing")).await.expect("response");
    assert_eq!(rsp.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_string(rsp.into_body()).await, "no such thing");

    let rsp = client.get(server.uri("/teapot")).await.expect("response");
    assert_eq!(rsp.status().as_u16(), 418);
    assert_eq!(rsp.headers()["x-index"], "2");

    let rsp = client.get(server.uri("/bad")).await.expect("response");
    assert_eq!(rsp.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let rsp = client
        .request(post(server.uri("/echo"), "hi"))
        .await
        .expect("response");
    assert_eq!(body_string(rsp.into_body()).await, "hi");
}

#[tokio::test]
async fn invalid_builder_input_fails_start() {
    let err = TestServer::builder()
        .header("x", "bad\nvalue")
        .try_start()
        .await
        .expect_err("invalid header value");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = TestServer::builder()
        .status(1000)
        .try_start()
        .await
        .expect_err("bad status");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn fail_every_nth_request() {
    let server = TestServer::builder().fail_every(2).start().await;
    for (client, _) in clients() {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let rsp = client.get(server.uri("/")).await.expect("response");
            statuses.push(rsp.status().as_u16());
            drain_and_count(rsp.into_body()).await.expect("body");
        }
        assert_eq!(statuses, [200, 503, 200, 503]);
    }
    assert_eq!(server.request_count(), 8);
}

#[tokio::test]
async fn close_without_response_drops_connections() {
    let server = TestServer::builder().close_without_response().start().await;
    for (client, _) in clients() {
        let err = client.get(server.uri("/")).await.expect_err("no response");
        assert!(!err.is_connect(), "connected, then closed: {err:?}");
    }
    assert!(server.connection_count() >= 2);
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn delay_holds_the_headers() {
    let delay = Duration::from_millis(50);
    let server = TestServer::builder().delay(delay).start().await;
    for (client, _) in clients() {
        let start = tokio::time::Instant::now();
        let rsp = client.get(server.uri("/")).await.expect("response");
        assert!(start.elapsed() >= delay);
        assert_eq!(rsp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn slow_body_trickles_frames() {
    let server = TestServer::builder()
        .body("ab")
        .slow_body(3, Duration::from_millis(10))
        .start()
        .await;
    for (client, _) in clients() {
        let rsp = client.get(server.uri("/")).await.expect("response");
        let mut body = pin!(rsp.into_body());
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                frames.push(data);
            }
        }
        assert_eq!(frames, vec![Bytes::from_static(b"ab"); 3]);
    }
}

// === proxy and raw clients ===

#[tokio::test]
async fn send_via_proxy_uses_absolute_form() {
    // The test server accepts absolute-form targets, so it stands in for the proxy here.
    let server = TestServer::builder().start().await;
    let mut headers = HeaderMap::new();
    headers.insert("x-test", "1".parse().expect("header value"));
    let rsp = send_via_proxy(
        server.addr(),
        Method::PUT,
        "http://example.test:8080/path?x=1",
        headers,
        TestBody::from("payload"),
    )
    .await
    .expect("response");
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()["x-seen-uri"], "/path?x=1");
    assert_eq!(rsp.headers()["x-seen-host"], "example.test:8080");
    assert_eq!(rsp.headers()["x-seen-method"], "PUT");
    assert_eq!(rsp.body().as_ref(), b"payload");

    let seen = &server.requests()[0];
    assert_eq!(seen.uri.to_string(), "http://example.test:8080/path?x=1");
    assert_eq!(seen.header("x-test"), Some("1"));

    let err = send_via_proxy(
        server.addr(),
        Method::GET,
        "/relative",
        HeaderMap::new(),
        TestBody::empty(),
    )
    .await
    .expect_err("relative URI");
    assert!(err.to_string().contains("absolute URI"), "{err}");
}

#[tokio::test]
async fn raw_http1_reads_until_close() {
    let server = TestServer::builder().name("raw").start().await;
    let rsp = raw_http1(
        server.addr(),
        "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("raw exchange");
    assert!(rsp.starts_with("HTTP/1.1 200 OK\r\n"), "{rsp}");
    assert!(rsp.contains("x-served-by: raw\r\n"), "{rsp}");
    assert!(rsp.contains("x-seen-host: a.test\r\n"), "{rsp}");

    let rsp = raw_http1(server.addr(), "NOT HTTP AT ALL\r\n\r\n")
        .await
        .expect("raw exchange");
    assert!(rsp.starts_with("HTTP/1.1 400"), "{rsp}");

    // Keep-alive with no close: returns after the idle timeout with the full response.
    let rsp = raw_http1_with_timeout(
        server.addr(),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_millis(100),
    )
    .await
    .expect("raw exchange");
    assert!(rsp.starts_with("HTTP/1.1 200 OK\r\n"), "{rsp}");
}

// === bodies and helpers ===

#[tokio::test]
async fn counting_body_frames_and_length() {
    let body = counting_body(10, 4);
    assert_eq!(body.size_hint().exact(), Some(10));
    let mut body = pin!(body);
    let mut sizes = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.expect("infallible").into_data().expect("data frame");
        assert!(data.iter().all(|&b| b == 0));
        sizes.push(data.len());
    }
    assert_eq!(sizes, [4, 4, 2]);
    assert!(body.is_end_stream());

    let unknown = counting_body(10, 0).unknown_length();
    assert_eq!(unknown.size_hint().exact(), None);
    assert_eq!(drain_and_count(unknown).await.expect("infallible"), 10);
    assert_eq!(
        drain_and_count(TestBody::zeros(0, 8)).await.expect("empty"),
        0
    );
}

#[tokio::test]
async fn drain_and_count_ignores_trailers() {
    let body = Frames(vec![
        Frame::trailers(HeaderMap::new()),
        Frame::data(Bytes::from_static(b"de")),
        Frame::data(Bytes::from_static(b"abc")),
    ]);
    assert_eq!(drain_and_count(body).await.expect("infallible"), 5);
}

/// A body yielding the given frames, last first.
struct Frames(Vec<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop().map(Ok))
    }
}

#[tokio::test(start_paused = true)]
async fn eventually_is_bounded() {
    let polls = AtomicU32::new(0);
    let held = eventually(5, Duration::from_secs(1), || async {
        polls.fetch_add(1, Ordering::Relaxed);
        false
    })
    .await;
    assert!(!held);
    assert_eq!(polls.load(Ordering::Relaxed), 5);

    let held = eventually(5, Duration::from_secs(1), || async {
        polls.fetch_add(1, Ordering::Relaxed) >= 6
    })
    .await;
    assert!(held);
    assert!(!eventually(0, Duration::ZERO, || async { true }).await);
}
