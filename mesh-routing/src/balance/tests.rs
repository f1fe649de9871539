//! Balancer tests. Every random choice is seeded; statistical bounds are stated with the
//! standard deviation they allow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;
use mesh_core::endpoint::{Endpoint, EndpointSet, Health};
use mesh_core::model::{
    ConsistentHashLb, Duration, HttpCookie, HttpCookieAttribute, LoadBalancerSettings,
    Maglev as MaglevConfig, OutlierDetection, RingHash, SimpleLb,
};
use mesh_core::random::Random;
use proptest::prelude::*;

use super::*;

mod hashing;

// === helpers ===

fn addr(i: usize) -> SocketAddr {
    let [.., hi, lo] = u32::try_from(i).unwrap().to_be_bytes();
    SocketAddr::from(([10, 0, hi, lo], 8080))
}

fn weighted(weights: &[u32]) -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new(
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let mut e = Endpoint::new(addr(i));
                e.weight = w;
                e
            })
            .collect(),
    ))
}

fn set(n: usize) -> Arc<EndpointSet> {
    weighted(&vec![1; n])
}

/// The set of `indices` of `base`'s addresses, in that order.
fn subset_of(indices: &[usize]) -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new(
        indices.iter().map(|&i| Endpoint::new(addr(i))).collect(),
    ))
}

fn simple(kind: SimpleLb) -> LoadBalancerSettings {
    let mut lb = LoadBalancerSettings::default();
    lb.simple = Some(kind);
    lb
}

fn ring_hash(min: u64) -> LoadBalancerSettings {
    let mut ch = ConsistentHashLb::default();
    ch.http_header_name = Some("x-user".into());
    let mut ring = RingHash::default();
    ring.minimum_ring_size = min;
    ch.ring_hash = Some(ring);
    let mut lb = LoadBalancerSettings::default();
    lb.consistent_hash = Some(ch);
    lb
}

fn maglev(size: u64) -> LoadBalancerSettings {
    let mut ch = ConsistentHashLb::default();
    ch.http_header_name = Some("x-user".into());
    let mut m = MaglevConfig::default();
    m.table_size = size;
    ch.maglev = Some(m);
    let mut lb = LoadBalancerSettings::default();
    lb.consistent_hash = Some(ch);
    lb
}

fn outlier(min_health_percent: i32) -> OutlierDetection {
    let mut od = OutlierDetection::default();
    od.min_health_percent = min_health_percent;
    od
}

/// Every kind of balancer, with outlier detection configured as given.
fn all_balancers(od: Option<&OutlierDetection>) -> Vec<LoadBalancer> {
    [
        simple(SimpleLb::RoundRobin),
        simple(SimpleLb::LeastRequest),
        simple(SimpleLb::Random),
        ring_hash(0),
        maglev(0),
    ]
    .iter()
    .map(|lb| LoadBalancer::from_policy(Some(lb), od))
    .collect()
}

/// The hash of key `k` as a request would carry it.
fn key(k: usize) -> u64 {
    hash_bytes(format!("user-{k}").as_bytes())
}

/// How often each endpoint is picked over `picks` picks (hash-based balancers get a fresh
/// key per pick).
fn counts(lb: &LoadBalancer, set: &Arc<EndpointSet>, picks: usize, seed: u64) -> Vec<usize> {
    let mut rng = Random::seeded(seed);
    let mut counts = vec![0; set.len()];
    for k in 0..picks {
        let hash = lb.hash_policy().map(|_| key(k));
        if let Some(i) = lb.pick(set, hash, &[], &mut rng) {
            counts[i] += 1;
        }
    }
    counts
}

/// Asserts `count` is within 4 standard deviations of a binomial(`n`, `p`) mean.
fn assert_binomial(count: usize, n: usize, p: f64) {
    let n = n as f64;
    let mean = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    let c = count as f64;
    assert!(
        (c - mean).abs() <= 4.0 * sd,
        "{count} picks, expected {mean} ± {}",
        4.0 * sd
    );
}

// === DR-6: policy selection ===

