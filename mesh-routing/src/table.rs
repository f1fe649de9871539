//! The route table: a snapshot's VirtualServices, DestinationRules and services compiled once
//! for one proxy (SEMANTICS §1, §2, §4.1–4.2).
//!
//! Compiling does all the work that does not depend on the request:
//!
//! - **virtual hosts**: one per service in the registry and per VirtualService host that is not
//!   a service (HOST-11). The oldest VirtualService owns a host; later ones are ignored for it
//!   (HOST-9). VirtualServices not exported to this proxy's namespace (HOST-8) or bound only to
//!   gateways (HOST-10) are skipped;
//! - **host index**: every name a request may use for a virtual host, in lower case — the FQDN,
//!   `name.ns.svc`, `name.ns`, and the bare `name` when the service is in this proxy's namespace
//!   (HOST-3) — in one hash map, plus wildcard patterns most specific first (HOST-5);
//! - **routes**: match blocks with their regexes compiled, blocks for other proxies dropped
//!   (VS-12), actions, header edit plans, faults, CORS and mirrors;
//! - **destinations**: hosts qualified relative to the VirtualService's namespace (HOST-1),
//!   subsets resolved to the registry's subset clusters (VS-16), each cluster with its balancer
//!   compiled from the effective DestinationRule policy (DR-3, DR-4, DR-6).
//!
//! At request time [`RouteTable::find`] does one hash lookup (or a wildcard scan), checks that
//! a service host listens on the request's port (HOST-6: Istio keeps one route table per port),
//! and walks the host's routes in order (VS-1); it allocates nothing.
//!
//! ```
//! use mesh_core::loader::parse_str;
//! use mesh_core::registry::{Registry, Scope};
//! use mesh_core::Snapshot;
//! use mesh_routing::matcher::RequestView;
//! use mesh_routing::table::{Lookup, RouteTable};
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: reviews, namespace: prod}
//! spec:
//!   hosts: [reviews]
//!   ports: [{number: 9080, name: http}]
//!   resolution: STATIC
//!   endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: prod}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - match: [{uri: {prefix: /api}}]
//!     route: [{destination: {host: reviews}}]
//! "#;
//! let snapshot = Snapshot::new(parse_str(yaml, std::path::Path::new("mesh.yaml"), "prod").unwrap());
//! let scope = Scope::new("prod");
//! let registry = Registry::build(&snapshot, &scope);
//! let table = RouteTable::compile(&snapshot, &registry, &scope).unwrap();
//!
//! let req = http::Request::get("/api/x").header("host", "reviews:9080").body(()).unwrap();
//! let view = RequestView::new(&req, 9080);
//! assert!(matches!(table.find(&view), Lookup::Matched(_)));
//! let req = http::Request::get("/other").header("host", "reviews:9080").body(()).unwrap();
//! assert!(matches!(table.find(&RequestView::new(&req, 9080)), Lookup::NoRouteMatched(_)));
//! // A port the service does not listen on: no virtual host at all (HOST-6).
//! assert!(matches!(table.find(&RequestView::new(&req, 80)), Lookup::UnknownHost));
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use mesh_core::Snapshot;
use mesh_core::hosts::{self, CLUSTER_DOMAIN, host_matches, is_wildcard};
use mesh_core::model::{Destination, HttpRoute, Resource, VirtualService};
use mesh_core::registry::{Registry, Scope, Service, is_exported};

use crate::Error;
use crate::balance::LoadBalancer;
use crate::cors::Cors;
use crate::fault::Fault;
use crate::headers::{HeaderEdits, InvalidHeader};
use crate::matcher::{CompileContext, MatchBlock, ProxyIdentity, RequestView, UriMatched};
use crate::rewrite::{DirectResponse, Redirect, UriRewrite};
use crate::route::{
    Action, Mirror, Route, Target, Upstream, VirtualServiceRef, WeightedDestination,
};

