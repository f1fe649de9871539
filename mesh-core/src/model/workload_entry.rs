//! `WorkloadEntry`: one workload instance (a VM, or here any process) and the body of a
//! ServiceEntry endpoint (SEMANTICS SE-4, SE-5, WE-1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `networking.istio.io` WorkloadEntry spec (also the type of `ServiceEntry.endpoints[]`).
///
/// ```
/// use mesh_core::model::WorkloadEntry;
/// let we: WorkloadEntry = serde_json::from_str(
///     r#"{"address": "127.0.0.1", "ports": {"http": 18081}, "labels": {"version": "v1"}}"#,
/// ).unwrap();
/// assert_eq!(we.ports["http"], 18081);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkloadEntry {
    /// IP address or DNS name of the workload, or a `unix://` socket path.
    #[serde(default)]
    pub address: String,
    /// Port name → port on this workload; overrides the service port's `targetPort` (SE-4).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Labels (subsets select endpoints by these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Network the workload is on (ignored in v1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// `region/zone/subzone` of the workload.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
    /// Load-balancing weight (0 means the default, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The service account the workload runs as: the identity callers expect (SE-6).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
}
