//! Which DestinationRule applies to a destination, and the policy each cluster ends up with
//! (SEMANTICS HOST-12, DR-1 to DR-5).
//!
//! Routing (subsets, load balancing) and resilience (connection pools, outlier detection) must
//! agree on the rule and on its effective policy, and leaf crates never import each other, so
//! both live here:
//!
//! - [`DestinationRules`] indexes the rules one proxy sees, once per snapshot: `exportTo` from
//!   the proxy's namespace (HOST-8), `workloadSelector` against the proxy's labels in the rule's
//!   own namespace (HOST-12). Rules for one host in one namespace are merged into a
//!   [`MergedRule`]: oldest first (HOST-9 order), subsets concatenated with the first definition
//!   of a name winning, the first top-level `trafficPolicy` winning.
//! - [`DestinationRules::lookup`] follows Istio's path for a destination host: the proxy's
//!   namespace, then the service's namespace, then the root namespace; within one namespace an
//!   exact host beats a wildcard, and the longest wildcard wins.
//! - [`MergedRule::effective`] resolves the policy of one cluster (subset, port): top level →
//!   its `portLevelSettings` entry for the port → the subset's policy → the subset's entry for
//!   the port, each step replacing whole blocks (DR-3, DR-4).
//!
//! A rule with a `workloadSelector` that matches the proxy is merged **before** the rules
//! without one, whatever their age, so its top-level policy wins (ours: Istio keeps such a rule
//! as its own entry and prefers it for the proxies it selects).
//!
//! ```
//! use std::path::Path;
//! use mesh_core::Snapshot;
//! use mesh_core::loader::parse_str;
//! use mesh_core::registry::Scope;
//! use mesh_core::traffic_policy::DestinationRules;
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: DestinationRule
//! metadata: {name: reviews, namespace: prod}
//! spec:
//!   host: reviews
//!   trafficPolicy:
//!     connectionPool: {tcp: {maxConnections: 10}, http: {http2MaxRequests: 5}}
//!   subsets:
//!   - name: v2
//!     labels: {version: v2}
//!     trafficPolicy:
//!       connectionPool: {http: {http2MaxRequests: 50}}
//! "#;
//! let snapshot = Snapshot::new(parse_str(yaml, Path::new("dr.yaml"), "prod").unwrap());
//! let rules = DestinationRules::build(&snapshot, &Scope::new("web"));
//! let rule = rules.lookup("reviews.prod.svc.cluster.local", "prod").unwrap();
//! assert_eq!(rule.sources()[0].location.file_line(), "dr.yaml:2");
//!
//! // DR-3: the subset's connectionPool replaces the top-level one whole.
//! let v2 = rule.effective(Some("v2"), 9080);
//! let pool = v2.connection_pool.unwrap();
//! assert_eq!(pool.http.unwrap().http2_max_requests, 50);
//! assert!(pool.tcp.is_none());
//! // DR-2: without a subset, the top-level policy.
//! let base = rule.effective(None, 9080).connection_pool.unwrap();
//! assert_eq!(base.tcp.unwrap().max_connections, 10);
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::Snapshot;
use crate::hosts::{self, host_matches, is_wildcard};
use crate::model::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings, Location,
    OutlierDetection, ProxyProtocol, Resource, RetryBudget, Subset, TrafficPolicy, TunnelSettings,
};
use crate::registry::{Scope, creation_order, is_exported};

/// The policy blocks that apply to one cluster (host, port, subset) after DR-3 and DR-4
/// resolution. `None` means the block is not configured: its defaults apply (for
/// `outlier_detection`: no ejection, OD-1).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct EffectivePolicy {
    /// How an endpoint is chosen (DR-6 to DR-12).
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits (DR-13 to DR-17).
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking (OD-1 to OD-10).
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream (DR-18 to DR-20).
    pub tls: Option<ClientTlsSettings>,
    /// Tunnel through an HTTP CONNECT proxy.
    pub tunnel: Option<TunnelSettings>,
    /// PROXY protocol header sent upstream.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries.
    pub retry_budget: Option<RetryBudget>,
}

