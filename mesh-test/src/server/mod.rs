//! [`TestServer`]: a real HTTP upstream on `127.0.0.1:0`.
//!
//! Integration tests need an upstream that behaves like a real one (real sockets, HTTP/1.1 and
//! HTTP/2, keep-alive, streaming) and reports what reached it. `TestServer` serves HTTP/1.1 and
//! HTTP/2 prior knowledge (h2c) on one port, logs every request, counts connections, and has
//! knobs for the failures a proxy must survive. Like linkerd's integration `server.rs`,
//! [`TestServerBuilder::start`] returns only once the listener is bound, so a test never
//! sleeps waiting for it.
//!
//! Every response carries:
//!
//! | header | value |
//! |---|---|
//! | `x-served-by` | the server's [name](TestServerBuilder::name) |
//! | `x-seen-method` | the request method |
//! | `x-seen-uri` | path and query as received |
//! | `x-seen-version` | `HTTP/1.1` or `HTTP/2.0` |
//! | `x-seen-host` | the `Host` header, else the `:authority` (absent if neither) |
//!
//! ```no_run
//! use std::time::Duration;
//! use mesh_test::{Reply, TestServer};
//!
//! # async fn example() {
//! // Echo (the default): 200, request body streamed back.
//! let echo = TestServer::builder().name("v1").start().await;
//! // A fixed reply after a delay.
//! let slow = TestServer::builder()
//!     .status(201)
//!     .header("x-version", "2")
//!     .body("created")
//!     .delay(Duration::from_millis(200))
//!     .start()
//!     .await;
//! // A reply chosen per request.
//! let routed = TestServer::builder()
//!     .handler(|req| match req.uri.path() {
//!         "/missing" => Reply::new(404),
//!         _ => Reply::echo(),
//!     })
//!     .start()
//!     .await;
//! # }
//! ```

mod log;
mod reply;

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::BoxError;
use crate::body::{BodyStats, Counted, drain_and_count};
use log::RequestLog;
use reply::SlowBody;

pub use log::{RequestView, SeenRequest};
pub use reply::Reply;

type Handler = Arc<dyn Fn(&RequestView) -> Reply + Send + Sync + 'static>;
type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

// === impl TestServerBuilder ===

/// Configures a [`TestServer`]; made by [`TestServer::builder`], finished by
/// [`start`](TestServerBuilder::start).
#[must_use]
pub struct TestServerBuilder {
    name: String,
    reply: Reply,
    handler: Option<Handler>,
    fail_every: u64,
    close_without_response: bool,
    protocol: Protocol,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Auto,
    Http1,
    Http2,
}

impl TestServerBuilder {
    fn new() -> Self {
        Self {
            name: "test-server".to_owned(),
            reply: Reply::echo(),
            handler: None,
            fail_every: 0,
            close_without_response: false,
            protocol: Protocol::Auto,
        }
    }

    /// The name sent in `x-served-by` (default `test-server`), to tell upstreams apart.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Answers with this status (default 200).
    pub fn status(mut self, status: u16) -> Self {
        self.reply = self.reply.status(status);
        self
    }

    /// Waits this long before sending response headers.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.reply = self.reply.delay(delay);
        self
    }

    /// Adds a header to every response (see [`Reply::header`]).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.reply = self.reply.header(name, value);
        self
    }

    /// Answers with this fixed body instead of the echo (see [`Reply::body`]).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.reply = self.reply.body(body);
        self
    }

    /// Trickles the response body: `chunks` frames, one per `interval` (see
    /// [`Reply::slow_body`]).
    pub fn slow_body(mut self, chunks: usize, interval: Duration) -> Self {
        self.reply = self.reply.slow_body(chunks, interval);
        self
    }

    /// Chooses the reply per request. The handler replaces what `status`, `delay`, `header`,
    /// `body` and `slow_body` set; the `x-served-by` and `x-seen-*` headers are still added.
    pub fn handler<F>(mut self, handler: F) -> Self
    where
        F: Fn(&RequestView) -> Reply + Send + Sync + 'static,
    {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Every `n`th request (the `n`th, `2n`th, …) is answered 503 with body `fail_every`,
    /// before any handler runs. It is still logged. `0` (the default) never fails.
    pub fn fail_every(mut self, n: u64) -> Self {
        self.fail_every = n;
        self
    }

    /// Accepts each connection, waits for the client to send something, then closes it
    /// without answering. Connections are counted; no request is parsed or logged.
    pub fn close_without_response(mut self) -> Self {
        self.close_without_response = true;
        self
    }

    /// Serves HTTP/1.x only (an HTTP/2 preface is a protocol error).
    pub fn http1_only(mut self) -> Self {
        self.protocol = Protocol::Http1;
        self
    }

    /// Serves HTTP/2 prior knowledge only (HTTP/1 requests are a protocol error).
    pub fn http2_only(mut self) -> Self {
        self.protocol = Protocol::Http2;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving; returns once the listener is bound, so
    /// connections made after this returns are accepted.
    ///
    /// Fails if a builder method got invalid input (`InvalidInput`) or binding fails.
    pub async fn try_start(self) -> io::Result<TestServer> {
        if let Some(error) = &self.reply.error {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, error.clone()));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut http = auto::Builder::new(TokioExecutor::new());
        http = match self.protocol {
            Protocol::Auto => http,
            Protocol::Http1 => http.http1_only(),
            Protocol::Http2 => http.http2_only(),
        };
        let shared = Arc::new(Shared {
            name: self.name,
            reply: self.reply,
            handler: self.handler,
            fail_every: self.fail_every,
            close_without_response: self.close_without_response,
            log: RequestLog::default(),
            next_request: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        debug!(%addr, name = %shared.name, "test server listening");
        let task = tokio::spawn(accept_loop(listener, Arc::new(http), shared.clone()));
        Ok(TestServer { addr, shared, task })
    }

    /// Like [`try_start`](Self::try_start), for tests.
    ///
    /// # Panics
    ///
    /// If a builder method got invalid input or `127.0.0.1:0` cannot be bound: the test cannot
    /// proceed either way.
    pub async fn start(self) -> TestServer {
        match self.try_start().await {
            Ok(server) => server,
            Err(error) => panic!("test server failed to start: {error}"),
        }
    }
}

impl fmt::Debug for TestServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServerBuilder")
            .field("name", &self.name)
            .field("reply", &self.reply)
            .field("handler", &self.handler.as_ref().map(|_| "<fn>"))
            .field("fail_every", &self.fail_every)
            .field("close_without_response", &self.close_without_response)
            .field("protocol", &self.protocol)
            .finish()
    }
}