#[test]
fn absent_and_unspecified_policies_are_least_request() {
    // SEMANTICS DR-6
    assert_eq!(
        LoadBalancer::from_policy(None, None).kind(),
        BalancerKind::LeastRequest
    );
    assert_eq!(LoadBalancer::default().kind(), BalancerKind::LeastRequest);
    let empty = LoadBalancerSettings::default();
    assert_eq!(
        LoadBalancer::from_policy(Some(&empty), None).kind(),
        BalancerKind::LeastRequest
    );
    for (simple_lb, kind) in [
        (SimpleLb::Unspecified, BalancerKind::LeastRequest),
        (SimpleLb::LeastConn, BalancerKind::LeastRequest),
        (SimpleLb::LeastRequest, BalancerKind::LeastRequest),
        (SimpleLb::RoundRobin, BalancerKind::RoundRobin),
        (SimpleLb::Random, BalancerKind::Random),
        (SimpleLb::Passthrough, BalancerKind::Passthrough),
    ] {
        let lb = LoadBalancer::from_policy(Some(&simple(simple_lb)), None);
        assert_eq!(lb.kind(), kind, "{simple_lb:?}");
        assert!(lb.hash_policy().is_none());
    }
    assert_eq!(BalancerKind::LeastRequest.to_string(), "LEAST_REQUEST");
    assert_eq!(
        BalancerKind::RingHash {
            minimum_ring_size: 1024
        }
        .to_string(),
        "RING_HASH(minimumRingSize=1024)"
    );
}

#[test]
fn passthrough_picks_nothing() {
    // SEMANTICS DR-6
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::Passthrough)), None);
    assert_eq!(lb.kind(), BalancerKind::Passthrough);
    assert_eq!(lb.pick(&set(3), None, &[], &mut Random::seeded(1)), None);
}

#[test]
fn empty_set_picks_nothing() {
    // SEMANTICS DR-8
    for lb in all_balancers(None) {
        assert_eq!(
            lb.pick(&set(0), Some(1), &[], &mut Random::seeded(1)),
            None,
            "{lb:?}"
        );
    }
}

// === DR-6, DR-7: round robin ===

#[test]
fn round_robin_cycles_exactly() {
    // SEMANTICS DR-6
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), None);
    let s = set(4);
    let mut rng = Random::seeded(1);
    let picks: Vec<_> = (0..12)
        .map(|_| lb.pick(&s, None, &[], &mut rng).unwrap())
        .collect();
    assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
}

#[test]
fn weighted_round_robin_is_smooth_and_follows_weights() {
    // SEMANTICS DR-6, DR-7
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), None);
    let s = weighted(&[5, 1, 1]);
    let mut rng = Random::seeded(1);
    let picks: Vec<_> = (0..14)
        .map(|_| lb.pick(&s, None, &[], &mut rng).unwrap())
        .collect();
    // Smooth WRR interleaves: a a b a c a a, twice.
    assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);

    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), None);
    let c = counts(&lb, &weighted(&[3, 1]), 10_000, 1);
    // Round robin is exact over whole cycles.
    assert_eq!(c, [7_500, 2_500]);
}

#[test]
fn weight_zero_counts_as_one() {
    // SEMANTICS DR-7
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), None);
    assert_eq!(
        counts(&lb, &weighted(&[0, 1, 2]), 4_000, 1),
        [1_000, 1_000, 2_000]
    );
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::Random)), None);
    let c = counts(&lb, &weighted(&[0, 1]), 10_000, 2);
    assert_binomial(c[0], 10_000, 0.5);
}

#[test]
fn large_weights_are_scaled_into_a_bounded_schedule() {
    // SEMANTICS DR-7
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), None);
    let s = weighted(&[u32::MAX, u32::MAX / 3, 7]);
    let c = counts(&lb, &s, 100_000, 1);
    assert!(c[2] > 0, "{c:?}");
    let ratio = c[0] as f64 / c[1] as f64;
    assert!((2.9..3.1).contains(&ratio), "{c:?}");
}

// === DR-6, DR-7: random ===

#[test]
fn random_follows_weights() {
    // SEMANTICS DR-6, DR-7
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::Random)), None);
    let c = counts(&lb, &weighted(&[3, 1]), 10_000, 3);
    assert_binomial(c[0], 10_000, 0.75);
    let c = counts(&lb, &set(4), 10_000, 4);
    for &n in &c {
        assert_binomial(n, 10_000, 0.25);
    }
}

// === DR-6: least request ===

