//! Why a request goes where it goes: the routing decision replayed step by step.
//!
//! [`explain`] walks the same steps as [`crate::decide`] — host lookup, each route in order
//! with the reason it matched or not, the action, the weighted destinations, the cluster and
//! its subset labels and endpoints, and the policies that will apply — and returns them as
//! data that `mesh-proxy explain` prints as text or JSON (DESIGN.md's `explain` format). Rule
//! ids (`VS-1`, `HOST-9`, …) in the reasons point into SEMANTICS.md.
//!
//! ```
//! use mesh_core::loader::parse_str;
//! use mesh_core::registry::{Registry, Scope};
//! use mesh_core::Snapshot;
//! use mesh_routing::{explain::explain, RouteTable};
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.com]
//!   ports: [{number: 80, name: http}]
//!   resolution: STATIC
//!   endpoints: [{address: 127.0.0.1}]
//! "#;
//! let snapshot = Snapshot::new(parse_str(yaml, std::path::Path::new("mesh.yaml"), "default").unwrap());
//! let scope = Scope::new("default");
//! let registry = Registry::build(&snapshot, &scope);
//! let table = RouteTable::compile(&snapshot, &registry, &scope).unwrap();
//! let req = http::Request::get("http://api.example.com/x").body(()).unwrap();
//! let e = explain(&table, &registry, &req, 80, None);
//! assert_eq!(e.route.as_ref().unwrap().name, "default");
//! assert_eq!(e.destination.as_ref().unwrap().cluster.as_deref(), Some("outbound|80||api.example.com"));
//! ```

use std::collections::BTreeMap;

use http::Request;
use mesh_core::endpoint::Health;
use mesh_core::model::Location;
use mesh_core::registry::Registry;
use mesh_core::validate::SourceMap;
use serde::Serialize;

use crate::matcher::RequestView;
use crate::route::{Action, NoCluster, Route, Target, WeightedDestination};
use crate::table::RouteTable;

/// A source position for output.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Source {
    /// File.
    pub file: String,
    /// 1-based line.
    pub line: u32,
}

impl From<&Location> for Source {
    fn from(l: &Location) -> Self {
        Self {
            file: l.file.display().to_string(),
            line: l.line,
        }
    }
}

/// The host lookup.
#[derive(Clone, Debug, Serialize)]
pub struct HostStep {
    /// The authority the request named.
    pub requested: String,
    /// The virtual host it resolved to, if any.
    pub virtual_host: Option<String>,
    /// Whether that host is a registry service.
    pub service: Option<String>,
    /// How it was found or why not.
    pub why: String,
}

/// The VirtualService that owns the host.
#[derive(Clone, Debug, Serialize)]
pub struct VirtualServiceStep {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// File of the resource.
    pub file: String,
    /// Line of the resource.
    pub line: u32,
}

/// One route considered.
#[derive(Clone, Debug, Serialize)]
pub struct Considered {
    /// Index in `http`.
    pub index: usize,
    /// Route name (LOG-2).
    pub name: String,
    /// Whether it matched.
    pub matched: bool,
    /// Why.
    pub why: String,
    /// Where the route is written.
    pub source: Option<Source>,
}

/// The route that matched.
#[derive(Clone, Debug, Serialize)]
pub struct RouteStep {
    /// Index in `http` (0 for the implicit default route).
    pub index: usize,
    /// Route name (LOG-2).
    pub name: String,
    /// What it does.
    pub action: String,
    /// Where the route is written.
    pub source: Option<Source>,
}

/// One weighted destination.
#[derive(Clone, Debug, Serialize)]
pub struct WeightStep {
    /// Host (FQDN).
    pub host: String,
    /// Subset.
    pub subset: Option<String>,
    /// Port, when configured.
    pub port: Option<u32>,
    /// Share of requests, in percent.
    pub percent: f64,
}

/// The destination, its cluster and subset.
#[derive(Clone, Debug, Serialize)]
pub struct DestinationStep {
    /// Host (FQDN).
    pub host: String,
    /// Subset.
    pub subset: Option<String>,
    /// Port used.
    pub port: Option<u32>,
    /// The cluster, when it exists.
    pub cluster: Option<String>,
    /// The subset's labels (DR-1).
    pub subset_labels: BTreeMap<String, String>,
    /// The DestinationRule that applies (HOST-12), `namespace/name`.
    pub destination_rule: Option<String>,
    /// Where that DestinationRule is written.
    pub destination_rule_source: Option<Source>,
    /// Why the request would fail here, if it would.
    pub problem: Option<String>,
}

