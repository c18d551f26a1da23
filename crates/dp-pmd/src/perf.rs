//! PMD performance history: per-iteration histograms and a log of
//! suspicious iterations (OVS's `pmd-perf-show` and `pmd-perf-log-set`).
//!
//! # How it works
//! At the end of every iteration the PMD calls [`PmdPerf::end_iteration`]
//! with the cycles the iteration took, the packets it received and its
//! running upcall count. Each value lands in a power-of-two [`Histogram`]
//! bucket (bucket 0 holds 0, bucket `b` holds `[2^(b-1), 2^b)`), which is
//! one `leading_zeros` and one increment: no clock read, no allocation.
//! When the suspicious-iteration log is on, an iteration longer than its
//! threshold (in cycles, converted from µs by the control thread) is
//! copied into a fixed ring of the last [`SUSPICIOUS_LOG_LEN`] such
//! iterations.
//!
//! # Thread story
//! A [`PmdPerf`] belongs to one PMD and is written through `&mut`; the
//! control thread gets a copy ([`PerfSnapshot`]) by message and changes
//! the log settings by message, so nothing here is shared.
#![forbid(unsafe_code)]

use std::fmt::Write;

/// Buckets per histogram: enough for 2^31 cycles (about a second) per
/// iteration.
pub const HIST_BUCKETS: usize = 32;
/// Suspicious iterations kept (the oldest is overwritten).
pub const SUSPICIOUS_LOG_LEN: usize = 32;
/// Default threshold of the suspicious-iteration log (OVS's `-us`).
pub const DEFAULT_SUSPICIOUS_US: u64 = 250;

/// A power-of-two histogram of per-iteration values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; HIST_BUCKETS],
    /// Samples and their sum, for the average.
    pub samples: u64,
    pub sum: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; HIST_BUCKETS],
            samples: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// The bucket `value` falls in.
    #[inline]
    pub fn bucket_of(value: u64) -> usize {
        ((u64::BITS - value.leading_zeros()) as usize).min(HIST_BUCKETS - 1)
    }

    /// The smallest value of bucket `b`.
    pub fn bucket_floor(b: usize) -> u64 {
        if b == 0 { 0 } else { 1u64 << (b - 1) }
    }

    #[inline]
    pub fn add(&mut self, value: u64) {
        self.buckets[Histogram::bucket_of(value)] += 1;
        self.samples += 1;
        self.sum = self.sum.wrapping_add(value);
        self.max = self.max.max(value);
    }

    pub fn average(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.sum as f64 / self.samples as f64
        }
    }

    /// Samples at or above `floor` (rounded down to its bucket).
    pub fn count_at_least(&self, floor: u64) -> u64 {
        self.buckets[Histogram::bucket_of(floor)..].iter().sum()
    }
}

/// One iteration that took longer than the log threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuspiciousIteration {
    /// The iteration's number since start (or the last clear).
    pub iteration: u64,
    /// Datapath clock at the iteration's start (ns).
    pub at_ns: u64,
    pub cycles: u64,
    pub packets: u64,
    pub upcalls: u64,
}

/// Settings of the suspicious-iteration log (`pmd-perf-log-set`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfLogConfig {
    pub enabled: bool,
    /// Threshold in µs (as the operator gave it).
    pub threshold_us: u64,
    /// The same threshold in cycles of [`crate::cycles::now`].
    pub threshold_cycles: u64,
}

impl Default for PerfLogConfig {
    fn default() -> Self {
        PerfLogConfig {
            enabled: false,
            threshold_us: DEFAULT_SUSPICIOUS_US,
            threshold_cycles: u64::MAX,
        }
    }
}

/// One PMD's performance history; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct PmdPerf {
    pub iterations: u64,
    pub busy_iterations: u64,
    pub cycles_per_iteration: Histogram,
    pub packets_per_iteration: Histogram,
    pub upcalls_per_iteration: Histogram,
    /// Busy iterations only: cycles divided by packets.
    pub cycles_per_packet: Histogram,
    log_config: PerfLogConfig,
    log: [SuspiciousIteration; SUSPICIOUS_LOG_LEN],
    /// Suspicious iterations seen (the log keeps the last few).
    suspicious_total: u64,
    /// The PMD's upcall counter at the end of the previous iteration.
    last_upcalls: u64,
}

