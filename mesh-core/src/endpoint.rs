//! Endpoints and their health: what routing reads and resilience writes.
//!
//! An [`EndpointSet`] is the endpoints of one cluster (service host, port, subset) at one
//! moment. It is immutable except for each endpoint's [`EndpointStats`]: health and request
//! counters held in atomics, so the balancer reads health and outlier detection writes it with
//! no lock on the request path. When the set itself changes (reload, DNS answer), a new set is
//! built and swapped in through an `ArcSwap` by whoever owns it; a request keeps the set it
//! started with.
//!
//! ```
//! use std::net::SocketAddr;
//! use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
//!
//! let set = EndpointSet::new(vec![
//!     Endpoint::new("127.0.0.1:8081".parse::<SocketAddr>().unwrap()),
//!     Endpoint::new("127.0.0.1:8082".parse::<SocketAddr>().unwrap()),
//! ]);
//! set.stats(0).set_health(Health::FailedOutlierCheck);
//! assert_eq!(set.healthy_count(), 1);
//! assert_eq!(set.pick_round_robin().map(|i| set.endpoint(i).addr.port()), Some(8082));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// One endpoint of a cluster: an address and what the registry knows about the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The workload's labels (subsets select on them).
    pub labels: Arc<BTreeMap<String, String>>,
    /// Load-balancing weight, at least 1.
    pub weight: u32,
    /// The workload's namespace.
    pub namespace: String,
    /// The service account the workload runs as, if known (SEMANTICS SE-6).
    pub service_account: Option<String>,
    /// The WorkloadEntry's name, when the endpoint is one selected by `workloadSelector`
    /// (metric labels, MET-4).
    pub workload: Option<Arc<str>>,
    /// `region/zone/subzone`, if known.
    pub locality: Option<String>,
    /// Named ports of the workload (`http` → 18081).
    pub ports: Arc<BTreeMap<String, u32>>,
}

impl Endpoint {
    /// An endpoint at `addr` with weight 1 and nothing else known.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            labels: Arc::default(),
            weight: 1,
            namespace: String::new(),
            service_account: None,
            workload: None,
            locality: None,
            ports: Arc::default(),
        }
    }

    /// Sets the labels.
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = Arc::new(labels);
        self
    }

    /// Whether the endpoint carries every label of `selector`.
    pub fn matches_labels(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    /// The SPIFFE ID a caller should expect from this endpoint, if it has a service account:
    /// `spiffe://TD/ns/NS/sa/SA` (SEMANTICS SE-6).
    pub fn spiffe_id(&self, trust_domain: &str) -> Option<String> {
        let sa = self.service_account.as_deref()?;
        Some(format!(
            "spiffe://{trust_domain}/ns/{}/sa/{sa}",
            self.namespace
        ))
    }
}

/// Health of an endpoint as Envoy's `/clusters` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Health {
    /// Eligible for traffic.
    Healthy = 0,
    /// Ejected by outlier detection.
    FailedOutlierCheck = 1,
}

impl Health {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Health::FailedOutlierCheck,
            _ => Health::Healthy,
        }
    }

    /// Envoy's `health_flags` text: `healthy` or `/failed_outlier_check`.
    pub fn flags(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::FailedOutlierCheck => "/failed_outlier_check",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.flags())
    }
}

/// Outlier detection's bookkeeping for one endpoint (SEMANTICS OD-2..OD-7), kept with the
/// endpoint's stats so it survives reloads and DNS refreshes like health does (RELOAD-3).
///
/// The consecutive-error counters are atomics updated on the request path; the ejection time
/// sits behind a mutex taken only when an endpoint is ejected, returned, or shown by an admin
/// endpoint — never by a request.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct OutlierState {
    /// Consecutive errors counted by `consecutive5xxErrors` (5xx, and local-origin failures
    /// unless split, OD-2, OD-4).
    pub consecutive_5xx: AtomicU32,
    /// Consecutive gateway errors (502/503/504 and local-origin failures, OD-2).
    pub consecutive_gateway: AtomicU32,
    /// Consecutive local-origin failures when `splitExternalLocalOriginErrors` is set (OD-4).
    pub consecutive_local_origin: AtomicU32,
    /// The ejection multiplier `k` of OD-6: raised on each ejection, lowered by each sweep the
    /// endpoint spends healthy.
    pub ejection_multiplier: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

impl OutlierState {
    /// When the current ejection ends, if the endpoint is ejected by outlier detection.
    pub fn ejected_until(&self) -> Option<Instant> {
        *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets or clears the end of the current ejection.
    pub fn set_ejected_until(&self, until: Option<Instant>) {
        *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    /// Resets the consecutive-error counters (a success, or the endpoint's return, OD-7).
    pub fn reset_counters(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local_origin.store(0, Ordering::Relaxed);
    }
}

/// Lock-free per-endpoint state: health and the counters `/clusters` shows.
#[derive(Debug, Default)]
pub struct EndpointStats {
    health: AtomicU8,
    rq_active: AtomicUsize,
    rq_total: AtomicU64,
    rq_success: AtomicU64,
    rq_error: AtomicU64,
    ejections: AtomicU64,
    outlier: OutlierState,
}

impl EndpointStats {
    /// Outlier detection's state for this endpoint.
    pub fn outlier(&self) -> &OutlierState {
        &self.outlier
    }

    /// Current health.
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Relaxed))
    }

    /// Sets the health; moving to an ejected state counts an ejection.
    pub fn set_health(&self, health: Health) {
        let old = self.health.swap(health as u8, Ordering::Relaxed);
        if health != Health::Healthy && old == Health::Healthy as u8 {
            self.ejections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request as started; the returned guard counts it as finished when dropped.
    pub fn start_request(self: &Arc<Self>) -> RequestGuard {
        self.rq_active.fetch_add(1, Ordering::Relaxed);
        self.rq_total.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            stats: Arc::clone(self),
            outcome: None,
        }
    }

    /// Requests in flight.
    pub fn rq_active(&self) -> usize {
        self.rq_active.load(Ordering::Relaxed)
    }

    /// Requests started.
    pub fn rq_total(&self) -> u64 {
        self.rq_total.load(Ordering::Relaxed)
    }

    /// Requests that got a non-5xx response.
    pub fn rq_success(&self) -> u64 {
        self.rq_success.load(Ordering::Relaxed)
    }

    /// Requests that failed (5xx, connect failure, reset).
    pub fn rq_error(&self) -> u64 {
        self.rq_error.load(Ordering::Relaxed)
    }

    /// Times the endpoint was ejected.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }
}

