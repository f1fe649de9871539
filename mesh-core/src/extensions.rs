//! Typed request extensions that one layer hands on to the next.
//!
//! Leaf crates never import each other (DESIGN.md), so what routing decides and resilience or
//! telemetry read travels as a value of a type defined here, in the request's extensions:
//! `mesh-routing` inserts a [`RouteInfo`]; the retry and timeout layers read its
//! [`HttpRetry`] and timeout; access logs read the route and cluster names.
//!
//! ```
//! use std::sync::Arc;
//! use mesh_core::extensions::RouteInfo;
//!
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(RouteInfo::new("reviews-route.v2", "outbound|9080|v2|reviews.default.svc.cluster.local"));
//! let info = req.extensions().get::<RouteInfo>().unwrap();
//! assert_eq!(&*info.route_name, "reviews-route.v2");
//! assert!(info.timeout.is_none());
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::EndpointSet;
use crate::model::HttpRetry;

/// What routing decided for a request: the route, the cluster and endpoint, and the policies
/// the route carries for resilience (SEMANTICS VS-34, RETRY-1..RETRY-4).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RouteInfo {
    /// The route name of SEMANTICS LOG-2 (`http[].name` + `.` + `match[].name`; `default` for a
    /// service without a VirtualService).
    pub route_name: Arc<str>,
    /// The cluster the request goes to (`outbound|PORT|SUBSET|FQDN`).
    pub cluster: Arc<str>,
    /// The endpoint picked for the first attempt.
    pub endpoint: Option<SocketAddr>,
    /// The route timeout; `None` = no timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// The route's `retries` as configured (`None` = Istio's default policy, RETRY-2).
    pub retries: Option<Arc<HttpRetry>>,
}

impl RouteInfo {
    /// A route decision with no endpoint and no policies yet.
    pub fn new(route_name: impl Into<Arc<str>>, cluster: impl Into<Arc<str>>) -> Self {
        Self {
            route_name: route_name.into(),
            cluster: cluster.into(),
            endpoint: None,
            timeout: None,
            retries: None,
        }
    }
}

/// The endpoint a request is being sent to, with the set it belongs to: what routing picked,
/// for outlier detection and per-endpoint counters to report on (SEMANTICS OD-2).
///
/// ```
/// use std::sync::Arc;
/// use mesh_core::endpoint::{Endpoint, EndpointSet};
/// use mesh_core::extensions::UpstreamEndpoint;
///
/// let set = Arc::new(EndpointSet::new(vec![Endpoint::new("127.0.0.1:8081".parse().unwrap())]));
/// let picked = UpstreamEndpoint::new(set, 0);
/// assert_eq!(picked.addr().port(), 8081);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UpstreamEndpoint {
    /// The cluster's endpoints at the time of the pick.
    pub set: Arc<EndpointSet>,
    /// The picked endpoint's index in `set`.
    pub index: usize,
}

impl UpstreamEndpoint {
    /// Endpoint `index` of `set`.
    ///
    /// # Panics
    /// If `index` is out of range of `set` (indices come from the set's own picks).
    pub fn new(set: Arc<EndpointSet>, index: usize) -> Self {
        assert!(index < set.len(), "endpoint index out of range");
        Self { set, index }
    }

    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.set.endpoint(self.index).addr
    }
}

/// The attempts made for one request, shared by every attempt's copy of the request: the retry
/// layer numbers the attempts (`x-envoy-attempt-count`, RETRY-11) and routing records each
/// endpoint it picks, so a retry can avoid the endpoints already tried (RETRY-13).
///
/// Cloning shares the record. The endpoint list sits behind a mutex taken once per attempt,
/// only for requests that a retry layer handles.
///
/// ```
/// use mesh_core::extensions::Attempts;
///
/// let attempts = Attempts::new(true);
/// attempts.next_attempt();
/// attempts.record_host("127.0.0.1:8081".parse().unwrap());
/// let copy = attempts.clone();
/// assert_eq!(copy.number(), 1);
/// assert_eq!(copy.hosts_to_avoid(), vec!["127.0.0.1:8081".parse().unwrap()]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Attempts {
    inner: Arc<AttemptsInner>,
}

