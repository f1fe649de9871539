//! Tests of `RetryPolicy` (SEMANTICS RETRY-2..RETRY-10, RETRY-13).

use std::time::Duration;

use http::{HeaderMap, HeaderName, Response};
use mesh_core::classify::{Failure, Outcome};
use mesh_core::model::HttpRetry;
use mesh_core::random::Random;

use crate::retry::{DEFAULT_BACKOFF_BASE, RetryConditions, RetryOn, RetryPolicy};

fn resp(status: u16, headers: &[(&str, &str)]) -> (Outcome, HeaderMap) {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = b.body(()).expect("valid response");
    (Outcome::from_response(&r), r.headers().clone())
}

fn retries(policy: &RetryPolicy, status: u16, headers: &[(&str, &str)]) -> bool {
    let (o, h) = resp(status, headers);
    policy.should_retry(&o, Some(&h))
}

fn fails(policy: &RetryPolicy, f: Failure) -> bool {
    policy.should_retry(&Outcome::Failure(f), None)
}

fn config(attempts: i32, retry_on: &str) -> HttpRetry {
    let mut c = HttpRetry::default();
    c.attempts = attempts;
    c.retry_on = retry_on.to_owned();
    c
}

// SEMANTICS RETRY-2 (pitfall): the default list, with 503 not retried.
#[test]
fn retry_2_default_policy() {
    let p = RetryPolicy::from_config(None);
    assert_eq!(p, RetryPolicy::istio_default());
    assert_eq!(p.max_retries(), 2);
    assert_eq!(p.per_try_timeout(), None);
    assert_eq!(p.backoff_base(), Duration::from_millis(25));
    let names: Vec<_> = p.retry_on_conditions().conditions.names().collect();
    assert_eq!(
        names,
        [
            "connect-failure",
            "refused-stream",
            "retriable-status-codes",
            "cancelled",
            "unavailable"
        ]
    );
    assert!(p.retry_on_conditions().statuses.is_empty());
    assert!(!retries(&p, 503, &[]), "503 is not retried by default");
    assert!(!retries(&p, 500, &[]));
    assert!(fails(&p, Failure::ConnectFailure));
    assert!(fails(&p, Failure::ConnectTimeout));
    assert!(fails(&p, Failure::RefusedStream));
    assert!(!fails(&p, Failure::Reset));
    assert!(!fails(&p, Failure::PerTryTimeout));
    assert!(retries(&p, 200, &[("grpc-status", "14")]));
    assert!(retries(&p, 200, &[("grpc-status", "1")]));
    assert!(!retries(&p, 200, &[("grpc-status", "13")]));
    assert!(p.avoid_previous_hosts(false));
    assert!(!p.avoid_previous_hosts(true));
}

// SEMANTICS RETRY-3: attempts <= 0 disables retries, the default policy included.
#[test]
fn retry_3_zero_attempts_disable() {
    for n in [0, -1, i32::MIN] {
        let p = RetryPolicy::from_config(Some(&config(n, "5xx")));
        assert_eq!(p.max_retries(), 0);
        assert!(!fails(&p, Failure::ConnectFailure));
        assert!(!retries(&p, 503, &[]));
    }
    assert_eq!(RetryPolicy::disabled().max_retries(), 0);
}

// SEMANTICS RETRY-4: attempts without retryOn get the default list; no perTryTimeout.
#[test]
fn retry_4_attempts_without_retry_on() {
    let p = RetryPolicy::from_config(Some(&config(5, "")));
    assert_eq!(p.max_retries(), 5);
    assert_eq!(p.retry_on_conditions(), &RetryOn::istio_default());
    assert_eq!(p.per_try_timeout(), None);
    assert!(!retries(&p, 503, &[]));
}

#[test]
fn from_config_durations_and_hosts() {
    let mut c = config(1, "5xx");
    c.per_try_timeout = Some(mesh_core::model::Duration::from_millis(300));
    c.backoff = Some(mesh_core::model::Duration::from_millis(100));
    c.retry_ignore_previous_hosts = Some(true);
    c.retry_remote_localities = Some(true);
    let p = RetryPolicy::from_config(Some(&c));
    assert_eq!(p.per_try_timeout(), Some(Duration::from_millis(300)));
    assert_eq!(p.backoff_base(), Duration::from_millis(100));
    // RETRY-13: an explicit true keeps the predicate even with consistent hashing.
    assert!(p.avoid_previous_hosts(true));
    assert!(p.retry_remote_localities());
    c.retry_ignore_previous_hosts = Some(false);
    c.per_try_timeout = Some(mesh_core::model::Duration::from_millis(0));
    c.backoff = Some(mesh_core::model::Duration::from_millis(0));
    let p = RetryPolicy::from_config(Some(&c));
    assert!(!p.avoid_previous_hosts(false));
    assert_eq!(p.per_try_timeout(), None);
    assert_eq!(p.backoff_base(), DEFAULT_BACKOFF_BASE);
}