/// Tracks one request on an endpoint: in flight while alive, counted by outcome when dropped
/// (an unrecorded outcome counts as an error: the request was cancelled or failed).
#[derive(Debug)]
pub struct RequestGuard {
    stats: Arc<EndpointStats>,
    outcome: Option<bool>,
}

impl RequestGuard {
    /// Records whether the request succeeded.
    pub fn record(&mut self, success: bool) {
        self.outcome = Some(success);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.stats.rq_active.fetch_sub(1, Ordering::Relaxed);
        if self.outcome == Some(true) {
            self.stats.rq_success.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.rq_error.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The endpoints of one cluster with their live state.
#[derive(Debug, Default)]
pub struct EndpointSet {
    endpoints: Box<[Endpoint]>,
    stats: Box<[Arc<EndpointStats>]>,
    cursor: AtomicUsize,
}

impl EndpointSet {
    /// A set of `endpoints`, all healthy.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        let stats = endpoints.iter().map(|_| Arc::default()).collect();
        Self {
            endpoints: endpoints.into_boxed_slice(),
            stats,
            cursor: AtomicUsize::new(0),
        }
    }

    /// A new set of `endpoints` that keeps the live state of endpoints already in `self` (same
    /// address): health and counters survive a reload or DNS refresh (SEMANTICS RELOAD-3).
    pub fn carry_over(&self, endpoints: Vec<Endpoint>) -> Self {
        let stats = endpoints
            .iter()
            .map(|e| {
                self.endpoints
                    .iter()
                    .position(|old| old.addr == e.addr)
                    .map(|i| Arc::clone(&self.stats[i]))
                    .unwrap_or_default()
            })
            .collect();
        Self {
            endpoints: endpoints.into_boxed_slice(),
            stats,
            cursor: AtomicUsize::new(0),
        }
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Endpoint `i`.
    ///
    /// # Panics
    /// If `i` is out of range; indices come from this set's own picks.
    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i]
    }

    /// The live state of endpoint `i` (same indexing as [`Self::endpoint`]).
    pub fn stats(&self, i: usize) -> &Arc<EndpointStats> {
        &self.stats[i]
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the set has no endpoints.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Indices of the endpoints whose address is in `addrs` (the endpoints a retry should
    /// avoid, RETRY-13, given as addresses because the set may have changed since).
    pub fn indices_of(&self, addrs: &[SocketAddr]) -> Vec<usize> {
        if addrs.is_empty() {
            return Vec::new();
        }
        (0..self.endpoints.len())
            .filter(|&i| addrs.contains(&self.endpoints[i].addr))
            .collect()
    }

    /// Number of endpoints currently healthy.
    pub fn healthy_count(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.health() == Health::Healthy)
            .count()
    }

    /// Round robin over healthy endpoints; when none is healthy, over all of them (Envoy's
    /// panic mode at its default threshold). `None` only for an empty set.
    pub fn pick_round_robin(&self) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.stats[i].health() == Health::Healthy)
            .or(Some(start % n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u16) -> EndpointSet {
        EndpointSet::new(
            (0..n)
                .map(|i| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 8000 + i))))
                .collect(),
        )
    }

    #[test]
    fn round_robin_cycles_and_skips_ejected() {
        let s = set(3);
        let picks: Vec<_> = (0..6).filter_map(|_| s.pick_round_robin()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        s.stats(1).set_health(Health::FailedOutlierCheck);
        let picks: Vec<_> = (0..4).filter_map(|_| s.pick_round_robin()).collect();
        assert!(!picks.contains(&1));
        assert_eq!(s.stats(1).ejections(), 1);
    }

    #[test]
    fn all_ejected_falls_back_to_all_and_empty_is_none() {
        let s = set(2);
        s.stats(0).set_health(Health::FailedOutlierCheck);
        s.stats(1).set_health(Health::FailedOutlierCheck);
        assert!(s.pick_round_robin().is_some());
        assert_eq!(set(0).pick_round_robin(), None);
    }

    #[test]
    fn guard_counts_outcomes_and_state_carries_over() {
        let s = set(2);
        {
            let mut g = s.stats(0).start_request();
            assert_eq!(s.stats(0).rq_active(), 1);
            g.record(true);
        }
        drop(s.stats(0).start_request());
        assert_eq!((s.stats(0).rq_success(), s.stats(0).rq_error()), (1, 1));
        assert_eq!(s.stats(0).rq_active(), 0);
        let next = s.carry_over(vec![s.endpoint(0).clone()]);
        assert_eq!(next.stats(0).rq_total(), 2);
        assert_eq!(s.indices_of(&[s.endpoint(1).addr]), vec![1]);
        assert!(s.indices_of(&[]).is_empty());
    }
}
