//! [`RoutingLayer`]: Istio routing in-process, around any `tower::Service<http::Request<B>>`.
//!
//! A Rust service that calls other services through a hyper client gets the same routing as a
//! sidecar would give it, from the same YAML, with no proxy hop: the layer decides the route,
//! the weighted destination and the endpoint ([`crate::decide`]), applies rewrites and header
//! edits, then hands the request to the inner service with its URI pointing at the chosen
//! endpoint (`http://10.0.0.7:9080/path`) and `Host` kept as the application wrote it (or as
//! `rewrite.authority` says). The decision travels on as a [`RouteInfo`] request extension, so
//! resilience and telemetry layers further in see the route's timeout, retries and cluster, with
//! an [`UpstreamEndpoint`] for outlier detection. Under a retry layer (an [`Attempts`] extension
//! on the request), each attempt avoids the endpoints already tried (RETRY-13).
//!
//! Answers the router gives itself — 404 `NR`, 503 `NC`/`UH`, fault aborts, redirects, direct
//! responses, CORS preflights — come back as responses, exactly as the sidecar would send them
//! (SEMANTICS ERR-2), with a [`LocalAnswer`] in the response extensions to tell them apart from
//! upstream responses. Mirrors (VS-31) need a copy of the body and are `mesh-proxy`'s job; the
//! layer does not send them.
//!
//! The table is read through an `ArcSwap`: [`RoutingLayer::shared`] lets a config watcher swap
//! in a new table, and each request keeps the table it started with (RELOAD-1).
//!
//! **Cancellation**: dropping the response future during a fault delay drops the request; after
//! that it drops the inner service's future.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use mesh_core::extensions::{Attempts, RouteInfo, UpstreamEndpoint};
//! use mesh_core::loader::parse_str;
//! use mesh_core::registry::{Registry, Scope};
//! use mesh_core::Snapshot;
//! use mesh_routing::{RouteTable, RoutingLayer};
//! use tower::{Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.com]
//!   ports: [{number: 80, name: http}]
//!   resolution: STATIC
//!   endpoints: [{address: 127.0.0.1, ports: {http: 8081}}]
//! "#;
//! let snapshot = Snapshot::new(parse_str(yaml, std::path::Path::new("mesh.yaml"), "default").unwrap());
//! let scope = Scope::new("default");
//! let registry = Registry::build(&snapshot, &scope);
//! let table = RouteTable::compile(&snapshot, &registry, &scope).unwrap();
//!
//! // The inner service would be a hyper client; this one reports where it was sent.
//! let inner = tower::service_fn(|req: http::Request<String>| async move {
//!     let info = req.extensions().get::<RouteInfo>().unwrap().clone();
//!     Ok::<_, Infallible>(http::Response::new(format!("{} {}", req.uri(), info.cluster)))
//! });
//! let svc = RoutingLayer::new(Arc::new(table)).layer(inner);
//! let req = http::Request::get("http://api.example.com/x").body(String::new()).unwrap();
//! let resp = svc.oneshot(req).await.unwrap();
//! use http_body_util::BodyExt;
//! let body = resp.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], b"http://127.0.0.1:8081/x outbound|80||api.example.com");
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HOST, HeaderValue, SET_COOKIE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use mesh_core::BoxError;
use mesh_core::extensions::{Attempts, RouteInfo, UpstreamEndpoint};
use mesh_core::random::Random;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::decide::{self, LocalAnswer, Next};
use crate::matcher::UriMatched;
use crate::route::{Action, Route, WeightedDestination};
use crate::table::RouteTable;

/// Routes requests by the current [`RouteTable`]; see the [module docs](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct RoutingLayer {
    table: Arc<ArcSwap<RouteTable>>,
}

impl RoutingLayer {
    /// A layer routing by `table`, fixed.
    pub fn new(table: Arc<RouteTable>) -> Self {
        Self {
            table: Arc::new(ArcSwap::new(table)),
        }
    }

    /// A layer routing by whatever table `table` holds at each request (swap it on reload).
    pub fn shared(table: Arc<ArcSwap<RouteTable>>) -> Self {
        Self { table }
    }
}

impl<S> Layer<S> for RoutingLayer {
    type Service = Routing<S>;

    fn layer(&self, inner: S) -> Routing<S> {
        Routing {
            inner,
            table: Arc::clone(&self.table),
        }
    }
}

/// The service made by [`RoutingLayer`].
#[derive(Clone, Debug)]
pub struct Routing<S> {
    inner: S,
    table: Arc<ArcSwap<RouteTable>>,
}

impl<S> Routing<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the wrapper.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The destination port of a request (HOST-6): the authority's port, else 80 (443 for https).
pub fn request_port<B>(req: &Request<B>) -> u16 {
    let default = if req.uri().scheme() == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    if let Some(a) = req.uri().authority() {
        return a.port_u16().unwrap_or(default);
    }
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| Authority::try_from(h).ok())
        .and_then(|a| a.port_u16())
        .unwrap_or(default)
}

