//! Ring hash (SEMANTICS DR-9, DR-10): virtual nodes on a 64-bit ring, a key goes to the first
//! node at or after its hash.

use mesh_core::endpoint::EndpointSet;

use super::hash::{Hasher, hash_bytes};
use super::simple::{Eligibility, weight_of};

/// Envoy's largest ring (DR-10).
pub(super) const MAX_RING_SIZE: u64 = 8_388_608;

/// Default `minimumRingSize` (DR-10).
pub(super) const DEFAULT_RING_SIZE: u64 = 1024;

/// A sorted ring of virtual nodes: `hashes[k]` belongs to endpoint `owners[k]`.
#[derive(Debug)]
pub(super) struct Ring {
    hashes: Box<[u64]>,
    owners: Box<[u32]>,
}

/// Endpoint `i`'s identity on a ring or maglev table: its address, so a key stays put when
/// other endpoints come and go or the set is reordered.
pub(super) fn endpoint_key(set: &EndpointSet, i: usize) -> String {
    set.endpoint(i).addr.to_string()
}

impl Ring {
    /// Builds the ring of `set` with at least `min_size` virtual nodes (capped at
    /// [`MAX_RING_SIZE`]). Every unit of weight gets the same number of nodes, rounded up to a
    /// power of two, so the ring holds between `min_size` and twice that many: the rounding
    /// keeps each endpoint's node count unchanged when another endpoint joins or leaves (unless
    /// the count crosses a power of two), so only the leaving endpoint's keys move. Virtual
    /// node `k` of the endpoint at `ADDR` sits at `hash("ADDR_k")`.
    pub(super) fn build(set: &EndpointSet, min_size: u64) -> Self {
        let n = set.len().min(u32::MAX as usize);
        let weights: Vec<u64> = (0..n).map(|i| weight_of(set, i)).collect();
        let counts = node_counts(&weights, min_size);
        let size = usize::try_from(counts.iter().sum::<u64>()).unwrap_or(usize::MAX);
        let mut nodes: Vec<(u64, u32)> = Vec::with_capacity(size);
        let mut ties = Vec::with_capacity(n);
        for (i, &count) in counts.iter().enumerate() {
            let key = endpoint_key(set, i);
            ties.push(hash_bytes(key.as_bytes()));
            let mut prefix = Hasher::seeded(0);
            prefix.write(key.as_bytes());
            prefix.write(b"_");
            for k in 0..count {
                let mut h = prefix;
                h.write_decimal(k);
                nodes.push((h.finish(), i as u32));
            }
        }
        // Ties (rare) are broken by address, not by position in the set.
        nodes.sort_unstable_by(|a, b| (a.0, ties[a.1 as usize]).cmp(&(b.0, ties[b.1 as usize])));
        Self {
            hashes: nodes.iter().map(|n| n.0).collect(),
            owners: nodes.iter().map(|n| n.1).collect(),
        }
    }

    /// Number of virtual nodes.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Virtual nodes of endpoint `i`.
    #[cfg(test)]
    pub(super) fn nodes_of(&self, i: usize) -> usize {
        self.owners.iter().filter(|&&o| o as usize == i).count()
    }

    /// The endpoint for `hash`: the owner of the first node at or after it, walking on past
    /// ineligible endpoints (so an ejection moves only the ejected endpoint's keys) and, up to
    /// `max_avoid` times, past endpoints in `avoid` (RETRY-13).
    pub(super) fn pick(
        &self,
        hash: u64,
        elig: &mut Eligibility<'_>,
        avoid: &[usize],
        max_avoid: usize,
    ) -> Option<usize> {
        let start = self.hashes.partition_point(|&h| h < hash);
        walk(&self.owners, start, elig, avoid, max_avoid, hash)
    }
}

/// Virtual nodes per endpoint for `weights` (each at least 1) and a ring of at least
/// `min_size` nodes; see [`Ring::build`].
pub(super) fn node_counts(weights: &[u64], min_size: u64) -> Vec<u64> {
    let target = u128::from(min_size.clamp(1, MAX_RING_SIZE));
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum::<u128>().max(1);
    let per_unit = target.div_ceil(total).next_power_of_two();
    if per_unit * total <= u128::from(MAX_RING_SIZE) {
        let per_unit = u64::try_from(per_unit).unwrap_or(1);
        weights.iter().map(|&w| w * per_unit).collect()
    } else {
        // Weights too large for whole units: share the cap, rounding down, at least one.
        weights
            .iter()
            .map(|&w| {
                let down = u128::from(MAX_RING_SIZE) * u128::from(w) / total;
                u64::try_from(down).unwrap_or(1).max(1)
            })
            .collect()
    }
}

/// Walks `owners` forward (wrapping) from `start` to the first eligible endpoint, skipping
/// endpoints in `avoid` at most `max_avoid` times before accepting a repeat. Shared by ring and
/// maglev.
pub(super) fn walk(
    owners: &[u32],
    start: usize,
    elig: &mut Eligibility<'_>,
    avoid: &[usize],
    max_avoid: usize,
    hash: u64,
) -> Option<usize> {
    let len = owners.len();
    let mut avoided = 0;
    let mut first_avoided = None;
    for k in 0..len {
        let i = owners[(start + k) % len] as usize;
        if !elig.is_eligible(i) {
            if elig.none_eligible() {
                return None;
            }
            continue;
        }
        if avoid.contains(&i) && avoided < max_avoid {
            avoided += 1;
            first_avoided.get_or_insert(i);
            continue;
        }
        return Some(i);
    }
    // Every eligible endpoint on the table was avoided, or health changed under the walk, or
    // (maglev with more endpoints than slots) the eligible ones own no slot.
    first_avoided.or_else(|| {
        let n = elig.len().max(1);
        elig.scan_from(usize::try_from(hash % n as u64).unwrap_or(0))
    })
}