impl EffectivePolicy {
    /// Applies one level of policy: every block it sets replaces the inherited block whole
    /// (DR-3); then its first `portLevelSettings` entry for `port`, if any, replaces all four
    /// port-level blocks, absent ones included (DR-4).
    fn apply(&mut self, policy: &TrafficPolicy, port: u32) {
        replace(&mut self.load_balancer, &policy.load_balancer);
        replace(&mut self.connection_pool, &policy.connection_pool);
        replace(&mut self.outlier_detection, &policy.outlier_detection);
        replace(&mut self.tls, &policy.tls);
        replace(&mut self.tunnel, &policy.tunnel);
        replace(&mut self.proxy_protocol, &policy.proxy_protocol);
        replace(&mut self.retry_budget, &policy.retry_budget);
        if let Some(entry) = policy
            .port_level_settings
            .iter()
            .find(|e| e.port.as_ref().is_some_and(|p| p.number == port))
        {
            self.load_balancer.clone_from(&entry.load_balancer);
            self.connection_pool.clone_from(&entry.connection_pool);
            self.outlier_detection.clone_from(&entry.outlier_detection);
            self.tls.clone_from(&entry.tls);
        }
    }
}

/// Replaces `slot` with `block` when the block is set.
fn replace<T: Clone>(slot: &mut Option<T>, block: &Option<T>) {
    if block.is_some() {
        slot.clone_from(block);
    }
}

/// One DestinationRule that contributed to a [`MergedRule`]: its name and where it was
/// written (the namespace is the merged rule's).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleSource {
    /// The DestinationRule's name.
    pub name: String,
    /// Where it was written.
    pub location: Location,
}

/// The DestinationRules of one namespace for one host, merged (HOST-12, DR-5).
#[derive(Debug)]
#[non_exhaustive]
pub struct MergedRule {
    host: String,
    namespace: String,
    sources: Vec<RuleSource>,
    traffic_policy: Option<TrafficPolicy>,
    policy_source: Option<usize>,
    subsets: Vec<Subset>,
    /// For each subset, the index of its source.
    subset_sources: Vec<usize>,
}

impl MergedRule {
    fn new(host: String, namespace: String) -> Self {
        Self {
            host,
            namespace,
            sources: Vec::new(),
            traffic_policy: None,
            policy_source: None,
            subsets: Vec::new(),
            subset_sources: Vec::new(),
        }
    }

    /// Adds the next (younger) rule: its subsets whose names are new, and its top-level policy
    /// when no older rule had one.
    fn merge(&mut self, rule: &Resource<DestinationRule>) {
        let source = self.sources.len();
        self.sources.push(RuleSource {
            name: rule.name().to_owned(),
            location: rule.source.clone(),
        });
        if self.traffic_policy.is_none()
            && let Some(policy) = &rule.spec.traffic_policy
        {
            self.traffic_policy = Some(policy.clone());
            self.policy_source = Some(source);
        }
        for subset in &rule.spec.subsets {
            // An unnamed subset cannot be referenced (and would collide with the base cluster's
            // name); `analyze` reports it (MESH0203).
            if subset.name.is_empty() || self.subset(&subset.name).is_some() {
                continue;
            }
            self.subsets.push(subset.clone());
            self.subset_sources.push(source);
        }
    }

    /// The host as qualified in the rule's namespace (FQDN or wildcard, lower case).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The namespace of the merged rules.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The rules merged here, in merge order (the first one's policy wins).
    pub fn sources(&self) -> &[RuleSource] {
        &self.sources
    }

    /// The top-level traffic policy (from the first rule that has one).
    pub fn traffic_policy(&self) -> Option<&TrafficPolicy> {
        self.traffic_policy.as_ref()
    }

    /// The rule the top-level traffic policy comes from.
    pub fn policy_source(&self) -> Option<&RuleSource> {
        self.policy_source.map(|i| &self.sources[i])
    }

    /// Every subset, in merge order, names unique.
    pub fn subsets(&self) -> &[Subset] {
        &self.subsets
    }

    /// The subset called `name`.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }

    /// The rule the subset called `name` comes from.
    pub fn subset_source(&self, name: &str) -> Option<&RuleSource> {
        let i = self.subsets.iter().position(|s| s.name == name)?;
        Some(&self.sources[self.subset_sources[i]])
    }

    /// The effective policy of the cluster for `subset` (or none) on destination port `port`:
    /// top level, then its port-level entry for `port`, then the subset's policy, then the
    /// subset's port-level entry, each step replacing whole blocks (DR-3, DR-4). A subset's
    /// policy is used only when the subset is named (DR-2); an unknown name counts as none.
    pub fn effective(&self, subset: Option<&str>, port: u32) -> EffectivePolicy {
        let mut policy = EffectivePolicy::default();
        if let Some(top) = &self.traffic_policy {
            policy.apply(top, port);
        }
        if let Some(own) = subset
            .and_then(|name| self.subset(name))
            .and_then(|s| s.traffic_policy.as_ref())
        {
            policy.apply(own, port);
        }
        policy
    }
}

