//! The outbound path's guard rails: route timeout, retries with back-off and budget, circuit
//! breaking and outlier detection, in the order of SEMANTICS RES-5:
//!
//! route timeout left? → retry budget / `maxRetries` (retries only) → balancer (skips ejected
//! endpoints) → `http2MaxRequests` → connection slot or pending queue (`maxConnections`,
//! `http1MaxPendingRequests`) → send with the per-try timer → classify the outcome → outlier
//! detection (never for local overflow).
//!
//! The policies are compiled once per config version into [`Guards`]: a retry policy per
//! route's `retries` block and, per cluster, the circuit breaker (its counters carried over
//! from the previous version, RELOAD-3), the outlier detector and the connection options.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use mesh_core::classify::{Failure, Outcome};
use mesh_core::endpoint::{EndpointSet, Health};
use mesh_core::random::Random;
use mesh_core::registry::{Cluster, Registry, Service};
use mesh_resilience::breaker::{CircuitBreaker, Overflow};
use mesh_resilience::outlier::{OutlierConfig, OutlierDetector};
use mesh_resilience::retry::{DEFAULT_MAX_REPLAY_BUFFER, ReplayBody, RetryPolicy, attempt_count};
use mesh_resilience::timeout::{effective_timeout, encode_grpc_timeout};
use mesh_routing::RouteTable;
use mesh_routing::decide::select;
use mesh_routing::route::{Route, WeightedDestination};
use tokio::time::Instant;

use crate::body::{ProxyBody, RequestBody};
use crate::forward::{Sent, forward_once};
use crate::headers::Direction;
use crate::local_reply::{LocalReply, ResetReason, RetryStop, UpstreamFailure, UpstreamFlag};
use crate::metrics::{ClusterCounters, ClusterEvent};
use crate::mtls::{Identity, UpstreamTls};
use crate::peers::ClusterLabels;
use crate::pool::{ConnectOptions, UpstreamVersion};
use crate::proxy::Shared;

/// One cluster's guard rails for one config version.
#[derive(Debug)]
pub(crate) struct ClusterGuard {
    pub(crate) name: String,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) outlier: Option<Arc<OutlierDetector>>,
    pub(crate) connect: ConnectOptions,
    /// How connections are secured (DR-18, DR-19).
    pub(crate) tls: UpstreamTls,
    /// Metric handles, resolved on first use.
    pub(crate) counters: ClusterCounters,
    /// The `destination_*` labels of Istio's metrics for this cluster (MET-4).
    pub(crate) labels: ClusterLabels,
}

impl ClusterGuard {
    fn new(
        cluster: &Cluster,
        service: &Service,
        tls: UpstreamTls,
        previous: Option<&ClusterGuard>,
    ) -> Self {
        let policy = cluster.policy();
        let mut breaker = CircuitBreaker::from_config(
            policy.connection_pool.as_ref(),
            policy.retry_budget.as_ref(),
        );
        if let Some(p) = previous {
            breaker = breaker.carry_over(&p.breaker);
        }
        let previous_outlier = previous.and_then(|p| p.outlier.as_ref());
        let outlier = match policy.outlier_detection.as_ref() {
            Some(od) => {
                let config = OutlierConfig::from_config(od);
                // RELOAD-3: an unchanged detector is kept, with its sweep schedule (a new one
                // on every reload would postpone sweeps while reloads keep coming).
                Some(match previous_outlier {
                    Some(prev) if prev.config() == &config => Arc::clone(prev),
                    _ => Arc::new(OutlierDetector::new(config)),
                })
            }
            None => {
                if previous_outlier.is_some() {
                    // Outlier detection was removed: nothing would return ejected endpoints.
                    release_ejected(&cluster.endpoints());
                }
                None
            }
        };
        Self {
            name: cluster.name().to_owned(),
            breaker,
            outlier,
            connect: ConnectOptions::from_config(policy.connection_pool.as_ref()),
            tls,
            counters: ClusterCounters::default(),
            labels: ClusterLabels::new(Some(service)),
        }
    }

    fn unlimited(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            breaker: CircuitBreaker::unlimited(),
            outlier: None,
            connect: ConnectOptions::default(),
            tls: UpstreamTls::Plain,
            counters: ClusterCounters::default(),
            labels: ClusterLabels::new(None),
        }
    }
}

/// Returns every ejected endpoint of `set` to service, with its outlier state cleared.
fn release_ejected(set: &EndpointSet) {
    for i in 0..set.len() {
        let stats = set.stats(i);
        if stats.health() != Health::Healthy {
            stats.set_health(Health::Healthy);
            stats.outlier().set_ejected_until(None);
            stats.outlier().reset_counters();
        }
    }
}

