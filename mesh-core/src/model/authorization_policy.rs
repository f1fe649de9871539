//! `AuthorizationPolicy`: which requests a workload's proxy lets through (SEMANTICS §7).

use serde::{Deserialize, Serialize};

use super::{LabelSelector, PolicyTargetReference};

/// `security.istio.io` AuthorizationPolicy spec.
///
/// ```
/// use mesh_core::model::{AuthorizationAction, AuthorizationPolicy};
/// let ap: AuthorizationPolicy = serde_json::from_str(r#"{
///     "action": "DENY",
///     "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]
/// }"#).unwrap();
/// assert_eq!(ap.action, AuthorizationAction::Deny);
/// let source = ap.rules[0].from[0].source.as_ref().unwrap();
/// assert_eq!(source.not_principals, ["*"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthorizationPolicy {
    /// Workloads the policy applies to; absent = namespace-wide, or mesh-wide in the root
    /// namespace (AUTHZ-1). Exclusive with `targetRef(s)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// A gateway, waypoint or service the policy attaches to (superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways, waypoints or services the policy attaches to (not sidecars) (AUTHZ-1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Rules, ORed; none = the policy never matches (AUTHZ-5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What a match does; absent = `ALLOW` (AUTHZ-2, AUTHZ-3).
    #[serde(default)]
    pub action: AuthorizationAction,
    /// The external authorizer of a `CUSTOM` policy (AUTHZ-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// `AuthorizationPolicy.Action`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AuthorizationAction {
    /// Let matching requests through; once any ALLOW policy applies, others are denied.
    #[default]
    Allow,
    /// Deny matching requests.
    Deny,
    /// Mark matching requests for audit logging; never changes the decision.
    Audit,
    /// Ask the external authorizer named in `provider`.
    Custom,
}

/// `AuthorizationPolicy.ExtensionProvider`: an external authorizer from the mesh config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ExtensionProvider {
    /// Name of the provider in the mesh config's `extensionProviders`.
    #[serde(default)]
    pub name: String,
}

/// `Rule`: who (`from`), what (`to`) and under which conditions (`when`), all ANDed (AUTHZ-6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Rule {
    /// Sources, ORed; empty = any source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// Operations, ORed; empty = any operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    /// Conditions, ANDed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// `Rule.From`: one entry of `from`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleFrom {
    /// The source conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// `Rule.To`: one entry of `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleTo {
    /// The operation conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// `Source`: conditions on the peer; set fields are ANDed, values in a field ORed (AUTHZ-7).
///
/// Every value takes the `abc`, `abc*`, `*abc`, `*` forms (AUTHZ-9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Source {
    /// Peer identities from mTLS, as `<trust-domain>/ns/<ns>/sa/<sa>` (AUTHZ-11).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// JWT identities, as `<iss>/<sub>` (AUTHZ-15).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// JWT identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Namespaces of the peer identity (AUTHZ-12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Service accounts, `ns/sa` or `sa` (AUTHZ-13); exclusive with principals and namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Service accounts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// IPs or CIDRs of the direct peer (AUTHZ-14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Peer IPs or CIDRs that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// IPs or CIDRs of the original client (from `X-Forwarded-For`) (AUTHZ-14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Original-client IPs or CIDRs that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// Trust domains of the peer identity (AUTHZ-13; newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    /// Trust domains that must not match (newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

/// `Operation`: conditions on the request; set fields are ANDed, values in a field ORed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Operation {
    /// `Host`/`:authority` values, port included as sent, case-insensitive (AUTHZ-16).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Workload ports, as numeric strings (AUTHZ-17).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// HTTP methods (AUTHZ-18).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Normalized paths without query; `{*}` and `{**}` templates allowed (AUTHZ-10, AUTHZ-18).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// `Condition`: a condition on a request attribute such as `request.headers[x-token]`
/// (AUTHZ-8, AUTHZ-19).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Condition {
    /// The attribute (required).
    #[serde(default)]
    pub key: String,
    /// Values, one of which the attribute must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values the attribute must match none of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    #[test]
    fn empty_rules_and_actions() {
        let allow_nothing: AuthorizationPolicy = yaml("{}").unwrap();
        assert_eq!(allow_nothing.action, AuthorizationAction::Allow);
        assert!(allow_nothing.rules.is_empty());
        let deny_all: AuthorizationPolicy = yaml("action: DENY\nrules: [{}]").unwrap();
        assert_eq!(deny_all.rules, vec![Rule::default()]);
        let custom: AuthorizationPolicy =
            yaml("action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{to: [{operation: {paths: [/admin/*]}}]}]")
                .unwrap();
        assert_eq!(custom.provider.unwrap().name, "ext-authz");
        assert!(yaml::<AuthorizationPolicy>("action: REJECT").is_err());
    }

    #[test]
    fn ports_are_strings_even_when_written_as_numbers() {
        let op: Operation = yaml("ports: [8080, \"9090\"]").unwrap();
        assert_eq!(op.ports, ["8080", "9090"]);
    }

    #[test]
    fn typos_in_sources_fail() {
        let err = yaml::<Source>("principal: [a]").unwrap_err().to_string();
        assert!(err.contains("principal"), "{err}");
        assert!(yaml::<Rule>("when: [{key: source.ip, value: [10.0.0.1]}]").is_err());
    }
}