// SEMANTICS RETRY-5: the parsing table.
#[test]
fn retry_5_parse_every_condition() {
    for (name, c) in RetryConditions::NAMED {
        let parsed = RetryPolicy::parse_retry_on(name);
        assert_eq!(parsed.conditions, c, "{name}");
        assert!(parsed.unknown.is_empty());
    }
    let all = RetryConditions::NAMED.map(|(n, _)| n).join(",");
    let parsed = RetryPolicy::parse_retry_on(&all);
    assert_eq!(parsed.conditions.names().count(), 15);
}

// SEMANTICS RETRY-5: whitespace, empty items, integers, unknown names.
#[test]
fn retry_5_parse_whitespace_integers_unknown() {
    let p = RetryPolicy::parse_retry_on(" 5xx , ,reset,, 503 ,409,503, 599, 5xx-errors,RESET ");
    assert_eq!(
        p.conditions,
        RetryConditions::FIVE_XX | RetryConditions::RESET | RetryConditions::RETRIABLE_STATUS_CODES
    );
    assert_eq!(p.statuses, [503, 409]);
    // 599 is not a known status; names are case-sensitive as in Envoy.
    assert_eq!(p.unknown, ["599", "5xx-errors", "RESET"]);
    assert_eq!(RetryPolicy::parse_retry_on(""), RetryOn::default());
    assert_eq!(RetryPolicy::parse_retry_on(" , "), RetryOn::default());
    // An explicit but blank retryOn means no condition (as istiod), not the default.
    let p = RetryPolicy::from_config(Some(&config(2, " , ")));
    assert!(p.retry_on_conditions().conditions.is_empty());
    assert!(!fails(&p, Failure::ConnectFailure));
}

// SEMANTICS RETRY-5: each condition against responses and failures.
#[test]
fn retry_5_conditions_match() {
    let p = |s: &str| RetryPolicy::istio_default().with_retry_on(s);
    assert!(retries(&p("5xx"), 500, &[]) && retries(&p("5xx"), 599, &[]));
    assert!(!retries(&p("5xx"), 499, &[]));
    assert!(fails(&p("5xx"), Failure::Reset) && fails(&p("5xx"), Failure::ConnectFailure));
    assert!(!retries(&p("gateway-error"), 500, &[]));
    for s in [502, 503, 504] {
        assert!(retries(&p("gateway-error"), s, &[]));
    }
    assert!(fails(&p("gateway-error"), Failure::RemoteReset));
    assert!(!retries(&p("reset"), 503, &[]));
    assert!(fails(&p("reset"), Failure::Reset));
    assert!(fails(&p("reset"), Failure::ProtocolError));
    assert!(
        fails(&p("reset"), Failure::ConnectFailure),
        "Envoy: reset covers connect failures"
    );
    assert!(fails(&p("reset-before-request"), Failure::ConnectFailure));
    assert!(fails(&p("reset-before-request"), Failure::RefusedStream));
    assert!(!fails(&p("reset-before-request"), Failure::Reset));
    assert!(!fails(&p("reset-before-request"), Failure::ProtocolError));
    assert!(fails(&p("connect-failure"), Failure::ConnectTimeout));
    assert!(!fails(&p("connect-failure"), Failure::RefusedStream));
    assert!(!fails(&p("connect-failure"), Failure::Reset));
    assert!(fails(&p("refused-stream"), Failure::RefusedStream));
    assert!(!fails(&p("refused-stream"), Failure::RemoteReset));
    assert!(retries(&p("retriable-4xx"), 409, &[]));
    assert!(!retries(&p("retriable-4xx"), 429, &[]));
    assert!(retries(&p("429"), 429, &[]) && !retries(&p("429"), 503, &[]));
    // retriable-status-codes without a list matches nothing.
    assert!(!retries(&p("retriable-status-codes"), 503, &[]));
    let h = p("retriable-headers").with_retriable_headers(vec![HeaderName::from_static("x-retry")]);
    assert!(retries(&h, 200, &[("x-retry", "1")]));
    assert!(!retries(&h, 200, &[]));
    for (name, code) in [
        ("cancelled", "1"),
        ("deadline-exceeded", "4"),
        ("resource-exhausted", "8"),
        ("internal", "13"),
        ("unavailable", "14"),
    ] {
        assert!(retries(&p(name), 200, &[("grpc-status", code)]), "{name}");
        assert!(!retries(&p(name), 200, &[("grpc-status", "2")]), "{name}");
        assert!(!fails(&p(name), Failure::Reset), "{name}");
    }
}

