//! Tests of outlier detection; each names the SEMANTICS rule it checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use mesh_core::BoxError;
use mesh_core::classify::{Failure, FailureError, Outcome};
use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
use mesh_core::extensions::UpstreamEndpoint;
use mesh_core::model::OutlierDetection as OdConfig;
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

use super::*;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn set(n: u16) -> EndpointSet {
    EndpointSet::new(
        (0..n)
            .map(|i| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 9000 + i))))
            .collect(),
    )
}

fn status(code: u16) -> Outcome {
    Outcome::from_response(&http::Response::builder().status(code).body(()).unwrap())
}

fn grpc(code: u32) -> Outcome {
    let resp = http::Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string())
        .body(())
        .unwrap();
    Outcome::from_response(&resp)
}

fn boxed(f: Failure) -> BoxError {
    Box::new(FailureError(f))
}

fn fail(f: Failure) -> Outcome {
    Outcome::Failure(f)
}

/// A detector that may eject every endpoint (maxEjectionPercent 100).
fn detector(config: OutlierConfig) -> OutlierDetector {
    OutlierDetector::new(config.with_max_ejection_percent(100))
}

fn health(set: &EndpointSet, i: usize) -> Health {
    set.stats(i).health()
}

#[test]
fn od1_defaults_of_an_empty_block() {
    let c = OutlierConfig::from_config(&OdConfig::default());
    assert_eq!(c, OutlierConfig::default());
    assert_eq!(c.consecutive_5xx, 5);
    assert_eq!(c.consecutive_gateway, 0, "off");
    assert_eq!(c.consecutive_local_origin, 5);
    assert!(!c.split_local_origin);
    assert_eq!(c.interval, SECS(10));
    assert_eq!(c.base_ejection_time, SECS(30));
    assert_eq!(c.max_ejection_time, SECS(300));
    assert_eq!(c.max_ejection_percent, 10);
    assert_eq!(c.min_health_percent, 0);
    assert_eq!(c.http_error_codes, None);
}

#[test]
fn od1_field_mapping() {
    let mut od = OdConfig::default();
    od.consecutive_5xx_errors = Some(0);
    od.consecutive_gateway_errors = Some(3);
    od.split_external_local_origin_errors = true;
    od.consecutive_local_origin_failures = Some(0);
    od.interval = Some("1s".parse().unwrap());
    od.base_ejection_time = Some("10m".parse().unwrap());
    od.max_ejection_percent = 150;
    od.min_health_percent = 50;
    od.outlier_detection_http_error_codes = vec![429, 503, 70_000];
    let c = OutlierConfig::from_config(&od);
    assert_eq!((c.consecutive_5xx, c.consecutive_gateway), (0, 3));
    assert_eq!(c.consecutive_local_origin, 5, "0 is not written by istiod");
    assert!(c.split_local_origin);
    assert_eq!(c.interval, SECS(1));
    assert_eq!(c.max_ejection_time, SECS(600), "OD-6: max(base, 300 s)");
    assert_eq!(c.max_ejection_percent, 100);
    assert_eq!(c.min_health_percent, 50);
    assert_eq!(c.http_error_codes.as_deref(), Some(&[429, 503][..]));

    // Deprecated consecutiveErrors: gateway errors only, unless set explicitly.
    let mut old = OdConfig::default();
    old.consecutive_errors = 7;
    let c = OutlierConfig::from_config(&old);
    assert_eq!((c.consecutive_5xx, c.consecutive_gateway), (0, 7));
    old.consecutive_5xx_errors = Some(4);
    old.consecutive_gateway_errors = Some(2);
    let c = OutlierConfig::from_config(&old);
    assert_eq!((c.consecutive_5xx, c.consecutive_gateway), (4, 2));
}

