//! `OutlierDetector`: consecutive-error accounting, ejection and return of endpoints.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mesh_core::classify::{Failure, Outcome};
use mesh_core::endpoint::{EndpointSet, EndpointStats, Health, OutlierState};
use tokio::time::Instant;

use super::config::OutlierConfig;

/// Why an endpoint was ejected; [`EjectionReason::as_str`] is the `reason` label of
/// `mesh_outlier_ejections_total` (OD-8), after Envoy's `outlier_detection.ejections_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EjectionReason {
    /// `consecutive5xxErrors` tripped.
    Consecutive5xx,
    /// `consecutiveGatewayErrors` tripped.
    ConsecutiveGateway,
    /// `consecutiveLocalOriginFailures` tripped (split mode, OD-4).
    ConsecutiveLocalOrigin,
}

impl EjectionReason {
    /// Every reason, in label order.
    pub const ALL: [EjectionReason; 3] = [
        EjectionReason::Consecutive5xx,
        EjectionReason::ConsecutiveGateway,
        EjectionReason::ConsecutiveLocalOrigin,
    ];

    /// The metric label: `consecutive_5xx`, `consecutive_gateway_failure` or
    /// `consecutive_local_origin_failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectionReason::Consecutive5xx => "consecutive_5xx",
            EjectionReason::ConsecutiveGateway => "consecutive_gateway_failure",
            EjectionReason::ConsecutiveLocalOrigin => "consecutive_local_origin_failure",
        }
    }

    fn index(self) -> usize {
        match self {
            EjectionReason::Consecutive5xx => 0,
            EjectionReason::ConsecutiveGateway => 1,
            EjectionReason::ConsecutiveLocalOrigin => 2,
        }
    }
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one [`OutlierDetector::report`] did, for metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The endpoint was ejected, for this reason.
    pub ejected: Option<EjectionReason>,
    /// A detector tripped but `maxEjectionPercent` forbade the ejection (OD-5;
    /// `mesh_outlier_ejections_overflow_total`).
    pub overflow: bool,
}

/// Passive health checking of one cluster (SEMANTICS OD-1..OD-9). See the
/// [module docs](super).
///
/// Reports update per-endpoint atomics kept in the [`EndpointSet`]'s [`EndpointStats`] (so
/// they survive reloads, RELOAD-3); ejecting and returning endpoints — rare — take a mutex of
/// the detector, so concurrent trips cannot exceed the ejection cap. A healthy report takes no
/// lock.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    /// The time sweeps are measured from.
    origin: Instant,
    interval_ms: u64,
    /// When the next sweep is due, in milliseconds since `origin`.
    next_sweep_ms: AtomicU64,
    ejections: [AtomicU64; 3],
    overflow: AtomicU64,
    /// Serialises ejections and sweeps (never taken by a report that trips nothing).
    decide: Mutex<()>,
}

