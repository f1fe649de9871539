//! The compiled form of a route's `retries` block: built once per configuration snapshot,
//! read by every request on the route.

use std::time::Duration;

use http::{HeaderMap, HeaderName};
use mesh_core::classify::{Failure, Outcome};
use mesh_core::model::HttpRetry;
use mesh_core::random::Random;

/// The default base interval of the retry back-off (RETRY-10): 25 ms.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

/// The back-off never exceeds this many base intervals (RETRY-10: 10 × 25 ms = 250 ms).
const MAX_BACKOFF_FACTOR: u64 = 10;

/// Istio's default number of retries (RETRY-2).
const DEFAULT_ATTEMPTS: u32 = 2;

/// A set of `retryOn` conditions (RETRY-5), as bits.
///
/// ```
/// use mesh_resilience::retry::RetryConditions;
///
/// let c = RetryConditions::FIVE_XX | RetryConditions::RESET;
/// assert!(c.contains(RetryConditions::RESET));
/// assert!(!c.contains(RetryConditions::CONNECT_FAILURE));
/// assert_eq!(RetryConditions::from_name("gateway-error"), Some(RetryConditions::GATEWAY_ERROR));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetryConditions(u32);

impl RetryConditions {
    /// `5xx`: a 5xx response, or no response at all.
    pub const FIVE_XX: Self = Self(1);
    /// `gateway-error`: a 502, 503 or 504 response, or no response at all.
    pub const GATEWAY_ERROR: Self = Self(1 << 1);
    /// `reset`: no response at all (disconnect, reset, per-try timeout, connect failure).
    pub const RESET: Self = Self(1 << 2);
    /// `reset-before-request`: the upstream reset before the request was sent.
    pub const RESET_BEFORE_REQUEST: Self = Self(1 << 3);
    /// `connect-failure`: the connection could not be established.
    pub const CONNECT_FAILURE: Self = Self(1 << 4);
    /// `refused-stream`: the HTTP/2 stream was refused (`REFUSED_STREAM`).
    pub const REFUSED_STREAM: Self = Self(1 << 5);
    /// `retriable-4xx`: a 409 response.
    pub const RETRIABLE_4XX: Self = Self(1 << 6);
    /// `retriable-status-codes`: a response whose status is in the configured list.
    pub const RETRIABLE_STATUS_CODES: Self = Self(1 << 7);
    /// `retriable-headers`: a response carrying one of the configured headers.
    pub const RETRIABLE_HEADERS: Self = Self(1 << 8);
    /// `envoy-ratelimited`: a response carrying `x-envoy-ratelimited`.
    pub const ENVOY_RATELIMITED: Self = Self(1 << 9);
    /// `cancelled`: `grpc-status: 1` in the response headers.
    pub const CANCELLED: Self = Self(1 << 10);
    /// `deadline-exceeded`: `grpc-status: 4` in the response headers.
    pub const DEADLINE_EXCEEDED: Self = Self(1 << 11);
    /// `internal`: `grpc-status: 13` in the response headers.
    pub const INTERNAL: Self = Self(1 << 12);
    /// `resource-exhausted`: `grpc-status: 8` in the response headers.
    pub const RESOURCE_EXHAUSTED: Self = Self(1 << 13);
    /// `unavailable`: `grpc-status: 14` in the response headers.
    pub const UNAVAILABLE: Self = Self(1 << 14);

    /// Every condition with its `retryOn` name.
    pub const NAMED: [(&'static str, Self); 15] = [
        ("5xx", Self::FIVE_XX),
        ("gateway-error", Self::GATEWAY_ERROR),
        ("reset", Self::RESET),
        ("reset-before-request", Self::RESET_BEFORE_REQUEST),
        ("connect-failure", Self::CONNECT_FAILURE),
        ("refused-stream", Self::REFUSED_STREAM),
        ("retriable-4xx", Self::RETRIABLE_4XX),
        ("retriable-status-codes", Self::RETRIABLE_STATUS_CODES),
        ("retriable-headers", Self::RETRIABLE_HEADERS),
        ("envoy-ratelimited", Self::ENVOY_RATELIMITED),
        ("cancelled", Self::CANCELLED),
        ("deadline-exceeded", Self::DEADLINE_EXCEEDED),
        ("internal", Self::INTERNAL),
        ("resource-exhausted", Self::RESOURCE_EXHAUSTED),
        ("unavailable", Self::UNAVAILABLE),
    ];

    /// No condition.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether no condition is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every condition of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether at least one condition of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The condition named `name` in `retryOn` (exact, lowercase as Envoy spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    /// The names of the conditions set, in [`Self::NAMED`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED
            .into_iter()
            .filter(move |(_, c)| self.contains(*c))
            .map(|(n, _)| n)
    }
}

