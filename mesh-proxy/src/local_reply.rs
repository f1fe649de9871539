//! Replies the proxy makes itself, shaped like Envoy's (SEMANTICS ERR-1, ERR-2).
//!
//! Inner code reports a [`LocalReply`] (a fact: no route, no healthy upstream, connect failure,
//! …); this module alone turns it into a response: exact Envoy body text, `content-type:
//! text/plain`, `content-length`, and for gRPC requests a trailers-only gRPC response.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;

/// Why a connection to an upstream failed or ended before response headers (Envoy's reset
/// reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// Refused, unreachable, TLS handshake failure.
    ConnectionFailure,
    /// The connect timeout passed.
    ConnectTimeout,
    /// Closed or reset before response headers.
    ConnectionTermination,
    /// The upstream reset the stream (HTTP/2).
    RemoteReset,
    /// The upstream refused the stream before processing it (HTTP/2 `REFUSED_STREAM`).
    RefusedStream,
    /// The proxy reset the stream.
    LocalReset,
}

impl ResetReason {
    /// Envoy's text for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::ConnectionFailure => "remote connection failure",
            ResetReason::ConnectTimeout => "connection timeout",
            ResetReason::ConnectionTermination => "connection termination",
            ResetReason::RemoteReset => "remote reset",
            ResetReason::RefusedStream => "remote refused stream reset",
            ResetReason::LocalReset => "local reset",
        }
    }

    /// Envoy's response flag for the reason.
    pub fn flag(self) -> &'static str {
        match self {
            ResetReason::ConnectionFailure | ResetReason::ConnectTimeout => "UF",
            ResetReason::ConnectionTermination => "UC",
            ResetReason::RemoteReset | ResetReason::RefusedStream => "UR",
            ResetReason::LocalReset => "LR",
        }
    }
}

/// What ended an upstream exchange before response headers, for replies after retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamFailure {
    /// A connect failure or reset (flag by reason).
    Reset(ResetReason),
    /// A per-try or route timeout: 504 `upstream request timeout`, flag `UT`.
    Timeout,
    /// A malformed response: 502, flag `UPE`.
    ProtocolError,
}

impl UpstreamFailure {
    fn flag(self) -> &'static str {
        match self {
            UpstreamFailure::Reset(r) => r.flag(),
            UpstreamFailure::Timeout => "UT",
            UpstreamFailure::ProtocolError => "UPE",
        }
    }
}

/// Why retrying stopped while a retry was still wanted (SEMANTICS RETRY-7, RETRY-12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryStop {
    /// The route's `attempts` were used up: flag `URX` added.
    Exhausted,
    /// `maxRetries` or the retry budget refused the retry: flag `UO` added.
    Overflow,
}

impl RetryStop {
    /// The flag added to the reply or response.
    pub fn flag(self) -> &'static str {
        match self {
            RetryStop::Exhausted => "URX",
            RetryStop::Overflow => "UO",
        }
    }
}

/// A reply the proxy generates (SEMANTICS ERR-2 catalogue).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalReply {
    /// No route / unknown host: 404, empty body, flag `NR`.
    NoRoute,
    /// No endpoint to send to: 503 `no healthy upstream`, flag `UH`.
    NoHealthyUpstream,
    /// Connect failure or reset before headers: 503, flag by reason.
    UpstreamReset(ResetReason),
    /// The upstream's response could not be parsed: 502, flag `UPE`.
    UpstreamProtocolError,
    /// The request is malformed: 400 `Bad Request`, flag `DPE`.
    BadRequest,
    /// Request headers too large: 431, flag `DPE`.
    HeadersTooLarge,
    /// An answer of the router (404 `NR`, 503 `NC`/`UH`, fault abort, …), for the gRPC
    /// conversion of ERR-1.
    Routed(mesh_routing::decide::LocalAnswer),
    /// A circuit breaker refused the request (DR-15): 503 `… reset reason: overflow`, flag
    /// `UO`, header `x-envoy-overloaded: true`.
    Overflow,
    /// The route timeout or an unretried per-try timeout (VS-34, RETRY-8): 504 `upstream
    /// request timeout`, flag `UT`.
    Timeout,
    /// An upstream failure after retries or with retrying stopped: ERR-2's "retried" row when
    /// `retried`, flags `UF,URX` and the like when `stop` says why retrying ended.
    Upstream {
        /// The last attempt's failure.
        failure: UpstreamFailure,
        /// Whether at least one retry was made.
        retried: bool,
        /// Why no further retry was made, when one was wanted.
        stop: Option<RetryStop>,
    },
    /// An AuthorizationPolicy denied the request (AUTHZ-23): 403 `RBAC: access denied`, flag
    /// `-`.
    RbacDenied,
}