impl OutlierDetector {
    /// A detector with `config`; the first sweep is due one `interval` from now.
    pub fn new(config: OutlierConfig) -> Self {
        let interval_ms = u64::try_from(config.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            config,
            origin: Instant::now(),
            interval_ms,
            next_sweep_ms: AtomicU64::new(interval_ms),
            ejections: Default::default(),
            overflow: AtomicU64::new(0),
            decide: Mutex::new(()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// Records the outcome of one attempt to endpoint `index` of `set` (OD-2..OD-5), and ejects
    /// the endpoint when a detector trips and the cap allows it.
    ///
    /// - A response whose effective status (gRPC-mapped) is an error — 500–599, or exactly
    ///   `http_error_codes` when set — counts toward `consecutive_5xx`, and toward
    ///   `consecutive_gateway` if it is 502/503/504 (any other error resets the latter).
    /// - A local-origin failure (connect failure or timeout, reset, per-try or route timeout,
    ///   protocol error) counts toward both, or only toward `consecutive_local_origin` when
    ///   split (OD-4).
    /// - Any other response resets the 5xx and gateway counts; in split mode every response
    ///   resets the local-origin count (the connection worked).
    /// - A local overflow counts for nothing (OD-3); neither does a report on an endpoint
    ///   already ejected, or an index outside `set`.
    ///
    /// Ejection (OD-5, OD-6): only if 100 × (ejected + 1) / endpoints ≤ `maxEjectionPercent`
    /// (otherwise [`Report::overflow`], and the tripped count starts again); the endpoint's
    /// multiplier k rises by one (while k × base < max + base, as Envoy bounds it), it stays
    /// out for min(base × k, max), and its counts are reset.
    pub fn report(
        &self,
        set: &EndpointSet,
        index: usize,
        outcome: &Outcome,
        now: Instant,
    ) -> Report {
        if index >= set.len() {
            return Report::default();
        }
        let stats = set.stats(index);
        if stats.health() != Health::Healthy {
            return Report::default();
        }
        let state = stats.outlier();
        let tripped = if let Some(response) = outcome.response() {
            self.count_response(state, response.effective_status())
        } else {
            match outcome.failure() {
                Some(Failure::Overflow) | None => return Report::default(),
                Some(_) => self.count_local_origin(state),
            }
        };
        match tripped {
            Some(reason) => self.trip(set, index, reason, now),
            None => Report::default(),
        }
    }

    fn count_response(&self, state: &OutlierState, status: u16) -> Option<EjectionReason> {
        if self.config.split_local_origin {
            state.consecutive_local_origin.store(0, Ordering::Relaxed);
        }
        if !self.config.is_error_status(status) {
            state.consecutive_5xx.store(0, Ordering::Relaxed);
            state.consecutive_gateway.store(0, Ordering::Relaxed);
            return None;
        }
        let gateway = if matches!(status, 502..=504) {
            increment(&state.consecutive_gateway)
        } else {
            state.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let errors = increment(&state.consecutive_5xx);
        self.tripped(gateway, errors, 0)
    }

    fn count_local_origin(&self, state: &OutlierState) -> Option<EjectionReason> {
        if self.config.split_local_origin {
            let local = increment(&state.consecutive_local_origin);
            self.tripped(0, 0, local)
        } else {
            let gateway = increment(&state.consecutive_gateway);
            let errors = increment(&state.consecutive_5xx);
            self.tripped(gateway, errors, 0)
        }
    }

    /// Which detector trips at these counts; the gateway detector is asked first, as Envoy
    /// does.
    fn tripped(&self, gateway: u32, errors: u32, local: u32) -> Option<EjectionReason> {
        let hit = |threshold: u32, count: u32| threshold > 0 && count >= threshold;
        let c = &self.config;
        if hit(c.consecutive_gateway, gateway) {
            Some(EjectionReason::ConsecutiveGateway)
        } else if hit(c.consecutive_5xx, errors) {
            Some(EjectionReason::Consecutive5xx)
        } else if c.split_local_origin && hit(c.consecutive_local_origin, local) {
            Some(EjectionReason::ConsecutiveLocalOrigin)
        } else {
            None
        }
    }

    fn trip(
        &self,
        set: &EndpointSet,
        index: usize,
        reason: EjectionReason,
        now: Instant,
    ) -> Report {
        let _decide = self.decide.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = set.stats(index);
        if stats.health() != Health::Healthy {
            return Report::default();
        }
        let state = stats.outlier();
        let ejected = Self::active_ejections(set) as u64;
        let percent = u64::from(self.config.max_ejection_percent.min(100));
        if 100 * (ejected + 1) > percent * set.len() as u64 {
            // Envoy starts the tripped count again, so the next overflow needs a full run.
            match reason {
                EjectionReason::Consecutive5xx => &state.consecutive_5xx,
                EjectionReason::ConsecutiveGateway => &state.consecutive_gateway,
                EjectionReason::ConsecutiveLocalOrigin => &state.consecutive_local_origin,
            }
            .store(0, Ordering::Relaxed);
            self.overflow.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                endpoint = %set.endpoint(index).addr,
                reason = reason.as_str(),
                ejected,
                "ejection refused by maxEjectionPercent"
            );
            return Report {
                ejected: None,
                overflow: true,
            };
        }
        let base = self.config.base_ejection_time;
        let max = self.config.max_ejection_time.max(base);
        let mut k = state.ejection_multiplier.load(Ordering::Relaxed);
        if base.saturating_mul(k) < max.saturating_add(base) {
            k = k.saturating_add(1);
        }
        state.ejection_multiplier.store(k, Ordering::Relaxed);
        let duration = base.saturating_mul(k).min(max);
        state.set_ejected_until(Some(later(now, duration)));
        state.reset_counters();
        stats.set_health(Health::FailedOutlierCheck);
        self.ejections[reason.index()].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            endpoint = %set.endpoint(index).addr,
            reason = reason.as_str(),
            multiplier = k,
            ?duration,
            "ejecting endpoint"
        );
        Report {
            ejected: Some(reason),
            overflow: false,
        }
    }

    /// Sweeps `set` if a sweep is due (OD-7): the first call at or after each `interval`
    /// boundary (counted from the detector's creation) sweeps, every other call costs one
    /// atomic load. Called on every request by [`OutlierDetection`](super::OutlierDetection).
    /// Returns how many endpoints were returned.
    pub fn maybe_sweep(&self, set: &EndpointSet, now: Instant) -> usize {
        let now_ms = self.millis(now);
        let due = self.next_sweep_ms.load(Ordering::Acquire);
        if now_ms < due {
            return 0;
        }
        // The next boundary after now, keeping the phase of a periodic timer.
        let missed = (now_ms - due) / self.interval_ms;
        let next = due.saturating_add(self.interval_ms.saturating_mul(missed.saturating_add(1)));
        if self
            .next_sweep_ms
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return 0; // another caller sweeps this interval
        }
        self.sweep(set, now)
    }

    /// Sweeps `set` now (OD-6, OD-7): endpoints whose ejection has ended are returned (healthy,
    /// counters reset, no ejection time); every endpoint that was healthy already has its
    /// multiplier lowered by one (not below 0). Returns how many were returned.
    pub fn sweep(&self, set: &EndpointSet, now: Instant) -> usize {
        let _decide = self.decide.lock().unwrap_or_else(PoisonError::into_inner);
        let mut returned = 0;
        for index in 0..set.len() {
            let stats = set.stats(index);
            let state = stats.outlier();
            if stats.health() == Health::FailedOutlierCheck {
                // No end recorded (set by someone else): return it rather than keep it forever.
                if state.ejected_until().is_none_or(|until| until <= now) {
                    state.set_ejected_until(None);
                    state.reset_counters();
                    stats.set_health(Health::Healthy);
                    returned += 1;
                    tracing::debug!(endpoint = %set.endpoint(index).addr, "returning endpoint");
                }
            } else {
                let _ = state.ejection_multiplier.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |k| k.checked_sub(1),
                );
            }
        }
        returned
    }

