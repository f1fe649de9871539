//! Endpoints of a service port: WorkloadEntries selected by label (SEMANTICS SE-5), ports
//! mapped per workload (SE-4), and the source a cluster takes them from (static, DNS, or the
//! request's own destination; SE-3).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::cluster::Source;
use crate::Snapshot;
use crate::endpoint::Endpoint;
use crate::hosts::is_wildcard;
use crate::model::{Resolution, Resource, ServiceEntry, ServicePort, WorkloadEntry};

/// WorkloadEntries in load order.
type Entries<'a> = Vec<&'a Resource<WorkloadEntry>>;

/// WorkloadEntries indexed for selection: by namespace, and by (namespace, label, value), so a
/// ServiceEntry's `workloadSelector` looks at the entries carrying one of its labels instead of
/// scanning every WorkloadEntry (30,000-resource configs reload this on every change).
pub(super) struct WorkloadIndex<'a> {
    by_namespace: HashMap<&'a str, Entries<'a>>,
    /// namespace → label → value → entries.
    by_label: HashMap<&'a str, HashMap<&'a str, HashMap<&'a str, Entries<'a>>>>,
}

impl<'a> WorkloadIndex<'a> {
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
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
    pub(super) fn select(
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

/// A WorkloadEntry body (a selected WorkloadEntry's spec or an inline endpoint), its
/// namespace, and its name when it is a WorkloadEntry resource.
#[derive(Clone, Copy)]
pub(super) struct Body<'a> {
    pub(super) spec: &'a WorkloadEntry,
    pub(super) namespace: &'a str,
    pub(super) name: Option<&'a str>,
}

fn endpoint_template(body: Body<'_>) -> Endpoint {
    let Body {
        spec: workload,
        namespace,
        name,
    } = body;
    Endpoint {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        labels: Arc::new(workload.labels.clone()),
        weight: workload.weight.unwrap_or(1).max(1),
        namespace: namespace.to_owned(),
        service_account: Some(workload.service_account.clone()).filter(|s| !s.is_empty()),
        workload: name.map(Arc::from),
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

pub(super) fn cluster_endpoints(
    spec: &ServiceEntry,
    ns: &str,
    host: &str,
    port: &ServicePort,
    bodies: &[Body<'_>],
) -> (Source, Vec<Endpoint>) {
    match spec.resolution {
        Resolution::None | Resolution::DynamicDns => (Source::Passthrough, Vec::new()),
        Resolution::Static => {
            let endpoints = bodies
                .iter()
                .filter_map(|b| {
                    let ip = b.spec.address.parse::<IpAddr>().ok()?;
                    let port_no = u16::try_from(target_port(b.spec, port)).ok()?;
                    Some(Endpoint {
                        addr: SocketAddr::new(ip, port_no),
                        ..endpoint_template(*b)
                    })
                })
                .collect();
            (Source::Static, endpoints)
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let first_only = spec.resolution == Resolution::DnsRoundRobin;
            let mut targets = Vec::new();
            let mut endpoints = Vec::new();
            let mut names = false;
            if bodies.is_empty()
                && !is_wildcard(host)
                && let Ok(p) = u16::try_from(port.target_port.unwrap_or(port.number))
            {
                let template = endpoint_template(Body {
                    spec: &WorkloadEntry::default(),
                    namespace: ns,
                    name: None,
                });
                targets.push((host.to_owned(), p, template));
                names = true;
            }
            for b in bodies {
                let we = b.spec;
                let Ok(p) = u16::try_from(target_port(we, port)) else {
                    continue;
                };
                let template = endpoint_template(*b);
                // IP literals need no resolver: usable at once, and kept as targets so a
                // refresh (which resolves them without DNS) does not drop them.
                if let Ok(ip) = we.address.parse::<IpAddr>() {
                    endpoints.push(Endpoint {
                        addr: SocketAddr::new(ip, p),
                        ..template.clone()
                    });
                } else {
                    names = true;
                }
                targets.push((we.address.clone(), p, template));
            }
            if !names {
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
