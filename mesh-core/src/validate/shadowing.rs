//! Resources that shadow each other: one name defined twice, several VirtualServices or
//! ServiceEntries claiming one host (the oldest wins, HOST-9, SE-8), several
//! PeerAuthentications at one level (PA-2), several namespace-wide Sidecars (IST0110).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use super::codes;
use super::cross::{Index, Item, age_cmp, audience, audiences_meet};
use super::report::Reporter;
use crate::Snapshot;
use crate::model::{AnyResource, Kind, PeerAuthentication, Sidecar};

pub(crate) fn duplicate_resources<'s>(snapshot: &'s Snapshot, out: &mut Reporter<'s>) {
    let mut seen: HashMap<(Kind, &str, &str), &AnyResource> = HashMap::new();
    for r in snapshot.resources() {
        match seen.entry((r.kind(), r.namespace(), r.name())) {
            Entry::Occupied(first) => out.add(
                &codes::X_DUPLICATE_RESOURCE,
                r,
                "metadata.name",
                format!(
                    "{} is also defined at {}: both are loaded; Kubernetes would keep only the \
                     last one applied",
                    r.key(),
                    first.get().source().file_line()
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(r);
            }
        }
    }
}

/// Several resources of one kind claiming the same host, where some namespace sees both: the
/// oldest wins (HOST-9, SE-8), the others are reported at their host entry.
pub(crate) fn duplicate_hosts<'s, T>(
    mut items: Vec<&Item<'s, T>>,
    export_to: impl Fn(&Item<'s, T>) -> &'s [String],
    code: &'static codes::CodeInfo,
    (kind, verb, consequence): (&str, &str, &str),
    out: &mut Reporter<'s>,
) {
    items.sort_by(|a, b| age_cmp(a, b));
    // Qualified host → the resources claiming it (with the index of the entry), oldest first.
    let mut claims: HashMap<&str, Vec<(&Item<'s, T>, usize)>> = HashMap::new();
    for item in &items {
        for (i, fqdn) in item.fqdns.iter().enumerate() {
            let claimants = claims.entry(fqdn).or_default();
            if claimants
                .last()
                .is_none_or(|(last, _)| !std::ptr::eq(*last, *item))
            {
                claimants.push((item, i));
            }
        }
    }
    for (fqdn, claimants) in claims.into_iter().filter(|(_, c)| c.len() > 1) {
        for (pos, (item, host_index)) in claimants.iter().enumerate() {
            let seen_by = audience(export_to(item), item.ns());
            let older = claimants[..pos].iter().find(|(other, _)| {
                audiences_meet(&seen_by, &audience(export_to(other), other.ns()))
            });
            if let Some((owner, _)) = older {
                out.add(
                    code,
                    item.any,
                    format!("spec.hosts[{host_index}]"),
                    format!(
                        "host {fqdn} {verb} {kind} {}/{} ({}), which is older: {consequence}",
                        owner.ns(),
                        owner.res.name(),
                        owner.any.source().file_line()
                    ),
                );
            }
        }
    }
}

pub(crate) fn peer_authentications<'s>(index: &Index<'s>, root: &str, out: &mut Reporter<'s>) {
    let mut levels: BTreeMap<&str, Vec<&Item<'s, PeerAuthentication>>> = BTreeMap::new();
    for pa in &index.pa {
        let selector = pa
            .res
            .spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        if !selector {
            levels.entry(pa.ns()).or_default().push(pa);
        }
    }
    for (ns, mut pas) in levels {
        pas.sort_by(|a, b| age_cmp(a, b));
        let level = if ns == root {
            "mesh-wide".to_owned()
        } else {
            "namespace-wide".to_owned()
        };
        let scope = if ns == root {
            "the mesh".to_owned()
        } else {
            format!("namespace {ns}")
        };
        let oldest = pas[0];
        for pa in &pas[1..] {
            out.add(
                &codes::PA_SHADOWED,
                pa.any,
                "metadata.name",
                format!(
                    "{level} PeerAuthentication {}/{} ({}) already applies to {scope}; the oldest \
                     wins and this one is ignored (PA-2)",
                    oldest.ns(),
                    oldest.res.name(),
                    oldest.any.source().file_line()
                ),
            );
        }
    }
}

pub(crate) fn sidecars<'s>(index: &Index<'s>, out: &mut Reporter<'s>) {
    let mut defaults: BTreeMap<&str, Vec<&Item<'s, Sidecar>>> = BTreeMap::new();
    for sc in &index.sc {
        if sc
            .res
            .spec
            .workload_selector
            .as_ref()
            .is_none_or(|s| s.labels.is_empty())
        {
            defaults.entry(sc.ns()).or_default().push(sc);
        }
    }
    for (ns, mut scs) in defaults {
        scs.sort_by(|a, b| age_cmp(a, b));
        let first = scs[0];
        for sc in &scs[1..] {
            out.add(
                &codes::SC_MULTIPLE_DEFAULT,
                sc.any,
                "metadata.name",
                format!(
                    "namespace {ns} already has a Sidecar without workloadSelector ({}/{}, {}): \
                     only one is allowed",
                    first.ns(),
                    first.res.name(),
                    first.any.source().file_line()
                ),
            );
        }
    }
}