#[test]
fn od2_consecutive_5xx_ejects_after_n_in_a_row() {
    let set = set(1);
    let od = detector(OutlierConfig::default());
    let now = Instant::now();
    for code in [500, 503, 599, 504] {
        assert_eq!(od.report(&set, 0, &status(code), now), Report::default());
    }
    // Any non-5xx resets the count.
    od.report(&set, 0, &status(404), now);
    assert_eq!(
        set.stats(0)
            .outlier()
            .consecutive_5xx
            .load(Ordering::Relaxed),
        0
    );
    for _ in 0..4 {
        od.report(&set, 0, &status(500), now);
    }
    assert_eq!(health(&set, 0), Health::Healthy);
    let report = od.report(&set, 0, &status(500), now);
    assert_eq!(report.ejected, Some(EjectionReason::Consecutive5xx));
    assert!(!report.overflow);
    assert_eq!(health(&set, 0), Health::FailedOutlierCheck);
    assert_eq!(od.ejections_total(EjectionReason::Consecutive5xx), 1);
    assert_eq!(
        set.stats(0)
            .outlier()
            .consecutive_5xx
            .load(Ordering::Relaxed),
        0,
        "reset"
    );
}

#[test]
fn od2_gateway_errors_502_502_500_502_eject_nothing() {
    let set = set(1);
    let od = detector(
        OutlierConfig::default()
            .with_consecutive_5xx(0)
            .with_consecutive_gateway(3),
    );
    let now = Instant::now();
    for code in [502, 502, 500, 502] {
        assert_eq!(od.report(&set, 0, &status(code), now).ejected, None);
    }
    assert_eq!(health(&set, 0), Health::Healthy);
    // Three 502s in a row (the last one above and two more) eject.
    od.report(&set, 0, &status(502), now);
    let report = od.report(&set, 0, &status(502), now);
    assert_eq!(report.ejected, Some(EjectionReason::ConsecutiveGateway));
    assert_eq!(od.ejections_total(EjectionReason::ConsecutiveGateway), 1);
    assert_eq!(
        EjectionReason::ConsecutiveGateway.as_str(),
        "consecutive_gateway_failure"
    );
}

#[test]
fn od2_grpc_unavailable_counts_as_503() {
    let set = set(1);
    let od = detector(
        OutlierConfig::default()
            .with_consecutive_5xx(0)
            .with_consecutive_gateway(2),
    );
    let now = Instant::now();
    od.report(&set, 0, &grpc(14), now);
    od.report(&set, 0, &grpc(0), now); // OK resets
    od.report(&set, 0, &grpc(14), now);
    assert_eq!(health(&set, 0), Health::Healthy);
    let report = od.report(&set, 0, &grpc(14), now);
    assert_eq!(report.ejected, Some(EjectionReason::ConsecutiveGateway));
}

#[test]
fn od2_local_origin_failures_count_toward_5xx_and_gateway_when_not_split() {
    let set = set(2);
    let od = detector(OutlierConfig::default().with_consecutive_gateway(3));
    let now = Instant::now();
    od.report(&set, 0, &fail(Failure::ConnectFailure), now);
    od.report(&set, 0, &fail(Failure::PerTryTimeout), now);
    let state = set.stats(0).outlier();
    assert_eq!(state.consecutive_5xx.load(Ordering::Relaxed), 2);
    assert_eq!(state.consecutive_gateway.load(Ordering::Relaxed), 2);
    assert_eq!(state.consecutive_local_origin.load(Ordering::Relaxed), 0);
    let r = od.report(&set, 0, &fail(Failure::Reset), now);
    assert_eq!(r.ejected, Some(EjectionReason::ConsecutiveGateway));

    // With only the 5xx detector, five local failures eject too.
    let od = detector(OutlierConfig::default());
    for f in [
        Failure::ConnectTimeout,
        Failure::RouteTimeout,
        Failure::ProtocolError,
        Failure::RemoteReset,
    ] {
        assert_eq!(od.report(&set, 1, &fail(f), now).ejected, None);
    }
    let r = od.report(&set, 1, &fail(Failure::RefusedStream), now);
    assert_eq!(r.ejected, Some(EjectionReason::Consecutive5xx));
}

