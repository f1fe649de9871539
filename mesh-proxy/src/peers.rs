//! The label values of Istio's metrics (SEMANTICS MET-4), from this proxy's settings, the
//! registry and the mTLS identities — never from request data, so the number of series stays
//! bounded.
//!
//! Each set is built where its inputs change and shared from then on: this workload's labels
//! once at start, a cluster's service labels with its guard (per config version), an
//! endpoint's labels the first time its cluster answers a request, a caller's labels once per
//! inbound connection. A request only clones [`Labels`] handles.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use mesh_core::extensions::PeerIdentity;
use mesh_core::registry::{Cluster, Registry, Service};
use mesh_core::snapshot::Snapshot;
use mesh_identity::spiffe::SpiffeId;
use mesh_telemetry::metrics::{DestinationService, Labels, Workload};

use crate::mtls::UpstreamTls;
use crate::settings::ProxySettings;

/// Istio's default cluster name (`DefaultClusterName`).
pub(crate) const DEFAULT_CLUSTER_NAME: &str = "Kubernetes";

/// This proxy's own labels, and what labelling its peers needs.
#[derive(Debug)]
pub(crate) struct LocalLabels {
    /// Over plaintext (principal `unknown`).
    plain: Labels<Workload>,
    /// Over mTLS, with the proxy's SPIFFE ID (the plain labels without an identity).
    mtls: Labels<Workload>,
    pub(crate) trust_domain: String,
    pub(crate) cluster: String,
    unknown: Labels<Workload>,
    unknown_service: Labels<DestinationService>,
}

impl LocalLabels {
    pub(crate) fn new(settings: &ProxySettings, own: Option<&SpiffeId>) -> Self {
        let cluster = settings
            .cluster_name
            .clone()
            .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned());
        let me = Workload::new(
            settings.workload_name.as_deref(),
            Some(&settings.namespace),
            &settings.labels,
            None,
            Some(&cluster),
        );
        let own = own.map(SpiffeId::to_string);
        Self {
            mtls: Labels::new(me.with_principal(own.as_deref().or(Some("unknown")))),
            plain: Labels::new(me),
            trust_domain: settings.trust_domain.clone(),
            cluster,
            unknown: Labels::new(Workload::unknown()),
            unknown_service: Labels::new(DestinationService::unknown()),
        }
    }

    /// This workload, seen over a connection with or without mTLS.
    pub(crate) fn me(&self, mtls: bool) -> &Labels<Workload> {
        if mtls { &self.mtls } else { &self.plain }
    }

    /// A peer nothing is known about.
    pub(crate) fn unknown(&self) -> &Labels<Workload> {
        &self.unknown
    }

    /// No service (no route matched).
    pub(crate) fn unknown_service(&self) -> &Labels<DestinationService> {
        &self.unknown_service
    }
}

/// The labels of one config version that depend on the registry.
#[derive(Debug)]
pub(crate) struct PeerLabels {
    /// The service this workload serves (inbound `destination_service*`).
    inbound_service: Labels<DestinationService>,
    /// Callers known by namespace and service account (WorkloadEntries), built on the first
    /// inbound mTLS connection.
    accounts: OnceLock<HashMap<(String, String), Workload>>,
}

impl PeerLabels {
    pub(crate) fn build(registry: &Registry, settings: &ProxySettings) -> Self {
        let service = own_service(registry, settings)
            .map_or_else(DestinationService::unknown, |s| {
                DestinationService::new(&s.host, Some(s.namespace()))
            });
        Self {
            inbound_service: Labels::new(service),
            accounts: OnceLock::new(),
        }
    }

    /// Inbound `destination_service*`.
    pub(crate) fn inbound_service(&self) -> &Labels<DestinationService> {
        &self.inbound_service
    }

    /// An inbound caller: from its SPIFFE ID over mTLS (principal, namespace, and the workload
    /// a WorkloadEntry with that service account describes), or unknown over plaintext.
    pub(crate) fn caller(
        &self,
        snapshot: &Snapshot,
        local: &LocalLabels,
        peer: Option<&PeerIdentity>,
    ) -> Labels<Workload> {
        let Some(id) = peer else {
            return local.unknown.clone();
        };
        let principal = id.uri().to_owned();
        let (Some(ns), Some(sa)) = (id.namespace(), id.service_account()) else {
            let mut w = Workload::unknown();
            w.principal = principal;
            return Labels::new(w);
        };
        let accounts = self
            .accounts
            .get_or_init(|| accounts(snapshot, &local.cluster));
        let key = (ns.to_owned(), sa.to_owned());
        let w = match accounts.get(&key) {
            Some(w) => w.with_principal(Some(&principal)),
            None => Workload::new(None, Some(ns), &Default::default(), Some(&principal), None),
        };
        Labels::new(w)
    }
}

