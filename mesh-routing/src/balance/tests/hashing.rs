//! Consistent hashing (ring, maglev) and request hash keys.

use super::*;

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
