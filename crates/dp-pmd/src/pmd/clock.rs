//! The PMD thread's clock: nanoseconds on the monotonic clock's scale,
//! read from the cycle counter.
//!
//! # Why
//! A PMD passes the time to every iteration (flow `used` times, transmit
//! flush deadlines, upcall admission). Reading the monotonic clock costs a
//! `clock_gettime` per iteration, a large share of an idle or lightly
//! loaded iteration (perf profiles showed 6–24 %). OVS keeps `pmd->ctx.now`
//! the same way: from the TSC, refreshed from the system clock now and
//! then.
//!
//! # How
//! [`PmdClock::now_ns`] reads the cycle counter ([`cycles::now`], RDTSC on
//! x86_64) and converts the cycles since the last synchronisation point
//! with the measured rate ([`cycles::hz`]). Once [`RESYNC_NS`] have
//! passed by that count, it takes a new synchronisation point from
//! [`cycles::monotonic_ns`].
//!
//! # Invariants
//! - Readings never decrease.
//! - Readings are on [`cycles::monotonic_ns`]'s scale (same epoch), off by
//!   at most the rate's error over one resynchronisation period (a
//!   fraction of a millisecond), so they compare with other threads'
//!   readings of that clock (the revalidator's idle timeouts).

use crate::cycles;

/// Longest stretch, by the cycle counter, between two readings of the
/// monotonic clock.
pub const RESYNC_NS: u64 = 1_000_000;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct PmdClock {
    /// Monotonic time and cycle count at the last synchronisation.
    base_ns: u64,
    base_cycles: u64,
    /// Nanoseconds per cycle, 32.32 fixed point.
    ns_per_cycle: u64,
    /// Cycles after which to synchronise again.
    resync_cycles: u64,
    last_ns: u64,
}

impl Default for PmdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl PmdClock {
    /// A clock synchronised now (measures the cycle rate on the process's
    /// first use, ~20 ms).
    pub fn new() -> PmdClock {
        let hz = cycles::hz().max(1);
        let ns_per_cycle = ((1_000_000_000u128 << 32) / u128::from(hz)).min(u128::from(u64::MAX));
        let mut clock = PmdClock {
            base_ns: 0,
            base_cycles: 0,
            ns_per_cycle: ns_per_cycle as u64,
            resync_cycles: (u128::from(hz) * u128::from(RESYNC_NS) / 1_000_000_000).max(1) as u64,
            last_ns: 0,
        };
        clock.resync();
        clock
    }

    fn resync(&mut self) {
        self.base_cycles = cycles::now();
        self.base_ns = cycles::monotonic_ns();
    }

    /// The current time (ns, [`cycles::monotonic_ns`]'s scale).
    #[inline]
    pub fn now_ns(&mut self) -> u64 {
        let elapsed = cycles::now().wrapping_sub(self.base_cycles);
        let ns = if elapsed >= self.resync_cycles {
            self.resync();
            self.base_ns
        } else {
            // elapsed < resync_cycles (~1 ms of cycles): the product fits.
            self.base_ns + ((u128::from(elapsed) * u128::from(self.ns_per_cycle)) >> 32) as u64
        };
        self.last_ns = self.last_ns.max(ns);
        self.last_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn never_goes_back() {
        let mut clock = PmdClock::new();
        let mut last = 0;
        for i in 0..200_000u32 {
            let now = clock.now_ns();
            assert!(now >= last, "reading {i}: {now} after {last}");
            last = now;
        }
    }

    #[test]
    fn tracks_the_monotonic_clock() {
        // Each reading is bracketed by two monotonic readings, so
        // preemption widens the bracket instead of failing the test; the
        // slack covers the rate's error over one resync period.
        const SLACK_NS: u64 = 2 * RESYNC_NS;
        let mut clock = PmdClock::new();
        for pause_ms in [0, 1, 3, 20] {
            std::thread::sleep(Duration::from_millis(pause_ms));
            for _ in 0..1000 {
                let before = cycles::monotonic_ns();
                let now = clock.now_ns();
                let after = cycles::monotonic_ns();
                assert!(
                    now + SLACK_NS >= before && now <= after + SLACK_NS,
                    "after {pause_ms} ms: {now} not within {before}..{after} (± {SLACK_NS})"
                );
            }
        }
    }
}