// SEMANTICS RETRY-5 (pitfall): gRPC status in trailers is never read; a 200 whose headers
// carry no grpc-status is not retried, whatever trailers follow.
#[test]
fn retry_5_grpc_headers_not_trailers() {
    let p = RetryPolicy::istio_default().with_retry_on("unavailable,internal");
    assert!(retries(
        &p,
        200,
        &[("content-type", "application/grpc"), ("grpc-status", "14")]
    ));
    assert!(!retries(&p, 200, &[("content-type", "application/grpc")]));
}

// SEMANTICS RETRY-6 (pitfall): a status in retryOn never matches a failure.
#[test]
fn retry_6_status_never_matches_failure() {
    let p = RetryPolicy::istio_default().with_retry_on("503");
    assert!(retries(&p, 503, &[]));
    for f in [
        Failure::Reset,
        Failure::RemoteReset,
        Failure::ConnectFailure,
        Failure::PerTryTimeout,
        Failure::ProtocolError,
    ] {
        assert!(!fails(&p, f), "{f}");
    }
}

// SEMANTICS RETRY-7: overflow, x-envoy-overloaded, x-envoy-ratelimited, route timeout.
#[test]
fn retry_7_never_retried() {
    let all = RetryPolicy::istio_default().with_retry_on(
        "5xx,gateway-error,reset,reset-before-request,connect-failure,refused-stream,503,429",
    );
    assert!(!fails(&all, Failure::Overflow));
    assert!(!fails(&all, Failure::RouteTimeout));
    assert!(!retries(&all, 503, &[("x-envoy-overloaded", "true")]));
    assert!(!retries(&all, 503, &[("x-envoy-ratelimited", "true")]));
    assert!(!retries(&all, 429, &[("x-envoy-ratelimited", "true")]));
    let rl = RetryPolicy::istio_default().with_retry_on("envoy-ratelimited");
    assert!(retries(&rl, 429, &[("x-envoy-ratelimited", "true")]));
    assert!(!retries(&rl, 429, &[]));
}

// SEMANTICS RETRY-8 (pitfall): per-try timeouts only with 5xx, gateway-error or reset.
#[test]
fn retry_8_per_try_timeout_conditions() {
    assert!(!fails(
        &RetryPolicy::istio_default(),
        Failure::PerTryTimeout
    ));
    for on in ["5xx", "gateway-error", "reset"] {
        let p = RetryPolicy::istio_default().with_retry_on(on);
        assert!(fails(&p, Failure::PerTryTimeout), "{on}");
    }
    for on in [
        "connect-failure",
        "refused-stream",
        "reset-before-request",
        "504",
    ] {
        let p = RetryPolicy::istio_default().with_retry_on(on);
        assert!(!fails(&p, Failure::PerTryTimeout), "{on}");
    }
}

// SEMANTICS RETRY-10: each draw is in range; the maximum approaches the bound.
#[test]
fn retry_10_backoff_bounds() {
    let p = RetryPolicy::istio_default();
    let mut rng = Random::seeded(10);
    for (n, bound_ms) in [(1, 25), (2, 75), (3, 175), (4, 250), (5, 250), (40, 250)] {
        let bound = Duration::from_millis(bound_ms);
        let mut max = Duration::ZERO;
        for _ in 0..5_000 {
            let d = p.backoff(n, &mut rng);
            assert!(d < bound, "retry {n}: {d:?} >= {bound:?}");
            max = max.max(d);
        }
        assert!(max > bound.mul_f64(0.99), "retry {n}: max {max:?}");
    }
    let p = RetryPolicy::istio_default().with_backoff(Duration::from_secs(1));
    for _ in 0..1_000 {
        assert!(p.backoff(u32::MAX, &mut rng) < Duration::from_secs(10));
    }
}
