//! VirtualService (being filled in).
use serde::{Deserialize, Serialize};
/// `networking.istio.io` VirtualService spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct VirtualService {
    /// Hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Rest of the spec.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}
