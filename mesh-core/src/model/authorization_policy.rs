//! AuthorizationPolicy (being filled in).
use serde::{Deserialize, Serialize};
/// AuthorizationPolicy spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationPolicy {
    /// The spec.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}
