//! PeerAuthentication: which connections a workload's proxy accepts, mTLS or plaintext
//! (SEMANTICS §6, PA-1..PA-4).
//!
//! Why a table: the mode of a port comes from up to three policies (mesh, namespace, workload),
//! each chosen as the oldest at its level, with `UNSET` inheriting and `portLevelMtls` read
//! only from the workload's policy. [`PeerAuthTable::compile`] settles all of it once per
//! config version; [`PeerAuthTable::mode`] is then a small map lookup per connection.
//!
//! ```
//! use std::path::Path;
//! use mesh_core::Snapshot;
//! use mesh_core::registry::Scope;
//! use mesh_identity::peer_auth::{PeerAuthMode, PeerAuthTable};
//!
//! let yaml = "
//! apiVersion: security.istio.io/v1
//! kind: PeerAuthentication
//! metadata: {name: default, namespace: production}
//! spec: {mtls: {mode: STRICT}}
//! ";
//! let resources = mesh_core::loader::parse_str(yaml, Path::new("pa.yaml"), "default").unwrap();
//! let snapshot = Snapshot::new(resources);
//! let table = PeerAuthTable::compile(&snapshot, &Scope::new("production"));
//! assert_eq!(table.mode(8080), PeerAuthMode::Strict);
//! // No policy at all: PERMISSIVE (PA-4).
//! assert_eq!(PeerAuthTable::default().mode(8080), PeerAuthMode::Permissive);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use mesh_core::Snapshot;
use mesh_core::model::{MutualTlsMode, PeerAuthentication, Resource};
use mesh_core::registry::{Scope, creation_order};

/// The effective mode of a port (PA-4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAuthMode {
    /// Only mTLS: plaintext connections are closed.
    Strict,
    /// mTLS or plaintext on the same port, told apart by the first byte.
    #[default]
    Permissive,
    /// Plaintext only; TLS bytes are passed to the app.
    Disable,
}

impl PeerAuthMode {
    /// Istio's spelling: `STRICT`, `PERMISSIVE`, `DISABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "STRICT",
            Self::Permissive => "PERMISSIVE",
            Self::Disable => "DISABLE",
        }
    }

    /// The mode after applying `mode` on top of `self` (`UNSET` inherits, PA-2).
    fn then(self, mode: MutualTlsMode) -> Self {
        match mode {
            MutualTlsMode::Strict => Self::Strict,
            MutualTlsMode::Permissive => Self::Permissive,
            MutualTlsMode::Disable => Self::Disable,
            _ => self,
        }
    }
}

impl fmt::Display for PeerAuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level a policy applies at (PA-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Root namespace, no selector.
    Mesh,
    /// The workload's namespace, no selector.
    Namespace,
    /// The workload's namespace, with a selector matching the workload.
    Workload,
}

impl Level {
    /// `mesh`, `namespace` or `workload`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mesh => "mesh",
            Self::Namespace => "namespace",
            Self::Workload => "workload",
        }
    }
}

/// A policy that decided at its level (the oldest there, PA-2).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedPolicy {
    /// Its level.
    pub level: Level,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `mtls.mode` (`UNSET` when absent: the level inherits).
    pub mode: MutualTlsMode,
}

/// The inbound mTLS mode of each of a workload's ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAuthTable {
    default: PeerAuthMode,
    ports: BTreeMap<u16, PeerAuthMode>,
    applied: Vec<AppliedPolicy>,
}

