//! The proxy's own metrics (`mesh_` prefix), served by the admin listener in Prometheus text
//! format. Request-path counters are pre-resolved handles (an atomic add, no label lookup);
//! values kept elsewhere (reload stats, pool counters) are copied in at scrape time.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::headers::Direction;
use mesh_resilience::outlier::EjectionReason;

/// `{listener}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `outbound` or `inbound`.
    pub listener: &'static str,
}

/// `{result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// `{version}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// The config version.
    pub version: String,
}

/// `{listener, response_flags}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocalReplyLabels {
    /// `outbound` or `inbound`.
    pub listener: &'static str,
    /// Envoy's response flag (`NR`, `UH`, `UF`, …).
    pub response_flags: &'static str,
}

/// `{cluster}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// The cluster (`outbound|PORT|SUBSET|FQDN`).
    pub cluster: String,
}

/// `{cluster, reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EjectionLabels {
    /// The cluster.
    pub cluster: String,
    /// The detector that ejected (`consecutive_5xx`, `consecutive_gateway_failure`,
    /// `consecutive_local_origin_failure`).
    pub reason: &'static str,
}

/// Counters of the outbound guard rails (SEMANTICS RETRY-12, RES-4, OD-8), per cluster. They
/// move only when something goes wrong (a retry, a timeout, an overflow, an ejection), so the
/// label lookup is off the success path.
#[derive(Debug, Default)]
pub struct ResilienceMetrics {
    retries: Family<ClusterLabels, Counter>,
    retry_limit_exceeded: Family<ClusterLabels, Counter>,
    retry_overflow: Family<ClusterLabels, Counter>,
    budget_exhausted: Family<ClusterLabels, Counter>,
    timeouts: Family<ClusterLabels, Counter>,
    per_try_timeouts: Family<ClusterLabels, Counter>,
    overflow: Family<ClusterLabels, Counter>,
    ejections: Family<EjectionLabels, Counter>,
    ejection_overflow: Family<ClusterLabels, Counter>,
    ejections_active: Family<ClusterLabels, Gauge>,
}