#[derive(Debug, Default)]
struct AttemptsInner {
    number: std::sync::atomic::AtomicU32,
    avoid_previous: bool,
    /// `retryIgnorePreviousHosts` unset: avoid, except on a consistent-hash destination.
    unless_hashed: bool,
    hosts: std::sync::Mutex<Vec<SocketAddr>>,
}

impl Attempts {
    /// A record with no attempts yet; `avoid_previous` says whether retries should avoid the
    /// endpoints already tried (`retryIgnorePreviousHosts`).
    pub fn new(avoid_previous: bool) -> Self {
        Self {
            inner: Arc::new(AttemptsInner {
                avoid_previous,
                ..AttemptsInner::default()
            }),
        }
    }

    /// A record for a policy that leaves `retryIgnorePreviousHosts` unset: retries avoid the
    /// endpoints already tried unless the destination uses consistent hashing, where a retry
    /// goes to the same hash target (SEMANTICS RETRY-13).
    ///
    /// ```
    /// use mesh_core::extensions::Attempts;
    ///
    /// let a = Attempts::unless_hashed();
    /// a.record_host("127.0.0.1:8081".parse().unwrap());
    /// assert_eq!(a.hosts_to_avoid_for(false).len(), 1);
    /// assert!(a.hosts_to_avoid_for(true).is_empty(), "same hash target on retry");
    /// ```
    pub fn unless_hashed() -> Self {
        Self {
            inner: Arc::new(AttemptsInner {
                avoid_previous: true,
                unless_hashed: true,
                ..AttemptsInner::default()
            }),
        }
    }

    /// The endpoints a pick from a balancer that does (`hashed`) or does not use consistent
    /// hashing should avoid.
    pub fn hosts_to_avoid_for(&self, hashed: bool) -> Vec<SocketAddr> {
        if hashed && self.inner.unless_hashed {
            return Vec::new();
        }
        self.hosts_to_avoid()
    }

