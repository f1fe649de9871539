//! `OutlierConfig`: the compiled form of a DestinationRule's `outlierDetection` (OD-1).

use std::time::Duration;

use mesh_core::model::OutlierDetection;

/// Outlier-detection settings of one cluster (SEMANTICS OD-1..OD-7), with Istio's defaults.
///
/// A threshold of 0 turns that detector off. [`OutlierConfig::default`] is what an empty
/// `outlierDetection: {}` block means.
///
/// ```
/// use std::time::Duration;
/// use mesh_resilience::outlier::OutlierConfig;
///
/// let config = OutlierConfig::default()
///     .with_consecutive_gateway(3)
///     .with_max_ejection_percent(100);
/// assert_eq!(config.consecutive_5xx, 5);
/// assert_eq!(config.base_ejection_time, Duration::from_secs(30));
/// assert_eq!(config.max_ejection_time, Duration::from_secs(300));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutlierConfig {
    /// `consecutive5xxErrors`: errors in a row that eject (5xx, and local-origin failures
    /// unless split); 0 = off.
    pub consecutive_5xx: u32,
    /// `consecutiveGatewayErrors`: 502/503/504 (and local-origin failures unless split) in a
    /// row that eject; 0 = off.
    pub consecutive_gateway: u32,
    /// `consecutiveLocalOriginFailures`: local-origin failures in a row that eject, when
    /// `split_local_origin` is set; 0 = off.
    pub consecutive_local_origin: u32,
    /// `splitExternalLocalOriginErrors` (OD-4).
    pub split_local_origin: bool,
    /// `interval`: time between sweeps that return endpoints (OD-7).
    pub interval: Duration,
    /// `baseEjectionTime`: the first ejection's length (OD-6).
    pub base_ejection_time: Duration,
    /// The longest ejection (Envoy `max_ejection_time`, not exposed by Istio; OD-6). Below
    /// `base_ejection_time` it counts as `base_ejection_time`.
    pub max_ejection_time: Duration,
    /// `maxEjectionPercent` (OD-5), 0–100.
    pub max_ejection_percent: u32,
    /// `minHealthPercent`: the panic threshold the balancer applies (OD-10); not used here.
    pub min_health_percent: u32,
    /// `outlierDetectionHttpErrorCodes`: when set, exactly these statuses are errors instead of
    /// all of 500–599 (OD-2).
    pub http_error_codes: Option<Box<[u16]>>,
}

impl OutlierConfig {
    /// Envoy's default longest ejection: 300 s (OD-6).
    pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

    /// The settings of an `outlierDetection` block (OD-1):
    ///
    /// - `consecutive5xxErrors`: absent → 5, 0 → off;
    /// - `consecutiveGatewayErrors`: absent or 0 → off;
    /// - the deprecated `consecutiveErrors` (when > 0) turns the gateway detector on with that
    ///   threshold and the 5xx detector off, as istiod does ("only listen to gateway errors",
    ///   istio/api#617); an explicit `consecutiveGatewayErrors` or `consecutive5xxErrors` still
    ///   wins over it;
    /// - `consecutiveLocalOriginFailures`: absent or 0 → 5 (istiod only writes a positive
    ///   value, so Envoy's default applies); read only with `splitExternalLocalOriginErrors`;
    /// - `interval` absent → 10 s; `baseEjectionTime` absent → 30 s; the longest ejection is
    ///   max(base, 300 s) (OD-6);
    /// - `maxEjectionPercent`: 0 or negative → 10, above 100 → 100;
    /// - `minHealthPercent`: clamped to 0–100;
    /// - `outlierDetectionHttpErrorCodes`: empty → all 5xx; codes outside 100–599 are dropped.
    pub fn from_config(od: &OutlierDetection) -> Self {
        let deprecated = u32::try_from(od.consecutive_errors).ok().filter(|&n| n > 0);
        let consecutive_5xx = match (od.consecutive_5xx_errors, deprecated) {
            (Some(n), _) => n,
            (None, Some(_)) => 0,
            (None, None) => 5,
        };
        let consecutive_gateway = od.consecutive_gateway_errors.or(deprecated).unwrap_or(0);
        let base_ejection_time = od
            .base_ejection_time
            .map_or(Duration::from_secs(30), |d| d.as_std());
        let codes: Box<[u16]> = od
            .outlier_detection_http_error_codes
            .iter()
            .filter_map(|&c| u16::try_from(c).ok())
            .filter(|c| (100..=599).contains(c))
            .collect();
        Self {
            consecutive_5xx,
            consecutive_gateway,
            consecutive_local_origin: match od.consecutive_local_origin_failures {
                Some(n) if n > 0 => n,
                _ => 5,
            },
            split_local_origin: od.split_external_local_origin_errors,
            interval: od.interval.map_or(Duration::from_secs(10), |d| d.as_std()),
            base_ejection_time,
            max_ejection_time: base_ejection_time.max(Self::DEFAULT_MAX_EJECTION_TIME),
            max_ejection_percent: match od.max_ejection_percent {
                n if n <= 0 => 10,
                n => n.unsigned_abs().min(100),
            },
            min_health_percent: od.min_health_percent.clamp(0, 100).unsigned_abs(),
            http_error_codes: (!od.outlier_detection_http_error_codes.is_empty()).then_some(codes),
        }
    }