#[test]
fn od2_http_error_codes_replace_5xx() {
    let set = set(1);
    let od = detector(
        OutlierConfig::default()
            .with_consecutive_5xx(2)
            .with_http_error_codes([429]),
    );
    let now = Instant::now();
    od.report(&set, 0, &status(429), now);
    od.report(&set, 0, &status(500), now); // not an error now: resets
    od.report(&set, 0, &status(429), now);
    assert_eq!(health(&set, 0), Health::Healthy);
    assert!(od.report(&set, 0, &status(429), now).ejected.is_some());
}

#[test]
fn od3_overflow_is_neither_counted_nor_resets() {
    let set = set(1);
    let od = detector(OutlierConfig::default());
    let now = Instant::now();
    for _ in 0..4 {
        od.report(&set, 0, &status(503), now);
    }
    for _ in 0..10 {
        assert_eq!(
            od.report(&set, 0, &fail(Failure::Overflow), now),
            Report::default()
        );
    }
    assert_eq!(
        set.stats(0)
            .outlier()
            .consecutive_5xx
            .load(Ordering::Relaxed),
        4
    );
    assert_eq!(health(&set, 0), Health::Healthy);
    assert!(od.report(&set, 0, &status(503), now).ejected.is_some());
}

#[test]
fn od4_split_counts_local_origin_apart() {
    let set = set(2);
    let config = OutlierConfig::default()
        .with_split_local_origin(true)
        .with_consecutive_local_origin(3)
        .with_consecutive_gateway(5);
    let od = detector(config);
    let now = Instant::now();
    let state = set.stats(0).outlier();
    od.report(&set, 0, &fail(Failure::ConnectFailure), now);
    od.report(&set, 0, &fail(Failure::Reset), now);
    assert_eq!(state.consecutive_local_origin.load(Ordering::Relaxed), 2);
    assert_eq!(
        state.consecutive_5xx.load(Ordering::Relaxed),
        0,
        "not counted as 5xx"
    );
    assert_eq!(state.consecutive_gateway.load(Ordering::Relaxed), 0);
    // A response (even a 503) means the connection worked: the local count restarts.
    od.report(&set, 0, &status(503), now);
    assert_eq!(state.consecutive_local_origin.load(Ordering::Relaxed), 0);
    assert_eq!(
        state.consecutive_5xx.load(Ordering::Relaxed),
        1,
        "HTTP 5xx still count"
    );
    for _ in 0..2 {
        od.report(&set, 0, &fail(Failure::ConnectTimeout), now);
    }
    let r = od.report(&set, 0, &fail(Failure::PerTryTimeout), now);
    assert_eq!(r.ejected, Some(EjectionReason::ConsecutiveLocalOrigin));
    assert_eq!(
        od.ejections_total(EjectionReason::ConsecutiveLocalOrigin),
        1
    );

    // Five 5xx still eject in split mode.
    for _ in 0..4 {
        od.report(&set, 1, &status(500), now);
    }
    assert_eq!(
        od.report(&set, 1, &status(500), now).ejected,
        Some(EjectionReason::Consecutive5xx)
    );
}

#[test]
fn od5_ejection_cap_table() {
    // (endpoints, maxEjectionPercent, most ejected at once) — current Envoy (pitfall).
    for (n, percent, expected) in [(3, 10, 0), (10, 10, 1), (3, 50, 1), (4, 50, 2), (3, 100, 3)] {
        let set = set(n);
        let od = OutlierDetector::new(
            OutlierConfig::default()
                .with_consecutive_5xx(1)
                .with_max_ejection_percent(percent),
        );
        let now = Instant::now();
        let mut overflows = 0;
        for i in 0..usize::from(n) {
            let r = od.report(&set, i, &status(500), now);
            overflows += usize::from(r.overflow);
            assert!(
                r.ejected.is_some() != r.overflow,
                "{n}/{percent}: one or the other"
            );
        }
        assert_eq!(
            OutlierDetector::active_ejections(&set),
            expected,
            "{n} endpoints, {percent} %"
        );
        assert_eq!(overflows, usize::from(n) - expected);
        assert_eq!(od.overflow_total(), (usize::from(n) - expected) as u64);
    }
}

