//! Checks across resources: references that resolve to nothing (destination hosts, subsets),
//! `exportTo` that hides what another namespace uses, DestinationRules for unknown hosts,
//! endpoints that no subset or service selects. Resources that shadow each other (one host
//! claimed twice, several policies at one level) are in `shadowing.rs`, on the index built here.
//!
//! Visibility follows SEMANTICS HOST-8: a reference from a resource in namespace `N` counts a
//! resource as defined when that resource is exported to `N`. Hosts are qualified relative to
//! the namespace of the resource that writes them (HOST-1, [`crate::hosts::qualify`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Analyzer;
use super::codes;
use super::names::{hosts_overlap, labels_text};
use super::report::Reporter;
use super::shadowing;
use super::virtual_service::applies_to_mesh;
use crate::Snapshot;
use crate::hosts::{host_matches, qualify};
use crate::model::{
    AnyResource, Destination, DestinationRule, PeerAuthentication, Resolution, Resource,
    ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::registry::is_exported;

/// One resource of a kind with its position in load order and the hosts it names, qualified
/// relative to its namespace (VirtualService and ServiceEntry `hosts`, DestinationRule `host`).
pub(crate) struct Item<'s, T> {
    pub(crate) order: usize,
    pub(crate) any: &'s AnyResource,
    pub(crate) res: &'s Resource<T>,
    pub(crate) fqdns: Vec<String>,
}

impl<T> Item<'_, T> {
    pub(crate) fn ns(&self) -> &str {
        self.res.namespace()
    }
}

/// Resources by kind, in load order.
#[derive(Default)]
pub(crate) struct Index<'s> {
    pub(crate) vs: Vec<Item<'s, VirtualService>>,
    pub(crate) dr: Vec<Item<'s, DestinationRule>>,
    pub(crate) se: Vec<Item<'s, ServiceEntry>>,
    pub(crate) we: Vec<Item<'s, WorkloadEntry>>,
    pub(crate) pa: Vec<Item<'s, PeerAuthentication>>,
    pub(crate) sc: Vec<Item<'s, Sidecar>>,
}

impl<'s> Index<'s> {
    fn new(snapshot: &'s Snapshot) -> Self {
        let mut index = Index::default();
        let qualified = |hosts: &[String], ns: &str| -> Vec<String> {
            hosts
                .iter()
                .filter(|h| !h.is_empty())
                .map(|h| qualify(h, ns))
                .collect()
        };
        for (order, any) in snapshot.resources().iter().enumerate() {
            let ns = any.namespace();
            match any {
                AnyResource::VirtualService(res) => {
                    let fqdns = qualified(&res.spec.hosts, ns);
                    index.vs.push(Item {
                        order,
                        any,
                        res,
                        fqdns,
                    });
                }
                AnyResource::DestinationRule(res) => {
                    let fqdns = qualified(std::slice::from_ref(&res.spec.host), ns);
                    index.dr.push(Item {
                        order,
                        any,
                        res,
                        fqdns,
                    });
                }
                AnyResource::ServiceEntry(res) => {
                    let fqdns = qualified(&res.spec.hosts, ns);
                    index.se.push(Item {
                        order,
                        any,
                        res,
                        fqdns,
                    });
                }
                AnyResource::WorkloadEntry(res) => {
                    index.we.push(Item {
                        order,
                        any,
                        res,
                        fqdns: Vec::new(),
                    });
                }
                AnyResource::PeerAuthentication(res) => {
                    index.pa.push(Item {
                        order,
                        any,
                        res,
                        fqdns: Vec::new(),
                    });
                }
                AnyResource::Sidecar(res) => {
                    index.sc.push(Item {
                        order,
                        any,
                        res,
                        fqdns: Vec::new(),
                    });
                }
                AnyResource::AuthorizationPolicy(_) => {}
            }
        }
        index
    }
}

/// Resources by the qualified hosts they name, for lookups that stay fast with thousands of
/// services (`check` runs on every reload).
struct HostIndex<'a> {
    exact: HashMap<&'a str, Vec<usize>>,
    wildcards: Vec<(&'a str, usize)>,
}

