//! The per-request routing decision, in the order Envoy's filters run it in an Istio sidecar:
//! route match → CORS → fault → route action → weighted destination → cluster → endpoint.
//!
//! The steps are synchronous and shared by the tower layer ([`crate::layer`]) and by
//! `mesh-proxy`; the caller does the asynchronous parts (the fault delay, forwarding,
//! mirroring). [`decide`] stops before the endpoint pick so that a delayed request picks its
//! endpoint after the delay, from the endpoint state of that moment; [`select`] picks it.
//!
//! ```
//! use mesh_core::loader::parse_str;
//! use mesh_core::random::Random;
//! use mesh_core::registry::{Registry, Scope};
//! use mesh_core::Snapshot;
//! use mesh_routing::decide::{decide, select, Next};
//! use mesh_routing::table::RouteTable;
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: api, namespace: default}
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
//! let mut rng = Random::seeded(1);
//! let decision = decide(&table, &req, 80, &mut rng);
//! let Next::Forward(dest) = decision.next else { panic!("forwarded") };
//! let chosen = select(dest, &req, 80, None, &[], &mut rng).unwrap();
//! assert_eq!(chosen.addr.to_string(), "127.0.0.1:80");
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, Request, Response, StatusCode};
use mesh_core::endpoint::EndpointSet;
use mesh_core::random::Random;

use crate::balance::HashKey;
use crate::cors::CorsOutcome;
use crate::fault::Abort;
use crate::headers::HeaderEdits;
use crate::matcher::RequestView;
use crate::rewrite::RedirectInput;
use crate::route::{Action, NoCluster, Upstream, WeightedDestination};
use crate::table::{Lookup, Matched, RouteTable};

/// An answer the router gives itself, without an upstream (SEMANTICS ERR-2 rows it owns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAnswer {
    /// No virtual host or no matching route: 404, empty, flag `NR` (VS-13).
    NoRoute,
    /// The destination's cluster does not exist (unknown host, subset or port): 503, empty,
    /// flag `NC` (VS-16, HOST-11).
    ClusterNotFound(NoCluster),
    /// The cluster has no eligible endpoint: 503 `no healthy upstream`, flag `UH` (DR-8).
    NoHealthyUpstream,
    /// A fault abort: the status with body `fault filter abort`, or a gRPC status; flag `FI`.
    FaultAbort(Abort),
    /// A redirect (VS-22).
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: StatusCode,
        /// The `location` header.
        location: HeaderValue,
    },
    /// A direct response (VS-23).
    Direct {
        /// The configured status.
        status: StatusCode,
        /// The configured body.
        body: Bytes,
    },
    /// A CORS preflight answer: 200, empty, with these headers (VS-37).
    Preflight(HeaderMap),
}