#[test]
fn od5_refused_ejection_restarts_the_count() {
    let set = set(3);
    let od = OutlierDetector::new(OutlierConfig::default().with_consecutive_5xx(2));
    let now = Instant::now();
    od.report(&set, 0, &status(500), now);
    assert!(od.report(&set, 0, &status(500), now).overflow);
    assert!(
        !od.report(&set, 0, &status(500), now).overflow,
        "a full run again"
    );
    assert!(od.report(&set, 0, &status(500), now).overflow);
    assert_eq!(od.overflow_total(), 2);
    assert_eq!(health(&set, 0), Health::Healthy);
}

#[test]
fn od6_ejection_time_grows_then_caps_at_300s() {
    let set = set(1);
    let od = detector(OutlierConfig::default().with_consecutive_5xx(1));
    let mut now = Instant::now();
    let mut durations = Vec::new();
    for _ in 0..13 {
        assert!(od.report(&set, 0, &status(500), now).ejected.is_some());
        let left = OutlierDetector::time_left(set.stats(0), now).unwrap();
        durations.push(left.as_secs());
        now += left;
        assert_eq!(od.sweep(&set, now), 1, "returned once its time is over");
    }
    assert_eq!(
        durations,
        [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300]
    );
    let k = set
        .stats(0)
        .outlier()
        .ejection_multiplier
        .load(Ordering::Relaxed);
    assert_eq!(k, 11, "bounded as Envoy bounds it");
}

#[test]
fn od6_healthy_sweeps_lower_the_multiplier() {
    let set = set(1);
    let od = detector(OutlierConfig::default().with_consecutive_5xx(1));
    let t0 = Instant::now();
    od.report(&set, 0, &status(500), t0); // k = 1, 30 s
    assert_eq!(od.sweep(&set, t0 + SECS(30)), 1); // returned; k stays 1 in this sweep
    od.report(&set, 0, &status(500), t0 + SECS(31)); // k = 2, 60 s
    assert_eq!(
        OutlierDetector::time_left(set.stats(0), t0 + SECS(31)),
        Some(SECS(60))
    );
    let mut now = t0 + SECS(91);
    assert_eq!(od.sweep(&set, now), 1);
    let multiplier = || {
        set.stats(0)
            .outlier()
            .ejection_multiplier
            .load(Ordering::Relaxed)
    };
    assert_eq!(multiplier(), 2);
    for expected in [1, 0, 0] {
        now += SECS(10);
        od.sweep(&set, now);
        assert_eq!(multiplier(), expected, "never below 0");
    }
    od.report(&set, 0, &status(500), now);
    assert_eq!(
        OutlierDetector::time_left(set.stats(0), now),
        Some(SECS(30)),
        "back to base"
    );
}

