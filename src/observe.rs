//! Operator-visibility commands that read the PMDs' observation state:
//! `dpif-netdev/pmd-perf-show` (counters, histograms, suspicious
//! iterations), `dpif-netdev/pmd-perf-log-set`, the datapath half of
//! `ofproto/trace --generate`, and the drop-reason lines of
//! `coverage/show`. `src/commands.rs` registers them; the data comes from
//! `dp_pmd::datapath::Datapath`'s observe operations.
#![forbid(unsafe_code)]

use std::fmt::Write;

use dp_core::execute::DropReason;
use dp_core::odp;
use dp_pmd::perf::{PerfLogConfig, format_histograms, format_log};
use dp_pmd::stats::PmdIdentity;

use crate::daemon::Daemon;

/// What the housekeeping tick has already written to the daemon log of
/// the suspicious-iteration logs (OVS writes them to its log file).
#[derive(Debug, Default)]
pub struct PerfLogState {
    /// Whether any PMD logs (otherwise the tick asks nothing).
    enabled: bool,
    /// Per thread: suspicious iterations already reported.
    reported: Vec<(PmdIdentity, u64)>,
}

/// Housekeeping: writes suspicious iterations seen since the last call to
/// the daemon log, one warning each (at most the PMD's log length).
pub fn report_suspicious(d: &mut Daemon) {
    if !d.perf_log.enabled {
        return;
    }
    let Ok(snapshots) = d.datapath.observe_snapshots() else {
        return;
    };
    let hz = dp_pmd::cycles::hz().max(1);
    for (who, snap) in snapshots {
        let p = &snap.perf;
        let seen = match d.perf_log.reported.iter_mut().find(|(w, _)| *w == who) {
            Some((_, n)) => n,
            None => {
                d.perf_log.reported.push((who, 0));
                &mut d.perf_log.reported.last_mut().expect("just pushed").1
            }
        };
        // A clear restarts the count.
        let new = p
            .suspicious_total
            .saturating_sub(*seen)
            .min(p.log.len() as u64) as usize;
        for s in &p.log[p.log.len() - new..] {
            tracing::warn!(
                pmd = ?who,
                iteration = s.iteration,
                us = cycles_to_us(s.cycles, hz),
                packets = s.packets,
                upcalls = s.upcalls,
                "suspicious PMD iteration (over {} us)",
                p.log_config.threshold_us
            );
        }
        *seen = p.suspicious_total;
    }
}

/// `cycles` of a `hz` clock in µs, without overflow: an iteration's count
/// is a TSC difference, which a stalled or migrated thread can make huge.
fn cycles_to_us(cycles: u64, hz: u64) -> u64 {
    u64::try_from(u128::from(cycles) * 1_000_000 / u128::from(hz.max(1))).unwrap_or(u64::MAX)
}