impl LocalAnswer {
    /// Envoy's response flag.
    pub fn flag(&self) -> &'static str {
        match self {
            LocalAnswer::NoRoute => "NR",
            LocalAnswer::ClusterNotFound(_) => "NC",
            LocalAnswer::NoHealthyUpstream => "UH",
            LocalAnswer::FaultAbort(_) => "FI",
            LocalAnswer::Redirect { .. }
            | LocalAnswer::Direct { .. }
            | LocalAnswer::Preflight(_) => "-",
        }
    }

    /// The HTTP status (before any gRPC conversion).
    pub fn status(&self) -> StatusCode {
        match self {
            LocalAnswer::NoRoute => StatusCode::NOT_FOUND,
            LocalAnswer::ClusterNotFound(_) | LocalAnswer::NoHealthyUpstream => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            LocalAnswer::FaultAbort(Abort::Http(s)) => {
                StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            LocalAnswer::FaultAbort(Abort::Grpc(_)) | LocalAnswer::Preflight(_) => StatusCode::OK,
            LocalAnswer::Redirect { status, .. } | LocalAnswer::Direct { status, .. } => *status,
        }
    }

    /// Whether the answer is an error reply that ERR-1 converts for gRPC clients (the
    /// configured answers — redirect, direct response, preflight — are sent as configured).
    pub fn is_error_reply(&self) -> bool {
        matches!(
            self,
            LocalAnswer::NoRoute
                | LocalAnswer::ClusterNotFound(_)
                | LocalAnswer::NoHealthyUpstream
                | LocalAnswer::FaultAbort(Abort::Http(_))
        )
    }

    /// The response as Envoy writes it: exact body, `content-type: text/plain` when a body is
    /// present (ERR-1, VS-23), `content-length`; a gRPC fault abort is a trailers-only reply
    /// with `grpc-status` (VS-28). The gRPC conversion of error replies (ERR-1) is the edge's.
    pub fn into_response(self) -> Response<Bytes> {
        let status = self.status();
        let mut headers = HeaderMap::new();
        let body = match self {
            LocalAnswer::NoRoute | LocalAnswer::ClusterNotFound(_) | LocalAnswer::Preflight(_) => {
                if let LocalAnswer::Preflight(h) = self {
                    headers = h;
                }
                Bytes::new()
            }
            LocalAnswer::NoHealthyUpstream => Bytes::from_static(b"no healthy upstream"),
            LocalAnswer::FaultAbort(Abort::Http(_)) => Bytes::from_static(b"fault filter abort"),
            LocalAnswer::FaultAbort(Abort::Grpc(code)) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                headers.insert("grpc-status", HeaderValue::from(u16::from(code)));
                headers.insert(
                    "grpc-message",
                    HeaderValue::from_static("fault filter abort"),
                );
                Bytes::new()
            }
            LocalAnswer::Redirect { location, .. } => {
                headers.insert(LOCATION, location);
                Bytes::new()
            }
            LocalAnswer::Direct { body, .. } => body,
        };
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }
}

/// What happens after the route decision.
#[derive(Debug)]
pub enum Next<'t> {
    /// Answer locally.
    Answer(LocalAnswer),
    /// Forward to this destination (drawn once per request, VS-15).
    Forward(&'t WeightedDestination),
}

/// The routing decision for one request, before the endpoint pick.
#[derive(Debug)]
pub struct Decision<'t> {
    /// The matched route, if any.
    pub matched: Option<Matched<'t>>,
    /// A fault delay to wait before going on (VS-27; not part of the route timeout, VS-30).
    pub delay: Option<Duration>,
    /// CORS headers to add to the response (VS-37).
    pub cors: Option<HeaderMap>,
    /// What to do (after the delay).
    pub next: Next<'t>,
}

impl<'t> Decision<'t> {
    /// The response header edits that apply to whatever answers this request: the chosen
    /// destination's plan, or the route level for local answers (VS-26). Borrowed from the
    /// table, not from the decision, so callers keep it without cloning.
    pub fn response_edits(&self) -> Option<&'t HeaderEdits> {
        let route = self.matched?.route;
        match &self.next {
            Next::Forward(d) => Some(&d.response_edits),
            Next::Answer(_) => Some(match &route.action {
                Action::Forward { destinations, .. } if destinations.len() == 1 => {
                    &destinations[0].response_edits
                }
                _ => &route.local_response_edits,
            }),
        }
    }
}