impl PeerAuthTable {
    /// The PeerAuthentications of `snapshot` that apply to the workload in `scope`, settled
    /// into a mode per port (PA-1..PA-3).
    ///
    /// Scope (PA-1): a policy in `scope.root_namespace` without selector is mesh-wide, one in
    /// `scope.namespace` without selector is namespace-wide, one in `scope.namespace` whose
    /// `matchLabels` are all among `scope.labels` is the workload's; a policy with a selector
    /// in the root namespace is ignored, and policies of other namespaces never apply. A
    /// selector with no `matchLabels` (`selector: {}` or `matchLabels: {}`) counts as no
    /// selector, as in istiod (`ComposePeerAuthentication` in
    /// pilot/pkg/security/authn/policy_applier.go tests `Selector == nil ||
    /// len(MatchLabels) == 0`): namespace-wide, or mesh-wide in the root namespace.
    ///
    /// Precedence (PA-2): at each level the oldest policy (`creationTimestamp`, then
    /// namespace/name; policies without a timestamp after those with one) decides alone; the
    /// mode starts `PERMISSIVE` and each level's mode replaces it unless `UNSET` or absent.
    /// Ports (PA-3): `portLevelMtls` only from the workload-level policy, an `UNSET` entry
    /// takes the workload-level result, keys outside `1..=65535` are ignored.
    pub fn compile(snapshot: &Snapshot, scope: &Scope) -> Self {
        let mut mesh: Vec<&Resource<PeerAuthentication>> = Vec::new();
        let mut namespace = Vec::new();
        let mut workload = Vec::new();
        for r in snapshot.peer_authentications() {
            let ns = r.namespace();
            let selector = r.spec.selector.as_ref();
            // An empty `matchLabels` counts as no selector (istiod does the same).
            let selects = selector.filter(|s| !s.match_labels.is_empty());
            if ns == scope.root_namespace {
                // PA-1 (pitfall): a selector in the root namespace makes the policy ignored.
                if selects.is_none() {
                    mesh.push(r);
                }
            } else if ns == scope.namespace {
                match selects {
                    None => namespace.push(r),
                    Some(s) => {
                        if s.match_labels
                            .iter()
                            .all(|(k, v)| scope.labels.get(k) == Some(v))
                        {
                            workload.push(r);
                        }
                    }
                }
            }
        }
        fn oldest(
            mut v: Vec<&Resource<PeerAuthentication>>,
        ) -> Option<&Resource<PeerAuthentication>> {
            v.sort_by(|a, b| creation_order(a, b));
            v.first().copied()
        }
        let mut table = Self::default();
        let mut mode = PeerAuthMode::Permissive;
        for (level, chosen) in [
            (Level::Mesh, oldest(mesh)),
            (Level::Namespace, oldest(namespace)),
            (Level::Workload, oldest(workload)),
        ] {
            let Some(r) = chosen else { continue };
            mode = mode.then(r.spec.mode());
            table.applied.push(AppliedPolicy {
                level,
                namespace: r.namespace().to_owned(),
                name: r.name().to_owned(),
                mode: r.spec.mode(),
            });
            if level == Level::Workload {
                // PA-3: ports only from the workload's own policy; UNSET inherits.
                for (port, m) in &r.spec.port_level_mtls {
                    if let Ok(p) = u16::try_from(*port)
                        && p != 0
                    {
                        table.ports.insert(p, mode.then(m.mode));
                    }
                }
            }
        }
        table.default = mode;
        table
    }

    /// The mode of the workload's port `port` (the app's port, not the inbound listener's).
    pub fn mode(&self, port: u16) -> PeerAuthMode {
        self.ports.get(&port).copied().unwrap_or(self.default)
    }

    /// The mode of ports without a `portLevelMtls` entry.
    pub fn default_mode(&self) -> PeerAuthMode {
        self.default
    }

