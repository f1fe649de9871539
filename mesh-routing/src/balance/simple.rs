//! The non-hashing balancers (SEMANTICS DR-6, DR-7): weighted random, least request (power of
//! two choices) and smooth weighted round robin, plus the eligibility rules they share (DR-8,
//! OD-10).

use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_core::endpoint::{EndpointSet, Health};
use mesh_core::random::Random;

/// Random draws that may land on an ineligible endpoint before the exact (O(n)) draw over the
/// eligible ones takes over. Rejection sampling followed by an exact draw is still exactly
/// proportional to the eligible endpoints' weights.
const REJECTION_TRIES: usize = 8;

/// Longest weighted round-robin schedule; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 1 << 16;

/// Above this many `schedule length × endpoints` steps the exact smooth WRR is replaced by an
/// equivalent-share stride interleave, which builds in `O(L log L)`.
const MAX_SMOOTH_WORK: u64 = 4_000_000;

// === Eligibility ===

/// Which endpoints a pick may return (DR-8, OD-10), worked out lazily: the healthy count (an
/// O(n) scan) is only taken the first time an unhealthy endpoint is met, so a pick over a
/// healthy set never scans.
#[derive(Debug)]
pub(super) struct Eligibility<'a> {
    set: &'a EndpointSet,
    threshold: f64,
    mode: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Unknown,
    /// Health counts; `healthy` endpoints were healthy at the scan.
    Normal {
        healthy: usize,
    },
    /// Panic mode: every endpoint is eligible.
    Panic,
}