impl PmdPerf {
    /// Records one iteration. `upcalls_total` is the PMD's running count of
    /// upcalls (its difference from the previous call is this iteration's).
    ///
    /// An idle iteration (no packets) only counts and records its cycles:
    /// its zero in the packets and upcalls histograms is added when a
    /// snapshot is taken, so a busy-polling PMD's empty polls stay cheap.
    #[inline]
    pub fn end_iteration(&mut self, cycles: u64, packets: usize, upcalls_total: u64, at_ns: u64) {
        let upcalls = upcalls_total.saturating_sub(self.last_upcalls);
        self.last_upcalls = upcalls_total;
        self.iterations += 1;
        self.cycles_per_iteration.add(cycles);
        if packets > 0 {
            self.busy_iterations += 1;
            self.packets_per_iteration.add(packets as u64);
            self.upcalls_per_iteration.add(upcalls);
            self.cycles_per_packet.add(cycles / packets as u64);
        }
        if self.log_config.enabled && cycles > self.log_config.threshold_cycles {
            self.log_suspicious(cycles, packets as u64, upcalls, at_ns);
        }
    }

    #[cold]
    fn log_suspicious(&mut self, cycles: u64, packets: u64, upcalls: u64, at_ns: u64) {
        let slot = (self.suspicious_total % SUSPICIOUS_LOG_LEN as u64) as usize;
        self.log[slot] = SuspiciousIteration {
            iteration: self.iterations,
            at_ns,
            cycles,
            packets,
            upcalls,
        };
        self.suspicious_total += 1;
    }

    /// Changes the log settings (keeps what was logged).
    pub fn set_log(&mut self, config: PerfLogConfig) {
        self.log_config = config;
    }

    /// Forgets the history (`pmd-stats-clear`); the log settings stay.
    pub fn clear(&mut self) {
        *self = PmdPerf {
            log_config: self.log_config,
            last_upcalls: self.last_upcalls,
            ..PmdPerf::default()
        };
    }

    /// Resets the upcall baseline after the PMD's counters were cleared.
    pub fn rebase_upcalls(&mut self, upcalls_total: u64) {
        self.last_upcalls = upcalls_total;
    }

    /// A copy for the control thread.
    pub fn snapshot(&self) -> PerfSnapshot {
        let n = self.suspicious_total.min(SUSPICIOUS_LOG_LEN as u64) as usize;
        let first = self.suspicious_total as usize - n;
        let log = (first..first + n)
            .map(|i| self.log[i % SUSPICIOUS_LOG_LEN])
            .collect();
        // Idle iterations: zero packets, zero upcalls.
        let idle = self.iterations - self.busy_iterations;
        let with_idle = |h: &Histogram| {
            let mut h = *h;
            h.buckets[0] += idle;
            h.samples += idle;
            h
        };
        PerfSnapshot {
            iterations: self.iterations,
            busy_iterations: self.busy_iterations,
            cycles_per_iteration: self.cycles_per_iteration,
            packets_per_iteration: with_idle(&self.packets_per_iteration),
            upcalls_per_iteration: with_idle(&self.upcalls_per_iteration),
            cycles_per_packet: self.cycles_per_packet,
            log_config: self.log_config,
            suspicious_total: self.suspicious_total,
            log,
        }
    }
}

/// What `pmd-perf-show` reads: a PMD's history at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfSnapshot {
    pub iterations: u64,
    pub busy_iterations: u64,
    pub cycles_per_iteration: Histogram,
    pub packets_per_iteration: Histogram,
    pub upcalls_per_iteration: Histogram,
    pub cycles_per_packet: Histogram,
    pub log_config: PerfLogConfig,
    pub suspicious_total: u64,
    /// Oldest first.
    pub log: Vec<SuspiciousIteration>,
}