/// A virtual host: a service or VirtualService host with its ordered routes.
#[derive(Debug)]
pub struct VirtualHost {
    /// The host: an FQDN, or a wildcard pattern.
    pub name: Arc<str>,
    /// The registry service, if the host is one.
    pub service: Option<Arc<Service>>,
    /// The VirtualService that owns the host, if any.
    pub virtual_service: Option<Arc<VirtualServiceRef>>,
    /// Routes in order (VS-1).
    pub routes: Arc<[Arc<Route>]>,
}

/// The result of looking a request up.
#[derive(Debug)]
pub enum Lookup<'t> {
    /// No virtual host for the request's host: 404 `NR` (HOST-7, VS-13).
    UnknownHost,
    /// The host is known but no route matched: 404 `NR` (VS-13).
    NoRouteMatched(&'t VirtualHost),
    /// A route matched.
    Matched(Matched<'t>),
}

impl Lookup<'_> {
    /// Whether a route matched.
    pub fn is_matched(&self) -> bool {
        matches!(self, Lookup::Matched(_))
    }
}

/// A matched route.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'t> {
    /// The virtual host.
    pub host: &'t VirtualHost,
    /// The route that matched first (VS-1).
    pub route: &'t Arc<Route>,
    /// Index of the matched block (`None` for a route without match blocks).
    pub block: Option<usize>,
    /// How the uri condition matched (for rewrites, VS-19).
    pub uri: UriMatched,
}

/// The compiled routing configuration of one snapshot for one proxy.
#[derive(Debug)]
pub struct RouteTable {
    version: String,
    hosts: HashMap<Box<str>, usize>,
    wildcards: Vec<(Box<str>, usize)>,
    vhosts: Vec<VirtualHost>,
    registry_namespace: String,
}

/// A case-folded copy of a request host in a stack buffer: no allocation (host names are at
/// most 253 bytes; longer ones cannot be known hosts).
struct HostBuf {
    buf: [u8; 256],
    len: usize,
}

impl HostBuf {
    fn new(authority: &str) -> Option<Self> {
        let host = hosts::strip_port(authority).trim_end_matches('.');
        if host.len() > 256 {
            return None;
        }
        let mut buf = [0u8; 256];
        for (d, s) in buf.iter_mut().zip(host.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        Some(Self {
            buf,
            len: host.len(),
        })
    }

    fn as_str(&self) -> &str {
        // Lower-casing ASCII bytes of a `str` keeps it valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl RouteTable {
    /// Compiles `snapshot` for the proxy described by `scope`, against `registry` (built from
    /// the same snapshot and scope).
    pub fn compile(snapshot: &Snapshot, registry: &Registry, scope: &Scope) -> Result<Self, Error> {
        Compiler::new(registry, scope).run(snapshot)
    }

    /// The snapshot version this table was compiled from.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The virtual host a request authority (`Host` / `:authority`, port ignored, HOST-6)
    /// names: exact names and aliases first, then the most specific wildcard (HOST-5).
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let buf = HostBuf::new(authority)?;
        let host = buf.as_str();
        if host.is_empty() {
            return None;
        }
        if let Some(&i) = self.hosts.get(host) {
            return Some(&self.vhosts[i]);
        }
        if let Some((_, i)) = self.wildcards.iter().find(|(p, _)| host_matches(p, host)) {
            return Some(&self.vhosts[*i]);
        }
        None
    }

    /// Looks up the request's virtual host and its first matching route (VS-1, VS-13).
    pub fn find<'t>(&'t self, req: &RequestView<'_>) -> Lookup<'t> {
        let Some(host) = self.virtual_host(req.authority) else {
            return Lookup::UnknownHost;
        };
        // A service's routes exist only on its own ports (Istio builds one route table per
        // port): `Host: ratings` sent to port 80 misses a service that listens on 9080 (HOST-6).
        if let Some(service) = &host.service
            && service.cluster(u32::from(req.port)).is_none()
        {
            return Lookup::UnknownHost;
        }
        for route in host.routes.iter() {
            if let Some((block, uri)) = route.matches(req) {
                return Lookup::Matched(Matched {
                    host,
                    route,
                    block,
                    uri,
                });
            }
        }
        Lookup::NoRouteMatched(host)
    }

    /// Every virtual host.
    pub fn virtual_hosts(&self) -> &[VirtualHost] {
        &self.vhosts
    }

    /// The namespace the table was compiled for.
    pub fn namespace(&self) -> &str {
        &self.registry_namespace
    }
}

/// A VirtualService compiled: its reference and its routes, shared by its hosts.
type CompiledVs = (Arc<VirtualServiceRef>, Arc<[Arc<Route>]>);

/// State of one compilation.
struct Compiler<'a> {
    registry: &'a Registry,
    scope: &'a Scope,
    balancers: HashMap<String, Arc<LoadBalancer>>,
}