/// `pmd-perf-show [-nh] [-pmd CORE] [DP]`: OVS's layout for the counter
/// block, then the histograms (unless `-nh`) and the suspicious-iteration
/// log.
pub fn pmd_perf_show(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let mut core = None;
    let mut histograms = true;
    let mut rest = args.iter().map(String::as_str).filter(|a| {
        !matches!(
            *a,
            "netdev@ovs-netdev" | "ovs-netdev" | "netdev@oxvs" | "system@ovs-system"
        )
    });
    while let Some(a) = rest.next() {
        match a {
            "-nh" => histograms = false,
            "-pmd" => {
                let c = rest.next().ok_or("-pmd needs a core number")?;
                core = Some(
                    c.parse::<usize>()
                        .map_err(|_| format!("-pmd {c}: not a core number"))?,
                );
            }
            other => return Err(format!("pmd-perf-show: unexpected argument \"{other}\"")),
        }
    }
    let hz = dp_pmd::cycles::hz().max(1);
    let reports = d.datapath.pmd_stats().map_err(|e| e.to_string())?;
    let observed = d.datapath.observe_snapshots().map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (r, (_, o)) in reports.iter().zip(&observed) {
        let PmdIdentity::Pmd { numa_id, core_id } = r.identity else {
            continue;
        };
        if core.is_some_and(|c| c != core_id) {
            continue;
        }
        let s = &r.stats;
        let p = &o.perf;
        let cycles = s.idle_cycles.saturating_add(s.busy_cycles);
        let secs = cycles as f64 / hz as f64;
        let pct = |c: u64| {
            if cycles == 0 {
                0.0
            } else {
                c as f64 * 100.0 / cycles as f64
            }
        };
        let idle_iterations = p.iterations - p.busy_iterations;
        let _ = writeln!(out, "\nMeasurement duration: {secs:.3} s\n");
        let _ = writeln!(out, "pmd thread numa_id {numa_id} core_id {core_id}:\n");
        let _ = writeln!(
            out,
            "  Iterations:        {:>12}  ({:.2} us/it)",
            p.iterations,
            if p.iterations == 0 {
                0.0
            } else {
                secs * 1e6 / p.iterations as f64
            }
        );
        let _ = writeln!(
            out,
            "  - Used TSC cycles: {cycles:>12}  ({:.2} GHz)",
            hz as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "  - idle iterations: {idle_iterations:>12}  ({:5.1} % of used cycles)",
            pct(s.idle_cycles)
        );
        let _ = writeln!(
            out,
            "  - busy iterations: {:>12}  ({:5.1} % of used cycles)",
            p.busy_iterations,
            pct(s.busy_cycles)
        );
        let pkts = s.packets_received.max(1) as f64;
        let _ = writeln!(
            out,
            "  Rx packets:        {:>12}  ({:.0} Kpps, {:.0} cycles/pkt)",
            s.packets_received,
            s.packets_received as f64 / secs.max(1e-9) / 1e3,
            s.busy_cycles as f64 / pkts
        );
        let _ = writeln!(
            out,
            "  Datapath passes:   {:>12}  ({:.2} passes/pkt)",
            s.packets_received + s.recirculations,
            s.passes_per_packet()
        );
        let passes = (s.packets_received + s.recirculations).max(1) as f64;
        let share = |n: u64| n as f64 * 100.0 / passes;
        let l = &s.lookup;
        let _ = writeln!(
            out,
            "  - Simple Match hits:{:>11}  ({:5.1} %)",
            l.simple_match_hits,
            share(l.simple_match_hits)
        );
        let _ = writeln!(
            out,
            "  - EMC hits:        {:>12}  ({:5.1} %)",
            l.emc_hits,
            share(l.emc_hits)
        );
        let _ = writeln!(
            out,
            "  - SMC hits:        {:>12}  ({:5.1} %)",
            l.smc_hits,
            share(l.smc_hits)
        );
        let _ = writeln!(
            out,
            "  - Megaflow hits:   {:>12}  ({:5.1} %, {:.2} subtbl lookups/hit)",
            l.megaflow_hits,
            share(l.megaflow_hits),
            l.avg_subtable_lookups_per_megaflow_hit()
        );
        let _ = writeln!(
            out,
            "  - Upcalls:         {:>12}  ({:5.1} %)",
            s.miss_upcall_ok,
            share(s.miss_upcall_ok)
        );
        let _ = writeln!(
            out,
            "  - Lost upcalls:    {:>12}  ({:5.1} %)",
            s.miss_upcall_failed,
            share(s.miss_upcall_failed)
        );
        let _ = writeln!(
            out,
            "  Tx packets:        {:>12}  ({:.0} Kpps)",
            s.tx_packets,
            s.tx_packets as f64 / secs.max(1e-9) / 1e3
        );
        let _ = writeln!(
            out,
            "  Tx batches:        {:>12}  ({:.2} pkts/batch)",
            s.tx_batches,
            s.packets_per_output_batch()
        );
        if histograms {
            out.push('\n');
            format_histograms(&mut out, p);
        }
        out.push('\n');
        format_log(&mut out, p, hz);
    }
    Ok(out)
}

/// `pmd-perf-log-set [on|off] [-us USEC] [-pmd CORE]`: turns the
/// suspicious-iteration log on or off and sets its threshold.
pub fn pmd_perf_log_set(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let mut config = PerfLogConfig {
        enabled: true,
        ..PerfLogConfig::default()
    };
    let mut core = None;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a {
            "on" => config.enabled = true,
            "off" => config.enabled = false,
            "-us" => {
                let v = it.next().ok_or("-us needs a number of microseconds")?;
                config.threshold_us = match v.parse::<u64>() {
                    Ok(n) if (1..=10_000_000).contains(&n) => n,
                    _ => return Err(format!("-us {v}: expected 1 to 10000000 microseconds")),
                };
            }
            "-pmd" => {
                let c = it.next().ok_or("-pmd needs a core number")?;
                core = Some(
                    c.parse::<usize>()
                        .map_err(|_| format!("-pmd {c}: not a core number"))?,
                );
            }
            other => return Err(format!("pmd-perf-log-set: unexpected argument \"{other}\"")),
        }
    }
    config.threshold_cycles =
        (config.threshold_us as u128 * dp_pmd::cycles::hz() as u128 / 1_000_000) as u64;
    d.datapath.set_perf_log(config, core);
    d.perf_log.enabled |= config.enabled;
    Ok(format!(
        "pmd-perf-log-set: {} (threshold {} us)\n",
        if config.enabled { "on" } else { "off" },
        config.threshold_us
    ))
}

