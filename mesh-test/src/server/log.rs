//! The request log: [`RequestView`] (what a handler sees) and [`SeenRequest`] (what the log
//! returns, with the body's byte count).

use std::sync::{Arc, Mutex, PoisonError};

use http::{HeaderMap, Method, Uri, Version, header};

use crate::body::BodyStats;

/// The head of one request as the server received it, given to a
/// [handler](crate::TestServerBuilder::handler).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RequestView {
    /// 1-based number of this request on its server (across all connections).
    pub index: u64,
    /// 1-based number of the accepted connection that carried it (see
    /// [`TestServer::connection_count`](crate::TestServer::connection_count)).
    pub connection: u64,
    /// The request method.
    pub method: Method,
    /// The request target as received: origin-form (`/path?q`) or, for HTTP/2 and
    /// absolute-form requests, with scheme and authority.
    pub uri: Uri,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    pub version: Version,
    /// The request headers (HTTP/2 pseudo-headers are not among them: see `uri`).
    pub headers: HeaderMap,
}

impl RequestView {
    /// The first value of header `name` if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Host` header, or else the URI's authority (HTTP/2 `:authority`).
    pub fn host(&self) -> Option<&str> {
        self.header(header::HOST.as_str())
            .or_else(|| self.uri.authority().map(|a| a.as_str()))
    }
}

/// One request from [`TestServer::requests`](crate::TestServer::requests): its head plus what
/// the server has read of its body so far.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SeenRequest {
    /// 1-based number of this request on its server (across all connections).
    pub index: u64,
    /// 1-based number of the accepted connection that carried it; two requests with the same
    /// value shared a connection.
    pub connection: u64,
    /// The request method.
    pub method: Method,
    /// The request target as received (see [`RequestView::uri`]).
    pub uri: Uri,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2.0`.
    pub version: Version,
    /// The request headers.
    pub headers: HeaderMap,
    /// Body bytes read so far. The server counts while streaming and keeps none. An echo
    /// reads the request body only as fast as the client reads the response, so this is final
    /// once the client has finished reading the response.
    pub body_bytes: u64,
    /// Whether the body was read to its end (false while streaming, or if it was cut short).
    pub body_complete: bool,
}

impl SeenRequest {
    /// The first value of header `name` if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Shared log of every request a server received.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<Vec<(RequestView, Arc<BodyStats>)>>,
}

impl RequestLog {
    pub(crate) fn push(&self, view: RequestView, stats: Arc<BodyStats>) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((view, stats));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn snapshot(&self) -> Vec<SeenRequest> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen: Vec<SeenRequest> = entries
            .iter()
            .map(|(view, stats)| SeenRequest {
                index: view.index,
                connection: view.connection,
                method: view.method.clone(),
                uri: view.uri.clone(),
                version: view.version,
                headers: view.headers.clone(),
                body_bytes: stats.bytes(),
                body_complete: stats.complete(),
            })
            .collect();
        drop(entries);
        // Concurrent requests may be logged slightly out of arrival order.
        seen.sort_by_key(|r| r.index);
        seen
    }
}