impl<'a> HostIndex<'a> {
    fn new<T>(items: &'a [Item<'_, T>]) -> Self {
        let mut index = HostIndex {
            exact: HashMap::new(),
            wildcards: Vec::new(),
        };
        for (i, item) in items.iter().enumerate() {
            for host in &item.fqdns {
                if host.starts_with('*') {
                    index.wildcards.push((host, i));
                } else {
                    index.exact.entry(host).or_default().push(i);
                }
            }
        }
        index
    }

    /// Items whose host serves `host` (HOST-5); when `host` is itself a wildcard, items whose
    /// hosts overlap it.
    fn serving(&self, host: &str) -> Vec<usize> {
        let mut out: Vec<usize> = if host.starts_with('*') {
            let exact = self.exact.iter().filter(|(h, _)| host_matches(host, h));
            let wild = self
                .wildcards
                .iter()
                .filter(|(p, _)| hosts_overlap(p, host));
            exact
                .flat_map(|(_, items)| items.iter().copied())
                .chain(wild.map(|(_, i)| *i))
                .collect()
        } else {
            let exact = self.exact.get(host).into_iter().flatten().copied();
            let wild = self.wildcards.iter().filter(|(p, _)| host_matches(p, host));
            exact.chain(wild.map(|(_, i)| *i)).collect()
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Oldest first (HOST-9): by `creationTimestamp`, ties by namespace/name; resources without a
/// timestamp come after those with one, in load order.
pub(crate) fn age_cmp<T>(a: &Item<'_, T>, b: &Item<'_, T>) -> std::cmp::Ordering {
    let (ma, mb) = (&a.res.metadata, &b.res.metadata);
    match (&ma.creation_timestamp, &mb.creation_timestamp) {
        (Some(ta), Some(tb)) => ta
            .cmp(tb)
            .then_with(|| (a.ns(), a.res.name()).cmp(&(b.ns(), b.res.name())))
            .then(a.order.cmp(&b.order)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.order.cmp(&b.order),
    }
}

/// The namespaces a resource is visible to: `None` for all of them.
pub(crate) fn audience(export_to: &[String], ns: &str) -> Option<BTreeSet<String>> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return None;
    }
    Some(
        export_to
            .iter()
            .filter(|e| *e != "~")
            .map(|e| if e == "." { ns.to_owned() } else { e.clone() })
            .collect(),
    )
}

/// Whether some namespace sees both resources.
pub(crate) fn audiences_meet(a: &Option<BTreeSet<String>>, b: &Option<BTreeSet<String>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (None, Some(s)) | (Some(s), None) => !s.is_empty(),
        (Some(x), Some(y)) => x.intersection(y).next().is_some(),
    }
}

fn export_text(export_to: &[String]) -> String {
    format!("[{}]", export_to.join(", "))
}

/// Whether `labels` has every label of `selector`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Runs the cross-resource checks. With `errors_only` (the reload gate), only the checks that
/// can produce an error run: undefined subsets (MESH0101) and namespace-wide Sidecars
/// (MESH0502); the warning- and info-only checks are skipped rather than computed and dropped.
pub(crate) fn check<'s>(
    snapshot: &'s Snapshot,
    analyzer: &Analyzer,
    errors_only: bool,
    out: &mut Reporter<'s>,
) {
    let index = Index::new(snapshot);
    let services = HostIndex::new(&index.se);
    let rules = HostIndex::new(&index.dr);
    virtual_service_references(&index, &services, &rules, out);
    shadowing::sidecars(&index, out);
    if errors_only {
        return;
    }
    shadowing::duplicate_resources(snapshot, out);
    not_exported(&index, &analyzer.namespace, out);
    shadowing::duplicate_hosts(
        index
            .vs
            .iter()
            .filter(|v| applies_to_mesh(&v.res.spec))
            .collect(),
        |v: &Item<'_, VirtualService>| &v.res.spec.export_to,
        &codes::X_DUPLICATE_VS_HOST,
        (
            "VirtualService",
            "is also routed by",
            "this VirtualService's routes for it are ignored",
        ),
        out,
    );
    shadowing::duplicate_hosts(
        index.se.iter().collect(),
        |s: &Item<'_, ServiceEntry>| &s.res.spec.export_to,
        &codes::X_DUPLICATE_SE_HOST,
        (
            "ServiceEntry",
            "is also defined by",
            "this ServiceEntry is ignored for it",
        ),
        out,
    );
    destination_rules(&index, &services, out);
    workload_selection(&index, out);
    shadowing::peer_authentications(&index, &analyzer.root_namespace, out);
}

fn not_exported<'s>(index: &Index<'s>, proxy_ns: &str, out: &mut Reporter<'s>) {
    let items = index
        .vs
        .iter()
        .map(|i| (i.any, &i.res.spec.export_to))
        .chain(index.dr.iter().map(|i| (i.any, &i.res.spec.export_to)))
        .chain(index.se.iter().map(|i| (i.any, &i.res.spec.export_to)));
    for (any, export_to) in items {
        if !is_exported(export_to, any.namespace(), proxy_ns) {
            out.add(
                &codes::X_NOT_EXPORTED,
                any,
                "spec.exportTo",
                format!(
                    "exportTo {} does not include namespace {proxy_ns}: a proxy in namespace \
                     {proxy_ns} ignores this resource",
                    export_text(export_to)
                ),
            );
        }
    }
}

