//! `PeerAuthentication`: which connections a workload's proxy accepts, mTLS or plaintext
//! (SEMANTICS §6).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::LabelSelector;

/// `security.istio.io` PeerAuthentication spec.
///
/// ```
/// use mesh_core::model::{MutualTlsMode, PeerAuthentication};
/// let pa: PeerAuthentication = serde_json::from_str(r#"{
///     "selector": {"matchLabels": {"app": "reviews"}},
///     "mtls": {"mode": "STRICT"},
///     "portLevelMtls": {"8080": {"mode": "DISABLE"}}
/// }"#).unwrap();
/// assert_eq!(pa.mode(), MutualTlsMode::Strict);
/// assert_eq!(pa.port_level_mtls[&8080].mode, MutualTlsMode::Disable);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PeerAuthentication {
    /// Workloads the policy applies to; absent = namespace-wide, or mesh-wide in the root
    /// namespace (PA-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The mTLS mode; absent = inherit (PA-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Modes per workload (container) port, honoured only with a selector (PA-3).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

impl PeerAuthentication {
    /// The policy's mode for ports without their own entry (`UNSET` when `mtls` is absent).
    pub fn mode(&self) -> MutualTlsMode {
        self.mtls.map(|m| m.mode).unwrap_or_default()
    }
}

/// `PeerAuthentication.MutualTLS`: an mTLS mode setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct MutualTls {
    /// The mode.
    #[serde(default)]
    pub mode: MutualTlsMode,
}

impl MutualTls {
    /// A setting with `mode`.
    pub fn new(mode: MutualTlsMode) -> Self {
        Self { mode }
    }
}

/// `PeerAuthentication.MutualTLS.Mode` (PA-4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum MutualTlsMode {
    /// Inherit from the enclosing level; `PERMISSIVE` at the top.
    #[default]
    Unset,
    /// Plaintext only.
    Disable,
    /// mTLS and plaintext on the same port.
    Permissive,
    /// mTLS only.
    Strict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_port_keys_parse() {
        let pa: PeerAuthentication = serde_saphyr::from_str(
            "selector: {matchLabels: {app: reviews}}\nmtls: {mode: STRICT}\n\
             portLevelMtls:\n  8080: {mode: DISABLE}\n  \"9090\": {mode: PERMISSIVE}\n  9443: {}",
        )
        .unwrap();
        assert_eq!(pa.port_level_mtls[&8080].mode, MutualTlsMode::Disable);
        assert_eq!(pa.port_level_mtls[&9090].mode, MutualTlsMode::Permissive);
        assert_eq!(pa.port_level_mtls[&9443].mode, MutualTlsMode::Unset);
        // JSON keys are strings and come back as the same numbers.
        let json = serde_json::to_string(&pa).unwrap();
        assert!(json.contains(r#""8080":{"mode":"DISABLE"}"#), "{json}");
        assert_eq!(
            serde_json::from_str::<PeerAuthentication>(&json).unwrap(),
            pa
        );
    }

    #[test]
    fn bad_keys_and_modes_fail() {
        let parse = serde_saphyr::from_str::<PeerAuthentication>;
        assert!(parse("portLevelMtls: {http: {mode: STRICT}}").is_err());
        assert!(parse("portLevelMtls: {-1: {mode: STRICT}}").is_err());
        assert!(parse("mtls: {mode: strict}").is_err());
        assert!(parse("mtls: {mode: STRICT, port: 1}").is_err());
        assert!(parse("targetRef: {kind: Service, name: a}").is_err());
    }

    #[test]
    fn absent_mtls_is_unset() {
        assert_eq!(PeerAuthentication::default().mode(), MutualTlsMode::Unset);
    }
}
