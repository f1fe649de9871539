//! The compiled form of a DestinationRule's `connectionPool` thresholds (DR-14) and
//! `retryBudget` (RES-2).

use mesh_core::model::ConnectionPoolSettings;

/// The circuit-breaker thresholds of one cluster (SEMANTICS DR-13, DR-14).
///
/// In this compiled form a number means what it says: `0` allows nothing and [`Limits::UNLIMITED`]
/// (2^32−1, what Istio writes for an unset field) checks nothing. Istio's "0 means unset" is
/// applied by [`Limits::from_config`] only.
///
/// ```
/// use mesh_resilience::breaker::Limits;
///
/// let limits = Limits::unlimited().with_max_connections(1).with_max_pending_requests(1);
/// assert_eq!(limits.max_connections, 1);
/// assert_eq!(limits.max_requests, Limits::UNLIMITED);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// `tcp.maxConnections`: most upstream connections open to the cluster.
    pub max_connections: u32,
    /// `http.http1MaxPendingRequests`: most requests waiting for a connection.
    pub max_pending_requests: u32,
    /// `http.http2MaxRequests`: most requests in flight to the cluster (every protocol, DR-14).
    pub max_requests: u32,
    /// `http.maxRetries`: most retries in flight to the cluster (RETRY-12).
    pub max_retries: u32,
}

impl Limits {
    /// The value Istio writes for an unset threshold: 2^32−1, i.e. no limit (DR-14).
    pub const UNLIMITED: u32 = u32::MAX;

    /// No limits at all (a cluster without `connectionPool`).
    pub fn unlimited() -> Self {
        Self {
            max_connections: Self::UNLIMITED,
            max_pending_requests: Self::UNLIMITED,
            max_requests: Self::UNLIMITED,
            max_retries: Self::UNLIMITED,
        }
    }

    /// The thresholds of a `connectionPool` block as Istio writes them for Envoy (DR-14): an
    /// absent block, an absent field, `0` or a negative number all mean 2^32−1 — **not**
    /// Envoy's own defaults of 1024 connections/pending/requests and 3 retries (pitfall).
    pub fn from_config(pool: Option<&ConnectionPoolSettings>) -> Self {
        let tcp = pool.and_then(|p| p.tcp.as_ref());
        let http = pool.and_then(|p| p.http.as_ref());
        Self {
            max_connections: threshold(tcp.map(|t| t.max_connections)),
            max_pending_requests: threshold(http.map(|h| h.http1_max_pending_requests)),
            max_requests: threshold(http.map(|h| h.http2_max_requests)),
            max_retries: threshold(http.map(|h| h.max_retries)),
        }
    }

    /// Sets `max_connections`.
    #[must_use]
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets `max_pending_requests`.
    #[must_use]
    pub fn with_max_pending_requests(mut self, n: u32) -> Self {
        self.max_pending_requests = n;
        self
    }

    /// Sets `max_requests`.
    #[must_use]
    pub fn with_max_requests(mut self, n: u32) -> Self {
        self.max_requests = n;
        self
    }

    /// Sets `max_retries`.
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
}

impl Default for Limits {
    /// [`Limits::unlimited`].
    fn default() -> Self {
        Self::unlimited()
    }
}

/// Istio's mapping of one threshold: unset, 0 or negative → unlimited (DR-14).
fn threshold(value: Option<i32>) -> u32 {
    match value {
        Some(n) if n > 0 => n.unsigned_abs(),
        _ => Limits::UNLIMITED,
    }
}

/// A limit as a count to compare with, `None` when unlimited.
pub(super) fn bound(limit: u32) -> Option<usize> {
    (limit != Limits::UNLIMITED).then(|| usize::try_from(limit).unwrap_or(usize::MAX))
}

/// Envoy's retry budget (SEMANTICS RES-2): concurrent retries allowed =
/// max(`min_retry_concurrency`, `percent` % × (active + pending requests)). When a cluster has
/// one it replaces the `maxRetries` threshold.
///
/// ```
/// use mesh_resilience::breaker::RetryBudget;
///
/// let budget = RetryBudget::envoy_default(); // 20 %, at least 3
/// assert_eq!(budget.allowed(25), 5);
/// assert_eq!(budget.allowed(2), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    percent: f64,
    min_concurrency: u32,
}

impl RetryBudget {
    /// Envoy's default share of active requests: 20 %.
    pub const DEFAULT_PERCENT: f64 = 20.0;
    /// Envoy's default minimum retry concurrency: 3.
    pub const DEFAULT_MIN_CONCURRENCY: u32 = 3;

    /// A budget of `percent` % of active and pending requests, never below `min_concurrency`.
    /// `percent` is clamped to 0–100 (NaN counts as 0).
    pub fn new(percent: f64, min_concurrency: u32) -> Self {
        let percent = if percent.is_nan() {
            0.0
        } else {
            percent.clamp(0.0, 100.0)
        };
        Self {
            percent,
            min_concurrency,
        }
    }

    /// Envoy's defaults: 20 %, at least 3 (RES-2; our SDK default, RES-4).
    pub fn envoy_default() -> Self {
        Self::new(Self::DEFAULT_PERCENT, Self::DEFAULT_MIN_CONCURRENCY)
    }

    /// A DestinationRule's `retryBudget`: absent `percent` → 20, `minRetryConcurrency` 0 → 3.
    /// `budgetInterval` is not supported: only current concurrency counts (its default).
    pub fn from_config(config: &mesh_core::model::RetryBudget) -> Self {
        let min = match config.min_retry_concurrency {
            0 => Self::DEFAULT_MIN_CONCURRENCY,
            n => n,
        };
        Self::new(config.percent.unwrap_or(Self::DEFAULT_PERCENT), min)
    }

    /// The share of active requests, in percent.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// Retries always allowed.
    pub fn min_concurrency(&self) -> u32 {
        self.min_concurrency
    }

    /// Concurrent retries allowed when `active_and_pending` requests are active or pending:
    /// max(min, ⌊percent × n / 100⌋).
    pub fn allowed(&self, active_and_pending: usize) -> usize {
        // `as` saturates for floats; the product is non-negative.
        let share = (self.percent * active_and_pending as f64 / 100.0).floor() as usize;
        share.max(usize::try_from(self.min_concurrency).unwrap_or(usize::MAX))
    }
}

impl Default for RetryBudget {
    /// [`RetryBudget::envoy_default`].
    fn default() -> Self {
        Self::envoy_default()
    }
}