/// The datapath part of `ofproto/trace --generate`: builds the packet
/// from the ODP `flow`, runs it through the PMD that polls its in_port,
/// and reports the cache level it hit, what it caused and the megaflow it
/// matches.
pub fn trace_generate(d: &mut Daemon, flow: &str) -> Result<String, String> {
    let mut names = odp::PortNames::new();
    for (name, p) in &d.ports {
        names.insert(p.port_no, name.clone());
    }
    if !flow.contains('(') {
        return Err(
            "--generate needs the flow in ODP form (in_port(N),eth(...),eth_type(...),...)".into(),
        );
    }
    let attrs = odp::key::parse(flow, Some(&names)).map_err(|e| format!("flow: {e}"))?;
    let (key, _) = odp::flow::key_to_flow(&attrs).map_err(|e| format!("flow: {e}"))?;
    let port = d
        .ports
        .iter()
        .find(|(_, p)| p.port_no == key.in_port)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| {
            format!(
                "flow: in_port({}) is not a port of this datapath",
                key.in_port
            )
        })?;
    let frame =
        odp::packet::build_frame(flow, None, Some(&names)).map_err(|e| format!("flow: {e}"))?;
    let (who, r) = d
        .datapath
        .trace_packet(key.in_port, frame)
        .map_err(|e| e.to_string())?;
    let thread = match who {
        PmdIdentity::Pmd { core_id, .. } => format!("pmd thread on core {core_id}"),
        PmdIdentity::Main => "the main (non-PMD) thread".into(),
    };
    let mut out = String::from("\nDatapath (--generate)\n---------------------\n");
    let _ = writeln!(
        out,
        "Packet generated and received on port {port} ({}), run by {thread}.",
        key.in_port
    );
    let list = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(n, c)| {
                if *c == 1 {
                    n.to_string()
                } else {
                    format!("{n} x{c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let level = match (r.lookups.as_slice(), r.upcalls.as_slice()) {
        ([(level, 1)], []) if *level != "miss" => format!("{level} hit"),
        (l, []) => list(l),
        (l, u) => format!("{} ({})", list(l), list(u)),
    };
    let _ = writeln!(out, "Cache: {level}");
    let _ = writeln!(
        out,
        "Datapath passes: {}, packets transmitted: {}",
        r.passes, r.tx_packets
    );
    if r.drops.is_empty() {
        let _ = writeln!(out, "Drops: none");
    } else {
        let _ = writeln!(out, "Drops: {}", list(&r.drops));
    }
    match &r.flow {
        Some(f) => {
            let stats = odp::dump::FlowStats {
                packets: f.stats.packets,
                bytes: f.stats.bytes,
                used_ms: None,
                tcp_flags: f.stats.tcp_flags,
            };
            let text = odp::dump::format_megaflow(
                Some(f.ufid),
                &f.key,
                &f.mask,
                stats,
                &f.actions,
                0,
                Some(&names),
                false,
            );
            let _ = writeln!(out, "Megaflow: {text}");
        }
        None => {
            let _ = writeln!(out, "Megaflow: none installed for this packet");
        }
    }
    Ok(out)
}

/// Every drop reason with its total over all threads, zeros included,
/// in declaration order (for `coverage/show`).
pub fn drop_reason_totals(reports: &[dp_pmd::datapath::PmdReport]) -> Vec<(&'static str, u64)> {
    DropReason::ALL
        .iter()
        .map(|r| {
            let name = r.name();
            let total = reports
                .iter()
                .flat_map(|rep| rep.drops.iter())
                .filter(|(n, _)| *n == name)
                .map(|(_, c)| c)
                .sum();
            (name, total)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_convert_to_microseconds_without_overflow() {
        assert_eq!(cycles_to_us(2_500, 2_500_000_000), 1);
        assert_eq!(cycles_to_us(0, 0), 0);
        // Past u64::MAX / 10^6 cycles the plain product overflowed.
        assert_eq!(cycles_to_us(u64::MAX, 1_000_000), u64::MAX);
        assert_eq!(cycles_to_us(u64::MAX, 2_000_000_000), u64::MAX / 2_000);
    }
}
