//! Service-level tests of the retry layer (SEMANTICS §3): a scripted upstream behind
//! `RetryLayer`, on tokio's paused clock with seeded jitter.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use mesh_core::BoxError;
use mesh_core::classify::{Failure, FailureError, failure_of};
use mesh_core::extensions::Attempts;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::breaker::{CircuitBreaker, Limits, RetryBudget};
use crate::retry::*;

use Reply::{Fail, Status};

/// A request body of scripted data frames and optional trailers.
#[derive(Debug, Default)]
struct TestBody(VecDeque<Frame<Bytes>>);

impl TestBody {
    fn new(chunks: &[&'static str]) -> Self {
        Self(
            chunks
                .iter()
                .map(|c| Frame::data(Bytes::from_static(c.as_bytes())))
                .collect(),
        )
    }

    fn trailers(mut self, name: &'static str, value: &'static str) -> Self {
        let mut t = HeaderMap::new();
        t.insert(name, value.parse().unwrap());
        self.0.push_back(Frame::trailers(t));
        self
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the scripted upstream does on one attempt.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    Header(u16, &'static str, &'static str),
    Fail(Failure),
    /// Answers 200 after this long.
    Slow(Duration),
    /// Never answers.
    Hang,
}

/// What the upstream saw on each attempt.
#[derive(Debug, Default)]
struct Seen {
    attempt_headers: Vec<String>,
    bodies: Vec<Result<Bytes, String>>,
    trailers: Vec<Option<HeaderMap>>,
    attempts_ext: Vec<u32>,
}

type Log = Arc<Mutex<Seen>>;

/// An upstream answering attempt `i` with `script[i]` (the last entry repeats). With
/// `read_body` it reads the whole body before answering.
fn upstream(
    script: Vec<Reply>,
    log: Log,
    read_body: bool,
) -> impl Service<
    Request<ReplayBody<TestBody>>,
    Response = Response<()>,
    Error = BoxError,
    Future = impl Future<Output = Result<Response<()>, BoxError>> + Send,
> + Clone {
    service_fn(move |req: Request<ReplayBody<TestBody>>| {
        let log = Arc::clone(&log);
        let script = script.clone();
        async move {
            let index = {
                let mut seen = log.lock().unwrap();
                let header = req.headers()["x-envoy-attempt-count"].to_str().unwrap();
                seen.attempt_headers.push(header.to_owned());
                let ext = req
                    .extensions()
                    .get::<Attempts>()
                    .expect("Attempts inserted");
                seen.attempts_ext.push(ext.number());
                seen.attempt_headers.len() - 1
            };
            if read_body {
                let collected = req.into_body().collect().await;
                let mut seen = log.lock().unwrap();
                match collected {
                    Ok(c) => {
                        seen.trailers.push(c.trailers().cloned());
                        seen.bodies.push(Ok(c.to_bytes()));
                    }
                    Err(e) => {
                        seen.trailers.push(None);
                        seen.bodies.push(Err(e.to_string()));
                    }
                }
            }
            let reply = script[index.min(script.len() - 1)];
            let resp = |status: u16| Response::builder().status(status).body(()).unwrap();
            match reply {
                Reply::Status(s) => Ok(resp(s)),
                Reply::Header(s, k, v) => {
                    Ok(Response::builder().status(s).header(k, v).body(()).unwrap())
                }
                Reply::Fail(f) => Err(FailureError(f).into()),
                Reply::Slow(d) => {
                    tokio::time::sleep(d).await;
                    Ok(resp(200))
                }
                Reply::Hang => std::future::pending().await,
            }
        }
    })
}

async fn send(
    layer: RetryLayer,
    script: Vec<Reply>,
    body: TestBody,
) -> (Result<Response<()>, BoxError>, Seen) {
    let log = Log::default();
    let svc = layer
        .rng_seed(7)
        .layer(upstream(script, Arc::clone(&log), true));
    let result = svc.oneshot(Request::new(body)).await;
    let seen = std::mem::take(&mut *log.lock().unwrap());
    (result, seen)
}

fn layer(retry_on: &str) -> RetryLayer {
    RetryLayer::new(RetryPolicy::istio_default().with_retry_on(retry_on))
}

// SEMANTICS RETRY-11: x-envoy-attempt-count 1, 2, 3 on the upstream requests, sharing one
// Attempts record; and RETRY-7: URX when attempts run out.
#[tokio::test(start_paused = true)]
async fn retry_11_attempt_count_and_urx() {
    let (r, seen) = send(layer("5xx"), vec![Status(503)], TestBody::new(&["x"])).await;
    let resp = r.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(seen.attempt_headers, ["1", "2", "3"]);
    assert_eq!(seen.attempts_ext, [1, 2, 3]);
    assert_eq!(
        resp.extensions().get::<RetryExhausted>(),
        Some(&RetryExhausted)
    );
    assert!(resp.extensions().get::<RetryOverflow>().is_none());
}

// SEMANTICS RETRY-2 (pitfall): with the default policy a 503 is returned after one try.
#[tokio::test(start_paused = true)]
async fn retry_2_default_does_not_retry_503() {
    let layer = RetryLayer::new(RetryPolicy::from_config(None));
    let (r, seen) = send(layer, vec![Status(503), Status(200)], TestBody::new(&[])).await;
    let resp = r.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(seen.attempt_headers, ["1"]);
    assert!(resp.extensions().get::<RetryExhausted>().is_none());
    // ... but a connect failure is retried.
    let layer = RetryLayer::new(RetryPolicy::istio_default());
    let (r, seen) = send(
        layer,
        vec![Fail(Failure::ConnectFailure), Status(200)],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.attempt_headers, ["1", "2"]);
}

// SEMANTICS RETRY-3: a disabled policy sends once, still numbering the attempt.
#[tokio::test(start_paused = true)]
async fn retry_3_disabled_sends_once() {
    let layer = RetryLayer::new(RetryPolicy::disabled());
    let (r, seen) = send(
        layer,
        vec![Fail(Failure::ConnectFailure)],
        TestBody::new(&["a"]),
    )
    .await;
    let err = r.unwrap_err();
    assert_eq!(failure_of(&*err), Failure::ConnectFailure);
    assert!(
        err.downcast_ref::<RetryError>().is_none(),
        "no URX: nothing was wanted"
    );
    assert_eq!(seen.attempt_headers, ["1"]);
    assert_eq!(seen.bodies, [Ok(Bytes::from_static(b"a"))]);
}

// SEMANTICS RETRY-7: URX on an error result: the last error inside a RetryError.
#[tokio::test(start_paused = true)]
async fn retry_7_exhausted_error() {
    let (r, seen) = send(
        layer("reset"),
        vec![Fail(Failure::Reset)],
        TestBody::new(&[]),
    )
    .await;
    let err = r.unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("URX error");
    assert!(retry.is_exhausted() && !retry.is_overflow());
    assert_eq!(
        failure_of(&*err),
        Failure::Reset,
        "the classification survives"
    );
    assert_eq!(seen.attempt_headers.len(), 3);
}

// SEMANTICS RETRY-6 (pitfall): "503" does not match a reset.
#[tokio::test(start_paused = true)]
async fn retry_6_reset_is_not_503() {
    let (r, seen) = send(layer("503"), vec![Fail(Failure::Reset)], TestBody::new(&[])).await;
    assert_eq!(failure_of(&*r.unwrap_err()), Failure::Reset);
    assert_eq!(seen.attempt_headers, ["1"]);
    let (r, seen) = send(
        layer("503"),
        vec![Status(503), Status(200)],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.attempt_headers, ["1", "2"]);
}

// SEMANTICS RETRY-7: overflow, x-envoy-overloaded and x-envoy-ratelimited are not retried.
#[tokio::test(start_paused = true)]
async fn retry_7_never_retried() {
    let all = "5xx,gateway-error,reset,connect-failure,retriable-4xx,429";
    let (r, seen) = send(
        layer(all),
        vec![Fail(Failure::Overflow)],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(failure_of(&*r.unwrap_err()), Failure::Overflow);
    assert_eq!(seen.attempt_headers.len(), 1);
    let overloaded = Reply::Header(503, "x-envoy-overloaded", "true");
    let (r, seen) = send(layer(all), vec![overloaded], TestBody::new(&[])).await;
    assert_eq!(r.unwrap().status(), 503);
    assert_eq!(seen.attempt_headers.len(), 1);
    let limited = Reply::Header(429, "x-envoy-ratelimited", "true");
    let (r, seen) = send(layer(all), vec![limited], TestBody::new(&[])).await;
    assert_eq!(r.unwrap().status(), 429);
    assert_eq!(seen.attempt_headers.len(), 1);
    let (r, seen) = send(
        layer("envoy-ratelimited"),
        vec![limited, Status(200)],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.attempt_headers.len(), 2);
}

// SEMANTICS RETRY-5 (pitfall): a gRPC 200 without grpc-status in its headers (the status
// comes in trailers) is not retried; a trailers-only UNAVAILABLE is.
#[tokio::test(start_paused = true)]
async fn retry_5_grpc_status_in_headers_only() {
    let layer_default = || RetryLayer::new(RetryPolicy::istio_default());
    let grpc_ok = Reply::Header(200, "content-type", "application/grpc");
    let (r, seen) = send(layer_default(), vec![grpc_ok], TestBody::new(&[])).await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.attempt_headers.len(), 1);
    let unavailable = Reply::Header(200, "grpc-status", "14");
    let (r, seen) = send(
        layer_default(),
        vec![unavailable, Status(200)],
        TestBody::new(&[]),
    )
    .await;
    assert!(r.unwrap().headers().get("grpc-status").is_none());
    assert_eq!(seen.attempt_headers.len(), 2);
}

// SEMANTICS RETRY-8 (pitfall): a per-try timeout with the default retryOn is not retried and
// ends as a PerTryTimeout error; with 5xx it is retried.
#[tokio::test(start_paused = true)]
async fn retry_8_per_try_timeout() {
    let per_try = Some(Duration::from_millis(100));
    let slow = Reply::Slow(Duration::from_secs(1));
    let layer = RetryLayer::new(RetryPolicy::istio_default().with_per_try_timeout(per_try));
    let (r, seen) = send(layer, vec![slow, Status(200)], TestBody::new(&[])).await;
    let err = r.unwrap_err();
    assert_eq!(
        err.downcast_ref::<FailureError>(),
        Some(&FailureError(Failure::PerTryTimeout))
    );
    assert_eq!(seen.attempt_headers, ["1"]);

    let start = tokio::time::Instant::now();
    let layer = RetryLayer::new(
        RetryPolicy::istio_default()
            .with_retry_on("5xx")
            .with_per_try_timeout(per_try),
    );
    let (r, seen) = send(
        layer,
        vec![slow, Reply::Slow(Duration::from_millis(50))],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.attempt_headers, ["1", "2"]);
    // Paused clock: 100 ms per-try + < 25 ms back-off + 50 ms.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(150) && elapsed < Duration::from_millis(175));
}

// SEMANTICS RETRY-7 (ours): the body is replayed identically on each retry, trailers included.
#[tokio::test(start_paused = true)]
async fn retry_7_body_and_trailers_replayed() {
    let body = TestBody::new(&["hello ", "retry", " world"]).trailers("x-checksum", "abc");
    let (r, seen) = send(
        layer("5xx"),
        vec![Status(503), Status(502), Status(200)],
        body,
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    let expected = Bytes::from_static(b"hello retry world");
    assert_eq!(
        seen.bodies,
        [Ok(expected.clone()), Ok(expected.clone()), Ok(expected)]
    );
    for t in &seen.trailers {
        assert_eq!(t.as_ref().unwrap()["x-checksum"], "abc");
    }
}

// SEMANTICS RETRY-7 (ours): a body over the replay cap is sent once; the failure is returned
// as it is (no URX).
#[tokio::test(start_paused = true)]
async fn retry_7_body_over_cap_not_retried() {
    let layer = layer("5xx").max_replay_buffer(8);
    let (r, seen) = send(
        layer,
        vec![Status(503), Status(200)],
        TestBody::new(&["12345", "6789"]),
    )
    .await;
    let resp = r.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.extensions().get::<RetryExhausted>().is_none());
    assert_eq!(seen.bodies, [Ok(Bytes::from_static(b"123456789"))]);
    // Within the cap it is retried.
    let layer = self::layer("5xx").max_replay_buffer(9);
    let (r, seen) = send(
        layer,
        vec![Status(503), Status(200)],
        TestBody::new(&["12345", "6789"]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.bodies.len(), 2);
}

// A body the first attempt never read (connect failure) goes whole to the retry.
#[tokio::test(start_paused = true)]
async fn unread_body_goes_to_the_retry() {
    let log = Log::default();
    let inner = upstream(
        vec![Fail(Failure::ConnectFailure), Status(200)],
        Arc::clone(&log),
        false,
    );
    let reading = upstream(vec![Status(200)], Arc::clone(&log), true);
    let calls = Arc::new(Mutex::new(0));
    let svc = service_fn(move |req: Request<ReplayBody<TestBody>>| {
        let first = {
            let mut n = calls.lock().unwrap();
            *n += 1;
            *n == 1
        };
        let (mut a, mut b) = (inner.clone(), reading.clone());
        async move {
            if first {
                a.call(req).await
            } else {
                b.call(req).await
            }
        }
    });
    let svc = RetryLayer::new(RetryPolicy::istio_default()).layer(svc);
    let resp = svc
        .oneshot(Request::new(TestBody::new(&["ab", "cd"])))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        log.lock().unwrap().bodies,
        [Ok(Bytes::from_static(b"abcd"))]
    );
}

// SEMANTICS RETRY-12: maxRetries refuses the retry → the last response with UO, one attempt.
#[tokio::test(start_paused = true)]
async fn retry_12_max_retries_overflow() {
    let breaker = CircuitBreaker::new(Limits::unlimited().with_max_retries(0));
    let layer = layer("5xx").breaker(breaker.clone());
    let (r, seen) = send(layer, vec![Status(503), Status(200)], TestBody::new(&[])).await;
    let resp = r.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.extensions().get::<RetryOverflow>(),
        Some(&RetryOverflow)
    );
    assert!(resp.extensions().get::<RetryExhausted>().is_none());
    assert_eq!(seen.attempt_headers, ["1"]);
    assert_eq!(breaker.stats().retries_overflow, 1);
    assert_eq!(
        breaker.active_requests(),
        0,
        "a shared breaker is not counted by the layer"
    );
    // An error result gets a RetryError marked overflow.
    let layer = self::layer("reset").breaker(breaker);
    let (r, _) = send(layer, vec![Fail(Failure::Reset)], TestBody::new(&[])).await;
    let err = r.unwrap_err();
    assert!(err.downcast_ref::<RetryError>().unwrap().is_overflow());
    assert_eq!(failure_of(&*err), Failure::Reset);
}

// SEMANTICS RETRY-12, RES-2: a budget of 20 % with minimum 3 admits 3 concurrent retries
// with no active requests, and refuses the fourth.
#[tokio::test(start_paused = true)]
async fn retry_12_budget_minimum_three() {
    let breaker = CircuitBreaker::unlimited().with_retry_budget(RetryBudget::envoy_default());
    let held: Vec<_> = (0..2).map(|_| breaker.try_retry().unwrap()).collect();
    let layer = || self::layer("5xx").breaker(breaker.clone());
    let (r, seen) = send(layer(), vec![Status(503), Status(200)], TestBody::new(&[])).await;
    assert_eq!(r.unwrap().status(), 200, "the third concurrent retry fits");
    assert_eq!(seen.attempt_headers.len(), 2);
    let third = breaker.try_retry().unwrap();
    let (r, seen) = send(layer(), vec![Status(503), Status(200)], TestBody::new(&[])).await;
    let resp = r.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.extensions().get::<RetryOverflow>().is_some());
    assert_eq!(seen.attempt_headers.len(), 1);
    assert_eq!(breaker.stats().budget_exhausted, 1);
    drop((held, third));
}

