//! Upcall admission control: keeps a flood of new flows from starving the
//! established traffic of the same PMD.
//!
//! # Why
//! A miss costs a PMD far more than a hit: the translation, the megaflow
//! install, the output of a packet nobody has seen. Measured with
//! `benches/flood.rs`, a burst of 32 new 5-tuples beside a burst of 32
//! established packets took 75-90 % of the PMD's time, leaving the
//! established flow 10-24 % of its throughput. A per-batch upcall budget
//! does not help: every batch of the flood fits in it.
//!
//! # How it works
//! Two mechanisms, both active only while the PMD is *contended*: within
//! the last [`CONTENTION_WINDOW_NS`] an rx batch carrying cache hits
//! (established traffic) came back full, i.e. established packets were
//! queueing because the PMD fell behind. A PMD that drains its queues at
//! each poll starves nobody, so with spare capacity, or with nothing
//! established to protect, upcalls run at full speed and the setup rate
//! is unchanged.
//! 1. **A cycle share for the flood** ([`UpcallAdmission`]): upcalls, and
//!    rx batches that bring nothing but misses, may use at most `share` %
//!    of the PMD's busy cycles. Every rx batch with cache hits credits
//!    its cycles outside upcalls × `share / (100 − share)`; every upcall
//!    is charged the cycles it took (translation and install), and a batch
//!    without hits its other cycles too (refused misses, the admitted
//!    packets' output). A miss arriving with no credit left is refused:
//!    dropped, counted as a failed upcall and under the drop reason
//!    `datapath_drop_upcall_limit` (OVS counts its lost upcalls as
//!    `lost`). The credit is capped at [`CREDIT_CAP_CYCLES`], so a quiet
//!    spell does not bank a long burst.
//! 2. **Back-off of flooding queues** ([`RxqThrottle`]): an rx queue whose
//!    last batch carried no hit and had at least half its packets refused
//!    is skipped for 1, 2, 4 … up to [`MAX_SKIP`] iterations, and after
//!    that until the upcall credit is positive again (so the flood's rx
//!    work, not only its upcalls, stays within the share); its packets
//!    wait, or are dropped by the device when its ring fills, which costs
//!    the PMD nothing (they would have been refused anyway). Any hit or a
//!    mostly admitted batch ends the back-off; the end of contention
//!    refills the credit, so no queue waits forever. A queue shared by the flood
//!    and established traffic carries hits and is never skipped: there
//!    the cycle share alone bounds the flood.
//!
//! # Invariants
//! - With `share == 0` admission control is off: every miss gets an upcall
//!   (within the per-batch budget) and no queue is skipped.
//! - Without contention no miss is refused and no queue is skipped.
//! - Plain integers owned by the PMD: no atomics, no clock read beyond the
//!   cycle counter the PMD already reads.

use dp_core::packet::MAX_BURST;

/// How long after the last full batch with cache hits the PMD counts as
/// contended (ns): a flood held back makes the established queues drain,
/// so the limit must outlive the backlog that triggered it.
pub const CONTENTION_WINDOW_NS: u64 = 10_000_000;
/// The most upcall credit that can build up (cycles; about 0.3 ms at
/// 3 GHz).
pub const CREDIT_CAP_CYCLES: i64 = 1_000_000;
/// The most one upcall or one hit-less batch is charged (cycles; about
/// 60 µs at 3 GHz): a thread preempted in the middle of an upcall is not
/// charged the preemption, so one descheduling on a loaded machine cannot
/// empty the credit and refuse the next legitimate misses.
pub const MAX_CHARGE_CYCLES: u64 = 200_000;
/// The longest a flooding queue is skipped (iterations).
pub const MAX_SKIP: u32 = 16;
/// Default share of a contended PMD's cycles that upcalls may take (%).
pub const DEFAULT_UPCALL_SHARE_PCT: u32 = 10;

/// Packets the cascade resolved from a cache or the classifier so far.
#[inline]
pub fn cache_hits(stats: &dp_core::cascade::LookupStats) -> u64 {
    stats.packets.saturating_sub(stats.misses)
}

