//! One YAML document: the Kubernetes envelope read key by key, and the spec parsed straight
//! into its typed form as soon as `apiVersion` and `kind` are known.
//!
//! Parsing in one pass keeps serde-saphyr's exact locations for every error inside a spec;
//! buffering the spec first (an internally tagged enum, or `serde_json::Value`) would lose them.
//! Kubernetes writes `apiVersion`, `kind`, `metadata`, `spec` in that order (it is also the
//! alphabetical order of `kubectl -o yaml`), so the buffer is needed only when `spec` comes
//! before `kind`; errors in such a spec point at its `spec:` key.
//!
//! Problems the envelope itself can have (unknown top-level keys, no name, an unsupported
//! version) are kept on the side with their own location while the document is read, and
//! reported once it is known whether the document is an Istio resource at all: a ConfigMap's
//! `data:` key is no error.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::Skipped;
use super::error::{
    ConfigError, ConfigErrorKind, FileRef, describe_text, sanitize, unknown_field, unknown_message,
};
use crate::model::{self, AnyResource, Kind, ObjectMeta, Resource};
use crate::suggest::closest;

type Pos = serde_saphyr::Location;

/// The top-level keys of an Istio resource.
const ENVELOPE: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Kinds in the Istio API groups we read that this SDK does not read (skipped, not typos).
const OTHER_NETWORKING_KINDS: [&str; 4] =
    ["Gateway", "EnvoyFilter", "WorkloadGroup", "ProxyConfig"];
const OTHER_SECURITY_KINDS: [&str; 1] = ["RequestAuthentication"];

/// What one file (or string) yielded.
#[derive(Debug, Default)]
pub(super) struct Output {
    pub(super) resources: Vec<AnyResource>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) errors: Vec<ConfigError>,
}

/// Parses every document of `text` (UTF-8, or UTF-16 with a byte-order mark) into `out`:
/// resources, skipped kinds, and the errors of each document (a syntax error ends the file).
pub(super) fn parse(text: &[u8], file: &FileRef, namespace: &str, out: &mut Output) {
    let options = serde_saphyr::options! {
        with_snippet: false,
        // Lenient where nothing is typed yet (foreign metadata, a buffered spec).
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        // The defaults suit one hand-written file; generated configs hold thousands of
        // resources, in one stream or one `kind: List`. Depth stays limited (64).
        budget: serde_saphyr::budget! {
            max_documents: 10_000_000,
            max_events: 100_000_000,
            max_nodes: 25_000_000,
        },
    };
    let mut reader = text;
    // `read` yields each document on its own and resumes after a document's error.
    for doc in serde_saphyr::read_with_options::<_, Spanned<Document>>(&mut reader, options) {
        match doc {
            Ok(doc) => resolve(doc, file, namespace, out),
            Err(e) => out.errors.push(file.yaml(&e)),
        }
    }
}

/// A document as read, before it is known to be one of ours.
#[derive(Default)]
pub(super) struct Document {
    api_version: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    metadata: Meta,
    spec: Spec,
    items: Vec<Spanned<Document>>,
    unknown_keys: Vec<Spanned<String>>,
}

#[derive(Default)]
enum Meta {
    #[default]
    Absent,
    /// Our metadata, with the location of the `metadata:` key.
    Typed(Pos, Box<ObjectMeta>),
    /// A foreign kind's metadata: only the name is kept, for the debug log.
    Foreign(String),
}

#[derive(Default)]
enum Spec {
    #[default]
    Absent,
    /// The typed resource (with default metadata, filled in by [`resolve`]).
    Typed(AnyResource),
    /// A spec met before the kind: the location of the `spec:` key and the value.
    Buffered(Pos, serde_json::Value),
    /// A foreign kind's spec.
    Ignored,
}

/// What the document is, as far as the keys read so far tell.
enum Target {
    Ours(Kind),
    Other,
    Unknown,
}

impl Document {
    fn target(&self) -> Target {
        match (&self.api_version, &self.kind) {
            (Some(v), Some(k)) => {
                Kind::from_type_meta(&v.value, &k.value).map_or(Target::Other, Target::Ours)
            }
            (None, Some(k)) if Kind::from_name(&k.value).is_none() && k.value != "List" => {
                Target::Other
            }
            _ => Target::Unknown,
        }
    }

