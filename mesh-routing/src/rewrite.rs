//! URI and authority rewrites, redirects and direct responses (SEMANTICS VS-19..VS-23).
//!
//! - `rewrite.uri` replaces the **matched prefix only** when the route matched on a `uri.prefix`,
//!   and the whole path otherwise; the query string is kept (VS-19). `prefix: /foo` with
//!   `rewrite.uri: /` turns `/foo/bar` into `//bar` — that is what Istio does (a pitfall).
//! - `rewrite.uriRegexRewrite` replaces every match in the path (query excluded), `\1`…`\9`
//!   naming capture groups (VS-20).
//! - `redirect` builds `Location` from the request URL with the configured parts replaced
//!   (VS-22); the query is kept unless the new `uri` brings its own.
//!
//! ```
//! use mesh_core::model::HttpRewrite;
//! use mesh_routing::matcher::UriMatched;
//! use mesh_routing::rewrite::UriRewrite;
//! # use mesh_core::model::Location;
//! # use mesh_routing::matcher::CompileContext;
//! # let location = Location::new("vs.yaml", 1, 1);
//! # let ctx = CompileContext { location: &location, resource: "VirtualService default/r" };
//! let mut cfg = HttpRewrite::default();
//! cfg.uri = "/v1/bookRatings".into();
//! let rewrite = UriRewrite::from_config(&cfg, &ctx).unwrap().unwrap();
//! // SEMANTICS VS-19: only the matched prefix `/ratings` is replaced.
//! let out = rewrite.apply("/ratings/5?x=1", UriMatched::Prefix { len: 8 });
//! assert_eq!(out, "/v1/bookRatings/5?x=1");
//! ```

use bytes::Bytes;
use http::StatusCode;
use mesh_core::model::{
    HttpBody, HttpDirectResponse, HttpRedirect, HttpRewrite, RedirectPortSelection,
};
use regex::Regex;

use crate::Error;
use crate::matcher::{CompileContext, UriMatched};

/// A compiled path rewrite of `rewrite.uri` or `rewrite.uriRegexRewrite`.
#[derive(Clone, Debug)]
pub enum UriRewrite {
    /// `rewrite.uri`: the matched prefix, or the whole path, becomes this.
    Replace(String),
    /// `rewrite.uriRegexRewrite`: every match of the pattern in the path is replaced.
    Regex {
        /// The compiled pattern (unanchored search, VS-20).
        pattern: Regex,
        /// The replacement in the `regex` crate's syntax (`${1}`).
        replacement: String,
        /// The replacement as written (`\1`), for `explain`.
        written: String,
    },
}

impl UriRewrite {
    /// The path rewrite of `cfg`, if it has one.
    pub fn from_config(cfg: &HttpRewrite, ctx: &CompileContext<'_>) -> Result<Option<Self>, Error> {
        if let Some(rr) = &cfg.uri_regex_rewrite {
            #[allow(
                clippy::disallowed_methods,
                reason = "compiled once per snapshot, in the compile step"
            )]
            let pattern = Regex::new(&rr.r#match).map_err(|e| Error::InvalidRegex {
                location: ctx.location.clone(),
                resource: ctx.resource.to_owned(),
                pattern: rr.r#match.clone(),
                reason: e.to_string(),
            })?;
            return Ok(Some(UriRewrite::Regex {
                pattern,
                replacement: re2_replacement(&rr.rewrite),
                written: rr.rewrite.clone(),
            }));
        }
        if cfg.uri.is_empty() {
            return Ok(None);
        }
        Ok(Some(UriRewrite::Replace(cfg.uri.clone())))
    }

    /// The new path-and-query for `path_and_query`, given how the route's uri condition
    /// matched (VS-19, VS-20).
    pub fn apply(&self, path_and_query: &str, matched: UriMatched) -> String {
        let (path, query) = split_query(path_and_query);
        let mut out = match self {
            UriRewrite::Replace(new) => match matched {
                UriMatched::Prefix { len } if len <= path.len() && path.is_char_boundary(len) => {
                    let mut s = String::with_capacity(new.len() + path.len() - len);
                    s.push_str(new);
                    s.push_str(&path[len..]);
                    s
                }
                _ => new.clone(),
            },
            UriRewrite::Regex {
                pattern,
                replacement,
                ..
            } => pattern.replace_all(path, replacement.as_str()).into_owned(),
        };
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// A one-line description for `explain`.
    pub fn describe(&self) -> String {
        match self {
            UriRewrite::Replace(new) => format!("uri → {new}"),
            UriRewrite::Regex {
                pattern, written, ..
            } => format!("uri regex {} → {written}", pattern.as_str()),
        }
    }
}

