//! `DestinationRule`: policies for traffic to a service once routing has chosen it (SEMANTICS §4).
//!
//! This file holds the resource, [`TrafficPolicy`] and its smaller blocks, outlier detection and
//! client TLS; load balancing is in `destination_rule/load_balancer.rs` and connection pools
//! (shared with Sidecar) in `destination_rule/connection_pool.rs`.

mod connection_pool;
mod load_balancer;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::connection_pool::*;
pub use self::load_balancer::*;
use super::virtual_service::wire::is_default;
use super::{Duration, LabelSelector, PortSelector};

/// `networking.istio.io` DestinationRule spec.
///
/// ```
/// use mesh_core::model::{DestinationRule, SimpleLb};
/// let dr: DestinationRule = serde_json::from_str(r#"{
///     "host": "reviews",
///     "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
///     "subsets": [{"name": "v1", "labels": {"version": "v1"}}]
/// }"#).unwrap();
/// let lb = dr.traffic_policy.unwrap().load_balancer.unwrap();
/// assert_eq!(lb.simple, Some(SimpleLb::RoundRobin));
/// assert_eq!(dr.subsets[0].labels["version"], "v1");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DestinationRule {
    /// The service the rule applies to, as in the registry; wildcards allowed (required) (DR-1).
    #[serde(default)]
    pub host: String,
    /// Policy for all traffic to the host (DR-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named groups of endpoints, selected by label, that routes may name (DR-1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces the rule is visible to (`.` = own, `*` = all; empty = all) (HOST-8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Client workloads the rule applies to; absent = every workload that sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
}

/// `TrafficPolicy`: the policy blocks for a host, a subset or (via `portLevelSettings`) a port.
///
/// Each block replaces the inherited one whole when set (DR-3, DR-4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TrafficPolicy {
    /// How an endpoint is chosen (DR-6 to DR-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits (DR-13 to DR-17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking; absent = off (OD-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides of the four blocks above (DR-4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnel the connection through an HTTP CONNECT proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Send a PROXY protocol header upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries as a share of active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// `TrafficPolicy.PortTrafficPolicy`: the policy for one destination port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PortTrafficPolicy {
    /// The destination port this entry applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// How an endpoint is chosen on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// `TrafficPolicy.TunnelSettings`: tunnel upstream connections through a proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TunnelSettings {
    /// `CONNECT` (the default) or `POST`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Host the tunnel leads to (required).
    #[serde(default)]
    pub target_host: String,
    /// Port the tunnel leads to (required).
    #[serde(default)]
    pub target_port: u32,
}

/// `TrafficPolicy.ProxyProtocol`: the PROXY protocol header sent upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ProxyProtocol {
    /// PROXY protocol version.
    #[serde(default)]
    pub version: ProxyProtocolVersion,
}

/// `TrafficPolicy.ProxyProtocol.VERSION`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProxyProtocolVersion {
    /// Version 1, text.
    #[default]
    #[serde(rename = "V1")]
    V1,
    /// Version 2, binary.
    #[serde(rename = "V2")]
    V2,
}

/// `TrafficPolicy.RetryBudget`: caps concurrent retries to a share of active requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryBudget {
    /// Maximum retries as a percentage of active requests (absent = 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed whatever the budget (0 = 3).
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_retry_concurrency: u32,
    /// How long new requests keep counting towards the budget; absent or 0 = only requests
    /// in flight count (newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<Duration>,
}