    fn may_be_list(&self) -> bool {
        self.kind.as_ref().is_none_or(|k| k.value == "List")
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DocumentVisitor)
    }
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes resource (a mapping with apiVersion, kind, metadata, spec)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut doc = Document::default();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            match key.value.as_str() {
                "apiVersion" => doc.api_version = Some(map.next_value()?),
                "kind" => doc.kind = Some(map.next_value()?),
                "metadata" => {
                    doc.metadata = match doc.target() {
                        Target::Other => {
                            let value = map.next_value::<Option<serde_json::Value>>()?;
                            let name = value.as_ref().and_then(|v| v.get("name"));
                            Meta::Foreign(name.and_then(|n| n.as_str()).unwrap_or("").to_owned())
                        }
                        _ => {
                            let meta = map.next_value::<Option<ObjectMeta>>()?;
                            Meta::Typed(key.referenced, Box::new(meta.unwrap_or_default()))
                        }
                    };
                }
                "spec" => {
                    doc.spec = match doc.target() {
                        Target::Ours(kind) => Spec::Typed(read_spec(kind, &mut map)?),
                        Target::Other => {
                            map.next_value::<IgnoredAny>()?;
                            Spec::Ignored
                        }
                        Target::Unknown => Spec::Buffered(key.referenced, map.next_value()?),
                    };
                }
                "items" if doc.may_be_list() => {
                    let items = map.next_value::<Option<Vec<Spanned<Document>>>>()?;
                    doc.items = items.unwrap_or_default();
                }
                "status" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    doc.unknown_keys.push(key);
                }
            }
        }
        Ok(doc)
    }
}

/// Runs `$body` with `$spec` bound to the spec type of `$kind`, and wraps the spec it yields
/// in a resource with default metadata.
macro_rules! per_kind {
    ($kind:expr, $spec:ident => $body:expr) => {
        match $kind {
            Kind::VirtualService => {
                type $spec = model::VirtualService;
                AnyResource::VirtualService(Box::new(Resource::new(
                    $kind,
                    ObjectMeta::default(),
                    $body,
                )))
            }
            Kind::DestinationRule => {
                type $spec = model::DestinationRule;
                AnyResource::DestinationRule(Box::new(Resource::new(
                    $kind,
                    ObjectMeta::default(),
                    $body,
                )))
            }
            Kind::ServiceEntry => {
                type $spec = model::ServiceEntry;
                AnyResource::ServiceEntry(Box::new(Resource::new(
                    $kind,
                    ObjectMeta::default(),
                    $body,
                )))
            }
            Kind::WorkloadEntry => {
                type $spec = model::WorkloadEntry;
                AnyResource::WorkloadEntry(Box::new(Resource::new(
                    $kind,
                    ObjectMeta::default(),
                    $body,
                )))
            }
            Kind::Sidecar => {
                type $spec = model::Sidecar;
                AnyResource::Sidecar(Box::new(Resource::new($kind, ObjectMeta::default(), $body)))
            }
            Kind::PeerAuthentication => {
                type $spec = model::PeerAuthentication;
                AnyResource::PeerAuthentication(Box::new(Resource::new(
                    $kind,
                    ObjectMeta::default(),
                    $body,
                )))
            }
            Kind::AuthorizationPolicy => {
                type $spec = model::AuthorizationPolicy;
                AnyResource::AuthorizationPolicy(Box::new(Resource::new(
                    $kind,
                    ObjectMeta::default(),
                    $body,
                )))
            }
        }
    };
}

/// The spec as the next value of `map`, typed (`spec: null` is the default spec).
fn read_spec<'de, A: MapAccess<'de>>(kind: Kind, map: &mut A) -> Result<AnyResource, A::Error> {
    Ok(per_kind!(kind, S => map.next_value::<Option<S>>()?.unwrap_or_default()))
}

/// A spec that was buffered because it came before `kind`.
fn spec_from_json(kind: Kind, value: serde_json::Value) -> Result<AnyResource, serde_json::Error> {
    Ok(per_kind!(kind, S => serde_json::from_value::<Option<S>>(value)?.unwrap_or_default()))
}

fn default_resource(kind: Kind) -> AnyResource {
    per_kind!(kind, S => S::default())
}

fn set_api_version(resource: &mut AnyResource, api_version: String) {
    match resource {
        AnyResource::VirtualService(r) => r.api_version = api_version,
        AnyResource::DestinationRule(r) => r.api_version = api_version,
        AnyResource::ServiceEntry(r) => r.api_version = api_version,
        AnyResource::WorkloadEntry(r) => r.api_version = api_version,
        AnyResource::Sidecar(r) => r.api_version = api_version,
        AnyResource::PeerAuthentication(r) => r.api_version = api_version,
        AnyResource::AuthorizationPolicy(r) => r.api_version = api_version,
    }
}

