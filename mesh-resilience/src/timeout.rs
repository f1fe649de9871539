//! The route timeout (SEMANTICS VS-34, VS-35, RETRY-9) as a tower layer.
//!
//! Why not tower's `Timeout`: Istio's route timeout has three twists. **There is none by
//! default** (Istio writes 0 on every route, unlike bare Envoy's 15 s; `timeout: 0s` also
//! means none) — a pitfall. It is decided **per route**, so the layer reads the
//! [`RouteInfo`] extension a routing layer above it inserts. And for **gRPC** requests the
//! client's `grpc-timeout` header is always honoured: the deadline is the smaller of the route
//! timeout and `grpc-timeout`, and the header sent upstream is rewritten to that deadline
//! (`grpc-timeout: 5S` under a 1 s route timeout arrives as `1000m`).
//!
//! On expiry the request future is dropped (the upstream attempt is reset) and the error is
//! [`FailureError`]`(`[`Failure::RouteTimeout`]`)`, which the local-reply layer turns into 504
//! `upstream request timeout` (flag `UT`; for gRPC, 200 with `grpc-status: 14`). Place the
//! layer **above** the [`RetryLayer`](crate::retry::RetryLayer): the route timeout covers every
//! attempt and back-off, and once it fires nothing is retried (RETRY-9).
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::classify::{Failure, failure_of};
//! use mesh_resilience::timeout::TimeoutLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Some(Duration::from_millis(10))))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         tokio::time::sleep(Duration::from_secs(60)).await;
//!         Ok::<_, std::convert::Infallible>(http::Response::new(()))
//!     }));
//!
//! let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
//! assert_eq!(failure_of(&*err), Failure::RouteTimeout);
//! # }
//! ```

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request};
use mesh_core::BoxError;
use mesh_core::classify::{Failure, FailureError, is_grpc};
use mesh_core::extensions::{AttemptDeadline, RouteInfo};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// The gRPC deadline header.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value of a `grpc-timeout` header (8 digits).
const MAX_GRPC_VALUE: u128 = 99_999_999;

/// Applies a route timeout (VS-34) and gRPC deadlines (VS-35) to every request.
///
/// A request carrying a [`RouteInfo`] extension uses that route's timeout instead of the
/// layer's (its `None` means no timeout): a routing layer above decides per route, and the
/// layer's own value is the fallback for requests no router saw.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct TimeoutLayer {
    timeout: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer with route timeout `timeout`; `None` or zero = no timeout (Istio's default).
    pub fn new(timeout: Option<Duration>) -> Self {
        Self {
            timeout: timeout.filter(|t| !t.is_zero()),
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    timeout: Option<Duration>,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with route timeout `timeout` (`None` or zero = none).
    pub fn new(inner: S, timeout: Option<Duration>) -> Self {
        TimeoutLayer::new(timeout).layer(inner)
    }

    /// The layer's route timeout (requests with a [`RouteInfo`] use the route's).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> TimeoutFuture<S::Future> {
        let route = match req.extensions().get::<RouteInfo>() {
            Some(info) => info.timeout,
            None => self.timeout,
        };
        let timeout = if is_grpc(req.headers()) {
            let t = effective_timeout(route, req.headers());
            if let Some(t) = t {
                req.headers_mut()
                    .insert(GRPC_TIMEOUT, encode_grpc_timeout(t));
            }
            t
        } else {
            route.filter(|t| !t.is_zero())
        };
        if let Some(t) = timeout {
            // Lets outlier detection below count an attempt this timeout cuts short (OD-2).
            AttemptDeadline::tighten(
                req.extensions_mut(),
                AttemptDeadline::new(Instant::now() + t, false),
            );
        }
        TimeoutFuture {
            inner: self.inner.call(req),
            sleep: timeout.map(tokio::time::sleep),
        }
    }
}

pin_project! {
    /// The future of [`Timeout`]: the inner future raced against the deadline.
    ///
    /// Dropping it drops the inner future (the upstream request is reset). When the deadline
    /// passes first, the inner future is dropped the next time this one is, and the output is
    /// [`FailureError`]`(`[`Failure::RouteTimeout`]`)`.
    #[derive(Debug)]
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => {
                Poll::Ready(Err(Box::new(FailureError(Failure::RouteTimeout))))
            }
            _ => Poll::Pending,
        }
    }
}

/// The deadline of a gRPC request (VS-35): the route timeout (`None` or zero = none) capped
/// by the request's `grpc-timeout`, or `grpc-timeout` alone when the route has none. An absent,
/// malformed or zero `grpc-timeout` (Envoy reads 0 as "no deadline") leaves the route
/// timeout. Call it for gRPC requests only ([`is_grpc`]); others use the route timeout.
pub fn effective_timeout(route: Option<Duration>, headers: &HeaderMap) -> Option<Duration> {
    let route = route.filter(|t| !t.is_zero());
    let grpc = headers
        .get(GRPC_TIMEOUT)
        .and_then(parse_grpc_timeout)
        .filter(|t| !t.is_zero());
    match (route, grpc) {
        (Some(r), Some(g)) => Some(r.min(g)),
        (r, g) => r.or(g),
    }
}

