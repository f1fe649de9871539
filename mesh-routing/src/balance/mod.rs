//! Load balancers: which endpoint of a cluster gets the request (SEMANTICS DR-6..DR-10, OD-10,
//! RETRY-13).
//!
//! A DestinationRule's `trafficPolicy.loadBalancer` (after subset and port-level resolution,
//! DR-3/DR-4) and `outlierDetection` compile into one [`LoadBalancer`] per cluster and
//! snapshot, with [`LoadBalancer::from_policy`]:
//!
//! - `simple` (DR-6): absent or `UNSPECIFIED` → `LEAST_REQUEST` (Istio ≥ 1.14), and the
//!   deprecated `LEAST_CONN` is the same thing: power of two choices over the endpoints'
//!   active requests ([`EndpointStats::rq_active`](mesh_core::endpoint::EndpointStats::rq_active)),
//!   the two candidates distinct and drawn by weight, a tie going to the first. `ROUND_ROBIN`
//!   is smooth weighted round robin; `RANDOM` a weighted random endpoint; `PASSTHROUGH`
//!   balances nothing: [`LoadBalancer::pick`] returns `None` and [`LoadBalancer::kind`] says
//!   [`BalancerKind::Passthrough`], and the caller connects to the original destination.
//! - endpoint `weight` (DR-7) scales every balancer's choice; 0 counts as 1.
//! - endpoints that are not [`Health::Healthy`](mesh_core::endpoint::Health) (ejected by
//!   outlier detection) are skipped by every balancer (DR-8); with none left, `pick` returns
//!   `None` (→ 503 `no healthy upstream`, flag `UH`) — except in **panic mode** (OD-10): when
//!   the healthy share of the endpoints is below the panic threshold, health is ignored and
//!   every endpoint is eligible. The threshold is `outlierDetection.minHealthPercent` when
//!   outlier detection is configured (default 0 = never panic, so all ejected → `None`) and
//!   Envoy's 50 % when it is not.
//! - `consistentHash` (DR-9, DR-10): a ring hash (`ringHash.minimumRingSize`, or the deprecated
//!   top-level `minimumRingSize`; default 1024 virtual nodes, at most 8,388,608) or maglev
//!   (`maglev.tableSize`, a prime, default 65537). The request's key comes from a
//!   [`HashPolicy`] (header, cookie, source IP or query parameter) hashed with [`hash_bytes`],
//!   a stable hash of our own (DR-10 "ours"). A request without its key is balanced at random
//!   (Envoy: a missing hash key is a random choice). An ejected endpoint's keys move to the
//!   next eligible endpoint on the ring or table; every other key stays where it was.
//!
//! Retries (RETRY-13) pass the endpoints a request already tried as `avoid`: the first pick and
//! up to [`HOST_SELECTION_RETRIES`] more avoid them (Istio's `hostSelectionRetryMaxAttempts`),
//! then a repeat is accepted. For hashing balancers the walk along the ring or table skips them
//! instead of drawing again (the default retry policy passes none there: RETRY-13).
//!
//! # Cost
//!
//! Everything that depends on the endpoints — weight prefix sums, the round-robin schedule,
//! the ring, the maglev table — is built once per [`EndpointSet`] (pingora's "build selection
//! once, iterate per request") and kept in a lock-free cache keyed by the set's `Arc`; a new
//! set (reload, DNS refresh) gets its own on first use, or ahead of time with
//! [`LoadBalancer::prepare`]. The two most recent sets are kept, so requests still holding the
//! previous set while new ones use the next do not rebuild in turn. A pick takes no lock and
//! allocates nothing; health is read from the endpoints' atomics, and the O(n) healthy count
//! (for panic mode) is only taken when an unhealthy endpoint is actually met.
//!
//! # Not implemented
//!
//! `warmup` / `warmupDurationSecs` (DR-12, slow start) is ignored: new endpoints get their
//! full weight at once. Locality-aware balancing (`localityLbSetting`, DR-11) is not done here.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
//! use mesh_core::model::{LoadBalancerSettings, OutlierDetection, SimpleLb};
//! use mesh_core::random::Random;
//! use mesh_routing::balance::{BalancerKind, LoadBalancer};
//!
//! let set = Arc::new(EndpointSet::new(
//!     (8081..=8083)
//!         .map(|port| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], port))))
//!         .collect(),
//! ));
//!
//! // trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {}}
//! let mut lb = LoadBalancerSettings::default();
//! lb.simple = Some(SimpleLb::RoundRobin);
//! let od = OutlierDetection::default();
//! let balancer = LoadBalancer::from_policy(Some(&lb), Some(&od));
//! assert_eq!(balancer.kind(), BalancerKind::RoundRobin);
//! assert_eq!(balancer.panic_threshold(), 0.0);
//!
//! let mut rng = Random::seeded(7);
//! let picks: Vec<_> = (0..3).map(|_| balancer.pick(&set, None, &[], &mut rng)).collect();
//! assert_eq!(picks, [Some(0), Some(1), Some(2)]);
//!
//! // An ejected endpoint is skipped (DR-8); a retry avoids the endpoint already tried.
//! set.stats(1).set_health(Health::FailedOutlierCheck);
//! assert!((0..10).all(|_| balancer.pick(&set, None, &[], &mut rng) != Some(1)));
//! let retry = balancer.pick(&set, None, &[0], &mut rng);
//! assert_eq!(retry, Some(2));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use mesh_core::endpoint::EndpointSet;
use mesh_core::model::{ConsistentHashLb, LoadBalancerSettings, OutlierDetection, SimpleLb};
use mesh_core::random::Random;

