//! Reconnect delays: exponential backoff with full jitter, and the tiny
//! seeded PRNG that draws them.
//!
//! After the `n`-th consecutive failed connection (`n` counted from 0) the
//! client waits a delay drawn uniformly from `0..=ceiling(n)`, where
//! `ceiling(n) = min(cap, base * 2^n)`: cap first, then jitter ("full
//! jitter"). Every attempt is jittered, the first included, so that many
//! clients dropped by one server restart do not come back in step.
//!
//! Nothing here reads a clock or the OS's randomness: the seed comes from
//! whoever builds the [`Backoff`], so a test with a fixed seed sees the same
//! delays every run.
//!
//! ```
//! use vigil::client::backoff::Backoff;
//!
//! let mut b = Backoff::new(100, 30_000, 7);
//! for n in 0..20 {
//!     let (attempt, delay) = b.next_delay();
//!     assert_eq!(attempt, n);
//!     assert!(delay <= Backoff::ceiling(100, 30_000, n));
//! }
//! b.reset();
//! assert_eq!(b.attempt(), 0);
//! ```

/// SplitMix64: a tiny, fast, seedable generator (Steele, Lea and Flood,
/// 2014). Statistically fine for jitter; not for anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that starts from `seed`. Any seed is fine, 0 included.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number drawn uniformly from `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        // Lemire's multiply-shift: maps 64 random bits onto `max + 1` values
        // without a division; the bias is below 2^-64 per value.
        let range = u128::from(max) + 1;
        ((u128::from(self.next_u64()) * range) >> 64) as u64
    }
}

/// Exponential backoff with full jitter. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Backoff from `base_ms` doubling up to `cap_ms`, drawing jitter from a
    /// generator seeded with `seed`.
    pub fn new(base_ms: u64, cap_ms: u64, seed: u64) -> Backoff {
        Backoff {
            base_ms,
            cap_ms,
            attempt: 0,
            rng: SplitMix64::new(seed),
        }
    }

    /// The largest delay for attempt `attempt`: `min(cap, base * 2^attempt)`,
    /// computed without overflow.
    pub fn ceiling(base_ms: u64, cap_ms: u64, attempt: u32) -> u64 {
        1u64.checked_shl(attempt)
            .and_then(|factor| base_ms.checked_mul(factor))
            .map_or(cap_ms, |d| d.min(cap_ms))
    }

    /// Draws the delay before the next reconnect and counts the attempt.
    /// Returns the attempt number the delay was drawn for (0 for the first
    /// since the last [`reset`](Backoff::reset)) and the delay in ms.
    pub fn next_delay(&mut self) -> (u32, u64) {
        let attempt = self.attempt;
        let delay = self
            .rng
            .up_to(Backoff::ceiling(self.base_ms, self.cap_ms, attempt));
        self.attempt = self.attempt.saturating_add(1);
        (attempt, delay)
    }

    /// Forgets past failures: the next delay is drawn for attempt 0 again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays have been drawn since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_boundaries() {
        let table: &[(u64, u64, u32, u64)] = &[
            (100, 30_000, 0, 100),
            (100, 30_000, 1, 200),
            (100, 30_000, 8, 25_600),
            (100, 30_000, 9, 30_000), // 51_200 capped
            (100, 30_000, 63, 30_000),
            (100, 30_000, 64, 30_000), // shift out of range
            (100, 30_000, u32::MAX, 30_000),
            (u64::MAX, u64::MAX, 1, u64::MAX), // multiply overflows
            (1, u64::MAX, 63, 1 << 63),
            (0, 30_000, 40, 0),
            (100, 50, 0, 50), // cap below base: cap wins
        ];
        for &(base, cap, attempt, want) in table {
            assert_eq!(
                Backoff::ceiling(base, cap, attempt),
                want,
                "{base} {cap} {attempt}"
            );
        }
    }

    #[test]
    fn delays_are_jittered_within_bounds_grow_and_cap() {
        for seed in 0..200 {
            let mut b = Backoff::new(100, 30_000, seed);
            for n in 0..30 {
                let (attempt, d) = b.next_delay();
                assert_eq!(attempt, n);
                assert!(
                    d <= Backoff::ceiling(100, 30_000, n),
                    "seed {seed} attempt {n}: {d}"
                );
            }
        }
        // Jitter really spreads: over many seeds, attempt 0 covers 0..=100
        // broadly and later attempts reach far above the first ceiling.
        let firsts: Vec<u64> = (0..1000)
            .map(|s| Backoff::new(100, 30_000, s).next_delay().1)
            .collect();
        assert!(firsts.iter().any(|&d| d < 10));
        assert!(firsts.iter().any(|&d| d > 90));
        let tenth: Vec<u64> = (0..1000)
            .map(|s| {
                let mut b = Backoff::new(100, 30_000, s);
                (0..10).map(|_| b.next_delay().1).last().unwrap_or(0)
            })
            .collect();
        assert!(tenth.iter().any(|&d| d > 20_000), "capped ceiling reached");
        assert!(tenth.iter().all(|&d| d <= 30_000));
        let mean = tenth.iter().sum::<u64>() / tenth.len() as u64;
        assert!(
            (13_000..17_000).contains(&mean),
            "mean {mean}: uniform over 0..=30000"
        );
    }

    #[test]
    fn same_seed_same_delays_and_reset_starts_over() {
        let draw = |seed| {
            let mut b = Backoff::new(100, 30_000, seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
        let mut b = Backoff::new(100, 30_000, 1);
        b.next_delay();
        b.next_delay();
        assert_eq!(b.attempt(), 2);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay().0, 0);
    }

    #[test]
    fn up_to_covers_its_range() {
        let mut r = SplitMix64::new(0);
        assert_eq!(r.up_to(0), 0);
        let mut seen = [false; 4];
        for _ in 0..200 {
            let v = r.up_to(3) as usize;
            seen[v] = true;
        }
        assert_eq!(seen, [true; 4]);
        // The extreme range does not overflow.
        let _ = r.up_to(u64::MAX);
        // Reference values of SplitMix64 seeded with 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }
}
