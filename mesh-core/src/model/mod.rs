//! Typed Istio resources: the Kubernetes envelope and one module per kind.
//!
//! Every spec type mirrors the Istio API field for field (istio/api protos, camelCase names) and
//! rejects unknown fields, so a typo such as `retires:` is an error naming the file, line and
//! column instead of a setting that silently does nothing. All three `networking.istio.io`
//! versions (`v1`, `v1beta1`, `v1alpha3`) and both `security.istio.io` versions (`v1`,
//! `v1beta1`) share one schema, as they do in Istio.
//!
//! Resources are plain data: `Default` plus field assignment builds one in code, and YAML builds
//! one through [`crate::loader`].
//!
//! ```
//! use mesh_core::model::{Kind, ServiceEntry};
//!
//! let mut se = ServiceEntry::default();
//! se.hosts = vec!["api.example.com".into()];
//! assert_eq!(Kind::from_type_meta("networking.istio.io/v1beta1", "ServiceEntry"), Some(Kind::ServiceEntry));
//! ```

mod common;
mod duration;
mod service_entry;
mod workload_entry;

mod authorization_policy;
mod destination_rule;
mod peer_authentication;
mod sidecar;
mod virtual_service;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::authorization_policy::*;
pub use self::common::*;
pub use self::destination_rule::*;
pub use self::duration::{Duration, ParseDurationError};
pub use self::peer_authentication::*;
pub use self::service_entry::*;
pub use self::sidecar::*;
pub use self::virtual_service::*;
pub use self::workload_entry::*;

/// Where a resource (or an error about one) was written: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file the text came from (as given on the command line, joined with folder walks).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Location {
    /// A location in `file` at `line` and `column` (both 1-based).
    pub fn new(file: impl AsRef<Path>, line: u32, column: u32) -> Self {
        Self {
            file: Arc::from(file.as_ref()),
            line,
            column,
        }
    }

    /// `file:line`, the short form used by `analyze` and `/config_dump`.
    pub fn file_line(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

impl Default for Location {
    fn default() -> Self {
        Self {
            file: Arc::from(Path::new("<memory>")),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The Istio kinds this SDK reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(
    clippy::exhaustive_enums,
    reason = "more kinds arrive as new variants in a major release"
)]
pub enum Kind {
    /// `networking.istio.io` VirtualService.
    VirtualService,
    /// `networking.istio.io` DestinationRule.
    DestinationRule,
    /// `networking.istio.io` ServiceEntry.
    ServiceEntry,
    /// `networking.istio.io` WorkloadEntry.
    WorkloadEntry,
    /// `networking.istio.io` Sidecar.
    Sidecar,
    /// `security.istio.io` PeerAuthentication.
    PeerAuthentication,
    /// `security.istio.io` AuthorizationPolicy.
    AuthorizationPolicy,
}

/// The API versions accepted for `networking.istio.io` kinds.
pub const NETWORKING_API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];
/// The API versions accepted for `security.istio.io` kinds.
pub const SECURITY_API_VERSIONS: [&str; 2] = ["security.istio.io/v1", "security.istio.io/v1beta1"];

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 7] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
        Kind::Sidecar,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
    ];

    /// The kind's name as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::Sidecar => "Sidecar",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
        }
    }

    /// The API group of the kind (`networking.istio.io` or `security.istio.io`).
    pub fn group(self) -> &'static str {
        match self {
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => "security.istio.io",
            _ => "networking.istio.io",
        }
    }

    /// The API versions accepted for this kind.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self.group() {
            "security.istio.io" => &SECURITY_API_VERSIONS,
            _ => &NETWORKING_API_VERSIONS,
        }
    }

    /// The kind named by `kind:` if it is one of ours, whatever its `apiVersion`.
    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind for an `apiVersion` + `kind` pair, if both are ones this SDK reads.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::from_name(kind).filter(|k| k.api_versions().contains(&api_version))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kubernetes object metadata.
