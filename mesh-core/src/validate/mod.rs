//! Validation of a whole configuration: the engine behind `mesh-proxy analyze` and the gate a
//! reload must pass.
//!
//! Loading already rejects what does not parse (unknown fields, bad enum values, wrong types).
//! What remains is what parses but is wrong or will not do what was meant: the rules Istio's
//! admission webhook enforces (an invalid host, weights below 0, a regex that does not compile,
//! a duration under 1ms), the references `istioctl analyze` resolves (a subset no
//! DestinationRule defines), and the pitfalls SEMANTICS.md lists (routes after a catch-all, a
//! fault without `percentage`, two VirtualServices for one host). Each finding has a stable
//! code ([`CODES`], docs/analyze-codes.md), a [`Severity`], and the file, line and column of
//! the offending field, found by re-reading the file (each file once per run).
//!
//! - [`analyze`] reports everything, sorted by file, line and code;
//! - [`check`] is what a reload must pass: no [`Severity::Error`];
//! - [`findings_from_load_error`] turns loader errors into findings with `MESH00xx` codes, so a
//!   file that does not load is reported in the same format.
//!
//! ```
//! use std::path::Path;
//! use mesh_core::Snapshot;
//! use mesh_core::loader::parse_str;
//! use mesh_core::validate::{Severity, analyze, check};
//!
//! let yaml = "\
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route:
//!     - destination: {host: reviews, subset: v3}
//! ";
//! let snapshot = Snapshot::new(parse_str(yaml, Path::new("mesh/reviews.yaml"), "default")?);
//! let findings = analyze(&snapshot);
//! let subset = findings.iter().find(|f| f.code == "MESH0101").unwrap();
//! assert_eq!(subset.severity, Severity::Error);
//! assert_eq!(
//!     subset.message,
//!     "subset \"v3\" is not defined in any DestinationRule for reviews.default.svc.cluster.local",
//! );
//! assert!(check(&snapshot).is_err());
//! # Ok::<(), mesh_core::loader::LoadError>(())
//! ```

mod codes;
mod common;
mod cross;
mod destination_rule;
mod findings;
mod http_policy;
mod http_route;
mod names;
mod report;
mod security;
mod service_entry;
mod shadowing;
mod sidecar;
mod source_map;
mod virtual_service;

use std::collections::BTreeSet;

pub use self::codes::{CODES, CodeInfo, code_info};
pub use self::findings::{Finding, Severity};
use self::report::Reporter;
pub use self::source_map::SourceMap;
use crate::Snapshot;
use crate::loader::{ConfigErrorKind, LoadError};
use crate::model::AnyResource;

/// Analysis settings: the proxy whose view decides what `exportTo` hides, and the root
/// namespace of mesh-wide policies.
///
/// ```
/// use mesh_core::Snapshot;
/// use mesh_core::validate::Analyzer;
///
/// let analyzer = Analyzer::new().namespace("shop").root_namespace("mesh-root");
/// assert!(analyzer.analyze(&Snapshot::empty()).is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Analyzer {
    namespace: String,
    root_namespace: String,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyzer {
    /// An analyzer for a proxy in namespace `default`, with root namespace `istio-system`.
    pub fn new() -> Self {
        Self {
            namespace: "default".to_owned(),
            root_namespace: "istio-system".to_owned(),
        }
    }

    /// The proxy's namespace (`--namespace`): resources not exported to it are reported as
    /// ignored by that proxy (INFO).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The root namespace (`--root-namespace`) of mesh-wide PeerAuthentications (PA-1).
    pub fn root_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.root_namespace = namespace.into();
        self
    }

    /// Every finding about `snapshot`, sorted by file, line and code.
    pub fn analyze(&self, snapshot: &Snapshot) -> Vec<Finding> {
        self.run(snapshot, false)
            .finish(&mut SourceMap::default(), |_| true)
    }

    /// `Ok` when `snapshot` has no error finding; otherwise every error, one line each
    /// (`Finding`'s `Display`). Reload applies a snapshot only when this passes. Only error
    /// findings are placed at their fields, so warnings cost no file reads here.
    pub fn check(&self, snapshot: &Snapshot) -> Result<(), Vec<String>> {
        let errors = self
            .run(snapshot, true)
            .finish(&mut SourceMap::default(), |c| c.severity == Severity::Error);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.iter().map(Finding::to_string).collect())
        }
    }

    /// Runs the checks (with `errors_only`, skips the cross-resource checks that can only warn);
    /// findings still carry field paths, not positions.
    fn run<'s>(&self, snapshot: &'s Snapshot, errors_only: bool) -> Reporter<'s> {
        let mut reporter = Reporter::default();
        let delegated = delegate_targets(snapshot);
        for resource in snapshot.resources() {
            let mut on = reporter.on(resource);
            match resource {
                AnyResource::VirtualService(vs) => {
                    let target = (vs.namespace().to_owned(), vs.name().to_owned());
                    virtual_service::check(&mut on, &vs.spec, delegated.contains(&target));
                }
                AnyResource::DestinationRule(dr) => destination_rule::check(&mut on, &dr.spec),
                AnyResource::ServiceEntry(se) => service_entry::check(&mut on, &se.spec),
                AnyResource::WorkloadEntry(we) => {
                    service_entry::check_workload_entry(&mut on, &we.spec);
                }
                AnyResource::Sidecar(sc) => sidecar::check(&mut on, &sc.spec),
                AnyResource::PeerAuthentication(pa) => {
                    security::check_peer_authentication(&mut on, &pa.spec, &self.root_namespace);
                }
                AnyResource::AuthorizationPolicy(ap) => {
                    security::check_authorization_policy(&mut on, &ap.spec);
                }
            }
        }
        cross::check(snapshot, self, errors_only, &mut reporter);
        reporter
    }
}