#[test]
fn least_request_avoids_a_busy_endpoint() {
    // SEMANTICS DR-6
    let lb = LoadBalancer::from_policy(None, None);
    let s = set(4);
    let _busy: Vec<_> = (0..20).map(|_| s.stats(0).start_request()).collect();
    let c = counts(&lb, &s, 10_000, 5);
    // The busy endpoint loses every comparison; the two candidates are distinct, so it is
    // never chosen.
    assert_eq!(c[0], 0, "{c:?}");
    for &n in &c[1..] {
        assert_binomial(n, 10_000, 1.0 / 3.0);
    }

    // Mildly busy: it wins only against an equally busy candidate, so it gets less.
    let s = set(4);
    let _a = s.stats(0).start_request();
    let _b = s.stats(1).start_request();
    let c = counts(&lb, &s, 10_000, 6);
    assert!(c[0] + c[1] < 10_000 / 4, "{c:?}");
}

#[test]
fn least_request_tie_goes_to_the_first_pick_and_less_busy_wins() {
    // SEMANTICS DR-6
    let lb = LoadBalancer::from_policy(None, None);
    let s = set(5);
    let _g: Vec<_> = (0..3).map(|i| s.stats(i).start_request()).collect();
    for seed in 0..200 {
        let (a, b) = lb.p2c_pair(&s, &mut Random::seeded(seed)).unwrap();
        let b = b.unwrap();
        let (ra, rb) = (s.stats(a).rq_active(), s.stats(b).rq_active());
        let want = if rb < ra { b } else { a };
        assert_eq!(
            lb.pick(&s, None, &[], &mut Random::seeded(seed)),
            Some(want)
        );
    }
}

#[test]
fn least_request_candidates_follow_weights() {
    // SEMANTICS DR-6, DR-7: with no load, the first (weighted) pick always wins the tie.
    let lb = LoadBalancer::from_policy(None, None);
    let c = counts(&lb, &weighted(&[3, 1]), 10_000, 7);
    assert_binomial(c[0], 10_000, 0.75);
}

proptest! {
    #[test]
    fn p2c_picks_two_distinct_eligible_endpoints(
        weights in prop::collection::vec(0u32..5, 2..40),
        ejected in prop::collection::vec(any::<bool>(), 40),
        seed in any::<u64>(),
    ) {
        // SEMANTICS DR-6, DR-8
        let s = weighted(&weights);
        for (i, &e) in ejected.iter().take(s.len()).enumerate() {
            if e {
                s.stats(i).set_health(Health::FailedOutlierCheck);
            }
        }
        let lb = LoadBalancer::from_policy(None, Some(&outlier(0)));
        let healthy = s.healthy_count();
        let mut rng = Random::seeded(seed);
        for _ in 0..20 {
            let pair = lb.p2c_pair(&s, &mut rng);
            match (healthy, pair) {
                (0, None) => {}
                (1, Some((a, None))) => prop_assert_eq!(s.stats(a).health(), Health::Healthy),
                (_, Some((a, Some(b)))) => {
                    prop_assert_ne!(a, b);
                    prop_assert_eq!(s.stats(a).health(), Health::Healthy);
                    prop_assert_eq!(s.stats(b).health(), Health::Healthy);
                }
                (h, p) => prop_assert!(false, "{h} healthy, pair {p:?}"),
            }
        }
    }
}

// === DR-8, OD-10: health and panic mode ===

#[test]
fn ejected_endpoints_are_skipped_by_every_balancer() {
    // SEMANTICS DR-8
    let s = set(4);
    s.stats(1).set_health(Health::FailedOutlierCheck);
    s.stats(3).set_health(Health::FailedOutlierCheck);
    for lb in all_balancers(Some(&outlier(0))) {
        let c = counts(&lb, &s, 2_000, 8);
        assert_eq!((c[1], c[3]), (0, 0), "{lb:?}: {c:?}");
        assert!(c[0] > 0 && c[2] > 0, "{lb:?}: {c:?}");
        // Missing hash key → random, still healthy only.
        let mut rng = Random::seeded(9);
        for _ in 0..200 {
            let i = lb.pick(&s, None, &[], &mut rng).unwrap();
            assert!(i == 0 || i == 2, "{lb:?}");
        }
    }
}

#[test]
fn all_ejected_with_min_health_percent_0_is_none() {
    // SEMANTICS OD-10, DR-8: Istio sets the panic threshold to minHealthPercent (default 0).
    let s = set(3);
    (0..3).for_each(|i| s.stats(i).set_health(Health::FailedOutlierCheck));
    for lb in all_balancers(Some(&OutlierDetection::default())) {
        assert_eq!(lb.panic_threshold(), 0.0);
        assert_eq!(
            lb.pick(&s, Some(key(1)), &[], &mut Random::seeded(1)),
            None,
            "{lb:?}"
        );
        assert_eq!(
            lb.pick(&s, None, &[], &mut Random::seeded(1)),
            None,
            "{lb:?}"
        );
    }
}