mod hash;
mod maglev;
mod ring;
mod simple;

#[cfg(test)]
mod tests;

pub use self::hash::{HashKey, HashPolicy, IssuedCookie, hash_bytes};

use self::maglev::Maglev;
use self::ring::Ring;
use self::simple::{Eligibility, Weights};

/// Host re-selections a pick makes to avoid endpoints the request already tried, after the
/// first selection (RETRY-13; Istio's `hostSelectionRetryMaxAttempts: 5`).
pub const HOST_SELECTION_RETRIES: usize = 5;

/// Envoy's default panic threshold in percent, used when no `outlierDetection` is configured
/// (OD-10).
pub const DEFAULT_PANIC_THRESHOLD: f64 = 50.0;

/// Which algorithm a [`LoadBalancer`] runs, for `explain` (its `Display` is the Istio name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BalancerKind {
    /// `ROUND_ROBIN`: smooth weighted round robin.
    RoundRobin,
    /// `LEAST_REQUEST` (also absent, `UNSPECIFIED` and `LEAST_CONN`): power of two choices.
    LeastRequest,
    /// `RANDOM`: weighted random.
    Random,
    /// `PASSTHROUGH`: no balancing; connect to the original destination.
    Passthrough,
    /// `consistentHash` with a ring (the default algorithm).
    RingHash {
        /// Virtual nodes on the ring, at least (default 1024, at most 8,388,608).
        minimum_ring_size: u64,
    },
    /// `consistentHash` with `maglev`.
    Maglev {
        /// Lookup table size, a prime (default 65537).
        table_size: u64,
    },
}

impl fmt::Display for BalancerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalancerKind::RoundRobin => f.write_str("ROUND_ROBIN"),
            BalancerKind::LeastRequest => f.write_str("LEAST_REQUEST"),
            BalancerKind::Random => f.write_str("RANDOM"),
            BalancerKind::Passthrough => f.write_str("PASSTHROUGH"),
            BalancerKind::RingHash { minimum_ring_size } => {
                write!(f, "RING_HASH(minimumRingSize={minimum_ring_size})")
            }
            BalancerKind::Maglev { table_size } => write!(f, "MAGLEV(tableSize={table_size})"),
        }
    }
}

/// The compiled load balancer of one cluster (SEMANTICS DR-6..DR-10, OD-10): built once per
/// snapshot with [`LoadBalancer::from_policy`], shared by every request (`Send + Sync`), and
/// asked for an endpoint with [`LoadBalancer::pick`]. See the [module docs](self).
pub struct LoadBalancer {
    kind: BalancerKind,
    hash_policy: Option<HashPolicy>,
    panic_threshold: f64,
    /// Round-robin position; survives endpoint-set swaps.
    cursor: AtomicUsize,
    /// Per-set prepared state of the two most recently used sets.
    cache: [ArcSwapOption<Prepared>; 2],
    /// Which cache slot the next miss replaces when neither is free.
    evict: AtomicUsize,
}

/// What a balancer precomputes for one endpoint set.
struct Prepared {
    /// The set this was built for; a `Weak` keeps the allocation (hence the address) from
    /// being reused by another set while we compare against it.
    set: Weak<EndpointSet>,
    weights: Weights,
    table: Table,
}

enum Table {
    /// Round robin with equal weights, random, least request.
    None,
    /// Weighted round robin.
    Schedule(Box<[u32]>),
    Ring(Ring),
    Maglev(Maglev),
}

