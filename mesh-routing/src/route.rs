//! A compiled HTTP route: its match blocks, its action and the policies that go with it.
//!
//! One [`Route`] is built per VirtualService `http[]` entry (or the implicit default route of
//! a service without a VirtualService, VS-13) and shared by every virtual host that uses it.
//! The per-request work is [`Route::matches`] (first-match order is the table's job, VS-1) and
//! [`Route::choose`] (the weighted destination, drawn once per request, VS-14/VS-15).

use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use mesh_core::model::{HttpRetry, Location};
use mesh_core::random::Random;
use mesh_core::registry::{Cluster, Service};

use crate::balance::LoadBalancer;
use crate::cors::Cors;
use crate::fault::Fault;
use crate::headers::HeaderEdits;
use crate::matcher::{MatchBlock, RequestView, UriMatched};
use crate::rewrite::{DirectResponse, Redirect, UriRewrite};

/// The VirtualService a route came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServiceRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Where it was written.
    pub location: Location,
}

/// One cluster a destination can send to, with its balancer.
#[derive(Debug)]
pub struct Upstream {
    /// The cluster (`outbound|PORT|SUBSET|FQDN`).
    pub cluster: Arc<Cluster>,
    /// The balancer compiled from the cluster's effective DestinationRule policy.
    pub balancer: Arc<LoadBalancer>,
}

/// Where a destination's traffic goes: a service's clusters, or nowhere.
#[derive(Debug)]
pub enum Target {
    /// A known service. `clusters` holds one entry per usable service port (only the
    /// configured port when `port` is set).
    Service {
        /// The service.
        service: Arc<Service>,
        /// `(port, upstream)` pairs.
        clusters: Vec<(u32, Upstream)>,
        /// The configured `destination.port.number`.
        port: Option<u32>,
    },
    /// The host is not a known service (HOST-11): forwarding fails with 503 `NC`.
    Unknown,
}

/// Why a destination has no cluster for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoCluster {
    /// The host is not in the registry (HOST-11).
    UnknownHost,
    /// The subset is not defined by the DestinationRule found for the host (VS-16).
    UnknownSubset,
    /// The service has no such port, or several ports and none was chosen (VS-17).
    UnknownPort,
}

impl Target {
    /// The upstream for a request whose destination port is `request_port` (VS-17: the
    /// configured port, else the only port, else the request's port).
    pub fn upstream(&self, request_port: u16) -> Result<&Upstream, NoCluster> {
        match self {
            Target::Unknown => Err(NoCluster::UnknownHost),
            Target::Service {
                service,
                clusters,
                port,
            } => {
                if clusters.is_empty() {
                    // Only a named subset or a named port can leave a service without clusters:
                    // a port the service has means the subset is the missing part (VS-16).
                    return Err(match port {
                        Some(p) if service.cluster(*p).is_none() => NoCluster::UnknownPort,
                        _ => NoCluster::UnknownSubset,
                    });
                }
                let wanted = match port {
                    Some(p) => *p,
                    None if clusters.len() == 1 => return Ok(&clusters[0].1),
                    None => u32::from(request_port),
                };
                clusters
                    .iter()
                    .find(|(p, _)| *p == wanted)
                    .map(|(_, u)| u)
                    .ok_or(NoCluster::UnknownPort)
            }
        }
    }
}

/// One weighted destination of a route (VS-14).
#[derive(Debug)]
pub struct WeightedDestination {
    /// The destination host as qualified (FQDN).
    pub host: Arc<str>,
    /// The subset named, if any.
    pub subset: Option<Arc<str>>,
    /// The port named, if any.
    pub port: Option<u32>,
    /// The weight as configured (a single destination gets 100% whatever its weight).
    pub weight: u32,
    /// Where it goes.
    pub target: Target,
    /// Request header edits for requests sent here (route and destination level, VS-25).
    pub request_edits: HeaderEdits,
    /// Response header edits for responses from here (VS-25).
    pub response_edits: HeaderEdits,
}

/// A mirror destination (VS-31, VS-32).
#[derive(Debug)]
pub struct Mirror {
    /// The mirror host (FQDN).
    pub host: Arc<str>,
    /// Subset, if any.
    pub subset: Option<Arc<str>>,
    /// Where it goes.
    pub target: Target,
    /// Percentage of requests mirrored (absent in config = 100).
    pub percent: f64,
}

