//! Header rules of the proxy hop (SEMANTICS HDR-4 to HDR-10).

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, HeaderValue, TE, TRANSFER_ENCODING, UPGRADE};

/// `x-request-id`.
pub use mesh_telemetry::trace_context::X_REQUEST_ID;
/// `x-forwarded-proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-client-cert`.
pub static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// `x-envoy-upstream-service-time`.
pub static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
/// `x-envoy-attempt-count`.
pub static X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");

/// Which side of the workload a hop is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Local app → mesh (client proxy).
    Outbound,
    /// Mesh → local app (server proxy).
    Inbound,
}

impl Direction {
    /// The `server` header value written on responses (HDR-9).
    pub fn server_header(self) -> HeaderValue {
        match self {
            Direction::Outbound => HeaderValue::from_static("envoy"),
            Direction::Inbound => HeaderValue::from_static("istio-envoy"),
        }
    }

    /// The name used in logs, metrics and `/config_dump`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Removes hop-by-hop headers (HDR-6): `connection` and every header it names, `keep-alive`,
/// `proxy-connection`, `transfer-encoding`, `upgrade`, and `te` unless it is exactly `trailers`
/// and the next hop is HTTP/2 (gRPC needs it).
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    headers.remove(CONNECTION);
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    headers.remove(TRANSFER_ENCODING);
    headers.remove(UPGRADE);
    let te_trailers = headers
        .get(TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !(keep_te_trailers && te_trailers) {
        headers.remove(TE);
    }
}

/// Request headers on the way out of the proxy (HDR-4, HDR-5, HDR-6, HDR-7, HDR-10).
pub fn prepare_request(headers: &mut HeaderMap, direction: Direction, upstream_h2: bool) {
    remove_hop_by_hop(headers, upstream_h2);
    match direction {
        Direction::Outbound => {
            // The app may not speak for the proxy, nor forge a client certificate (HDR-5).
            headers.remove(http::header::PROXY_AUTHORIZATION);
            headers.remove(&XFCC);
        }
        Direction::Inbound => {
            // Routing headers from remote peers are not trusted (HDR-7, ours) and peer metadata
            // is internal (HDR-10). XFCC was settled by `forward_client_cert` (HDR-5).
            let envoy: Vec<HeaderName> = headers
                .keys()
                .filter(|k| k.as_str().starts_with("x-envoy-") && **k != X_ENVOY_ATTEMPT_COUNT)
                .cloned()
                .collect();
            for name in envoy {
                headers.remove(name);
            }
        }
    }
    // Sidecars do not append to x-forwarded-for (HDR-4); x-forwarded-proto only when absent.
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID.clone(), new_request_id());
    }
}

/// `x-forwarded-client-cert` towards the app (HDR-5, Istio's `APPEND_FORWARD` on the inbound
/// side): `element` (this hop, built from the peer's certificate) is appended on an mTLS
/// connection; on plaintext (`None`) any XFCC the client sent is removed, since nothing vouches
/// for it.
pub fn forward_client_cert(headers: &mut HeaderMap, element: Option<&str>) {
    let Some(element) = element else {
        headers.remove(&XFCC);
        return;
    };
    let existing = headers.get(&XFCC);
    match mesh_identity::xfcc::append(existing, element) {
        Ok(v) => {
            headers.insert(XFCC.clone(), v);
        }
        Err(_) => {
            headers.remove(&XFCC);
        }
    }
}

/// Response headers on the way back (HDR-1, HDR-6, HDR-9).
pub fn prepare_response(
    headers: &mut HeaderMap,
    direction: Direction,
    service_time_ms: Option<u128>,
) {
    remove_hop_by_hop(headers, false);
    headers.insert(http::header::SERVER, direction.server_header());
    if let Some(ms) = service_time_ms {
        headers.insert(
            X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
            HeaderValue::from(ms as u64),
        );
    }
}

pub use mesh_telemetry::trace_context::new_request_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        // SEMANTICS HDR-6
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "keep-alive, x-custom".parse().unwrap());
        h.insert("x-custom", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert(TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(TE, "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        let mut h2 = h.clone();
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
        remove_hop_by_hop(&mut h2, true);
        assert_eq!(h2[TE], "trailers");
    }

    #[test]
    fn forwarded_headers_follow_istio_sidecars() {
        // SEMANTICS HDR-4: x-forwarded-for passes unchanged; x-forwarded-proto set only if absent.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.insert(X_FORWARDED_PROTO.clone(), "https".parse().unwrap());
        prepare_request(&mut h, Direction::Outbound, false);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        let mut h = HeaderMap::new();
        prepare_request(&mut h, Direction::Outbound, false);
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert!(h.get("x-forwarded-for").is_none());
    }

    #[test]
    fn request_id_is_kept_or_generated() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID.clone(), "abc".parse().unwrap());
        prepare_request(&mut h, Direction::Outbound, false);
        assert_eq!(h[&X_REQUEST_ID], "abc");
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn inbound_strips_untrusted_headers() {
        // SEMANTICS HDR-5, HDR-7, HDR-10
        let mut h = HeaderMap::new();
        h.insert(XFCC.clone(), "By=x".parse().unwrap());
        h.insert("x-envoy-retry-on", "5xx".parse().unwrap());
        h.insert("x-envoy-peer-metadata", "x".parse().unwrap());
        h.insert(X_ENVOY_ATTEMPT_COUNT.clone(), "2".parse().unwrap());
        forward_client_cert(&mut h, None);
        prepare_request(&mut h, Direction::Inbound, false);
        assert!(
            h.get(&XFCC).is_none(),
            "HDR-5: a plaintext peer's XFCC is dropped"
        );
        assert!(h.get("x-envoy-retry-on").is_none());
        assert!(h.get("x-envoy-peer-metadata").is_none());
        assert_eq!(h[&X_ENVOY_ATTEMPT_COUNT], "2");
        // Outbound trusts the local app's x-envoy-* but never its XFCC.
        let mut h = HeaderMap::new();
        h.insert(XFCC.clone(), "By=x".parse().unwrap());
        h.insert("x-envoy-retry-on", "5xx".parse().unwrap());
        h.insert(
            http::header::PROXY_AUTHORIZATION,
            "Basic x".parse().unwrap(),
        );
        prepare_request(&mut h, Direction::Outbound, false);
        assert!(h.get(&XFCC).is_none());
        assert!(h.get(http::header::PROXY_AUTHORIZATION).is_none());
        assert_eq!(h["x-envoy-retry-on"], "5xx");
        // HDR-5 on mTLS: this hop's element appended to what came before.
        let mut h = HeaderMap::new();
        h.insert(XFCC.clone(), "By=a;URI=b".parse().unwrap());
        forward_client_cert(&mut h, Some("By=c;URI=d"));
        assert_eq!(h[&XFCC], "By=a;URI=b,By=c;URI=d");
    }

    #[test]
    fn responses_get_server_and_service_time() {
        // SEMANTICS HDR-1, HDR-9
        let mut h = HeaderMap::new();
        h.insert(http::header::SERVER, "nginx".parse().unwrap());
        prepare_response(&mut h, Direction::Outbound, Some(12));
        assert_eq!(h[http::header::SERVER], "envoy");
        assert_eq!(h[&X_ENVOY_UPSTREAM_SERVICE_TIME], "12");
        prepare_response(&mut h, Direction::Inbound, None);
        assert_eq!(h[http::header::SERVER], "istio-envoy");
    }
}
