//! Upstream connections: HTTP/1.1 keep-alive pools and shared HTTP/2 connections per endpoint.
//!
//! HTTP/1.1: a connection serves one request at a time; it goes back to its endpoint's idle
//! list when the response body has been read to the end ([`crate::body::UpstreamBody`]), and a
//! response body dropped early closes it. A pooled connection the upstream closed meanwhile is
//! detected when hyper hands the unsent request back, and the request goes out on a fresh
//! connection, so keep-alive races never fail a request.
//!
//! HTTP/2: one multiplexed connection per endpoint, re-opened when it closes.
//!
//! The idle lists sit behind a mutex held only to push or pop (never across an await).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::SendBody;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_resilience::breaker::ConnectionPermit;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::local_reply::{LocalReply, ResetReason};
use mesh_core::classify::{Failure, failure_of};

/// The HTTP version to speak to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamVersion {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
}

/// What a cluster's DestinationRule says about its connections (SEMANTICS DR-14), passed with
/// each request because one endpoint's pool may serve several clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `tcp.connectTimeout` (default 10 s).
    pub connect_timeout: Duration,
    /// `http.idleTimeout` / `tcp.idleTimeout`, the smaller of the two (default 1 h): an idle
    /// connection older than this is closed instead of reused.
    pub idle_timeout: Duration,
    /// `http.maxRequestsPerConnection` (0 = unlimited; 1 disables keep-alive).
    pub max_requests_per_connection: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(3600),
            max_requests_per_connection: 0,
        }
    }
}

impl ConnectOptions {
    /// The options of a cluster's `connectionPool` (unset fields keep Istio's defaults).
    pub fn from_config(pool: Option<&mesh_core::model::ConnectionPoolSettings>) -> Self {
        let mut o = Self::default();
        let Some(pool) = pool else { return o };
        let tcp_idle = pool.tcp.as_ref().and_then(|t| t.idle_timeout);
        let http_idle = pool.http.as_ref().and_then(|h| h.idle_timeout);
        if tcp_idle.is_some() || http_idle.is_some() {
            // Each set timeout applies; `0s` disables that one (DR-14).
            o.idle_timeout = [tcp_idle, http_idle]
                .into_iter()
                .flatten()
                .map(|t| t.as_std())
                .filter(|t| !t.is_zero())
                .min()
                .unwrap_or(Duration::MAX);
        }
        if let Some(t) = pool.tcp.as_ref().and_then(|t| t.connect_timeout) {
            o.connect_timeout = t.as_std();
        }
        if let Some(http) = &pool.http {
            o.max_requests_per_connection =
                u32::try_from(http.max_requests_per_connection).unwrap_or(0);
        }
        o
    }

    /// Whether a connection that served `uses` requests may serve no more.
    fn exhausted(&self, uses: u32) -> bool {
        self.max_requests_per_connection != 0 && uses >= self.max_requests_per_connection
    }
}

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Idle HTTP/1.1 connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_idle_per_endpoint: 256,
        }
    }
}

struct IdleH1 {
    sender: http1::SendRequest<SendBody>,
    since: Instant,
    uses: u32,
}

struct H2Conn {
    sender: http2::SendRequest<SendBody>,
    uses: u32,
}

#[derive(Default)]
struct Counters {
    connections_opened: AtomicU64,
    connect_failures: AtomicU64,
    connections_reused: AtomicU64,
    tls_failures: AtomicU64,
}

/// Connections are pooled per endpoint and per way of securing them: a plaintext connection
/// and mTLS connections expecting different identities are never shared.
type PoolKey = (SocketAddr, u64);

/// TLS origination towards an upstream (SEMANTICS DR-18, DR-19): the client configuration
/// (its verifier holds the expected server identities) and the server name to send.
#[derive(Clone)]
pub struct TlsOrigin {
    /// Unique per configuration: the pool key of connections made with it.
    id: u64,
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOrigin")
            .field("id", &self.id)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsOrigin {
    /// Origination with `config`, sending `server_name` as SNI.
    pub fn new(config: Arc<rustls::ClientConfig>, server_name: ServerName<'static>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            config,
            server_name,
        }
    }