#[tokio::test(start_paused = true)]
async fn od7_return_at_the_first_sweep_after_the_time_with_counters_reset() {
    let set = set(1);
    let od = detector(OutlierConfig::default().with_consecutive_5xx(1));
    let t0 = Instant::now();
    od.report(&set, 0, &status(500), t0 + SECS(5)); // out until 35 s
    let state = set.stats(0).outlier();
    state.consecutive_gateway.store(3, Ordering::Relaxed); // whatever was left
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(10)), 0);
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(30)), 0, "still ejected");
    assert_eq!(
        od.maybe_sweep(&set, t0 + SECS(35)),
        0,
        "time over, but no sweep due"
    );
    assert_eq!(health(&set, 0), Health::FailedOutlierCheck);
    assert_eq!(
        OutlierDetector::time_left(set.stats(0), t0 + SECS(35)),
        Some(Duration::ZERO)
    );
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(40)), 1);
    assert_eq!(health(&set, 0), Health::Healthy);
    assert_eq!(state.consecutive_gateway.load(Ordering::Relaxed), 0);
    assert_eq!(state.ejected_until(), None);
    assert_eq!(
        OutlierDetector::time_left(set.stats(0), t0 + SECS(40)),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn od7_maybe_sweep_sweeps_once_per_interval() {
    let set = set(1);
    let od = detector(
        OutlierConfig::default()
            .with_consecutive_5xx(1)
            .with_base_ejection_time(Duration::ZERO),
    );
    let t0 = Instant::now();
    od.report(&set, 0, &status(500), t0);
    assert_eq!(od.maybe_sweep(&set, t0 + Duration::from_millis(9_999)), 0);
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(10)), 1);
    od.report(&set, 0, &status(500), t0 + SECS(10));
    assert_eq!(
        od.maybe_sweep(&set, t0 + SECS(10)),
        0,
        "already swept this interval"
    );
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(19)), 0);
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(20)), 1);
    // After a quiet spell the sweeps keep their phase.
    od.report(&set, 0, &status(500), t0 + SECS(20));
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(55)), 1);
    od.report(&set, 0, &status(500), t0 + SECS(55));
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(59)), 0);
    assert_eq!(od.maybe_sweep(&set, t0 + SECS(60)), 1);
}

#[test]
fn od2_an_ejected_endpoint_is_never_ejected_twice() {
    let set = set(1);
    let od = detector(OutlierConfig::default().with_consecutive_5xx(1));
    let now = Instant::now();
    od.report(&set, 0, &status(500), now);
    let until = set.stats(0).outlier().ejected_until();
    for _ in 0..10 {
        // Late reports of attempts made before the ejection.
        assert_eq!(
            od.report(&set, 0, &status(500), now + SECS(1)),
            Report::default()
        );
    }
    assert_eq!(set.stats(0).ejections(), 1);
    assert_eq!(od.ejections_total(EjectionReason::Consecutive5xx), 1);
    assert_eq!(set.stats(0).outlier().ejected_until(), until);
    assert_eq!(
        set.stats(0)
            .outlier()
            .ejection_multiplier
            .load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        od.report(&set, 7, &status(500), now),
        Report::default(),
        "bad index"
    );
}

#[tokio::test(start_paused = true)]
async fn od2_od7_layer_reports_outcomes_and_sweeps() {
    let set = Arc::new(set(2));
    let od = Arc::new(detector(OutlierConfig::default().with_consecutive_5xx(2)));
    let code = Arc::new(AtomicU16::new(503));
    let answer = Arc::clone(&code);
    let svc = OutlierDetectionLayer::new(Arc::clone(&od)).layer(service_fn(
        move |_req: http::Request<()>| {
            let code = answer.load(Ordering::Relaxed);
            async move {
                match code {
                    0 => Err(boxed(Failure::Reset)),
                    1 => Err(boxed(Failure::Overflow)),
                    c => Ok(http::Response::builder().status(c).body(()).unwrap()),
                }
            }
        },
    ));
    let send = |index: Option<usize>| {
        let mut req = http::Request::new(());
        if let Some(i) = index {
            req.extensions_mut()
                .insert(UpstreamEndpoint::new(Arc::clone(&set), i));
        }
        svc.clone().oneshot(req)
    };

    // Requests without the extension pass through uncounted.
    for _ in 0..3 {
        assert_eq!(send(None).await.unwrap().status(), 503);
    }
    assert_eq!(
        set.stats(0)
            .outlier()
            .consecutive_5xx
            .load(Ordering::Relaxed),
        0
    );

    // Overflow errors are not counted (OD-3); a reset error and a 503 eject.
    code.store(1, Ordering::Relaxed);
    assert!(send(Some(0)).await.is_err());
    code.store(0, Ordering::Relaxed);
    assert!(send(Some(0)).await.is_err());
    assert_eq!(
        set.stats(0)
            .outlier()
            .consecutive_5xx
            .load(Ordering::Relaxed),
        1
    );
    code.store(503, Ordering::Relaxed);
    send(Some(0)).await.unwrap();
    assert_eq!(health(&set, 0), Health::FailedOutlierCheck);

    // 30 s later the next request's sweep (due every 10 s) returns it.
    tokio::time::advance(SECS(30)).await;
    code.store(200, Ordering::Relaxed);
    send(Some(1)).await.unwrap();
    assert_eq!(health(&set, 0), Health::Healthy);
}

