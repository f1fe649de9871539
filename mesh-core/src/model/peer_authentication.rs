//! PeerAuthentication (being filled in).
use serde::{Deserialize, Serialize};
/// PeerAuthentication spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerAuthentication {
    /// The spec.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}