    /// The SNI sent.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

/// An upstream connection: plaintext or TLS.
enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Inner {
    settings: PoolSettings,
    h1: Mutex<HashMap<PoolKey, Vec<IdleH1>>>,
    h2: Mutex<HashMap<PoolKey, H2Conn>>,
    counters: Counters,
}

/// Upstream connection pools shared by every request of a proxy.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// An HTTP/1.1 connection lent to one response; [`Pooled::release`] puts it back. It holds
/// the cluster's connection slot (`maxConnections`, DR-17) while the response is read.
pub struct Pooled {
    inner: Arc<Inner>,
    addr: PoolKey,
    sender: http1::SendRequest<SendBody>,
    uses: u32,
    reusable: bool,
    _slot: Option<ConnectionPermit>,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Pooled {
    /// Returns the connection to its endpoint's idle list (if it is still open).
    pub fn release(self) {
        if self.sender.is_closed() || !self.reusable {
            return;
        }
        let max = self.inner.settings.max_idle_per_endpoint;
        let mut h1 = self.inner.h1.lock().unwrap_or_else(|e| e.into_inner());
        let idle = h1.entry(self.addr).or_default();
        if idle.len() < max {
            idle.push(IdleH1 {
                sender: self.sender,
                since: Instant::now(),
                uses: self.uses,
            });
        }
    }
}

impl Pool {
    /// A pool with `settings`.
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                h1: Mutex::default(),
                h2: Mutex::default(),
                counters: Counters::default(),
            }),
        }
    }

    /// Connections opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.inner
            .counters
            .connections_opened
            .load(Ordering::Relaxed)
    }

    /// Connect attempts that failed.
    pub fn connect_failures(&self) -> u64 {
        self.inner.counters.connect_failures.load(Ordering::Relaxed)
    }

    /// Upstream TLS handshakes that failed (DR-20).
    pub fn tls_failures(&self) -> u64 {
        self.inner.counters.tls_failures.load(Ordering::Relaxed)
    }

    /// Requests sent on a reused connection.
    pub fn connections_reused(&self) -> u64 {
        self.inner
            .counters
            .connections_reused
            .load(Ordering::Relaxed)
    }

    /// Sends `req` (origin-form URI for HTTP/1.1, absolute for HTTP/2) to `addr` with the
    /// cluster's connection options, over TLS when `tls` says so; `slot` is the cluster's
    /// connection slot for HTTP/1.1 (held until the response is read).
    pub async fn send(
        &self,
        addr: SocketAddr,
        version: UpstreamVersion,
        req: Request<SendBody>,
        opts: &ConnectOptions,
        tls: Option<&TlsOrigin>,
        slot: Option<ConnectionPermit>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), LocalReply> {
        let key = (addr, tls.map_or(0, |t| t.id));
        match version {
            UpstreamVersion::Http1 => self.send_h1(key, req, opts, tls, slot).await,
            UpstreamVersion::Http2 => self.send_h2(key, req, opts, tls).await.map(|r| (r, None)),
        }
    }

    fn checkout_h1(
        &self,
        addr: PoolKey,
        opts: &ConnectOptions,
    ) -> Option<(http1::SendRequest<SendBody>, u32)> {
        let mut h1 = self.inner.h1.lock().unwrap_or_else(|e| e.into_inner());
        let idle = h1.get_mut(&addr)?;
        let timeout = opts.idle_timeout;
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed()
                && conn.since.elapsed() < timeout
                && !opts.exhausted(conn.uses)
            {
                return Some((conn.sender, conn.uses));
            }
        }
        None
    }

    async fn send_h1(
        &self,
        addr: PoolKey,
        mut req: Request<SendBody>,
        opts: &ConnectOptions,
        tls: Option<&TlsOrigin>,
        slot: Option<ConnectionPermit>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), LocalReply> {
        while let Some((mut sender, uses)) = self.checkout_h1(addr, opts) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.inner
                        .counters
                        .connections_reused
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok((resp, Some(self.pooled(addr, sender, uses + 1, opts, slot))));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection had gone stale. Try the next one.
                    Some(unsent) => req = unsent,
                    None => return Err(classify(e.error())),
                },
            }
        }
        let io = self.connect(addr.0, opts, tls).await?;
        let (mut sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| classify(&e))?;
        let peer = addr.0;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%peer, %error, "upstream http/1.1 connection ended");
            }
        });
        let resp = sender.send_request(req).await.map_err(|e| classify(&e))?;
        Ok((resp, Some(self.pooled(addr, sender, 1, opts, slot))))
    }

    fn pooled(
        &self,
        addr: PoolKey,
        sender: http1::SendRequest<SendBody>,
        uses: u32,
        opts: &ConnectOptions,
        slot: Option<ConnectionPermit>,
    ) -> Pooled {
        Pooled {
            inner: Arc::clone(&self.inner),
            addr,
            sender,
            uses,
            // maxRequestsPerConnection reached: the connection closes after this response.
            reusable: !opts.exhausted(uses),
            _slot: slot,
        }
    }

    async fn send_h2(
        &self,
        addr: PoolKey,
        req: Request<SendBody>,
        opts: &ConnectOptions,
        tls: Option<&TlsOrigin>,
    ) -> Result<Response<Incoming>, LocalReply> {
        let existing = {
            let mut h2 = self.inner.h2.lock().unwrap_or_else(|e| e.into_inner());
            match h2.get_mut(&addr) {
                Some(c) if !c.sender.is_closed() && !opts.exhausted(c.uses) => {
                    c.uses += 1;
                    Some(c.sender.clone())
                }
                _ => None,
            }
        };
        let mut sender = match existing {
            Some(s) => s,
            None => {
                // maxRequestsPerConnection: a used-up connection is left to finish its streams
                // and close; new streams go to a new one.
                let io = self.connect(addr.0, opts, tls).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .map_err(|e| classify(&e))?;
                let peer = addr.0;
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%peer, %error, "upstream http/2 connection ended");
                    }
                });
                self.inner
                    .h2
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        addr,
                        H2Conn {
                            sender: sender.clone(),
                            uses: 1,
                        },
                    );
                sender
            }
        };
        sender.ready().await.map_err(|e| classify(&e))?;
        sender.send_request(req).await.map_err(|e| classify(&e))
    }

    /// Makes sure a connection to `addr` is open (an idle HTTP/1.1 one, or the endpoint's
    /// HTTP/2 one), opening it if needed, without sending anything: a connect failure here
    /// happens before any request was handed over, so the caller may simply try again
    /// (`reset-before-request`, SEMANTICS RETRY-14) without buffering the request.
    pub async fn prepare(
        &self,
        peer: SocketAddr,
        version: UpstreamVersion,
        opts: &ConnectOptions,
    ) -> Result<(), LocalReply> {
        let addr: PoolKey = (peer, 0);
        match version {
            UpstreamVersion::Http1 => {
                let ready = {
                    let h1 = self.inner.h1.lock().unwrap_or_else(|e| e.into_inner());
                    h1.get(&addr)
                        .is_some_and(|idle| idle.iter().any(|c| !c.sender.is_closed()))
                };
                if ready {
                    return Ok(());
                }
                let io = self.connect(peer, opts, None).await?;
                let (sender, conn) = http1::Builder::new()
                    .handshake(io)
                    .await
                    .map_err(|e| classify(&e))?;
                tokio::spawn(async move {
                    if let Err(error) = conn.with_upgrades().await {
                        tracing::debug!(%peer, %error, "upstream http/1.1 connection ended");
                    }
                });
                let mut h1 = self.inner.h1.lock().unwrap_or_else(|e| e.into_inner());
                h1.entry(addr).or_default().push(IdleH1 {
                    sender,
                    since: Instant::now(),
                    uses: 0,
                });
                Ok(())
            }
            UpstreamVersion::Http2 => {
                let ready = {
                    let h2 = self.inner.h2.lock().unwrap_or_else(|e| e.into_inner());
                    h2.get(&addr).is_some_and(|c| !c.sender.is_closed())
                };
                if ready {
                    return Ok(());
                }
                let io = self.connect(peer, opts, None).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .map_err(|e| classify(&e))?;
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%peer, %error, "upstream http/2 connection ended");
                    }
                });
                self.inner
                    .h2
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(addr, H2Conn { sender, uses: 0 });
                Ok(())
            }
        }
    }

    /// Opens a connection to `addr`, with the TLS handshake when `tls` is given; both within
    /// `connectTimeout`. A failed handshake is a connect failure (DR-20: `remote connection
    /// failure`, flag `UF`); its reason goes to the debug log, never into the reply.
    async fn connect(
        &self,
        addr: SocketAddr,
        opts: &ConnectOptions,
        tls: Option<&TlsOrigin>,
    ) -> Result<TokioIo<UpstreamIo>, LocalReply> {
        let counters = &self.inner.counters;
        let deadline = Instant::now() + opts.connect_timeout;
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(error)) => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%addr, %error, "upstream connect failed");
                return Err(LocalReply::UpstreamReset(ResetReason::ConnectionFailure));
            }
            Err(_) => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                return Err(LocalReply::UpstreamReset(ResetReason::ConnectTimeout));
            }
        };
        let _ = stream.set_nodelay(true);
        let io = match tls {
            None => UpstreamIo::Plain(stream),
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                let handshake = connector.connect(tls.server_name.clone(), stream);
                match tokio::time::timeout_at(deadline, handshake).await {
                    Ok(Ok(s)) => UpstreamIo::Tls(Box::new(s)),
                    Ok(Err(error)) => {
                        counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                        counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                        // UPSTREAM_TRANSPORT_FAILURE_REASON: logs only (DR-20).
                        tracing::debug!(%addr, %error, "upstream TLS handshake failed");
                        return Err(LocalReply::UpstreamReset(ResetReason::ConnectionFailure));
                    }
                    Err(_) => {
                        counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                        return Err(LocalReply::UpstreamReset(ResetReason::ConnectTimeout));
                    }
                }
            }
        };
        counters.connections_opened.fetch_add(1, Ordering::Relaxed);
        Ok(TokioIo::new(io))
    }
}

