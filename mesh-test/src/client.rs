//! Clients for tests: pooled hyper clients for HTTP/1.1 and h2c, a one-shot request through an
//! HTTP proxy, and raw bytes over TCP.
//!
//! ```no_run
//! use http::{HeaderMap, Method};
//! use mesh_test::{TestBody, TestServer, send_via_proxy};
//!
//! # async fn example(proxy: std::net::SocketAddr) -> Result<(), mesh_test::BoxError> {
//! let upstream = TestServer::builder().name("v1").start().await;
//! // What an application with HTTP_PROXY=http://<proxy> sends for http://<upstream>/hi.
//! let uri = format!("http://{}/hi", upstream.addr());
//! let rsp = send_via_proxy(proxy, Method::POST, uri.as_str(), HeaderMap::new(), TestBody::from("ping"))
//!     .await?;
//! assert_eq!(rsp.body().as_ref(), b"ping");
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::BoxError;

/// How long [`raw_http1`] waits for more bytes before returning what it has.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled HTTP/1.1 client (keep-alive on). Use [`TestBody`](crate::TestBody) as `B` unless
/// a test needs its own body type.
pub fn http1_client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// A pooled HTTP/2 prior-knowledge (h2c) client: one connection per authority, requests
/// multiplexed on it.
pub fn h2c_client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends one HTTP/1.1 request through the HTTP proxy at `proxy`, the way an application with
/// `HTTP_PROXY` does: a new connection to the proxy, request line in absolute form
/// (`GET http://host:port/path HTTP/1.1`). Returns the response with its body collected.
///
/// `absolute_uri` must have a scheme and an authority. `Host` is set from its authority unless
/// `headers` has one. The connection is closed when the response body has been read.
///
/// Fails if the URI is not absolute, the proxy cannot be reached, or the proxy closes or
/// resets the connection before a complete response.
pub async fn send_via_proxy<U, B>(
    proxy: SocketAddr,
    method: Method,
    absolute_uri: U,
    headers: HeaderMap,
    body: B,
) -> Result<Response<Bytes>, BoxError>
where
    U: TryInto<Uri>,
    U::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let uri: Uri = absolute_uri.try_into().map_err(Into::into)?;
    let Some(authority) = uri.authority().cloned() else {
        return Err(format!("send_via_proxy needs an absolute URI, got {uri}").into());
    };
    if uri.scheme().is_none() {
        return Err(format!("send_via_proxy needs an absolute URI, got {uri}").into());
    }

    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    if !req.headers().contains_key(HOST) {
        req.headers_mut()
            .insert(HOST, HeaderValue::from_str(authority.as_str())?);
    }

    let stream = TcpStream::connect(proxy).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(async move {
        if let Err(error) = conn.await {
            debug!(%error, "proxy connection ended with an error");
        }
    });
    let result = async {
        let rsp = sender.send_request(req).await?;
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, BoxError>(Response::from_parts(parts, body))
    }
    .await;
    drop(sender);
    conn.abort();
    result
}

/// Writes `bytes` to a new TCP connection to `addr` and returns everything read back until the
/// peer closes, resets, or sends nothing for [`RAW_READ_TIMEOUT`] (lossy UTF-8).
///
/// For malformed-request tests. A server keeps a valid HTTP/1.1 exchange open, so send
/// `Connection: close` unless the test means to wait out the timeout.
pub async fn raw_http1(addr: SocketAddr, bytes: impl AsRef<[u8]>) -> io::Result<String> {
    raw_http1_with_timeout(addr, bytes, RAW_READ_TIMEOUT).await
}

/// [`raw_http1`] with the idle timeout given: returns once the peer closes or resets, or sends
/// nothing for `idle`.
pub async fn raw_http1_with_timeout(
    addr: SocketAddr,
    bytes: impl AsRef<[u8]>,
    idle: Duration,
) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    match stream.write_all(bytes.as_ref()).await {
        Ok(()) => {}
        // The server may answer and close before reading everything sent; read its answer.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(error) => return Err(error),
    }

    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Err(_elapsed) => break,
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            // A server that answers malformed input and closes with unread bytes pending
            // makes the kernel send RST; what arrived before it is the answer.
            Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionReset => break,
            Ok(Err(error)) => return Err(error),
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}