/// One endpoint of the cluster.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointStep {
    /// Address.
    pub address: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Health (`healthy` / `failed_outlier_check`).
    pub health: String,
    /// Balancer weight.
    pub weight: u32,
}

/// The policies that will apply.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Policies {
    /// Route timeout.
    pub timeout: String,
    /// Retries.
    pub retries: String,
    /// Load balancer of the cluster.
    pub load_balancer: Option<String>,
    /// Fault injection.
    pub fault: Option<String>,
    /// Mirrors.
    pub mirror: Vec<String>,
    /// Rewrite.
    pub rewrite: Option<String>,
    /// Request header edits for the destination shown.
    pub request_headers: Vec<String>,
    /// Response header edits for the destination shown.
    pub response_headers: Vec<String>,
    /// CORS.
    pub cors: bool,
}

/// The whole explanation (DESIGN.md `explain -o json`).
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// `METHOD URL` as given.
    pub request: String,
    /// The host lookup.
    pub host: HostStep,
    /// The VirtualService, if any.
    pub virtual_service: Option<VirtualServiceStep>,
    /// The routes considered, in order, up to the first match (VS-1).
    pub considered: Vec<Considered>,
    /// The route that matched.
    pub route: Option<RouteStep>,
    /// Every weighted destination of the route.
    pub destinations: Vec<WeightStep>,
    /// The destination shown (the only one, or the heaviest; weights are drawn per request).
    pub destination: Option<DestinationStep>,
    /// The cluster's endpoints.
    pub endpoints: Vec<EndpointStep>,
    /// Policies.
    pub policies: Policies,
    /// The outcome in one line (`forward to …`, `404 NR`, `redirect 301 …`).
    pub outcome: String,
    /// Authorization (filled in by the identity layer; `null` until then).
    pub authz: Option<serde_json::Value>,
}