/// Maps a hyper client error before response headers to Envoy's local reply, through the
/// shared classification (`mesh_core::classify::failure_of`).
fn classify(error: &hyper::Error) -> LocalReply {
    tracing::debug!(%error, "upstream request failed");
    if error.is_parse() || error.is_parse_status() {
        return LocalReply::UpstreamProtocolError;
    }
    let reason = match failure_of(error) {
        // Never processed by the upstream: `refused-stream` and `reset-before-request`.
        Failure::RefusedStream => ResetReason::RefusedStream,
        Failure::RemoteReset => ResetReason::RemoteReset,
        Failure::ProtocolError => return LocalReply::UpstreamProtocolError,
        Failure::ConnectFailure => ResetReason::ConnectionFailure,
        _ => ResetReason::ConnectionTermination,
    };
    LocalReply::UpstreamReset(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::model::ConnectionPoolSettings;

    fn opts(json: &str) -> ConnectOptions {
        let pool: ConnectionPoolSettings = serde_json::from_str(json).unwrap();
        ConnectOptions::from_config(Some(&pool))
    }

    #[test]
    fn connection_options_follow_dr14() {
        // SEMANTICS DR-14: defaults 10 s connect, 1 h idle, unlimited requests per connection.
        let d = ConnectOptions::from_config(None);
        assert_eq!(d.connect_timeout, Duration::from_secs(10));
        assert_eq!(d.idle_timeout, Duration::from_secs(3600));
        assert!(!d.exhausted(1_000_000));
        let o = opts(
            r#"{"tcp": {"connectTimeout": "250ms", "idleTimeout": "30s"},
                "http": {"idleTimeout": "10s", "maxRequestsPerConnection": 1}}"#,
        );
        assert_eq!(o.connect_timeout, Duration::from_millis(250));
        assert_eq!(o.idle_timeout, Duration::from_secs(10));
        assert!(o.exhausted(1), "1 disables keep-alive");
        // `0s` disables that timeout; the other still applies.
        let o = opts(r#"{"tcp": {"idleTimeout": "0s"}, "http": {"idleTimeout": "5s"}}"#);
        assert_eq!(o.idle_timeout, Duration::from_secs(5));
        let o = opts(r#"{"http": {"idleTimeout": "0s"}}"#);
        assert_eq!(o.idle_timeout, Duration::MAX);
    }
}
