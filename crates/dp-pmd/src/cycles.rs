//! A cheap cycle counter for PMD cycle accounting: the TSC on x86_64
//! (constant-rate on every CPU this project targets), a monotonic
//! nanosecond clock elsewhere.
//!
//! [`CycleClock::now`] is one instruction on x86_64, so a PMD can read it
//! at every iteration. [`CycleClock::hz`] is measured once at start-up
//! against the monotonic clock so cycle figures can be turned into time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Reads the cycle counter.
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a counter; it touches no memory and exists on
        // every x86_64 CPU.
        #[allow(unsafe_code, reason = "RDTSC intrinsic")]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Cycles per second of [`now`], measured once (about 20 ms) on first use.
pub fn hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let (t0, c0) = (Instant::now(), now());
        std::thread::sleep(Duration::from_millis(20));
        let (elapsed, cycles) = (t0.elapsed(), now().wrapping_sub(c0));
        ((cycles as u128 * 1_000_000_000) / elapsed.as_nanos().max(1)) as u64
    })
}

/// Nanoseconds of the monotonic clock since the process's first call.
pub fn monotonic_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