/// Explains how `table` routes `req` (destination port `port`). `sources`, when given, finds
/// each route's own line in the YAML files.
pub fn explain<B>(
    table: &RouteTable,
    registry: &Registry,
    req: &Request<B>,
    port: u16,
    mut sources: Option<&mut SourceMap>,
) -> Explanation {
    let view = RequestView::new(req, port);
    let request = format!("{} {}", req.method(), req.uri());
    let mut out = Explanation {
        request,
        host: HostStep {
            requested: view.authority.to_owned(),
            virtual_host: None,
            service: None,
            why: String::new(),
        },
        virtual_service: None,
        considered: Vec::new(),
        route: None,
        destinations: Vec::new(),
        destination: None,
        endpoints: Vec::new(),
        policies: Policies::default(),
        outcome: String::new(),
        authz: None,
    };
    let Some(vhost) = table.virtual_host(view.authority) else {
        out.host.why = format!(
            "no service or VirtualService host is named {:?} for a client in namespace {} \
             (HOST-3: a bare name means the client's own namespace; HOST-7)",
            view.authority,
            table.namespace()
        );
        out.outcome = "404 NR (no route)".into();
        return out;
    };
    out.host.virtual_host = Some(vhost.name.to_string());
    out.host.service = vhost.service.as_ref().map(|s| s.host.clone());
    out.host.why = match (&vhost.service, &vhost.virtual_service) {
        (Some(s), Some(vs)) => format!(
            "service {} (ServiceEntry {}/{}), routes of VirtualService {}/{} (the oldest VirtualService for a host owns it, HOST-9)",
            s.host, s.namespace, s.name, vs.namespace, vs.name
        ),
        (Some(s), None) => format!(
            "service {} (ServiceEntry {}/{}); no VirtualService: the implicit default route (VS-13)",
            s.host, s.namespace, s.name
        ),
        (None, Some(vs)) => format!(
            "VirtualService host only (no ServiceEntry), VirtualService {}/{} (HOST-11)",
            vs.namespace, vs.name
        ),
        (None, None) => String::new(),
    };
    if let Some(vs) = &vhost.virtual_service {
        out.virtual_service = Some(VirtualServiceStep {
            namespace: vs.namespace.clone(),
            name: vs.name.clone(),
            file: vs.location.file.display().to_string(),
            line: vs.location.line,
        });
    }
    let mut matched: Option<(&Route, Option<usize>)> = None;
    for route in vhost.routes.iter() {
        let source = route.virtual_service.as_ref().map(|vs| {
            let loc = match sources.as_deref_mut() {
                Some(map) => map.locate(&vs.location, &format!("spec.http[{}]", route.index)),
                None => vs.location.clone(),
            };
            Source::from(&loc)
        });
        let (is_match, why) = why_route(route, &view);
        out.considered.push(Considered {
            index: route.index,
            name: route.name.to_string(),
            matched: is_match.is_some(),
            why,
            source: source.clone(),
        });
        if let Some(block) = is_match {
            matched = Some((route, block));
            out.route = Some(RouteStep {
                index: route.index,
                name: route.name_for(block).to_string(),
                action: describe_action(route),
                source,
            });
            break;
        }
    }
    let Some((route, _)) = matched else {
        out.outcome = "404 NR (no route matched, VS-13)".into();
        return out;
    };
    out.policies = policies(route);
    match &route.action {
        Action::Forward {
            destinations,
            total_weight,
            ..
        } => {
            let single = destinations.len() == 1;
            for d in destinations {
                #[allow(clippy::cast_precision_loss, reason = "weights are small")]
                let percent = if single {
                    100.0
                } else if *total_weight == 0 {
                    0.0
                } else {
                    f64::from(d.weight) * 100.0 / *total_weight as f64
                };
                out.destinations.push(WeightStep {
                    host: d.host.to_string(),
                    subset: d.subset.as_ref().map(ToString::to_string),
                    port: d.port,
                    percent,
                });
            }
            let shown = if single {
                destinations.first()
            } else {
                destinations.iter().max_by_key(|d| d.weight)
            };
            if let Some(d) = shown {
                out.policies.request_headers = d.request_edits.describe();
                out.policies.response_headers = d.response_edits.describe();
                let (dest, endpoints, lb) = destination_step(d, registry, port);
                out.outcome = match &dest.problem {
                    Some(p) => p.clone(),
                    None => format!(
                        "forward to {}{}",
                        dest.cluster.as_deref().unwrap_or("?"),
                        if single {
                            ""
                        } else {
                            " (weighted, drawn per request)"
                        }
                    ),
                };
                out.destination = Some(dest);
                out.endpoints = endpoints;
                out.policies.load_balancer = lb;
            }
        }
        _ => out.outcome = describe_action(route),
    }
    out
}

fn why_route(route: &Route, view: &RequestView<'_>) -> (Option<Option<usize>>, String) {
    if route.never_matches() {
        return (
            None,
            "every match block selects other proxies (sourceLabels / sourceNamespace / gateways are proxy selectors, VS-12)".into(),
        );
    }
    if route.blocks().is_empty() {
        return (
            Some(None),
            "no match conditions: matches every request (VS-1)".into(),
        );
    }
    let mut reasons = Vec::new();
    for (i, block) in route.blocks().iter().enumerate() {
        match block.explain_mismatch(view) {
            None => {
                let name = block.name();
                let label = if name.is_empty() {
                    format!("match[{i}]")
                } else {
                    format!("match[{i}] ({name})")
                };
                return (
                    Some(Some(i)),
                    format!("{label} matched: all its conditions hold (VS-2)"),
                );
            }
            Some(why) => reasons.push(format!("match[{i}]: {why}")),
        }
    }
    (None, reasons.join("; "))
}

fn describe_action(route: &Route) -> String {
    match &route.action {
        Action::Forward { destinations, .. } => format!(
            "route to {} destination{}",
            destinations.len(),
            if destinations.len() == 1 { "" } else { "s" }
        ),
        Action::Redirect(r) => format!("redirect {}", r.describe()),
        Action::DirectResponse(d) => format!("direct response {}", d.status.as_u16()),
        Action::Unsupported(what) => format!("{what} is not supported yet: 404 NR (VS-24)"),
    }
}

