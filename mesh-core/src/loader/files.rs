//! Which files a list of paths stands for.
//!
//! Folders are walked recursively in path order, reading `.yaml`, `.yml` and `.json` files and
//! skipping hidden entries. Skipping hidden entries is also what makes Kubernetes ConfigMap
//! mounts read once: their files are `name.yaml -> ..data/name.yaml` symlinks, `..data` links
//! to a hidden timestamped folder (`..2024_01_01_00_00_00.123`), and only the visible symlinks
//! (followed) are read.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, FileRef};

/// The files under `paths`, each once, in order: explicit files as given (whatever their
/// extension), folders walked in sorted order.
pub(super) fn discover(paths: &[PathBuf], errors: &mut Vec<ConfigError>) -> Vec<PathBuf> {
    let mut walk = Walk::default();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk.dir(path, errors),
            Ok(_) => walk.file(path.clone()),
            Err(e) => errors.push(FileRef::new(path).io("cannot read config path", &e)),
        }
    }
    walk.files
}

#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    seen_files: HashSet<PathBuf>,
    /// Canonical folders already walked: guards against symlink cycles and double walks.
    seen_dirs: HashSet<PathBuf>,
}

impl Walk {
    fn file(&mut self, path: PathBuf) {
        if self.seen_files.insert(path.clone()) {
            self.files.push(path);
        }
    }

    fn dir(&mut self, dir: &Path, errors: &mut Vec<ConfigError>) {
        if let Ok(canonical) = fs::canonicalize(dir)
            && !self.seen_dirs.insert(canonical)
        {
            return;
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return errors.push(FileRef::new(dir).io("cannot read folder", &e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => errors.push(FileRef::new(dir).io("cannot read folder", &e)),
            }
        }
        names.sort();
        for name in names {
            if is_hidden(&name) {
                continue;
            }
            let path = dir.join(&name);
            // `metadata` follows symlinks: ConfigMap files are symlinks into `..data`.
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => self.dir(&path, errors),
                Ok(meta) if meta.is_file() && is_config_file(&path) => self.file(path),
                Ok(_) => {}
                Err(e) if is_config_file(&path) => {
                    errors.push(FileRef::new(&path).io("cannot read config file", &e));
                }
                Err(_) => {}
            }
        }
    }
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn is_config_file(path: &Path) -> bool {
    path.extension().and_then(OsStr::to_str).is_some_and(|ext| {
        ["yaml", "yml", "json"]
            .iter()
            .any(|want| ext.eq_ignore_ascii_case(want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_hidden_names() {
        assert!(is_config_file(Path::new("a/b.yaml")));
        assert!(is_config_file(Path::new("b.YML")));
        assert!(is_config_file(Path::new("b.json")));
        assert!(!is_config_file(Path::new("b.txt")));
        assert!(!is_config_file(Path::new("yaml")));
        assert!(is_hidden(OsStr::new("..data")));
        assert!(is_hidden(OsStr::new(".git")));
        assert!(!is_hidden(OsStr::new("a.yaml")));
    }
}
