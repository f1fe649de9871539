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

// === DR-9, DR-10: consistent hashing ===

#[test]
fn hash_kinds_and_sizes() {
    // SEMANTICS DR-10
    let kind = |lb: &LoadBalancerSettings| LoadBalancer::from_policy(Some(lb), None).kind();
    assert_eq!(
        kind(&ring_hash(0)),
        BalancerKind::RingHash {
            minimum_ring_size: 1024
        }
    );
    assert_eq!(
        kind(&ring_hash(2048)),
        BalancerKind::RingHash {
            minimum_ring_size: 2048
        }
    );
    assert_eq!(
        kind(&ring_hash(100_000_000)),
        BalancerKind::RingHash {
            minimum_ring_size: 8_388_608
        }
    );
    // Deprecated top-level minimumRingSize, with or without an empty ringHash block.
    let mut lb = ring_hash(0);
    lb.consistent_hash.as_mut().unwrap().minimum_ring_size = 4096;
    assert_eq!(
        kind(&lb),
        BalancerKind::RingHash {
            minimum_ring_size: 4096
        }
    );
    lb.consistent_hash.as_mut().unwrap().ring_hash = None;
    assert_eq!(
        kind(&lb),
        BalancerKind::RingHash {
            minimum_ring_size: 4096
        }
    );

    assert_eq!(
        kind(&maglev(0)),
        BalancerKind::Maglev { table_size: 65_537 }
    );
    assert_eq!(kind(&maglev(251)), BalancerKind::Maglev { table_size: 251 });
    assert_eq!(
        kind(&maglev(1000)),
        BalancerKind::Maglev { table_size: 1009 }
    );
    assert_eq!(
        kind(&maglev(9_999_999)),
        BalancerKind::Maglev {
            table_size: 4_999_999
        }
    );

    // A consistentHash block without a key: hashing balancer, no hash policy.
    let mut lb = ring_hash(0);
    lb.consistent_hash.as_mut().unwrap().http_header_name = None;
    let balancer = LoadBalancer::from_policy(Some(&lb), None);
    assert!(balancer.hash_policy().is_none());
    assert_eq!(balancer.hash_policy().map(HashPolicy::describe), None);
}

#[test]
fn ring_has_at_least_the_minimum_nodes_proportional_to_weight() {
    // SEMANTICS DR-10, DR-7
    let s = weighted(&[1, 3, 1, 1]);
    let ring = ring::Ring::build(&s, 1024);
    // 6 units of weight × 256 nodes (⌈1024 / 6⌉ rounded up to a power of two).
    assert_eq!(ring.len(), 1536);
    let nodes: Vec<_> = (0..4).map(|i| ring.nodes_of(i)).collect();
    assert_eq!(nodes, [256, 768, 256, 256]);
    assert!(ring::Ring::build(&set(10), 1024).len() >= 1024);
    assert!(ring::Ring::build(&set(10), 2000).len() >= 2000);
    // Huge weights are scaled into the cap, each endpoint keeping at least one node.
    let huge = ring::node_counts(&[u64::from(u32::MAX), u64::from(u32::MAX), 1], 1024);
    assert_eq!(huge, [4_194_303, 4_194_303, 1]);
    assert_eq!(ring::node_counts(&[1; 3000], 1024), [1; 3000]);
}

fn hash_balancers(od: Option<&OutlierDetection>) -> [LoadBalancer; 2] {
    [
        LoadBalancer::from_policy(Some(&ring_hash(0)), od),
        LoadBalancer::from_policy(Some(&maglev(0)), od),
    ]
}

#[test]
fn a_key_stays_on_one_endpoint() {
    // SEMANTICS DR-9
    let s = set(10);
    for lb in hash_balancers(None) {
        let mut rng = Random::seeded(14);
        for k in 0..100 {
            let first = lb.pick(&s, Some(key(k)), &[], &mut rng);
            assert!((0..20).all(|_| lb.pick(&s, Some(key(k)), &[], &mut rng) == first));
        }
        // The same key maps to the same address in a set listed in another order.
        let reversed = subset_of(&(0..10).rev().collect::<Vec<_>>());
        for k in 0..1_000 {
            let a = lb.pick(&s, Some(key(k)), &[], &mut rng).unwrap();
            let b = lb.pick(&reversed, Some(key(k)), &[], &mut rng).unwrap();
            assert_eq!(s.endpoint(a).addr, reversed.endpoint(b).addr, "{lb:?}");
        }
    }
}