/// What the response future must do to the inner service's response.
struct Post {
    route: Arc<Route>,
    dest: Option<usize>,
    cors: Option<HeaderMap>,
    set_cookie: Option<HeaderValue>,
}

impl Post {
    fn apply(&self, headers: &mut HeaderMap) {
        if let Some(d) = self.dest.and_then(|i| destination(&self.route, i)) {
            d.response_edits.apply(headers);
        }
        if let Some(c) = &self.cors {
            for (k, v) in c {
                headers.insert(k.clone(), v.clone());
            }
        }
        if let Some(c) = &self.set_cookie {
            headers.append(SET_COOKIE, c.clone());
        }
    }
}

fn destination(route: &Route, i: usize) -> Option<&WeightedDestination> {
    match &route.action {
        Action::Forward { destinations, .. } => destinations.get(i),
        _ => None,
    }
}

fn local<B>(
    answer: LocalAnswer,
    edits: Option<&crate::headers::HeaderEdits>,
    cors: Option<&HeaderMap>,
) -> Response<RouteBody<B>> {
    let flagged = answer.clone();
    let (mut parts, body) = answer.into_response().into_parts();
    if let Some(e) = edits {
        e.apply(&mut parts.headers);
    }
    if let Some(c) = cors {
        for (k, v) in c {
            parts.headers.insert(k.clone(), v.clone());
        }
    }
    parts.extensions.insert(flagged);
    Response::from_parts(parts, RouteBody::local(body))
}

/// A request routed, ready for the inner service; or an answer.
#[allow(
    clippy::large_enum_variant,
    reason = "lives on the stack for one call; boxing would allocate per request"
)]
enum Prepared<B, R> {
    Call(Request<B>, Post),
    Answer(Response<RouteBody<R>>),
}

/// Runs the endpoint pick and the request edits for a forwarded request.
fn prepare<B, R>(
    mut req: Request<B>,
    route: Arc<Route>,
    dest_index: usize,
    cors: Option<HeaderMap>,
    port: u16,
    (block, uri_matched): (Option<usize>, UriMatched),
) -> Prepared<B, R> {
    let Some(dest) = destination(&route, dest_index) else {
        return Prepared::Answer(local(LocalAnswer::NoRoute, None, cors.as_ref()));
    };
    let mut rng = Random::thread();
    // A retry layer above shares the attempts made so far: avoid the endpoints already tried
    // (RETRY-13) and record this pick for the next attempt.
    let attempts = req.extensions().get::<Attempts>().cloned();
    let avoid = attempts.as_ref().map_or_else(Vec::new, |a| {
        dest.target.upstream(port).map_or_else(
            |_| Vec::new(),
            |u| {
                let hashed = u.balancer.hash_policy().is_some();
                u.cluster
                    .endpoints()
                    .indices_of(&a.hosts_to_avoid_for(hashed))
            },
        )
    });
    let selected = match decide::select(dest, &req, port, None, &avoid, &mut rng) {
        Ok(s) => s,
        Err(answer) => {
            return Prepared::Answer(local(answer, Some(&dest.response_edits), cors.as_ref()));
        }
    };
    let Action::Forward {
        rewrite, authority, ..
    } = &route.action
    else {
        return Prepared::Answer(local(LocalAnswer::NoRoute, None, cors.as_ref()));
    };
    // The authority the application wrote, unless rewritten (VS-21, VS-25).
    let original = req.uri().authority().cloned().or_else(|| {
        req.headers()
            .get(HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
    });
    let authority = dest
        .request_edits
        .authority()
        .or(authority.as_ref())
        .cloned()
        .or(original);
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", PathAndQuery::as_str)
        .to_owned();
    let pq = match rewrite {
        Some(r) => r.apply(&pq, uri_matched),
        None => pq,
    };
    dest.request_edits.apply(req.headers_mut());
    if let Some(a) = &authority
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(HOST, v);
    }
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(selected.addr.to_string())
        .path_and_query(pq)
        .build();
    match uri {
        Ok(u) => *req.uri_mut() = u,
        Err(_) => return Prepared::Answer(local(LocalAnswer::NoRoute, None, cors.as_ref())),
    }
    // LOG-2: the name of the block that matched, not the route's first one.
    let mut info = RouteInfo::new(
        Arc::clone(route.name_for(block)),
        selected.upstream.cluster.name(),
    );
    info.endpoint = Some(selected.addr);
    if let Some(a) = &attempts {
        a.record_host(selected.addr);
    }
    req.extensions_mut().insert(UpstreamEndpoint::new(
        Arc::clone(&selected.endpoints),
        selected.index,
    ));
    info.timeout = route.timeout;
    info.retries = route.retries.clone();
    req.extensions_mut().insert(info);
    let set_cookie = selected.set_cookie;
    Prepared::Call(
        req,
        Post {
            route,
            dest: Some(dest_index),
            cors,
            set_cookie,
        },
    )
}

