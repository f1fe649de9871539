//! Accept loops of the data listeners: HTTP/1.1 and HTTP/2 prior knowledge (h2c) on one port,
//! request header limits, and the graceful drain; on the inbound listener also the
//! PeerAuthentication mode of each connection (SEMANTICS PA-4): mTLS termination, TLS
//! detection on the first byte (PERMISSIVE), refusal of plaintext (STRICT), and opaque TCP for
//! connections that do not speak HTTP (authorized as TCP, AUTHZ-23).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use mesh_core::extensions::{Downstream, PeerIdentity};
use mesh_identity::authz::AuthzRequest;
use mesh_identity::peer_auth::PeerAuthMode;
use mesh_telemetry::metrics::{
    Labels, Reporter, SecurityPolicy, TcpConnection, TcpLabels, Workload,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::forward;
use crate::headers::Direction;
use crate::proxy::Shared;

/// Request headers over this many bytes get 431 (DESIGN.md limits).
pub(crate) const MAX_REQUEST_HEADERS: usize = 60 * 1024;
/// How long a client may take to send request headers (HTTP/1.1).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an inbound client may take to send its first bytes (TLS or protocol detection) and
/// to finish the TLS handshake. A client that sends nothing is taken for a server-first TCP
/// protocol (PERMISSIVE, DISABLE) or refused (STRICT).
const DETECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest prefix looked at to tell HTTP from other TCP traffic.
const SNIFF_LIMIT: usize = 24;

/// The HTTP server settings of a data listener.
pub(crate) fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEADERS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_REQUEST_HEADERS as u32);
    builder
}

/// What the requests of one downstream connection share.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Addresses and the peer's identity (inserted into each request's extensions).
    pub(crate) downstream: Downstream,
    /// This hop's `x-forwarded-client-cert` element on an mTLS connection (HDR-5).
    pub(crate) xfcc: Option<String>,
    /// The caller's metric labels (inbound; MET-4), worked out once per connection.
    pub(crate) caller: Labels<Workload>,
}

impl Connection {
    /// A connection from `downstream`, its caller labelled from its identity (inbound) or
    /// unknown (outbound: the caller is the local app, labelled as this workload).
    fn new(shared: &Shared, downstream: Downstream, xfcc: Option<String>) -> Self {
        let local = &shared.telemetry.labels;
        let caller = match &downstream.peer {
            Some(peer) => {
                let state = shared.state.load();
                state.peers.caller(&state.snapshot, local, Some(peer))
            }
            None => local.unknown().clone(),
        };
        Self {
            downstream,
            xfcc,
            caller,
        }
    }
}

/// Serves `listener` until the drain starts, then lets open connections finish (HTTP/1.1 gets
/// `connection: close`, HTTP/2 a GOAWAY) within the drain timeout.
pub(crate) async fn serve(shared: Arc<Shared>, direction: Direction, listener: TcpListener) {
    let builder = Arc::new(http_builder());
    let graceful = GracefulShutdown::new();
    let mut draining = shared.draining.subscribe();
    let metrics = shared.metrics.listener(direction).clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, listener = direction.as_str(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = async { let _ = draining.wait_for(|d| *d).await; } => break,
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        metrics.connections.inc();
        metrics.active_connections.inc();
        let active = metrics.active_connections.clone();
        let shared = Arc::clone(&shared);
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match direction {
                Direction::Outbound => {
                    let conn =
                        Arc::new(Connection::new(&shared, Downstream::new(peer, local), None));
                    serve_http(shared, direction, &builder, watcher, stream, conn).await;
                }
                Direction::Inbound => {
                    inbound(
                        shared,
                        &builder,
                        watcher,
                        stream,
                        Downstream::new(peer, local),
                    )
                    .await;
                }
            }
            active.dec();
        });
    }
    drop(listener);
    tracing::info!(
        listener = direction.as_str(),
        open = graceful.count(),
        "draining"
    );
    let deadline = shared.settings.drain_timeout;
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = direction.as_str(),
            "drain timeout: closing remaining connections"
        );
    }
}

async fn serve_http<I>(
    shared: Arc<Shared>,
    direction: Direction,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: I,
    conn: Arc<Connection>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remote = conn.downstream.remote;
    let service = service_fn(move |req| {
        forward::handle(Arc::clone(&shared), direction, req, Arc::clone(&conn))
    });
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(peer = %remote, %error, "downstream connection error");
    }
}

