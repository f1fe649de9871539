//! The shared counters of one cluster's circuit breaker and the permits that hold them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mesh_core::BoxError;
use mesh_core::classify::{Failure, FailureError};
use mesh_core::model::ConnectionPoolSettings;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::{Limits, RetryBudget, bound};

/// A cluster's circuit breaker (SEMANTICS DR-13..DR-17, RETRY-12, RES-2): limits plus live
/// counters of active requests, pending requests, active retries and open connections.
///
/// Cloning is cheap and clones share the counters (they sit behind an `Arc`): build one per
/// client proxy and cluster (DR-13) and hand clones to every request. Every `try_*` is a few
/// atomic operations, with no lock; only [`CircuitBreaker::acquire_connection`] may wait, on a
/// [`tokio::sync::Semaphore`], and only when `maxConnections` is set.
///
/// ```
/// use mesh_resilience::breaker::{CircuitBreaker, Limits};
///
/// let breaker = CircuitBreaker::new(Limits::unlimited().with_max_requests(1));
/// let first = breaker.try_request().expect("one request fits");
/// assert!(breaker.try_request().is_err(), "the second overflows at once (DR-15)");
/// drop(first);
/// assert!(breaker.try_request().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    limits: Limits,
    budget: Option<RetryBudget>,
    counters: Arc<Counters>,
    /// The connection slots; `None` when `max_connections` is unlimited.
    connections: Option<Arc<ConnectionGate>>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicUsize,
    pending: AtomicUsize,
    retries: AtomicUsize,
    connections: AtomicUsize,
    requests_overflow: AtomicU64,
    pending_overflow: AtomicU64,
    retries_overflow: AtomicU64,
    budget_exhausted: AtomicU64,
}

/// `maxConnections` slots: a FIFO semaphore, resizable by a reload.
#[derive(Debug)]
struct ConnectionGate {
    semaphore: Arc<Semaphore>,
    /// Permits to forget as they come back: a reload lowered the limit below what was held.
    debt: AtomicUsize,
    /// The current number of slots; only reloads change it (the lock is never on a request).
    capacity: Mutex<usize>,
}

impl ConnectionGate {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.min(Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(capacity)),
            debt: AtomicUsize::new(0),
            capacity: Mutex::new(capacity),
        }
    }

    /// Changes the number of slots, leaving held ones held: shrinking forgets free permits and
    /// records the rest as a debt paid by permits coming back.
    fn resize(&self, capacity: usize) {
        let capacity = capacity.min(Semaphore::MAX_PERMITS);
        let mut current = self.capacity.lock().unwrap_or_else(PoisonError::into_inner);
        if capacity > *current {
            // Growth first pays off any debt, then adds permits.
            let grow = capacity - *current;
            let (Ok(debt) | Err(debt)) =
                self.debt
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |debt| {
                        Some(debt - debt.min(grow))
                    });
            self.semaphore.add_permits(grow - debt.min(grow));
        } else {
            let shrink = *current - capacity;
            let forgotten = self.semaphore.forget_permits(shrink);
            self.debt.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        *current = capacity;
    }

    /// Takes one unit of debt, if any.
    fn take_debt(&self) -> bool {
        self.debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok()
    }
}

/// Counters of refusals, for metrics (`mesh_upstream_rq_pending_overflow_total` and friends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// Requests refused by `http2MaxRequests` (DR-15).
    pub requests_overflow: u64,
    /// Requests refused because the pending queue was full (`http1MaxPendingRequests`, DR-15).
    pub pending_overflow: u64,
    /// Retries refused, by `maxRetries` or by the retry budget (RETRY-12,
    /// `mesh_upstream_rq_retry_overflow_total`).
    pub retries_overflow: u64,
    /// Of those, retries refused by the retry budget (RES-4, `mesh_retry_budget_exhausted_total`).
    pub budget_exhausted: u64,
}

/// A request or connection refused by the circuit breaker (DR-15): answered at once with 503
/// `UO`, never retried and not counted by outlier detection (DR-16).
///
/// As a [`BoxError`] it travels as [`FailureError`]`(`[`Failure::Overflow`]`)`, so
/// [`mesh_core::classify::failure_of`] recognises it anywhere in an error chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("upstream overflow")]
pub struct Overflow;

impl Overflow {
    /// The error a service returns for an overflow: a boxed
    /// [`FailureError`]`(`[`Failure::Overflow`]`)`.
    pub fn into_box_error(self) -> BoxError {
        Box::new(FailureError::from(self))
    }

