//! When to dial again: capped exponential backoff with full jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Counts failed attempts since the last connection that proved healthy
/// and turns the count into a delay.
///
/// "Full jitter" draws the delay uniformly from zero to the exponential
/// bound, so devices that lost the same relay at the same moment spread
/// their redials instead of arriving together.
#[derive(Debug)]
pub(super) struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    random: Random,
}

impl Backoff {
    pub(super) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
            random: Random::new(),
        }
    }

    /// The bound the next delay is drawn under: `base × 2^failures`, at
    /// most `cap`.
    pub(super) fn bound(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt, which then counts as one more
    /// failure.
    pub(super) fn next_delay(&mut self) -> Duration {
        let bound = self.bound();
        self.failures = self.failures.saturating_add(1);
        bound.mul_f64(self.random.unit())
    }

    /// Failed attempts since the last healthy connection.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets the failures: a connection proved healthy.
    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Uniform numbers in `[0, 1)` from std's randomly keyed hasher: jitter
/// needs spread between devices, not cryptographic quality, and this keeps
/// `rand` out of the default dependencies.
#[derive(Debug)]
struct Random {
    keys: RandomState,
    counter: u64,
}

impl Random {
    fn new() -> Self {
        Random {
            keys: RandomState::new(),
            counter: 0,
        }
    }

    fn unit(&mut self) -> f64 {
        self.counter += 1;
        let mut hasher = self.keys.build_hasher();
        hasher.write_u64(self.counter);
        // The top 53 bits fill an f64's mantissa exactly.
        (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(30);

    #[test]
    fn bounds_double_from_the_base_up_to_the_cap() {
        let mut backoff = Backoff::new(BASE, CAP);
        let mut bounds = Vec::new();
        for _ in 0..9 {
            bounds.push(backoff.bound().as_millis());
            backoff.next_delay();
        }
        assert_eq!(
            bounds,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.bound(), CAP);
    }

    #[test]
    fn delays_are_spread_under_their_bound() {
        let mut backoff = Backoff::new(BASE, CAP);
        let delays: Vec<Duration> = (0..200)
            .map(|_| {
                backoff.reset();
                backoff.next_delay()
            })
            .collect();
        assert!(delays.iter().all(|d| *d < BASE), "{delays:?}");
        let low = delays.iter().filter(|d| **d < BASE / 2).count();
        assert!((40..160).contains(&low), "{low} of 200 in the lower half");
    }

    #[test]
    fn reset_starts_again_from_the_base() {
        let mut backoff = Backoff::new(BASE, CAP);
        for _ in 0..5 {
            backoff.next_delay();
        }
        assert_eq!(backoff.failures(), 5);
        backoff.reset();
        assert_eq!(backoff.bound(), BASE);
    }
}