/// The merged rules of one namespace, by host.
#[derive(Debug, Default)]
struct NamespaceRules {
    exact: HashMap<String, Arc<MergedRule>>,
    /// Wildcard hosts, most specific (longest) first.
    wildcards: Vec<Arc<MergedRule>>,
}

impl NamespaceRules {
    /// An exact host beats any wildcard; the longest matching wildcard wins (HOST-5, HOST-12).
    fn find(&self, host: &str) -> Option<&Arc<MergedRule>> {
        self.exact
            .get(host)
            .or_else(|| self.wildcards.iter().find(|r| host_matches(&r.host, host)))
    }
}

/// The DestinationRules one proxy sees, merged per namespace and host and indexed for
/// [`lookup`](Self::lookup). Built once per snapshot.
#[derive(Debug, Default)]
pub struct DestinationRules {
    namespaces: HashMap<String, NamespaceRules>,
    all: Vec<Arc<MergedRule>>,
    proxy_namespace: String,
    root_namespace: String,
}

impl DestinationRules {
    /// Indexes the DestinationRules of `snapshot` visible to a proxy in `scope`: exported to its
    /// namespace (HOST-8), and, for rules with a `workloadSelector`, in its namespace and
    /// selecting its labels (HOST-12). Rules without a host are skipped (`analyze` reports them).
    pub fn build(snapshot: &Snapshot, scope: &Scope) -> Self {
        let mut rules: Vec<&Resource<DestinationRule>> = snapshot
            .destination_rules()
            .filter(|dr| !dr.spec.host.trim().is_empty())
            .filter(|dr| is_exported(&dr.spec.export_to, dr.namespace(), &scope.namespace))
            .filter(|dr| selects_proxy(dr, scope))
            .collect();
        // Selected rules first, then oldest first (HOST-9 order); the sort is stable, so rules
        // without timestamps keep load order.
        rules.sort_by(|a, b| {
            let selected = |r: &Resource<DestinationRule>| r.spec.workload_selector.is_some();
            selected(b)
                .cmp(&selected(a))
                .then_with(|| creation_order(a, b))
        });

        let mut merged: Vec<MergedRule> = Vec::new();
        let mut index: HashMap<(&str, String), usize> = HashMap::new();
        for rule in rules {
            let host = hosts::qualify(rule.spec.host.trim(), rule.namespace());
            let key = (rule.namespace(), host);
            let i = match index.get(&key) {
                Some(&i) => i,
                None => {
                    merged.push(MergedRule::new(key.1.clone(), key.0.to_owned()));
                    index.insert(key, merged.len() - 1);
                    merged.len() - 1
                }
            };
            merged[i].merge(rule);
        }

        let mut out = Self {
            proxy_namespace: scope.namespace.clone(),
            root_namespace: scope.root_namespace.clone(),
            ..Self::default()
        };
        for rule in merged {
            let rule = Arc::new(rule);
            let ns = out.namespaces.entry(rule.namespace.clone()).or_default();
            if is_wildcard(&rule.host) {
                ns.wildcards.push(Arc::clone(&rule));
            } else {
                ns.exact.insert(rule.host.clone(), Arc::clone(&rule));
            }
            out.all.push(rule);
        }
        for ns in out.namespaces.values_mut() {
            ns.wildcards
                .sort_by_key(|r| std::cmp::Reverse(r.host.len()));
        }
        out
    }

    /// The merged rule for destination `host` (an FQDN, or the wildcard host of a wildcard
    /// service) of a service in `service_namespace` (HOST-12): the proxy's namespace first, then
    /// the service's namespace, then the root namespace; the first namespace with a matching
    /// rule decides, an exact host beating a wildcard within it.
    pub fn lookup(&self, host: &str, service_namespace: &str) -> Option<&Arc<MergedRule>> {
        let host: Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        [
            self.proxy_namespace.as_str(),
            service_namespace,
            self.root_namespace.as_str(),
        ]
        .into_iter()
        .find_map(|ns| self.namespaces.get(ns)?.find(&host))
    }

    /// Every merged rule, in merge order (selected first, then oldest first).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<MergedRule>> + '_ {
        self.all.iter()
    }

    /// Whether the proxy sees no DestinationRule.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// Whether `rule`'s `workloadSelector` (if any) applies to the proxy: same namespace, and the
/// proxy's labels a superset of `matchLabels` (HOST-12).
fn selects_proxy(rule: &Resource<DestinationRule>, scope: &Scope) -> bool {
    match &rule.spec.workload_selector {
        None => true,
        Some(selector) => {
            rule.namespace() == scope.namespace
                && selector
                    .match_labels
                    .iter()
                    .all(|(k, v)| scope.labels.get(k) == Some(v))
        }
    }
}

#[cfg(test)]
mod tests;
