//! The AuthorizationPolicy engine: which requests a workload's inbound proxy lets through.
//!
//! Why: Istio's server-side authorization (SEMANTICS §7) decides per HTTP request or per TCP
//! connection from the AuthorizationPolicies that apply to the workload (AUTHZ-1) in a fixed
//! order: CUSTOM, then DENY, then ALLOW, with AUDIT only reported (AUTHZ-2). The subtle parts are
//! the pitfalls SEMANTICS lists: one ALLOW policy flips the workload to default-deny (AUTHZ-2),
//! `spec: {}` denies everything while `rules: [{}]` allows everything (AUTHZ-5), plaintext peers
//! have no principal (AUTHZ-22), `hosts` are compared with the port as sent (AUTHZ-16), `ports`
//! are workload ports (AUTHZ-17), and HTTP-only fields on TCP shrink ALLOW rules but widen DENY
//! rules (AUTHZ-21).
//!
//! [`AuthzTable::compile`] picks the applicable policies from a snapshot once and
//! pre-classifies every value (exact, prefix, suffix, presence, URI template, CIDR, port);
//! [`AuthzTable::decide`] reads a borrowed [`AuthzRequest`] and allocates nothing. Tables of five
//! or more policies also get a candidate index keyed by the peer's principal and namespace, so a
//! decision evaluates only the policies that could match the caller (plus those that name no
//! caller); the index changes speed, never outcomes.
//!
//! Decisions where SEMANTICS is silent:
//! - An invalid value (CIDR, port, path template, service account, unknown `when` key, a
//!   condition without values) is recorded as an [`Issue`]; it makes an ALLOW rule never match
//!   and is skipped in DENY/AUDIT/CUSTOM rules (the AUTHZ-19/AUTHZ-21 treatment), so both fail
//!   closed.
//! - CUSTOM policies deny what they match (AUTHZ-4).
//! - Dry-run policies (`istio.io/dry-run: "true"`, AUTHZ-26) never change [`Decision::allowed`];
//!   the decision they would have produced is in [`Decision::dry_run`].
//!
//! ```
//! use mesh_core::registry::Scope;
//! use mesh_identity::authz::{AuthzRequest, AuthzTable, Reason};
//! let yaml = r#"
//! apiVersion: security.istio.io/v1
//! kind: AuthorizationPolicy
//! metadata: {name: payments, namespace: production}
//! spec:
//!   selector: {matchLabels: {app: payment-service}}
//!   rules:
//!   - from: [{source: {principals: [cluster.local/ns/production/sa/order-service]}}]
//!     to: [{operation: {methods: [POST], paths: ["/v1/payments*"]}}]
//! "#;
//! let resources =
//!     mesh_core::loader::parse_str(yaml, std::path::Path::new("authz.yaml"), "default").unwrap();
//! let snapshot = mesh_core::Snapshot::new(resources);
//! let scope = Scope::new("production").labels([("app", "payment-service")]);
//! let table = AuthzTable::compile(&snapshot, &scope);
//! let ip = "10.0.0.7".parse().unwrap();
//! let ok = AuthzRequest::http(ip, 8080)
//!     .principal(Some("cluster.local/ns/production/sa/order-service"))
//!     .method("POST")
//!     .path("/v1/payments/42");
//! assert!(table.decide(&ok).allowed);
//! let denied = table.decide(&ok.method("GET"));
//! assert!(!denied.allowed);
//! assert_eq!(denied.reason, Reason::NoAllowMatched);
//! ```

mod cidr;
mod index;
mod matcher;
mod policy;
mod request;
mod table;
#[cfg(test)]
mod tests;

pub use cidr::Cidr;
pub use matcher::{PathMatcher, PathTemplate, StrKind, StrMatcher};
pub use request::{AuthzRequest, Protocol};
pub use table::{AuthzOptions, AuthzTable, PolicyTrace};

/// The body of an HTTP deny response (AUTHZ-23).
pub const DENY_BODY: &str = "RBAC: access denied";

/// The annotation that puts a policy in dry-run mode (AUTHZ-26).
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// A policy's action as the engine runs it (AUTHZ-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Allows matching requests; its presence makes the workload default-deny.
    Allow,
    /// Denies matching requests.
    Deny,
    /// Marks matching requests for audit logging only.
    Audit,
    /// External authorization; unsupported in v1, so it denies what it matches (AUTHZ-4).
    Custom,
}

