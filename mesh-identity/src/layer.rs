//! [`AuthzLayer`]: AuthorizationPolicy enforcement around any HTTP service.
//!
//! Why: Istio authorizes inbound requests in the server's sidecar, after mTLS termination and
//! before the app (AUTHZ-24). An SDK user who terminates mTLS in their own Rust server gets the
//! same decision by wrapping the app in this layer: every request is checked against an
//! [`AuthzTable`] (CUSTOM → DENY → ALLOW, AUDIT, dry run; AUTHZ-2) and a denied request never
//! reaches the inner service.
//!
//! What a decision reads, per request:
//! - the connection, from the [`Downstream`] extension the server inserts into each request of
//!   an accepted connection: the peer IP (`ipBlocks`, `remoteIpBlocks`, `source.ip`, with 0
//!   trusted hops), the local IP and port (`destination.ip`, `ports`, AUTHZ-17), the mTLS peer
//!   principal ([`PeerIdentity::principal`](mesh_core::extensions::PeerIdentity::principal),
//!   AUTHZ-11..13) and the SNI (`connection.sni`);
//! - the request: method, path (normalized, without the query, AUTHZ-18/AUTHZ-25), `Host` or
//!   `:authority` as sent (AUTHZ-16) and the headers (`request.headers[..]`).
//!
//! **A request without a [`Downstream`] extension** is treated as a plaintext request from
//! `0.0.0.0` to port 0 with no principal and no SNI: identity-based ALLOW rules never match it
//! (AUTHZ-20, AUTHZ-22) and `notPrincipals: ["*"]` DENY rules do. Forgetting to insert the
//! extension therefore fails closed, never open.
//!
//! Responses the layer makes itself (ERR-1, ERR-2):
//! - deny (AUTHZ-23): `403`, `content-type: text/plain`, body `RBAC: access denied`; for a
//!   gRPC request (`content-type: application/grpc*`) a trailers-only reply instead: `200`,
//!   `content-type: application/grpc`, `grpc-status: 7` (PERMISSION_DENIED),
//!   `grpc-message: RBAC: access denied`, empty body;
//! - a path that cannot be normalized (`%00`, AUTHZ-25): `400` with an empty body (gRPC:
//!   `grpc-status: 13`).
//!
//! Path normalization ([`PathNormalization::Base`] by default, Istio's mesh default) is applied
//! for matching **and**, when it changes the path, to the request handed to the inner service,
//! so policy and app see the same resource (AUTHZ-25); the query string is kept. Any other
//! request is passed on unchanged. A stack that normalizes earlier sets
//! [`AuthzLayer::path_normalization`] to [`PathNormalization::None`] (normalizing twice is not
//! idempotent: `%2561` would become `a`).
//!
//! The table is held in an [`ArcSwap`]: each request loads the current version without a lock
//! and keeps it for its decision, and a reload ([`AuthzLayer::shared`]) applies to the next
//! request. A matching AUDIT policy is logged at `info` (target `mesh_identity::layer`, fields
//! `namespace`, `name`, `rule`); denies are logged at `debug` with Envoy's response code details.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use mesh_core::extensions::{Downstream, PeerIdentity};
//! use mesh_core::registry::Scope;
//! use mesh_identity::{AuthzLayer, AuthzTable};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let yaml = r#"
//! apiVersion: security.istio.io/v1
//! kind: AuthorizationPolicy
//! metadata: {name: payments, namespace: production}
//! spec:
//!   rules:
//!   - from: [{source: {principals: [cluster.local/ns/production/sa/order-service]}}]
//! "#;
//! let resources =
//!     mesh_core::loader::parse_str(yaml, std::path::Path::new("authz.yaml"), "production")?;
//! let table = AuthzTable::compile(&mesh_core::Snapshot::new(resources), &Scope::new("production"));
//!
//! let app = service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, Infallible>(http::Response::new(String::from("paid")))
//! });
//! let svc = ServiceBuilder::new().layer(AuthzLayer::new(Arc::new(table))).service(app);
//!
//! let conn = Downstream::new("10.0.0.7:51000".parse()?, "10.0.0.9:8080".parse()?)
//!     .with_peer(PeerIdentity::new("spiffe://cluster.local/ns/production/sa/order-service"));
//! let mut req = http::Request::post("/v1/payments").body(String::new())?;
//! req.extensions_mut().insert(conn);
//! assert_eq!(svc.clone().oneshot(req).await?.status(), 200);
//!
//! // No Downstream extension: plaintext, no principal → denied.
//! let resp = svc.oneshot(http::Request::post("/v1/payments").body(String::new())?).await?;
//! assert_eq!(resp.status(), 403);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use mesh_core::extensions::Downstream;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::authz::{AuthzRequest, AuthzTable, DENY_BODY, Decision};
use crate::path::{PathNormalization, normalize};