/// The compiled guard rails of one config version.
#[derive(Debug)]
pub(crate) struct Guards {
    /// By the address of the registry's `Arc<Cluster>` (the route table shares those `Arc`s):
    /// a pointer hash instead of a string hash per request.
    by_cluster: HashMap<usize, Arc<ClusterGuard>>,
    by_name: HashMap<String, Arc<ClusterGuard>>,
    /// By the address of a route's `Arc<HttpRetry>`.
    retry: HashMap<usize, Arc<RetryPolicy>>,
    default_retry: Arc<RetryPolicy>,
    passthrough: Arc<ClusterGuard>,
}

fn cluster_key(c: &Arc<Cluster>) -> usize {
    Arc::as_ptr(c) as usize
}

impl Guards {
    /// Compiles the guards of `registry`'s clusters and `routes`' retry policies, keeping the
    /// circuit-breaker counters of clusters that existed in `previous`.
    pub(crate) fn build(
        registry: &Registry,
        routes: &RouteTable,
        identity: Option<&Arc<Identity>>,
        previous: Option<&Guards>,
    ) -> Self {
        let mut by_cluster = HashMap::new();
        let mut by_name = HashMap::new();
        let clusters = registry.services().iter().flat_map(|s| {
            s.clusters()
                .iter()
                .chain(s.subset_clusters())
                .map(move |c| (c, s))
        });
        for (c, service) in clusters {
            let prev = previous.and_then(|p| p.by_name.get(c.name()));
            let tls = UpstreamTls::build(c, Some(service), identity);
            let guard = Arc::new(ClusterGuard::new(c, service, tls, prev.map(Arc::as_ref)));
            by_cluster.insert(cluster_key(c), Arc::clone(&guard));
            by_name.insert(c.name().to_owned(), guard);
        }
        let mut retry = HashMap::new();
        for vh in routes.virtual_hosts() {
            for route in vh.routes.iter() {
                if let Some(r) = &route.retries {
                    retry
                        .entry(Arc::as_ptr(r) as usize)
                        .or_insert_with(|| Arc::new(RetryPolicy::from_config(Some(r))));
                }
            }
        }
        Self {
            by_cluster,
            by_name,
            retry,
            default_retry: Arc::new(RetryPolicy::istio_default()),
            passthrough: Arc::new(ClusterGuard::unlimited("passthrough")),
        }
    }

    /// The guard of a cluster (an unlimited one for a cluster unknown to this version).
    pub(crate) fn cluster(&self, c: &Arc<Cluster>) -> &Arc<ClusterGuard> {
        self.by_cluster
            .get(&cluster_key(c))
            .unwrap_or(&self.passthrough)
    }

    /// Every cluster's guard, by name (for `/clusters` and metrics).
    pub(crate) fn by_name(&self) -> &HashMap<String, Arc<ClusterGuard>> {
        &self.by_name
    }

    /// The retry policy of a route: its own, or Istio's default (RETRY-2).
    pub(crate) fn retry_policy(&self, route: &Route) -> &Arc<RetryPolicy> {
        match &route.retries {
            None => &self.default_retry,
            Some(r) => {
                let found = self.retry.get(&(Arc::as_ptr(r) as usize));
                // Built from the same table: every route's block has its compiled policy.
                debug_assert!(found.is_some(), "retry policy compiled for every route");
                found.unwrap_or(&self.default_retry)
            }
        }
    }

    /// Returns ejected endpoints whose time is up (OD-7): checked before each pick, one atomic
    /// load unless a sweep is due.
    pub(crate) fn sweep(&self, cluster: &Arc<Cluster>) {
        if let Some(od) = &self.cluster(cluster).outlier {
            od.maybe_sweep(&cluster.endpoints(), Instant::now());
        }
    }
}

/// The endpoint of the first attempt, picked by the caller.
pub(crate) struct FirstPick {
    pub(crate) endpoints: Arc<EndpointSet>,
    pub(crate) index: usize,
    pub(crate) addr: SocketAddr,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) consistent_hash: bool,
}

/// What an outbound request needs for its attempts.
pub(crate) struct Attempt<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) guards: &'a Guards,
    pub(crate) route: &'a Route,
    pub(crate) dest: &'a WeightedDestination,
    pub(crate) port: u16,
    pub(crate) peer: Option<IpAddr>,
    pub(crate) version: UpstreamVersion,
    pub(crate) grpc: bool,
}