#[test]
fn removing_one_of_n_endpoints_moves_about_one_nth_of_keys() {
    // SEMANTICS DR-9
    const N: usize = 10;
    const KEYS: usize = 10_000;
    let before = set(N);
    let after = subset_of(&[0, 1, 2, 3, 5, 6, 7, 8, 9]);
    for lb in hash_balancers(None) {
        let mut rng = Random::seeded(15);
        let mut moved = 0;
        let mut moved_from_others = 0;
        for k in 0..KEYS {
            let a = before
                .endpoint(lb.pick(&before, Some(key(k)), &[], &mut rng).unwrap())
                .addr;
            let b = after
                .endpoint(lb.pick(&after, Some(key(k)), &[], &mut rng).unwrap())
                .addr;
            if a != b {
                moved += 1;
                if a != addr(4) {
                    moved_from_others += 1;
                }
            }
        }
        let fraction = moved as f64 / KEYS as f64;
        assert!(fraction < 2.0 / N as f64, "{lb:?}: {fraction}");
        assert!(fraction > 0.5 / N as f64, "{lb:?}: {fraction}");
        // The ring moves exactly the removed endpoint's keys; maglev a few more.
        if matches!(lb.kind(), BalancerKind::RingHash { .. }) {
            assert_eq!(moved_from_others, 0);
        } else {
            assert!(moved_from_others < KEYS / 20, "{moved_from_others}");
        }
    }
}

#[test]
fn ejecting_an_endpoint_remaps_only_its_keys() {
    // SEMANTICS DR-9, DR-8
    let s = set(8);
    for lb in hash_balancers(Some(&outlier(0))) {
        let mut rng = Random::seeded(16);
        let before: Vec<_> = (0..5_000)
            .map(|k| lb.pick(&s, Some(key(k)), &[], &mut rng).unwrap())
            .collect();
        s.stats(3).set_health(Health::FailedOutlierCheck);
        let mut spread = vec![0; 8];
        for (k, &was) in before.iter().enumerate() {
            let now = lb.pick(&s, Some(key(k)), &[], &mut rng).unwrap();
            assert_ne!(now, 3);
            if was == 3 {
                spread[now] += 1;
            } else {
                assert_eq!(now, was, "{lb:?}: key {k} moved");
            }
        }
        // The ejected endpoint's keys go to several endpoints, not all to one.
        assert!(
            spread.iter().filter(|&&n| n > 0).count() >= 3,
            "{lb:?}: {spread:?}"
        );
        s.stats(3).set_health(Health::Healthy);
        // Back in: every key returns.
        for (k, &was) in before.iter().enumerate() {
            assert_eq!(lb.pick(&s, Some(key(k)), &[], &mut rng), Some(was));
        }
    }
}

#[test]
fn keys_spread_roughly_evenly() {
    // SEMANTICS DR-9, DR-10
    let s = set(10);
    for lb in hash_balancers(None) {
        let c = counts(&lb, &s, 20_000, 17);
        // Ring: ~102 nodes per endpoint → ±10 % per endpoint (1 sd); maglev is near exact.
        let (lo, hi) = match lb.kind() {
            BalancerKind::RingHash { .. } => (1_000, 3_000),
            _ => (1_600, 2_400),
        };
        assert!(c.iter().all(|&n| (lo..=hi).contains(&n)), "{lb:?}: {c:?}");
    }
}

#[test]
fn maglev_slots_follow_weights() {
    // SEMANTICS DR-7, DR-10
    let s = weighted(&[1, 2, 4]);
    let table = maglev::Maglev::build(&s, 65_537);
    let slots: Vec<_> = (0..3).map(|i| table.slots_of(i)).collect();
    assert_eq!(slots.iter().sum::<usize>(), 65_537);
    let unit = 65_537.0 / 7.0;
    for (i, w) in [1.0, 2.0, 4.0].iter().enumerate() {
        let share = slots[i] as f64 / (unit * w);
        assert!((0.98..1.02).contains(&share), "{slots:?}");
    }
}

#[test]
fn missing_hash_key_picks_at_random() {
    // SEMANTICS DR-9
    let s = set(6);
    for lb in hash_balancers(None) {
        let mut rng = Random::seeded(18);
        let mut seen = [0; 6];
        for _ in 0..6_000 {
            seen[lb.pick(&s, None, &[], &mut rng).unwrap()] += 1;
        }
        for &n in &seen {
            assert_binomial(n, 6_000, 1.0 / 6.0);
        }
    }
}