    /// Whether `error` (or an error in its source chain) is a circuit-breaker overflow.
    pub fn is_overflow(error: &(dyn std::error::Error + 'static)) -> bool {
        mesh_core::classify::failure_of(error) == Failure::Overflow
    }
}

impl From<Overflow> for FailureError {
    fn from(_: Overflow) -> Self {
        FailureError(Failure::Overflow)
    }
}

/// A retry refused by the cluster's retry limit (RETRY-12): the failure is returned as it is,
/// with flag `UO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("retry denied: {}", denied_by(.budget))]
pub struct RetryDenied {
    /// `true` when the retry budget refused it (RES-2), `false` for `maxRetries`.
    pub budget: bool,
}

fn denied_by(budget: &bool) -> &'static str {
    if *budget {
        "retry budget exhausted"
    } else {
        "max retries reached"
    }
}

/// One active request (`http2MaxRequests`); dropping it ends the request's count.
#[derive(Debug)]
#[must_use = "the request stops counting when the permit is dropped"]
pub struct RequestPermit {
    counters: Arc<Counters>,
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.counters.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One active retry (`maxRetries` or the retry budget); dropping it ends the retry's count.
#[derive(Debug)]
#[must_use = "the retry stops counting when the permit is dropped"]
pub struct RetryPermit {
    counters: Arc<Counters>,
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.counters.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connection slot (`maxConnections`); hold it as long as the connection is open.
/// Dropping it frees the slot for the first request in the pending queue.
#[derive(Debug)]
#[must_use = "the connection slot is freed when the permit is dropped"]
pub struct ConnectionPermit {
    counters: Arc<Counters>,
    slot: Option<(Arc<ConnectionGate>, OwnedSemaphorePermit)>,
}

impl ConnectionPermit {
    fn new(
        counters: Arc<Counters>,
        slot: Option<(Arc<ConnectionGate>, OwnedSemaphorePermit)>,
    ) -> Self {
        counters.connections.fetch_add(1, Ordering::AcqRel);
        Self { counters, slot }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        // Uncount first, so a waiter woken by the release never sees one too many.
        self.counters.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some((gate, permit)) = self.slot.take()
            && gate.take_debt()
        {
            permit.forget();
        }
    }
}

/// Counts a request as pending while it waits for a connection (cancel safety: dropped with
/// the waiting future).
struct PendingGuard(Arc<Counters>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds one to `counter` if it stays within `limit` (`None` = unlimited).
fn try_increment(counter: &AtomicUsize, limit: Option<usize>) -> bool {
    match limit {
        None => {
            counter.fetch_add(1, Ordering::AcqRel);
            true
        }
        Some(limit) => counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok(),
    }
}

impl CircuitBreaker {
    /// A breaker that never refuses (a cluster without `connectionPool`); it still counts.
    pub fn unlimited() -> Self {
        Self::new(Limits::unlimited())
    }

    /// A breaker with `limits` and fresh counters, without retry budget.
    pub fn new(limits: Limits) -> Self {
        let connections = bound(limits.max_connections).map(|n| Arc::new(ConnectionGate::new(n)));
        Self {
            limits,
            budget: None,
            counters: Arc::default(),
            connections,
        }
    }

    /// A cluster's breaker from its effective `connectionPool` and `retryBudget` blocks (after
    /// DR-3/DR-4 resolution): [`Limits::from_config`], plus the budget when one is configured
    /// (it then replaces `maxRetries`, RES-2).
    pub fn from_config(
        pool: Option<&ConnectionPoolSettings>,
        budget: Option<&mesh_core::model::RetryBudget>,
    ) -> Self {
        let breaker = Self::new(Limits::from_config(pool));
        match budget {
            Some(b) => breaker.with_retry_budget(RetryBudget::from_config(b)),
            None => breaker,
        }
    }

    /// Limits concurrent retries with `budget` instead of `max_retries` (RES-2).
    #[must_use]
    pub fn with_retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Keeps `self`'s limits and budget but counts with `previous`'s counters (RELOAD-3): what
    /// is in flight under the old configuration stays counted, and its permits, when dropped,
    /// free capacity under the new limits.
    ///
    /// Connection slots: when both have a `max_connections`, the previous slots are resized to
    /// the new limit (held slots stay held; shrinking below them takes effect as they are
    /// freed). Going from unlimited to a limit starts with empty slots: connections opened
    /// while unlimited are counted by [`Self::active_connections`] but do not occupy a slot.
    /// Call it once per successor.
    #[must_use]
    pub fn carry_over(mut self, previous: &CircuitBreaker) -> Self {
        self.counters = Arc::clone(&previous.counters);
        if let (Some(capacity), Some(gate)) =
            (bound(self.limits.max_connections), &previous.connections)
        {
            gate.resize(capacity);
            self.connections = Some(Arc::clone(gate));
        }
        self
    }

    /// The thresholds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The retry budget, if one replaces `max_retries`.
    pub fn retry_budget(&self) -> Option<RetryBudget> {
        self.budget
    }

    /// Admits one request under `http2MaxRequests` (HTTP/1.1 and HTTP/2 alike, DR-14), or
    /// refuses it at once (DR-15): a full breaker sheds, it never queues. The request counts as
    /// active until the permit is dropped.
    pub fn try_request(&self) -> Result<RequestPermit, Overflow> {
        if try_increment(&self.counters.requests, bound(self.limits.max_requests)) {
            Ok(RequestPermit {
                counters: Arc::clone(&self.counters),
            })
        } else {
            self.counters
                .requests_overflow
                .fetch_add(1, Ordering::Relaxed);
            Err(Overflow)
        }
    }

    /// Admits one retry (RETRY-12): under the retry budget over active + pending requests when
    /// one is set (RES-2), else under `maxRetries`. Call it before each retry (not the first
    /// try) and hold the permit for the retry's duration; it does not admit the request itself
    /// ([`Self::try_request`] still applies).
    pub fn try_retry(&self) -> Result<RetryPermit, RetryDenied> {
        let (limit, budget) = match self.budget {
            Some(b) => (
                Some(b.allowed(self.active_requests() + self.pending_requests())),
                true,
            ),
            None => (bound(self.limits.max_retries), false),
        };
        if try_increment(&self.counters.retries, limit) {
            return Ok(RetryPermit {
                counters: Arc::clone(&self.counters),
            });
        }
        self.counters
            .retries_overflow
            .fetch_add(1, Ordering::Relaxed);
        if budget {
            self.counters
                .budget_exhausted
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(RetryDenied { budget })
    }

    /// A connection slot (DR-15, DR-17): at once if fewer than `maxConnections` are held;
    /// otherwise the request waits in the pending queue (counted by
    /// [`Self::pending_requests`]) when it has room under `http1MaxPendingRequests`, and gets
    /// the first slot freed, in arrival order; otherwise it fails at once with [`Overflow`].
    ///
    /// Cancel safety: dropping the future leaves the queue and uncounts the request; a slot is
    /// only ever held by a returned [`ConnectionPermit`].
    pub async fn acquire_connection(&self) -> Result<ConnectionPermit, Overflow> {
        let Some(gate) = &self.connections else {
            return Ok(ConnectionPermit::new(Arc::clone(&self.counters), None));
        };
        if let Ok(permit) = Arc::clone(&gate.semaphore).try_acquire_owned() {
            let slot = Some((Arc::clone(gate), permit));
            return Ok(ConnectionPermit::new(Arc::clone(&self.counters), slot));
        }
        let pending_limit = bound(self.limits.max_pending_requests);
        if !try_increment(&self.counters.pending, pending_limit) {
            self.counters
                .pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            return Err(Overflow);
        }
        let pending = PendingGuard(Arc::clone(&self.counters));
        // The semaphore is never closed, so the error arm cannot happen.
        let permit = Arc::clone(&gate.semaphore)
            .acquire_owned()
            .await
            .map_err(|_| Overflow)?;
        drop(pending);
        let slot = Some((Arc::clone(gate), permit));
        Ok(ConnectionPermit::new(Arc::clone(&self.counters), slot))
    }

    /// Requests in flight (holding a [`RequestPermit`]).
    pub fn active_requests(&self) -> usize {
        self.counters.requests.load(Ordering::Acquire)
    }

    /// Requests waiting in the pending queue for a connection.
    pub fn pending_requests(&self) -> usize {
        self.counters.pending.load(Ordering::Acquire)
    }

    /// Retries in flight (holding a [`RetryPermit`]).
    pub fn active_retries(&self) -> usize {
        self.counters.retries.load(Ordering::Acquire)
    }

    /// Connections open (holding a [`ConnectionPermit`]).
    pub fn active_connections(&self) -> usize {
        self.counters.connections.load(Ordering::Acquire)
    }

    /// Refusals so far, for metrics.
    pub fn stats(&self) -> BreakerStats {
        let c = &self.counters;
        BreakerStats {
            requests_overflow: c.requests_overflow.load(Ordering::Relaxed),
            pending_overflow: c.pending_overflow.load(Ordering::Relaxed),
            retries_overflow: c.retries_overflow.load(Ordering::Relaxed),
            budget_exhausted: c.budget_exhausted.load(Ordering::Relaxed),
        }
    }
}

impl Default for CircuitBreaker {
    /// [`CircuitBreaker::unlimited`].
    fn default() -> Self {
        Self::unlimited()
    }
}
