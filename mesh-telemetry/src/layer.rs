//! Tower layers that give any HTTP service the proxy's telemetry without a sidecar:
//! [`TraceContextLayer`] (request id and trace context), [`MetricsLayer`] (Istio's standard
//! metrics, reported as the destination) and [`AccessLogLayer`] (one line per request).
//!
//! Why: a Rust service that embeds the mesh crates instead of running behind `mesh-proxy`
//! should still show up on the same dashboards, join the same traces and log the same lines.
//! Each layer works alone; stacked, the trace context layer goes outermost so the others see
//! its [`SpanContext`] (the metrics' exemplars and the access log's `trace_id` come from it).
//!
//! What the layers read from the request extensions when present: [`SpanContext`] (inserted by
//! [`TraceContextLayer`]), [`Downstream`] (the connection's addresses and mTLS peer, inserted by
//! the server that accepted it, as for `mesh_identity::AuthzLayer`). Request bytes are the head
//! plus `content-length` (a streamed body without one counts its head only); response bytes
//! are counted as the body is sent. A request is reported when its response body ends, or is
//! dropped unfinished (flag `DC`), or when the service fails (`response_code` 0).
//!
//! ```
//! use std::convert::Infallible;
//! use mesh_telemetry::access_log::AccessLog;
//! use mesh_telemetry::layer::{AccessLogLayer, MetricsLayer, TraceContextLayer};
//! use mesh_telemetry::metrics::{DestinationService, IstioMetrics, Workload};
//! use mesh_telemetry::trace_context::{Sampler, SpanContext};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let metrics = IstioMetrics::new();
//! let me = Workload::new(Some("reviews-v2"), Some("prod"), &Default::default(), None, None);
//! let service = DestinationService::new("reviews.prod.svc.cluster.local", Some("prod"));
//! let app = service_fn(|req: http::Request<String>| async move {
//!     // The handler continues the trace on its own calls with a child of this span.
//!     let span = req.extensions().get::<SpanContext>().cloned();
//!     assert!(span.is_some());
//!     Ok::<_, Infallible>(http::Response::new(String::from("ok")))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(TraceContextLayer::new(Sampler::percent(1.0)))
//!     .layer(MetricsLayer::new(metrics.clone(), me, service))
//!     .layer(AccessLogLayer::new(AccessLog::off()))
//!     .service(app);
//! let resp = svc.oneshot(http::Request::get("/reviews/1").body(String::new())?).await?;
//! drop(resp); // reported when the body is done or dropped
//! assert_eq!(metrics.series_count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll, ready};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use mesh_core::extensions::{Downstream, PeerIdentity};
use mesh_core::random::Random;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::access_log::{AccessLog, Entry};
use crate::metrics::{
    DestinationService, IstioMetrics, Labels, Reporter, RequestLabels, RequestProtocol,
    RequestSample, SecurityPolicy, Workload,
};
use crate::trace_context::{Propagation, Sampler, SpanContext, X_REQUEST_ID, new_request_id};

// === observation plumbing shared by the layers ===

/// How a response ended, handed to a layer's observer.
#[derive(Debug)]
pub struct End {
    /// `None` when the service failed before a response.
    status: Option<StatusCode>,
    /// Response head bytes.
    head_bytes: u64,
    /// Response body bytes sent.
    body_bytes: u64,
    /// The body reached its end (else the client went away first).
    complete: bool,
    grpc_status: Option<u16>,
}

/// What a layer does with a request once its response is over (implemented by this
/// module's observers; the bound of [`ObservedBody`] and [`ObservedFuture`]).
pub trait Observe: Send + 'static {
    /// Called once: at the end of the response body, when it is dropped unfinished, or when
    /// the service failed.
    fn end(self, end: End);
}

/// Calls the observer exactly once: at the body's end, or on drop.
struct Guard<O: Observe> {
    observer: Option<O>,
    status: Option<StatusCode>,
    head_bytes: u64,
    body_bytes: u64,
    grpc_status: Option<u16>,
}