/// `grpc-status` for a denied gRPC request: PERMISSION_DENIED (ERR-1, 403 → 7).
const GRPC_PERMISSION_DENIED: &str = "7";
/// `grpc-status` for a request rejected as malformed: INTERNAL (ERR-1, 400 → 13).
const GRPC_INTERNAL: &str = "13";

// === impl AuthzLayer ===

/// A [`Layer`] that enforces AuthorizationPolicies on every request (see the
/// [module docs](self)).
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthzLayer {
    table: Arc<ArcSwap<AuthzTable>>,
    normalization: PathNormalization,
}

impl AuthzLayer {
    /// Enforces a fixed `table`.
    pub fn new(table: Arc<AuthzTable>) -> Self {
        Self::shared(Arc::new(ArcSwap::new(table)))
    }

    /// Enforces whatever `table` holds when a request arrives: storing a new table (on reload)
    /// applies to the next request without rebuilding the service.
    pub fn shared(table: Arc<ArcSwap<AuthzTable>>) -> Self {
        Self {
            table,
            normalization: PathNormalization::default(),
        }
    }

    /// How paths are normalized before matching and forwarding (AUTHZ-25); default
    /// [`PathNormalization::Base`]. Use [`PathNormalization::None`] when a layer in front
    /// already normalized the path.
    pub fn path_normalization(mut self, mode: PathNormalization) -> Self {
        self.normalization = mode;
        self
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz {
            inner,
            table: Arc::clone(&self.table),
            normalization: self.normalization,
        }
    }
}

// === impl Authz ===

/// The service made by [`AuthzLayer`]: calls the inner service only for allowed requests.
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    table: Arc<ArcSwap<AuthzTable>>,
    normalization: PathNormalization,
}

impl<S> Authz<S> {
    /// Wraps `inner` with a fixed `table` (as [`AuthzLayer::new`]).
    pub fn new(inner: S, table: Arc<AuthzTable>) -> Self {
        AuthzLayer::new(table).layer(inner)
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

/// What the layer answers by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LocalReply {
    /// AUTHZ-23.
    Denied { grpc: bool },
    /// `%00` in the path (AUTHZ-25, ERR-2).
    BadPath { grpc: bool },
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authz<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuthzBody<ResBody>>;
    type Error = S::Error;
    type Future = AuthzFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let grpc = mesh_core::classify::is_grpc(req.headers());
        let normalized = match normalize(req.uri().path(), self.normalization) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(path)) => Some(path),
            Err(error) => {
                tracing::debug!(%error, "request path rejected");
                return AuthzFuture::local(LocalReply::BadPath { grpc });
            }
        };
        let allowed = {
            let table = self.table.load();
            let path = normalized.as_deref().unwrap_or_else(|| req.uri().path());
            let decision = table.decide(&view(&req, path));
            report(&decision);
            decision.allowed
        };
        if !allowed {
            return AuthzFuture::local(LocalReply::Denied { grpc });
        }
        if let Some(path) = normalized {
            match with_path(req.uri(), &path) {
                Some(uri) => *req.uri_mut() = uri,
                None => return AuthzFuture::local(LocalReply::BadPath { grpc }),
            }
        }
        AuthzFuture {
            kind: Kind::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

/// The decision's view of `req`, with `path` already normalized.
fn view<'a, B>(req: &'a Request<B>, path: &'a str) -> AuthzRequest<'a> {
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let base = match req.extensions().get::<Downstream>() {
        Some(conn) => AuthzRequest::http(conn.remote.ip(), conn.local.port())
            .principal(conn.peer.as_ref().map(|p| p.principal()))
            .destination_ip(conn.local.ip())
            .sni(conn.sni.as_deref()),
        // Plaintext, no principal, unknown addresses: fails closed (module docs).
        None => AuthzRequest::http(unspecified, 0),
    };
    let base = base
        .method(req.method().as_str())
        .path(path)
        .headers(req.headers());
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(host) => base.host(host),
        None => base,
    }
}