#[test]
fn state_is_rebuilt_when_the_set_changes() {
    // SEMANTICS DR-9: a DNS refresh or reload swaps the set; the balancer follows it.
    for lb in all_balancers(None) {
        let small = set(2);
        let large = set(5);
        let mut rng = Random::seeded(19);
        for round in 0..3 {
            let c = counts(&lb, &large, 500, round);
            assert!(c.iter().all(|&n| n > 0), "{lb:?}: {c:?}");
            let c = counts(&lb, &small, 100, round);
            assert!(c.iter().all(|&n| n > 0), "{lb:?}: {c:?}");
        }
        // A third set evicts one of the two cached; all still work.
        let third = set(3);
        lb.prepare(&third);
        for s in [&small, &large, &third] {
            assert!(lb.pick(s, Some(1), &[], &mut rng).unwrap() < s.len());
        }
    }
}

// === DR-9: hash keys ===

fn policy(configure: impl FnOnce(&mut ConsistentHashLb)) -> HashPolicy {
    let mut ch = ConsistentHashLb::default();
    configure(&mut ch);
    HashPolicy::from_config(&ch).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    map
}

#[test]
fn header_key_hashes_the_value() {
    // SEMANTICS DR-9
    let p = policy(|c| c.http_header_name = Some("X-User".into()));
    let mut rng = Random::seeded(20);
    assert_eq!(p.to_string(), "header x-user");
    let key = |h: &HeaderMap| p.key(h, None, None, &mut Random::seeded(0));
    assert_eq!(
        key(&headers(&[("x-user", "alice")])),
        HashKey::Hash(hash_bytes(b"alice"))
    );
    assert_eq!(key(&headers(&[("x-other", "alice")])), HashKey::Missing);
    assert_eq!(
        key(&headers(&[("x-user", "")])),
        HashKey::Hash(hash_bytes(b""))
    );
    // Several lines: order does not matter.
    let ab = key(&headers(&[("x-user", "a"), ("x-user", "b")]));
    let ba = key(&headers(&[("x-user", "b"), ("x-user", "a")]));
    assert_eq!(ab, ba);
    assert_ne!(ab, key(&headers(&[("x-user", "a")])));
    // An invalid configured name never matches.
    let bad = policy(|c| c.http_header_name = Some("bad header".into()));
    assert_eq!(
        bad.key(&headers(&[("x-user", "a")]), None, None, &mut rng),
        HashKey::Missing
    );
}

#[test]
fn query_parameter_key_is_its_first_value() {
    // SEMANTICS DR-9
    let p = policy(|c| c.http_query_parameter_name = Some("u".into()));
    let h = HeaderMap::new();
    let key = |q: Option<&str>| p.key(&h, q, None, &mut Random::seeded(0));
    assert_eq!(key(Some("a=1&u=x&u=y")), HashKey::Hash(hash_bytes(b"x")));
    assert_eq!(key(Some("u=x%20y")), HashKey::Hash(hash_bytes(b"x%20y")));
    assert_eq!(key(Some("a=1&u")), HashKey::Hash(hash_bytes(b"")));
    assert_eq!(key(Some("uu=1&au=2")), HashKey::Missing);
    assert_eq!(key(Some("")), HashKey::Missing);
    assert_eq!(key(None), HashKey::Missing);
}

#[test]
fn source_ip_key() {
    // SEMANTICS DR-9
    let p = policy(|c| c.use_source_ip = Some(true));
    let h = HeaderMap::new();
    let key = |ip: Option<IpAddr>| p.key(&h, None, ip, &mut Random::seeded(0));
    let v4 = Ipv4Addr::new(10, 1, 2, 3);
    assert_eq!(
        key(Some(v4.into())),
        HashKey::Hash(hash_bytes(&[10, 1, 2, 3]))
    );
    assert_eq!(key(Some(v4.to_ipv6_mapped().into())), key(Some(v4.into())));
    assert_ne!(key(Some(Ipv6Addr::LOCALHOST.into())), key(Some(v4.into())));
    assert_eq!(key(None), HashKey::Missing);
    // useSourceIp: false is no key at all.
    let mut ch = ConsistentHashLb::default();
    ch.use_source_ip = Some(false);
    assert!(HashPolicy::from_config(&ch).is_none());
}

fn cookie_policy(ttl: Option<Duration>, path: &str, attributes: &[(&str, &str)]) -> HashPolicy {
    let mut cookie = HttpCookie::default();
    cookie.name = "session".into();
    cookie.path = path.into();
    cookie.ttl = ttl;
    cookie.attributes = attributes
        .iter()
        .map(|(n, v)| {
            let mut a = HttpCookieAttribute::default();
            a.name = (*n).into();
            a.value = (*v).into();
            a
        })
        .collect();
    policy(|c| c.http_cookie = Some(cookie))
}

