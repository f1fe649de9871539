//! A candidate index over a table's policies, keyed by the peer's principal and namespace.
//!
//! Most AuthorizationPolicies name their callers (`principals`, `namespaces`), and a request
//! comes from one peer, so most policies cannot match it. [`PeerIndex`] finds, with a few hash
//! lookups, the policies that *might* match: those with no peer requirement, plus those whose
//! requirement ([`CompiledRule::peer_requirement`]) the peer meets. Only candidates are then
//! evaluated in full, so the index changes speed, never the outcome: a policy it leaves out
//! could not have matched.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::matcher::{StrKind, StrMatcher};
use super::policy::{CompiledRule, PeerAttr};
use super::request::Peer;

/// Below this many policies evaluating all of them is cheaper than the lookups.
const MIN_INDEXED: usize = 5;

/// Hash maps keyed by configured patterns and probed with a peer's (verified) identity.
type Map = HashMap<Box<str>, Mask, BuildHasherDefault<WordHasher>>;

/// A multiply-rotate hasher that takes eight bytes per step: the keys come from configuration,
/// not from the peer, so flooding resistance buys nothing here and SipHash's cost would be a
/// third of a decision.
#[derive(Clone, Copy, Debug, Default)]
struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("chunks of 8")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.word(u64::from(b));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A set of policy indices; tables over [`Mask::CAPACITY`] policies are not indexed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mask([u64; 4]);

impl Mask {
    /// The most policies an index covers.
    pub(crate) const CAPACITY: usize = 256;

    /// Every policy.
    pub(crate) const ALL: Mask = Mask([u64::MAX; 4]);

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn union(&mut self, other: &Mask) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    /// Whether policy `i` is in the set.
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Patterns of one kind and one attribute, grouped for lookup.
#[derive(Clone, Debug, Default)]
struct Keys {
    exact: Map,
    /// `(length, prefixes of that length)`: one lookup of the value's first `length` bytes.
    prefix: Vec<(usize, Map)>,
    /// Likewise with the value's last `length` bytes.
    suffix: Vec<(usize, Map)>,
    presence: Mask,
}

impl Keys {
    fn add(&mut self, m: &StrMatcher, policy: usize) {
        let by_len = |groups: &mut Vec<(usize, Map)>| {
            let len = m.value().len();
            let at = match groups.iter().position(|(l, _)| *l == len) {
                Some(at) => at,
                None => {
                    groups.push((len, Map::default()));
                    groups.len() - 1
                }
            };
            groups[at]
                .1
                .entry(m.value().into())
                .or_default()
                .insert(policy);
        };
        match m.kind() {
            StrKind::Exact => self
                .exact
                .entry(m.value().into())
                .or_default()
                .insert(policy),
            StrKind::Prefix => by_len(&mut self.prefix),
            StrKind::Suffix => by_len(&mut self.suffix),
            StrKind::Presence => self.presence.insert(policy),
        }
    }

    fn hits(&self, value: &str, out: &mut Mask) {
        if !value.is_empty() {
            out.union(&self.presence);
        }
        if let Some(m) = self.exact.get(value) {
            out.union(m);
        }
        for (len, keys) in &self.prefix {
            if let Some(m) = value.get(..*len).and_then(|p| keys.get(p)) {
                out.union(m);
            }
        }
        for (len, keys) in &self.suffix {
            let from = value.len().wrapping_sub(*len);
            if let Some(m) = value.get(from..).and_then(|s| keys.get(s)) {
                out.union(m);
            }
        }
    }
}

/// The candidate index of one table.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerIndex {
    /// `None` when the table has too few or too many policies to index: every policy is a
    /// candidate.
    inner: Option<Box<Inner>>,
}

#[derive(Clone, Debug, Default)]
struct Inner {
    /// Policies that can match whoever the peer is (or is not).
    always: Mask,
    principal: Keys,
    namespace: Keys,
}

impl PeerIndex {
    /// Builds the index over policies given as their rules, in table order.
    pub(crate) fn build<'r, P, R>(policies: P) -> PeerIndex
    where
        P: ExactSizeIterator<Item = R>,
        R: IntoIterator<Item = &'r CompiledRule>,
    {
        if !(MIN_INDEXED..=Mask::CAPACITY).contains(&policies.len()) {
            return PeerIndex { inner: None };
        }
        let mut inner = Inner::default();
        for (i, rules) in policies.enumerate() {
            let mut keys = Vec::new();
            let mut always = false;
            for rule in rules {
                match rule.peer_requirement() {
                    Some(k) if k.iter().all(|(_, m)| !m.ignores_case()) => keys.extend(k),
                    _ => always = true,
                }
            }
            // A policy without rules never matches: it is in no set at all.
            if always {
                inner.always.insert(i);
                continue;
            }
            for (attr, m) in keys {
                match attr {
                    PeerAttr::Principal => inner.principal.add(m, i),
                    PeerAttr::Namespace => inner.namespace.add(m, i),
                }
            }
        }
        PeerIndex {
            inner: Some(Box::new(inner)),
        }
    }

    /// The policies that might match a request from `peer`.
    pub(crate) fn candidates(&self, peer: Option<&Peer<'_>>) -> Mask {
        let Some(inner) = &self.inner else {
            return Mask::ALL;
        };
        let mut out = inner.always;
        if let Some(peer) = peer {
            inner.principal.hits(peer.principal, &mut out);
            if let Some(ns) = peer.namespace {
                inner.namespace.hits(ns, &mut out);
            }
        }
        out
    }
}