/// One inbound connection under the PeerAuthentication mode of the app's port (PA-4).
async fn inbound(
    shared: Arc<Shared>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    stream: TcpStream,
    downstream: Downstream,
) {
    let security = &shared.metrics.security;
    let mode = shared
        .state
        .load()
        .peer_auth
        .mode(shared.settings.app.port());
    let mut first = [0u8; 1];
    let tls = match tokio::time::timeout(DETECT_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(0) | Err(_)) => return,
        Ok(Ok(_)) => first[0] == 0x16,
        // Nothing sent: a server-first protocol, not TLS.
        Err(_) => false,
    };
    match (mode, tls) {
        (PeerAuthMode::Strict, false) => {
            // Closed without a byte of HTTP: the client sees a reset or EOF (PA-4 pitfall).
            security.rejected("plaintext");
            tracing::debug!(peer = %downstream.remote, "STRICT: plaintext connection refused");
        }
        (PeerAuthMode::Strict | PeerAuthMode::Permissive, true) => {
            terminate(shared, builder, watcher, stream, downstream).await;
        }
        _ => {
            // DISABLE passes a TLS ClientHello on to the app as bytes (PA-4).
            security.inbound_connection(false);
            let conn = Connection::new(&shared, downstream, None);
            serve_detected(shared, builder, watcher, stream, conn).await;
        }
    }
}

/// mTLS termination (STRICT, and the TLS side of PERMISSIVE): the client must present an
/// SVID from the bundle; its SPIFFE ID becomes the connection's peer (PA-5).
async fn terminate(
    shared: Arc<Shared>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    stream: TcpStream,
    downstream: Downstream,
) {
    let security = &shared.metrics.security;
    let Some(identity) = shared.identity.clone() else {
        security.rejected("no_identity");
        tracing::warn!(peer = %downstream.remote, "TLS connection refused: no certificate to terminate mTLS (--cert --key --ca)");
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&identity.server));
    let tls = match tokio::time::timeout(DETECT_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(error)) => {
            security.rejected("handshake");
            tracing::debug!(peer = %downstream.remote, %error, "inbound TLS handshake failed");
            return;
        }
        Err(_) => {
            security.rejected("handshake");
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let leaf = session.peer_certificates().and_then(|c| c.first());
    let peer_id = mesh_identity::tls::peer_spiffe_id(session);
    let mut downstream = downstream;
    if let Some(sni) = session.server_name() {
        downstream = downstream.with_sni(sni);
    }
    let xfcc = match (&peer_id, leaf) {
        (Some(_), Some(leaf)) => mesh_identity::xfcc::element(&identity.own, leaf).ok(),
        _ => None,
    };
    if let Some(id) = peer_id {
        downstream = downstream.with_peer(PeerIdentity::new(id.to_string()));
    }
    security.inbound_connection(downstream.is_mtls());
    let conn = Connection::new(&shared, downstream, xfcc);
    serve_detected(shared, builder, watcher, tls, conn).await;
}

/// HTTP goes to the HTTP server; anything else is opaque TCP to the app, authorized as TCP.
async fn serve_detected<I>(
    shared: Arc<Shared>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    mut io: I,
    conn: Connection,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut prefix = Vec::with_capacity(SNIFF_LIMIT);
    let is_http = loop {
        if let Some(http) = looks_like_http(&prefix) {
            break http;
        }
        let mut buf = [0u8; SNIFF_LIMIT];
        let room = SNIFF_LIMIT - prefix.len();
        match tokio::time::timeout(DETECT_TIMEOUT, io.read(&mut buf[..room])).await {
            Ok(Ok(0)) if prefix.is_empty() => return,
            Ok(Ok(0)) | Err(_) => break false,
            Ok(Ok(n)) => prefix.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return,
        }
    };
    let io = Rewind::new(prefix, io);
    if is_http {
        serve_http(
            shared,
            Direction::Inbound,
            builder,
            watcher,
            io,
            Arc::new(conn),
        )
        .await;
    } else {
        tcp(shared, io, conn).await;
    }
}

/// `Some(true)` for an HTTP/1.x request line or the HTTP/2 preface, `Some(false)` for anything
/// else, `None` while more bytes are needed to tell.
fn looks_like_http(prefix: &[u8]) -> Option<bool> {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if prefix.is_empty() {
        return None;
    }
    if H2_PREFACE.starts_with(&prefix[..prefix.len().min(H2_PREFACE.len())]) {
        return (prefix.len() >= H2_PREFACE.len()).then_some(true);
    }
    // A method token (letters, any case: hyper answers a malformed one with 400), then a space.
    for (i, &b) in prefix.iter().enumerate() {
        match b {
            b' ' if i > 0 => return Some(true),
            b if b.is_ascii_alphabetic() || b == b'-' || b == b'_' => {}
            _ => return Some(false),
        }
        if i >= 20 {
            return Some(false);
        }
    }
    None
}