fn report(decision: &Decision<'_>) {
    if let Some(audit) = decision.audit {
        tracing::info!(
            namespace = audit.namespace,
            name = audit.name,
            rule = audit.rule,
            allowed = decision.allowed,
            "authorization audit"
        );
    }
    if let Some(details) = decision.response_code_details() {
        tracing::debug!(%details, reason = %decision.reason, "request denied");
    }
    if let Some(dry) = decision.dry_run {
        tracing::debug!(allowed = dry.allowed, reason = %dry.reason, "authorization dry run");
    }
}

/// `uri` with its path replaced by `path`, query kept.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

// === impl AuthzFuture ===

pin_project! {
    /// The response future of [`Authz`]: the inner service's future, or a local reply that is
    /// ready at once.
    ///
    /// Dropping it drops the inner future (the inner service's own cancellation applies); a
    /// local reply holds nothing.
    #[derive(Debug)]
    pub struct AuthzFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Local { reply: LocalReply },
    }
}

impl<F> AuthzFuture<F> {
    fn local(reply: LocalReply) -> Self {
        Self {
            kind: Kind::Local { reply },
        }
    }
}

impl<F, B, E> Future for AuthzFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthzBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(AuthzBody::inner)))
            }
            KindProj::Local { reply } => Poll::Ready(Ok(local_reply(*reply))),
        }
    }
}

fn local_reply<B>(reply: LocalReply) -> Response<AuthzBody<B>> {
    let (status, text, grpc) = match reply {
        LocalReply::Denied { grpc } => (StatusCode::FORBIDDEN, DENY_BODY, grpc),
        LocalReply::BadPath { grpc } => (StatusCode::BAD_REQUEST, "", grpc),
    };
    if grpc {
        // Trailers-only gRPC reply (ERR-1). `grpc-message` is the body text; both texts are
        // printable ASCII without `%`, so no percent-encoding is needed.
        let grpc_status = match reply {
            LocalReply::Denied { .. } => GRPC_PERMISSION_DENIED,
            LocalReply::BadPath { .. } => GRPC_INTERNAL,
        };
        let mut resp = Response::new(AuthzBody::empty());
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(grpc_status));
        if !text.is_empty() {
            headers.insert("grpc-message", HeaderValue::from_static(text));
        }
        return resp;
    }
    let mut resp = Response::new(AuthzBody::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if !text.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    resp
}

// === impl AuthzBody ===