impl<O: Observe> Guard<O> {
    fn finish(&mut self, complete: bool) {
        if let Some(o) = self.observer.take() {
            o.end(End {
                status: self.status,
                head_bytes: self.head_bytes,
                body_bytes: self.body_bytes,
                complete,
                grpc_status: self.grpc_status,
            });
        }
    }
}

impl<O: Observe> Drop for Guard<O> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<O: Observe> std::fmt::Debug for Guard<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("body_bytes", &self.body_bytes)
            .finish()
    }
}

pin_project! {
    /// A response body that reports to a layer when it ends or is dropped.
    #[derive(Debug)]
    pub struct ObservedBody<B, O: Observe> {
        #[pin]
        inner: B,
        guard: Guard<O>,
    }
}

impl<B: Body, O: Observe> Body for ObservedBody<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let res = ready!(this.inner.as_mut().poll_frame(cx));
        match &res {
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    this.guard.body_bytes += bytes::Buf::remaining(d) as u64;
                } else if let Some(t) = frame.trailers_ref()
                    && let Some(s) = grpc_status(t)
                {
                    this.guard.grpc_status = Some(s);
                }
                // Servers stop polling once the body says it is at its end (hyper does).
                if this.inner.is_end_stream() {
                    this.guard.finish(true);
                }
            }
            None => this.guard.finish(true),
            Some(Err(_)) => {}
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The response future of the layers: wraps the body in an [`ObservedBody`].
    #[derive(Debug)]
    pub struct ObservedFuture<F, O: Observe> {
        #[pin]
        inner: F,
        guard: Option<Guard<O>>,
    }
}

impl<F, B, E, O> Future for ObservedFuture<F, O>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    O: Observe,
{
    type Output = Result<Response<ObservedBody<B, O>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        // Polled once more after Ready is a caller bug; an empty guard then observes nothing.
        let mut guard = this.guard.take().unwrap_or(Guard {
            observer: None,
            status: None,
            head_bytes: 0,
            body_bytes: 0,
            grpc_status: None,
        });
        Poll::Ready(res.map(|resp| {
            guard.status = Some(resp.status());
            guard.head_bytes = response_head_bytes(&resp);
            guard.grpc_status = grpc_status(resp.headers());
            let ended = resp.body().is_end_stream();
            let mut resp = resp.map(|inner| ObservedBody { inner, guard });
            if ended {
                resp.body_mut().guard.finish(true);
            }
            resp
        }))
    }
}

fn observed<F, O: Observe>(inner: F, observer: O) -> ObservedFuture<F, O> {
    ObservedFuture {
        inner,
        guard: Some(Guard {
            observer: Some(observer),
            status: None,
            head_bytes: 0,
            body_bytes: 0,
            grpc_status: None,
        }),
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn fields_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}

/// A request head's size as an HTTP/1.1 client writes it: request line, header lines, blank
/// line (HTTP/2 sends the same fields compressed; Envoy counts those bytes).
pub fn request_head_bytes<B>(req: &Request<B>) -> u64 {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len()) as u64;
    req.method().as_str().len() as u64 + target + 12 + fields_bytes(req.headers()) + 2
}

/// A request's size: [`request_head_bytes`] and the body's `content-length`.
pub fn request_bytes<B>(req: &Request<B>) -> u64 {
    let body = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    request_head_bytes(req) + body
}

/// A response head's size as an HTTP/1.1 server writes it: status line, header lines, blank
/// line.
pub fn response_head_bytes<B>(resp: &Response<B>) -> u64 {
    let reason = resp.status().canonical_reason().map_or(0, str::len) as u64;
    15 + reason + fields_bytes(resp.headers()) + 2
}

// === TraceContextLayer ===

/// Keeps or generates `x-request-id` (REQID-1), starts this hop's [`SpanContext`] from the
/// request's `traceparent`/`tracestate`/B3 headers (TRACE-5, TRACE-6, TRACE-14) and inserts it
/// into the request extensions, where handlers take [`SpanContext::child`] for their own calls
/// and other layers read the trace id.
#[derive(Clone, Debug)]
pub struct TraceContextLayer {
    sampler: Sampler,
    propagation: Propagation,
}