/// The upcall cycle share of one PMD; see the module docs.
#[derive(Clone, Debug)]
pub struct UpcallAdmission {
    share_pct: u32,
    credit: i64,
    last_backlog_ns: Option<u64>,
    contended: bool,
    /// Cycles charged to upcalls in the current rx batch.
    batch_upcall_cycles: u64,
    /// Whether a full rx batch with cache hits came in this iteration.
    iteration_backlogged: bool,
}

impl UpcallAdmission {
    /// `share_pct` is clamped to 0..=90; 0 turns admission control off.
    pub fn new(share_pct: u32) -> UpcallAdmission {
        UpcallAdmission {
            share_pct: share_pct.min(90),
            credit: CREDIT_CAP_CYCLES,
            last_backlog_ns: None,
            contended: false,
            batch_upcall_cycles: 0,
            iteration_backlogged: false,
        }
    }

    /// Whether the PMD forwarded established traffic recently (as of the
    /// last iteration's end).
    pub fn contended(&self) -> bool {
        self.contended
    }

    /// Whether a miss may have an upcall now.
    #[inline]
    pub fn admit(&self) -> bool {
        !self.contended || self.credit > 0
    }

    /// Charges one upcall's cycles (translation and install).
    #[inline]
    pub fn charge(&mut self, cycles: u64) {
        self.batch_upcall_cycles += cycles;
        self.spend(cycles);
    }

    #[inline]
    fn spend(&mut self, cycles: u64) {
        if self.contended {
            self.credit -= cycles.min(MAX_CHARGE_CYCLES) as i64;
        }
    }

    /// Closes one rx batch of `received` packets that took `cycles` (its
    /// upcalls included) and hit a cache `hits` times. A batch with hits
    /// carries established traffic: its cycles outside upcalls earn
    /// upcalls their share, and a full one means that traffic is queueing
    /// (contention). A batch with none is all flood (refused misses, the
    /// admitted ones' output): its cycles are charged like upcalls, so
    /// the flood as a whole stays within the share.
    #[inline]
    pub fn end_batch(&mut self, cycles: u64, hits: u64, received: u64) {
        let outside = cycles.saturating_sub(self.batch_upcall_cycles);
        self.batch_upcall_cycles = 0;
        if hits > 0 && received >= MAX_BURST as u64 {
            self.iteration_backlogged = true;
        }
        if !self.contended {
            return;
        }
        if hits > 0 {
            let earned =
                outside.saturating_mul(u64::from(self.share_pct)) / u64::from(100 - self.share_pct);
            self.credit = self
                .credit
                .saturating_add(earned.min(CREDIT_CAP_CYCLES as u64) as i64)
                .min(CREDIT_CAP_CYCLES);
        } else {
            self.spend(outside);
        }
    }

    /// Closes an iteration at `now_ns`: decides whether the PMD is
    /// contended for the next one.
    pub fn end_iteration(&mut self, now_ns: u64) {
        if self.iteration_backlogged {
            self.last_backlog_ns = Some(now_ns);
        }
        self.iteration_backlogged = false;
        self.contended = self.share_pct > 0
            && self
                .last_backlog_ns
                .is_some_and(|t| now_ns.saturating_sub(t) < CONTENTION_WINDOW_NS);
        if !self.contended {
            self.credit = CREDIT_CAP_CYCLES;
        }
    }
}

/// Back-off of one rx queue that only brings refused misses; see the
/// module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxqThrottle {
    skip_left: u32,
    backoff: u32,
}

impl RxqThrottle {
    /// Whether to skip the queue this iteration (counts the skip down).
    /// `upcall_credit` is [`UpcallAdmission::admit`]: after its back-off a
    /// flooding queue also waits until upcalls have credit again, since
    /// its batch would only be refused and charged.
    #[inline]
    pub fn skip(&mut self, upcall_credit: bool) -> bool {
        if self.skip_left > 0 {
            self.skip_left -= 1;
            return true;
        }
        self.backoff > 0 && !upcall_credit
    }