/// The histogram table of `pmd-perf-show`: one row per bucket that any
/// column uses, each column `floor count`, then the averages.
pub fn format_histograms(out: &mut String, p: &PerfSnapshot) {
    let columns: [(&str, &Histogram); 4] = [
        ("cycles/it", &p.cycles_per_iteration),
        ("packets/it", &p.packets_per_iteration),
        ("upcalls/it", &p.upcalls_per_iteration),
        ("cycles/pkt", &p.cycles_per_packet),
    ];
    out.push_str("  Histograms\n  ");
    for (name, _) in &columns {
        let _ = write!(out, "  {name:<24}");
    }
    out.push('\n');
    let last = columns
        .iter()
        .filter_map(|(_, h)| h.buckets.iter().rposition(|&c| c > 0))
        .max();
    for b in 0..=last.unwrap_or(0) {
        out.push_str("  ");
        for (_, h) in &columns {
            let _ = write!(
                out,
                "  >= {:<10} {:>10}",
                Histogram::bucket_floor(b),
                h.buckets[b]
            );
        }
        out.push('\n');
    }
    out.push_str("  ");
    for (_, h) in &columns {
        let _ = write!(out, "  avg {:<9.1} max {:>9}", h.average(), h.max);
    }
    out.push('\n');
}

/// The suspicious-iteration log of `pmd-perf-show`; `hz` converts cycles
/// to µs.
pub fn format_log(out: &mut String, p: &PerfSnapshot, hz: u64) {
    let c = &p.log_config;
    let _ = writeln!(
        out,
        "  Suspicious iterations (> {} us): logging {}, {} seen, last {} shown",
        c.threshold_us,
        if c.enabled { "on" } else { "off" },
        p.suspicious_total,
        p.log.len()
    );
    for s in &p.log {
        let us = s.cycles as f64 * 1e6 / hz.max(1) as f64;
        let _ = writeln!(
            out,
            "    iteration {:>12}  at {:>10.3} ms  {:>10.1} us  {:>10} cycles  {:>4} pkts  {:>4} upcalls",
            s.iteration,
            s.at_ns as f64 / 1e6,
            us,
            s.cycles,
            s.packets,
            s.upcalls
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(Histogram::bucket_of(0), 0);
        assert_eq!(Histogram::bucket_of(1), 1);
        assert_eq!(Histogram::bucket_of(2), 2);
        assert_eq!(Histogram::bucket_of(3), 2);
        assert_eq!(Histogram::bucket_of(4), 3);
        assert_eq!(Histogram::bucket_of(u64::MAX), HIST_BUCKETS - 1);
        for b in 1..HIST_BUCKETS - 1 {
            let floor = Histogram::bucket_floor(b);
            assert_eq!(Histogram::bucket_of(floor), b);
            assert_eq!(Histogram::bucket_of(floor * 2 - 1), b);
        }
    }

    #[test]
    fn iterations_fill_histograms_and_the_log() {
        let mut p = PmdPerf::default();
        p.end_iteration(100, 0, 0, 0);
        p.end_iteration(5000, 32, 3, 1_000);
        let s = p.snapshot();
        assert_eq!((s.iterations, s.busy_iterations), (2, 1));
        assert_eq!(s.packets_per_iteration.buckets[0], 1);
        assert_eq!(s.packets_per_iteration.buckets[Histogram::bucket_of(32)], 1);
        assert_eq!(s.upcalls_per_iteration.buckets[Histogram::bucket_of(3)], 1);
        assert_eq!(s.cycles_per_packet.samples, 1);
        assert_eq!(s.cycles_per_packet.sum, 5000 / 32);
        assert!(s.log.is_empty(), "the log is off by default");

        p.set_log(PerfLogConfig {
            enabled: true,
            threshold_us: 1,
            threshold_cycles: 1000,
        });
        for i in 0..(SUSPICIOUS_LOG_LEN as u64 + 5) {
            p.end_iteration(999, 1, 3, i);
            p.end_iteration(2000 + i, 1, 3, i);
        }
        let s = p.snapshot();
        assert_eq!(s.suspicious_total, SUSPICIOUS_LOG_LEN as u64 + 5);
        assert_eq!(s.log.len(), SUSPICIOUS_LOG_LEN);
        assert_eq!(s.log[0].cycles, 2005, "oldest kept first");
        assert_eq!(
            s.log.last().unwrap().cycles,
            2000 + SUSPICIOUS_LOG_LEN as u64 + 4
        );

        p.clear();
        let s = p.snapshot();
        assert_eq!(s.iterations, 0);
        assert!(s.log_config.enabled, "clearing keeps the settings");
        let mut text = String::new();
        format_histograms(&mut text, &s);
        format_log(&mut text, &s, 1_000_000_000);
        assert!(
            text.contains("cycles/it") && text.contains("logging"),
            "{text}"
        );
    }
}
