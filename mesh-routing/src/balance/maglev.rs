//! Maglev (SEMANTICS DR-9, DR-10): a lookup table of prime size filled from each endpoint's
//! permutation of the slots; a key goes to `table[hash % size]`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use mesh_core::endpoint::EndpointSet;

use super::hash::Hasher;
use super::ring::{endpoint_key, walk};
use super::simple::{Eligibility, weight_of};

/// Default `tableSize` (DR-10).
pub(super) const DEFAULT_TABLE_SIZE: u64 = 65_537;

/// `tableSize` must be below this (DR-10).
const TABLE_SIZE_LIMIT: u64 = 5_000_011;

const EMPTY: u32 = u32::MAX;

/// The table size used for a configured `tableSize`: 0 → 65537; a size that is not prime →
/// the next prime; at or above the 5,000,011 limit → the largest prime below it.
pub(super) fn effective_table_size(configured: u64) -> u64 {
    if configured == 0 {
        return DEFAULT_TABLE_SIZE;
    }
    if configured >= TABLE_SIZE_LIMIT {
        return (2..TABLE_SIZE_LIMIT)
            .rev()
            .find(|&p| is_prime(p))
            .unwrap_or(DEFAULT_TABLE_SIZE);
    }
    (configured..TABLE_SIZE_LIMIT)
        .find(|&p| is_prime(p))
        .unwrap_or(DEFAULT_TABLE_SIZE)
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// A filled maglev lookup table: slot → endpoint index.
#[derive(Debug)]
pub(super) struct Maglev {
    table: Box<[u32]>,
}

impl Maglev {
    /// Fills a table of `size` slots (a prime, see [`effective_table_size`]).
    ///
    /// Endpoint at `ADDR` walks the slots `offset, offset + skip, offset + 2·skip, …` (mod
    /// size) with `offset` and `skip` from two independent hashes of `ADDR`, and takes the
    /// first free slot on its turn. Turns are weighted (DR-7): the heaviest endpoint has a turn
    /// every round, an endpoint of weight `w` a turn whenever `w / max_weight` of a slot has
    /// accrued. Endpoints take turns in the order of their address hashes, so the table does
    /// not depend on the order of the set.
    pub(super) fn build(set: &EndpointSet, size: u64) -> Self {
        let n = set.len().min(u32::MAX as usize);
        let m = usize::try_from(size).unwrap_or(usize::MAX);
        let mut table = vec![EMPTY; m];
        if n == 0 || m == 0 {
            return Self {
                table: table.into_boxed_slice(),
            };
        }
        struct Perm {
            index: u32,
            offset: u64,
            skip: u64,
            next: u64,
            placed: u128,
            weight: u128,
        }
        let mut perms: Vec<(u64, Perm)> = (0..n)
            .map(|i| {
                let key = endpoint_key(set, i);
                let h = |seed: u64| {
                    let mut h = Hasher::seeded(seed);
                    h.write(key.as_bytes());
                    h.finish()
                };
                let order = h(0);
                (
                    order,
                    Perm {
                        index: i as u32,
                        offset: h(1) % size,
                        skip: if size > 1 { h(2) % (size - 1) + 1 } else { 1 },
                        next: 0,
                        placed: 0,
                        weight: u128::from(weight_of(set, i)),
                    },
                )
            })
            .collect();
        perms.sort_unstable_by_key(|(order, p)| (*order, p.index));
        let max_weight = perms.iter().map(|(_, p)| p.weight).max().unwrap_or(1);

        // The k-th turn (k = placed) of an endpoint comes in round ⌊k·max/w⌋ + 1; within a
        // round, endpoints go in order. A heap replays the rounds without visiting endpoints
        // whose turn has not come.
        let turn = |p: &Perm| p.placed * max_weight / p.weight + 1;
        let mut heap: BinaryHeap<Reverse<(u128, usize)>> = perms
            .iter()
            .enumerate()
            .map(|(pos, (_, p))| Reverse((turn(p), pos)))
            .collect();
        let mut filled = 0;
        while filled < m {
            let Some(Reverse((_, pos))) = heap.pop() else {
                break;
            };
            let p = &mut perms[pos].1;
            while p.next < size {
                let slot = ((p.offset + p.next * p.skip) % size) as usize;
                p.next += 1;
                if table[slot] == EMPTY {
                    table[slot] = p.index;
                    filled += 1;
                    break;
                }
            }
            p.placed += 1;
            if p.next < size {
                heap.push(Reverse((turn(p), pos)));
            }
        }
        Self {
            table: table.into_boxed_slice(),
        }
    }

    /// The endpoint for `hash`: `table[hash % size]`, walking forward past ineligible endpoints
    /// (so an ejection moves only the ejected endpoint's keys) and, up to `max_avoid` times,
    /// past endpoints in `avoid` (RETRY-13).
    pub(super) fn pick(
        &self,
        hash: u64,
        elig: &mut Eligibility<'_>,
        avoid: &[usize],
        max_avoid: usize,
    ) -> Option<usize> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        // Every slot is filled: an endpoint's permutation visits every slot, and endpoints
        // keep taking turns until none is free.
        let start = (hash % len) as usize;
        walk(&self.table, start, elig, avoid, max_avoid, hash)
    }

    /// Slots per endpoint index (tests: spread and weights).
    #[cfg(test)]
    pub(super) fn slots_of(&self, i: usize) -> usize {
        self.table.iter().filter(|&&e| e as usize == i).count()
    }
}