impl<S, B, R> Service<Request<B>> for Routing<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<RouteBody<R>>;
    type Error = BoxError;
    type Future = RoutingFuture<S, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone stays (tower's `mem::replace` rule).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let table = self.table.load_full();
        let port = request_port(&req);
        let mut rng = Random::thread();
        let decision = decide::decide(&table, &req, port, &mut rng);
        let Some(matched) = decision.matched else {
            return RoutingFuture::answer(local(LocalAnswer::NoRoute, None, None));
        };
        let route = Arc::clone(matched.route);
        let (answer, dest_index) = match &decision.next {
            Next::Answer(a) => (Some(a.clone()), None),
            Next::Forward(d) => {
                let index = match &route.action {
                    Action::Forward { destinations, .. } => {
                        destinations.iter().position(|x| std::ptr::eq(x, *d))
                    }
                    _ => None,
                };
                (None, index)
            }
        };
        let edits_answer = answer.map(|a| (a, decision.response_edits().cloned()));
        let step = Step {
            route,
            dest_index,
            answer: edits_answer,
            cors: decision.cors,
            port,
            block: matched.block,
            uri: matched.uri,
        };
        match decision.delay {
            Some(d) => RoutingFuture {
                state: State::Delay {
                    sleep: tokio::time::sleep(d),
                    pending: Some((req, step, inner)),
                },
            },
            None => RoutingFuture::start(req, step, inner),
        }
    }
}

/// The part of a decision that survives a fault delay (owned).
struct Step {
    route: Arc<Route>,
    dest_index: Option<usize>,
    answer: Option<(LocalAnswer, Option<crate::headers::HeaderEdits>)>,
    cors: Option<HeaderMap>,
    port: u16,
    block: Option<usize>,
    uri: UriMatched,
}

pin_project! {
    /// The response future of [`Routing`].
    pub struct RoutingFuture<S, B, R>
    where
        S: Service<Request<B>, Response = Response<R>>,
    {
        #[pin]
        state: State<S, B, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, R>
    where
        S: Service<Request<B>, Response = Response<R>>,
    {
        Delay { #[pin] sleep: Sleep, pending: Option<(Request<B>, Step, S)> },
        Inner { #[pin] fut: S::Future, post: Option<Post> },
        Done { resp: Option<Response<RouteBody<R>>> },
    }
}

impl<S, B, R> std::fmt::Debug for RoutingFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingFuture").finish_non_exhaustive()
    }
}

impl<S, B, R> RoutingFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    fn answer(resp: Response<RouteBody<R>>) -> Self {
        Self {
            state: State::Done { resp: Some(resp) },
        }
    }

    fn start(req: Request<B>, step: Step, mut inner: S) -> Self {
        if let Some((answer, edits)) = step.answer {
            return Self::answer(local(answer, edits.as_ref(), step.cors.as_ref()));
        }
        let Some(index) = step.dest_index else {
            return Self::answer(local(LocalAnswer::NoRoute, None, step.cors.as_ref()));
        };
        match prepare(
            req,
            step.route,
            index,
            step.cors,
            step.port,
            (step.block, step.uri),
        ) {
            Prepared::Answer(resp) => Self::answer(resp),
            Prepared::Call(req, post) => Self {
                state: State::Inner {
                    fut: inner.call(req),
                    post: Some(post),
                },
            },
        }
    }
}

impl<S, B, R> Future for RoutingFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<RouteBody<R>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Delay { sleep, pending } => {
                    ready!(sleep.poll(cx));
                    let Some((req, step, inner)) = pending.take() else {
                        return Poll::Ready(Err("routing future polled after completion".into()));
                    };
                    let next = RoutingFuture::start(req, step, inner);
                    this.state.set(next.state);
                }
                StateProj::Inner { fut, post } => {
                    let resp = ready!(fut.poll(cx)).map_err(Into::into)?;
                    let (mut parts, body) = resp.into_parts();
                    if let Some(p) = post.take() {
                        p.apply(&mut parts.headers);
                    }
                    return Poll::Ready(Ok(Response::from_parts(parts, RouteBody::inner(body))));
                }
                StateProj::Done { resp } => {
                    return Poll::Ready(
                        resp.take()
                            .ok_or_else(|| "routing future polled after completion".into()),
                    );
                }
            }
        }
    }
}

pin_project! {
    /// The response body of [`Routing`]: the inner service's, or a local answer's.
    pub struct RouteBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Local { data: Option<Bytes> },
    }
}

impl<B> RouteBody<B> {
    fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }

    fn local(data: Bytes) -> Self {
        Self {
            kind: BodyKind::Local {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> std::fmt::Debug for RouteBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteBody").finish_non_exhaustive()
    }
}

impl<B> http_body::Body for RouteBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            BodyKindProj::Local { data } => {
                Poll::Ready(data.take().map(|d| Ok(http_body::Frame::data(d))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Local { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Local { data } => {
                http_body::SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