/// `Subset`: a named group of a host's endpoints, with its own policy (DR-1 to DR-3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Subset {
    /// Name routes refer to in `destination.subset` (required).
    #[serde(default)]
    pub name: String,
    /// Labels an endpoint must carry (all of them) to be in the subset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Policy used only when a route names this subset (DR-2, DR-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `OutlierDetection`: ejection of endpoints that keep failing (OD-1 to OD-10).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct OutlierDetection {
    /// Deprecated: consecutive 502/503/504 before ejection (use `consecutiveGatewayErrors`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub consecutive_errors: i32,
    /// Counts locally originated failures separately from HTTP 5xx (OD-4).
    #[serde(default, skip_serializing_if = "is_default")]
    pub split_external_local_origin_errors: bool,
    /// Consecutive local-origin failures before ejection, when split (absent = 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Consecutive gateway errors (502, 503, 504, local failures) before ejection; 0 = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive 5xx (and local failures) before ejection; absent = 5, 0 = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Time between ejection sweeps (absent = 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Ejection time, multiplied by the number of ejections so far (absent = 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Most endpoints that may be ejected at once, in percent (0 = 10).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_ejection_percent: i32,
    /// Below this percentage of healthy endpoints ejection stops (panic mode).
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_health_percent: i32,
    /// HTTP statuses (100–599) counted as errors instead of all 5xx (newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outlier_detection_http_error_codes: Vec<u32>,
}

/// `ClientTLSSettings`: TLS the proxy originates towards the upstream (DR-18, DR-19).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientTlsSettings {
    /// Whether and how to originate TLS.
    #[serde(default)]
    pub mode: ClientTlsMode,
    /// Client certificate file (PEM) for `MUTUAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    /// Private key file (PEM) for `MUTUAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file (PEM) to verify the server with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// Secret holding certificate, key and CA (gateways; sidecars only with a
    /// `workloadSelector`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    /// Names accepted in the server certificate's SAN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI to send.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    /// Skip verifying the server certificate and SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
}

/// `ClientTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ClientTlsMode {
    /// Plaintext upstream connections.
    #[default]
    Disable,
    /// TLS, server verified, no client certificate.
    Simple,
    /// TLS with a client certificate given in the rule.
    Mutual,
    /// Istio mTLS with the workload's own certificate.
    IstioMutual,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    #[test]
    fn outlier_detection_names() {
        let od: OutlierDetection = yaml(
            "consecutive5xxErrors: 7\nconsecutiveGatewayErrors: 0\ninterval: 5m\n\
             baseEjectionTime: 15m\nmaxEjectionPercent: 100",
        )
        .unwrap();
        assert_eq!(od.consecutive_5xx_errors, Some(7));
        assert_eq!(od.consecutive_gateway_errors, Some(0));
        assert_eq!(od.interval, Some(Duration::from_secs(300)));
        assert_eq!(od.consecutive_local_origin_failures, None);
        let json = serde_json::to_value(&od).unwrap();
        assert_eq!(json["consecutive5xxErrors"], 7);
        assert_eq!(json["baseEjectionTime"], "900s");
    }

    #[test]
    fn tls_modes() {
        let tls: ClientTlsSettings = yaml("mode: ISTIO_MUTUAL\nsni: a.example.com").unwrap();
        assert_eq!(tls.mode, ClientTlsMode::IstioMutual);
        assert_eq!(
            yaml::<ClientTlsSettings>("{}").unwrap().mode,
            ClientTlsMode::Disable
        );
        assert!(yaml::<ClientTlsSettings>("mode: MUTUAL_TLS").is_err());
    }

    #[test]
    fn proxy_protocol_versions() {
        let p: ProxyProtocol = yaml("version: V2").unwrap();
        assert_eq!(p.version, ProxyProtocolVersion::V2);
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"version":"V2"}"#);
    }

    #[test]
    fn subset_policy_and_selector() {
        let dr: DestinationRule = yaml(
            "host: reviews\nworkloadSelector: {matchLabels: {app: productpage}}\n\
             subsets:\n- name: v2\n  labels: {version: v2}\n  trafficPolicy:\n    \
             connectionPool: {http: {http2MaxRequests: 50}}",
        )
        .unwrap();
        assert_eq!(
            dr.workload_selector.unwrap().match_labels["app"],
            "productpage"
        );
        let pool = dr.subsets[0]
            .traffic_policy
            .as_ref()
            .unwrap()
            .connection_pool
            .as_ref()
            .unwrap();
        assert_eq!(pool.http.as_ref().unwrap().http2_max_requests, 50);
        assert!(yaml::<DestinationRule>("host: a\nworkloadSelector: {labels: {app: x}}").is_err());
    }
}
