//! DestinationRule (being filled in).
use serde::{Deserialize, Serialize};
/// DestinationRule spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DestinationRule {
    /// The spec.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}
