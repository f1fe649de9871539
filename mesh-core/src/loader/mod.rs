//! Files and folders of Istio YAML (or JSON) into a [`Snapshot`], with file, line and column in
//! every error.
//!
//! Operators hand the SDK the same YAML they `kubectl apply`: many documents per file,
//! `kind: List` exports, folders (ConfigMap mounts included), and Kubernetes kinds that are not
//! Istio's mixed in. The loader reads all of it, keeps the Istio kinds of [`crate::model`],
//! skips the rest (listed at debug level), and is strict about everything else: an unknown
//! field, a bad value or a missing name is a [`ConfigError`] that points at the exact key or
//! value and suggests the nearest known name. Errors of all files are collected at once, so a
//! single `analyze` run reports every broken file.
//!
//! ```
//! use std::path::Path;
//! use mesh_core::loader::{ConfigErrorKind, parse_str};
//!
//! let yaml = "\
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.com]
//!   resolution: DNS_ROUND
//! ";
//! let err = parse_str(yaml, Path::new("mesh/api.yaml"), "default").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "mesh/api.yaml:6:15: unknown value `DNS_ROUND`, expected one of `NONE`, `STATIC`, `DNS`, \
//!      `DNS_ROUND_ROBIN`, `DYNAMIC_DNS`",
//! );
//!
//! let fixed = yaml.replace("DNS_ROUND", "DNS_ROUND_ROBIN");
//! let resources = parse_str(&fixed, Path::new("mesh/api.yaml"), "default").unwrap();
//! assert_eq!(resources[0].key(), "ServiceEntry/default/api");
//! assert_eq!(resources[0].source().file_line(), "mesh/api.yaml:1");
//! ```
//!
//! Rules, in short:
//! - a folder is walked recursively in path order, reading `.yaml`, `.yml` and `.json` files
//!   and skipping hidden entries (so a ConfigMap mount is read once, through its visible
//!   symlinks); a file named explicitly is read whatever its extension; a missing path is an
//!   error;
//! - documents are separated by `---`; empty ones are skipped; a `kind: List` (`apiVersion:
//!   v1`) contributes its `items`;
//! - `metadata.namespace` defaults to [`Loader::namespace`]; `metadata.name` is required;
//! - each document reports its own errors and the next document still loads; a YAML syntax
//!   error ends its file; other files load regardless.

mod document;
mod error;
mod files;

use std::path::{Path, PathBuf};

use self::error::FileRef;
pub use self::error::{ConfigError, ConfigErrorKind, LoadError};
use crate::Snapshot;
use crate::model::{AnyResource, Location};

/// Loads Istio resources from files and folders.
///
/// ```no_run
/// use mesh_core::loader::Loader;
///
/// let snapshot = Loader::new(["/etc/mesh"]).namespace("shop").load()?;
/// println!("{} resources, version {}", snapshot.resources().len(), snapshot.version());
/// # Ok::<(), mesh_core::loader::LoadError>(())
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct Loader {
    paths: Vec<PathBuf>,
    namespace: String,
}

impl Loader {
    /// A loader for `paths` (files or folders), in the namespace `default`.
    pub fn new<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Self {
        Self {
            paths: paths
                .into_iter()
                .map(|p| p.as_ref().to_path_buf())
                .collect(),
            namespace: "default".to_owned(),
        }
    }

    /// The namespace of resources whose `metadata.namespace` is absent or empty.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Reads every file and builds a snapshot; on failure, every error of every file.
    pub fn load(&self) -> Result<Snapshot, LoadError> {
        self.load_files().map(|loaded| loaded.snapshot)
    }

    /// Like [`Loader::load`], and also tells which files were read and which documents were
    /// skipped as foreign kinds.
    pub fn load_files(&self) -> Result<Loaded, LoadError> {
        let mut errors = Vec::new();
        let files = files::discover(&self.paths, &mut errors);
        let mut out = document::Output::default();
        for path in &files {
            let file = FileRef::new(path);
            match std::fs::read(path) {
                Ok(bytes) => parse_bytes(&bytes, &file, &self.namespace, &mut out),
                Err(e) => out.errors.push(file.io("cannot read config file", &e)),
            }
        }
        errors.append(&mut out.errors);
        if !errors.is_empty() {
            return Err(LoadError { errors });
        }
        Ok(Loaded {
            snapshot: Snapshot::new(out.resources),
            files,
            skipped: out.skipped,
        })
    }

    /// The files a load reads, without reading them: explicit files, then the config files
    /// found in folders (for a watcher that must know them even when loading fails).
    pub fn files(&self) -> Result<Vec<PathBuf>, LoadError> {
        let mut errors = Vec::new();
        let files = files::discover(&self.paths, &mut errors);
        if errors.is_empty() {
            Ok(files)
        } else {
            Err(LoadError { errors })
        }
    }
}

/// The result of [`Loader::load_files`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The resources.
    pub snapshot: Snapshot,
    /// Every file read, in load order (paths as reached: symlinks are not resolved).
    pub files: Vec<PathBuf>,
    /// Documents skipped because their kind is not one this SDK reads (Deployment, Service, …).
    pub skipped: Vec<Skipped>,
}

/// A document whose kind is not one this SDK reads.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// `apiVersion` as written.
    pub api_version: String,
    /// `kind` as written.
    pub kind: String,
    /// `metadata.name`, or empty.
    pub name: String,
    /// Where the document starts.
    pub location: Location,
}

/// Parses the text of one file: every document of ours, namespaces defaulted to `namespace`,
/// sources in `file`.
pub fn parse_str(text: &str, file: &Path, namespace: &str) -> Result<Vec<AnyResource>, LoadError> {
    let mut out = document::Output::default();
    document::parse(text.as_bytes(), &FileRef::new(file), namespace, &mut out);
    if out.errors.is_empty() {
        Ok(out.resources)
    } else {
        Err(LoadError { errors: out.errors })
    }
}

fn parse_bytes(bytes: &[u8], file: &FileRef, namespace: &str, out: &mut document::Output) {
    // serde-saphyr transcodes UTF-16 with a byte-order mark itself.
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return document::parse(bytes, file, namespace, out);
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => document::parse(bytes, file, namespace, out),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            // The prefix is valid UTF-8, so counting characters is exact.
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            out.errors.push(ConfigError::new(
                file.line_col(at(line), at(column)),
                ConfigErrorKind::Syntax,
                "the file is not valid UTF-8 text",
            ));
        }
    }
}