/// What a route does with a matching request (VS-18).
#[derive(Debug)]
pub enum Action {
    /// Forward to one of the weighted destinations.
    Forward {
        /// The destinations, in config order.
        destinations: Vec<WeightedDestination>,
        /// Σ weights of the destinations (0 with a single destination).
        total_weight: u64,
        /// `rewrite.uri` / `uriRegexRewrite`.
        rewrite: Option<UriRewrite>,
        /// `rewrite.authority`.
        authority: Option<Authority>,
    },
    /// Answer with a redirect (VS-22).
    Redirect(Redirect),
    /// Answer with a fixed response (VS-23).
    DirectResponse(DirectResponse),
    /// A route this version does not run (`delegate`, VS-24): answers 404 `NR`.
    Unsupported(&'static str),
}

/// A compiled HTTP route.
#[derive(Debug)]
pub struct Route {
    /// Index of the route in the VirtualService's `http` list (0 for a default route).
    pub index: usize,
    /// `http[].name`.
    pub name: Arc<str>,
    /// The route names of LOG-2, one per match block (or one, for a route without blocks).
    pub(crate) block_names: Vec<Arc<str>>,
    /// The VirtualService, `None` for the implicit default route of a service (VS-13).
    pub virtual_service: Option<Arc<VirtualServiceRef>>,
    /// Match blocks, ORed (VS-2); empty = matches everything.
    pub(crate) matches: Vec<MatchBlock>,
    /// Whether the route had match blocks that all dropped out for this proxy (VS-12).
    pub(crate) never_matches: bool,
    /// The action.
    pub action: Action,
    /// Fault injection.
    pub fault: Option<Fault>,
    /// CORS policy.
    pub cors: Option<Cors>,
    /// Mirrors.
    pub mirrors: Vec<Mirror>,
    /// Route timeout; `None` = no timeout (Istio's default, VS-34; `0s` also means none).
    pub timeout: Option<Duration>,
    /// Retry settings as configured, for the resilience layer (RETRY-1..RETRY-4).
    pub retries: Option<Arc<HttpRetry>>,
    /// Response edits for local answers of routes without destinations (redirect, direct
    /// response) — route level only.
    pub local_response_edits: HeaderEdits,
}

impl Route {
    /// Whether `req` matches: the index of the matching block (`None` for a route without
    /// blocks) and how its uri matched. First block wins (VS-2: ORed).
    pub fn matches(&self, req: &RequestView<'_>) -> Option<(Option<usize>, UriMatched)> {
        if self.never_matches {
            return None;
        }
        if self.matches.is_empty() {
            return Some((None, UriMatched::None));
        }
        self.matches
            .iter()
            .enumerate()
            .find_map(|(i, b)| b.matches(req).map(|u| (Some(i), u)))
    }

    /// The match blocks, for `explain`.
    pub fn blocks(&self) -> &[MatchBlock] {
        &self.matches
    }

    /// Whether the route had match blocks that all dropped out for this proxy (VS-12).
    pub fn never_matches(&self) -> bool {
        self.never_matches
    }

    /// The route name of LOG-2 for the matched block.
    pub fn name_for(&self, block: Option<usize>) -> &Arc<str> {
        block
            .and_then(|b| self.block_names.get(b))
            .or(self.block_names.first())
            .unwrap_or(&self.name)
    }

    /// Draws the weighted destination of one request (VS-14, VS-15: once per request).
    /// `None` for routes that do not forward, or whose weights are all zero.
    pub fn choose(&self, rng: &mut Random) -> Option<&WeightedDestination> {
        let Action::Forward {
            destinations,
            total_weight,
            ..
        } = &self.action
        else {
            return None;
        };
        if destinations.len() == 1 {
            return destinations.first();
        }
        if *total_weight == 0 {
            return None;
        }
        let mut r = rng.below(*total_weight);
        for d in destinations {
            let w = u64::from(d.weight);
            if r < w {
                return Some(d);
            }
            r -= w;
        }
        destinations.last()
    }
}