/// The first WorkloadEntry (in load order) of each namespace and service account.
fn accounts(snapshot: &Snapshot, cluster: &str) -> HashMap<(String, String), Workload> {
    let mut map = HashMap::new();
    for we in snapshot.workload_entries() {
        let sa = &we.spec.service_account;
        if sa.is_empty() {
            continue;
        }
        map.entry((we.namespace().to_owned(), sa.clone()))
            .or_insert_with(|| {
                Workload::new(
                    Some(we.name()),
                    Some(we.namespace()),
                    &we.spec.labels,
                    None,
                    Some(cluster),
                )
            });
    }
    map
}

/// The service whose endpoints are this workload: same namespace, and the WorkloadEntry's
/// name is the workload name, or its labels include the proxy's labels, or it runs as the
/// proxy's service account. The first such service in registry order.
fn own_service<'a>(registry: &'a Registry, settings: &ProxySettings) -> Option<&'a Service> {
    let ns = settings.namespace.as_str();
    let is_me = |e: &mesh_core::endpoint::Endpoint| {
        e.namespace == ns
            && (settings
                .workload_name
                .as_deref()
                .is_some_and(|n| e.workload.as_deref() == Some(n))
                || (!settings.labels.is_empty() && e.matches_labels(&settings.labels))
                || e.service_account.as_deref() == Some(settings.service_account.as_str()))
    };
    registry
        .services()
        .iter()
        .find(|s| {
            s.clusters()
                .iter()
                .any(|c| c.endpoints().endpoints().iter().any(is_me))
        })
        .map(|s| s.as_ref())
}

/// A cluster's destination labels: the service's, and each endpoint's (built on first use).
#[derive(Debug)]
pub(crate) struct ClusterLabels {
    pub(crate) service: Labels<DestinationService>,
    endpoints: OnceLock<EndpointLabels>,
}

#[derive(Debug)]
struct EndpointLabels {
    by_addr: HashMap<SocketAddr, (Labels<Workload>, bool)>,
    /// For a request no endpoint answered, or an endpoint DNS found later.
    fallback: Labels<Workload>,
}

impl ClusterLabels {
    pub(crate) fn new(service: Option<&Service>) -> Self {
        let service = service.map_or_else(DestinationService::unknown, |s| {
            DestinationService::new(&s.host, Some(s.namespace()))
        });
        Self {
            service: Labels::new(service),
            endpoints: OnceLock::new(),
        }
    }

    /// The `destination_*` labels of the endpoint at `addr` (or of the cluster when no
    /// endpoint answered), and whether the connection to it is Istio mTLS.
    pub(crate) fn destination(
        &self,
        cluster: &Cluster,
        tls: &UpstreamTls,
        local: &LocalLabels,
        addr: Option<SocketAddr>,
    ) -> (Labels<Workload>, bool) {
        let e = self.endpoints.get_or_init(|| {
            let set = cluster.endpoints();
            let mut by_addr = HashMap::with_capacity(set.len());
            for ep in set.endpoints() {
                let mtls = tls.istio_mutual_to(ep);
                let principal = mtls.then(|| ep.spiffe_id(&local.trust_domain)).flatten();
                let w = Workload::new(
                    ep.workload.as_deref(),
                    Some(&ep.namespace),
                    &ep.labels,
                    principal.as_deref(),
                    Some(&local.cluster),
                );
                by_addr.insert(ep.addr, (Labels::new(w), mtls));
            }
            let ns = set
                .endpoints()
                .first()
                .map_or(self.service.namespace.as_str(), |e| e.namespace.as_str());
            EndpointLabels {
                by_addr,
                fallback: Labels::new(Workload::new(
                    None,
                    Some(ns),
                    &Default::default(),
                    None,
                    Some(&local.cluster),
                )),
            }
        });
        addr.and_then(|a| e.by_addr.get(&a))
            .cloned()
            .unwrap_or_else(|| (e.fallback.clone(), false))
    }
}
