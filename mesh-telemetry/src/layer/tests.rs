use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::*;

fn me() -> Workload {
    let labels = [("app".to_owned(), "ratings".to_owned())].into();
    Workload::new(
        Some("ratings-v1"),
        Some("prod"),
        &labels,
        Some("spiffe://cluster.local/ns/prod/sa/ratings"),
        Some("Kubernetes"),
    )
}

fn svc_labels() -> DestinationService {
    DestinationService::new("ratings.prod.svc.cluster.local", Some("prod"))
}

fn render(m: &IstioMetrics) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    m.register(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

fn requests_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .unwrap_or_else(|| panic!("no requests series:\n{text}"))
}

fn ok_app() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    })
}

#[tokio::test]
async fn trace_context_continues_or_starts_a_trace_and_sets_the_request_id() {
    // TRACE-5, TRACE-6, REQID-1.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let app = service_fn(move |req: Request<()>| {
        let seen = Arc::clone(&seen2);
        async move {
            let span = req.extensions().get::<SpanContext>().cloned().unwrap();
            let id = req.headers()[&X_REQUEST_ID].to_str().unwrap().to_owned();
            seen.lock().unwrap().push((span, id));
            Ok::<_, Infallible>(Response::new(()))
        }
    });
    let svc = TraceContextLayer::new(Sampler::percent(0.0)).layer(app);
    let req = Request::get("/")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-request-id", "keep-me")
        .body(())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap();
    svc.oneshot(Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let (continued, id) = &seen[0];
    assert_eq!(
        continued.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        continued.parent_span_id().unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    assert!(continued.is_sampled(), "the caller's decision is kept");
    assert_eq!(id, "keep-me");
    let (fresh, id) = &seen[1];
    assert!(fresh.parent_span_id().is_none());
    assert!(!fresh.is_sampled(), "0 % sampling");
    assert_eq!(id.len(), 36);
}

#[tokio::test]
async fn metrics_report_as_the_destination_when_the_body_ends() {
    // MET-2, MET-4: the caller from its mTLS identity, the server from the layer's labels.
    let metrics = IstioMetrics::new();
    let svc = ServiceBuilder::new()
        .layer(TraceContextLayer::new(Sampler::percent(100.0)))
        .layer(MetricsLayer::new(metrics.clone(), me(), svc_labels()))
        .service(ok_app());
    let conn = Downstream::new(
        "10.0.0.1:5000".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap(),
    )
    .with_peer(PeerIdentity::new(
        "spiffe://cluster.local/ns/shop/sa/checkout",
    ));
    let mut req = Request::post("/rate")
        .header("content-length", "4")
        .body(Full::new(Bytes::from_static(b"5/5!")))
        .unwrap();
    req.extensions_mut().insert(conn);
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(metrics.series_count(), 0, "not before the body ends");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    let text = render(&metrics);
    let line = requests_line(&text);
    for want in [
        r#"reporter="destination""#,
        r#"source_principal="spiffe://cluster.local/ns/shop/sa/checkout""#,
        r#"source_workload_namespace="shop""#,
        r#"source_workload="unknown""#,
        r#"destination_workload="ratings-v1""#,
        r#"destination_principal="spiffe://cluster.local/ns/prod/sa/ratings""#,
        r#"destination_service_name="ratings""#,
        r#"response_code="200""#,
        r#"response_flags="-""#,
        r#"connection_security_policy="mutual_tls""#,
    ] {
        assert!(line.contains(want), "{want} in {line}");
    }
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        text.contains("# {trace_id="),
        "a sampled request leaves an exemplar"
    );

    // Plaintext: no principal on either side.
    let resp = svc
        .oneshot(Request::get("/").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    resp.into_body().collect().await.unwrap();
    let text = render(&metrics);
    assert!(
        text.contains(r#"connection_security_policy="none""#),
        "{text}"
    );
    assert!(
        text.contains(r#"destination_principal="unknown""#),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_read_until_it_says_it_ended_is_complete() {
    // hyper stops polling a body once `is_end_stream` is true: that is the end, not a DC.
    let metrics = IstioMetrics::new();
    let svc = MetricsLayer::new(metrics.clone(), me(), svc_labels()).layer(ok_app());
    let resp = svc
        .oneshot(Request::get("/").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "hello");
    assert!(body.is_end_stream());
    drop(body);
    let text = render(&metrics);
    assert!(
        requests_line(&text).contains(r#"response_flags="-""#),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_dropped_unfinished_is_flagged_dc_and_grpc_trailers_are_read() {
    let metrics = IstioMetrics::new();
    let app = service_fn(|_req: Request<()>| async {
        let body = Frames(
            [
                Frame::data(Bytes::from_static(b"abc")),
                Frame::trailers({
                    let mut t = HeaderMap::new();
                    t.insert("grpc-status", "14".parse().unwrap());
                    t
                }),
            ]
            .into(),
        );
        let mut resp = Response::new(body);
        resp.headers_mut()
            .insert(CONTENT_TYPE, "application/grpc".parse().unwrap());
        Ok::<_, Infallible>(resp)
    });
    let svc = MetricsLayer::new(metrics.clone(), me(), svc_labels()).layer(app);
    let grpc = || {
        Request::post("/pkg.Svc/Call")
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap()
    };
    // Read to the end: grpc-status 14 from the trailers.
    let resp = svc.clone().oneshot(grpc()).await.unwrap();
    resp.into_body().collect().await.unwrap();
    let text = render(&metrics);
    let line = requests_line(&text);
    assert!(line.contains(r#"request_protocol="grpc""#), "{line}");
    assert!(line.contains(r#"grpc_response_status="14""#), "{line}");
    // Dropped before the end: DC.
    let resp = svc.oneshot(grpc()).await.unwrap();
    drop(resp);
    let text = render(&metrics);
    assert!(text.contains(r#"response_flags="DC""#), "{text}");
}

/// A body that yields the given frames, then ends.
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

#[tokio::test]
async fn access_log_lines_parse_as_json_with_the_trace_id() {
    // LOG-1 (JSON keys), REQID-2.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = AccessLog::file(&path).unwrap();
    let svc = ServiceBuilder::new()
        .layer(TraceContextLayer::new(Sampler::percent(100.0)))
        .layer(AccessLogLayer::new(log).json(true))
        .service(ok_app());
    let req = Request::get("/reviews/7?x=1")
        .header("host", "ratings:9080")
        .header("x-request-id", "rid-7")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    resp.into_body().collect().await.unwrap();
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.ends_with('\n') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/reviews/7?x=1");
    assert_eq!(v["response_code"], 200);
    assert_eq!(v["bytes_sent"], 5, "body bytes, as Envoy counts BYTES_SENT");
    assert_eq!(v["request_id"], "rid-7");
    assert_eq!(v["authority"], "ratings:9080");
    assert_eq!(v["route_name"], "default");
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn request_and_response_heads_are_sized_like_http1() {
    let req = Request::post("/a")
        .header("host", "x")
        .header("content-length", "10")
        .body(())
        .unwrap();
    // "POST /a HTTP/1.1\r\n" 18 + "host: x\r\n" 9 + "content-length: 10\r\n" 20 + "\r\n" 2 + 10
    assert_eq!(request_bytes(&req), 18 + 9 + 20 + 2 + 10);
    let resp = Response::builder()
        .header("content-type", "text/plain")
        .body(())
        .unwrap();
    // "HTTP/1.1 200 OK\r\n" 17 + "content-type: text/plain\r\n" 26 + "\r\n" 2
    assert_eq!(response_head_bytes(&resp), 17 + 26 + 2);
}