/// The outcome of one attempt, before deciding whether to retry.
#[allow(
    clippy::large_enum_variant,
    reason = "lives on the stack for one attempt; boxing would allocate per request"
)]
enum Tried {
    Response(Response<ProxyBody>),
    Failed(Failure),
}

pub(crate) fn failure_of_reply(reply: &LocalReply) -> Failure {
    match reply {
        LocalReply::UpstreamReset(ResetReason::ConnectionFailure) => Failure::ConnectFailure,
        LocalReply::UpstreamReset(ResetReason::ConnectTimeout) => Failure::ConnectTimeout,
        LocalReply::UpstreamReset(ResetReason::RemoteReset) => Failure::RemoteReset,
        LocalReply::UpstreamReset(ResetReason::RefusedStream) => Failure::RefusedStream,
        LocalReply::UpstreamProtocolError => Failure::ProtocolError,
        LocalReply::Overflow => Failure::Overflow,
        _ => Failure::Reset,
    }
}

fn upstream_failure(f: Failure) -> UpstreamFailure {
    match f {
        Failure::ConnectFailure => UpstreamFailure::Reset(ResetReason::ConnectionFailure),
        Failure::ConnectTimeout => UpstreamFailure::Reset(ResetReason::ConnectTimeout),
        Failure::RemoteReset => UpstreamFailure::Reset(ResetReason::RemoteReset),
        Failure::RefusedStream => UpstreamFailure::Reset(ResetReason::RefusedStream),
        Failure::PerTryTimeout | Failure::RouteTimeout => UpstreamFailure::Timeout,
        Failure::ProtocolError => UpstreamFailure::ProtocolError,
        _ => UpstreamFailure::Reset(ResetReason::ConnectionTermination),
    }
}

/// The reply for a failed last attempt.
fn failed_reply(f: Failure, retried: bool, stop: Option<RetryStop>) -> LocalReply {
    match f {
        Failure::Overflow => LocalReply::Overflow,
        _ => LocalReply::Upstream {
            failure: upstream_failure(f),
            retried,
            stop,
        },
    }
}

