//! The service registry: ServiceEntries and WorkloadEntries turned into services, clusters and
//! endpoints (SEMANTICS §5), looked up by request host like Istio (SEMANTICS §1).
//!
//! Built once per snapshot for one proxy (its namespace decides `exportTo` visibility). Each
//! service port is a [`Cluster`] named as Istio names it (`outbound|PORT||FQDN`) whose endpoint
//! set sits behind an `ArcSwap`: DNS refreshes swap it without a lock, and a rebuild after a
//! reload carries endpoint health and counters over ([`Registry::build_from`]).
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
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::Snapshot;
use crate::endpoint::{Endpoint, EndpointSet};
use crate::hosts::{self, host_matches, is_wildcard};
use crate::model::{
    Location, Resolution, Resource, ServiceEntry, ServiceLocation, ServicePort, WorkloadEntry,
};

/// How often DNS endpoints are re-resolved (SEMANTICS SE-3: the system resolver gives no TTL,
/// so the longest interval the rule allows).
pub const DNS_REFRESH: Duration = Duration::from_secs(30);

/// The proxy a registry is built for: its namespace decides what `exportTo` lets it see.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scope {
    /// The proxy's namespace (`--namespace`).
    pub namespace: String,
}

impl Scope {
    /// A scope for a proxy in `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
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

/// Where a cluster's endpoints come from.
#[derive(Clone, Debug)]
enum Source {
    /// Fixed at build time.
    Static,
    /// `resolution: NONE`: the request's own destination.
    Passthrough,
    /// Resolved by DNS: (name, port, template endpoint) per target; `first_only` for
    /// `DNS_ROUND_ROBIN`.
    Dns {
        targets: Vec<(String, u16, Endpoint)>,
        first_only: bool,
    },
}

/// One port of one service: the unit of endpoints, pools and (later) breakers.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    host: String,
    port: u32,
    port_name: String,
    protocol: Protocol,
    source: Source,
    endpoints: ArcSwap<EndpointSet>,
}

impl Cluster {
    /// Istio's cluster name: `outbound|PORT||FQDN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The service port.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The service port's name.
    pub fn port_name(&self) -> &str {
        &self.port_name
    }

    /// The port's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the cluster forwards to the request's own destination (`resolution: NONE`).
    pub fn is_passthrough(&self) -> bool {
        matches!(self.source, Source::Passthrough)
    }

    /// Whether endpoints come from DNS.
    pub fn is_dns(&self) -> bool {
        matches!(self.source, Source::Dns { .. })
    }

    /// The current endpoint set (a request loads it once and keeps it).
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        self.endpoints.load_full()
    }

    /// Resolves the cluster's DNS names once and swaps in the result, keeping the state of
    /// endpoints that stay. Names that fail to resolve are logged and contribute nothing.
    pub async fn refresh_dns(&self) {
        let Source::Dns {
            targets,
            first_only,
        } = &self.source
        else {
            return;
        };
        let mut endpoints = Vec::new();
        for (name, port, template) in targets {
            match tokio::net::lookup_host((name.as_str(), *port)).await {
                Ok(addrs) => {
                    let mut addrs: Vec<SocketAddr> = addrs.collect();
                    addrs.dedup();
                    if *first_only {
                        addrs.truncate(1);
                    }
                    endpoints.extend(addrs.into_iter().map(|addr| Endpoint {
                        addr,
                        ..template.clone()
                    }));
                }
                Err(error) => {
                    tracing::warn!(cluster = %self.name, %name, %error, "dns resolution failed")
                }
            }
        }
        let current = self.endpoints.load();
        if current.endpoints() != endpoints.as_slice() {
            tracing::debug!(cluster = %self.name, endpoints = endpoints.len(), "dns endpoints changed");
            self.endpoints
                .store(Arc::new(current.carry_over(endpoints)));
        }
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
}

impl Service {
    /// The cluster of service port `port`.
    pub fn cluster(&self, port: u32) -> Option<&Arc<Cluster>> {
        self.clusters.iter().find(|c| c.port == port)
    }

    /// Every cluster (one per port).
    pub fn clusters(&self) -> &[Arc<Cluster>] {
        &self.clusters
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
}

impl Registry {
    /// Builds the registry of `snapshot` for a proxy in `scope`.
    pub fn build(snapshot: &Snapshot, scope: &Scope) -> Self {
        Self::build_from(snapshot, scope, None)
    }