impl TraceContextLayer {
    /// New traces sampled by `sampler`; a caller's decision is always kept.
    pub fn new(sampler: Sampler) -> Self {
        Self {
            sampler,
            propagation: Propagation::default(),
        }
    }

    /// The formats [`TraceContext::propagation`] reports, for handlers that inject the context
    /// on their calls (`w3c`, or `w3c,b3`).
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }
}

impl<S> Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> TraceContext<S> {
        TraceContext {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`TraceContextLayer`].
#[derive(Clone, Debug)]
pub struct TraceContext<S> {
    inner: S,
    layer: TraceContextLayer,
}

impl<S> TraceContext<S> {
    /// The configured propagation formats.
    pub fn propagation(&self) -> Propagation {
        self.layer.propagation
    }
}

impl<S, B> Service<Request<B>> for TraceContext<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        if !req.headers().contains_key(&X_REQUEST_ID) {
            req.headers_mut()
                .insert(X_REQUEST_ID.clone(), new_request_id());
        }
        let span = SpanContext::start(req.headers(), &self.layer.sampler, &mut Random::thread());
        req.extensions_mut().insert(span);
        self.inner.call(req)
    }
}

// === MetricsLayer ===

/// Callers' labels by SPIFFE ID: bounded, so a flood of identities cannot grow it forever.
const MAX_CALLERS: usize = 4096;

/// Reports every request under Istio's standard metrics as the destination workload
/// (`reporter="destination"`, MET-2): the caller is labelled from its mTLS identity (the
/// [`Downstream`] extension's peer), `connection_security_policy` is `mutual_tls` or `none`.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    inner: Arc<MetricsShared>,
}

#[derive(Debug)]
struct MetricsShared {
    metrics: IstioMetrics,
    me_mtls: Labels<Workload>,
    me_plain: Labels<Workload>,
    service: Labels<DestinationService>,
    unknown: Labels<Workload>,
    callers: RwLock<HashMap<Arc<str>, Labels<Workload>>>,
}

impl MetricsLayer {
    /// Reports into `metrics` as workload `me` (its `principal`, if set, is used on mTLS
    /// requests) serving `service`.
    pub fn new(metrics: IstioMetrics, me: Workload, service: DestinationService) -> Self {
        Self {
            inner: Arc::new(MetricsShared {
                metrics,
                me_plain: Labels::new(me.with_principal(None)),
                me_mtls: Labels::new(me),
                service: Labels::new(service),
                unknown: Labels::new(Workload::unknown()),
                callers: RwLock::new(HashMap::new()),
            }),
        }
    }
}

impl MetricsShared {
    fn caller(&self, peer: Option<&PeerIdentity>) -> Labels<Workload> {
        let Some(peer) = peer else {
            return self.unknown.clone();
        };
        if let Some(l) = self
            .callers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer.uri())
        {
            return l.clone();
        }
        let mut w = Workload::unknown();
        w.principal = peer.uri().to_owned();
        if let Some(ns) = peer.namespace() {
            w.namespace = ns.to_owned();
        }
        let labels = Labels::new(w);
        let mut callers = self.callers.write().unwrap_or_else(PoisonError::into_inner);
        if callers.len() < MAX_CALLERS {
            callers.insert(Arc::from(peer.uri()), labels.clone());
        }
        labels
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            shared: Arc::clone(&self.inner),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
    shared: Arc<MetricsShared>,
}

/// A request's metric report in the making.
#[derive(Debug)]
pub struct MetricsObserver {
    shared: Arc<MetricsShared>,
    started: Instant,
    request_bytes: u64,
    grpc: bool,
    mtls: bool,
    source: Labels<Workload>,
    trace: Option<crate::trace_context::TraceId>,
}