/// Decides what happens to `req` whose destination port is `port` (HOST-6): the route (VS-1),
/// CORS (VS-37), faults (VS-27..VS-29), then the action (VS-18) and the weighted destination
/// (VS-14).
pub fn decide<'t, B>(
    table: &'t RouteTable,
    req: &Request<B>,
    port: u16,
    rng: &mut Random,
) -> Decision<'t> {
    let view = RequestView::new(req, port);
    let matched = match table.find(&view) {
        Lookup::Matched(m) => m,
        Lookup::UnknownHost | Lookup::NoRouteMatched(_) => {
            return Decision {
                matched: None,
                delay: None,
                cors: None,
                next: Next::Answer(LocalAnswer::NoRoute),
            };
        }
    };
    let route = matched.route;
    let mut cors = None;
    if let Some(c) = &route.cors {
        match c.check(req) {
            CorsOutcome::Forward => {}
            CorsOutcome::Simple(h) => cors = Some(h),
            CorsOutcome::Preflight(h) => {
                return answer(matched, None, LocalAnswer::Preflight(h));
            }
            CorsOutcome::IgnoredPreflight => {
                return answer(matched, None, LocalAnswer::Preflight(HeaderMap::new()));
            }
        }
    }
    let fault = route
        .fault
        .as_ref()
        .map(|f| f.decide(rng))
        .unwrap_or_default();
    if let Some(abort) = fault.abort {
        let mut d = answer(matched, fault.delay, LocalAnswer::FaultAbort(abort));
        d.cors = cors;
        return d;
    }
    let next = match &route.action {
        Action::Redirect(r) => {
            let input = RedirectInput {
                scheme: view.scheme,
                authority: view.authority,
                path_and_query: req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
                port,
                matched: matched.uri,
            };
            match HeaderValue::from_str(&r.location(&input)) {
                Ok(location) => Next::Answer(LocalAnswer::Redirect {
                    status: r.status(),
                    location,
                }),
                Err(_) => Next::Answer(LocalAnswer::NoRoute),
            }
        }
        Action::DirectResponse(d) => Next::Answer(LocalAnswer::Direct {
            status: d.status,
            body: d.body.clone(),
        }),
        Action::Unsupported(_) => Next::Answer(LocalAnswer::NoRoute),
        Action::Forward { .. } => match route.choose(rng) {
            Some(dest) => Next::Forward(dest),
            None => Next::Answer(LocalAnswer::ClusterNotFound(NoCluster::UnknownHost)),
        },
    };
    Decision {
        matched: Some(matched),
        delay: fault.delay,
        cors,
        next,
    }
}

fn answer<'t>(matched: Matched<'t>, delay: Option<Duration>, a: LocalAnswer) -> Decision<'t> {
    Decision {
        matched: Some(matched),
        delay,
        cors: None,
        next: Next::Answer(a),
    }
}

/// The endpoint chosen for one attempt.
#[derive(Debug)]
pub struct Selected<'t> {
    /// The upstream (cluster and balancer).
    pub upstream: &'t Upstream,
    /// The endpoint set the pick was made from (kept for the request's life, RELOAD-1).
    pub endpoints: Arc<EndpointSet>,
    /// Index of the endpoint in `endpoints`.
    pub index: usize,
    /// Its address.
    pub addr: SocketAddr,
    /// A `set-cookie` to add to the response (consistent hash on a generated cookie, DR-9).
    pub set_cookie: Option<HeaderValue>,
}

/// Picks the endpoint for a destination: the cluster of the request's port (VS-17), then the
/// cluster's balancer (DR-6..DR-9) over its healthy endpoints (DR-8, OD-10). `avoid` lists
/// endpoints already tried by this request (RETRY-13).
pub fn select<'t, B>(
    dest: &'t WeightedDestination,
    req: &Request<B>,
    port: u16,
    source_ip: Option<IpAddr>,
    avoid: &[usize],
    rng: &mut Random,
) -> Result<Selected<'t>, LocalAnswer> {
    let upstream = dest
        .target
        .upstream(port)
        .map_err(LocalAnswer::ClusterNotFound)?;
    let endpoints = upstream.cluster.endpoints();
    let mut set_cookie = None;
    let hash = match upstream.balancer.hash_policy() {
        None => None,
        Some(policy) => match policy.key(req.headers(), req.uri().query(), source_ip, rng) {
            HashKey::Hash(h) => Some(h),
            HashKey::Missing => None,
            HashKey::IssueCookie(issue) => {
                set_cookie = issue.set_cookie();
                Some(issue.hash())
            }
        },
    };
    let index = upstream
        .balancer
        .pick(&endpoints, hash, avoid, rng)
        .ok_or(LocalAnswer::NoHealthyUpstream)?;
    let addr = endpoints.endpoint(index).addr;
    Ok(Selected {
        upstream,
        endpoints,
        index,
        addr,
        set_cookie,
    })
}
