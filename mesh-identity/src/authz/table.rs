//! [`AuthzTable`]: the policies that apply to one workload, compiled (AUTHZ-1, AUTHZ-2).

use std::collections::BTreeSet;

use mesh_core::Snapshot;
use mesh_core::model::{AuthorizationAction, AuthorizationPolicy, Resource};
use mesh_core::registry::Scope;

use super::index::{Mask, PeerIndex};
use super::policy::{CompiledRule, RuleCompiler};
use super::request::AuthzRequest;
use super::{Action, DRY_RUN_ANNOTATION, Decision, Issue, Matched, Problem, Reason, Verdict};

/// Compile options.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct AuthzOptions {
    trust_domain: Option<String>,
    aliases: Vec<String>,
}

impl AuthzOptions {
    /// Defaults: exact principal matching.
    pub fn new() -> Self {
        Self::default()
    }

    /// The local trust domain (`cluster.local` in policies means this one, AUTHZ-27).
    pub fn trust_domain(mut self, trust_domain: impl Into<String>) -> Self {
        self.trust_domain = Some(trust_domain.into());
        self
    }

    /// Trust-domain aliases (`--trust-domain-alias`): a principal written with the local trust
    /// domain also matches the same `ns/sa` in each alias, and vice versa (AUTHZ-27).
    pub fn trust_domain_aliases<I, S>(mut self, aliases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aliases = aliases.into_iter().map(Into::into).collect();
        self
    }

    fn equivalent_trust_domains(&self) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        if self.trust_domain.is_none() && self.aliases.is_empty() {
            return set;
        }
        set.insert("cluster.local".to_owned());
        set.extend(self.trust_domain.iter().cloned());
        set.extend(self.aliases.iter().cloned());
        set
    }
}

#[derive(Clone, Debug)]
struct CompiledPolicy {
    namespace: String,
    name: String,
    action: Action,
    dry_run: bool,
    rules: Vec<CompiledRule>,
}

impl CompiledPolicy {
    /// The first rule that matches (AUTHZ-5: rules ORed; none = never matches).
    fn first_match(&self, req: &AuthzRequest<'_>) -> Option<usize> {
        let lenient = self.action != Action::Allow;
        self.rules.iter().position(|r| r.matches(req, lenient))
    }

    fn matched(&self, rule: usize) -> Matched<'_> {
        Matched {
            action: self.action,
            namespace: &self.namespace,
            name: &self.name,
            rule,
        }
    }
}

/// How one applicable policy fared for a request (for `mesh-proxy explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyTrace<'t> {
    /// The policy's namespace.
    pub namespace: &'t str,
    /// The policy's name.
    pub name: &'t str,
    /// Its action.
    pub action: Action,
    /// Whether it is in dry-run mode (AUTHZ-26).
    pub dry_run: bool,
    /// The first matching rule, if any.
    pub matched_rule: Option<usize>,
}

/// The AuthorizationPolicies that apply to one workload, compiled for per-request decisions.
#[derive(Clone, Debug, Default)]
pub struct AuthzTable {
    policies: Vec<CompiledPolicy>,
    issues: Vec<Issue>,
    /// Policy indices per AUTHZ-2 stage (CUSTOM, DENY, ALLOW, AUDIT), in table order:
    /// `[enforced, including dry-run]`.
    stages: [[Vec<u16>; 2]; 4],
    index: PeerIndex,
}

impl AuthzTable {
    /// Compiles the policies of `snapshot` that apply to the workload in `scope`, with exact
    /// principal matching.
    pub fn compile(snapshot: &Snapshot, scope: &Scope) -> AuthzTable {
        Self::compile_with(snapshot, scope, &AuthzOptions::default())
    }

    /// Compiles with options (trust-domain aliases, AUTHZ-27).
    pub fn compile_with(snapshot: &Snapshot, scope: &Scope, options: &AuthzOptions) -> AuthzTable {
        let trust_domains = options.equivalent_trust_domains();
        let mut table = AuthzTable::default();
        for resource in snapshot.authorization_policies() {
            if applies(resource, scope) {
                table.add(resource, &trust_domains);
            }
        }
        for issue in &table.issues {
            tracing::warn!(%issue, "authorization policy value ignored");
        }
        table.finish();
        table
    }

    /// Builds the stage lists and the candidate index once the policies are in.
    fn finish(&mut self) {
        // Past u16::MAX policies the lists would overflow; keep the first ones and say so.
        if self.policies.len() > usize::from(u16::MAX) {
            tracing::error!(
                count = self.policies.len(),
                "too many authorization policies for one workload; the excess is ignored"
            );
            self.policies.truncate(usize::from(u16::MAX));
        }
        for (i, p) in self.policies.iter().enumerate() {
            let i = u16::try_from(i).expect("truncated to u16::MAX above");
            let stage = &mut self.stages[usize::from(stage(p.action))];
            if !p.dry_run {
                stage[0].push(i);
            }
            stage[1].push(i);
        }
        self.index = PeerIndex::build(self.policies.iter().map(|p| &p.rules));
    }

