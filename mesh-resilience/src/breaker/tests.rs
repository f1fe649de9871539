//! Tests of the circuit breaker; each names the SEMANTICS rule it checks.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use mesh_core::classify::{Failure, FailureError, failure_of};
use mesh_core::model::{ConnectionPoolSettings, HttpSettings, TcpSettings};
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;

fn pool(max_connections: i32, pending: i32, requests: i32, retries: i32) -> ConnectionPoolSettings {
    let mut tcp = TcpSettings::default();
    tcp.max_connections = max_connections;
    let mut http = HttpSettings::default();
    http.http1_max_pending_requests = pending;
    http.http2_max_requests = requests;
    http.max_retries = retries;
    let mut pool = ConnectionPoolSettings::default();
    pool.tcp = Some(tcp);
    pool.http = Some(http);
    pool
}

/// Polls a future once, without a runtime driving it.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn dr14_unset_and_zero_mean_unlimited_not_envoy_defaults() {
    let unset = Limits::from_config(None);
    assert_eq!(unset, Limits::unlimited());
    assert_eq!(
        unset.max_connections,
        u32::MAX,
        "not Envoy's 1024 (pitfall)"
    );
    assert_eq!(unset.max_retries, u32::MAX, "not Envoy's 3 (pitfall)");
    assert_eq!(
        Limits::from_config(Some(&ConnectionPoolSettings::default())),
        unset
    );
    assert_eq!(
        Limits::from_config(Some(&pool(0, 0, 0, 0))),
        unset,
        "0 = unset"
    );
    assert_eq!(Limits::from_config(Some(&pool(-1, -5, 0, 0))), unset);
    let set = Limits::from_config(Some(&pool(1, 2, 3, 4)));
    assert_eq!(
        set,
        Limits::unlimited()
            .with_max_connections(1)
            .with_max_pending_requests(2)
            .with_max_requests(3)
            .with_max_retries(4)
    );

    // An unlimited breaker admits far more than Envoy's 1024 defaults.
    let breaker = CircuitBreaker::from_config(Some(&pool(0, 0, 0, 0)), None);
    let permits: Vec<_> = (0..2000).map(|_| breaker.try_request().unwrap()).collect();
    let retries: Vec<_> = (0..2000).map(|_| breaker.try_retry().unwrap()).collect();
    assert_eq!(breaker.active_requests(), 2000);
    assert_eq!(breaker.active_retries(), 2000);
    drop((permits, retries));
    assert_eq!(breaker.stats(), BreakerStats::default());
}

#[tokio::test]
async fn dr14_unlimited_connections_never_wait() {
    let breaker = CircuitBreaker::unlimited();
    let mut held = Vec::new();
    for _ in 0..1500 {
        held.push(breaker.acquire_connection().await.unwrap());
    }
    assert_eq!(breaker.active_connections(), 1500);
    assert_eq!(breaker.pending_requests(), 0);
    drop(held);
    assert_eq!(breaker.active_connections(), 0);
}

#[test]
fn dr15_max_requests_overflows_immediately_and_permits_release() {
    let breaker = CircuitBreaker::from_config(Some(&pool(0, 0, 2, 0)), None);
    let a = breaker.try_request().unwrap();
    let b = breaker.try_request().unwrap();
    assert_eq!(breaker.try_request().unwrap_err(), Overflow);
    assert_eq!(breaker.stats().requests_overflow, 1);
    assert_eq!(breaker.active_requests(), 2);
    drop(a);
    assert_eq!(breaker.active_requests(), 1);
    let c = breaker.try_request().unwrap();
    drop((b, c));
    assert_eq!(breaker.active_requests(), 0);
}

#[test]
fn dr15_overflow_is_a_failure_error_for_classification() {
    let err = Overflow.into_box_error();
    assert_eq!(failure_of(&*err), Failure::Overflow);
    assert!(Overflow::is_overflow(&*err));
    assert_eq!(
        FailureError::from(Overflow),
        FailureError(Failure::Overflow)
    );
    assert_eq!(Overflow.to_string(), "upstream overflow");
    let reset = FailureError(Failure::Reset);
    assert!(!Overflow::is_overflow(&reset));
}