impl Attempt<'_> {
    /// Sends `req` with the route's timeout and retry policy, starting with `first`.
    pub(crate) async fn run(
        &self,
        req: Request<RequestBody>,
        authority: http::uri::Authority,
        first: FirstPick,
        rng: &mut Random,
    ) -> Result<Response<ProxyBody>, LocalReply> {
        let guard: &ClusterGuard = self.guards.cluster(&first.cluster);
        let policy: &RetryPolicy = self.guards.retry_policy(self.route);
        let metrics = &self.shared.metrics.resilience;
        let count = |event| metrics.count(&guard.counters, &guard.name, event);
        let (mut parts, body) = req.into_parts();
        // VS-34/VS-35: the route timeout, capped by the gRPC deadline the client sent; the
        // header the upstream sees carries the effective deadline.
        let timeout = if self.grpc {
            let t = effective_timeout(self.route.timeout, &parts.headers);
            if let Some(t) = t {
                parts.headers.insert("grpc-timeout", encode_grpc_timeout(t));
            }
            t
        } else {
            self.route.timeout.filter(|t| !t.is_zero())
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        let max_retries = policy.max_retries();
        let buffer = if max_retries > 0 {
            DEFAULT_MAX_REPLAY_BUFFER
        } else {
            0
        };
        let body = ReplayBody::new(body, buffer);
        let avoid_previous = policy.avoid_previous_hosts(first.consistent_hash);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let (mut set, mut index, mut addr) = (first.endpoints, first.index, first.addr);
        let mut attempt_body = body;
        let mut retry_permit = None;
        let mut probe: Option<Request<()>> = None;
        let mut attempt: u32 = 1;
        loop {
            // A copy for the next attempt, taken before this one consumes the body.
            let replay = if attempt <= max_retries {
                attempt_body.try_clone()
            } else {
                None
            };
            let mut attempt_parts = if replay.is_some() {
                clone_parts(&parts)
            } else {
                std::mem::replace(&mut parts, Request::new(()).into_parts().0)
            };
            // RETRY-11: the 1-based attempt number on every upstream request.
            attempt_parts
                .headers
                .insert("x-envoy-attempt-count", attempt_count(attempt));
            let (tried_result, contacted) = self
                .try_once(
                    guard,
                    Request::from_parts(attempt_parts, attempt_body),
                    &authority,
                    (&set, index, addr),
                    policy.per_try_timeout(),
                    deadline,
                )
                .await;
            drop(retry_permit.take());
            let outcome = match &tried_result {
                Tried::Response(r) => Outcome::from_response(r),
                Tried::Failed(f) => Outcome::Failure(*f),
            };
            if let Some(od) = guard.outlier.as_ref().filter(|_| contacted) {
                let report = od.report(&set, index, &outcome, Instant::now());
                if let Some(reason) = report.ejected {
                    tracing::debug!(cluster = %guard.name, endpoint = %addr, reason = reason.as_str(), "ejecting endpoint");
                    metrics.ejection(&guard.counters, &guard.name, reason);
                }
                if report.overflow {
                    metrics.count(&guard.counters, &guard.name, ClusterEvent::EjectionOverflow);
                }
            }
            if let Tried::Failed(f) = &tried_result {
                match f {
                    Failure::PerTryTimeout => count(ClusterEvent::PerTryTimeout),
                    Failure::RouteTimeout => count(ClusterEvent::Timeout),
                    Failure::Overflow => count(ClusterEvent::Overflow),
                    _ => {}
                }
            }
            let headers = match &tried_result {
                Tried::Response(r) => Some(r.headers()),
                Tried::Failed(_) => None,
            };
            let retried = attempt > 1;
            let wanted = policy.should_retry(&outcome, headers);
            let finish = |result: Tried, stop: Option<RetryStop>| match result {
                Tried::Response(mut r) => {
                    if let Some(s) = stop {
                        r.extensions_mut().insert(UpstreamFlag(s.flag()));
                    }
                    Ok(r)
                }
                Tried::Failed(f) => Err(failed_reply(f, retried, stop)),
            };
            if !wanted || matches!(outcome, Outcome::Failure(Failure::RouteTimeout)) {
                return finish(tried_result, None);
            }
            if attempt > max_retries {
                count(ClusterEvent::RetryLimitExceeded);
                return finish(tried_result, Some(RetryStop::Exhausted));
            }
            let Some(replay) = replay.filter(ReplayBody::is_replayable) else {
                // The body outgrew the replay buffer while this attempt sent it: sent once,
                // never retried (RETRY-7).
                return finish(tried_result, None);
            };
            // RETRY-12: maxRetries or the retry budget.
            match guard.breaker.try_retry() {
                Ok(p) => retry_permit = Some(p),
                Err(denied) => {
                    count(ClusterEvent::RetryOverflow);
                    if denied.budget {
                        count(ClusterEvent::BudgetExhausted);
                    }
                    return finish(tried_result, Some(RetryStop::Overflow));
                }
            }
            // The failed attempt's response goes now (its connection closes), so it holds no
            // request permit or connection slot through the back-off (DR-15, DR-17).
            drop(tried_result);
            // RETRY-10: jittered back-off, within what is left of the route timeout.
            let backoff = policy.backoff(attempt, rng);
            let wake = Instant::now() + backoff;
            match deadline {
                Some(d) if d <= wake => {
                    tokio::time::sleep_until(d).await;
                    count(ClusterEvent::Timeout);
                    return Err(failed_reply(Failure::RouteTimeout, retried, None));
                }
                _ => tokio::time::sleep_until(wake).await,
            }
            tried.push(addr);
            // RETRY-13: another endpoint if the policy asks for it (up to the balancer's
            // selection attempts), from the cluster's current endpoints.
            let sweep_cluster = &first.cluster;
            self.guards.sweep(sweep_cluster);
            let avoid = if avoid_previous {
                sweep_cluster.endpoints().indices_of(&tried)
            } else {
                Vec::new()
            };
            let probe = probe.get_or_insert_with(|| Request::from_parts(clone_parts(&parts), ()));
            match select(self.dest, probe, self.port, self.peer, &avoid, rng) {
                Ok(s) => {
                    set = s.endpoints;
                    index = s.index;
                    addr = s.addr;
                }
                // No endpoint left to retry on: Envoy's `no healthy upstream` (UH).
                Err(_) => return Err(LocalReply::NoHealthyUpstream),
            }
            count(ClusterEvent::Retry);
            attempt_body = replay;
            attempt += 1;
        }
    }

    /// One attempt: `http2MaxRequests`, the connection slot, the send under the per-try and
    /// route timers.
    async fn try_once(
        &self,
        guard: &ClusterGuard,
        req: Request<ReplayBody<RequestBody>>,
        authority: &http::uri::Authority,
        (set, index, addr): (&Arc<EndpointSet>, usize, SocketAddr),
        per_try: Option<Duration>,
        deadline: Option<Instant>,
    ) -> (Tried, bool) {
        let permit = match guard.breaker.try_request() {
            Ok(p) => p,
            Err(Overflow { .. }) => return (Tried::Failed(Failure::Overflow), false),
        };
        // DR-15/DR-17: HTTP/1.1 needs a connection slot (or a place in the pending queue),
        // waited for under the route timeout only: the endpoint is not contacted yet, so
        // neither the per-try timer (RETRY-8) nor outlier detection (OD-3) applies.
        let slot = if self.version == UpstreamVersion::Http1 {
            let acquired = match deadline {
                Some(d) => {
                    match tokio::time::timeout_at(d, guard.breaker.acquire_connection()).await {
                        Ok(r) => r,
                        Err(_) => return (Tried::Failed(Failure::RouteTimeout), false),
                    }
                }
                None => guard.breaker.acquire_connection().await,
            };
            match acquired {
                Ok(s) => Some(s),
                Err(_) => return (Tried::Failed(Failure::Overflow), false),
            }
        } else {
            None
        };
        let tls = match guard.tls.origin(set.endpoint(index), self.version) {
            Ok(t) => t,
            Err(why) => {
                tracing::debug!(cluster = %guard.name, %why, "cannot originate TLS");
                return (Tried::Failed(Failure::ConnectFailure), false);
            }
        };
        let per_try_deadline = per_try.map(|t| Instant::now() + t);
        let (until, kind) = match (per_try_deadline, deadline) {
            (Some(p), Some(d)) if p < d => (Some(p), Failure::PerTryTimeout),
            (_, Some(d)) => (Some(d), Failure::RouteTimeout),
            (Some(p), None) => (Some(p), Failure::PerTryTimeout),
            (None, None) => (None, Failure::RouteTimeout),
        };
        let send = async {
            forward_once(
                self.shared,
                Direction::Outbound,
                (req, authority.clone()),
                addr,
                self.version,
                Some((set, index)),
                Sent {
                    connect: Some(&guard.connect),
                    tls,
                    slot,
                    hold: Some(permit),
                },
            )
            .await
        };
        let result = match until {
            Some(at) => match tokio::time::timeout_at(at, send).await {
                Ok(r) => r,
                Err(_) => return (Tried::Failed(kind), true),
            },
            None => send.await,
        };
        match result {
            Ok(resp) => (Tried::Response(resp), true),
            Err(reply) => (Tried::Failed(failure_of_reply(&reply)), true),
        }
    }
}