#[test]
fn cookie_key_parses_cookie_headers() {
    // SEMANTICS DR-9
    let p = cookie_policy(Some(Duration::from_secs(60)), "/", &[]);
    let key = |h: &HeaderMap| p.key(h, None, None, &mut Random::seeded(0));
    let want = HashKey::Hash(hash_bytes(b"abc"));
    assert_eq!(key(&headers(&[("cookie", "session=abc")])), want);
    assert_eq!(key(&headers(&[("cookie", "a=1; session=abc; b=2")])), want);
    assert_eq!(key(&headers(&[("cookie", "a=1;session=abc")])), want);
    assert_eq!(
        key(&headers(&[("cookie", "a=1"), ("cookie", "x; session=abc")])),
        want
    );
    assert_eq!(key(&headers(&[("cookie", "session=\"abc\"")])), want);
    // First occurrence wins; names are exact.
    assert_eq!(
        key(&headers(&[("cookie", "session=abc; session=def")])),
        want
    );
    assert!(matches!(
        key(&headers(&[(
            "cookie",
            "Session=abc; sessions=abc; xsession=abc"
        )])),
        HashKey::IssueCookie(_)
    ));
}

#[test]
fn absent_cookie_with_ttl_is_issued() {
    // SEMANTICS DR-9
    let p = cookie_policy(
        Some(Duration::from_secs(3600)),
        "/app",
        &[("SameSite", "Strict"), ("Secure", "")],
    );
    assert_eq!(p.to_string(), "cookie session");
    let HashKey::IssueCookie(cookie) =
        p.key(&HeaderMap::new(), None, None, &mut Random::seeded(21))
    else {
        panic!("a cookie should be issued");
    };
    assert_eq!(cookie.name(), "session");
    assert_eq!(cookie.value().len(), 16);
    assert!(cookie.value().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(cookie.hash(), hash_bytes(cookie.value().as_bytes()));
    let header = cookie.set_cookie().unwrap();
    assert_eq!(
        header.to_str().unwrap(),
        format!(
            "session={}; Max-Age=3600; Path=/app; HttpOnly; SameSite=Strict; Secure",
            cookie.value()
        )
    );
    // The issued cookie, sent back, hashes to the same endpoint.
    let back = headers(&[("cookie", &format!("session={}", cookie.value()))]);
    assert_eq!(
        p.key(&back, None, None, &mut Random::seeded(0)).hash(),
        HashKey::IssueCookie(cookie.clone()).hash()
    );
    // Different draws, different values.
    let other = p.key(&HeaderMap::new(), None, None, &mut Random::seeded(22));
    assert_ne!(other, HashKey::IssueCookie(cookie));
}

#[test]
fn session_cookie_and_no_ttl() {
    // SEMANTICS DR-9: ttl 0s → no Max-Age; empty path → no Path; no ttl → random choice.
    let p = cookie_policy(Some(Duration::from_secs(0)), "", &[]);
    let HashKey::IssueCookie(c) = p.key(&HeaderMap::new(), None, None, &mut Random::seeded(23))
    else {
        panic!("a cookie should be issued");
    };
    assert_eq!(
        c.set_cookie_string(),
        format!("session={}; HttpOnly", c.value())
    );
    let p = cookie_policy(None, "/", &[]);
    assert_eq!(
        p.key(&HeaderMap::new(), None, None, &mut Random::seeded(24)),
        HashKey::Missing
    );
}

#[test]
fn hash_bytes_is_stable() {
    // SEMANTICS DR-10 (ours): pinned values; changing them moves every user's affinity.
    assert_eq!(hash_bytes(b""), GOLDEN[0]);
    assert_eq!(hash_bytes(b"user-1"), GOLDEN[1]);
    assert_eq!(hash_bytes(b"10.0.0.1:8080"), GOLDEN[2]);
}

/// Computed independently (Python) from the definition: FNV-1a 64, then murmur3 fmix64.
const GOLDEN: [u64; 3] = [
    17_280_346_270_528_514_342,
    4_729_620_347_622_785_477,
    16_773_411_713_102_195_476,
];

#[test]
fn balancer_is_send_sync_and_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<LoadBalancer>();
    check::<HashPolicy>();
    check::<HashKey>();
    let lb = LoadBalancer::from_policy(Some(&maglev(0)), None);
    assert!(format!("{lb:?}").contains("Maglev"));
}