    /// Starts the next attempt and returns its 1-based number.
    pub fn next_attempt(&self) -> u32 {
        self.inner
            .number
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// The number of the current attempt (0 before the first).
    pub fn number(&self) -> u32 {
        self.inner.number.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records the endpoint an attempt was sent to.
    pub fn record_host(&self, addr: SocketAddr) {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(addr);
    }

    /// The endpoints a new pick should avoid: those already tried, or none when the policy
    /// does not avoid previous hosts.
    pub fn hosts_to_avoid(&self) -> Vec<SocketAddr> {
        if !self.inner.avoid_previous {
            return Vec::new();
        }
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// When the current attempt times out, set by the timeout and retry layers so that a layer
/// below (outlier detection) can tell a timed-out attempt from a cancelled one when its future
/// is dropped: a timeout counts against the endpoint (OD-2), a client going away does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptDeadline {
    /// The deadline.
    pub at: tokio::time::Instant,
    /// Whether it is the per-try timeout (RETRY-8) rather than the route timeout (VS-34).
    pub per_try: bool,
}

impl AttemptDeadline {
    /// A deadline at `at`.
    pub fn new(at: tokio::time::Instant, per_try: bool) -> Self {
        Self { at, per_try }
    }

    /// Sets `deadline` on `extensions` unless an earlier one is already there.
    pub fn tighten(extensions: &mut http::Extensions, deadline: AttemptDeadline) {
        match extensions.get::<AttemptDeadline>() {
            Some(existing) if existing.at <= deadline.at => {}
            _ => {
                extensions.insert(deadline);
            }
        }
    }
}

/// The downstream connection a request arrived on, as the server that accepted it saw it:
/// what authorization (`remoteIpBlocks`, `destination.ip`/`port`), telemetry and access logs
/// read. A server inserts it into every request of the connection.
///
/// ```
/// use mesh_core::extensions::{Downstream, PeerIdentity};
///
/// let peer = PeerIdentity::new("spiffe://cluster.local/ns/production/sa/order-service-sa");
/// let conn = Downstream::new("10.0.0.7:51000".parse().unwrap(), "10.0.0.9:8080".parse().unwrap())
///     .with_peer(peer);
/// assert!(conn.is_mtls());
/// assert_eq!(conn.peer.as_ref().unwrap().principal(), "cluster.local/ns/production/sa/order-service-sa");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downstream {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the connection was accepted on.
    pub local: SocketAddr,
    /// The peer's verified SPIFFE identity, on an mTLS connection (SEMANTICS PA-5); `None` on
    /// plaintext.
    pub peer: Option<PeerIdentity>,
    /// The SNI the client sent, on a TLS connection.
    pub sni: Option<Arc<str>>,
}

impl Downstream {
    /// A plaintext connection from `remote`, accepted on `local`.
    pub fn new(remote: SocketAddr, local: SocketAddr) -> Self {
        Self {
            remote,
            local,
            peer: None,
            sni: None,
        }
    }

    /// The same connection, authenticated by mTLS as `peer`.
    pub fn with_peer(mut self, peer: PeerIdentity) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The same connection, with the SNI the client sent.
    pub fn with_sni(mut self, sni: impl Into<Arc<str>>) -> Self {
        self.sni = Some(sni.into());
        self
    }

    /// Whether the peer was authenticated by mTLS (`connection_security_policy="mutual_tls"`).
    pub fn is_mtls(&self) -> bool {
        self.peer.is_some()
    }
}

/// A peer's SPIFFE ID, verified by an mTLS handshake (SEMANTICS PA-5, SPIFFE-3).
///
/// Holds the URI form (`spiffe://cluster.local/ns/default/sa/web`); the principal used by
/// AuthorizationPolicy and metrics is the same without `spiffe://`. Cloning shares the text.
///
/// ```
/// use mesh_core::extensions::PeerIdentity;
///
/// let id = PeerIdentity::new("spiffe://cluster.local/ns/default/sa/web");
/// assert_eq!(id.principal(), "cluster.local/ns/default/sa/web");
/// assert_eq!(id.namespace(), Some("default"));
/// assert_eq!(id.service_account(), Some("web"));
/// assert_eq!(PeerIdentity::new("spiffe://example.org/payments").namespace(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    uri: Arc<str>,
}

impl PeerIdentity {
    /// The identity with SPIFFE URI `uri` (already verified by the caller).
    pub fn new(uri: impl Into<Arc<str>>) -> Self {
        Self { uri: uri.into() }
    }

    /// The SPIFFE URI, `spiffe://TD/path`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The principal: the URI without `spiffe://` (`TD/ns/NS/sa/SA`).
    pub fn principal(&self) -> &str {
        self.uri.strip_prefix("spiffe://").unwrap_or(&self.uri)
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        let p = self.principal();
        p.split_once('/').map_or(p, |(td, _)| td)
    }

    /// The namespace of an Istio-form ID (`/ns/NS/sa/SA`); `None` for other paths (AUTHZ-12).
    pub fn namespace(&self) -> Option<&str> {
        self.istio_parts().map(|(ns, _)| ns)
    }

    /// The service account of an Istio-form ID.
    pub fn service_account(&self) -> Option<&str> {
        self.istio_parts().map(|(_, sa)| sa)
    }

    fn istio_parts(&self) -> Option<(&str, &str)> {
        let (_, path) = self.principal().split_once('/')?;
        let mut parts = path.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None)
                if !ns.is_empty() && !sa.is_empty() =>
            {
                Some((ns, sa))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.uri)
    }
}
