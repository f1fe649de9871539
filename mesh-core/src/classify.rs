//! What became of one upstream attempt, computed once and read by retries, outlier detection,
//! metrics and access logs (STYLE 2.5).
//!
//! An attempt ends in one of two ways: response headers arrived ([`Outcome::Response`]), or
//! they did not ([`Outcome::Failure`] with a [`Failure`] saying why). Istio's rules read the
//! outcome in different ways:
//!
//! - `retryOn` (SEMANTICS RETRY-5..RETRY-8) distinguishes connect failures, resets, refused
//!   streams, per-try timeouts and local overflow, and reads gRPC status from response headers
//!   (trailers-only responses);
//! - outlier detection (OD-2..OD-4) counts 5xx responses as external errors, connect failures,
//!   resets and timeouts as locally originated errors, and ignores local overflow (OD-3);
//! - metrics and access logs want the HTTP status and the gRPC status.
//!
//! gRPC awareness: a gRPC response whose status is in its headers is judged by that status,
//! mapped to HTTP the way Envoy's router reports it to outlier detection
//! ([`grpc_to_http`]: `UNAVAILABLE` counts as a 503).
//!
//! ```
//! use mesh_core::classify::{Class, Failure, Outcome};
//!
//! let resp = http::Response::builder().status(503).body(()).unwrap();
//! let outcome = Outcome::from_response(&resp);
//! assert_eq!(outcome.class(), Class::ServerError(503));
//! assert!(outcome.is_gateway_error());
//!
//! let grpc = http::Response::builder()
//!     .header("content-type", "application/grpc")
//!     .header("grpc-status", "14")
//!     .body(())
//!     .unwrap();
//! assert_eq!(Outcome::from_response(&grpc).class(), Class::ServerError(503));
//!
//! assert_eq!(Outcome::Failure(Failure::ConnectFailure).class(), Class::LocalOrigin(Failure::ConnectFailure));
//! assert_eq!(Outcome::Failure(Failure::Overflow).class(), Class::Overflow);
//! ```

use std::error::Error as StdError;
use std::fmt;

use http::{HeaderMap, Response, StatusCode};

/// Why an attempt got no response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The connection could not be established (refused, unreachable, TLS handshake failed):
    /// `retryOn: connect-failure`; flag `UF`.
    ConnectFailure,
    /// The connect timeout passed (`connectTimeout`, DR-14): `connect-failure`; flag `UF`.
    ConnectTimeout,
    /// The upstream closed or reset the connection before response headers: `reset`; flag
    /// `UC`.
    Reset,
    /// The upstream reset the stream before headers: `reset`; flag `UR`.
    RemoteReset,
    /// The upstream refused the HTTP/2 stream (`REFUSED_STREAM`, never processed):
    /// `refused-stream`, `reset`.
    RefusedStream,
    /// The per-try timeout fired (RETRY-8): `5xx`, `gateway-error`, `reset`; 504 `UT` when not
    /// retried.
    PerTryTimeout,
    /// The route timeout fired (VS-34): never retried; 504 `UT`.
    RouteTimeout,
    /// A local circuit breaker refused the attempt (DR-15): never retried, never counted by
    /// outlier detection (DR-16, OD-3); 503 `UO`.
    Overflow,
    /// The upstream's response could not be parsed: `5xx`, `gateway-error`, `reset`; 502
    /// `UPE`.
    ProtocolError,
}

impl Failure {
    /// Whether the failure happened before the connection was up (`connect-failure`).
    pub fn is_connect_failure(self) -> bool {
        matches!(self, Failure::ConnectFailure | Failure::ConnectTimeout)
    }

    /// Whether the failure is a timeout (per try or route).
    pub fn is_timeout(self) -> bool {
        matches!(self, Failure::PerTryTimeout | Failure::RouteTimeout)
    }