impl<'a> Eligibility<'a> {
    pub(super) fn new(set: &'a EndpointSet, threshold: f64) -> Self {
        Self {
            set,
            threshold,
            mode: Mode::Unknown,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether endpoint `i` may be picked.
    pub(super) fn is_eligible(&mut self, i: usize) -> bool {
        self.set.stats(i).health() == Health::Healthy || self.mode() == Mode::Panic
    }

    /// Whether no endpoint at all may be picked (→ 503 `UH`).
    pub(super) fn none_eligible(&mut self) -> bool {
        self.mode() == Mode::Normal { healthy: 0 }
    }

    fn mode(&mut self) -> Mode {
        if self.mode == Mode::Unknown {
            let healthy = self.set.healthy_count();
            let total = self.set.len().max(1);
            // OD-10: healthy percentage strictly below the threshold → panic.
            #[allow(clippy::cast_precision_loss, reason = "a percentage")]
            let percent = healthy as f64 * 100.0 / total as f64;
            self.mode = if percent < self.threshold {
                Mode::Panic
            } else {
                Mode::Normal { healthy }
            };
        }
        self.mode
    }

    /// The first eligible endpoint from `start` on (wrapping), for when a bounded walk gave up
    /// because health changed under it.
    pub(super) fn scan_from(&mut self, start: usize) -> Option<usize> {
        let n = self.len();
        (0..n)
            .map(|k| start.wrapping_add(k) % n)
            .find(|&i| self.is_eligible(i))
    }
}

// === Weights ===

/// The endpoints' weights (DR-7: 0 counts as 1), prepared once per set for O(log n) draws.
#[derive(Debug)]
pub(super) enum Weights {
    /// All weights equal.
    Uniform(usize),
    /// Inclusive prefix sums of the weights.
    Weighted(Box<[u64]>),
}

/// DR-7: weight 0 is treated as 1.
pub(super) fn weight_of(set: &EndpointSet, i: usize) -> u64 {
    u64::from(set.endpoint(i).weight.max(1))
}

impl Weights {
    pub(super) fn build(set: &EndpointSet) -> Self {
        let n = set.len();
        let first = if n == 0 { 1 } else { weight_of(set, 0) };
        if (0..n).all(|i| weight_of(set, i) == first) {
            return Weights::Uniform(n);
        }
        let mut sum = 0u64;
        Weights::Weighted(
            (0..n)
                .map(|i| {
                    sum = sum.saturating_add(weight_of(set, i));
                    sum
                })
                .collect(),
        )
    }

    fn len(&self) -> usize {
        match self {
            Weights::Uniform(n) => *n,
            Weights::Weighted(c) => c.len(),
        }
    }

    fn weight(&self, i: usize) -> u64 {
        match self {
            Weights::Uniform(_) => 1,
            Weights::Weighted(c) => c[i] - if i == 0 { 0 } else { c[i - 1] },
        }
    }

    /// The endpoint owning point `r` of the weight line.
    fn locate(cumulative: &[u64], r: u64) -> usize {
        cumulative.partition_point(|&c| c <= r)
    }

    /// A weighted draw over all endpoints. `n` must be at least 1.
    pub(super) fn draw(&self, rng: &mut Random) -> usize {
        match self {
            Weights::Uniform(n) => below(rng, *n),
            Weights::Weighted(c) => {
                let total = c.last().copied().unwrap_or(0);
                Self::locate(c, rng.below(total))
            }
        }
    }

    /// A weighted draw over all endpoints but `a`. `n` must be at least 2.
    fn draw_excluding(&self, a: usize, rng: &mut Random) -> usize {
        match self {
            Weights::Uniform(n) => {
                let b = below(rng, n - 1);
                if b >= a { b + 1 } else { b }
            }
            Weights::Weighted(c) => {
                let total = c.last().copied().unwrap_or(0);
                let wa = self.weight(a);
                let start_a = c[a] - wa;
                let mut r = rng.below(total - wa);
                if r >= start_a {
                    r += wa;
                }
                Self::locate(c, r)
            }
        }
    }
}

fn below(rng: &mut Random, n: usize) -> usize {
    // `below(n)` < n, which came from a usize.
    rng.below(n as u64) as usize
}

/// A weighted random eligible endpoint (DR-6 `RANDOM`, and the missing-hash-key choice of
/// DR-9); `None` when none is eligible.
pub(super) fn random(
    weights: &Weights,
    elig: &mut Eligibility<'_>,
    rng: &mut Random,
) -> Option<usize> {
    for _ in 0..REJECTION_TRIES {
        let i = weights.draw(rng);
        if elig.is_eligible(i) {
            return Some(i);
        }
        if elig.none_eligible() {
            return None;
        }
    }
    exact(weights, elig, None, rng)
}

/// An exactly weighted draw over the eligible endpoints other than `exclude`.
fn exact(
    weights: &Weights,
    elig: &mut Eligibility<'_>,
    exclude: Option<usize>,
    rng: &mut Random,
) -> Option<usize> {
    let n = weights.len();
    let total: u64 = (0..n)
        .filter(|&i| Some(i) != exclude && elig.is_eligible(i))
        .map(|i| weights.weight(i))
        .sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.below(total);
    let mut last = None;
    for i in 0..n {
        if Some(i) == exclude || !elig.is_eligible(i) {
            continue;
        }
        let w = weights.weight(i);
        if r < w {
            return Some(i);
        }
        r -= w;
        last = Some(i);
    }
    // Health changed between the two passes.
    last
}

/// The two candidates of a power-of-two-choices pick: two distinct eligible endpoints, each
/// drawn by weight (the second among the rest); the second is `None` when only one endpoint is
/// eligible.
pub(super) fn p2c_pair(
    weights: &Weights,
    elig: &mut Eligibility<'_>,
    rng: &mut Random,
) -> Option<(usize, Option<usize>)> {
    let a = random(weights, elig, rng)?;
    if weights.len() < 2 {
        return Some((a, None));
    }
    for _ in 0..REJECTION_TRIES {
        let b = weights.draw_excluding(a, rng);
        if elig.is_eligible(b) {
            return Some((a, Some(b)));
        }
    }
    Some((a, exact(weights, elig, Some(a), rng)))
}

/// DR-6 `LEAST_REQUEST`: of two candidates, the one with fewer active requests; a tie goes to
/// the first.
pub(super) fn least_request(
    set: &EndpointSet,
    weights: &Weights,
    elig: &mut Eligibility<'_>,
    rng: &mut Random,
) -> Option<usize> {
    let (a, b) = p2c_pair(weights, elig, rng)?;
    Some(match b {
        Some(b) if set.stats(b).rq_active() < set.stats(a).rq_active() => b,
        _ => a,
    })
}

// === Round robin ===

/// A weighted round-robin schedule: endpoint indices in the order smooth weighted round robin
/// visits them over one cycle, each appearing in proportion to its weight.
pub(super) fn build_schedule(set: &EndpointSet) -> Box<[u32]> {
    let n = set.len().min(u32::MAX as usize);
    let mut weights: Vec<u64> = (0..n).map(|i| weight_of(set, i)).collect();
    let g = weights.iter().copied().fold(0, gcd);
    if g > 1 {
        weights.iter_mut().for_each(|w| *w /= g);
    }
    let sum: u64 = weights.iter().sum();
    if sum > MAX_SCHEDULE {
        for w in &mut weights {
            let scaled = u128::from(*w) * u128::from(MAX_SCHEDULE) / u128::from(sum);
            *w = u64::try_from(scaled).unwrap_or(MAX_SCHEDULE).max(1);
        }
    }
    let len: u64 = weights.iter().sum();
    if len.saturating_mul(n as u64) <= MAX_SMOOTH_WORK {
        smooth_schedule(&weights, len)
    } else {
        stride_schedule(&weights)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The classic smooth weighted round robin, run for one cycle: each step every endpoint's
/// score grows by its weight, the highest score is chosen and loses the total weight.
fn smooth_schedule(weights: &[u64], len: u64) -> Box<[u32]> {
    let total = i128::from(len);
    let mut score = vec![0i128; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    for _ in 0..len {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            score[i] += i128::from(*w);
            if score[i] > score[best] {
                best = i;
            }
        }
        score[best] -= total;
        out.push(best as u32);
    }
    out.into_boxed_slice()
}

/// Each endpoint's `k`-th turn at time `(k + ½) / weight`, all turns sorted by time (ties by
/// index): the same shares as smooth WRR, spread as evenly, in `O(L log L)`.
fn stride_schedule(weights: &[u64]) -> Box<[u32]> {
    let mut turns: Vec<(u64, u32)> = Vec::new();
    for (i, &w) in weights.iter().enumerate() {
        turns.extend((0..w).map(|k| (k, i as u32)));
    }
    // (2k+1)/(2w) compared exactly: (2k₁+1)·w₂ vs (2k₂+1)·w₁.
    turns.sort_unstable_by(|&(k1, i1), &(k2, i2)| {
        let lhs = u128::from(2 * k1 + 1) * u128::from(weights[i2 as usize]);
        let rhs = u128::from(2 * k2 + 1) * u128::from(weights[i1 as usize]);
        lhs.cmp(&rhs).then(i1.cmp(&i2))
    });
    turns.into_iter().map(|(_, i)| i).collect()
}

/// DR-6 `ROUND_ROBIN`: the next eligible entry of `schedule` (or of `0..n` when weights are
/// equal). Ineligible entries are consumed without a pick, so the eligible endpoints keep
/// their shares of the cycle.
pub(super) fn round_robin(
    schedule: Option<&[u32]>,
    cursor: &AtomicUsize,
    elig: &mut Eligibility<'_>,
) -> Option<usize> {
    let len = schedule.map_or(elig.len(), <[u32]>::len);
    if len == 0 {
        return None;
    }
    let at = |pos: usize| schedule.map_or(pos, |s| s[pos] as usize);
    let start = cursor.fetch_add(1, Ordering::Relaxed);
    for k in 0..len {
        let i = at(start.wrapping_add(k) % len);
        if elig.is_eligible(i) {
            if k > 0 {
                // Later picks continue after the entries skipped here.
                cursor.fetch_add(k, Ordering::Relaxed);
            }
            return Some(i);
        }
        if elig.none_eligible() {
            return None;
        }
    }
    elig.scan_from(start)
}