/// Where a destination sits in a VirtualService; the path is formatted only for a finding.
#[derive(Clone, Copy)]
enum At {
    Http(usize, usize),
    Mirror(usize),
    Mirrors(usize, usize),
    Tcp(usize, usize),
    Tls(usize, usize),
}

impl At {
    /// The path of field `field` of the destination.
    fn path(self, field: &str) -> String {
        match self {
            At::Http(i, k) => format!("spec.http[{i}].route[{k}].destination.{field}"),
            At::Mirror(i) => format!("spec.http[{i}].mirror.{field}"),
            At::Mirrors(i, k) => format!("spec.http[{i}].mirrors[{k}].destination.{field}"),
            At::Tcp(i, k) => format!("spec.tcp[{i}].route[{k}].destination.{field}"),
            At::Tls(i, k) => format!("spec.tls[{i}].route[{k}].destination.{field}"),
        }
    }
}

/// Every destination of a VirtualService.
fn destinations(vs: &VirtualService) -> impl Iterator<Item = (&Destination, At)> + '_ {
    let http = vs.http.iter().enumerate().flat_map(|(i, route)| {
        let routes = route
            .route
            .iter()
            .enumerate()
            .map(move |(k, d)| (&d.destination, At::Http(i, k)));
        let mirror = route.mirror.iter().map(move |m| (m, At::Mirror(i)));
        let mirrors = route
            .mirrors
            .iter()
            .enumerate()
            .map(move |(k, m)| (&m.destination, At::Mirrors(i, k)));
        routes.chain(mirror).chain(mirrors)
    });
    let tcp = vs.tcp.iter().enumerate().flat_map(|(i, route)| {
        route
            .route
            .iter()
            .enumerate()
            .map(move |(k, d)| (&d.destination, At::Tcp(i, k)))
    });
    let tls = vs.tls.iter().enumerate().flat_map(|(i, route)| {
        route
            .route
            .iter()
            .enumerate()
            .map(move |(k, d)| (&d.destination, At::Tls(i, k)))
    });
    http.chain(tcp).chain(tls)
}

fn virtual_service_references<'s>(
    index: &Index<'s>,
    services: &HostIndex<'_>,
    rules: &HostIndex<'_>,
    out: &mut Reporter<'s>,
) {
    for vs in index.vs.iter().filter(|v| applies_to_mesh(&v.res.spec)) {
        let ns = vs.ns();
        for (dest, at) in destinations(&vs.res.spec) {
            if dest.host.is_empty() || dest.host == "*" {
                continue;
            }
            let fqdn = qualify(&dest.host, ns);
            let serving: Vec<_> = services
                .serving(&fqdn)
                .into_iter()
                .map(|i| &index.se[i])
                .collect();
            let visible = serving
                .iter()
                .any(|se| is_exported(&se.res.spec.export_to, se.ns(), ns));
            if !visible {
                match serving.first() {
                    Some(hidden) => out.add(
                        &codes::X_EXPORT_HIDES,
                        vs.any,
                        at.path("host"),
                        format!(
                            "ServiceEntry {}/{} defines {fqdn} but its exportTo {} hides it from \
                             namespace {ns}, where this VirtualService routes to it",
                            hidden.ns(),
                            hidden.res.name(),
                            export_text(&hidden.res.spec.export_to)
                        ),
                    ),
                    None => out.add(
                        &codes::VS_HOST_NOT_FOUND,
                        vs.any,
                        at.path("host"),
                        format!(
                            "destination host {fqdn} is not defined by any ServiceEntry: requests \
                             routed there get 503 (HOST-11)"
                        ),
                    ),
                }
            }
            if dest.subset.is_empty() {
                continue;
            }
            let defining: Vec<_> = rules
                .serving(&fqdn)
                .into_iter()
                .map(|i| &index.dr[i])
                .filter(|dr| dr.res.spec.subsets.iter().any(|s| s.name == dest.subset))
                .collect();
            if defining
                .iter()
                .any(|dr| is_exported(&dr.res.spec.export_to, dr.ns(), ns))
            {
                continue;
            }
            match defining.first() {
                Some(hidden) => out.add(
                    &codes::X_EXPORT_HIDES,
                    vs.any,
                    at.path("subset"),
                    format!(
                        "DestinationRule {}/{} defines subset {:?} but its exportTo {} hides it \
                         from namespace {ns}, where this VirtualService uses it",
                        hidden.ns(),
                        hidden.res.name(),
                        dest.subset,
                        export_text(&hidden.res.spec.export_to)
                    ),
                ),
                None => out.add(
                    &codes::VS_SUBSET_NOT_FOUND,
                    vs.any,
                    at.path("subset"),
                    format!(
                        "subset {:?} is not defined in any DestinationRule for {fqdn}",
                        dest.subset
                    ),
                ),
            }
        }
    }
}