fn policies(route: &Route) -> Policies {
    let mut p = Policies {
        timeout: match route.timeout {
            Some(t) => format!("{}ms", t.as_millis()),
            None => "none (Istio sets no route timeout, VS-34)".into(),
        },
        retries: match &route.retries {
            Some(r) if r.attempts <= 0 => "disabled (attempts 0, RETRY-3)".into(),
            Some(r) => format!(
                "{} attempts, retryOn {}{}",
                r.attempts,
                if r.retry_on.is_empty() {
                    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes (RETRY-4)"
                } else {
                    r.retry_on.as_str()
                },
                r.per_try_timeout
                    .map(|t| format!(", perTryTimeout {}ms", t.as_std().as_millis()))
                    .unwrap_or_default()
            ),
            None => "Istio default: 2 attempts on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes (RETRY-2)".into(),
        },
        fault: route.fault.as_ref().map(crate::fault::Fault::describe),
        mirror: route
            .mirrors
            .iter()
            .map(|m| {
                format!(
                    "{}{} at {}%",
                    m.host,
                    m.subset.as_ref().map(|s| format!(" subset {s}")).unwrap_or_default(),
                    m.percent
                )
            })
            .collect(),
        cors: route.cors.is_some(),
        ..Policies::default()
    };
    if let Action::Forward {
        rewrite, authority, ..
    } = &route.action
    {
        let mut parts = Vec::new();
        if let Some(r) = rewrite {
            parts.push(r.describe());
        }
        if let Some(a) = authority {
            parts.push(format!("authority → {a}"));
        }
        if !parts.is_empty() {
            p.rewrite = Some(parts.join(", "));
        }
    }
    p
}

fn destination_step(
    d: &WeightedDestination,
    registry: &Registry,
    port: u16,
) -> (DestinationStep, Vec<EndpointStep>, Option<String>) {
    let mut step = DestinationStep {
        host: d.host.to_string(),
        subset: d.subset.as_ref().map(ToString::to_string),
        port: d.port,
        cluster: None,
        subset_labels: BTreeMap::new(),
        destination_rule: None,
        destination_rule_source: None,
        problem: None,
    };
    if let Target::Service { service, .. } = &d.target
        && let Some(rule) = registry
            .destination_rules()
            .lookup(&service.host, &service.namespace)
    {
        step.destination_rule = rule
            .sources()
            .first()
            .map(|src| format!("{}/{}", rule.namespace(), src.name));
        step.destination_rule_source = rule
            .sources()
            .first()
            .map(|src| Source::from(&src.location));
        if let Some(s) = d.subset.as_deref().and_then(|s| rule.subset(s)) {
            step.subset_labels = s.labels.clone();
        }
    }
    let upstream = match d.target.upstream(port) {
        Ok(u) => u,
        Err(e) => {
            step.problem = Some(match e {
                NoCluster::UnknownHost => {
                    format!("503 NC: {} is not a known service (HOST-11)", d.host)
                }
                NoCluster::UnknownSubset => format!(
                    "503 NC: subset {:?} is not defined by the DestinationRule found for {} (VS-16, HOST-12)",
                    d.subset.as_deref().unwrap_or(""),
                    d.host
                ),
                NoCluster::UnknownPort => format!(
                    "503 NC: {} has no port {} (VS-17)",
                    d.host,
                    d.port.unwrap_or(u32::from(port))
                ),
            });
            return (step, Vec::new(), None);
        }
    };
    step.port = Some(upstream.cluster.port());
    step.cluster = Some(upstream.cluster.name().to_owned());
    let set = upstream.cluster.endpoints();
    let endpoints: Vec<EndpointStep> = set
        .endpoints()
        .iter()
        .enumerate()
        .map(|(i, e)| EndpointStep {
            address: e.addr.to_string(),
            labels: (*e.labels).clone(),
            health: match set.stats(i).health() {
                Health::Healthy => "healthy".into(),
                other => other.flags().trim_start_matches('/').to_owned(),
            },
            weight: e.weight,
        })
        .collect();
    if endpoints.is_empty() {
        step.problem = Some(format!(
            "503 UH: cluster {} has no endpoints{} (DR-1, DR-8)",
            upstream.cluster.name(),
            if d.subset.is_some() {
                " — no endpoint carries the subset's labels"
            } else {
                ""
            }
        ));
    }
    let lb = Some(match upstream.balancer.hash_policy() {
        Some(h) => format!("{} on {}", upstream.balancer.kind(), h.describe()),
        None => upstream.balancer.kind().to_string(),
    });
    (step, endpoints, lb)
}