impl LocalReply {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            LocalReply::NoRoute => StatusCode::NOT_FOUND,
            LocalReply::NoHealthyUpstream | LocalReply::UpstreamReset(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            LocalReply::UpstreamProtocolError => StatusCode::BAD_GATEWAY,
            LocalReply::BadRequest => StatusCode::BAD_REQUEST,
            LocalReply::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            LocalReply::Routed(answer) => answer.status(),
            LocalReply::Overflow => StatusCode::SERVICE_UNAVAILABLE,
            LocalReply::Timeout => StatusCode::GATEWAY_TIMEOUT,
            LocalReply::RbacDenied => StatusCode::FORBIDDEN,
            LocalReply::Upstream { failure, .. } => match failure {
                UpstreamFailure::Reset(_) => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamFailure::ProtocolError => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The exact body text (no trailing newline).
    pub fn body(&self) -> String {
        match self {
            LocalReply::NoRoute => String::new(),
            LocalReply::NoHealthyUpstream => "no healthy upstream".into(),
            LocalReply::UpstreamReset(reason) => format!(
                "upstream connect error or disconnect/reset before headers. reset reason: {}",
                reason.as_str()
            ),
            LocalReply::UpstreamProtocolError => {
                "upstream connect error or disconnect/reset before headers. reset reason: protocol error".into()
            }
            LocalReply::BadRequest => "Bad Request".into(),
            LocalReply::HeadersTooLarge => "Request Header Fields Too Large".into(),
            LocalReply::Routed(answer) => {
                let body = answer.clone().into_response().into_body();
                String::from_utf8_lossy(&body).into_owned()
            }
            LocalReply::Overflow => {
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
                    .into()
            }
            LocalReply::Timeout => "upstream request timeout".into(),
            LocalReply::RbacDenied => mesh_identity::authz::DENY_BODY.into(),
            LocalReply::Upstream {
                failure, retried, ..
            } => {
                let reason = match failure {
                    UpstreamFailure::Reset(r) => r.as_str(),
                    UpstreamFailure::Timeout => return "upstream request timeout".into(),
                    UpstreamFailure::ProtocolError => "protocol error",
                };
                let lead = if *retried {
                    "retried and the latest reset reason"
                } else {
                    "reset reason"
                };
                format!("upstream connect error or disconnect/reset before headers. {lead}: {reason}")
            }
        }
    }

    /// Envoy's response flag (for access logs and metrics).
    pub fn flag(&self) -> &'static str {
        match self {
            LocalReply::NoRoute => "NR",
            LocalReply::NoHealthyUpstream => "UH",
            LocalReply::UpstreamReset(reason) => reason.flag(),
            LocalReply::UpstreamProtocolError => "UPE",
            LocalReply::BadRequest | LocalReply::HeadersTooLarge => "DPE",
            LocalReply::Routed(answer) => answer.flag(),
            LocalReply::Overflow => "UO",
            LocalReply::Timeout => "UT",
            LocalReply::RbacDenied => "-",
            LocalReply::Upstream { failure, stop, .. } => combined_flag(failure.flag(), *stop),
        }
    }

    /// The response, converted to a gRPC trailers-only reply when `grpc` (ERR-1).
    pub fn into_response(self, grpc: bool) -> Response<ProxyBody> {
        let status = self.status();
        let body = self.body();
        let mut resp = if grpc {
            let mut r = Response::new(ProxyBody::empty());
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert("grpc-status", HeaderValue::from(grpc_status(status)));
            if let Ok(v) = HeaderValue::from_str(&body) {
                h.insert("grpc-message", v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            r
        } else {
            let len = body.len();
            let mut r = Response::new(ProxyBody::local(body));
            *r.status_mut() = status;
            if len > 0 {
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
            r
        };
        if matches!(self, LocalReply::Overflow) {
            // DR-15, HDR-3: a client proxy seeing this never retries (RETRY-7).
            resp.headers_mut()
                .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
        }
        resp.extensions_mut().insert(ResponseFlag(self.flag()));
        resp
    }
}

/// `UF,URX` and the like, as static strings (metric labels and logs take `&'static str`).
fn combined_flag(flag: &'static str, stop: Option<RetryStop>) -> &'static str {
    match (flag, stop) {
        (f, None) => f,
        ("UF", Some(RetryStop::Exhausted)) => "UF,URX",
        ("UC", Some(RetryStop::Exhausted)) => "UC,URX",
        ("UR", Some(RetryStop::Exhausted)) => "UR,URX",
        ("LR", Some(RetryStop::Exhausted)) => "LR,URX",
        ("UT", Some(RetryStop::Exhausted)) => "UT,URX",
        ("UPE", Some(RetryStop::Exhausted)) => "UPE,URX",
        ("UF", Some(RetryStop::Overflow)) => "UF,UO",
        ("UC", Some(RetryStop::Overflow)) => "UC,UO",
        ("UR", Some(RetryStop::Overflow)) => "UR,UO",
        ("LR", Some(RetryStop::Overflow)) => "LR,UO",
        ("UT", Some(RetryStop::Overflow)) => "UT,UO",
        ("UPE", Some(RetryStop::Overflow)) => "UPE,UO",
        (f, Some(_)) => f,
    }
}

/// Flags for an upstream response the proxy passed on after retrying stopped (`URX`, `UO`),
/// carried as a response extension for access logs; not a local reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamFlag(pub &'static str);

/// The response flag of a local reply, carried as a response extension for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFlag(pub &'static str);

/// Envoy's HTTP → gRPC status mapping for local replies (SEMANTICS ERR-1).
pub fn grpc_status(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// Whether a request is gRPC (`content-type: application/grpc*`); the shared definition.
pub use mesh_core::classify::is_grpc;

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(r: Response<ProxyBody>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn catalogue_bodies_are_exact() {
        // SEMANTICS ERR-2
        let r = LocalReply::NoHealthyUpstream.into_response(false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(r.headers()[CONTENT_LENGTH], "19");
        assert_eq!(text(r).await, "no healthy upstream");
        let r = LocalReply::UpstreamReset(ResetReason::ConnectionFailure).into_response(false);
        assert_eq!(
            text(r).await,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        );
        let r = LocalReply::NoRoute.into_response(false);
        assert_eq!(r.status(), 404);
        assert!(r.headers().get(CONTENT_TYPE).is_none());
        assert_eq!(r.headers()[CONTENT_LENGTH], "0");
        assert_eq!(
            r.extensions().get::<ResponseFlag>(),
            Some(&ResponseFlag("NR"))
        );
    }

    #[tokio::test]
    async fn grpc_requests_get_trailers_only_replies() {
        // SEMANTICS ERR-1
        let r = LocalReply::NoHealthyUpstream.into_response(true);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no healthy upstream");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(grpc_status(StatusCode::NOT_FOUND), 12);
        assert_eq!(grpc_status(StatusCode::from_u16(418).unwrap()), 2);
        assert_eq!(grpc_status(StatusCode::FORBIDDEN), 7);
        assert_eq!(grpc_status(StatusCode::BAD_REQUEST), 13);
    }

    #[tokio::test]
    async fn resilience_replies() {
        // SEMANTICS ERR-2, DR-15: overflow carries x-envoy-overloaded.
        let r = LocalReply::Overflow.into_response(false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["x-envoy-overloaded"], "true");
        assert_eq!(
            text(r).await,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        );
        let r = LocalReply::Timeout.into_response(false);
        assert_eq!(r.status(), 504);
        assert_eq!(text(r).await, "upstream request timeout");
        let retried = LocalReply::Upstream {
            failure: UpstreamFailure::Reset(ResetReason::ConnectionFailure),
            retried: true,
            stop: Some(RetryStop::Exhausted),
        };
        assert_eq!(retried.flag(), "UF,URX");
        assert_eq!(
            text(retried.into_response(false)).await,
            "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure"
        );
        let timed_out = LocalReply::Upstream {
            failure: UpstreamFailure::Timeout,
            retried: true,
            stop: Some(RetryStop::Exhausted),
        };
        assert_eq!(timed_out.status(), 504);
        assert_eq!(timed_out.flag(), "UT,URX");
    }
}
