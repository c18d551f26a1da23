//! Software prefetch, one of the two `unsafe` spots of the lookup code (the
//! other is the huge-page allocation of `large.rs`).
//!
//! A batch lookup computes every packet's bucket (or rule) address first
//! and asks for all those cache lines before it reads any, so the misses
//! of the 32 packets of a batch overlap instead of being served one after
//! the other (OVS prefetches the same way in `dpcls_lookup`). A plain
//! load could not do this: it holds a reorder-buffer entry until its data
//! arrives, which caps how many misses are in flight.
//!
//! `_mm_prefetch` is a hint: it never faults, never changes memory and
//! never makes a later read return anything else. It is `unsafe` only
//! because calling any `#[target_feature]` function is; the feature it
//! needs (SSE) is part of the x86_64 baseline, so it is always there.
//! Other architectures get a no-op.

/// Asks for the cache line holding `addr`, which need not point into any
/// live object: a prefetch never faults and never reads on the program's
/// behalf, so callers skip the bounds check a reference would cost.
#[inline(always)]
pub fn prefetch_addr<T>(addr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is in every x86_64 target's baseline, so the intrinsic's
    // target feature is present; a prefetch is a hint that never faults
    // (not even for an unmapped address) and has no architectural effect,
    // so no property of `addr` is relied on.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