    /// Ports with their own mode.
    pub fn port_modes(&self) -> impl Iterator<Item = (u16, PeerAuthMode)> + '_ {
        self.ports.iter().map(|(p, m)| (*p, *m))
    }

    /// The policies that decided, mesh first.
    pub fn applied(&self) -> &[AppliedPolicy] {
        &self.applied
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn pa(ns: &str, name: &str, created: &str, spec: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec: {spec}\n---\n"
        )
    }

    fn table(yaml: &str, labels: &[(&str, &str)]) -> PeerAuthTable {
        let resources = mesh_core::loader::parse_str(yaml, Path::new("t.yaml"), "default")
            .expect("test YAML parses");
        let scope = Scope::new("prod").labels(labels.iter().copied());
        PeerAuthTable::compile(&Snapshot::new(resources), &scope)
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-02-01T00:00:00Z";
    const APP: &[(&str, &str)] = &[("app", "pay")];

    #[test]
    fn pa_table() {
        use PeerAuthMode::*;
        // (rule, yaml, port, expected)
        let rows: Vec<(&str, String, u16, PeerAuthMode)> = vec![
            ("PA-4 no policy", String::new(), 8080, Permissive),
            (
                "PA-1 mesh",
                pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}"),
                8080,
                Strict,
            ),
            (
                "PA-2 namespace UNSET inherits mesh STRICT",
                pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}")
                    + &pa("prod", "n", T1, "{mtls: {mode: UNSET}}"),
                8080,
                Strict,
            ),
            (
                "PA-2 namespace without mtls inherits",
                pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}") + &pa("prod", "n", T1, "{}"),
                8080,
                Strict,
            ),
            (
                "PA-2 namespace DISABLE overrides mesh STRICT",
                pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}")
                    + &pa("prod", "n", T1, "{mtls: {mode: DISABLE}}"),
                8080,
                Disable,
            ),
            (
                "PA-2 workload PERMISSIVE overrides namespace STRICT",
                pa("prod", "n", T1, "{mtls: {mode: STRICT}}")
                    + &pa(
                        "prod",
                        "w",
                        T1,
                        "{selector: {matchLabels: {app: pay}}, mtls: {mode: PERMISSIVE}}",
                    ),
                8080,
                Permissive,
            ),
            (
                "PA-2 two namespace policies: the oldest wins",
                pa("prod", "newer", T2, "{mtls: {mode: DISABLE}}")
                    + &pa("prod", "older", T1, "{mtls: {mode: STRICT}}"),
                8080,
                Strict,
            ),
            (
                "PA-1 pitfall: a selector in the root namespace is ignored",
                pa(
                    "istio-system",
                    "sel",
                    T1,
                    "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}}",
                ),
                8080,
                Permissive,
            ),
            (
                "PA-1 another namespace's policy does not apply",
                pa("other", "n", T1, "{mtls: {mode: STRICT}}"),
                8080,
                Permissive,
            ),
            (
                "PA-1 a selector for other labels does not apply",
                pa(
                    "prod",
                    "w",
                    T1,
                    "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}",
                ),
                8080,
                Permissive,
            ),
            (
                "PA-3 portLevelMtls on the workload policy",
                pa(
                    "prod",
                    "w",
                    T1,
                    "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}, portLevelMtls: {9000: {mode: DISABLE}}}",
                ),
                9000,
                Disable,
            ),
            (
                "PA-3 other ports keep the workload mode",
                pa(
                    "prod",
                    "w",
                    T1,
                    "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}, portLevelMtls: {9000: {mode: DISABLE}}}",
                ),
                8080,
                Strict,
            ),
            (
                "PA-3 pitfall: portLevelMtls on a namespace policy is ignored",
                pa(
                    "prod",
                    "n",
                    T1,
                    "{mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}",
                ),
                8080,
                Strict,
            ),
            (
                "PA-3 a port entry UNSET inherits the workload result",
                pa("prod", "n", T1, "{mtls: {mode: STRICT}}")
                    + &pa(
                        "prod",
                        "w",
                        T1,
                        "{selector: {matchLabels: {app: pay}}, portLevelMtls: {8080: {mode: UNSET}}}",
                    ),
                8080,
                Strict,
            ),
            (
                "PA-3 workload without mtls but a port entry",
                pa("istio-system", "m", T1, "{mtls: {mode: DISABLE}}")
                    + &pa(
                        "prod",
                        "w",
                        T1,
                        "{selector: {matchLabels: {app: pay}}, portLevelMtls: {8080: {mode: STRICT}}}",
                    ),
                8080,
                Strict,
            ),
            (
                "PA-2 empty matchLabels acts as namespace-wide",
                pa(
                    "prod",
                    "n",
                    T1,
                    "{selector: {matchLabels: {}}, mtls: {mode: STRICT}}",
                ),
                8080,
                Strict,
            ),
            (
                "PA-1 empty matchLabels in the root namespace is mesh-wide",
                pa(
                    "istio-system",
                    "m",
                    T1,
                    "{selector: {matchLabels: {}}, mtls: {mode: STRICT}}",
                ),
                8080,
                Strict,
            ),
            (
                "PA-1 `selector: {}` acts as namespace-wide",
                pa("prod", "n", T1, "{selector: {}, mtls: {mode: DISABLE}}"),
                8080,
                Disable,
            ),
            (
                "PA-2 workload STRICT overrides namespace DISABLE",
                pa("prod", "n", T1, "{mtls: {mode: DISABLE}}")
                    + &pa(
                        "prod",
                        "w",
                        T1,
                        "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}}",
                    ),
                8080,
                Strict,
            ),
            (
                "PA-2 workload UNSET inherits namespace DISABLE",
                pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}")
                    + &pa("prod", "n", T1, "{mtls: {mode: DISABLE}}")
                    + &pa(
                        "prod",
                        "w",
                        T1,
                        "{selector: {matchLabels: {app: pay}}, mtls: {mode: UNSET}}",
                    ),
                8080,
                Disable,
            ),
            (
                "PA-2 two workload policies: the oldest wins",
                pa(
                    "prod",
                    "w-new",
                    T2,
                    "{selector: {matchLabels: {app: pay}}, mtls: {mode: DISABLE}}",
                ) + &pa(
                    "prod",
                    "w-old",
                    T1,
                    "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}}",
                ),
                8080,
                Strict,
            ),
            (
                "PA-2 the oldest decides even when it is UNSET (the newer is not consulted)",
                pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}")
                    + &pa("prod", "old", T1, "{mtls: {mode: UNSET}}")
                    + &pa("prod", "new", T2, "{mtls: {mode: DISABLE}}"),
                8080,
                Strict,
            ),
            (
                "PA-3 a port key above 65535 is ignored, not truncated",
                pa(
                    "prod",
                    "w",
                    T1,
                    "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}, portLevelMtls: {70000: {mode: DISABLE}}}",
                ),
                // 70000 mod 65536
                4464,
                Strict,
            ),
            (
                "PA-3 pitfall: portLevelMtls on a mesh policy is ignored",
                pa(
                    "istio-system",
                    "m",
                    T1,
                    "{mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}",
                ),
                8080,
                Strict,
            ),
        ];
        for (rule, yaml, port, want) in rows {
            assert_eq!(table(&yaml, APP).mode(port), want, "{rule}");
        }
    }

    #[test]
    fn applied_names_the_deciding_policy_per_level() {
        let yaml = pa("istio-system", "mesh", T1, "{mtls: {mode: STRICT}}")
            + &pa("prod", "b", T2, "{mtls: {mode: DISABLE}}")
            + &pa("prod", "a", T1, "{mtls: {mode: PERMISSIVE}}");
        let t = table(&yaml, APP);
        let names: Vec<_> = t
            .applied()
            .iter()
            .map(|a| (a.level.as_str(), a.name.as_str()))
            .collect();
        assert_eq!(names, [("mesh", "mesh"), ("namespace", "a")]);
        assert_eq!(t.default_mode(), PeerAuthMode::Permissive);
        assert_eq!(t.port_modes().count(), 0);
    }

    fn table_in(yaml: &str, scope: &Scope) -> PeerAuthTable {
        let resources = mesh_core::loader::parse_str(yaml, Path::new("t.yaml"), "default")
            .expect("test YAML parses");
        PeerAuthTable::compile(&Snapshot::new(resources), scope)
    }

    #[test]
    fn pa1_selector_in_root_namespace_is_ignored() {
        // SEMANTICS PA-1 (pitfall): unlike AuthorizationPolicy (AUTHZ-1), a selector in the
        // root namespace does not make a mesh-wide workload policy.
        let yaml = pa("istio-system", "m", T1, "{mtls: {mode: DISABLE}}")
            + &pa(
                "istio-system",
                "sel",
                T1,
                "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}, portLevelMtls: {9000: {mode: STRICT}}}",
            );
        let t = table(&yaml, APP);
        assert_eq!(t.mode(8080), PeerAuthMode::Disable);
        assert_eq!(t.mode(9000), PeerAuthMode::Disable);
        assert_eq!(t.applied().len(), 1);
        assert_eq!(t.applied()[0].level, Level::Mesh);
    }

    #[test]
    fn pa1_selector_is_a_subset_of_the_workload_labels() {
        // SEMANTICS PA-1: every selector label must be on the workload; extra workload labels
        // do not matter.
        let yaml = pa(
            "prod",
            "w",
            T1,
            "{selector: {matchLabels: {app: pay, version: v2}}, mtls: {mode: STRICT}}",
        );
        assert_eq!(table(&yaml, APP).mode(80), PeerAuthMode::Permissive);
        let labels = [("app", "pay"), ("version", "v2"), ("team", "x")];
        assert_eq!(table(&yaml, &labels).mode(80), PeerAuthMode::Strict);
        let wrong = [("app", "pay"), ("version", "v1")];
        assert_eq!(table(&yaml, &wrong).mode(80), PeerAuthMode::Permissive);
    }

    #[test]
    fn pa1_root_namespace_follows_the_scope() {
        // SEMANTICS PA-1: "root namespace" is `--root-namespace`, not a fixed name.
        let yaml = pa("mesh-root", "m", T1, "{mtls: {mode: STRICT}}")
            + &pa("istio-system", "i", T1, "{mtls: {mode: DISABLE}}");
        let scope = Scope::new("prod").root_namespace("mesh-root");
        let t = table_in(&yaml, &scope);
        assert_eq!(t.mode(80), PeerAuthMode::Strict);
        assert_eq!(t.applied()[0].namespace, "mesh-root");
    }

    #[test]
    fn pa1_workload_in_the_root_namespace_gets_only_the_mesh_policy() {
        // SEMANTICS PA-1: in the root namespace a policy without selector is the mesh policy
        // and one with a selector is ignored, even for a workload that lives there.
        let yaml = pa("istio-system", "m", T1, "{mtls: {mode: STRICT}}")
            + &pa(
                "istio-system",
                "w",
                T1,
                "{selector: {matchLabels: {app: pay}}, mtls: {mode: DISABLE}}",
            );
        let scope = Scope::new("istio-system").labels([("app", "pay")]);
        let t = table_in(&yaml, &scope);
        assert_eq!(t.mode(80), PeerAuthMode::Strict);
        let levels: Vec<_> = t.applied().iter().map(|a| a.level).collect();
        assert_eq!(levels, [Level::Mesh]);
    }

    #[test]
    fn pa2_a_policy_with_a_timestamp_is_older_than_one_without() {
        // SEMANTICS PA-2 with HOST-9 ordering: an unknown creation time sorts last.
        let undated = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: prod}\nspec: {mtls: {mode: DISABLE}}\n---\n";
        let yaml = undated.to_owned() + &pa("prod", "z", T2, "{mtls: {mode: STRICT}}");
        assert_eq!(table(&yaml, APP).mode(80), PeerAuthMode::Strict);
    }

    #[test]
    fn pa3_port_modes_keep_only_valid_workload_ports() {
        // SEMANTICS PA-3: ports 0 and > 65535 are ignored; UNSET entries become the workload
        // result and are still listed (they are explicit in the policy).
        let yaml = pa("prod", "n", T1, "{mtls: {mode: DISABLE}}")
            + &pa(
                "prod",
                "w",
                T1,
                "{selector: {matchLabels: {app: pay}}, mtls: {mode: STRICT}, portLevelMtls: {0: {mode: DISABLE}, 70000: {mode: DISABLE}, 8080: {mode: PERMISSIVE}, 9090: {}}}",
            );
        let t = table(&yaml, APP);
        let ports: Vec<_> = t.port_modes().collect();
        assert_eq!(
            ports,
            [
                (8080, PeerAuthMode::Permissive),
                (9090, PeerAuthMode::Strict)
            ]
        );
        assert_eq!(t.default_mode(), PeerAuthMode::Strict);
        assert_eq!(t.mode(0), PeerAuthMode::Strict);
        let levels: Vec<_> = t.applied().iter().map(|a| (a.level, a.mode)).collect();
        assert_eq!(
            levels,
            [
                (Level::Namespace, MutualTlsMode::Disable),
                (Level::Workload, MutualTlsMode::Strict)
            ]
        );
    }

    #[test]
    fn pa4_modes_spell_like_istio() {
        // SEMANTICS PA-4: the names `explain` and the admin API print.
        assert_eq!(PeerAuthMode::Strict.to_string(), "STRICT");
        assert_eq!(PeerAuthMode::Permissive.as_str(), "PERMISSIVE");
        assert_eq!(PeerAuthMode::Disable.as_str(), "DISABLE");
        assert_eq!(Level::Workload.as_str(), "workload");
        let t = PeerAuthTable::default();
        assert_eq!(t.mode(1), PeerAuthMode::Permissive);
        assert!(t.applied().is_empty());
    }
}