impl LoadBalancer {
    /// Compiles a cluster's `loadBalancer` block and `outlierDetection` block (both after
    /// DR-3/DR-4 resolution; `None` = absent).
    ///
    /// - `lb` absent, or `simple` absent / `UNSPECIFIED` / `LEAST_CONN` → least request (DR-6).
    /// - `consistentHash` → ring hash, or maglev when `maglev` is set (DR-9, DR-10). When both
    ///   `simple` and `consistentHash` are set (validation rejects it) the hash wins.
    /// - Panic threshold (OD-10): `outlier.minHealthPercent` (clamped to 0–100) when `outlier`
    ///   is `Some`, else [`DEFAULT_PANIC_THRESHOLD`].
    pub fn from_policy(
        lb: Option<&LoadBalancerSettings>,
        outlier: Option<&OutlierDetection>,
    ) -> Self {
        let panic_threshold = outlier.map_or(DEFAULT_PANIC_THRESHOLD, |od| {
            f64::from(od.min_health_percent.clamp(0, 100))
        });
        let (kind, hash_policy) = match lb {
            None => (BalancerKind::LeastRequest, None),
            Some(lb) => match &lb.consistent_hash {
                Some(ch) => (hash_kind(ch), HashPolicy::from_config(ch)),
                None => (simple_kind(lb.simple.unwrap_or_default()), None),
            },
        };
        Self {
            kind,
            hash_policy,
            panic_threshold,
            cursor: AtomicUsize::new(0),
            cache: [ArcSwapOption::empty(), ArcSwapOption::empty()],
            evict: AtomicUsize::new(0),
        }
    }

    /// The algorithm, for `explain`.
    pub fn kind(&self) -> BalancerKind {
        self.kind
    }

    /// The request hash key of a consistent-hash balancer; `None` for the others, and for a
    /// `consistentHash` block that names no key (every request is then balanced at random).
    pub fn hash_policy(&self) -> Option<&HashPolicy> {
        self.hash_policy.as_ref()
    }

    /// The panic threshold in percent (OD-10): below this share of healthy endpoints, health
    /// is ignored. 0 = panic mode disabled.
    pub fn panic_threshold(&self) -> f64 {
        self.panic_threshold
    }

    /// Picks an endpoint index of `set`, or `None` when the set is empty, no endpoint is
    /// eligible (DR-8, OD-10: → 503 `UH`), or the balancer is
    /// [`Passthrough`](BalancerKind::Passthrough).
    ///
    /// - `hash`: the request's hash ([`HashKey::hash`]); only consistent-hash balancers read
    ///   it, and `None` there means a random choice (DR-9).
    /// - `avoid`: endpoint indices this request already tried (RETRY-13): they are avoided
    ///   for up to [`HOST_SELECTION_RETRIES`] re-selections, then a repeat is accepted.
    /// - `rng`: every random choice draws from it (seed it in tests).
    ///
    /// No lock, no allocation, except that the first pick on a new set builds that set's
    /// prepared state (see [`Self::prepare`]).
    pub fn pick(
        &self,
        set: &Arc<EndpointSet>,
        hash: Option<u64>,
        avoid: &[usize],
        rng: &mut Random,
    ) -> Option<usize> {
        if self.kind == BalancerKind::Passthrough || set.is_empty() {
            return None;
        }
        self.with_prepared(set, |p| self.pick_prepared(p, set, hash, avoid, rng))
    }

    /// Builds the state `set` needs (schedule, ring, maglev table) now, so that the first
    /// request after a set swap does not pay for it. Picks do this by themselves otherwise.
    pub fn prepare(&self, set: &Arc<EndpointSet>) {
        if self.kind != BalancerKind::Passthrough {
            self.with_prepared(set, |_| ());
        }
    }