/// Converts RE2 rewrite syntax (`\1`) to the `regex` crate's (`${1}`), escaping `$`.
fn re2_replacement(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len() + 8);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str("${");
                    out.push(*d);
                    out.push('}');
                    chars.next();
                }
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// Splits `path?query` into its parts.
pub(crate) fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    }
}

/// How the redirect's port is decided (VS-22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RedirectPort {
    /// Keep the request's port unless `authority` is replaced.
    Keep,
    /// This port.
    Fixed(u16),
    /// The scheme's default port, omitted from `Location`.
    ProtocolDefault,
    /// The port the request was sent to.
    FromRequest,
}

/// A compiled `redirect` (VS-22).
#[derive(Clone, Debug)]
pub struct Redirect {
    status: StatusCode,
    uri: Option<String>,
    prefix_rewrite: Option<String>,
    authority: Option<String>,
    scheme: Option<String>,
    port: RedirectPort,
}

/// The parts of the request a redirect reuses.
#[derive(Clone, Copy, Debug)]
pub struct RedirectInput<'a> {
    /// The request's scheme (`http` / `https`).
    pub scheme: &'a str,
    /// The request's authority as sent (may carry a port).
    pub authority: &'a str,
    /// The request's path and query.
    pub path_and_query: &'a str,
    /// The destination port of the request (HOST-6).
    pub port: u16,
    /// How the route's uri condition matched.
    pub matched: UriMatched,
}

impl Redirect {
    /// Compiles `cfg`; `redirectCode` 0 means 301.
    pub fn from_config(cfg: &HttpRedirect) -> Self {
        let status = match cfg.redirect_code {
            0 => StatusCode::MOVED_PERMANENTLY,
            code => u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::MOVED_PERMANENTLY),
        };
        let port = match (cfg.port, cfg.derive_port) {
            (Some(p), _) if p > 0 => RedirectPort::Fixed(u16::try_from(p).unwrap_or(u16::MAX)),
            (_, Some(RedirectPortSelection::FromProtocolDefault)) => RedirectPort::ProtocolDefault,
            (_, Some(RedirectPortSelection::FromRequestPort)) => RedirectPort::FromRequest,
            _ => RedirectPort::Keep,
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self {
            status,
            uri: non_empty(&cfg.uri),
            prefix_rewrite: non_empty(&cfg.prefix_rewrite),
            authority: non_empty(&cfg.authority),
            scheme: non_empty(&cfg.scheme),
            port,
        }
    }

    /// The redirect status (301 by default).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Location` value for a request (VS-22).
    pub fn location(&self, input: &RedirectInput<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(input.scheme);
        let (req_host, req_port) = split_host_port(input.authority);
        let host = match &self.authority {
            Some(a) => split_host_port(a).0,
            None => req_host,
        };
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        let port: Option<u16> = match self.port {
            RedirectPort::Fixed(p) => Some(p),
            RedirectPort::ProtocolDefault => None,
            RedirectPort::FromRequest => Some(input.port),
            RedirectPort::Keep if self.authority.is_some() => {
                self.authority.as_deref().and_then(|a| split_host_port(a).1)
            }
            RedirectPort::Keep => match req_port {
                // A scheme change drops the old scheme's default port.
                Some(p) if self.scheme.is_some() && (p == 80 || p == 443) => None,
                other => other,
            },
        };
        let port = port.filter(|&p| p != default_port);
        let (path, query) = split_query(input.path_and_query);
        let (new_path, new_query): (String, Option<&str>) = match (&self.uri, &self.prefix_rewrite)
        {
            (Some(uri), _) => match split_query(uri) {
                (p, Some(q)) => (p.to_owned(), Some(q)),
                (p, None) => (p.to_owned(), query),
            },
            (None, Some(prefix)) => match input.matched {
                UriMatched::Prefix { len } if len <= path.len() && path.is_char_boundary(len) => {
                    (format!("{prefix}{}", &path[len..]), query)
                }
                _ => (prefix.clone(), query),
            },
            (None, None) => (path.to_owned(), query),
        };
        let mut out = format!("{scheme}://{host}");
        if let Some(p) = port {
            out.push(':');
            out.push_str(&p.to_string());
        }
        out.push_str(&new_path);
        if let Some(q) = new_query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// A one-line description for `explain`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.status.as_u16().to_string()];
        if let Some(s) = &self.scheme {
            parts.push(format!("scheme {s}"));
        }
        if let Some(a) = &self.authority {
            parts.push(format!("authority {a}"));
        }
        if let Some(u) = &self.uri {
            parts.push(format!("uri {u}"));
        }
        if let Some(p) = &self.prefix_rewrite {
            parts.push(format!("prefix {p}"));
        }
        parts.join(", ")
    }
}

