//! Fast, seedable randomness for request-path decisions.
//!
//! Weighted destination choice (SEMANTICS VS-14), fault percentages (VS-27, VS-28), mirror
//! percentages (VS-32), load balancer picks (DR-6) and retry jitter (RETRY-10) all draw random
//! numbers on every request. They need speed and statistical quality, not cryptographic
//! strength, and tests need to replay them: every consumer takes a [`Random`] source, which is
//! either the per-thread generator ([`Random::thread`]) or a seeded one ([`Random::seeded`]),
//! as tower's `Balance::from_rng` does.
//!
//! The generator is wyrand (64-bit state, one multiply per draw), which passes the usual
//! statistical batteries and needs no dependency.
//!
//! ```
//! use mesh_core::random::Random;
//!
//! let mut a = Random::seeded(7);
//! let mut b = Random::seeded(7);
//! assert_eq!(a.next_u64(), b.next_u64());
//! assert!(a.below(10) < 10);
//! let p = a.unit();
//! assert!((0.0..1.0).contains(&p));
//! ```

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

/// A wyrand generator: seeded for tests, or drawn from a per-thread state in production.
#[derive(Clone, Debug)]
pub struct Random {
    state: u64,
    thread: bool,
}

thread_local! {
    static THREAD_STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0x6d65_7368_u64) | 1);
}

const INCREMENT: u64 = 0xa076_1d64_78bd_642f;
const MIX: u64 = 0xe703_7ed1_a0b4_28db;

impl Random {
    /// A generator that replays the same sequence for the same `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            state: seed,
            thread: false,
        }
    }

    /// The calling thread's generator (seeded from the OS at first use). Draws from it
    /// advance the thread's shared state, so two `Random::thread()` values never repeat each
    /// other's numbers.
    pub fn thread() -> Self {
        Self {
            state: 0,
            thread: true,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let state = if self.thread {
            THREAD_STATE.with(|s| {
                let next = s.get().wrapping_add(INCREMENT);
                s.set(next);
                next
            })
        } else {
            self.state = self.state.wrapping_add(INCREMENT);
            self.state
        };
        let wide = u128::from(state) * u128::from(state ^ MIX);
        // Folding the 128-bit product: the truncations are the point.
        #[allow(clippy::cast_possible_truncation, reason = "wyrand folds the product")]
        let folded = (wide >> 64) as u64 ^ wide as u64;
        folded
    }

    /// A uniform number in `0..n` (`0` when `n` is 0), without modulo bias worth measuring
    /// (Lemire's multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        #[allow(clippy::cast_possible_truncation, reason = "the high half is < n")]
        let high = (wide >> 64) as u64;
        high
    }

    /// A uniform `f64` in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random mantissa bits.
        #[allow(
            clippy::cast_precision_loss,
            reason = "53 bits fit an f64 mantissa exactly"
        )]
        let bits = (self.next_u64() >> 11) as f64;
        bits * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `percent / 100` (`percent` clamped to 0–100), as Istio's
    /// fault and mirror percentages are drawn (0 never, 100 always).
    pub fn chance(&mut self, percent: f64) -> bool {
        if percent >= 100.0 {
            return true;
        }
        if percent.is_nan() || percent <= 0.0 {
            return false;
        }
        self.unit() * 100.0 < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat_and_differ_by_seed() {
        let a: Vec<_> = {
            let mut r = Random::seeded(1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Random::seeded(1);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut r = Random::seeded(2);
        assert_ne!(a[0], r.next_u64());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Random::seeded(42);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let i = usize::try_from(r.below(10)).unwrap();
            counts[i] += 1;
        }
        // Each bucket expects 10,000 with sd ≈ 95; 5 sd is a generous bound.
        assert!(
            counts.iter().all(|&c| (9_525..=10_475).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn chance_edges() {
        let mut r = Random::thread();
        assert!((0..1000).all(|_| r.chance(100.0)));
        assert!((0..1000).all(|_| !r.chance(0.0)));
        assert!((0..1000).all(|_| !r.chance(f64::NAN)));
        let hits = (0..100_000).filter(|_| r.chance(25.0)).count();
        assert!((23_500..26_500).contains(&hits), "{hits}");
    }
}
