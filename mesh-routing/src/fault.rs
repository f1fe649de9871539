//! Fault injection: delays and aborts (SEMANTICS VS-27..VS-30).
//!
//! Both are drawn per request, independently (VS-29): a request may be delayed and then aborted.
//! **Without `percentage` nothing is injected** (VS-27, VS-28, a pitfall; the deprecated integer
//! `percent` of a delay still counts). An abort answers locally with the configured HTTP status
//! and body `fault filter abort` (flag `FI`), or, for `grpcStatus`, HTTP 200 with `grpc-status`
//! (trailers-only). The injected delay does not count toward the route timeout (VS-30): the
//! caller starts the route timer after the delay.
//!
//! ```
//! use mesh_core::model::{FaultAbort, HttpFaultInjection, Percent};
//! use mesh_core::random::Random;
//! use mesh_routing::fault::{Abort, Fault};
//!
//! let mut abort = FaultAbort::default();
//! abort.http_status = Some(503);
//! let mut cfg = HttpFaultInjection::default();
//! cfg.abort = Some(abort.clone());
//! // SEMANTICS VS-28: no percentage → never aborts.
//! let fault = Fault::from_config(&cfg);
//! assert!(fault.decide(&mut Random::seeded(1)).abort.is_none());
//! let mut p = Percent::default();
//! p.value = 100.0;
//! abort.percentage = Some(p);
//! cfg.abort = Some(abort);
//! let fault = Fault::from_config(&cfg);
//! assert_eq!(fault.decide(&mut Random::seeded(1)).abort, Some(Abort::Http(503)));
//! ```

use std::time::Duration;

use mesh_core::model::HttpFaultInjection;
use mesh_core::random::Random;

/// What an abort answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    /// This HTTP status, body `fault filter abort`.
    Http(u16),
    /// HTTP 200, `grpc-status` with this code (trailers-only response).
    Grpc(u8),
}

/// A compiled `fault` block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fault {
    delay: Option<(Duration, f64)>,
    abort: Option<(Abort, f64)>,
}

/// The faults drawn for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultDecision {
    /// Delay before forwarding (flag `DI`).
    pub delay: Option<Duration>,
    /// Abort instead of forwarding (flag `FI`).
    pub abort: Option<Abort>,
}

impl Fault {
    /// Compiles `cfg`. A delay without `fixedDelay` or an abort without a status is dropped
    /// (validation reports both).
    pub fn from_config(cfg: &HttpFaultInjection) -> Self {
        let delay = cfg.delay.as_ref().and_then(|d| {
            let duration = d.fixed_delay.map(|f| f.as_std())?;
            let percent = match &d.percentage {
                Some(p) => p.value,
                None => f64::from(d.percent),
            };
            Some((duration, percent))
        });
        let abort = cfg.abort.as_ref().and_then(|a| {
            let kind = match (&a.grpc_status, a.http_status) {
                (Some(name), _) => Abort::Grpc(grpc_code(name)?),
                (None, Some(status)) => Abort::Http(u16::try_from(status).ok()?),
                (None, None) => return None,
            };
            Some((kind, a.percentage.as_ref().map_or(0.0, |p| p.value)))
        });
        Self { delay, abort }
    }

    /// Whether the block injects anything at all.
    pub fn is_active(&self) -> bool {
        self.delay.is_some_and(|(_, p)| p > 0.0) || self.abort.is_some_and(|(_, p)| p > 0.0)
    }

    /// Draws this request's faults (VS-29: independent draws).
    pub fn decide(&self, rng: &mut Random) -> FaultDecision {
        FaultDecision {
            delay: self.delay.and_then(|(d, p)| rng.chance(p).then_some(d)),
            abort: self.abort.and_then(|(a, p)| rng.chance(p).then_some(a)),
        }
    }

    /// A one-line description for `explain`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((d, p)) = self.delay {
            parts.push(format!("delay {}ms for {p}%", d.as_millis()));
        }
        match self.abort {
            Some((Abort::Http(s), p)) => parts.push(format!("abort {s} for {p}%")),
            Some((Abort::Grpc(c), p)) => parts.push(format!("abort grpc-status {c} for {p}%")),
            None => {}
        }
        parts.join(", ")
    }
}

/// The numeric gRPC status of an upper-case code name (`UNAVAILABLE` → 14), VS-28.
pub fn grpc_code(name: &str) -> Option<u8> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::model::{FaultAbort, FaultDelay, Percent};

    fn pct(v: f64) -> Option<Percent> {
        let mut p = Percent::default();
        p.value = v;
        Some(p)
    }

    fn delay(percentage: Option<Percent>, percent: i32) -> HttpFaultInjection {
        let mut d = FaultDelay::default();
        d.fixed_delay = Some(mesh_core::model::Duration::from_std(Duration::from_secs(3)));
        d.percentage = percentage;
        d.percent = percent;
        let mut f = HttpFaultInjection::default();
        f.delay = Some(d);
        f
    }

    #[test]
    fn delay_without_percentage_injects_nothing() {
        // SEMANTICS VS-27 (pitfall)
        let f = Fault::from_config(&delay(None, 0));
        let mut rng = Random::seeded(3);
        assert!((0..1000).all(|_| f.decide(&mut rng).delay.is_none()));
        assert!(!f.is_active());
        // The deprecated integer percent still counts.
        let f = Fault::from_config(&delay(None, 100));
        assert_eq!(f.decide(&mut rng).delay, Some(Duration::from_secs(3)));
    }

    #[test]
    fn abort_percentages_are_drawn() {
        // SEMANTICS VS-28: 25% over 10,000 requests, seeded, within 4 sd (≈173).
        let mut a = FaultAbort::default();
        a.http_status = Some(503);
        a.percentage = pct(25.0);
        let mut cfg = HttpFaultInjection::default();
        cfg.abort = Some(a);
        let f = Fault::from_config(&cfg);
        let mut rng = Random::seeded(11);
        let hits = (0..10_000)
            .filter(|_| f.decide(&mut rng).abort.is_some())
            .count();
        assert!((2_327..=2_673).contains(&hits), "{hits}");
    }

    #[test]
    fn grpc_abort_maps_names() {
        // SEMANTICS VS-28: upper-case names, not numbers.
        assert_eq!(grpc_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_code("14"), None);
        let mut a = FaultAbort::default();
        a.grpc_status = Some("UNAVAILABLE".into());
        a.percentage = pct(100.0);
        let mut cfg = HttpFaultInjection::default();
        cfg.abort = Some(a);
        let f = Fault::from_config(&cfg);
        assert_eq!(
            f.decide(&mut Random::seeded(1)).abort,
            Some(Abort::Grpc(14))
        );
    }

    #[test]
    fn delay_and_abort_are_independent() {
        // SEMANTICS VS-29: both may hit one request.
        let mut cfg = delay(pct(100.0), 0);
        let mut a = FaultAbort::default();
        a.http_status = Some(500);
        a.percentage = pct(100.0);
        cfg.abort = Some(a);
        let d = Fault::from_config(&cfg).decide(&mut Random::seeded(5));
        assert_eq!(d.delay, Some(Duration::from_secs(3)));
        assert_eq!(d.abort, Some(Abort::Http(500)));
    }
}