impl ResilienceMetrics {
    fn register(&self, registry: &mut Registry) {
        let families: [(&str, &str, &Family<ClusterLabels, Counter>); 8] = [
            ("mesh_upstream_rq_retry", "Retries sent", &self.retries),
            (
                "mesh_upstream_rq_retry_limit_exceeded",
                "Requests whose retries were used up while another was wanted (flag URX)",
                &self.retry_limit_exceeded,
            ),
            (
                "mesh_upstream_rq_retry_overflow",
                "Retries refused by maxRetries or the retry budget (flag UO)",
                &self.retry_overflow,
            ),
            (
                "mesh_retry_budget_exhausted",
                "Retries refused by the retry budget",
                &self.budget_exhausted,
            ),
            (
                "mesh_upstream_rq_timeout",
                "Requests that hit the route timeout (flag UT)",
                &self.timeouts,
            ),
            (
                "mesh_upstream_rq_per_try_timeout",
                "Attempts that hit the per-try timeout",
                &self.per_try_timeouts,
            ),
            (
                "mesh_upstream_rq_pending_overflow",
                "Requests refused by the circuit breaker (flag UO, x-envoy-overloaded)",
                &self.overflow,
            ),
            (
                "mesh_outlier_ejections_overflow",
                "Ejections not made because maxEjectionPercent was reached",
                &self.ejection_overflow,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "mesh_outlier_ejections",
            "Endpoints ejected by outlier detection, by detector",
            self.ejections.clone(),
        );
        registry.register(
            "mesh_outlier_ejections_active",
            "Endpoints ejected now",
            self.ejections_active.clone(),
        );
    }

    fn family(&self, event: ClusterEvent) -> &Family<ClusterLabels, Counter> {
        match event {
            ClusterEvent::Retry => &self.retries,
            ClusterEvent::RetryLimitExceeded => &self.retry_limit_exceeded,
            ClusterEvent::RetryOverflow => &self.retry_overflow,
            ClusterEvent::BudgetExhausted => &self.budget_exhausted,
            ClusterEvent::Timeout => &self.timeouts,
            ClusterEvent::PerTryTimeout => &self.per_try_timeouts,
            ClusterEvent::Overflow => &self.overflow,
            ClusterEvent::EjectionOverflow => &self.ejection_overflow,
        }
    }

    /// Counts `event` for `cluster`. The handle is looked up (a label allocation and the
    /// family's lock) once per cluster and config version, then kept in `counters`, so an
    /// overflow storm costs an atomic add per request.
    pub fn count(&self, counters: &ClusterCounters, cluster: &str, event: ClusterEvent) {
        counters.events[event as usize]
            .get_or_init(|| {
                self.family(event)
                    .get_or_create(&ClusterLabels {
                        cluster: cluster.to_owned(),
                    })
                    .clone()
            })
            .inc();
    }

    /// Counts an ejection of `cluster`'s endpoint by detector `reason` (one of three).
    pub fn ejection(&self, counters: &ClusterCounters, cluster: &str, reason: EjectionReason) {
        let slot = match reason {
            EjectionReason::Consecutive5xx => 0,
            EjectionReason::ConsecutiveGateway => 1,
            _ => 2,
        };
        let reason = reason.as_str();
        counters.ejections[slot]
            .get_or_init(|| {
                self.ejections
                    .get_or_create(&EjectionLabels {
                        cluster: cluster.to_owned(),
                        reason,
                    })
                    .clone()
            })
            .inc();
    }

    /// Sets the ejected-now gauge of each cluster with outlier detection (at scrape time).
    pub fn set_active_ejections<'a>(&self, clusters: impl IntoIterator<Item = (&'a str, usize)>) {
        self.ejections_active.clear();
        for (cluster, n) in clusters {
            self.ejections_active
                .get_or_create(&ClusterLabels {
                    cluster: cluster.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// What the guard rails count per cluster (SEMANTICS RETRY-12, RES-4, OD-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A retry sent.
    Retry,
    /// Attempts used up while a retry was wanted (`URX`).
    RetryLimitExceeded,
    /// A retry refused by `maxRetries` or the retry budget (`UO`).
    RetryOverflow,
    /// A retry refused by the retry budget.
    BudgetExhausted,
    /// The route timeout fired (`UT`).
    Timeout,
    /// A per-try timeout fired.
    PerTryTimeout,
    /// A circuit-breaker overflow (`UO`).
    Overflow,
    /// An ejection prevented by `maxEjectionPercent`.
    EjectionOverflow,
}

/// One cluster's counter handles, resolved on first use.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    events: [std::sync::OnceLock<Counter>; 8],
    ejections: [std::sync::OnceLock<Counter>; 3],
}

/// Per-listener request-path handles.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    /// Requests received.
    pub requests: Counter,
    /// Requests in flight.
    pub active_requests: Gauge,
    /// Connections accepted.
    pub connections: Counter,
    /// Connections open.
    pub active_connections: Gauge,
}

/// `{reason}` of a refused inbound connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// `plaintext` (STRICT port), `handshake` (TLS failed), `no_identity` (no certificate to
    /// terminate mTLS with).
    pub reason: &'static str,
}

/// `{protocol, decision}` of an authorization decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthzLabels {
    /// `http` or `tcp`.
    pub protocol: &'static str,
    /// `allow`, `deny`, or `audit` (an allowed request an AUDIT policy marked).
    pub decision: &'static str,
}

/// `{decision}` dry-run policies would have made (AUTHZ-26).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DryRunLabels {
    /// `allow` or `deny`.
    pub decision: &'static str,
}

/// `{policy}` of inbound connections: `mutual_tls` or `none` (Istio's
/// `connection_security_policy`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecurityLabels {
    /// `mutual_tls` or `none`.
    pub connection_security_policy: &'static str,
}

/// Counters of mTLS, PeerAuthentication and authorization (SEMANTICS PA-4, AUTHZ-23).
#[derive(Debug, Default)]
pub struct SecurityMetrics {
    rejected: Family<RejectLabels, Counter>,
    authz: Family<AuthzLabels, Counter>,
    dry_run: Family<DryRunLabels, Counter>,
    inbound: Family<SecurityLabels, Counter>,
    /// Outbound TLS handshakes that failed (DR-20).
    pub upstream_tls_failures: Counter,
    /// Times the proxy's certificate was replaced (file change or rotation).
    pub certificate_rotations: Counter,
    /// Expiry of the proxy's current certificate, Unix seconds.
    pub certificate_expiry: Gauge,
}