/// `host[:port]` → host and port (IPv6 literals in brackets kept whole).
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(end) = authority.rfind(']') {
        let host = &authority[..=end];
        let port = authority[end + 1..]
            .strip_prefix(':')
            .and_then(|p| p.parse().ok());
        return (host, port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

/// A compiled `directResponse` (VS-23).
#[derive(Clone, Debug)]
pub struct DirectResponse {
    /// The status to answer with.
    pub status: StatusCode,
    /// The body (empty when not configured).
    pub body: Bytes,
}

impl DirectResponse {
    /// Compiles `cfg`; an invalid status becomes 500 (validation reports it).
    pub fn from_config(cfg: &HttpDirectResponse) -> Self {
        let status = u16::try_from(cfg.status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match &cfg.body {
            Some(HttpBody::String(s)) => Bytes::from(s.clone()),
            Some(HttpBody::Bytes(b)) => Bytes::from(b.clone()),
            // A body form newer than this crate: answer without a body.
            Some(_) | None => Bytes::new(),
        };
        Self { status, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::model::{Location, RegexRewrite};

    fn ctx_loc() -> Location {
        Location::new("vs.yaml", 3, 1)
    }

    fn rewrite(uri: &str) -> UriRewrite {
        let mut cfg = HttpRewrite::default();
        cfg.uri = uri.into();
        let loc = ctx_loc();
        let ctx = CompileContext {
            location: &loc,
            resource: "VirtualService default/r",
        };
        UriRewrite::from_config(&cfg, &ctx).unwrap().unwrap()
    }

    #[test]
    fn prefix_rewrite_replaces_the_matched_prefix_only() {
        // SEMANTICS VS-19
        let r = rewrite("/v1/bookRatings");
        assert_eq!(
            r.apply("/ratings/5?x=1", UriMatched::Prefix { len: 8 }),
            "/v1/bookRatings/5?x=1"
        );
        // Exact / regex / no uri match: the whole path, query kept.
        assert_eq!(
            r.apply("/ratings/5?x=1", UriMatched::Exact),
            "/v1/bookRatings?x=1"
        );
        assert_eq!(r.apply("/anything", UriMatched::None), "/v1/bookRatings");
    }

    #[test]
    fn slash_rewrite_of_prefix_gives_double_slash() {
        // SEMANTICS VS-19 (pitfall): prefix /foo + rewrite / → //bar.
        let r = rewrite("/");
        assert_eq!(r.apply("/foo/bar", UriMatched::Prefix { len: 4 }), "//bar");
    }

    #[test]
    fn regex_rewrite_uses_capture_groups() {
        // SEMANTICS VS-20. Its example writes `/customprefix/\2/\1`; group 2 already starts
        // with `/`, so RE2 substitution gives `/customprefix//v1/api/update` for it — checked
        // below — and `/customprefix\2/\1` gives the single-slash form the rule shows.
        let mut cfg = HttpRewrite::default();
        let mut rr = RegexRewrite::default();
        rr.r#match = "^/service/([^/]+)(/.*)$".into();
        rr.rewrite = "/customprefix\\2/\\1".into();
        cfg.uri_regex_rewrite = Some(rr);
        let loc = ctx_loc();
        let ctx = CompileContext {
            location: &loc,
            resource: "VirtualService default/r",
        };
        let r = UriRewrite::from_config(&cfg, &ctx).unwrap().unwrap();
        assert_eq!(
            r.apply("/service/update/v1/api?q=$1", UriMatched::None),
            "/customprefix/v1/api/update?q=$1"
        );
        let mut literal = cfg.clone();
        if let Some(rr) = literal.uri_regex_rewrite.as_mut() {
            rr.rewrite = "/customprefix/\\2/\\1".into();
        }
        let r = UriRewrite::from_config(&literal, &ctx).unwrap().unwrap();
        assert_eq!(
            r.apply("/service/update/v1/api", UriMatched::None),
            "/customprefix//v1/api/update"
        );
        // Every non-overlapping occurrence is replaced.
        let mut cfg = HttpRewrite::default();
        let mut rr = RegexRewrite::default();
        rr.r#match = "a".into();
        rr.rewrite = "$b".into();
        cfg.uri_regex_rewrite = Some(rr);
        let r = UriRewrite::from_config(&cfg, &ctx).unwrap().unwrap();
        assert_eq!(r.apply("/aXa", UriMatched::None), "/$bX$b");
    }

    #[test]
    fn invalid_rewrite_regex_is_an_error() {
        let mut cfg = HttpRewrite::default();
        let mut rr = RegexRewrite::default();
        rr.r#match = "(".into();
        cfg.uri_regex_rewrite = Some(rr);
        let loc = ctx_loc();
        let ctx = CompileContext {
            location: &loc,
            resource: "VirtualService default/r",
        };
        assert!(matches!(
            UriRewrite::from_config(&cfg, &ctx),
            Err(Error::InvalidRegex { .. })
        ));
    }

    fn input<'a>(authority: &'a str, pq: &'a str, matched: UriMatched) -> RedirectInput<'a> {
        RedirectInput {
            scheme: "http",
            authority,
            path_and_query: pq,
            port: split_host_port(authority).1.unwrap_or(80),
            matched,
        }
    }

    #[test]
    fn redirect_prefix_authority_and_code() {
        // SEMANTICS VS-22: the documented example.
        let mut cfg = HttpRedirect::default();
        cfg.prefix_rewrite = "/new/".into();
        cfg.authority = "b.example.com".into();
        cfg.redirect_code = 308;
        let r = Redirect::from_config(&cfg);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.location(&input("a", "/old/x?q=1", UriMatched::Prefix { len: 5 })),
            "http://b.example.com/new/x?q=1"
        );
    }

    #[test]
    fn redirect_defaults_and_ports() {
        // SEMANTICS VS-22: default 301; uri replaces the path, query kept unless uri has one.
        let mut cfg = HttpRedirect::default();
        cfg.uri = "/moved".into();
        let r = Redirect::from_config(&cfg);
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            r.location(&input("a:8080", "/x?q=1", UriMatched::None)),
            "http://a:8080/moved?q=1"
        );
        cfg.uri = "/moved?z=2".into();
        let r = Redirect::from_config(&cfg);
        assert_eq!(
            r.location(&input("a:8080", "/x?q=1", UriMatched::None)),
            "http://a:8080/moved?z=2"
        );
        // authority set → the request port is dropped.
        let mut cfg = HttpRedirect::default();
        cfg.authority = "b".into();
        let r = Redirect::from_config(&cfg);
        assert_eq!(
            r.location(&input("a:8080", "/x", UriMatched::None)),
            "http://b/x"
        );
        // explicit port; derivePort FROM_PROTOCOL_DEFAULT; FROM_REQUEST_PORT; https scheme.
        let mut cfg = HttpRedirect::default();
        cfg.port = Some(9000);
        let r = Redirect::from_config(&cfg);
        assert_eq!(
            r.location(&input("a:8080", "/x", UriMatched::None)),
            "http://a:9000/x"
        );
        let mut cfg = HttpRedirect::default();
        cfg.scheme = "https".into();
        cfg.derive_port = Some(RedirectPortSelection::FromProtocolDefault);
        let r = Redirect::from_config(&cfg);
        assert_eq!(
            r.location(&input("a:8080", "/x", UriMatched::None)),
            "https://a/x"
        );
        let mut cfg = HttpRedirect::default();
        cfg.derive_port = Some(RedirectPortSelection::FromRequestPort);
        cfg.authority = "b".into();
        let r = Redirect::from_config(&cfg);
        assert_eq!(
            r.location(&input("a:8080", "/x", UriMatched::None)),
            "http://b:8080/x"
        );
        let mut cfg = HttpRedirect::default();
        cfg.scheme = "https".into();
        let r = Redirect::from_config(&cfg);
        assert_eq!(
            r.location(&input("a", "/x", UriMatched::None)),
            "https://a/x"
        );
    }

    #[test]
    fn direct_response_bodies() {
        // SEMANTICS VS-23
        let mut cfg = HttpDirectResponse::default();
        cfg.status = 418;
        cfg.body = Some(HttpBody::String("teapot".into()));
        let d = DirectResponse::from_config(&cfg);
        assert_eq!((d.status.as_u16(), &d.body[..]), (418, &b"teapot"[..]));
        cfg.body = Some(HttpBody::Bytes(vec![0, 1]));
        assert_eq!(&DirectResponse::from_config(&cfg).body[..], &[0, 1]);
        cfg.body = None;
        assert!(DirectResponse::from_config(&cfg).body.is_empty());
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a:80"), ("a", Some(80)));
        assert_eq!(split_host_port("a"), ("a", None));
        assert_eq!(split_host_port("[::1]:9"), ("[::1]", Some(9)));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
    }
}