#[test]
fn min_health_percent_50_with_two_of_three_ejected_uses_all_three() {
    // SEMANTICS OD-10: 33 % healthy < 50 % → panic → traffic to all 3.
    let s = set(3);
    s.stats(0).set_health(Health::FailedOutlierCheck);
    s.stats(2).set_health(Health::FailedOutlierCheck);
    for lb in all_balancers(Some(&outlier(50))) {
        assert_eq!(lb.panic_threshold(), 50.0);
        let c = counts(&lb, &s, 3_000, 10);
        assert!(c.iter().all(|&n| n > 300), "{lb:?}: {c:?}");
    }
}

#[test]
fn panic_threshold_without_outlier_detection_is_50_percent() {
    // SEMANTICS OD-10
    let s = set(2);
    s.stats(0).set_health(Health::FailedOutlierCheck);
    for lb in all_balancers(None) {
        assert_eq!(lb.panic_threshold(), DEFAULT_PANIC_THRESHOLD);
        // 50 % healthy is not below 50 %: health still counts.
        assert_eq!(counts(&lb, &s, 500, 11)[0], 0, "{lb:?}");
    }
    s.stats(1).set_health(Health::FailedOutlierCheck);
    for lb in all_balancers(None) {
        // 0 % < 50 %: panic, both endpoints used.
        let c = counts(&lb, &s, 1_000, 12);
        assert!(c[0] > 0 && c[1] > 0, "{lb:?}: {c:?}");
    }
    // Out-of-range minHealthPercent is clamped.
    assert_eq!(
        LoadBalancer::from_policy(None, Some(&outlier(-5))).panic_threshold(),
        0.0
    );
    assert_eq!(
        LoadBalancer::from_policy(None, Some(&outlier(250))).panic_threshold(),
        100.0
    );
}

#[test]
fn round_robin_keeps_shares_when_skipping() {
    // SEMANTICS DR-6, DR-8: the endpoint after an ejected one does not get its share.
    let lb = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), Some(&outlier(0)));
    let s = set(3);
    s.stats(1).set_health(Health::FailedOutlierCheck);
    assert_eq!(counts(&lb, &s, 1_000, 1), [500, 0, 500]);
    let s = weighted(&[2, 1, 1]);
    s.stats(0).set_health(Health::FailedOutlierCheck);
    assert_eq!(counts(&lb, &s, 1_000, 1), [0, 500, 500]);
}

// === RETRY-13: avoiding endpoints already tried ===

#[test]
fn retries_avoid_endpoints_already_tried() {
    // SEMANTICS RETRY-13
    let s = set(3);
    let rr = LoadBalancer::from_policy(Some(&simple(SimpleLb::RoundRobin)), None);
    let mut rng = Random::seeded(13);
    assert!((0..50).all(|_| rr.pick(&s, None, &[0, 1], &mut rng) == Some(2)));

    // Random redraws up to 5 times: with one of two endpoints avoided, a repeat happens with
    // probability 2^-6.
    let s2 = set(2);
    for lb in [
        LoadBalancer::from_policy(Some(&simple(SimpleLb::Random)), None),
        LoadBalancer::from_policy(None, None),
    ] {
        let repeats = (0..10_000)
            .filter(|_| lb.pick(&s2, None, &[0], &mut rng) == Some(0))
            .count();
        assert!(repeats < 400, "{lb:?}: {repeats}");
        // Every endpoint tried already: a repeat is accepted.
        assert!(lb.pick(&s2, None, &[0, 1], &mut rng).is_some());
    }

    // Hashing: the walk goes on to the next endpoint, deterministically.
    for lb in [
        LoadBalancer::from_policy(Some(&ring_hash(0)), None),
        LoadBalancer::from_policy(Some(&maglev(0)), None),
    ] {
        let s = set(5);
        for k in 0..200 {
            let first = lb.pick(&s, Some(key(k)), &[], &mut rng).unwrap();
            let second = lb.pick(&s, Some(key(k)), &[first], &mut rng).unwrap();
            assert_ne!(first, second, "{lb:?}");
            assert_eq!(lb.pick(&s, Some(key(k)), &[first], &mut rng), Some(second));
            let all: Vec<_> = (0..5).collect();
            assert!(lb.pick(&s, Some(key(k)), &all, &mut rng).is_some());
        }
    }
}