///
/// The fields Istio reads are kept; the bookkeeping fields that `kubectl get -o yaml` prints
/// (`uid`, `resourceVersion`, `managedFields`, …) are accepted so exported YAML loads unchanged,
/// and anything else is an unknown-field error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The resource's name.
    #[serde(default)]
    pub name: String,
    /// The resource's namespace; the loader fills it from `--namespace` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 creation time; the oldest VirtualService owns a host (SEMANTICS HOST-9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Kubernetes bookkeeping, accepted and kept only so exported YAML round-trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<serde_json::Value>,
    /// Kubernetes bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<serde_json::Value>,
}

impl ObjectMeta {
    /// Metadata with a name and a namespace.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: Some(namespace.into()),
            ..Self::default()
        }
    }
}

/// One Istio resource: its type, metadata, typed spec and where it was written.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Resource<S> {
    /// `apiVersion` as written (one of [`Kind::api_versions`]).
    pub api_version: String,
    /// The kind.
    pub kind: Kind,
    /// Metadata; after loading, `namespace` is always set.
    pub metadata: ObjectMeta,
    /// The typed spec.
    pub spec: S,
    /// Where the document starts.
    #[serde(skip)]
    pub source: Location,
}

impl<S> Resource<S> {
    /// A resource of `kind` with the newest API version of its group and no source file.
    pub fn new(kind: Kind, metadata: ObjectMeta, spec: S) -> Self {
        Self {
            api_version: kind.api_versions()[0].to_owned(),
            kind,
            metadata,
            spec,
            source: Location::default(),
        }
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The resource's namespace (`default` if the loader has not filled it yet).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// A resource of any supported kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(
    clippy::exhaustive_enums,
    reason = "one variant per Kind, which is closed the same way"
)]
pub enum AnyResource {
    /// A VirtualService.
    VirtualService(Box<Resource<VirtualService>>),
    /// A DestinationRule.
    DestinationRule(Box<Resource<DestinationRule>>),
    /// A ServiceEntry.
    ServiceEntry(Box<Resource<ServiceEntry>>),
    /// A WorkloadEntry.
    WorkloadEntry(Box<Resource<WorkloadEntry>>),
    /// A Sidecar.
    Sidecar(Box<Resource<Sidecar>>),
    /// A PeerAuthentication.
    PeerAuthentication(Box<Resource<PeerAuthentication>>),
    /// An AuthorizationPolicy.
    AuthorizationPolicy(Box<Resource<AuthorizationPolicy>>),
}

macro_rules! any_resource_accessors {
    ($($variant:ident),*) => {
        impl AnyResource {
            /// The kind of the resource.
            pub fn kind(&self) -> Kind {
                match self { $(AnyResource::$variant(_) => Kind::$variant,)* }
            }
            /// The resource's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self { $(AnyResource::$variant(r) => &r.metadata,)* }
            }
            /// The resource's metadata, mutably (the loader defaults the namespace here).
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self { $(AnyResource::$variant(r) => &mut r.metadata,)* }
            }
            /// Where the resource was written.
            pub fn source(&self) -> &Location {
                match self { $(AnyResource::$variant(r) => &r.source,)* }
            }
            /// Sets where the resource was written.
            pub fn set_source(&mut self, source: Location) {
                match self { $(AnyResource::$variant(r) => r.source = source,)* }
            }
            /// `apiVersion` as written.
            pub fn api_version(&self) -> &str {
                match self { $(AnyResource::$variant(r) => &r.api_version,)* }
            }
            /// The spec as JSON (for `/config_dump` and `-o json` outputs).
            pub fn spec_json(&self) -> serde_json::Value {
                match self {
                    $(AnyResource::$variant(r) => serde_json::to_value(&r.spec).unwrap_or(serde_json::Value::Null),)*
                }
            }
        }
    };
}
any_resource_accessors!(
    VirtualService,
    DestinationRule,
    ServiceEntry,
    WorkloadEntry,
    Sidecar,
    PeerAuthentication,
    AuthorizationPolicy
);

impl AnyResource {
    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The resource's namespace (`default` if the loader has not filled it yet).
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or("default")
    }

    /// `Kind/namespace/name`, the way `analyze` names a resource.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.kind(), self.namespace(), self.name())
    }
}