#[tokio::test]
async fn dr15_layer_sheds_at_once_and_holds_the_permit_until_headers() {
    let breaker = CircuitBreaker::new(Limits::unlimited().with_max_requests(1));
    let (tx, rx) = oneshot::channel::<()>();
    let rx = std::sync::Mutex::new(Some(rx));
    let inner = service_fn(move |_req: http::Request<()>| {
        let rx = rx.lock().unwrap().take();
        async move {
            if let Some(rx) = rx {
                let _ = rx.await;
            }
            Ok::<_, Infallible>(http::Response::new(()))
        }
    });
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(inner);

    // The first request waits for its response; it holds the only slot meanwhile.
    let first = svc.ready().await.unwrap().call(http::Request::new(()));
    assert_eq!(breaker.active_requests(), 1);

    // The second is answered at once with an overflow, without waiting (DR-15).
    let mut second = pin!(svc.ready().await.unwrap().call(http::Request::new(())));
    match poll_once(second.as_mut()) {
        Poll::Ready(Err(e)) => assert_eq!(failure_of(&*e), Failure::Overflow),
        other => panic!(
            "expected an immediate overflow, got {:?}",
            other.map(|_| ())
        ),
    }
    assert_eq!(breaker.stats().requests_overflow, 1);

    tx.send(()).unwrap();
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(
        breaker.active_requests(),
        0,
        "released when headers arrived"
    );
}

