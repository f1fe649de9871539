//! `LoadBalancerSettings` and its parts: simple policies, consistent hashing, locality and
//! zone-aware preferences, and slow start (SEMANTICS DR-6 to DR-12).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Duration;
use crate::model::virtual_service::wire::is_default;

/// `LoadBalancerSettings`: how an endpoint is chosen for each request or connection.
///
/// `simple` and `consistentHash` are one protobuf oneof, as are `warmupDurationSecs` and
/// `warmup` by validation: at most one of each pair may be set (validation checks).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LoadBalancerSettings {
    /// A simple policy (exclusive with `consistentHash`); absent = `LEAST_REQUEST` (DR-6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Hash-based affinity (exclusive with `simple`) (DR-9, DR-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Preference for endpoints near the client (DR-11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    /// Preference for endpoints in the client's zone (newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_aware_lb_setting: Option<ZoneAwareLoadBalancerSetting>,
    /// Deprecated slow-start window (use `warmup`) (DR-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start of new endpoints (DR-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
}

/// `LoadBalancerSettings.SimpleLB`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum SimpleLb {
    /// Not set: Istio picks its default, `LEAST_REQUEST`.
    #[default]
    Unspecified,
    /// Deprecated alias of `LEAST_REQUEST`.
    LeastConn,
    /// A uniformly random healthy endpoint.
    Random,
    /// No balancing: connect to the address the client asked for.
    Passthrough,
    /// Rotate over healthy endpoints.
    RoundRobin,
    /// The less busy of two random endpoints.
    LeastRequest,
}

/// `LoadBalancerSettings.ConsistentHashLB`: hash-based endpoint affinity (DR-9, DR-10).
///
/// The hash key is one protobuf oneof (`httpHeaderName`, `httpCookie`, `useSourceIp`,
/// `httpQueryParameterName`) and the algorithm another (`ringHash`, `maglev`): at most one of
/// each may be set (validation checks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ConsistentHashLb {
    /// Hash this request header's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash this cookie's value, issuing the cookie when it is absent and `ttl` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash the client's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash this query parameter's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Use a ring hash (the default algorithm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Use Maglev hashing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
    /// Deprecated: ring size (use `ringHash.minimumRingSize`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub minimum_ring_size: u64,
}

/// `ConsistentHashLB.RingHash`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RingHash {
    /// Least number of virtual nodes on the ring (0 = 1024).
    #[serde(default, skip_serializing_if = "is_default")]
    pub minimum_ring_size: u64,
}

/// `ConsistentHashLB.MagLev`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Maglev {
    /// Lookup table size, a prime (0 = 65537).
    #[serde(default, skip_serializing_if = "is_default")]
    pub table_size: u64,
}

/// `ConsistentHashLB.HTTPCookie`: the cookie hashed for affinity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpCookie {
    /// Cookie name (required).
    #[serde(default)]
    pub name: String,
    /// Path of a generated cookie.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Lifetime of a generated cookie; without it no cookie is generated, `0s` = session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Extra attributes of a generated cookie (`SameSite`, `Secure`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<HttpCookieAttribute>,
}

/// `HTTPCookie.Attribute`: one `name=value` (or bare `name`) cookie attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpCookieAttribute {
    /// Attribute name (required).
    #[serde(default)]
    pub name: String,
    /// Attribute value; empty = a bare flag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// `LocalityLoadBalancerSetting`: locality-aware endpoint preference (DR-11).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LocalityLoadBalancerSetting {
    /// Explicit traffic shares per client locality (exclusive with `failover`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Which region to fail over to when a region has no healthy endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Ordered label keys; endpoints sharing more leading labels with the client rank first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Turns locality load balancing on or off for this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `LocalityLoadBalancerSetting.Distribute`: shares for clients in one locality.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LocalityDistribute {
    /// Client locality `region/zone/subzone`; `*` wildcards allowed.
    #[serde(default)]
    pub from: String,
    /// Endpoint locality → percentage of traffic (summing to 100).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// `LocalityLoadBalancerSetting.Failover`: a region-to-region failover step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LocalityFailover {
    /// The region whose endpoints are unhealthy.
    #[serde(default)]
    pub from: String,
    /// The region to use instead.
    #[serde(default)]
    pub to: String,
}

/// `ZoneAwareLoadBalancerSetting`: prefer endpoints in the client's zone (newer than Istio 1.28).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ZoneAwareLoadBalancerSetting {
    /// Turns zone-aware balancing on or off for this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Which zone to fail over to when a zone has no healthy endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<ZoneAwareFailover>,
    /// Ordered label keys; endpoints sharing more leading labels with the client rank first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Fewest endpoints a cluster needs for zone-aware routing to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cluster_size: Option<u64>,
}

/// `ZoneAwareLoadBalancerSetting.Failover`: a zone-to-zone failover step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ZoneAwareFailover {
    /// The zone whose endpoints are unhealthy.
    #[serde(default)]
    pub from: String,
    /// The zone to use instead.
    #[serde(default)]
    pub to: String,
}

/// `WarmupConfiguration`: slow start of newly added endpoints (DR-12).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct WarmupConfiguration {
    /// How long the ramp-up lasts (required).
    #[serde(default)]
    pub duration: Duration,
    /// Starting weight in percent (absent = 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<f64>,
    /// Curve of the ramp: 1.0 linear, higher is slower at first (absent = 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    #[test]
    fn simple_policies_keep_deprecated_names() {
        for (text, want) in [
            ("LEAST_REQUEST", SimpleLb::LeastRequest),
            ("LEAST_CONN", SimpleLb::LeastConn),
            ("PASSTHROUGH", SimpleLb::Passthrough),
            ("ROUND_ROBIN", SimpleLb::RoundRobin),
            ("UNSPECIFIED", SimpleLb::Unspecified),
        ] {
            let lb: LoadBalancerSettings = yaml(&format!("simple: {text}")).unwrap();
            assert_eq!(lb.simple, Some(want));
            assert_eq!(serde_json::to_value(want).unwrap(), text);
        }
        assert!(yaml::<LoadBalancerSettings>("simple: round_robin").is_err());
    }

    #[test]
    fn consistent_hash_keys() {
        let lb: LoadBalancerSettings = yaml(
            "consistentHash:\n  httpCookie: {name: user, ttl: 0s, attributes: [{name: Secure}]}\n  \
             maglev: {tableSize: 65537}",
        )
        .unwrap();
        let hash = lb.consistent_hash.unwrap();
        let cookie = hash.http_cookie.unwrap();
        assert_eq!(cookie.ttl, Some(Duration::default()));
        assert_eq!(cookie.attributes[0].name, "Secure");
        assert_eq!(hash.maglev.unwrap().table_size, 65537);
        let lb: LoadBalancerSettings =
            yaml("consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 2048}}").unwrap();
        let hash = lb.consistent_hash.unwrap();
        assert_eq!(hash.use_source_ip, Some(true));
        assert_eq!(hash.ring_hash.unwrap().minimum_ring_size, 2048);
    }

    #[test]
    fn locality_distribute_weights() {
        let l: LocalityLoadBalancerSetting = yaml(
            "distribute:\n- from: us-west/zone1/*\n  to: {\"us-west/zone1/*\": 80, \"us-west/zone2/*\": 20}",
        )
        .unwrap();
        assert_eq!(l.distribute[0].to["us-west/zone2/*"], 20);
    }
}