    /// Whether the request can be known not to have reached the upstream's application
    /// (`reset-before-request`): the connection never came up or the stream was refused.
    pub fn is_before_request(self) -> bool {
        self.is_connect_failure() || self == Failure::RefusedStream
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::ConnectFailure => "connect_failure",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Reset => "reset",
            Failure::RemoteReset => "remote_reset",
            Failure::RefusedStream => "refused_stream",
            Failure::PerTryTimeout => "per_try_timeout",
            Failure::RouteTimeout => "route_timeout",
            Failure::Overflow => "overflow",
            Failure::ProtocolError => "protocol_error",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Success or failure, as outlier detection and metrics see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    /// A response with a status below 500 (after gRPC mapping).
    Success,
    /// A 5xx response from the upstream (the status, after gRPC mapping): an external error.
    ServerError(u16),
    /// No response because of the network or a timeout: a locally originated error (OD-4).
    LocalOrigin(Failure),
    /// Refused locally by a circuit breaker: not the endpoint's fault (OD-3).
    Overflow,
}

/// What became of one upstream attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Response headers arrived.
    Response(ResponseSummary),
    /// They did not.
    Failure(Failure),
}

/// The parts of a response's headers that classification reads, taken once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseSummary {
    /// The HTTP status.
    pub status: u16,
    /// `grpc-status` in the response headers (a trailers-only gRPC response), if any.
    pub grpc_status: Option<u32>,
    /// The response carries `x-envoy-overloaded` (an upstream proxy's overflow, RETRY-7).
    pub overloaded: bool,
    /// The response carries `x-envoy-ratelimited` (RETRY-5, RETRY-7).
    pub ratelimited: bool,
}

impl ResponseSummary {
    /// Reads the summary from a status and headers.
    pub fn new(status: StatusCode, headers: &HeaderMap) -> Self {
        Self {
            status: status.as_u16(),
            grpc_status: grpc_status(headers),
            overloaded: headers.contains_key("x-envoy-overloaded"),
            ratelimited: headers.contains_key("x-envoy-ratelimited"),
        }
    }

    /// The status outlier detection and metrics judge by: the gRPC status mapped to HTTP when
    /// the headers carry one ([`grpc_to_http`]), else the HTTP status.
    pub fn effective_status(&self) -> u16 {
        match self.grpc_status {
            Some(code) if self.status == 200 => grpc_to_http(code),
            _ => self.status,
        }
    }
}

impl Outcome {
    /// The outcome of a response, from its status and headers.
    pub fn from_response<B>(resp: &Response<B>) -> Self {
        Outcome::Response(ResponseSummary::new(resp.status(), resp.headers()))
    }

    /// The outcome of an error returned instead of a response ([`failure_of`]).
    pub fn from_error(error: &(dyn StdError + 'static)) -> Self {
        Outcome::Failure(failure_of(error))
    }

    /// Success or failure for outlier detection and metrics.
    pub fn class(&self) -> Class {
        match self {
            Outcome::Response(r) => match r.effective_status() {
                s @ 500..=599 => Class::ServerError(s),
                _ => Class::Success,
            },
            Outcome::Failure(Failure::Overflow) => Class::Overflow,
            Outcome::Failure(f) => Class::LocalOrigin(*f),
        }
    }

    /// Whether the outcome is a failure of any kind (5xx, no response, overflow).
    pub fn is_failure(&self) -> bool {
        self.class() != Class::Success
    }

    /// Whether the outcome is a gateway error: a 502, 503 or 504 response or a locally
    /// originated failure (OD-2, RETRY-5 `gateway-error`). Overflow is not.
    pub fn is_gateway_error(&self) -> bool {
        match self.class() {
            Class::ServerError(s) => matches!(s, 502..=504),
            Class::LocalOrigin(_) => true,
            Class::Success | Class::Overflow => false,
        }
    }

    /// The response summary, if headers arrived.
    pub fn response(&self) -> Option<&ResponseSummary> {
        match self {
            Outcome::Response(r) => Some(r),
            Outcome::Failure(_) => None,
        }
    }

    /// The failure, if headers did not arrive.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            Outcome::Response(_) => None,
            Outcome::Failure(f) => Some(*f),
        }
    }
}

/// A failure as an error. The SDK's layers (timeouts, circuit breakers) report their failures
/// as this type, directly or as the source of their own error, so [`failure_of`] recognises
/// them anywhere in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("upstream attempt failed: {0}")]
pub struct FailureError(pub Failure);

