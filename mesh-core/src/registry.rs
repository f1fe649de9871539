//! The service registry: ServiceEntries and WorkloadEntries turned into services, clusters and
//! endpoints (SEMANTICS §5), looked up by request host like Istio (SEMANTICS §1).
//!
//! Built once per snapshot for one proxy (its namespace decides `exportTo` visibility, its
//! labels which DestinationRule `workloadSelector`s apply). Each service port is a [`Cluster`]
//! named as Istio names it (`outbound|PORT||FQDN`), and so is each subset of the
//! DestinationRule that applies to the service (`outbound|PORT|SUBSET|FQDN`, SEMANTICS DR-1,
//! HOST-12; [`crate::traffic_policy`]), with the endpoints carrying the subset's labels and its
//! own effective policy (DR-3, DR-4). Every cluster's endpoint set sits behind an `ArcSwap`:
//! DNS refreshes swap it without a lock, and a rebuild after a reload carries endpoint health
//! and counters over, per cluster name ([`Registry::build_from`]).
//!
//! ```
//! use mesh_core::model::*;
//! use mesh_core::registry::{Registry, Scope};
//! use mesh_core::Snapshot;
//!
//! let mut se = ServiceEntry::default();
//! se.hosts = vec!["reviews".into()];
//! se.resolution = Resolution::Static;
//! let mut port = ServicePort::default();
//! port.number = 9080;
//! port.name = "http".into();
//! se.ports = vec![port];
//! let mut ep = WorkloadEntry::default();
//! ep.address = "127.0.0.1".into();
//! se.endpoints = vec![ep];
//! let snapshot = Snapshot::new(vec![AnyResource::ServiceEntry(Box::new(
//!     Resource::new(Kind::ServiceEntry, ObjectMeta::new("reviews", "prod"), se),
//! ))]);
//! let registry = Registry::build(&snapshot, &Scope::new("prod"));
//! let service = registry.lookup("reviews:9080", "prod").unwrap();
//! let cluster = service.cluster(9080).unwrap();
//! assert_eq!(cluster.name(), "outbound|9080||reviews.prod.svc.cluster.local");
//! assert_eq!(cluster.endpoints().endpoint(0).addr.port(), 9080);
//! assert_eq!(cluster.subset(), None);
//! ```

mod cluster;
mod endpoints;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use self::cluster::Cluster;
use self::cluster::{Previous, port_clusters};
pub use self::endpoints::target_port;
use self::endpoints::{Body, WorkloadIndex, cluster_endpoints};
use crate::Snapshot;
use crate::hosts::{self, host_matches, is_wildcard};
use crate::model::{Location, Resolution, Resource, ServiceEntry, ServiceLocation, ServicePort};
use crate::traffic_policy::{DestinationRules, MergedRule};

/// How often DNS endpoints are re-resolved (SEMANTICS SE-3: the system resolver gives no TTL,
/// so the longest interval the rule allows).
pub const DNS_REFRESH: Duration = Duration::from_secs(30);

/// The root namespace when none is configured (`--root-namespace`, SEMANTICS HOST-12).
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// The proxy a registry is built for: its namespace decides what `exportTo` lets it see, its
/// labels which DestinationRule `workloadSelector`s select it, and the root namespace is the
/// last place a DestinationRule is looked for (HOST-8, HOST-12).
///
/// ```
/// use mesh_core::registry::Scope;
/// let scope = Scope::new("prod").labels([("app", "web")]).root_namespace("mesh-root");
/// assert_eq!(scope.labels["app"], "web");
/// assert_eq!(Scope::new("prod").root_namespace, "istio-system");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scope {
    /// The proxy's namespace (`--namespace`).
    pub namespace: String,
    /// The proxy workload's labels (`--labels`).
    pub labels: BTreeMap<String, String>,
    /// The root namespace (`--root-namespace`, default [`DEFAULT_ROOT_NAMESPACE`]).
    pub root_namespace: String,
}

impl Scope {
    /// A scope for a proxy in `namespace`, without labels, with root namespace `istio-system`.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            labels: BTreeMap::new(),
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_owned(),
        }
    }

    /// Sets the workload's labels.
    pub fn labels<K, V>(mut self, labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Sets the root namespace.
    pub fn root_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.root_namespace = namespace.into();
        self
    }
}

/// Whether a resource of namespace `resource_ns` with `export_to` is visible from `client_ns`
/// (SEMANTICS HOST-8).
pub fn is_exported(export_to: &[String], resource_ns: &str, client_ns: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => resource_ns == client_ns,
            "~" => false,
            ns => ns == client_ns,
        })
}

/// The application protocol of a service port (SEMANTICS SE-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 (routed by `http` routes).
    Http,
    /// HTTP/2 with prior knowledge.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// TLS-wrapped HTTP, not terminated.
    Https,
    /// Opaque TLS.
    Tls,
    /// Opaque TCP.
    Tcp,
    /// Not declared: sniffed per connection.
    Unknown,
}