// SEMANTICS RES-4: the layer's own budget is on by default and retries still happen.
#[tokio::test(start_paused = true)]
async fn res_4_default_budget_allows_retries() {
    let (r, seen) = send(
        layer("5xx"),
        vec![Status(503), Status(200)],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(seen.attempt_headers.len(), 2);
}

// Dropping the future (route timeout, client gone) drops the attempt and the retry permit.
#[tokio::test(start_paused = true)]
async fn drop_releases_the_retry_permit() {
    let breaker = CircuitBreaker::unlimited();
    let log = Log::default();
    let svc = layer("5xx").breaker(breaker.clone()).layer(upstream(
        vec![Status(503), Reply::Hang],
        Arc::clone(&log),
        false,
    ));
    let fut = svc.oneshot(Request::new(TestBody::new(&[])));
    let r = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert!(r.is_err(), "the retry hangs");
    assert_eq!(log.lock().unwrap().attempt_headers, ["1", "2"]);
    assert_eq!(
        breaker.active_retries(),
        0,
        "the permit went with the future"
    );
}

// While a retry is in flight it holds a retry permit.
#[tokio::test(start_paused = true)]
async fn retry_permit_held_during_the_retry() {
    let breaker = CircuitBreaker::unlimited();
    let log = Log::default();
    let svc = layer("5xx").breaker(breaker.clone()).layer(upstream(
        vec![Status(503), Reply::Hang],
        Arc::clone(&log),
        false,
    ));
    let task = tokio::spawn(svc.oneshot(Request::new(TestBody::new(&[]))));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(breaker.active_retries(), 1);
    task.abort();
    let _ = task.await;
    assert_eq!(breaker.active_retries(), 0);
}

// SEMANTICS RETRY-10: back-offs stay within the bounds (paused clock).
#[tokio::test(start_paused = true)]
async fn retry_10_backoff_between_attempts() {
    let start = tokio::time::Instant::now();
    let policy = RetryPolicy::istio_default()
        .with_attempts(3)
        .with_retry_on("5xx");
    let (r, seen) = send(
        RetryLayer::new(policy),
        vec![Status(503)],
        TestBody::new(&[]),
    )
    .await;
    assert_eq!(r.unwrap().status(), 503);
    assert_eq!(seen.attempt_headers.len(), 4);
    assert!(start.elapsed() < Duration::from_millis(25 + 75 + 175));
}
