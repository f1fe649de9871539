//! The request view an authorization decision reads (SEMANTICS AUTHZ-11..AUTHZ-22).
//!
//! Everything is borrowed: building a view allocates nothing. Attributes the caller does not
//! set are *missing*, which is not a wildcard (AUTHZ-20).

use std::net::IpAddr;

use http::HeaderMap;

/// How the proxy sees the traffic (AUTHZ-21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1, HTTP/2 or gRPC: decided per request.
    Http,
    /// Opaque TCP: decided per connection; HTTP-only fields cannot be evaluated.
    Tcp,
}

/// The parts of an Istio-form principal `<td>/ns/<ns>/sa/<sa>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peer<'a> {
    pub(crate) principal: &'a str,
    pub(crate) trust_domain: &'a str,
    /// `None` when the principal is not of Istio form (AUTHZ-12).
    pub(crate) namespace: Option<&'a str>,
    pub(crate) service_account: Option<&'a str>,
}

impl<'a> Peer<'a> {
    fn parse(principal: &'a str) -> Peer<'a> {
        let principal = principal.strip_prefix("spiffe://").unwrap_or(principal);
        let (trust_domain, path) = principal.split_once('/').unwrap_or((principal, ""));
        let mut parts = path.split('/');
        let (namespace, service_account) = match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None)
                if !ns.is_empty() && !sa.is_empty() =>
            {
                (Some(ns), Some(sa))
            }
            _ => (None, None),
        };
        Peer {
            principal,
            trust_domain,
            namespace,
            service_account,
        }
    }
}

/// What one authorization decision reads, borrowed from the connection and the request.
///
/// ```
/// use mesh_identity::authz::{AuthzRequest, Protocol};
/// let headers = http::HeaderMap::new();
/// let req = AuthzRequest::http("10.0.0.7".parse().unwrap(), 8080)
///     .principal(Some("cluster.local/ns/production/sa/order-service"))
///     .method("POST")
///     .path("/v1/payments")
///     .host("payment-service:8080")
///     .headers(&headers);
/// assert_eq!(req.protocol(), Protocol::Http);
/// assert_eq!(req.peer_namespace(), Some("production"));
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct AuthzRequest<'a> {
    pub(crate) peer: Option<Peer<'a>>,
    pub(crate) source_ip: IpAddr,
    pub(crate) remote_ip: IpAddr,
    pub(crate) destination_ip: Option<IpAddr>,
    pub(crate) destination_port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) host: Option<&'a str>,
    pub(crate) method: Option<&'a str>,
    pub(crate) path: Option<&'a str>,
    pub(crate) headers: Option<&'a HeaderMap>,
    pub(crate) sni: Option<&'a str>,
}

impl<'a> AuthzRequest<'a> {
    /// A request from `source_ip` to workload port `destination_port` (AUTHZ-17), plaintext
    /// (no principal) until [`principal`](Self::principal) is set; remote IP = source IP
    /// (0 trusted hops, AUTHZ-14).
    pub fn new(protocol: Protocol, source_ip: IpAddr, destination_port: u16) -> Self {
        AuthzRequest {
            peer: None,
            source_ip,
            remote_ip: source_ip,
            destination_ip: None,
            destination_port,
            protocol,
            host: None,
            method: None,
            path: None,
            headers: None,
            sni: None,
        }
    }

    /// An HTTP request view ([`Protocol::Http`]).
    pub fn http(source_ip: IpAddr, destination_port: u16) -> Self {
        Self::new(Protocol::Http, source_ip, destination_port)
    }

    /// An opaque TCP connection view ([`Protocol::Tcp`]).
    pub fn tcp(source_ip: IpAddr, destination_port: u16) -> Self {
        Self::new(Protocol::Tcp, source_ip, destination_port)
    }

    /// The peer's mTLS identity as `<td>/ns/<ns>/sa/<sa>` (a `spiffe://` prefix is stripped);
    /// `None` for plaintext peers (AUTHZ-22).
    pub fn principal(mut self, principal: Option<&'a str>) -> Self {
        self.peer = principal.filter(|p| !p.is_empty()).map(Peer::parse);
        self
    }

    /// The original client IP (`remote.ip`, `remoteIpBlocks`) when it differs from the peer.
    pub fn remote_ip(mut self, ip: IpAddr) -> Self {
        self.remote_ip = ip;
        self
    }

    /// The local IP the connection was accepted on (`destination.ip`).
    pub fn destination_ip(mut self, ip: IpAddr) -> Self {
        self.destination_ip = Some(ip);
        self
    }

    /// `Host`/`:authority` as sent, port included (AUTHZ-16).
    pub fn host(mut self, host: &'a str) -> Self {
        self.host = Some(host);
        self
    }

    /// The HTTP method (`POST` for gRPC).
    pub fn method(mut self, method: &'a str) -> Self {
        self.method = Some(method);
        self
    }

    /// The normalized path without the query string (AUTHZ-18, AUTHZ-25); a query is cut off
    /// here if the caller left one.
    pub fn path(mut self, path: &'a str) -> Self {
        self.path = Some(path.split_once('?').map_or(path, |(p, _)| p));
        self
    }

    /// The request headers (`request.headers[...]`).
    pub fn headers(mut self, headers: &'a HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The SNI the client sent on the inbound TLS connection (`connection.sni`).
    pub fn sni(mut self, sni: Option<&'a str>) -> Self {
        self.sni = sni;
        self
    }

    /// The traffic's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The peer principal without scheme, `None` for plaintext.
    pub fn peer_principal(&self) -> Option<&'a str> {
        self.peer.map(|p| p.principal)
    }

    /// The `ns` segment of an Istio-form principal (AUTHZ-12).
    pub fn peer_namespace(&self) -> Option<&'a str> {
        self.peer.and_then(|p| p.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_forms() {
        let p = Peer::parse("spiffe://td/ns/a/sa/b");
        assert_eq!(
            (p.principal, p.trust_domain, p.namespace, p.service_account),
            ("td/ns/a/sa/b", "td", Some("a"), Some("b"))
        );
        let p = Peer::parse("td/workload/x");
        assert_eq!((p.trust_domain, p.namespace), ("td", None));
        assert_eq!(Peer::parse("td/ns/a/sa/b/c").namespace, None);
        let ip = "10.0.0.1".parse().unwrap();
        assert!(AuthzRequest::tcp(ip, 1).principal(Some("")).peer.is_none());
        assert_eq!(AuthzRequest::http(ip, 1).path("/a?b=c").path, Some("/a"));
    }
}
