//! Checks shared by several kinds: `exportTo` lists and workload selectors.

use std::collections::{BTreeMap, BTreeSet};

use super::codes;
use super::names::{check_selector, is_dns1123_label};
use super::report::On;
use super::source_map::key;

/// Istio's `exportTo` rules (HOST-8): `.`, `*` or namespace names; no duplicates; `*` alone;
/// `~` (nobody) alone and only on ServiceEntries.
pub(crate) fn check_export_to(on: &mut On<'_, '_>, export_to: &[String], service_entry: bool) {
    let ns = on.namespace().to_owned();
    let mut seen = BTreeSet::new();
    for (i, e) in export_to.iter().enumerate() {
        let path = format!("spec.exportTo[{i}]");
        let key = if e == "." { ns.as_str() } else { e.as_str() };
        if !seen.insert(key.to_owned()) {
            let message = if key == e {
                format!("duplicate entries in exportTo for entry {e}")
            } else {
                format!("duplicate entries in exportTo: . and current namespace {ns}")
            };
            on.add(&codes::X_INVALID_EXPORT_TO, path, message);
            continue;
        }
        match e.as_str() {
            "." | "*" => {}
            "~" if service_entry => {}
            "~" => on.add(
                &codes::X_INVALID_EXPORT_TO,
                path,
                "exportTo ~ (none) is not allowed for Istio configuration objects other than \
                 ServiceEntry",
            ),
            other if !is_dns1123_label(other) => on.add(
                &codes::X_INVALID_EXPORT_TO,
                path,
                format!("exportTo entry {other:?}: only ., *, or a namespace name is allowed"),
            ),
            _ => {}
        }
    }
    if export_to.len() > 1 {
        if seen.contains("*") {
            on.add(
                &codes::X_INVALID_EXPORT_TO,
                "spec.exportTo",
                "cannot have both public (*) and non-public exportTo values for a resource",
            );
        }
        if seen.contains("~") {
            on.add(
                &codes::X_INVALID_EXPORT_TO,
                "spec.exportTo",
                "cannot export service entry to no one (~) and someone",
            );
        }
    }
}

/// Empty keys and wildcards in a workload selector (`path` names the labels map).
pub(crate) fn check_workload_selector(
    on: &mut On<'_, '_>,
    labels: &BTreeMap<String, String>,
    path: &str,
) {
    for (k, message) in check_selector(labels) {
        on.add(
            &codes::X_INVALID_SELECTOR,
            format!("{path}{}", key(&k)),
            message,
        );
    }
}