    fn add(&mut self, resource: &Resource<AuthorizationPolicy>, trust_domains: &BTreeSet<String>) {
        let spec = &resource.spec;
        let action = match spec.action {
            AuthorizationAction::Allow => Action::Allow,
            AuthorizationAction::Audit => Action::Audit,
            AuthorizationAction::Custom => Action::Custom,
            // DENY, and anything newer than this engine: fail closed.
            _ => Action::Deny,
        };
        let issue = |rule, problem| Issue {
            namespace: resource.namespace().to_owned(),
            name: resource.name().to_owned(),
            rule,
            problem,
        };
        if action == Action::Custom {
            self.issues.push(issue(None, Problem::CustomUnsupported));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, rule) in spec.rules.iter().enumerate() {
            let mut compiler = RuleCompiler {
                namespace: resource.namespace(),
                trust_domains,
                problems: Vec::new(),
            };
            rules.push(compiler.rule(rule));
            self.issues
                .extend(compiler.problems.into_iter().map(|p| issue(Some(i), p)));
        }
        let dry_run = resource
            .metadata
            .annotations
            .get(DRY_RUN_ANNOTATION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        self.policies.push(CompiledPolicy {
            namespace: resource.namespace().to_owned(),
            name: resource.name().to_owned(),
            action,
            dry_run,
            rules,
        });
    }

    /// The same table with every policy a candidate (the reference the index is tested against).
    #[cfg(test)]
    pub(crate) fn unindexed(&self) -> AuthzTable {
        AuthzTable {
            index: PeerIndex::default(),
            ..self.clone()
        }
    }

    /// Problems found while compiling (invalid values, unsupported CUSTOM providers).
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Number of applicable policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether no policy applies (every request is allowed).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Decides one request or connection (AUTHZ-2).
    ///
    /// Only the policies the peer index leaves as candidates are evaluated; the others cannot
    /// match this peer.
    pub fn decide<'t>(&'t self, req: &AuthzRequest<'_>) -> Decision<'t> {
        let candidates = self.index.candidates(req.peer.as_ref());
        let verdict = self.verdict(req, &candidates, false);
        let audit = self.first(Action::Audit, false, req, &candidates);
        let dry_run = (self.stages.iter().any(|s| s[0].len() != s[1].len()))
            .then(|| self.verdict(req, &candidates, true));
        tracing::debug!(allowed = verdict.allowed, reason = %verdict.reason, "authorization");
        Decision {
            allowed: verdict.allowed,
            reason: verdict.reason,
            matched: verdict.matched,
            audit,
            dry_run,
        }
    }

    /// The first policy of `action`'s stage that matches, with its first matching rule.
    fn first<'t>(
        &'t self,
        action: Action,
        with_dry_run: bool,
        req: &AuthzRequest<'_>,
        candidates: &Mask,
    ) -> Option<Matched<'t>> {
        self.stages[usize::from(stage(action))][usize::from(with_dry_run)]
            .iter()
            .map(|&i| usize::from(i))
            .filter(|&i| candidates.contains(i))
            .find_map(|i| {
                let p = &self.policies[i];
                p.first_match(req).map(|r| p.matched(r))
            })
    }

    /// Every applicable policy and whether it matched, in evaluation order.
    pub fn explain<'t>(&'t self, req: &AuthzRequest<'_>) -> Vec<PolicyTrace<'t>> {
        let mut out: Vec<_> = self
            .policies
            .iter()
            .map(|p| PolicyTrace {
                namespace: &p.namespace,
                name: &p.name,
                action: p.action,
                dry_run: p.dry_run,
                matched_rule: p.first_match(req),
            })
            .collect();
        out.sort_by_key(|t| stage(t.action));
        out
    }

    fn verdict<'t>(
        &'t self,
        req: &AuthzRequest<'_>,
        candidates: &Mask,
        with_dry_run: bool,
    ) -> Verdict<'t> {
        let first = |action| self.first(action, with_dry_run, req, candidates);
        let verdict = |allowed, reason, matched| Verdict {
            allowed,
            reason,
            matched,
        };
        if let Some(m) = first(Action::Custom) {
            return verdict(false, Reason::CustomDenied, Some(m));
        }
        if let Some(m) = first(Action::Deny) {
            return verdict(false, Reason::DenyMatched, Some(m));
        }
        let allows = &self.stages[usize::from(stage(Action::Allow))][usize::from(with_dry_run)];
        if allows.is_empty() {
            return verdict(true, Reason::NoAllowPolicy, None);
        }
        match first(Action::Allow) {
            Some(m) => verdict(true, Reason::AllowMatched, Some(m)),
            None => verdict(false, Reason::NoAllowMatched, None),
        }
    }
}

fn stage(action: Action) -> u8 {
    match action {
        Action::Custom => 0,
        Action::Deny => 1,
        Action::Allow => 2,
        Action::Audit => 3,
    }
}

/// AUTHZ-1: the workload's namespace with a matching (or no) selector, or the root namespace
/// (selector or not); policies with `targetRef(s)` attach to gateways/waypoints, not sidecars.
fn applies(resource: &Resource<AuthorizationPolicy>, scope: &Scope) -> bool {
    let spec = &resource.spec;
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        return false;
    }
    let ns = resource.namespace();
    if ns != scope.namespace && ns != scope.root_namespace {
        return false;
    }
    spec.selector.as_ref().is_none_or(|s| {
        s.match_labels
            .iter()
            .all(|(k, v)| scope.labels.get(k) == Some(v))
    })
}
