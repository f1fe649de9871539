//! Clusters: one per service port (`outbound|PORT||FQDN`) and one per port and DestinationRule
//! subset (`outbound|PORT|SUBSET|FQDN`, DR-1), each with its own endpoint set and effective
//! policy (DR-3, DR-4), and the DNS refresh that keeps their endpoints current.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Protocol;
use crate::endpoint::{Endpoint, EndpointSet};
use crate::model::ServicePort;
use crate::traffic_policy::{EffectivePolicy, MergedRule};

/// Where a cluster's endpoints come from.
#[derive(Clone, Debug)]
pub(super) enum Source {
    /// Fixed at build time.
    Static,
    /// `resolution: NONE`: the request's own destination.
    Passthrough,
    /// Resolved by DNS: (name, port, template endpoint) per target; `first_only` for
    /// `DNS_ROUND_ROBIN`. IP literals are targets too, so a refresh keeps them.
    Dns {
        targets: Vec<(String, u16, Endpoint)>,
        first_only: bool,
    },
}

/// One port of one service, or of one subset of it: the unit of endpoints, pools, breakers and
/// outlier detection (SEMANTICS DR-13).
#[derive(Debug)]
pub struct Cluster {
    name: String,
    host: String,
    port: u32,
    port_name: String,
    protocol: Protocol,
    source: Source,
    subset: Option<String>,
    /// The subset's labels; empty for the base cluster (= every endpoint).
    labels: BTreeMap<String, String>,
    policy: Arc<EffectivePolicy>,
    endpoints: ArcSwap<EndpointSet>,
}

impl Cluster {
    /// Istio's cluster name: `outbound|PORT||FQDN`, or `outbound|PORT|SUBSET|FQDN` for a subset.
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

    /// The DestinationRule subset of this cluster; `None` for the service port's own cluster.
    pub fn subset(&self) -> Option<&str> {
        self.subset.as_deref()
    }

    /// The labels an endpoint needs to be in this cluster (DR-1); empty for the base cluster.
    pub fn subset_labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The effective DestinationRule policy of this cluster (DR-2 to DR-4); all blocks `None`
    /// when no rule applies.
    pub fn policy(&self) -> &Arc<EffectivePolicy> {
        &self.policy
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

    /// Resolves the cluster's DNS names once and swaps in the result (for a subset cluster:
    /// the endpoints with the subset's labels), keeping the state of endpoints that stay.
    /// Names that fail to resolve are logged and contribute nothing.
    pub async fn refresh_dns(&self) {
        if let Some(resolved) = self.resolve().await {
            self.update(&resolved);
        }
    }

    /// Resolves the DNS targets; `None` when the cluster is not DNS-based.
    pub(super) async fn resolve(&self) -> Option<Vec<Endpoint>> {
        let Source::Dns {
            targets,
            first_only,
        } = &self.source
        else {
            return None;
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
        Some(endpoints)
    }

    /// Swaps in the endpoints of `resolved` that belong to this cluster (all of them, or those
    /// with the subset's labels), carrying the state of endpoints that stay over.
    pub(super) fn update(&self, resolved: &[Endpoint]) {
        let endpoints: Vec<Endpoint> = resolved
            .iter()
            .filter(|e| e.matches_labels(&self.labels))
            .cloned()
            .collect();
        let current = self.endpoints.load();
        if current.endpoints() != endpoints.as_slice() {
            tracing::debug!(cluster = %self.name, endpoints = endpoints.len(), "dns endpoints changed");
            self.endpoints
                .store(Arc::new(current.carry_over(endpoints)));
        }
    }
}

/// Previous clusters by name, whose endpoint state a rebuild carries over (RELOAD-3).
pub(super) type Previous<'a> = HashMap<&'a str, &'a Cluster>;

/// The clusters of one service port: the base cluster, with the rule's policy for no subset,
/// and one cluster per subset of `rule` (DR-1), whose endpoints are the base endpoints carrying
/// the subset's labels. Each keeps the endpoint state of the previous cluster of its name.
pub(super) fn port_clusters(
    host: &str,
    port: &ServicePort,
    source: Source,
    endpoints: Vec<Endpoint>,
    rule: Option<&MergedRule>,
    previous: &Previous<'_>,
) -> (Arc<Cluster>, Vec<Arc<Cluster>>) {
    let make = |name: String,
                subset: Option<&str>,
                labels: BTreeMap<String, String>,
                endpoints: Vec<Endpoint>| {
        let set = match previous.get(name.as_str()) {
            Some(old) => old.endpoints.load().carry_over(endpoints),
            None => EndpointSet::new(endpoints),
        };
        let policy = rule.map_or_else(EffectivePolicy::default, |r| {
            r.effective(subset, port.number)
        });
        Arc::new(Cluster {
            name,
            host: host.to_owned(),
            port: port.number,
            port_name: port.name.clone(),
            protocol: Protocol::of_port(port),
            source: source.clone(),
            subset: subset.map(str::to_owned),
            labels,
            policy: Arc::new(policy),
            endpoints: ArcSwap::from_pointee(set),
        })
    };
    let subsets = rule
        .map(|r| r.subsets())
        .unwrap_or_default()
        .iter()
        .map(|subset| {
            let members = endpoints
                .iter()
                .filter(|e| e.matches_labels(&subset.labels))
                .cloned()
                .collect();
            make(
                format!("outbound|{}|{}|{host}", port.number, subset.name),
                Some(&subset.name),
                subset.labels.clone(),
                members,
            )
        })
        .collect();
    let base = make(
        format!("outbound|{}||{host}", port.number),
        None,
        BTreeMap::new(),
        endpoints,
    );
    (base, subsets)
}
