//! Small messages shared by several Istio kinds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `istio.type.v1beta1.WorkloadSelector` and the networking `WorkloadSelector`: the workloads a
/// resource applies to, by label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkloadSelector {
    /// Labels a workload must carry (all of them) to be selected.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.WorkloadSelector` as written in security resources (`matchLabels`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct LabelSelector {
    /// Labels a workload must carry (all of them) to be selected.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.PolicyTargetReference`: a Gateway API object a policy attaches to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyTargetReference {
    /// API group of the target (`gateway.networking.k8s.io`, `""` for core).
    #[serde(default)]
    pub group: String,
    /// Kind of the target (`Gateway`, `Service`, `ServiceEntry`, …).
    #[serde(default)]
    pub kind: String,
    /// Name of the target.
    #[serde(default)]
    pub name: String,
    /// Namespace of the target (defaults to the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `Percent`: a percentage from 0.0 to 100.0 in a `{value: N}` wrapper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Percent {
    /// The percentage.
    #[serde(default)]
    pub value: f64,
}

impl Percent {
    /// A percentage.
    pub fn new(value: f64) -> Self {
        Self { value }
    }
}