#[tokio::test]
async fn dr15_layer_drop_before_headers_releases_the_permit() {
    let breaker = CircuitBreaker::new(Limits::unlimited().with_max_requests(1));
    let mut svc = Breaker::new(
        service_fn(|_req: ()| std::future::pending::<Result<(), Infallible>>()),
        breaker.clone(),
    );
    let fut = svc.ready().await.unwrap().call(());
    assert_eq!(breaker.active_requests(), 1);
    drop(fut);
    assert_eq!(breaker.active_requests(), 0);
    assert!(svc.get_ref().clone().ready().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn dr17_one_connection_one_pending_three_requests() {
    // maxConnections: 1, http1MaxPendingRequests: 1, three concurrent requests.
    let breaker = CircuitBreaker::from_config(Some(&pool(1, 1, 0, 0)), None);

    let first = breaker.acquire_connection().await.unwrap();
    assert_eq!(breaker.active_connections(), 1);

    let mut second = pin!(breaker.acquire_connection());
    assert!(poll_once(second.as_mut()).is_pending(), "queued");
    assert_eq!(breaker.pending_requests(), 1);

    let third = breaker.acquire_connection().await;
    assert_eq!(
        third.unwrap_err(),
        Overflow,
        "the queue is full: 503 UO at once"
    );
    assert_eq!(breaker.stats().pending_overflow, 1);

    // The queued request gets the slot when the first finishes.
    drop(first);
    let second = second.await.unwrap();
    assert_eq!(breaker.pending_requests(), 0);
    assert_eq!(breaker.active_connections(), 1);
    drop(second);
    assert_eq!(breaker.active_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn dr17_waiting_is_cancel_safe_and_first_come_first_served() {
    let breaker = CircuitBreaker::new(
        Limits::unlimited()
            .with_max_connections(1)
            .with_max_pending_requests(2),
    );
    let held = breaker.acquire_connection().await.unwrap();

    let mut cancelled = Box::pin(breaker.acquire_connection());
    assert!(poll_once(cancelled.as_mut()).is_pending());
    let mut a = pin!(breaker.acquire_connection());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(breaker.pending_requests(), 2);

    // Dropping a waiting future leaves the queue and frees its pending place.
    drop(cancelled);
    assert_eq!(breaker.pending_requests(), 1);
    let mut b = pin!(breaker.acquire_connection());
    assert!(poll_once(b.as_mut()).is_pending());

    drop(held);
    let a = a.await.unwrap();
    assert!(poll_once(b.as_mut()).is_pending(), "b queued behind a");
    drop(a);
    let _b = b.await.unwrap();
    assert_eq!(breaker.pending_requests(), 0);
    assert_eq!(breaker.stats().pending_overflow, 0);
}

#[test]
fn retry12_max_retries_limits_concurrent_retries() {
    let breaker = CircuitBreaker::from_config(Some(&pool(0, 0, 0, 2)), None);
    let a = breaker.try_retry().unwrap();
    let _b = breaker.try_retry().unwrap();
    assert_eq!(
        breaker.try_retry().unwrap_err(),
        RetryDenied { budget: false }
    );
    assert_eq!(breaker.stats().retries_overflow, 1);
    assert_eq!(breaker.stats().budget_exhausted, 0);
    drop(a);
    assert!(breaker.try_retry().is_ok());
    assert_eq!(
        RetryDenied { budget: false }.to_string(),
        "retry denied: max retries reached"
    );
}

#[test]
fn res2_budget_allowance_examples() {
    let budget = RetryBudget::envoy_default();
    assert_eq!(budget, RetryBudget::new(20.0, 3));
    assert_eq!(budget.allowed(25), 5, "RES-2: 25 active → 5");
    assert_eq!(budget.allowed(2), 3, "RES-2: 2 active → 3");
    assert_eq!(budget.allowed(0), 3);
    assert_eq!(budget.allowed(29), 5, "rounded down");
    assert_eq!(RetryBudget::new(f64::NAN, 1).allowed(100), 1);
    assert_eq!(RetryBudget::new(500.0, 0).allowed(7), 7, "clamped to 100 %");

    let mut cfg = mesh_core::model::RetryBudget::default();
    assert_eq!(RetryBudget::from_config(&cfg), RetryBudget::envoy_default());
    cfg.percent = Some(50.0);
    cfg.min_retry_concurrency = 1;
    let b = RetryBudget::from_config(&cfg);
    assert_eq!((b.percent(), b.min_concurrency()), (50.0, 1));
}

#[test]
fn retry12_res2_budget_replaces_max_retries() {
    let mut cfg = mesh_core::model::RetryBudget::default();
    cfg.percent = Some(20.0);
    // maxRetries 1 is ignored once a budget is configured.
    let breaker = CircuitBreaker::from_config(Some(&pool(0, 0, 0, 1)), Some(&cfg));
    assert_eq!(breaker.retry_budget(), Some(RetryBudget::envoy_default()));

    // 25 active requests → 5 concurrent retries.
    let active: Vec<_> = (0..25).map(|_| breaker.try_request().unwrap()).collect();
    let retries: Vec<_> = (0..5).map(|_| breaker.try_retry().unwrap()).collect();
    assert_eq!(
        breaker.try_retry().unwrap_err(),
        RetryDenied { budget: true }
    );
    let stats = breaker.stats();
    assert_eq!((stats.retries_overflow, stats.budget_exhausted), (1, 1));
    drop((active, retries));

    // 2 active → the minimum of 3.
    let _active: Vec<_> = (0..2).map(|_| breaker.try_request().unwrap()).collect();
    let _retries: Vec<_> = (0..3).map(|_| breaker.try_retry().unwrap()).collect();
    assert!(breaker.try_retry().unwrap_err().budget);
    assert_eq!(
        RetryDenied { budget: true }.to_string(),
        "retry denied: retry budget exhausted"
    );
}

#[tokio::test(start_paused = true)]
async fn res2_pending_requests_count_toward_the_budget() {
    let breaker = CircuitBreaker::new(Limits::unlimited().with_max_connections(1))
        .with_retry_budget(RetryBudget::new(50.0, 0));
    let _conn = breaker.acquire_connection().await.unwrap();
    let mut waiting: Vec<_> = (0..4)
        .map(|_| Box::pin(breaker.acquire_connection()))
        .collect();
    for w in &mut waiting {
        assert!(poll_once(w.as_mut()).is_pending());
    }
    assert_eq!(breaker.pending_requests(), 4);
    let _r: Vec<_> = (0..2).map(|_| breaker.try_retry().unwrap()).collect();
    assert!(breaker.try_retry().is_err(), "50 % of 4 pending = 2");
}

#[tokio::test(start_paused = true)]
async fn reload3_carry_over_keeps_counts_and_applies_new_limits() {
    let old = CircuitBreaker::new(
        Limits::unlimited()
            .with_max_requests(2)
            .with_max_connections(2),
    );
    let r1 = old.try_request().unwrap();
    let r2 = old.try_request().unwrap();
    let c1 = old.acquire_connection().await.unwrap();
    let c2 = old.acquire_connection().await.unwrap();
    assert!(old.try_request().is_err());

    // The new configuration allows 3 requests and 1 connection; the 2 in flight stay counted.
    let new = CircuitBreaker::new(
        Limits::unlimited()
            .with_max_requests(3)
            .with_max_connections(1)
            .with_max_pending_requests(0),
    )
    .carry_over(&old);
    assert_eq!(new.limits().max_requests, 3);
    assert_eq!(new.active_requests(), 2);
    assert_eq!(new.active_connections(), 2);
    assert_eq!(
        new.stats().requests_overflow,
        1,
        "overflow counters carried too"
    );
    let r3 = new.try_request().unwrap();
    assert!(new.try_request().is_err());
    drop((r1, r2, r3));
    assert_eq!(new.active_requests(), 0);

    // Two connections held against a new limit of one: none free until both are released.
    assert!(new.acquire_connection().await.is_err());
    drop(c1);
    assert!(new.acquire_connection().await.is_err(), "still one held");
    drop(c2);
    let c3 = new.acquire_connection().await.unwrap();
    assert!(new.acquire_connection().await.is_err(), "limit is 1 now");
    drop(c3);

    // Growing the limit again adds slots.
    let bigger = CircuitBreaker::new(Limits::unlimited().with_max_connections(3)).carry_over(&new);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(bigger.acquire_connection().await.unwrap());
    }
    assert_eq!(bigger.active_connections(), 3);
}

#[tokio::test(start_paused = true)]
async fn reload3_carry_over_from_unlimited_and_to_unlimited() {
    let old = CircuitBreaker::unlimited();
    let req = old.try_request().unwrap();
    let conn = old.acquire_connection().await.unwrap();
    let limited = CircuitBreaker::new(Limits::unlimited().with_max_connections(1)).carry_over(&old);
    assert_eq!(limited.active_requests(), 1);
    assert_eq!(limited.active_connections(), 1);
    // Connections opened while unlimited hold no slot of the new gate.
    let c = limited.acquire_connection().await.unwrap();
    drop((req, conn, c));
    let unlimited = CircuitBreaker::unlimited().carry_over(&limited);
    let _a = unlimited.acquire_connection().await.unwrap();
    let _b = unlimited.acquire_connection().await.unwrap();
    assert_eq!(unlimited.active_connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn reload3_shrink_then_grow_while_connections_are_held() {
    let limits = |n| {
        Limits::unlimited()
            .with_max_connections(n)
            .with_max_pending_requests(0)
    };
    let two = CircuitBreaker::new(limits(2));
    let held = [
        two.acquire_connection().await.unwrap(),
        two.acquire_connection().await.unwrap(),
    ];
    // Shrinking to 1 with 2 held leaves a debt of one slot...
    let one = CircuitBreaker::new(limits(1)).carry_over(&two);
    // ...which growing to 3 pays off before adding slots: 2 held + 1 free.
    let three = CircuitBreaker::new(limits(3)).carry_over(&one);
    let third = three.acquire_connection().await.unwrap();
    assert_eq!(three.acquire_connection().await.unwrap_err(), Overflow);
    drop((held, third));
    let mut all = Vec::new();
    for _ in 0..3 {
        all.push(three.acquire_connection().await.unwrap());
    }
    assert!(three.acquire_connection().await.is_err(), "exactly 3 slots");
}