impl Protocol {
    /// The protocol of a port from its `protocol` field, or else its name prefix.
    pub fn of_port(port: &ServicePort) -> Self {
        let declared = if port.protocol.is_empty() {
            port.name.split('-').next().unwrap_or("")
        } else {
            port.protocol.as_str()
        };
        match declared.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" | "grpc-web" => Protocol::Grpc,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
            _ => Protocol::Unknown,
        }
    }

    /// Whether requests on this port are HTTP that the proxy routes.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Unknown
        )
    }

    /// Whether the upstream speaks HTTP/2 with prior knowledge.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

/// A service: one host of a ServiceEntry with its ports.
#[derive(Debug)]
#[non_exhaustive]
pub struct Service {
    /// The host (FQDN, or a wildcard pattern).
    pub host: String,
    /// The ServiceEntry's namespace.
    pub namespace: String,
    /// The ServiceEntry's name.
    pub name: String,
    /// Inside or outside the mesh.
    pub location: ServiceLocation,
    /// How endpoints are found.
    pub resolution: Resolution,
    /// Extra identities accepted from the endpoints.
    pub subject_alt_names: Vec<String>,
    /// Where the ServiceEntry was written.
    pub source: Location,
    clusters: Vec<Arc<Cluster>>,
    subset_clusters: Vec<Arc<Cluster>>,
}

impl Service {
    /// The ServiceEntry's namespace (the "service namespace" of HOST-12).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The cluster of service port `port` (no subset).
    pub fn cluster(&self, port: u32) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.port() == port)
    }

    /// The cluster of subset `subset` on service port `port` (DR-1): `None` when the port is
    /// unknown or the DestinationRule that applies defines no such subset.
    pub fn subset_cluster(&self, port: u32, subset: &str) -> Option<&Arc<Cluster>> {
        self.subset_clusters
            .iter()
            .find(|c| c.port() == port && c.subset() == Some(subset))
    }

    /// Every cluster without a subset (one per port).
    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
    }

    /// Every subset cluster (one per port and subset), by port, then in the rule's subset order.
    pub fn subset_clusters(&self) -> &[Arc<Cluster>] {
        &self.subset_clusters
    }
}

/// Every service visible to one proxy, indexed for lookup by request host.
#[derive(Debug, Default)]
pub struct Registry {
    services: Vec<Arc<Service>>,
    exact: HashMap<String, usize>,
    /// Wildcard patterns, most specific (longest) first.
    wildcards: Vec<(String, usize)>,
    addresses: HashMap<IpAddr, usize>,
    destination_rules: DestinationRules,
}

impl Registry {
    /// Builds the registry of `snapshot` for a proxy in `scope`.
    pub fn build(snapshot: &Snapshot, scope: &Scope) -> Self {
        Self::build_from(snapshot, scope, None)
    }

    /// Builds the registry, carrying endpoint health and counters over from `previous` for
    /// clusters (base and subset) that keep their name (SEMANTICS RELOAD-3).
    pub fn build_from(snapshot: &Snapshot, scope: &Scope, previous: Option<&Registry>) -> Self {
        let workloads = WorkloadIndex::new(snapshot);
        let mut entries: Vec<&Resource<ServiceEntry>> = snapshot
            .service_entries()
            .filter(|se| is_exported(&se.spec.export_to, se.namespace(), &scope.namespace))
            .collect();
        // The oldest ServiceEntry wins a host (SEMANTICS SE-8); the sort is stable, so entries
        // without a timestamp keep load order.
        entries.sort_by(|a, b| creation_order(a, b));

        // Previous clusters by name, looked up once per new cluster (not a scan per cluster).
        let previous: Previous<'_> = previous
            .map(|p| p.clusters().map(|c| (c.name(), &**c)).collect())
            .unwrap_or_default();
        let rules = DestinationRules::build(snapshot, scope);
        let mut registry = Registry::default();
        for se in entries {
            for raw_host in &se.spec.hosts {
                let host = hosts::qualify(raw_host, se.namespace());
                if registry.exact.contains_key(&host)
                    || registry.wildcards.iter().any(|(p, _)| *p == host)
                {
                    continue;
                }
                // A DestinationRule whose host matches no service is simply unused (DR-5).
                let rule = rules.lookup(&host, se.namespace()).map(|r| &**r);
                let service = build_service(se, &host, &workloads, rule, &previous);
                let index = registry.services.len();
                registry.services.push(Arc::new(service));
                if is_wildcard(&host) {
                    registry.wildcards.push((host, index));
                } else {
                    registry.exact.insert(host, index);
                }
                for addr in &se.spec.addresses {
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        registry.addresses.entry(ip).or_insert(index);
                    }
                }
            }
        }
        registry
            .wildcards
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        registry.destination_rules = rules;
        registry
    }

    /// The service a request authority (`Host`, `:authority` or absolute-URI host, with or
    /// without port) reaches from a client in `client_ns`: exact names first (HOST-3), then the
    /// most specific wildcard (HOST-5), then ServiceEntry `addresses` for IP literals (HOST-7).
    pub fn lookup(&self, authority: &str, client_ns: &str) -> Option<&Arc<Service>> {
        let candidates = hosts::request_candidates(authority, client_ns);
        if let Some(&i) = candidates.iter().find_map(|c| self.exact.get(c)) {
            return Some(&self.services[i]);
        }
        for candidate in &candidates {
            if let Some((_, i)) = self
                .wildcards
                .iter()
                .find(|(p, _)| host_matches(p, candidate))
            {
                return Some(&self.services[*i]);
            }
        }
        let ip = hosts::strip_port(authority).parse::<IpAddr>().ok()?;
        self.addresses.get(&ip).map(|&i| &self.services[i])
    }

    /// The service registered under exactly `host` (an FQDN or wildcard pattern).
    pub fn get(&self, host: &str) -> Option<&Arc<Service>> {
        self.exact
            .get(host)
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(p, _)| p == host)
                    .map(|(_, i)| i)
            })
            .map(|&i| &self.services[i])
    }

    /// Every service, in registration order.
    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    /// Every cluster of every service: per service, its port clusters, then its subset
    /// clusters.
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> + '_ {
        self.services
            .iter()
            .flat_map(|s| s.clusters.iter().chain(s.subset_clusters.iter()))
    }

    /// The DestinationRules the registry was built with (the same index routing should use, so
    /// both agree on which rule and subset apply).
    pub fn destination_rules(&self) -> &DestinationRules {
        &self.destination_rules
    }

    /// Starts one background task per DNS service port that resolves it now and every
    /// [`DNS_REFRESH`], and updates the port's subset clusters from the same answer (each
    /// keeping its own endpoint state); a task ends when its port cluster is dropped (the next
    /// reload).
    pub fn spawn_dns_refresh(&self) {
        for service in &self.services {
            for cluster in service.clusters.iter().filter(|c| c.is_dns()) {
                let weak: Weak<Cluster> = Arc::downgrade(cluster);
                let subsets: Vec<Weak<Cluster>> = service
                    .subset_clusters
                    .iter()
                    .filter(|s| s.port() == cluster.port())
                    .map(Arc::downgrade)
                    .collect();
                tokio::spawn(async move {
                    loop {
                        let Some(cluster) = weak.upgrade() else {
                            return;
                        };
                        refresh_port(&cluster, &subsets).await;
                        drop(cluster);
                        tokio::time::sleep(DNS_REFRESH).await;
                    }
                });
            }
        }
    }
}

