//! The EMC bypass of one PMD thread: stop probing an exact-match cache
//! that almost never hits, and notice when it would hit again.
//!
//! # Why
//! With more live microflows than EMC entries (100k UDP 5-tuples against
//! 8192 entries) the EMC hits a few packets in a hundred, and every
//! other packet pays for the probe anyway: two prefetched entries that
//! miss L2 (the EMC is 2.8 MB) and ~50 instructions, plus ~17 for the
//! prefetches, before the level that does serve it (SMC or classifier).
//! A hit saves less than that costs whenever the hit rate is low: the
//! classifier hit it replaces is ~120 instructions on one hot subtable.
//! OVS has only the static `emc-insert-inv-prob` (0 turns the EMC off
//! for good); this measures, per PMD, as the auto SMC does.
//!
//! # How
//! The gate counts, over the batches whose EMC it probed, the EMC hits
//! and the hits of every level below it (a missed upcall does not count:
//! no cache could have served it, so flow setup never closes the gate).
//! After [`WINDOW`] such hits it decides: a hit rate below
//! 1/[`BYPASS_BELOW`] closes it (bypass); while bypassed, one batch in
//! [`SAMPLE_EVERY`] is still probed, and a sampled hit rate of
//! 1/[`RESUME_AT`] or more opens it again (the gap between the two keeps
//! it from flapping). A batch that skips the EMC still fills it at the
//! configured rate, by a countdown instead of the insert draw (which
//! alone costs ~17 instructions a hit; see `Cascade::offer_to_emc`), so
//! the samples measure what probing would hit: a gate closed while the
//! EMC was cold (a start, a new set of flows) opens again once the EMC
//! has filled.
//!
//! # Invariants
//! - Only where a batch probes the EMC changes: a bypassed packet is
//!   looked up by the lower levels, which give the same flow (every level
//!   verifies), so dispositions differ only in their level.
//! - Fewer than [`WINDOW`] cacheable hits decide nothing: a PMD that has
//!   seen little traffic always probes.

/// Hits (all levels, probed batches only) per decision.
pub const WINDOW: u32 = 4096;
/// The gate closes when fewer than one hit in this many is an EMC hit.
pub const BYPASS_BELOW: u32 = 4;
/// A closed gate opens when one sampled hit in this many (or more) is an
/// EMC hit.
pub const RESUME_AT: u32 = 2;
/// While closed, one batch in this many is probed as a sample.
pub const SAMPLE_EVERY: u32 = 16;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmcGate {
    bypassed: bool,
    /// Batches to skip before the next sample, while bypassed.
    skip: u32,
    /// Since the last decision, over probed batches: hits of any level,
    /// and EMC hits.
    hits: u32,
    emc_hits: u32,
}

impl EmcGate {
    /// Whether the EMC is bypassed now.
    #[inline]
    pub fn bypassed(&self) -> bool {
        self.bypassed
    }

    /// Whether this batch probes the EMC: always while open, one batch in
    /// [`SAMPLE_EVERY`] while bypassed.
    #[inline(always)]
    pub fn probe_this_batch(&mut self) -> bool {
        if !self.bypassed {
            return true;
        }
        if self.skip == 0 {
            self.skip = SAMPLE_EVERY - 1;
            true
        } else {
            self.skip -= 1;
            false
        }
    }

    /// Counts a probed batch: `emc_hits` EMC hits and `lower_hits` hits of
    /// the levels below it; decides once [`WINDOW`] hits are in.
    #[inline]
    pub fn record(&mut self, emc_hits: u32, lower_hits: u32) {
        self.hits += emc_hits + lower_hits;
        self.emc_hits += emc_hits;
        if self.hits >= WINDOW {
            self.decide();
        }
    }

    #[cold]
    fn decide(&mut self) {
        // u64: WINDOW plus a batch, times a small constant.
        let (hits, emc) = (u64::from(self.hits), u64::from(self.emc_hits));
        if self.bypassed {
            if emc * u64::from(RESUME_AT) >= hits {
                self.bypassed = false;
            }
        } else if emc * u64::from(BYPASS_BELOW) < hits {
            self.bypassed = true;
            self.skip = SAMPLE_EVERY - 1;
        }
        self.hits = 0;
        self.emc_hits = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `batches` batches of 32 hits, `emc` of them EMC hits, for the
    /// probed ones; returns how many were probed.
    fn feed(gate: &mut EmcGate, batches: u32, emc: u32) -> u32 {
        let mut probed = 0;
        for _ in 0..batches {
            if gate.probe_this_batch() {
                probed += 1;
                gate.record(emc, 32 - emc);
            }
        }
        probed
    }

    #[test]
    fn closes_on_a_low_hit_rate_samples_and_reopens() {
        let mut gate = EmcGate::default();
        // 2 EMC hits in 32 (6 %): one window and it closes.
        assert_eq!(feed(&mut gate, WINDOW / 32, 2), WINDOW / 32);
        assert!(gate.bypassed());
        // Closed: one batch in SAMPLE_EVERY probed, no more.
        let probed = feed(&mut gate, 64 * SAMPLE_EVERY, 2);
        assert_eq!(probed, 64);
        assert!(gate.bypassed());
        // The traffic turns cacheable: the samples reopen it within one
        // window of sampled hits.
        feed(&mut gate, WINDOW / 32 * SAMPLE_EVERY, 30);
        assert!(!gate.bypassed());
        assert_eq!(feed(&mut gate, 10, 30), 10);
    }

    #[test]
    fn stays_open_on_a_useful_hit_rate_and_between_thresholds() {
        let mut gate = EmcGate::default();
        // 12 in 32 (37 %): above the closing threshold.
        feed(&mut gate, 4 * WINDOW / 32, 12);
        assert!(!gate.bypassed());
        // Just below one in four closes it.
        feed(&mut gate, WINDOW / 32, 7);
        assert!(gate.bypassed());
        // 12 in 32 is under the reopening threshold: stays closed.
        feed(&mut gate, 4 * WINDOW / 32 * SAMPLE_EVERY, 12);
        assert!(gate.bypassed());
    }

    #[test]
    fn little_traffic_decides_nothing() {
        let mut gate = EmcGate::default();
        gate.record(0, WINDOW - 1);
        assert!(!gate.bypassed());
        gate.record(0, 1);
        assert!(gate.bypassed());
    }
}