// === impl TestServer ===

/// A running HTTP upstream on `127.0.0.1`. Dropping it stops it: the accept loop and every
/// connection task are aborted, so in-flight requests are cut.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts configuring a server; see [`TestServerBuilder`].
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::new()
    }

    /// The bound address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name sent in `x-served-by`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// `http://127.0.0.1:<port>` followed by `path_and_query`.
    ///
    /// # Panics
    ///
    /// If `path_and_query` does not start with `/` or is not a valid URI path and query.
    pub fn uri(&self, path_and_query: &str) -> Uri {
        match format!("http://{}{path_and_query}", self.addr).parse::<Uri>() {
            Ok(uri) if path_and_query.starts_with('/') => uri,
            _ => panic!("invalid path and query for a test URI: {path_and_query:?}"),
        }
    }

    /// Every request received so far, in arrival order, with body counts as of now.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.log.snapshot()
    }

    /// Number of requests received so far (including those answered 503 by `fail_every`).
    pub fn request_count(&self) -> usize {
        self.shared.log.len()
    }

    /// Number of TCP connections accepted so far: with keep-alive (HTTP/1) or multiplexing
    /// (HTTP/2), many requests share one.
    pub fn connection_count(&self) -> u64 {
        self.shared.connections.load(Ordering::Acquire)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connection tasks: aborting it drops the set,
        // which aborts them all.
        self.task.abort();
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

// === serving ===

/// State shared by the server handle, the accept loop and every request.
struct Shared {
    name: String,
    reply: Reply,
    handler: Option<Handler>,
    fail_every: u64,
    close_without_response: bool,
    log: RequestLog,
    next_request: AtomicU64,
    connections: AtomicU64,
}

async fn accept_loop(
    listener: TcpListener,
    http: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let id = shared.connections.fetch_add(1, Ordering::AcqRel) + 1;
                    debug!(%peer, connection = id, "accepted");
                    if shared.close_without_response {
                        connections.spawn(close_after_first_read(stream));
                    } else {
                        connections.spawn(serve(stream, id, http.clone(), shared.clone()));
                    }
                }
                Err(error) => {
                    // Transient (a connection aborted before accept, out of descriptors):
                    // keep serving, without spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn close_after_first_read(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf).await;
    drop(stream);
}

async fn serve(
    stream: TcpStream,
    id: u64,
    http: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| respond(shared.clone(), id, req));
    if let Err(error) = http.serve_connection(TokioIo::new(stream), service).await {
        debug!(connection = id, %error, "connection ended with an error");
    }
}

async fn respond(
    shared: Arc<Shared>,
    connection: u64,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let index = shared.next_request.fetch_add(1, Ordering::AcqRel) + 1;
    let (parts, body) = req.into_parts();
    let view = RequestView {
        index,
        connection,
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
    };
    let stats = Arc::new(BodyStats::default());
    let body = Counted::new(body, stats.clone());
    let echo_headers = echo_headers(&shared.name, &view);

    let reply = if shared.fail_every != 0 && index.is_multiple_of(shared.fail_every) {
        Reply::new(503).body("fail_every")
    } else if let Some(handler) = &shared.handler {
        handler(&view)
    } else {
        shared.reply.clone()
    };
    shared.log.push(view, stats);

    let reply = match &reply.error {
        None => reply,
        Some(error) => {
            warn!(%error, "handler returned an invalid reply");
            Reply::new(500).body(error.clone())
        }
    };

    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let response_body = match (reply.slow, reply.body) {
        (None, None) => UnsyncBoxBody::new(body.map_err(BoxError::from)),
        (slow, fixed) => {
            if let Err(error) = drain_and_count(body).await {
                debug!(%error, "request body failed");
            }
            match slow {
                Some((chunks, interval)) => {
                    let chunk = fixed.unwrap_or_else(|| Bytes::from_static(b"."));
                    UnsyncBoxBody::new(
                        SlowBody::new(chunk, chunks, interval).map_err(BoxError::from),
                    )
                }
                None => {
                    UnsyncBoxBody::new(Full::new(fixed.unwrap_or_default()).map_err(BoxError::from))
                }
            }
        }
    };

    let mut response = Response::new(response_body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    *headers = echo_headers;
    for name in reply.headers.keys() {
        headers.remove(name);
    }
    for (name, value) in &reply.headers {
        headers.append(name, value.clone());
    }
    Ok(response)
}

/// `x-served-by` and the `x-seen-*` headers describing `view`.
fn echo_headers(name: &str, view: &RequestView) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |key: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(key, value);
        }
    };
    set("x-served-by", name);
    set("x-seen-method", view.method.as_str());
    set(
        "x-seen-uri",
        view.uri.path_and_query().map_or("/", |pq| pq.as_str()),
    );
    set("x-seen-version", &format!("{:?}", view.version));
    if let Some(host) = view.host() {
        set("x-seen-host", host);
    }
    headers
}