    /// Builds the registry, carrying endpoint health and counters over from `previous` for
    /// clusters that keep their name (SEMANTICS RELOAD-3).
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
        let previous: HashMap<&str, &Cluster> = previous
            .map(|p| p.clusters().map(|c| (c.name.as_str(), &**c)).collect())
            .unwrap_or_default();
        let mut registry = Registry::default();
        for se in entries {
            for raw_host in &se.spec.hosts {
                let host = hosts::qualify(raw_host, se.namespace());
                if registry.exact.contains_key(&host)
                    || registry.wildcards.iter().any(|(p, _)| *p == host)
                {
                    continue;
                }
                let service = build_service(se, &host, &workloads, &previous);
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

    /// Every cluster of every service.
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> + '_ {
        self.services.iter().flat_map(|s| s.clusters.iter())
    }

    /// Starts one background task per DNS cluster that resolves it now and every
    /// [`DNS_REFRESH`]; a task ends when its cluster is dropped (the next reload).
    pub fn spawn_dns_refresh(&self) {
        for cluster in self.clusters().filter(|c| c.is_dns()) {
            let weak: Weak<Cluster> = Arc::downgrade(cluster);
            tokio::spawn(async move {
                loop {
                    let Some(cluster) = weak.upgrade() else {
                        return;
                    };
                    cluster.refresh_dns().await;
                    drop(cluster);
                    tokio::time::sleep(DNS_REFRESH).await;
                }
            });
        }
    }
}

/// "Oldest first" as SEMANTICS HOST-9 orders resources: earliest RFC 3339
/// `creationTimestamp`, equal timestamps by namespace/name; resources without a timestamp come
/// after, in load order among themselves (the sort using this is stable).
fn creation_order<S>(a: &Resource<S>, b: &Resource<S>) -> std::cmp::Ordering {
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

/// WorkloadEntries in load order.
type Entries<'a> = Vec<&'a Resource<WorkloadEntry>>;

/// WorkloadEntries indexed for selection: by namespace, and by (namespace, label, value), so a
/// ServiceEntry's `workloadSelector` looks at the entries carrying one of its labels instead of
/// scanning every WorkloadEntry (30,000-resource configs reload this on every change).
struct WorkloadIndex<'a> {
    by_namespace: HashMap<&'a str, Entries<'a>>,
    /// namespace → label → value → entries.
    by_label: HashMap<&'a str, HashMap<&'a str, HashMap<&'a str, Entries<'a>>>>,
}

impl<'a> WorkloadIndex<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let mut by_namespace: HashMap<&str, Vec<_>> = HashMap::new();
        let mut by_label: HashMap<&str, HashMap<&str, HashMap<&str, Vec<_>>>> = HashMap::new();
        for we in snapshot.workload_entries() {
            by_namespace.entry(we.namespace()).or_default().push(we);
            for (k, v) in &we.spec.labels {
                by_label
                    .entry(we.namespace())
                    .or_default()
                    .entry(k.as_str())
                    .or_default()
                    .entry(v.as_str())
                    .or_default()
                    .push(we);
            }
        }
        Self {
            by_namespace,
            by_label,
        }
    }

