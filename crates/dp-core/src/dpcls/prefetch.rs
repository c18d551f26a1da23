//! Software prefetch: the one `unsafe` of the lookup code.
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

/// Asks for the cache line holding the start of `item`.
#[inline(always)]
pub(crate) fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is in every x86_64 target's baseline, so the intrinsic's
    // target feature is present; a prefetch is a hint that never faults
    // and has no architectural effect, and the address comes from a live
    // reference anyway.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(item).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}