impl Observe for MetricsObserver {
    fn end(self, end: End) {
        let s = &self.shared;
        let flags = if end.status.is_some() && !end.complete {
            Cow::Borrowed("DC")
        } else {
            Cow::Borrowed("-")
        };
        let labels = RequestLabels {
            reporter: Reporter::Destination,
            source: self.source,
            destination: if self.mtls {
                s.me_mtls.clone()
            } else {
                s.me_plain.clone()
            },
            service: s.service.clone(),
            protocol: if self.grpc {
                RequestProtocol::Grpc
            } else {
                RequestProtocol::Http
            },
            response_code: end.status.map_or(0, |c| c.as_u16()),
            grpc_status: if self.grpc { end.grpc_status } else { None },
            response_flags: flags,
            security: if self.mtls {
                SecurityPolicy::MutualTls
            } else {
                SecurityPolicy::None
            },
        };
        s.metrics.record(
            &labels,
            &RequestSample {
                duration: self.started.elapsed(),
                request_bytes: self.request_bytes,
                response_bytes: end.head_bytes + end.body_bytes,
                trace_id: self.trace,
            },
        );
    }
}

impl<S, B, RB> Service<Request<B>> for Metrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Body,
{
    type Response = Response<ObservedBody<RB, MetricsObserver>>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future, MetricsObserver>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<Downstream>()
            .and_then(|d| d.peer.as_ref());
        let observer = MetricsObserver {
            shared: Arc::clone(&self.shared),
            started: Instant::now(),
            request_bytes: request_bytes(&req),
            grpc: is_grpc(req.headers()),
            mtls: peer.is_some(),
            source: self.shared.caller(peer),
            trace: req
                .extensions()
                .get::<SpanContext>()
                .filter(|s| s.is_sampled())
                .map(SpanContext::trace_id),
        };
        observed(self.inner.call(req), observer)
    }
}

// === AccessLogLayer ===

/// Writes one access-log line per request (LOG-1), Istio's text format or JSON, after the
/// response body has been sent. The route name is `default`, the cluster `-` (a service has
/// neither); the trace id comes from a [`TraceContextLayer`] outside this one.
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    log: AccessLog,
    json: bool,
}

impl AccessLogLayer {
    /// Lines in Istio's text format into `log`.
    pub fn new(log: AccessLog) -> Self {
        Self { log, json: false }
    }

    /// JSON lines instead of text.
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> AccessLogService<S> {
        AccessLogService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
    layer: AccessLogLayer,
}

/// A request's access-log line in the making (`None` when the log is off).
#[derive(Debug)]
pub struct AccessLogObserver {
    line: Option<(AccessLog, bool, Box<Entry>, Instant)>,
}

impl Observe for AccessLogObserver {
    fn end(self, end: End) {
        let Some((log, json, mut e, started)) = self.line else {
            return;
        };
        e.response_code = end.status.map_or(0, |s| s.as_u16());
        e.response_flags = if end.status.is_some() && !end.complete {
            "DC".to_owned()
        } else {
            "-".to_owned()
        };
        e.response_code_details = if end.status.is_some() {
            "via_upstream".to_owned()
        } else {
            "service_error".to_owned()
        };
        e.bytes_sent = end.body_bytes;
        e.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        log.write(if json { e.json() } else { e.text() });
    }
}

impl<S, B, RB> Service<Request<B>> for AccessLogService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Body,
{
    type Response = Response<ObservedBody<RB, AccessLogObserver>>;
    type Error = S::Error;
    type Future = ObservedFuture<S::Future, AccessLogObserver>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let line = self.layer.log.is_enabled().then(|| {
            (
                self.layer.log.clone(),
                self.layer.json,
                Box::new(entry(&req)),
                Instant::now(),
            )
        });
        observed(self.inner.call(req), AccessLogObserver { line })
    }
}

/// The access-log fields a request carries, and the trace id of a [`TraceContextLayer`]
/// outside this one.
fn entry<B>(req: &Request<B>) -> Entry {
    let mut e = Entry::from_request(req, req.extensions().get::<Downstream>());
    e.bytes_received = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    e.route_name = Some("default".to_owned());
    e.trace_id = req
        .extensions()
        .get::<SpanContext>()
        .map(|s| s.trace_id().to_string());
    e
}

#[cfg(test)]
mod tests;