pin_project! {
    /// The response body of [`Authz`]: the inner service's body passed through (frames and
    /// errors unchanged), or the body of a local reply (one data frame, or none).
    #[derive(Debug)]
    pub struct AuthzBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    #[derive(Debug)]
    enum BodyKind<B> {
        Inner { #[pin] body: B },
        Local { data: Option<Bytes> },
    }
}

impl<B> AuthzBody<B> {
    /// The inner service's `body`, passed through.
    pub fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }

    /// A local body of `data`, sent as one frame.
    pub fn full(data: Bytes) -> Self {
        Self {
            kind: BodyKind::Local {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty local body.
    pub fn empty() -> Self {
        Self {
            kind: BodyKind::Local { data: None },
        }
    }

    /// Whether this is a local reply's body (the inner service was not called).
    pub fn is_local(&self) -> bool {
        matches!(self.kind, BodyKind::Local { .. })
    }
}

impl<B> Body for AuthzBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx),
            BodyKindProj::Local { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Local { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Local { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Full};
    use mesh_core::Snapshot;
    use mesh_core::extensions::PeerIdentity;
    use mesh_core::registry::Scope;
    use tower::{ServiceExt, service_fn};

    use super::*;

    const POLICY: &str = r#"
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: payment-service-authz, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/production/sa/order-service-sa"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/v1/payments", "/v1/payments/*"]}}]
"#;
    const ORDER: &str = "spiffe://cluster.local/ns/production/sa/order-service-sa";

    fn table(yaml: &str) -> AuthzTable {
        let resources =
            mesh_core::loader::parse_str(yaml, std::path::Path::new("policy.yaml"), "production")
                .unwrap();
        let scope = Scope::new("production").labels([("app", "payment-service")]);
        AuthzTable::compile(&Snapshot::new(resources), &scope)
    }

    fn conn(peer: Option<&str>) -> Downstream {
        let c = Downstream::new(
            "10.0.0.7:51000".parse().unwrap(),
            "10.0.0.9:8080".parse().unwrap(),
        );
        match peer {
            Some(p) => c.with_peer(PeerIdentity::new(p)),
            None => c,
        }
    }

    fn request(method: &str, uri: &str, peer: Option<&str>) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut().insert(conn(peer));
        req
    }

    /// An app that answers 200 with the URI it saw and counts its calls.
    fn app(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
    {
        service_fn(move |req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let seen = req.uri().to_string();
            async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen)))) }
        })
    }

    async fn send<S>(svc: S, req: Request<Full<Bytes>>) -> (Response<()>, Bytes)
    where
        S: Service<Request<Full<Bytes>>, Response = Response<AuthzBody<Full<Bytes>>>>,
        S::Error: std::fmt::Debug,
    {
        let resp = svc.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, ()), bytes)
    }

    #[tokio::test]
    async fn allowed_reaches_the_app_unchanged() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AuthzLayer::new(Arc::new(table(POLICY))).layer(app(calls.clone()));
        for uri in ["/v1/payments", "/v1/payments/42?expand=true"] {
            let (resp, body) = send(svc.clone(), request("POST", uri, Some(ORDER))).await;
            assert_eq!(resp.status(), StatusCode::OK, "{uri}");
            assert_eq!(body, uri.as_bytes(), "{uri}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn denied_gets_403_and_never_reaches_the_app() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AuthzLayer::new(Arc::new(table(POLICY))).layer(app(calls.clone()));
        let cases = [
            ("GET", "/v1/payments", Some(ORDER)),
            ("POST", "/v1/refunds", Some(ORDER)),
            (
                "POST",
                "/v1/payments",
                Some("spiffe://cluster.local/ns/production/sa/checkout-bff"),
            ),
            ("POST", "/v1/payments", None),
        ];
        for (method, uri, peer) in cases {
            let (resp, body) = send(svc.clone(), request(method, uri, peer)).await;
            assert_eq!(
                resp.status(),
                StatusCode::FORBIDDEN,
                "{method} {uri} {peer:?}"
            );
            assert_eq!(body, DENY_BODY);
            assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain");
            assert_eq!(resp.headers()[CONTENT_LENGTH], "19");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn grpc_deny_is_trailers_only_permission_denied() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AuthzLayer::new(Arc::new(table(POLICY))).layer(app(calls.clone()));
        let mut req = request(
            "POST",
            "/payments.v1.Payments/Charge",
            Some("spiffe://cluster.local/ns/production/sa/checkout-bff"),
        );
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        let (resp, body) = send(svc, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "7");
        assert_eq!(resp.headers()["grpc-message"], "RBAC: access denied");
        assert!(body.is_empty());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn missing_downstream_is_plaintext_from_nowhere() {
        // Denies plaintext (AUTHZ-22) and allows everything else.
        let deny_plaintext = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-plaintext, namespace: production}
spec:
  action: DENY
  rules: [{from: [{source: {notPrincipals: ["*"]}}]}]
"#;
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AuthzLayer::new(Arc::new(table(deny_plaintext))).layer(app(calls.clone()));
        let bare = Request::post("/v1/payments")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (resp, _) = send(svc.clone(), bare).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let (resp, _) = send(svc, request("POST", "/v1/payments", Some(ORDER))).await;
        assert_eq!(resp.status(), StatusCode::OK);

        // The seeds' ALLOW policy: no identity → no match.
        let svc = AuthzLayer::new(Arc::new(table(POLICY))).layer(app(calls.clone()));
        let bare = Request::post("/v1/payments")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (resp, _) = send(svc, bare).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shared_table_swaps_at_run_time() {
        let calls = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(ArcSwap::from_pointee(AuthzTable::default()));
        let svc = AuthzLayer::shared(Arc::clone(&shared)).layer(app(calls.clone()));
        let checkout = Some("spiffe://cluster.local/ns/production/sa/checkout-bff");

        // No policy: default allow (AUTHZ-2 step 3).
        let (resp, _) = send(svc.clone(), request("POST", "/v1/payments", checkout)).await;
        assert_eq!(resp.status(), StatusCode::OK);

        shared.store(Arc::new(table(POLICY)));
        let (resp, _) = send(svc.clone(), request("POST", "/v1/payments", checkout)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let (resp, _) = send(svc.clone(), request("POST", "/v1/payments", Some(ORDER))).await;
        assert_eq!(resp.status(), StatusCode::OK);

        shared.store(Arc::new(AuthzTable::default()));
        let (resp, _) = send(svc, request("POST", "/v1/payments", checkout)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn paths_are_normalized_for_matching_and_forwarding() {
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AuthzLayer::new(Arc::new(table(POLICY))).layer(app(calls.clone()));

        // `/v1/refunds/../payments` is `/v1/payments` for the policy and for the app.
        let uri = "/v1/refunds/../payments?x=1";
        let (resp, body) = send(svc.clone(), request("POST", uri, Some(ORDER))).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body, "/v1/payments?x=1");

        // `/v1/payments/../admin` is `/v1/admin`: not allowed.
        let uri = "/v1/payments/../admin";
        let (resp, _) = send(svc.clone(), request("POST", uri, Some(ORDER))).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);

        // `%00` → 400, empty body.
        let (resp, body) = send(svc.clone(), request("POST", "/v1/pay%00", Some(ORDER))).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(body.is_empty());
        assert_eq!(resp.headers()[CONTENT_LENGTH], "0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Normalization off: the raw path is matched and forwarded.
        let raw = AuthzLayer::new(Arc::new(table(POLICY)))
            .path_normalization(PathNormalization::None)
            .layer(app(calls.clone()));
        let uri = "/v1/refunds/../payments";
        let (resp, _) = send(raw, request("POST", uri, Some(ORDER))).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn host_header_and_connection_attributes_are_read() {
        let yaml = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: hosts, namespace: production}
spec:
  rules:
  - to: [{operation: {hosts: ["payments:8080"], ports: ["8080"]}}]
    when:
    - {key: destination.ip, values: ["10.0.0.9"]}
    - {key: source.ip, values: ["10.0.0.0/24"]}
"#;
        let calls = Arc::new(AtomicUsize::new(0));
        let svc = AuthzLayer::new(Arc::new(table(yaml))).layer(app(calls.clone()));
        let mut req = request("GET", "/", Some(ORDER));
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("payments:8080"));
        assert_eq!(send(svc.clone(), req).await.0.status(), StatusCode::OK);
        // HTTP/2 form: the authority is in the URI.
        let req = request("GET", "http://payments:8080/", Some(ORDER));
        assert_eq!(send(svc.clone(), req).await.0.status(), StatusCode::OK);
        let req = request("GET", "http://payments/", Some(ORDER));
        assert_eq!(send(svc, req).await.0.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn local_body_is_one_frame() {
        let body: AuthzBody<Full<Bytes>> = AuthzBody::full(Bytes::from_static(b"abc"));
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(3));
        let empty: AuthzBody<Full<Bytes>> = AuthzBody::full(Bytes::new());
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