/// An opaque TCP connection to the app, after the AuthorizationPolicy's TCP decision: a deny
/// closes it without a response (AUTHZ-23). Every connection that gets this far is counted
/// in `istio_tcp_connections_opened/closed`, denied ones too (Istio's stats filter sees the
/// connection before RBAC closes it).
async fn tcp<I>(shared: Arc<Shared>, io: I, conn: Connection)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let state = shared.state.load_full();
    let d = &conn.downstream;
    let local = &shared.telemetry.labels;
    let mut labels = TcpLabels {
        reporter: Reporter::Destination,
        source: conn.caller.clone(),
        destination: local.me(d.is_mtls()).clone(),
        service: state.peers.inbound_service().clone(),
        response_flags: "-".into(),
        security: if d.is_mtls() {
            SecurityPolicy::MutualTls
        } else {
            SecurityPolicy::None
        },
    };
    let port = shared.settings.app.port();
    let mut req = AuthzRequest::tcp(d.remote.ip(), port)
        .destination_ip(d.local.ip())
        .principal(d.peer.as_ref().map(PeerIdentity::principal));
    if let Some(sni) = d.sni.as_deref() {
        req = req.sni(Some(sni));
    }
    let decision = state.authz.decide(&req);
    let security = &shared.metrics.security;
    crate::forward::report_dry_run(security, &decision, "tcp");
    if !decision.allowed {
        security.authz("tcp", "deny");
        tracing::debug!(
            peer = %d.remote,
            details = decision.response_code_details().unwrap_or_default(),
            "TCP connection denied by authorization policy"
        );
        drop(shared.metrics.istio.tcp_open(&labels));
        return;
    }
    security.authz(
        "tcp",
        if decision.audit.is_some() {
            "audit"
        } else {
            "allow"
        },
    );
    let app = match TcpStream::connect(shared.settings.app).await {
        Ok(s) => s,
        Err(error) => {
            labels.response_flags = "UF".into();
            drop(shared.metrics.istio.tcp_open(&labels));
            tracing::debug!(%error, "inbound TCP: the app refused the connection");
            return;
        }
    };
    let _ = app.set_nodelay(true);
    let mut app = app;
    let mut io = Metered {
        inner: io,
        counters: shared.metrics.istio.tcp_open(&labels),
    };
    if let Err(error) = tokio::io::copy_bidirectional(&mut io, &mut app).await {
        tracing::debug!(peer = %d.remote, %error, "inbound TCP connection ended");
    }
}

/// A downstream stream whose bytes are counted into Istio's TCP metrics as they pass (so a
/// long connection shows its traffic before it closes).
struct Metered<I> {
    inner: I,
    counters: TcpConnection,
}

impl<I: AsyncRead + Unpin> AsyncRead for Metered<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.received(n as u64);
        }
        res
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Metered<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res {
            self.counters.sent(*n as u64);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream whose first bytes were already read: they are handed out again before the rest.
struct Rewind<I> {
    prefix: Vec<u8>,
    pos: usize,
    inner: I,
}

impl<I> Rewind<I> {
    fn new(prefix: Vec<u8>, inner: I) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.pos < me.prefix.len() {
            let rest = &me.prefix[me.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            me.pos += n;
            if me.pos == me.prefix.len() {
                me.prefix = Vec::new();
                me.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_http_from_other_tcp() {
        assert_eq!(looks_like_http(b""), None);
        assert_eq!(looks_like_http(b"GE"), None);
        assert_eq!(looks_like_http(b"GET / HTTP/1.1"), Some(true));
        assert_eq!(
            looks_like_http(b"get / HTTP/1.1"),
            Some(true),
            "hyper answers 400"
        );
        assert_eq!(
            looks_like_http(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(true)
        );
        assert_eq!(looks_like_http(b"PRI * HT"), None);
        assert_eq!(
            looks_like_http(b"\x16\x03\x01\x02\x00"),
            Some(false),
            "a TLS ClientHello"
        );
        assert_eq!(looks_like_http(b"\x00\x00\x00\x2a"), Some(false));
        assert_eq!(looks_like_http(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"), Some(false));
    }

    #[tokio::test]
    async fn rewind_replays_the_prefix_first() {
        let inner: &[u8] = b" world";
        let mut r = Rewind::new(b"hello".to_vec(), inner);
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