impl SecurityMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "mesh_inbound_rejected",
            "Inbound connections refused by the PeerAuthentication mode or a failed handshake",
            self.rejected.clone(),
        );
        registry.register(
            "mesh_authz_decisions",
            "AuthorizationPolicy decisions on the inbound side",
            self.authz.clone(),
        );
        registry.register(
            "mesh_authz_dry_run",
            "Decisions dry-run AuthorizationPolicies would have made (istio.io/dry-run), not enforced",
            self.dry_run.clone(),
        );
        registry.register(
            "mesh_inbound_connections_security",
            "Inbound connections accepted, by connection security policy",
            self.inbound.clone(),
        );
        registry.register(
            "mesh_upstream_cx_tls_fail",
            "Upstream TLS handshakes that failed",
            self.upstream_tls_failures.clone(),
        );
        registry.register(
            "mesh_certificate_rotations",
            "Times the proxy's own certificate was replaced",
            self.certificate_rotations.clone(),
        );
        registry.register(
            "mesh_certificate_expiration_timestamp_seconds",
            "Expiry of the proxy's current certificate (Unix time)",
            self.certificate_expiry.clone(),
        );
    }

    /// Counts a refused inbound connection.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
    }

    /// Counts an authorization decision.
    pub fn authz(&self, protocol: &'static str, decision: &'static str) {
        self.authz
            .get_or_create(&AuthzLabels { protocol, decision })
            .inc();
    }

    /// Counts the decision dry-run policies would have made (AUTHZ-26).
    pub fn authz_dry_run(&self, allowed: bool) {
        let decision = if allowed { "allow" } else { "deny" };
        self.dry_run.get_or_create(&DryRunLabels { decision }).inc();
    }

    /// Counts an accepted inbound connection.
    pub fn inbound_connection(&self, mtls: bool) {
        let policy = if mtls { "mutual_tls" } else { "none" };
        self.inbound
            .get_or_create(&SecurityLabels {
                connection_security_policy: policy,
            })
            .inc();
    }
}