    /// Sets `consecutive_5xx` (0 = off).
    #[must_use]
    pub fn with_consecutive_5xx(mut self, n: u32) -> Self {
        self.consecutive_5xx = n;
        self
    }

    /// Sets `consecutive_gateway` (0 = off).
    #[must_use]
    pub fn with_consecutive_gateway(mut self, n: u32) -> Self {
        self.consecutive_gateway = n;
        self
    }

    /// Sets `consecutive_local_origin` (0 = off).
    #[must_use]
    pub fn with_consecutive_local_origin(mut self, n: u32) -> Self {
        self.consecutive_local_origin = n;
        self
    }

    /// Sets `split_local_origin`.
    #[must_use]
    pub fn with_split_local_origin(mut self, split: bool) -> Self {
        self.split_local_origin = split;
        self
    }

    /// Sets `interval`.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets `base_ejection_time`, and `max_ejection_time` to max(base, 300 s) as Envoy does
    /// when it is not configured.
    #[must_use]
    pub fn with_base_ejection_time(mut self, base: Duration) -> Self {
        self.base_ejection_time = base;
        self.max_ejection_time = base.max(Self::DEFAULT_MAX_EJECTION_TIME);
        self
    }

    /// Sets `max_ejection_time`.
    #[must_use]
    pub fn with_max_ejection_time(mut self, max: Duration) -> Self {
        self.max_ejection_time = max;
        self
    }

    /// Sets `max_ejection_percent` (above 100 counts as 100).
    #[must_use]
    pub fn with_max_ejection_percent(mut self, percent: u32) -> Self {
        self.max_ejection_percent = percent;
        self
    }

    /// Sets `min_health_percent`.
    #[must_use]
    pub fn with_min_health_percent(mut self, percent: u32) -> Self {
        self.min_health_percent = percent;
        self
    }

    /// Counts exactly `codes` as errors instead of all 5xx; an empty list restores 5xx.
    #[must_use]
    pub fn with_http_error_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        let codes: Box<[u16]> = codes.into_iter().collect();
        self.http_error_codes = (!codes.is_empty()).then_some(codes);
        self
    }

    /// Whether the effective `status` of a response is an error (OD-2).
    pub(crate) fn is_error_status(&self, status: u16) -> bool {
        match &self.http_error_codes {
            Some(codes) => codes.contains(&status),
            None => (500..=599).contains(&status),
        }
    }
}

impl Default for OutlierConfig {
    /// The defaults of an empty `outlierDetection` block (OD-1).
    fn default() -> Self {
        Self::from_config(&OutlierDetection::default())
    }
}