/// Resolves `cluster` once and updates it and its live `subsets` from the answer.
async fn refresh_port(cluster: &Cluster, subsets: &[Weak<Cluster>]) {
    let Some(resolved) = cluster.resolve().await else {
        return;
    };
    cluster.update(&resolved);
    for subset in subsets.iter().filter_map(Weak::upgrade) {
        subset.update(&resolved);
    }
}

/// "Oldest first" as SEMANTICS HOST-9 orders resources: earliest RFC 3339
/// `creationTimestamp`, equal timestamps by namespace/name; resources without a timestamp come
/// after, in load order among themselves (the sort using this is stable).
pub fn creation_order<S>(a: &Resource<S>, b: &Resource<S>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (
        &a.metadata.creation_timestamp,
        &b.metadata.creation_timestamp,
    ) {
        (Some(x), Some(y)) => x
            .cmp(y)
            .then_with(|| a.namespace().cmp(b.namespace()))
            .then_with(|| a.name().cmp(b.name())),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn build_service(
    se: &Resource<ServiceEntry>,
    host: &str,
    workloads: &WorkloadIndex<'_>,
    rule: Option<&MergedRule>,
    previous: &Previous<'_>,
) -> Service {
    let spec = &se.spec;
    let ns = se.namespace();
    // Endpoint bodies with their namespaces: listed endpoints, or selected WorkloadEntries of
    // the same namespace (SEMANTICS SE-5).
    let bodies: Vec<Body<'_>> = match &spec.workload_selector {
        Some(selector) => workloads
            .select(ns, &selector.labels)
            .iter()
            .filter(|we| {
                selector
                    .labels
                    .iter()
                    .all(|(k, v)| we.spec.labels.get(k) == Some(v))
            })
            .map(|we| Body {
                spec: &we.spec,
                namespace: we.namespace(),
                name: Some(we.name()),
            })
            .collect(),
        None => spec
            .endpoints
            .iter()
            .map(|e| Body {
                spec: e,
                namespace: ns,
                name: None,
            })
            .collect(),
    };
    let mut seen_ports = BTreeSet::new();
    let mut clusters = Vec::new();
    let mut subset_clusters = Vec::new();
    for port in spec.ports.iter().filter(|p| seen_ports.insert(p.number)) {
        let (source, endpoints) = cluster_endpoints(spec, ns, host, port, &bodies);
        let (base, subsets) = port_clusters(host, port, source, endpoints, rule, previous);
        clusters.push(base);
        subset_clusters.extend(subsets);
    }
    Service {
        host: host.to_owned(),
        namespace: ns.to_owned(),
        name: se.name().to_owned(),
        location: spec.location,
        resolution: spec.resolution,
        subject_alt_names: spec.subject_alt_names.clone(),
        source: se.source.clone(),
        clusters,
        subset_clusters,
    }
}

#[cfg(test)]
mod tests;