    /// The WorkloadEntries of `namespace` whose labels are a superset of `selector` (SE-5), in
    /// load order.
    fn select(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> &[&'a Resource<WorkloadEntry>] {
        let candidates = match selector.iter().next() {
            Some((k, v)) => self
                .by_label
                .get(namespace)
                .and_then(|labels| labels.get(k.as_str()))
                .and_then(|values| values.get(v.as_str())),
            None => self.by_namespace.get(namespace),
        };
        candidates.map_or(&[], Vec::as_slice)
    }
}

/// The port on `workload` for service port `port` (SEMANTICS SE-4): the workload's port map
/// wins over `targetPort`, which wins over the service port number.
pub fn target_port(workload: &WorkloadEntry, port: &ServicePort) -> u32 {
    workload
        .ports
        .get(&port.name)
        .copied()
        .or(port.target_port)
        .unwrap_or(port.number)
}

fn endpoint_template(workload: &WorkloadEntry, namespace: &str) -> Endpoint {
    Endpoint {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        labels: Arc::new(workload.labels.clone()),
        weight: workload.weight.unwrap_or(1).max(1),
        namespace: namespace.to_owned(),
        service_account: Some(workload.service_account.clone()).filter(|s| !s.is_empty()),
        locality: Some(workload.locality.clone()).filter(|s| !s.is_empty()),
        ports: Arc::new(
            workload
                .ports
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn build_service(
    se: &Resource<ServiceEntry>,
    host: &str,
    workloads: &WorkloadIndex<'_>,
    previous: &HashMap<&str, &Cluster>,
) -> Service {
    let spec = &se.spec;
    let ns = se.namespace();
    // Endpoint bodies with their namespaces: listed endpoints, or selected WorkloadEntries of
    // the same namespace (SEMANTICS SE-5).
    let bodies: Vec<(&WorkloadEntry, &str)> = match &spec.workload_selector {
        Some(selector) => workloads
            .select(ns, &selector.labels)
            .iter()
            .filter(|we| {
                selector
                    .labels
                    .iter()
                    .all(|(k, v)| we.spec.labels.get(k) == Some(v))
            })
            .map(|we| (&we.spec, we.namespace()))
            .collect(),
        None => spec.endpoints.iter().map(|e| (e, ns)).collect(),
    };
    let mut seen_ports = BTreeSet::new();
    let clusters = spec
        .ports
        .iter()
        .filter(|p| seen_ports.insert(p.number))
        .map(|port| {
            let name = format!("outbound|{}||{host}", port.number);
            let (source, endpoints) = cluster_endpoints(spec, ns, host, port, &bodies);
            let set = match previous.get(name.as_str()) {
                Some(old) => old.endpoints.load().carry_over(endpoints),
                None => EndpointSet::new(endpoints),
            };
            Arc::new(Cluster {
                name,
                host: host.to_owned(),
                port: port.number,
                port_name: port.name.clone(),
                protocol: Protocol::of_port(port),
                source,
                endpoints: ArcSwap::from_pointee(set),
            })
        })
        .collect();
    Service {
        host: host.to_owned(),
        namespace: ns.to_owned(),
        name: se.name().to_owned(),
        location: spec.location,
        resolution: spec.resolution,
        subject_alt_names: spec.subject_alt_names.clone(),
        source: se.source.clone(),
        clusters,
    }
}

fn cluster_endpoints(
    spec: &ServiceEntry,
    ns: &str,
    host: &str,
    port: &ServicePort,
    bodies: &[(&WorkloadEntry, &str)],
) -> (Source, Vec<Endpoint>) {
    match spec.resolution {
        Resolution::None | Resolution::DynamicDns => (Source::Passthrough, Vec::new()),
        Resolution::Static => {
            let endpoints = bodies
                .iter()
                .filter_map(|(we, ns)| {
                    let ip = we.address.parse::<IpAddr>().ok()?;
                    let port_no = u16::try_from(target_port(we, port)).ok()?;
                    Some(Endpoint {
                        addr: SocketAddr::new(ip, port_no),
                        ..endpoint_template(we, ns)
                    })
                })
                .collect();
            (Source::Static, endpoints)
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let first_only = spec.resolution == Resolution::DnsRoundRobin;
            let mut targets = Vec::new();
            let mut endpoints = Vec::new();
            if bodies.is_empty()
                && !is_wildcard(host)
                && let Ok(p) = u16::try_from(port.target_port.unwrap_or(port.number))
            {
                let template = endpoint_template(&WorkloadEntry::default(), ns);
                targets.push((host.to_owned(), p, template));
            }
            for (we, ns) in bodies {
                let Ok(p) = u16::try_from(target_port(we, port)) else {
                    continue;
                };
                let template = endpoint_template(we, ns);
                // IP literals need no resolver.
                match we.address.parse::<IpAddr>() {
                    Ok(ip) => endpoints.push(Endpoint {
                        addr: SocketAddr::new(ip, p),
                        ..template
                    }),
                    Err(_) => targets.push((we.address.clone(), p, template)),
                }
            }
            if targets.is_empty() {
                (Source::Static, endpoints)
            } else {
                (
                    Source::Dns {
                        targets,
                        first_only,
                    },
                    endpoints,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