impl std::ops::BitOr for RetryConditions {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for RetryConditions {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// A parsed `retryOn` string (RETRY-5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryOn {
    /// The conditions named (plus `retriable-status-codes` when statuses were listed).
    pub conditions: RetryConditions,
    /// The HTTP statuses listed as integers, in order, without duplicates.
    pub statuses: Vec<u16>,
    /// Items that are neither a known condition nor a known HTTP status: ignored, kept for
    /// `analyze` warnings.
    pub unknown: Vec<String>,
}

impl RetryOn {
    /// Istio's default list (RETRY-2): `connect-failure,refused-stream,unavailable,cancelled,
    /// retriable-status-codes` with an **empty** status list, so 503 responses are not retried.
    pub fn istio_default() -> Self {
        Self {
            conditions: RetryConditions::CONNECT_FAILURE
                | RetryConditions::REFUSED_STREAM
                | RetryConditions::UNAVAILABLE
                | RetryConditions::CANCELLED
                | RetryConditions::RETRIABLE_STATUS_CODES,
            statuses: Vec::new(),
            unknown: Vec::new(),
        }
    }
}

/// A route's retry policy, compiled (SEMANTICS RETRY-1..RETRY-13).
///
/// ```
/// use mesh_core::classify::{Failure, Outcome};
/// use mesh_resilience::retry::RetryPolicy;
///
/// let policy = RetryPolicy::istio_default();
/// assert_eq!(policy.max_retries(), 2);
/// assert!(policy.should_retry(&Outcome::Failure(Failure::ConnectFailure), None));
/// // RETRY-2 (pitfall): upstream 503s are not retried by default.
/// let resp = http::Response::builder().status(503).body(()).unwrap();
/// assert!(!policy.should_retry(&Outcome::from_response(&resp), Some(resp.headers())));
///
/// let policy = RetryPolicy::istio_default().with_attempts(3).with_retry_on("5xx,409");
/// assert!(policy.should_retry(&Outcome::from_response(&resp), Some(resp.headers())));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    retry_on: RetryOn,
    per_try_timeout: Option<Duration>,
    backoff_base: Duration,
    retriable_headers: Vec<HeaderName>,
    ignore_previous_hosts: Option<bool>,
    remote_localities: bool,
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::istio_default`].
    fn default() -> Self {
        Self::istio_default()
    }
}

impl RetryPolicy {
    /// Istio's policy for a route without `retries` (RETRY-2): 2 retries on
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with an
    /// empty status list, no per-try timeout, 25 ms back-off, avoiding hosts already tried.
    pub fn istio_default() -> Self {
        Self {
            max_retries: DEFAULT_ATTEMPTS,
            retry_on: RetryOn::istio_default(),
            per_try_timeout: None,
            backoff_base: DEFAULT_BACKOFF_BASE,
            retriable_headers: Vec::new(),
            ignore_previous_hosts: None,
            remote_localities: false,
        }
    }

    /// No retries at all (RETRY-3).
    pub fn disabled() -> Self {
        Self {
            max_retries: 0,
            retry_on: RetryOn::default(),
            ..Self::istio_default()
        }
    }

    /// The policy of a route's `retries` block: absent → [`Self::istio_default`] (RETRY-2);
    /// `attempts` ≤ 0 → [`Self::disabled`] (RETRY-3); no `retryOn` → the default list
    /// (RETRY-4); otherwise `retryOn` parsed by [`Self::parse_retry_on`] (RETRY-5).
    ///
    /// A zero `perTryTimeout` means none (Envoy reads 0 as disabled); a zero `backoff` keeps
    /// the 25 ms default (Envoy requires a positive base; `analyze` reports it).
    pub fn from_config(retries: Option<&HttpRetry>) -> Self {
        let Some(config) = retries else {
            return Self::istio_default();
        };
        let Ok(attempts) = u32::try_from(config.attempts) else {
            return Self::disabled();
        };
        if attempts == 0 {
            return Self::disabled();
        }
        // As istiod: only an empty string keeps the default list; a string of blanks and
        // commas parses to no condition at all.
        let retry_on = if config.retry_on.is_empty() {
            RetryOn::istio_default()
        } else {
            Self::parse_retry_on(&config.retry_on)
        };
        Self {
            max_retries: attempts,
            retry_on,
            per_try_timeout: config
                .per_try_timeout
                .map(|d| d.as_std())
                .filter(|d| !d.is_zero()),
            backoff_base: config
                .backoff
                .map(|d| d.as_std())
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_BACKOFF_BASE),
            retriable_headers: Vec::new(),
            ignore_previous_hosts: config.retry_ignore_previous_hosts,
            remote_localities: config.retry_remote_localities.unwrap_or(false),
        }
    }

    /// Parses a `retryOn` string (RETRY-5): comma-separated; blanks around items and empty
    /// items are ignored; an integer that is a known HTTP status goes to the status list and
    /// implies `retriable-status-codes`; anything else unknown is kept in
    /// [`RetryOn::unknown`] and otherwise ignored.
    pub fn parse_retry_on(text: &str) -> RetryOn {
        let mut out = RetryOn::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Some(c) = RetryConditions::from_name(item) {
                out.conditions |= c;
            } else if let Some(status) = item.parse::<u16>().ok().filter(|s| known_status(*s)) {
                if !out.statuses.contains(&status) {
                    out.statuses.push(status);
                }
                out.conditions |= RetryConditions::RETRIABLE_STATUS_CODES;
            } else {
                out.unknown.push(item.to_owned());
            }
        }
        out
    }

    // === builder ===

    /// Sets the number of retries (not tries; 0 disables retrying).
    #[must_use]
    pub fn with_attempts(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Replaces the conditions and status list with those of `retry_on` ([`Self::parse_retry_on`]).
    #[must_use]
    pub fn with_retry_on(mut self, retry_on: &str) -> Self {
        self.retry_on = Self::parse_retry_on(retry_on);
        self
    }

    /// Sets the per-try timeout (RETRY-8); `None` or zero = none.
    #[must_use]
    pub fn with_per_try_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.per_try_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// Sets the back-off base interval (RETRY-10); zero keeps the current one.
    #[must_use]
    pub fn with_backoff(mut self, base: Duration) -> Self {
        if !base.is_zero() {
            self.backoff_base = base;
        }
        self
    }

    /// Sets the headers of `retriable-headers` (not exposed by Istio; SDK users only). Also
    /// adds the `retriable-headers` condition when the list is not empty.
    #[must_use]
    pub fn with_retriable_headers(mut self, headers: Vec<HeaderName>) -> Self {
        if !headers.is_empty() {
            self.retry_on.conditions |= RetryConditions::RETRIABLE_HEADERS;
        }
        self.retriable_headers = headers;
        self
    }

    /// Sets `retryIgnorePreviousHosts` (RETRY-13); `None` = absent.
    #[must_use]
    pub fn with_ignore_previous_hosts(mut self, value: Option<bool>) -> Self {
        self.ignore_previous_hosts = value;
        self
    }

    // === accessors ===

    /// The number of retries allowed after the first try (RETRY-1).
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The per-try timeout, if any (RETRY-8).
    pub fn per_try_timeout(&self) -> Option<Duration> {
        self.per_try_timeout
    }

    /// The back-off base interval (RETRY-10).
    pub fn backoff_base(&self) -> Duration {
        self.backoff_base
    }

    /// The parsed `retryOn`.
    pub fn retry_on_conditions(&self) -> &RetryOn {
        &self.retry_on
    }

    /// The headers of `retriable-headers`.
    pub fn retriable_header_names(&self) -> &[HeaderName] {
        &self.retriable_headers
    }

    /// `retryRemoteLocalities` (RETRY-13; absent = false).
    pub fn retry_remote_localities(&self) -> bool {
        self.remote_localities
    }

    /// Whether retries avoid hosts already tried (RETRY-13): `retryIgnorePreviousHosts`
    /// (absent = true), except that when it is absent and the destination uses consistent
    /// hashing, istiod sets no host predicate, so retries go to the same hash target.
    pub fn avoid_previous_hosts(&self, consistent_hash: bool) -> bool {
        self.ignore_previous_hosts.unwrap_or(!consistent_hash)
    }

    /// Whether `retryOn` asks for a retry of `outcome` (RETRY-5..RETRY-8), applying the
    /// never-retry cases of RETRY-7 that depend on the outcome alone: local overflow, an
    /// `x-envoy-overloaded` response, an `x-envoy-ratelimited` response unless
    /// `envoy-ratelimited` is listed, and the route timeout. `headers` are the response
    /// headers when there was a response (read for `retriable-headers`).
    ///
    /// A disabled policy (no retries) never wants a retry. Whether attempts remain is the
    /// caller's question (URX, RETRY-7).
    pub fn should_retry(&self, outcome: &Outcome, headers: Option<&HeaderMap>) -> bool {
        if self.max_retries == 0 {
            return false;
        }
        let c = self.retry_on.conditions;
        match outcome {
            Outcome::Failure(f) => c.intersects(failure_conditions(*f)),
            Outcome::Response(r) => {
                if r.overloaded {
                    return false;
                }
                if r.ratelimited {
                    return c.contains(RetryConditions::ENVOY_RATELIMITED);
                }
                let status = r.status;
                if c.contains(RetryConditions::FIVE_XX) && (500..=599).contains(&status) {
                    return true;
                }
                if c.contains(RetryConditions::GATEWAY_ERROR) && (502..=504).contains(&status) {
                    return true;
                }
                if c.contains(RetryConditions::RETRIABLE_4XX) && status == 409 {
                    return true;
                }
                if c.contains(RetryConditions::RETRIABLE_STATUS_CODES)
                    && self.retry_on.statuses.contains(&status)
                {
                    return true;
                }
                if c.contains(RetryConditions::RETRIABLE_HEADERS)
                    && let Some(h) = headers
                    && self.retriable_headers.iter().any(|n| h.contains_key(n))
                {
                    return true;
                }
                // gRPC status from the response headers only (trailers-only responses):
                // a status in trailers comes after the response started and is never read
                // here (RETRY-5).
                let grpc = match r.grpc_status {
                    Some(1) => RetryConditions::CANCELLED,
                    Some(4) => RetryConditions::DEADLINE_EXCEEDED,
                    Some(8) => RetryConditions::RESOURCE_EXHAUSTED,
                    Some(13) => RetryConditions::INTERNAL,
                    Some(14) => RetryConditions::UNAVAILABLE,
                    _ => RetryConditions::empty(),
                };
                c.intersects(grpc)
            }
            // `Outcome` is non-exhaustive: what is not understood is not retried.
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The back-off before retry number `retry` (1-based, RETRY-10): fully jittered
    /// exponential, uniform in `[0, (2^n − 1)·B)` and never above the `10·B` cap, so the
    /// default ranges are 0–25 ms, 0–75 ms, 0–175 ms, then 0–250 ms (exclusive bounds).
    pub fn backoff(&self, retry: u32, rng: &mut Random) -> Duration {
        let n = retry.max(1);
        let multiplier = if n >= 8 {
            MAX_BACKOFF_FACTOR
        } else {
            ((1u64 << n) - 1).min(MAX_BACKOFF_FACTOR)
        };
        let base = u64::try_from(self.backoff_base.as_nanos()).unwrap_or(u64::MAX);
        let bound = base.saturating_mul(multiplier);
        Duration::from_nanos(rng.below(bound))
    }
}

/// The `retryOn` conditions that match a failure (no response headers).
///
/// Decision (Envoy's `wouldRetryFromReset`, which SEMANTICS' table follows): `5xx`,
/// `gateway-error` and `reset` match **every** kind of "no response", connect failures
/// included; `connect-failure` and `reset-before-request` add connect failures (the request
/// never reached the upstream); `refused-stream` and `reset-before-request` add refused streams.
/// A per-try timeout matches only `5xx`, `gateway-error` and `reset` (RETRY-8). Local overflow
/// and the route timeout match nothing (RETRY-7, RETRY-9). A protocol error is not
/// `reset-before-request`: the request may have been processed.
fn failure_conditions(failure: Failure) -> RetryConditions {
    let no_response =
        RetryConditions::FIVE_XX | RetryConditions::GATEWAY_ERROR | RetryConditions::RESET;
    match failure {
        Failure::ConnectFailure | Failure::ConnectTimeout => {
            no_response | RetryConditions::CONNECT_FAILURE | RetryConditions::RESET_BEFORE_REQUEST
        }
        Failure::RefusedStream => {
            no_response | RetryConditions::REFUSED_STREAM | RetryConditions::RESET_BEFORE_REQUEST
        }
        Failure::Reset | Failure::RemoteReset | Failure::ProtocolError | Failure::PerTryTimeout => {
            no_response
        }
        Failure::RouteTimeout | Failure::Overflow => RetryConditions::empty(),
        // `Failure` is non-exhaustive: a kind this code does not know is not retried.
        #[allow(unreachable_patterns)]
        _ => RetryConditions::empty(),
    }
}

/// Whether `status` is an HTTP status istiod accepts in `retryOn` (those Go's
/// `http.StatusText` names); other integers are ignored.
fn known_status(status: u16) -> bool {
    matches!(status,
        100..=103
        | 200..=208 | 226
        | 300..=305 | 307 | 308
        | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
        | 500..=508 | 510 | 511)
}
