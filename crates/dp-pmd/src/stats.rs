//! PMD counters and their text, in the shape of OVS's
//! `dpif-netdev/pmd-stats-show` so operators' scripts keep working.
//!
//! Each PMD owns its [`PmdStats`] and updates it through `&mut`; a copy is
//! sent back on request, so readers never touch the live counters.

use std::fmt::Write;

use dp_core::cascade::LookupStats;

/// The counters of one PMD thread (cumulative since start or the last
/// clear).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmdStats {
    /// Packets received from rx queues (recirculations not included).
    pub packets_received: u64,
    /// Extra passes through the datapath (recirc, tunnel pop).
    pub recirculations: u64,
    /// Cache and classifier levels (simple match, EMC, SMC, megaflow, miss).
    pub lookup: LookupStats,
    /// Misses whose upcall produced a translation.
    pub miss_upcall_ok: u64,
    /// Misses whose upcall failed, or that exceeded the upcall budget.
    pub miss_upcall_failed: u64,
    /// Upcalls that could not install because the flow limit was reached
    /// (the packet was still executed): OVS's `upcall_flow_limit_hit`.
    pub upcall_flow_limit_hit: u64,
    /// Misses left for a later iteration's budget: counted here, dropped.
    pub upcall_budget_exceeded: u64,
    /// Packets handed to tx queues, and how many `send` calls carried them.
    pub tx_packets: u64,
    pub tx_batches: u64,
    /// Cycles spent in iterations that received nothing / something.
    pub idle_cycles: u64,
    pub busy_cycles: u64,
}

impl PmdStats {
    /// `avg. datapath passes per packet`.
    pub fn passes_per_packet(&self) -> f64 {
        if self.packets_received == 0 {
            0.0
        } else {
            (self.packets_received + self.recirculations) as f64 / self.packets_received as f64
        }
    }

    /// `avg. packets per output batch`.
    pub fn packets_per_output_batch(&self) -> f64 {
        if self.tx_batches == 0 {
            0.0
        } else {
            self.tx_packets as f64 / self.tx_batches as f64
        }
    }

    /// Adds `other` into `self` (for totals over several PMDs).
    pub fn accumulate(&mut self, other: &PmdStats) {
        self.packets_received += other.packets_received;
        self.recirculations += other.recirculations;
        let (a, b) = (&mut self.lookup, &other.lookup);
        a.packets += b.packets;
        a.simple_match_hits += b.simple_match_hits;
        a.emc_hits += b.emc_hits;
        a.smc_hits += b.smc_hits;
        a.megaflow_hits += b.megaflow_hits;
        a.subtable_lookups += b.subtable_lookups;
        a.misses += b.misses;
        self.miss_upcall_ok += other.miss_upcall_ok;
        self.miss_upcall_failed += other.miss_upcall_failed;
        self.upcall_flow_limit_hit += other.upcall_flow_limit_hit;
        self.upcall_budget_exceeded += other.upcall_budget_exceeded;
        self.tx_packets += other.tx_packets;
        self.tx_batches += other.tx_batches;
        self.idle_cycles += other.idle_cycles;
        self.busy_cycles += other.busy_cycles;
    }
}

/// Which thread a stats block belongs to, for the block's header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmdIdentity {
    /// A PMD thread pinned to `core_id`.
    Pmd { numa_id: usize, core_id: usize },
    /// The non-PMD thread that polls kernel-facing ports.
    Main,
}

/// One block of `pmd-stats-show`, byte for byte as OVS prints it.
pub fn format_pmd_stats(out: &mut String, who: PmdIdentity, s: &PmdStats) {
    match who {
        PmdIdentity::Pmd { numa_id, core_id } => {
            let _ = writeln!(out, "pmd thread numa_id {numa_id} core_id {core_id}:");
        }
        PmdIdentity::Main => out.push_str("main thread:\n"),
    }
    let l = &s.lookup;
    let _ = write!(
        out,
        "  packets received: {}\n  packet recirculations: {}\n  avg. datapath passes per packet: {:.2}\n  phwol hits: 0\n  mfex opt hits: 0\n  simple match hits: {}\n  emc hits: {}\n  smc hits: {}\n  megaflow hits: {}\n  avg. subtable lookups per megaflow hit: {:.2}\n  miss with success upcall: {}\n  miss with failed upcall: {}\n  avg. packets per output batch: {:.2}\n",
        s.packets_received,
        s.recirculations,
        s.passes_per_packet(),
        l.simple_match_hits,
        l.emc_hits,
        l.smc_hits,
        l.megaflow_hits,
        l.avg_subtable_lookups_per_megaflow_hit(),
        s.miss_upcall_ok,
        s.miss_upcall_failed,
        s.packets_per_output_batch(),
    );
    let total_cycles = s.idle_cycles + s.busy_cycles;
    if total_cycles == 0 {
        return;
    }
    let pct = |c: u64| c as f64 / total_cycles as f64 * 100.0;
    let _ = write!(
        out,
        "  idle cycles: {} ({:.2}%)\n  processing cycles: {} ({:.2}%)\n",
        s.idle_cycles,
        pct(s.idle_cycles),
        s.busy_cycles,
        pct(s.busy_cycles)
    );
    if s.packets_received == 0 {
        return;
    }
    let _ = write!(
        out,
        "  avg cycles per packet: {:.2} ({}/{})\n  avg processing cycles per packet: {:.2} ({}/{})\n",
        total_cycles as f64 / s.packets_received as f64,
        total_cycles,
        s.packets_received,
        s.busy_cycles as f64 / s.packets_received as f64,
        s.busy_cycles,
        s.packets_received
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_ovs_pmd_stats_show() {
        let mut s = PmdStats {
            packets_received: 20,
            miss_upcall_ok: 1,
            tx_packets: 20,
            tx_batches: 20,
            ..PmdStats::default()
        };
        s.lookup.emc_hits = 19;
        s.lookup.misses = 1;
        let mut out = String::new();
        format_pmd_stats(
            &mut out,
            PmdIdentity::Pmd {
                numa_id: 0,
                core_id: 1,
            },
            &s,
        );
        assert_eq!(
            out,
            "pmd thread numa_id 0 core_id 1:\n  packets received: 20\n  packet recirculations: 0\n  avg. datapath passes per packet: 1.00\n  phwol hits: 0\n  mfex opt hits: 0\n  simple match hits: 0\n  emc hits: 19\n  smc hits: 0\n  megaflow hits: 0\n  avg. subtable lookups per megaflow hit: 0.00\n  miss with success upcall: 1\n  miss with failed upcall: 0\n  avg. packets per output batch: 1.00\n"
        );
        s.idle_cycles = 300;
        s.busy_cycles = 100;
        let mut out = String::new();
        format_pmd_stats(&mut out, PmdIdentity::Main, &s);
        assert!(out.starts_with("main thread:\n"));
        assert!(out.ends_with("  idle cycles: 300 (75.00%)\n  processing cycles: 100 (25.00%)\n  avg cycles per packet: 20.00 (400/20)\n  avg processing cycles per packet: 5.00 (100/20)\n"), "{out}");
    }
}