/// The VirtualServices some route delegates to, as (namespace, name).
fn delegate_targets(snapshot: &Snapshot) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for vs in snapshot.virtual_services() {
        for route in &vs.spec.http {
            if let Some(d) = &route.delegate {
                let ns = if d.namespace.is_empty() {
                    vs.namespace()
                } else {
                    &d.namespace
                };
                out.insert((ns.to_owned(), d.name.clone()));
            }
        }
    }
    out
}

/// [`Analyzer::analyze`] with the defaults (proxy namespace `default`, root namespace
/// `istio-system`).
pub fn analyze(snapshot: &Snapshot) -> Vec<Finding> {
    Analyzer::new().analyze(snapshot)
}

/// [`Analyzer::check`] with the defaults: `Err` with one line per error finding.
pub fn check(snapshot: &Snapshot) -> Result<(), Vec<String>> {
    Analyzer::new().check(snapshot)
}

/// The loader's errors as findings (all [`Severity::Error`]), one per error, with the code of
/// its kind (`MESH0001`–`MESH0010`), sorted like [`analyze`]'s findings.
///
/// ```
/// use std::path::Path;
/// use mesh_core::loader::parse_str;
/// use mesh_core::validate::findings_from_load_error;
///
/// let err = parse_str("apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
///                      metadata: {name: r}\nspec: {retires: 3}\n", Path::new("r.yaml"), "default")
///     .unwrap_err();
/// let findings = findings_from_load_error(&err);
/// assert_eq!(findings[0].to_string(), "ERROR MESH0007 r.yaml:4: unknown field `retires`, \
///                                      expected one of `hosts`, `gateways`, `http`, `tls`, \
///                                      `tcp`, `exportTo`");
/// ```
pub fn findings_from_load_error(err: &LoadError) -> Vec<Finding> {
    let mut out: Vec<Finding> = err
        .errors
        .iter()
        .map(|e| {
            let code = match &e.kind {
                ConfigErrorKind::Io => &codes::LOAD_IO,
                ConfigErrorKind::Syntax => &codes::LOAD_SYNTAX,
                ConfigErrorKind::DuplicateKey { .. } => &codes::LOAD_DUPLICATE_KEY,
                ConfigErrorKind::MissingTypeMeta => &codes::LOAD_TYPE_META,
                ConfigErrorKind::UnknownKind { .. } => &codes::LOAD_UNKNOWN_KIND,
                ConfigErrorKind::UnsupportedApiVersion { .. } => &codes::LOAD_API_VERSION,
                ConfigErrorKind::UnknownField { .. } => &codes::LOAD_UNKNOWN_FIELD,
                ConfigErrorKind::UnknownVariant { .. } => &codes::LOAD_UNKNOWN_VALUE,
                ConfigErrorKind::InvalidValue => &codes::LOAD_INVALID_VALUE,
                ConfigErrorKind::MissingField { .. } => &codes::LOAD_MISSING_FIELD,
            };
            Finding::from_code(code, e.message.clone(), e.location.clone(), None)
        })
        .collect();
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}