/// Why a decision came out as it did (AUTHZ-2 steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Step 1: a CUSTOM policy matched; its provider is unsupported, so deny (AUTHZ-4).
    CustomDenied,
    /// Step 2: a DENY policy matched.
    DenyMatched,
    /// Step 3: no ALLOW policy applies to the workload.
    NoAllowPolicy,
    /// Step 4: an ALLOW policy matched.
    AllowMatched,
    /// Step 5: ALLOW policies apply but none matched.
    NoAllowMatched,
}

impl Reason {
    /// A short lowercase label for logs and `explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CustomDenied => "custom policy matched (provider unsupported, fail closed)",
            Reason::DenyMatched => "deny policy matched",
            Reason::NoAllowPolicy => "no allow policy applies",
            Reason::AllowMatched => "allow policy matched",
            Reason::NoAllowMatched => "no allow policy matched",
        }
    }

    /// Whether the request goes through.
    pub fn allows(self) -> bool {
        matches!(self, Reason::NoAllowPolicy | Reason::AllowMatched)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy and rule that matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Matched<'t> {
    /// The policy's action.
    pub action: Action,
    /// The policy's namespace.
    pub namespace: &'t str,
    /// The policy's name.
    pub name: &'t str,
    /// Index of the first matching rule in `rules`.
    pub rule: usize,
}

/// An outcome: allowed or not, why, and which policy decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict<'t> {
    /// Whether the request goes through.
    pub allowed: bool,
    /// The AUTHZ-2 step that decided.
    pub reason: Reason,
    /// The deciding policy and rule (none for steps 3 and 5).
    pub matched: Option<Matched<'t>>,
}

/// The decision for one request or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision<'t> {
    /// Whether the request goes through (dry-run policies excluded).
    pub allowed: bool,
    /// The AUTHZ-2 step that decided.
    pub reason: Reason,
    /// The deciding policy and rule (none for steps 3 and 5).
    pub matched: Option<Matched<'t>>,
    /// The first matching AUDIT policy: the request is marked `audit=true` (AUTHZ-2).
    pub audit: Option<Matched<'t>>,
    /// When dry-run policies apply: the verdict had they been enforced (AUTHZ-26).
    pub dry_run: Option<Verdict<'t>>,
}

impl Decision<'_> {
    /// Envoy's response code details for a deny (AUTHZ-23), `None` when allowed:
    /// `rbac_access_denied_matched_policy[ns[<ns>]-policy[<name>]-rule[<index>]]`, or
    /// `rbac_access_denied_matched_policy[none]` when no ALLOW policy matched.
    pub fn response_code_details(&self) -> Option<String> {
        if self.allowed {
            return None;
        }
        Some(match self.matched {
            Some(m) => format!(
                "rbac_access_denied_matched_policy[ns[{}]-policy[{}]-rule[{}]]",
                m.namespace, m.name, m.rule
            ),
            None => "rbac_access_denied_matched_policy[none]".to_owned(),
        })
    }
}

/// Something wrong in a policy value, found while compiling.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// An `ipBlocks`/`remoteIpBlocks`/IP condition value that is not an IP or CIDR.
    #[error("invalid IP block {0:?}")]
    InvalidIpBlock(String),
    /// A port that is not a number from 0 to 65535 (AUTHZ-9).
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    /// A `paths` template breaking AUTHZ-10.
    #[error("invalid path template {0:?}")]
    InvalidPathTemplate(String),
    /// A `serviceAccounts` value that is not `ns/sa` or `sa` (AUTHZ-13).
    #[error("invalid service account {0:?}")]
    InvalidServiceAccount(String),
    /// `serviceAccounts` combined with `principals`/`namespaces` in one source (AUTHZ-13).
    #[error("serviceAccounts cannot be combined with principals or namespaces")]
    ServiceAccountsCombined,
    /// A `when` key outside AUTHZ-19.
    #[error("unknown condition key {0:?}")]
    UnknownConditionKey(String),
    /// A `when` condition with neither `values` nor `notValues` (AUTHZ-8).
    #[error("condition {0:?} has neither values nor notValues")]
    EmptyCondition(String),
    /// A CUSTOM policy: ext_authz is unsupported, it denies what it matches (AUTHZ-4).
    #[error("CUSTOM provider not supported; matching requests are denied")]
    CustomUnsupported,
}

/// A [`Problem`] located in a policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AuthorizationPolicy {namespace}/{name}: {problem}")]
#[non_exhaustive]
pub struct Issue {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// Index of the rule, if the problem is in one.
    pub rule: Option<usize>,
    /// What is wrong.
    pub problem: Problem,
}