    fn pick_prepared(
        &self,
        p: &Prepared,
        set: &EndpointSet,
        hash: Option<u64>,
        avoid: &[usize],
        rng: &mut Random,
    ) -> Option<usize> {
        let mut elig = Eligibility::new(set, self.panic_threshold);
        match (&p.table, hash) {
            (Table::Ring(ring), Some(h)) => {
                return ring.pick(h, &mut elig, avoid, HOST_SELECTION_RETRIES);
            }
            (Table::Maglev(table), Some(h)) => {
                return table.pick(h, &mut elig, avoid, HOST_SELECTION_RETRIES);
            }
            _ => {}
        }
        let mut last = None;
        for _ in 0..=HOST_SELECTION_RETRIES {
            let chosen = match (self.kind, &p.table) {
                (BalancerKind::RoundRobin, Table::Schedule(s)) => {
                    simple::round_robin(Some(s), &self.cursor, &mut elig)
                }
                (BalancerKind::RoundRobin, _) => simple::round_robin(None, &self.cursor, &mut elig),
                (BalancerKind::LeastRequest, _) => {
                    simple::least_request(set, &p.weights, &mut elig, rng)
                }
                // RANDOM, and a hashing balancer without a hash key (DR-9).
                _ => simple::random(&p.weights, &mut elig, rng),
            }?;
            if !avoid.contains(&chosen) {
                return Some(chosen);
            }
            last = Some(chosen);
        }
        last
    }

    /// Runs `f` on the prepared state of `set`, building it on a cache miss.
    fn with_prepared<R>(&self, set: &Arc<EndpointSet>, f: impl FnOnce(&Prepared) -> R) -> R {
        let ptr = Arc::as_ptr(set);
        for slot in &self.cache {
            let guard = slot.load();
            if let Some(p) = guard.as_deref()
                && std::ptr::eq(p.set.as_ptr(), ptr)
            {
                return f(p);
            }
        }
        let prepared = Arc::new(self.build(set));
        let free = self.cache.iter().position(|slot| {
            slot.load()
                .as_deref()
                .is_none_or(|p| p.set.strong_count() == 0)
        });
        let victim = free.unwrap_or_else(|| self.evict.fetch_add(1, Ordering::Relaxed) % 2);
        self.cache[victim].store(Some(Arc::clone(&prepared)));
        tracing::trace!(kind = %self.kind, endpoints = set.len(), "balancer state built");
        f(&prepared)
    }

    fn build(&self, set: &Arc<EndpointSet>) -> Prepared {
        let weights = Weights::build(set);
        let table = match self.kind {
            BalancerKind::RoundRobin => {
                if matches!(weights, Weights::Uniform(_)) {
                    Table::None
                } else {
                    Table::Schedule(simple::build_schedule(set))
                }
            }
            BalancerKind::RingHash { minimum_ring_size } => {
                Table::Ring(Ring::build(set, minimum_ring_size))
            }
            BalancerKind::Maglev { table_size } => Table::Maglev(Maglev::build(set, table_size)),
            _ => Table::None,
        };
        Prepared {
            set: Arc::downgrade(set),
            weights,
            table,
        }
    }

    /// The two candidates a least-request pick would compare (tests: P2C draws two distinct
    /// endpoints).
    #[cfg(test)]
    fn p2c_pair(&self, set: &Arc<EndpointSet>, rng: &mut Random) -> Option<(usize, Option<usize>)> {
        self.with_prepared(set, |p| {
            let mut elig = Eligibility::new(set, self.panic_threshold);
            simple::p2c_pair(&p.weights, &mut elig, rng)
        })
    }
}

impl Default for LoadBalancer {
    /// No `loadBalancer` and no `outlierDetection`: least request, 50 % panic threshold.
    fn default() -> Self {
        Self::from_policy(None, None)
    }
}

impl fmt::Debug for LoadBalancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("kind", &self.kind)
            .field("hash_policy", &self.hash_policy)
            .field("panic_threshold", &self.panic_threshold)
            .finish_non_exhaustive()
    }
}

fn simple_kind(simple: SimpleLb) -> BalancerKind {
    match simple {
        SimpleLb::RoundRobin => BalancerKind::RoundRobin,
        SimpleLb::Random => BalancerKind::Random,
        SimpleLb::Passthrough => BalancerKind::Passthrough,
        // UNSPECIFIED, LEAST_REQUEST, LEAST_CONN (DR-6), and anything newer.
        _ => BalancerKind::LeastRequest,
    }
}

fn hash_kind(ch: &ConsistentHashLb) -> BalancerKind {
    if let Some(m) = &ch.maglev {
        return BalancerKind::Maglev {
            table_size: maglev::effective_table_size(m.table_size),
        };
    }
    let configured = ch
        .ring_hash
        .map(|r| r.minimum_ring_size)
        .filter(|&s| s > 0)
        .unwrap_or(ch.minimum_ring_size);
    let size = if configured == 0 {
        ring::DEFAULT_RING_SIZE
    } else {
        configured.min(ring::MAX_RING_SIZE)
    };
    BalancerKind::RingHash {
        minimum_ring_size: size,
    }
}