/// Every metric of the proxy.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Outbound listener handles.
    pub outbound: ListenerMetrics,
    /// Inbound listener handles.
    pub inbound: ListenerMetrics,
    /// The outbound guard rails' counters.
    pub resilience: ResilienceMetrics,
    /// mTLS, PeerAuthentication and authorization counters.
    pub security: SecurityMetrics,
    /// Istio's standard metrics (`istio_requests_total`, …, SEMANTICS MET-1).
    pub istio: mesh_telemetry::metrics::IstioMetrics,
    local_replies: Family<LocalReplyLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    reload_failures: Counter,
    version: Family<VersionLabels, Gauge>,
    last_reload: Gauge,
    upstream_cx: Counter,
    upstream_cx_fail: Counter,
    upstream_cx_reused: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<ListenerLabels, Counter>::default();
        let active_requests = Family::<ListenerLabels, Gauge>::default();
        let connections = Family::<ListenerLabels, Counter>::default();
        let active_connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "mesh_downstream_rq",
            "Requests received by a listener",
            requests.clone(),
        );
        registry.register(
            "mesh_downstream_rq_active",
            "Requests in flight on a listener",
            active_requests.clone(),
        );
        registry.register(
            "mesh_downstream_cx",
            "Connections accepted by a listener",
            connections.clone(),
        );
        registry.register(
            "mesh_downstream_cx_active",
            "Connections open on a listener",
            active_connections.clone(),
        );
        let handles = |l: &'static str| ListenerMetrics {
            requests: requests
                .get_or_create(&ListenerLabels { listener: l })
                .clone(),
            active_requests: active_requests
                .get_or_create(&ListenerLabels { listener: l })
                .clone(),
            connections: connections
                .get_or_create(&ListenerLabels { listener: l })
                .clone(),
            active_connections: active_connections
                .get_or_create(&ListenerLabels { listener: l })
                .clone(),
        };
        let outbound = handles("outbound");
        let inbound = handles("inbound");
        let local_replies = Family::<LocalReplyLabels, Counter>::default();
        registry.register(
            "mesh_local_replies",
            "Replies the proxy generated itself, by response flag",
            local_replies.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "mesh_config_reloads",
            "Config loads by result (the first load counts as a success)",
            reloads.clone(),
        );
        let reload_failures = Counter::default();
        registry.register(
            "mesh_config_reload_failures",
            "Config reloads rejected; the last good config kept serving",
            reload_failures.clone(),
        );
        let version = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "mesh_config_version_info",
            "The config version serving now (value 1)",
            version.clone(),
        );
        let last_reload = Gauge::default();
        registry.register(
            "mesh_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load",
            last_reload.clone(),
        );
        let upstream_cx = Counter::default();
        registry.register(
            "mesh_upstream_cx",
            "Upstream connections opened",
            upstream_cx.clone(),
        );
        let upstream_cx_fail = Counter::default();
        registry.register(
            "mesh_upstream_cx_connect_fail",
            "Upstream connect attempts that failed",
            upstream_cx_fail.clone(),
        );
        let upstream_cx_reused = Counter::default();
        registry.register(
            "mesh_upstream_rq_reused_cx",
            "Upstream requests sent on a pooled connection",
            upstream_cx_reused.clone(),
        );
        let resilience = ResilienceMetrics::default();
        resilience.register(&mut registry);
        let security = SecurityMetrics::default();
        security.register(&mut registry);
        let istio = mesh_telemetry::metrics::IstioMetrics::new();
        istio.register(&mut registry);
        Self {
            registry,
            outbound,
            inbound,
            resilience,
            security,
            istio,
            local_replies,
            reloads,
            reload_failures,
            version,
            last_reload,
            upstream_cx,
            upstream_cx_fail,
            upstream_cx_reused,
        }
    }

    /// The handles of a listener.
    pub fn listener(&self, direction: Direction) -> &ListenerMetrics {
        match direction {
            Direction::Outbound => &self.outbound,
            Direction::Inbound => &self.inbound,
        }
    }

    /// Counts a local reply (rare path: a label lookup is fine here).
    pub fn local_reply(&self, direction: Direction, flag: &'static str) {
        self.local_replies
            .get_or_create(&LocalReplyLabels {
                listener: direction.as_str(),
                response_flags: flag,
            })
            .inc();
    }

    /// Copies the values kept elsewhere in, then encodes everything: as OpenMetrics (with
    /// exemplars and `# EOF`) when `openmetrics`, else in the Prometheus text format.
    pub fn render(&self, sources: &ScrapeSources<'_>, openmetrics: bool) -> String {
        let set = |c: &Counter, v: u64| c.inner().store(v, Ordering::Relaxed);
        set(
            &self
                .reloads
                .get_or_create(&ResultLabels { result: "success" }),
            sources.reload_successes,
        );
        set(
            &self
                .reloads
                .get_or_create(&ResultLabels { result: "failure" }),
            sources.reload_failures,
        );
        set(&self.reload_failures, sources.reload_failures);
        self.version.clear();
        self.version
            .get_or_create(&VersionLabels {
                version: sources.version.to_owned(),
            })
            .set(1);
        self.last_reload
            .set(i64::try_from(sources.last_reload_unix).unwrap_or(i64::MAX));
        set(&self.upstream_cx, sources.upstream_cx);
        set(&self.upstream_cx_fail, sources.upstream_cx_fail);
        set(&self.upstream_cx_reused, sources.upstream_cx_reused);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if openmetrics {
            out
        } else {
            mesh_telemetry::metrics::to_prometheus_text(&out)
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct ScrapeSources<'a> {
    /// Config version serving.
    pub version: &'a str,
    /// Successful loads.
    pub reload_successes: u64,
    /// Rejected reloads.
    pub reload_failures: u64,
    /// Unix time of the last successful load.
    pub last_reload_unix: u64,
    /// Upstream connections opened.
    pub upstream_cx: u64,
    /// Upstream connect failures.
    pub upstream_cx_fail: u64,
    /// Upstream requests on reused connections.
    pub upstream_cx_reused: u64,
}