/// Turns a document into a resource, a skipped kind, or errors.
fn resolve(doc: Spanned<Document>, file: &FileRef, namespace: &str, out: &mut Output) {
    let start = file.at(doc.referenced);
    let doc = doc.value;
    let (Some(api_version), Some(kind_name)) = (&doc.api_version, &doc.kind) else {
        let message = match (&doc.api_version, &doc.kind) {
            (None, None) => {
                "missing `apiVersion` and `kind`: a document must be a Kubernetes resource"
            }
            (None, Some(_)) => "missing `apiVersion`",
            _ => "missing `kind`",
        };
        out.errors.push(ConfigError::new(
            start,
            ConfigErrorKind::MissingTypeMeta,
            message,
        ));
        return;
    };
    if kind_name.value == "List" && api_version.value == "v1" {
        for item in doc.items {
            resolve(item, file, namespace, out);
        }
        return;
    }
    let Some(kind) = Kind::from_type_meta(&api_version.value, &kind_name.value) else {
        if let Some(error) = foreign_error(api_version, kind_name, file) {
            out.errors.push(error);
            return;
        }
        let name = match doc.metadata {
            Meta::Typed(_, meta) => meta.name,
            Meta::Foreign(name) => name,
            Meta::Absent => String::new(),
        };
        tracing::debug!(
            location = %start,
            api_version = %api_version.value,
            kind = %kind_name.value,
            name = %name,
            "skipping a resource that is not one of the Istio kinds read here"
        );
        out.skipped.push(Skipped {
            api_version: api_version.value.clone(),
            kind: kind_name.value.clone(),
            name,
            location: start,
        });
        return;
    };

    let mut errors = Vec::new();
    for key in &doc.unknown_keys {
        let (error_kind, message) = unknown_field(&key.value, &ENVELOPE);
        errors.push(ConfigError::new(
            file.at(key.referenced),
            error_kind,
            sanitize(&message),
        ));
    }
    let resource = match doc.spec {
        Spec::Typed(resource) => Some(resource),
        Spec::Absent | Spec::Ignored => Some(default_resource(kind)),
        Spec::Buffered(at, value) => match spec_from_json(kind, value) {
            Ok(resource) => Some(resource),
            Err(e) => {
                let (error_kind, message) = describe_text(&e.to_string());
                let message = format!(
                    "{message} (in this spec; put `kind` before `spec` for the exact line)"
                );
                errors.push(ConfigError::new(
                    file.at(at),
                    error_kind,
                    sanitize(&message),
                ));
                None
            }
        },
    };
    let (mut meta, meta_at) = match doc.metadata {
        Meta::Typed(at, meta) => (*meta, file.at(at)),
        Meta::Absent | Meta::Foreign(_) => (ObjectMeta::default(), start.clone()),
    };
    if meta.name.is_empty() {
        errors.push(ConfigError::new(
            meta_at,
            ConfigErrorKind::MissingField {
                field: "metadata.name".to_owned(),
            },
            "missing `metadata.name`",
        ));
    }
    let Some(mut resource) = resource.filter(|_| errors.is_empty()) else {
        errors.sort_by(|a, b| {
            (a.location.line, a.location.column).cmp(&(b.location.line, b.location.column))
        });
        out.errors.append(&mut errors);
        return;
    };
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(namespace.to_owned());
    }
    *resource.metadata_mut() = meta;
    set_api_version(&mut resource, api_version.value.clone());
    resource.set_source(start);
    out.resources.push(resource);
}

/// The error for a document that is not ours but looks meant to be: one of our kinds with an
/// API version we do not accept, or an unknown kind in an Istio API group we read.
fn foreign_error(
    api_version: &Spanned<String>,
    kind: &Spanned<String>,
    file: &FileRef,
) -> Option<ConfigError> {
    let group = api_version
        .value
        .split_once('/')
        .map_or("", |(group, _)| group);
    if let Some(ours) = Kind::from_name(&kind.value) {
        if !group.ends_with("istio.io") {
            return None;
        }
        let accepted: Vec<String> = ours
            .api_versions()
            .iter()
            .map(|v| format!("`{v}`"))
            .collect();
        let message = format!(
            "unsupported apiVersion `{}` for {ours}, expected one of {}",
            super::error::shorten(&api_version.value),
            accepted.join(", ")
        );
        return Some(ConfigError::new(
            file.at(api_version.referenced),
            ConfigErrorKind::UnsupportedApiVersion {
                kind: ours,
                api_version: api_version.value.clone(),
            },
            sanitize(&message),
        ));
    }
    let others: &[&str] = match group {
        "networking.istio.io" => &OTHER_NETWORKING_KINDS,
        "security.istio.io" => &OTHER_SECURITY_KINDS,
        _ => return None,
    };
    if others.contains(&kind.value.as_str()) || kind.value.ends_with("List") {
        return None;
    }
    let known: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| k.group() == group)
        .map(|k| k.as_str())
        .chain(others.iter().copied())
        .collect();
    let suggestion = closest(&kind.value, &known).map(str::to_owned);
    let message = unknown_message("kind", &kind.value, suggestion.as_deref(), &known);
    Some(ConfigError::new(
        file.at(kind.referenced),
        ConfigErrorKind::UnknownKind {
            kind: kind.value.clone(),
            suggestion,
        },
        sanitize(&message.replacen("unknown kind", &format!("unknown {group} kind"), 1)),
    ))
}
