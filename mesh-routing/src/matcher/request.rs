//! [`RequestView`]: the parts of a request that match blocks look at, borrowed.

use http::header::HOST;

/// Everything a match block looks at, borrowed from the request; built once per request,
/// without allocating, and shared by every block the request is tested against.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// The method token (VS-10).
    pub method: &'a http::Method,
    /// The URI's scheme, else `http` (VS-10).
    pub scheme: &'a str,
    /// `:authority`/`Host` as sent, port included (VS-10); `""` when there is none.
    pub authority: &'a str,
    /// The path without the query string; never empty (VS-4).
    pub path: &'a str,
    /// The query string without `?`, as sent (VS-9); `None` when the target has no `?`.
    pub query: Option<&'a str>,
    /// The destination port, decided by the caller (HOST-6, VS-11).
    pub port: u16,
    /// The request headers (VS-7, VS-8).
    pub headers: &'a http::HeaderMap,
}

impl<'a> RequestView<'a> {
    /// The view of `req`, whose destination port the caller decided (HOST-6).
    ///
    /// - `scheme`: the URI's scheme, else `"http"`;
    /// - `authority`: the URI's authority (absolute-form, or HTTP/2 `:authority`), else the
    ///   first `Host` header as sent (port included), else `""`. A `Host` value that is not
    ///   UTF-8 counts as absent;
    /// - `path` and `query`: split from the request target; an empty path (authority-form) is
    ///   `"/"`.
    pub fn new<B>(req: &'a http::Request<B>, port: u16) -> Self {
        let uri = req.uri();
        let authority = match uri.authority() {
            Some(a) => a.as_str(),
            None => req
                .headers()
                .get(HOST)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .unwrap_or(""),
        };
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        Self {
            method: req.method(),
            scheme: uri.scheme_str().unwrap_or("http"),
            authority,
            path,
            query: uri.query(),
            port,
            headers: req.headers(),
        }
    }

    /// The value of the **first** occurrence of query parameter `name` (VS-9): parameters are
    /// split on `&` (empty pieces skipped), a parameter without `=` has the value `""`, and
    /// names and values are compared as sent (no percent-decoding, `+` stays `+`). Names are
    /// case-sensitive. Does not allocate.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        first_query_value(self.query?, name)
    }
}

/// See [`RequestView::query_param`].
pub(super) fn first_query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .find_map(|piece| match piece.split_once('=') {
            Some((key, value)) => (key == name).then_some(value),
            None => (piece == name).then_some(""),
        })
}
