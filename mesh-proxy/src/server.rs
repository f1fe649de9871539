//! Accept loops of the data listeners: HTTP/1.1 and HTTP/2 prior knowledge (h2c) on one port,
//! request header limits, and the graceful drain.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::forward;
use crate::headers::Direction;
use crate::proxy::Shared;

/// Request headers over this many bytes get 431 (DESIGN.md limits).
pub(crate) const MAX_REQUEST_HEADERS: usize = 60 * 1024;
/// How long a client may take to send request headers (HTTP/1.1).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Serves `listener` until the drain starts, then lets open connections finish (HTTP/1.1 gets
/// `connection: close`, HTTP/2 a GOAWAY) within the drain timeout.
pub(crate) async fn serve(shared: Arc<Shared>, direction: Direction, listener: TcpListener) {
    let builder = http_builder();
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
        metrics.connections.inc();
        metrics.active_connections.inc();
        let shared = Arc::clone(&shared);
        let peer_ip = peer.ip();
        let service = service_fn(move |req| {
            forward::handle(Arc::clone(&shared), direction, req, Some(peer_ip))
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let active = metrics.active_connections.clone();
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%peer, %error, "downstream connection error");
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