    /// Runs sweeps of the set `current` returns, at each `interval` boundary, until `current`
    /// returns `None` (the cluster is gone). Spawn it once per cluster: [`Self::maybe_sweep`]
    /// on the request path cannot return endpoints of a cluster that gets no requests — with
    /// every endpoint ejected the balancer answers 503 `UH` before any request reaches
    /// [`OutlierDetection`](super::OutlierDetection).
    pub async fn run_sweeps<F>(&self, mut current: F)
    where
        F: FnMut() -> Option<std::sync::Arc<EndpointSet>>,
    {
        loop {
            let due = self.next_sweep_ms.load(Ordering::Acquire);
            tokio::time::sleep_until(later(self.origin, Duration::from_millis(due))).await;
            let Some(set) = current() else { return };
            self.maybe_sweep(&set, Instant::now());
        }
    }

    /// How long the endpoint stays ejected, or `None` when it is not ejected (for `/clusters`).
    pub fn time_left(stats: &EndpointStats, now: Instant) -> Option<Duration> {
        if stats.health() != Health::FailedOutlierCheck {
            return None;
        }
        Some(
            stats
                .outlier()
                .ejected_until()
                .map_or(Duration::ZERO, |until| until.saturating_duration_since(now)),
        )
    }

    /// Ejections so far for `reason` (`mesh_outlier_ejections_total{reason}`).
    pub fn ejections_total(&self, reason: EjectionReason) -> u64 {
        self.ejections[reason.index()].load(Ordering::Relaxed)
    }

    /// Ejections refused by `maxEjectionPercent` so far (`mesh_outlier_ejections_overflow_total`).
    pub fn overflow_total(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Endpoints of `set` currently ejected (`mesh_outlier_ejections_active`).
    pub fn active_ejections(set: &EndpointSet) -> usize {
        (0..set.len())
            .filter(|&i| set.stats(i).health() == Health::FailedOutlierCheck)
            .count()
    }

    fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Adds one and returns the new count.
fn increment(counter: &AtomicU32) -> u32 {
    counter.fetch_add(1, Ordering::Relaxed).saturating_add(1)
}

/// `at + by`, saturating at a year later (tokio's `Instant` panics on overflow).
fn later(at: Instant, by: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    at.checked_add(by.min(YEAR)).unwrap_or(at)
}