/// Endpoint label sets of the services serving `pattern`; `None` when some serving service
/// finds its endpoints at run time (resolution NONE, or DNS of its own host names).
fn endpoint_labels<'a>(
    workloads: &HashMap<&str, Vec<&'a Item<'_, WorkloadEntry>>>,
    serving: &[&'a Item<'_, ServiceEntry>],
) -> Option<Vec<&'a BTreeMap<String, String>>> {
    let mut labels = Vec::new();
    for se in serving {
        let spec = &se.res.spec;
        if let Some(selector) = &spec.workload_selector {
            let in_ns = workloads.get(se.ns()).into_iter().flatten();
            labels.extend(
                in_ns
                    .filter(|we| selects(&selector.labels, &we.res.spec.labels))
                    .map(|we| &we.res.spec.labels),
            );
        } else if spec.resolution != Resolution::None && !spec.endpoints.is_empty() {
            labels.extend(spec.endpoints.iter().map(|e| &e.labels));
        } else {
            return None;
        }
    }
    Some(labels)
}

/// WorkloadEntries by namespace.
fn workloads_by_namespace<'a, 's>(
    index: &'a Index<'s>,
) -> HashMap<&'a str, Vec<&'a Item<'s, WorkloadEntry>>> {
    let mut out: HashMap<&str, Vec<_>> = HashMap::new();
    for we in &index.we {
        out.entry(we.ns()).or_default().push(we);
    }
    out
}

fn destination_rules<'s>(index: &Index<'s>, services: &HostIndex<'_>, out: &mut Reporter<'s>) {
    let workloads = workloads_by_namespace(index);
    for dr in &index.dr {
        let spec = &dr.res.spec;
        let Some(fqdn) = dr.fqdns.first() else {
            continue;
        };
        let serving: Vec<_> = services
            .serving(fqdn)
            .into_iter()
            .map(|i| &index.se[i])
            .collect();
        if serving.is_empty() {
            out.add(
                &codes::DR_HOST_NOT_FOUND,
                dr.any,
                "spec.host",
                format!(
                    "host {fqdn} is not defined by any ServiceEntry: the DestinationRule applies \
                     to nothing (DR-5)"
                ),
            );
            continue;
        }
        let Some(endpoints) = endpoint_labels(&workloads, &serving) else {
            continue;
        };
        for (i, subset) in spec.subsets.iter().enumerate() {
            let selected = endpoints.iter().any(|l| selects(&subset.labels, l));
            if subset.name.is_empty() || subset.labels.is_empty() || selected {
                continue;
            }
            out.add(
                &codes::DR_SUBSET_NO_ENDPOINTS,
                dr.any,
                format!("spec.subsets[{i}].labels"),
                format!(
                    "subset {:?} selects no endpoint of {fqdn} (labels {}): requests to it get \
                     503 no healthy upstream",
                    subset.name,
                    labels_text(&subset.labels)
                ),
            );
        }
    }
}

fn workload_selection<'s>(index: &Index<'s>, out: &mut Reporter<'s>) {
    let mut selectors: HashMap<&str, Vec<&BTreeMap<String, String>>> = HashMap::new();
    for se in &index.se {
        if let Some(selector) = &se.res.spec.workload_selector {
            selectors.entry(se.ns()).or_default().push(&selector.labels);
        }
    }
    let workloads = workloads_by_namespace(index);
    for we in &index.we {
        let selected = selectors
            .get(we.ns())
            .into_iter()
            .flatten()
            .any(|s| selects(s, &we.res.spec.labels));
        if !selected {
            out.add(
                &codes::WE_UNSELECTED,
                we.any,
                "",
                format!(
                    "no ServiceEntry in namespace {} selects this WorkloadEntry: it has no effect \
                     (WE-1)",
                    we.ns()
                ),
            );
        }
    }
    for se in &index.se {
        let Some(selector) = &se.res.spec.workload_selector else {
            continue;
        };
        if se.res.spec.resolution == Resolution::None {
            continue; // the selector is ignored (MESH0309)
        }
        let any = workloads
            .get(se.ns())
            .into_iter()
            .flatten()
            .any(|we| selects(&selector.labels, &we.res.spec.labels));
        if !any {
            out.add(
                &codes::SE_SELECTOR_EMPTY,
                se.any,
                "spec.workloadSelector",
                format!(
                    "workloadSelector {} selects no WorkloadEntry in namespace {}: the service \
                     has no endpoints (SE-5)",
                    labels_text(&selector.labels),
                    se.ns()
                ),
            );
        }
    }
}