    /// Records how the queue's last batch fared: `received` packets, of
    /// which `hits` hit a cache and `refused` were refused an upcall.
    #[inline]
    pub fn after_batch(&mut self, received: u64, hits: u64, refused: u64) {
        if refused > 0 && hits == 0 && refused * 2 >= received {
            self.backoff = (self.backoff * 2).clamp(1, MAX_SKIP);
            self.skip_left = self.backoff;
        } else {
            self.backoff = 0;
            self.skip_left = 0;
        }
    }

    /// Iterations the queue is still to be skipped.
    pub fn skipping(&self) -> u32 {
        self.skip_left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncontended_pmd_admits_every_upcall() {
        let mut a = UpcallAdmission::new(10);
        for i in 0..100 {
            assert!(a.admit());
            a.charge(10 * CREDIT_CAP_CYCLES as u64);
            a.end_batch(11 * CREDIT_CAP_CYCLES as u64, 0, 32);
            a.end_iteration(i * 1000);
        }
        assert!(!a.contended());
    }

    #[test]
    fn contended_pmd_gives_the_flood_its_share() {
        let mut a = UpcallAdmission::new(20);
        let mut now = 0;
        // Each iteration: an established batch of 8,000 cycles, then a
        // flood batch whose misses cost 1,000 cycles per upcall admitted
        // and 100 per packet otherwise (refused, or the admitted one's
        // output).
        let (mut flood_cycles, mut established_cycles) = (0u64, 0u64);
        for _ in 0..10_000 {
            a.end_batch(8_000, 32, 32);
            established_cycles += 8_000;
            let mut batch = 0;
            for _ in 0..32 {
                if a.admit() {
                    a.charge(1_000);
                    batch += 1_000;
                }
                batch += 100;
            }
            a.end_batch(batch, 0, 32);
            flood_cycles += batch;
            now += 10_000;
            a.end_iteration(now);
        }
        assert!(a.contended());
        // 20 % of the busy cycles, give or take the initial credit and
        // the refused misses charged after the credit ran out.
        let share = flood_cycles as f64 / (flood_cycles + established_cycles) as f64;
        assert!((0.19..0.30).contains(&share), "flood share {share}");
        // Without hits for a while the limit goes.
        a.end_iteration(now + 2 * CONTENTION_WINDOW_NS);
        assert!(!a.contended() && a.admit());
    }

    #[test]
    fn a_preempted_upcall_costs_at_most_the_charge_cap() {
        let mut a = UpcallAdmission::new(10);
        a.end_batch(1_000, 32, 32);
        a.end_iteration(1);
        assert!(a.contended());
        // A 10 ms descheduling inside one upcall.
        a.charge(30_000_000);
        assert!(a.admit(), "one preemption emptied the credit");
    }

    #[test]
    fn share_zero_is_off() {
        let mut a = UpcallAdmission::new(0);
        a.end_batch(100, 32, 32);
        a.end_iteration(1);
        a.charge(u64::MAX / 2);
        assert!(!a.contended() && a.admit());
    }

    #[test]
    fn flooding_queue_backs_off_and_recovers() {
        let mut t = RxqThrottle::default();
        t.after_batch(32, 0, 31);
        assert_eq!(t.skipping(), 1);
        assert!(t.skip(true) && !t.skip(true));
        // Flooding and no credit: it waits for credit.
        assert!(t.skip(false) && t.skip(false) && !t.skip(true));
        t.after_batch(32, 0, 32);
        assert_eq!(t.skipping(), 2);
        for _ in 0..10 {
            t.after_batch(32, 0, 32);
        }
        assert_eq!(t.skipping(), MAX_SKIP);
        // A hit, or a mostly admitted batch, ends it.
        t.after_batch(32, 1, 31);
        assert_eq!(t.skipping(), 0);
        t.after_batch(32, 0, 31);
        t.after_batch(32, 0, 15);
        assert_eq!(t.skipping(), 0);
    }
}