/// Parses a `grpc-timeout` value as the gRPC spec writes it: 1 to 8 ASCII digits and a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n`
/// nanoseconds). Anything else is `None`.
pub fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Encodes a deadline as a `grpc-timeout` value: in milliseconds when that is exact and fits
/// 8 digits (as Envoy writes it: 1 s → `1000m`), otherwise in the finest unit that fits 8
/// digits, rounded up (a deadline is never shortened by rounding). Deadlines beyond
/// `99999999H` are written as that.
pub fn encode_grpc_timeout(timeout: Duration) -> HeaderValue {
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let nanos = timeout.as_nanos();
    let (value, unit) = if nanos.is_multiple_of(1_000_000) && nanos / 1_000_000 <= MAX_GRPC_VALUE {
        (nanos / 1_000_000, 'm')
    } else {
        UNITS
            .iter()
            .map(|&(per, unit)| (nanos.div_ceil(per), unit))
            .find(|&(v, _)| v <= MAX_GRPC_VALUE)
            .unwrap_or((MAX_GRPC_VALUE, 'H'))
    };
    let mut text = String::with_capacity(9);
    // Writing to a String cannot fail.
    let _ = write!(text, "{value}{unit}");
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("99999999H"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::classify::failure_of;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};
    use tower::{ServiceExt, service_fn};

    type Seen = Arc<Mutex<Option<HeaderMap>>>;

    /// An upstream that answers after `delay`, recording the request headers.
    fn upstream(
        delay: Duration,
        seen: Seen,
    ) -> impl Service<Request<()>, Response = http::Response<()>, Error = std::convert::Infallible> + Clone
    {
        service_fn(move |req: Request<()>| {
            *seen.lock().unwrap() = Some(req.headers().clone());
            async move {
                tokio::time::sleep(delay).await;
                Ok(http::Response::new(()))
            }
        })
    }

    async fn run(
        layer: TimeoutLayer,
        delay: Duration,
        req: Request<()>,
    ) -> (Result<(), Failure>, HeaderMap) {
        let seen = Seen::default();
        let svc = layer.layer(upstream(delay, Arc::clone(&seen)));
        let r = svc
            .oneshot(req)
            .await
            .map(drop)
            .map_err(|e| failure_of(&*e));
        let headers = seen.lock().unwrap().take().unwrap();
        (r, headers)
    }

    fn grpc(timeout: Option<&str>) -> Request<()> {
        let mut b = Request::builder().header("content-type", "application/grpc");
        if let Some(t) = timeout {
            b = b.header("grpc-timeout", t);
        }
        b.body(()).unwrap()
    }

    const S: Duration = Duration::from_secs(1);

    // SEMANTICS VS-34: the route timeout fires → RouteTimeout; none by default (pitfall).
    #[tokio::test(start_paused = true)]
    async fn vs_34_route_timeout_fires() {
        let (r, _) = run(TimeoutLayer::new(Some(S)), 2 * S, Request::new(())).await;
        assert_eq!(r, Err(Failure::RouteTimeout));
        let (r, _) = run(TimeoutLayer::new(Some(2 * S)), S, Request::new(())).await;
        assert_eq!(r, Ok(()));
        let (r, _) = run(TimeoutLayer::new(None), 3600 * S, Request::new(())).await;
        assert_eq!(r, Ok(()), "no timeout by default");
        let (r, _) = run(
            TimeoutLayer::new(Some(Duration::ZERO)),
            3600 * S,
            Request::new(()),
        )
        .await;
        assert_eq!(r, Ok(()), "timeout: 0s means none");
    }

    // SEMANTICS VS-34: a RouteInfo's timeout wins over the layer's, None included.
    #[tokio::test(start_paused = true)]
    async fn vs_34_route_info_overrides() {
        let with = |t: Option<Duration>| {
            let mut req = Request::new(());
            let mut info = RouteInfo::new("r", "c");
            info.timeout = t;
            req.extensions_mut().insert(info);
            req
        };
        let (r, _) = run(TimeoutLayer::new(None), 2 * S, with(Some(S))).await;
        assert_eq!(r, Err(Failure::RouteTimeout));
        let (r, _) = run(TimeoutLayer::new(Some(S)), 2 * S, with(None)).await;
        assert_eq!(r, Ok(()));
        let (r, _) = run(TimeoutLayer::new(Some(S)), 2 * S, with(Some(3 * S))).await;
        assert_eq!(r, Ok(()));
    }

    // SEMANTICS VS-35: grpc-timeout is always honoured and rewritten to the deadline.
    #[tokio::test(start_paused = true)]
    async fn vs_35_grpc_timeout_min_and_rewrite() {
        let (r, h) = run(TimeoutLayer::new(Some(S)), 2 * S, grpc(Some("5S"))).await;
        assert_eq!(r, Err(Failure::RouteTimeout));
        assert_eq!(h["grpc-timeout"], "1000m");
        let (r, h) = run(TimeoutLayer::new(Some(5 * S)), 2 * S, grpc(Some("500m"))).await;
        assert_eq!(r, Err(Failure::RouteTimeout));
        assert_eq!(h["grpc-timeout"], "500m");
        let (r, h) = run(TimeoutLayer::new(None), 2 * S, grpc(Some("1S"))).await;
        assert_eq!(
            r,
            Err(Failure::RouteTimeout),
            "no route timeout: the header alone"
        );
        assert_eq!(h["grpc-timeout"], "1000m");
        let (r, h) = run(TimeoutLayer::new(Some(3 * S)), 2 * S, grpc(None)).await;
        assert_eq!(r, Ok(()));
        assert_eq!(
            h["grpc-timeout"], "3000m",
            "the route timeout is sent upstream"
        );
        let (r, h) = run(TimeoutLayer::new(None), 2 * S, grpc(None)).await;
        assert_eq!(r, Ok(()));
        assert!(!h.contains_key("grpc-timeout"));
        // Not gRPC: the header is not read.
        let req = Request::builder()
            .header("grpc-timeout", "1S")
            .body(())
            .unwrap();
        let (r, h) = run(TimeoutLayer::new(None), 2 * S, req).await;
        assert_eq!(r, Ok(()));
        assert_eq!(h["grpc-timeout"], "1S");
    }

    #[test]
    fn vs_35_effective_timeout() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("grpc-timeout", v.parse().unwrap());
            m
        };
        assert_eq!(effective_timeout(Some(S), &h("5S")), Some(S));
        assert_eq!(effective_timeout(Some(5 * S), &h("2S")), Some(2 * S));
        assert_eq!(effective_timeout(None, &h("2S")), Some(2 * S));
        assert_eq!(effective_timeout(Some(S), &HeaderMap::new()), Some(S));
        assert_eq!(
            effective_timeout(Some(Duration::ZERO), &HeaderMap::new()),
            None
        );
        assert_eq!(
            effective_timeout(Some(S), &h("0m")),
            Some(S),
            "0 = no deadline"
        );
        assert_eq!(effective_timeout(Some(S), &h("bogus")), Some(S));
    }

    #[test]
    fn parse_grpc_timeout_forms() {
        let p = |v: &str| parse_grpc_timeout(&HeaderValue::from_str(v).unwrap());
        assert_eq!(p("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(p("2M"), Some(Duration::from_secs(120)));
        assert_eq!(p("3S"), Some(Duration::from_secs(3)));
        assert_eq!(p("4m"), Some(Duration::from_millis(4)));
        assert_eq!(p("5u"), Some(Duration::from_micros(5)));
        assert_eq!(p("6n"), Some(Duration::from_nanos(6)));
        assert_eq!(p("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        for bad in [
            "",
            "S",
            "1",
            "123456789S",
            "1s",
            "-1S",
            "1.5S",
            " 1S",
            "1S ",
            "1x",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn encode_grpc_timeout_forms() {
        let e = |d: Duration| encode_grpc_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(e(S), "1000m");
        assert_eq!(e(Duration::from_millis(1500)), "1500m");
        assert_eq!(e(Duration::from_micros(1500)), "1500000n");
        assert_eq!(e(Duration::from_nanos(7)), "7n");
        assert_eq!(e(Duration::ZERO), "0m");
        assert_eq!(e(Duration::from_secs(200_000)), "200000S");
        assert_eq!(e(Duration::from_millis(99_999_999)), "99999999m");
        assert_eq!(
            e(Duration::from_millis(99_999_999) + Duration::from_nanos(1)),
            "100000S"
        );
        assert_eq!(e(Duration::from_secs(u64::MAX)), "99999999H");
    }

    proptest! {
        // Every valid header value parses, and its encoding parses back to the same deadline.
        #[test]
        fn grpc_timeout_text_round_trips(n in 0u64..=99_999_999, unit in prop::sample::select(vec!['H', 'M', 'S', 'm', 'u', 'n'])) {
            let text = format!("{n}{unit}");
            let d = parse_grpc_timeout(&HeaderValue::from_str(&text).unwrap()).unwrap();
            let back = parse_grpc_timeout(&encode_grpc_timeout(d)).unwrap();
            prop_assert_eq!(back, d);
        }

        // Any deadline encodes within 8 digits, never shorter, and loses less than one unit
        // of the finest unit that fits.
        #[test]
        fn grpc_timeout_encoding_is_tight(nanos in 0u64..u64::MAX) {
            let d = Duration::from_nanos(nanos);
            let v = encode_grpc_timeout(d);
            prop_assert!(v.len() <= 9);
            let back = parse_grpc_timeout(&v).unwrap();
            prop_assert!(back >= d);
            let unit = [1u128, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000, 3_600_000_000_000]
                .into_iter()
                .find(|u| d.as_nanos().div_ceil(*u) <= 99_999_999)
                .unwrap();
            prop_assert!((back - d).as_nanos() < unit);
        }
    }
}