#[tokio::test(start_paused = true)]
async fn od7_run_sweeps_returns_endpoints_without_traffic() {
    let set = Arc::new(set(2));
    let od = Arc::new(detector(OutlierConfig::default().with_consecutive_5xx(1)));
    let now = Instant::now();
    od.report(&set, 0, &status(500), now);
    od.report(&set, 1, &status(500), now);
    assert_eq!(
        OutlierDetector::active_ejections(&set),
        2,
        "all out: no request gets through"
    );
    let task = {
        let (od, set) = (Arc::clone(&od), Arc::clone(&set));
        let mut rounds = 0;
        tokio::spawn(async move {
            od.run_sweeps(move || {
                rounds += 1;
                (rounds <= 4).then(|| Arc::clone(&set))
            })
            .await
        })
    };
    tokio::time::sleep(SECS(29)).await;
    assert_eq!(OutlierDetector::active_ejections(&set), 2);
    tokio::time::sleep(SECS(2)).await; // the sweep at 30 s
    assert_eq!(OutlierDetector::active_ejections(&set), 0);
    task.await.unwrap(); // ends when the cluster is gone
}

#[test]
fn reasons_and_reports() {
    let labels: Vec<_> = EjectionReason::ALL.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        labels,
        [
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "consecutive_local_origin_failure"
        ]
    );
    let od = OutlierDetector::new(OutlierConfig::default());
    assert_eq!(od.config(), &OutlierConfig::default());
}

proptest! {
    /// OD-5: for any outcomes, sweeps and cap, ejected endpoints never exceed the cap.
    #[test]
    fn od5_ejections_never_exceed_the_cap(
        n in 1u16..16,
        percent in 0u32..=100,
        threshold in 1u32..4,
        split in any::<bool>(),
        events in prop::collection::vec((0usize..16, 0u8..8, 0u64..20_000), 0..300),
    ) {
        let set = set(n);
        let od = OutlierDetector::new(
            OutlierConfig::default()
                .with_consecutive_5xx(threshold)
                .with_consecutive_gateway(threshold)
                .with_consecutive_local_origin(threshold)
                .with_split_local_origin(split)
                .with_max_ejection_percent(percent),
        );
        let cap = (u64::from(percent) * u64::from(n) / 100) as usize;
        let mut now = Instant::now();
        for (index, kind, wait_ms) in events {
            now += Duration::from_millis(wait_ms);
            let outcome = match kind {
                0 => status(200),
                1 => status(500),
                2 => status(503),
                3 => grpc(14),
                4 => fail(Failure::ConnectFailure),
                5 => fail(Failure::Overflow),
                6 => fail(Failure::PerTryTimeout),
                _ => {
                    od.maybe_sweep(&set, now);
                    continue;
                }
            };
            let report = od.report(&set, index % usize::from(n), &outcome, now);
            prop_assert!(!(report.overflow && report.ejected.is_some()));
            prop_assert!(OutlierDetector::active_ejections(&set) <= cap);
        }
    }
}