impl<'a> Compiler<'a> {
    fn new(registry: &'a Registry, scope: &'a Scope) -> Self {
        Self {
            registry,
            scope,
            balancers: HashMap::new(),
        }
    }

    fn run(mut self, snapshot: &Snapshot) -> Result<RouteTable, Error> {
        let proxy = ProxyIdentity {
            namespace: &self.scope.namespace,
            labels: &self.scope.labels,
        };
        // Visible, sidecar-bound VirtualServices, oldest first (HOST-8, HOST-9, HOST-10).
        let mut vss: Vec<&Resource<VirtualService>> = snapshot
            .virtual_services()
            .filter(|vs| {
                is_exported(&vs.spec.export_to, vs.namespace(), &self.scope.namespace)
                    && (vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh"))
            })
            .collect();
        vss.sort_by(|a, b| mesh_core::registry::creation_order(a, b));

        // Host → owning VirtualService (first = oldest wins, HOST-9).
        let mut owner: HashMap<String, usize> = HashMap::new();
        let mut wildcard_owner: Vec<(String, usize)> = Vec::new();
        for (i, vs) in vss.iter().enumerate() {
            for h in &vs.spec.hosts {
                let host = hosts::qualify(h, vs.namespace());
                if is_wildcard(&host) {
                    if !wildcard_owner.iter().any(|(p, _)| *p == host) {
                        wildcard_owner.push((host, i));
                    }
                } else {
                    owner.entry(host).or_insert(i);
                }
            }
        }
        // Most specific wildcard first; `*` last.
        wildcard_owner.sort_by_key(|(p, _)| std::cmp::Reverse(wildcard_rank(p)));

        // Routes per VirtualService, compiled once and shared by every host that uses them.
        let mut compiled: Vec<Option<CompiledVs>> = vec![None; vss.len()];
        let mut routes_of = |i: usize, this: &mut Self| -> Result<_, Error> {
            if let Some(c) = &compiled[i] {
                return Ok(c.clone());
            }
            let c = this.compile_vs(vss[i], &proxy)?;
            compiled[i] = Some(c.clone());
            Ok(c)
        };

        let mut vhosts = Vec::new();
        let mut hosts: HashMap<Box<str>, usize> = HashMap::new();
        let mut wildcards: Vec<(Box<str>, usize)> = Vec::new();
        let mut seen_vs_hosts: std::collections::HashSet<String> = Default::default();

        // One virtual host per service (HOST-13-style implicit route when no VS owns it).
        for service in self.registry.services() {
            let vs_index = owner.get(&service.host).copied().or_else(|| {
                wildcard_owner
                    .iter()
                    .find(|(p, _)| *p == service.host || host_matches(p, &service.host))
                    .map(|(_, i)| *i)
            });
            let (vs_ref, routes) = match vs_index {
                Some(i) => {
                    let (r, routes) = routes_of(i, &mut self)?;
                    (Some(r), routes)
                }
                None => (None, self.default_routes(service)),
            };
            seen_vs_hosts.insert(service.host.clone());
            let index = vhosts.len();
            vhosts.push(VirtualHost {
                name: Arc::from(service.host.as_str()),
                service: Some(Arc::clone(service)),
                virtual_service: vs_ref,
                routes,
            });
            if is_wildcard(&service.host) {
                wildcards.push((service.host.clone().into_boxed_str(), index));
            } else {
                hosts
                    .entry(service.host.clone().into_boxed_str())
                    .or_insert(index);
            }
        }
        // VirtualService hosts that are not services still get their routes (HOST-11).
        let mut vs_only: Vec<(String, usize)> = owner
            .iter()
            .filter(|(h, _)| !seen_vs_hosts.contains(*h))
            .map(|(h, i)| (h.clone(), *i))
            .collect();
        vs_only.sort();
        vs_only.extend(
            wildcard_owner
                .iter()
                .filter(|(h, _)| !seen_vs_hosts.contains(h))
                .cloned(),
        );
        for (host, i) in vs_only {
            let (vs_ref, routes) = routes_of(i, &mut self)?;
            let index = vhosts.len();
            vhosts.push(VirtualHost {
                name: Arc::from(host.as_str()),
                service: None,
                virtual_service: Some(vs_ref),
                routes,
            });
            if is_wildcard(&host) {
                wildcards.push((host.into_boxed_str(), index));
            } else {
                hosts.entry(host.into_boxed_str()).or_insert(index);
            }
        }
        // Request-side aliases (HOST-3), never displacing a real name.
        let aliases: Vec<(String, usize)> = vhosts
            .iter()
            .enumerate()
            .flat_map(|(i, v)| aliases(&v.name, &self.scope.namespace).map(move |a| (a, i)))
            .collect();
        for (alias, i) in aliases {
            hosts.entry(alias.into_boxed_str()).or_insert(i);
        }
        // An IP literal that a visible ServiceEntry lists in `addresses` names that entry's
        // service (HOST-7); the registry decides which service owns an address.
        for se in snapshot.service_entries() {
            for address in &se.spec.addresses {
                let Ok(ip) = address.parse::<std::net::IpAddr>() else {
                    continue;
                };
                let ip = ip.to_string();
                let Some(service) = self.registry.lookup(&ip, &self.scope.namespace) else {
                    continue;
                };
                if let Some(i) = vhosts
                    .iter()
                    .position(|v| v.service.as_ref().is_some_and(|s| Arc::ptr_eq(s, service)))
                {
                    hosts.entry(ip.into_boxed_str()).or_insert(i);
                }
            }
        }
        wildcards.sort_by_key(|(p, _)| std::cmp::Reverse(wildcard_rank(p)));
        Ok(RouteTable {
            version: snapshot.version().to_owned(),
            hosts,
            wildcards,
            vhosts,
            registry_namespace: self.scope.namespace.clone(),
        })
    }

    fn default_routes(&mut self, service: &Arc<Service>) -> Arc<[Arc<Route>]> {
        let target = self.target_for_service(service, None, None);
        let name: Arc<str> = Arc::from("default");
        Arc::from(vec![Arc::new(Route {
            index: 0,
            name: Arc::clone(&name),
            block_names: vec![name],
            virtual_service: None,
            matches: Vec::new(),
            never_matches: false,
            action: Action::Forward {
                destinations: vec![WeightedDestination {
                    host: Arc::from(service.host.as_str()),
                    subset: None,
                    port: None,
                    weight: 100,
                    target,
                    request_edits: HeaderEdits::default(),
                    response_edits: HeaderEdits::default(),
                }],
                total_weight: 100,
                rewrite: None,
                authority: None,
            },
            fault: None,
            cors: None,
            mirrors: Vec::new(),
            timeout: None,
            retries: None,
            local_response_edits: HeaderEdits::default(),
        })])
    }

    fn compile_vs(
        &mut self,
        vs: &Resource<VirtualService>,
        proxy: &ProxyIdentity<'_>,
    ) -> Result<CompiledVs, Error> {
        let vs_ref = Arc::new(VirtualServiceRef {
            namespace: vs.namespace().to_owned(),
            name: vs.name().to_owned(),
            location: vs.source.clone(),
        });
        let resource = format!("VirtualService {}/{}", vs.namespace(), vs.name());
        let ctx = CompileContext {
            location: &vs.source,
            resource: &resource,
        };
        let mut routes = Vec::with_capacity(vs.spec.http.len());
        for (index, http) in vs.spec.http.iter().enumerate() {
            let route = self.compile_route(vs, &vs_ref, index, http, proxy, &ctx)?;
            routes.push(Arc::new(route));
        }
        Ok((vs_ref, Arc::from(routes)))
    }

    fn compile_route(
        &mut self,
        vs: &Resource<VirtualService>,
        vs_ref: &Arc<VirtualServiceRef>,
        index: usize,
        http: &HttpRoute,
        proxy: &ProxyIdentity<'_>,
        ctx: &CompileContext<'_>,
    ) -> Result<Route, Error> {
        let header_error = |e: InvalidHeader| Error::InvalidHeader {
            location: ctx.location.clone(),
            resource: ctx.resource.to_owned(),
            name: e.name,
            reason: e.reason,
        };
        let mut matches = Vec::with_capacity(http.r#match.len());
        let mut block_names = Vec::new();
        for m in &http.r#match {
            if let Some(block) = MatchBlock::compile(m, proxy, ctx)? {
                block_names.push(route_name(&http.name, &m.name));
                matches.push(block);
            }
        }
        let never_matches = !http.r#match.is_empty() && matches.is_empty();
        if block_names.is_empty() {
            block_names.push(route_name(&http.name, ""));
        }
        let ns = vs.namespace();
        let route_headers = http.headers.as_ref();
        let action = if let Some(r) = &http.redirect {
            Action::Redirect(Redirect::from_config(r))
        } else if let Some(d) = &http.direct_response {
            Action::DirectResponse(DirectResponse::from_config(d))
        } else if http.delegate.is_some() {
            Action::Unsupported("delegate")
        } else {
            let single = http.route.len() == 1;
            let mut destinations = Vec::with_capacity(http.route.len());
            let mut total_weight = 0u64;
            for rd in &http.route {
                let dest_headers = rd.headers.as_ref();
                let (request_edits, response_edits) = HeaderEdits::plan(
                    route_headers.and_then(|h| h.request.as_ref()),
                    dest_headers.and_then(|h| h.request.as_ref()),
                    route_headers.and_then(|h| h.response.as_ref()),
                    dest_headers.and_then(|h| h.response.as_ref()),
                    single,
                )
                .map_err(header_error)?;
                let weight = u32::try_from(rd.weight.max(0)).unwrap_or(0);
                total_weight += u64::from(weight);
                let (host, subset, port, target) = self.destination(&rd.destination, ns);
                destinations.push(WeightedDestination {
                    host,
                    subset,
                    port,
                    weight,
                    target,
                    request_edits,
                    response_edits,
                });
            }
            let rewrite = match &http.rewrite {
                Some(r) => UriRewrite::from_config(r, ctx)?,
                None => None,
            };
            let authority = match http.rewrite.as_ref().map(|r| r.authority.as_str()) {
                Some(a) if !a.is_empty() => Some(http::uri::Authority::try_from(a).map_err(
                    |e| Error::InvalidHeader {
                        location: ctx.location.clone(),
                        resource: ctx.resource.to_owned(),
                        name: "rewrite.authority".into(),
                        reason: e.to_string(),
                    },
                )?),
                _ => None,
            };
            Action::Forward {
                destinations,
                total_weight,
                rewrite,
                authority,
            }
        };
        let local_response_edits =
            HeaderEdits::single_level(route_headers.and_then(|h| h.response.as_ref()))
                .map_err(header_error)?;
        let cors = match &http.cors_policy {
            Some(c) => Some(Cors::from_config(c, ctx)?),
            None => None,
        };
        let fault = http
            .fault
            .as_ref()
            .map(Fault::from_config)
            .filter(Fault::is_active);
        let mut mirrors = Vec::new();
        if let Some(m) = &http.mirror {
            let percent = match (&http.mirror_percentage, http.mirror_percent) {
                (Some(p), _) => p.value,
                (None, Some(p)) => f64::from(p),
                (None, None) => 100.0,
            };
            mirrors.push(self.mirror(m, ns, percent));
        }
        for m in &http.mirrors {
            let percent = m.percentage.as_ref().map_or(100.0, |p| p.value);
            mirrors.push(self.mirror(&m.destination, ns, percent));
        }
        mirrors.retain(|m| m.percent > 0.0);
        let timeout = http.timeout.map(|t| t.as_std()).filter(|t| !t.is_zero());
        Ok(Route {
            index,
            name: Arc::from(http.name.as_str()),
            block_names,
            virtual_service: Some(Arc::clone(vs_ref)),
            matches,
            never_matches,
            action,
            fault,
            cors,
            mirrors,
            timeout,
            retries: http.retries.clone().map(Arc::new),
            local_response_edits,
        })
    }

    fn mirror(&mut self, dest: &Destination, ns: &str, percent: f64) -> Mirror {
        let (host, subset, _, target) = self.destination(dest, ns);
        Mirror {
            host,
            subset,
            target,
            percent,
        }
    }

    /// Resolves a destination written in a resource of namespace `ns` (HOST-1).
    fn destination(
        &mut self,
        dest: &Destination,
        ns: &str,
    ) -> (Arc<str>, Option<Arc<str>>, Option<u32>, Target) {
        let host = hosts::qualify(&dest.host, ns);
        let subset = (!dest.subset.is_empty()).then(|| Arc::from(dest.subset.as_str()));
        let port = dest.port.as_ref().map(|p| p.number).filter(|&p| p > 0);
        let service = self
            .registry
            .get(&host)
            .or_else(|| self.registry.lookup(&host, &self.scope.namespace))
            .cloned();
        let target = match service {
            Some(s) => self.target_for_service(&s, subset.as_deref(), port),
            None => Target::Unknown,
        };
        (Arc::from(host.as_str()), subset, port, target)
    }

    fn target_for_service(
        &mut self,
        service: &Arc<Service>,
        subset: Option<&str>,
        port: Option<u32>,
    ) -> Target {
        let mut clusters = Vec::new();
        for base in service.clusters() {
            if port.is_some_and(|p| p != base.port()) {
                continue;
            }
            let cluster = match subset {
                Some(s) => match service.subset_cluster(base.port(), s) {
                    Some(c) => c,
                    None => continue,
                },
                None => base,
            };
            let balancer = self.balancer(cluster);
            clusters.push((
                base.port(),
                Upstream {
                    cluster: Arc::clone(cluster),
                    balancer,
                },
            ));
        }
        Target::Service {
            service: Arc::clone(service),
            clusters,
            port,
        }
    }

    /// One balancer per cluster, shared by every route that sends there.
    fn balancer(&mut self, cluster: &Arc<mesh_core::registry::Cluster>) -> Arc<LoadBalancer> {
        if let Some(b) = self.balancers.get(cluster.name()) {
            return Arc::clone(b);
        }
        let policy = cluster.policy();
        let b = Arc::new(LoadBalancer::from_policy(
            policy.load_balancer.as_ref(),
            policy.outlier_detection.as_ref(),
        ));
        // Build the ring / table / schedule now, not on the first request.
        b.prepare(&cluster.endpoints());
        self.balancers
            .insert(cluster.name().to_owned(), Arc::clone(&b));
        b
    }
}

/// LOG-2: `http[].name` and `match[].name` joined with `.`.
fn route_name(route: &str, block: &str) -> Arc<str> {
    match (route.is_empty(), block.is_empty()) {
        (_, true) => Arc::from(route),
        (true, false) => Arc::from(format!(".{block}")),
        (false, false) => Arc::from(format!("{route}.{block}")),
    }
}

/// Sort key of a wildcard pattern: longer suffix = more specific; `*` least.
fn wildcard_rank(pattern: &str) -> usize {
    if pattern == "*" { 0 } else { pattern.len() }
}

/// The request-side names of a Kubernetes-style FQDN for a proxy in `proxy_ns` (HOST-3).
fn aliases<'h>(fqdn: &'h str, proxy_ns: &'h str) -> impl Iterator<Item = String> + 'h {
    let suffix = format!(".svc.{CLUSTER_DOMAIN}");
    let mut out = Vec::new();
    if let Some(stem) = fqdn.strip_suffix(suffix.as_str())
        && let Some((name, ns)) = stem.split_once('.')
        && !ns.contains('.')
        && !name.contains('*')
    {
        out.push(format!("{name}.{ns}.svc"));
        out.push(format!("{name}.{ns}"));
        if ns == proxy_ns {
            out.push(name.to_owned());
        }
    }
    out.into_iter()
}