pub(crate) fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req.into_parts().0
}

/// The inbound side's retry policy (SEMANTICS RETRY-14, Istio ≥ 1.24): 2 retries on
/// `reset-before-request` — the local app refused the connection or the stream, so the request
/// never reached it and resending is safe for any method.
pub(crate) fn inbound_retry_policy() -> RetryPolicy {
    RetryPolicy::disabled()
        .with_attempts(2)
        .with_retry_on("reset-before-request")
}

/// Forwards an inbound request to the local app with the inbound retry policy (RETRY-14).
///
/// `reset-before-request` only matches failures before the request reached the app, so the
/// retries happen at the connection step ([`crate::pool::Pool::prepare`]): the request is
/// handed over once, never copied or buffered.
pub(crate) async fn inbound_attempts(
    shared: &Shared,
    policy: &RetryPolicy,
    req: Request<RequestBody>,
    authority: http::uri::Authority,
    version: UpstreamVersion,
) -> Result<Response<ProxyBody>, LocalReply> {
    let app = Arc::clone(&shared.inbound_cluster);
    let addr = shared.settings.app;
    let connect = ConnectOptions::default();
    let mut rng = Random::thread();
    let mut attempt = 1;
    while let Err(reply) = shared.pool.prepare(addr, version, &connect).await {
        let failure = failure_of_reply(&reply);
        let retry = policy.should_retry(&Outcome::Failure(failure), None);
        if !retry {
            return Err(reply);
        }
        if attempt > policy.max_retries() {
            return Err(failed_reply(
                failure,
                attempt > 1,
                Some(RetryStop::Exhausted),
            ));
        }
        tokio::time::sleep(policy.backoff(attempt, &mut rng)).await;
        attempt += 1;
    }
    forward_once(
        shared,
        Direction::Inbound,
        (req.map(|b| ReplayBody::new(b, 0)), authority),
        addr,
        version,
        Some((&app, 0)),
        Sent::default(),
    )
    .await
}