/// Classifies an error returned by a client instead of a response, walking its source chain:
/// the SDK's own errors say what they are ([`FailureError`]); I/O
/// errors are judged by kind (refused, unreachable → connect failure; timed out → connect
/// timeout); an HTTP/2 `REFUSED_STREAM` is a refused stream; a parse error is a protocol error;
/// anything else is a reset (the connection ended before headers).
pub fn failure_of(error: &(dyn StdError + 'static)) -> Failure {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut connect = false;
    while let Some(e) = current {
        if let Some(f) = e.downcast_ref::<FailureError>() {
            return f.0;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::AddrNotAvailable => return Failure::ConnectFailure,
                K::TimedOut => {
                    return if connect {
                        Failure::ConnectTimeout
                    } else {
                        Failure::Reset
                    };
                }
                _ => {}
            }
        }
        let text = e.to_string();
        if text.contains("REFUSED_STREAM") || text.contains("refused stream") {
            return Failure::RefusedStream;
        }
        if text.contains("stream error received") || text.contains("RST_STREAM") {
            return Failure::RemoteReset;
        }
        if text.starts_with("error trying to connect") || text.contains("client error (Connect)") {
            connect = true;
        }
        if text.contains("invalid HTTP") || text.starts_with("error parsing") {
            return Failure::ProtocolError;
        }
        current = e.source();
    }
    if connect {
        Failure::ConnectFailure
    } else {
        Failure::Reset
    }
}

/// `grpc-status` from headers, if present and numeric.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Envoy's mapping of a gRPC status to the HTTP status its router reports (for outlier
/// detection and stats): OK 200, CANCELLED 499, UNKNOWN 500, INVALID_ARGUMENT 400,
/// DEADLINE_EXCEEDED 504, NOT_FOUND 404, ALREADY_EXISTS 409, PERMISSION_DENIED 403,
/// RESOURCE_EXHAUSTED 429, FAILED_PRECONDITION 400, ABORTED 409, OUT_OF_RANGE 400,
/// UNIMPLEMENTED 501, INTERNAL 500, UNAVAILABLE 503, DATA_LOSS 500, UNAUTHENTICATED 401.
pub fn grpc_to_http(code: u32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// Whether headers are those of a gRPC exchange (`content-type: application/grpc*`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> Outcome {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Outcome::from_response(&b.body(()).unwrap())
    }

    #[test]
    fn classes() {
        assert_eq!(resp(200, &[]).class(), Class::Success);
        assert_eq!(resp(404, &[]).class(), Class::Success);
        assert_eq!(resp(500, &[]).class(), Class::ServerError(500));
        assert!(!resp(500, &[]).is_gateway_error());
        for s in [502, 503, 504] {
            assert!(resp(s, &[]).is_gateway_error());
        }
        let f = Outcome::Failure(Failure::Reset);
        assert!(f.is_gateway_error() && f.is_failure());
        assert!(!Outcome::Failure(Failure::Overflow).is_gateway_error());
    }

    #[test]
    fn grpc_status_in_headers_is_mapped() {
        let o = resp(
            200,
            &[("content-type", "application/grpc"), ("grpc-status", "14")],
        );
        assert_eq!(o.class(), Class::ServerError(503));
        assert_eq!(o.response().unwrap().grpc_status, Some(14));
        let ok = resp(
            200,
            &[("content-type", "application/grpc"), ("grpc-status", "0")],
        );
        assert_eq!(ok.class(), Class::Success);
        assert_eq!(
            resp(200, &[("grpc-status", "4")]).class(),
            Class::ServerError(504)
        );
        assert_eq!(
            resp(200, &[("grpc-status", "5")]).class(),
            Class::Success,
            "NOT_FOUND maps to 404"
        );
    }

    #[test]
    fn overload_and_ratelimit_markers() {
        let o = resp(503, &[("x-envoy-overloaded", "true")]);
        assert!(o.response().unwrap().overloaded);
        let o = resp(429, &[("x-envoy-ratelimited", "true")]);
        assert!(o.response().unwrap().ratelimited);
    }

    #[test]
    fn errors_are_classified_through_their_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper")]
        struct Wrapper(#[source] std::io::Error);
        let refused = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(failure_of(&refused), Failure::ConnectFailure);
        let reset = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(failure_of(&reset), Failure::Reset);
        assert_eq!(
            failure_of(&FailureError(Failure::Overflow)),
            Failure::Overflow
        );
        assert!(Failure::ConnectTimeout.is_connect_failure());
        assert!(Failure::RefusedStream.is_before_request());
        assert!(Failure::PerTryTimeout.is_timeout());
    }
}
