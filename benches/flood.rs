//! Flow-setup flood: how much of an established flow's throughput one PMD
//! keeps while a flood of new 5-tuples arrives on another port.
//!
//! A `Pmd` is stepped on this thread over two `dummy-pmd` ports. Each
//! iteration, port 1 holds a full burst (32) of the established flow and,
//! in the flood phase, port 3 holds a full burst of never-seen 5-tuples,
//! each of which misses every cache and goes to the upcall handler
//! (exact 5-tuple megaflows, so each would install a flow) until the
//! per-iteration upcall budget and the flow limit refuse them. Only
//! `poll_once` is timed: filling the queues stands for the NIC.
//!
//! Prints, for each of 3 runs, established packets per second of PMD time
//! alone and under the flood, and their ratio, with the PMD's upcall
//! admission control off (`upcall share 0`, the PMD before admission
//! control existed) and on (the datapath's default share); then the
//! median ratio of each. Under the flood it also reports what admission
//! control did: upcalls served, misses refused (`datapath_drop_upcall_
//! limit`) and flood frames the PMD never polled (left to the device,
//! which drops them when its ring is full).
//!
//! `cargo bench --bench flood` (FLOOD_ITERS=N sets iterations per phase;
//! FLOOD_BUDGET=N the upcalls a PMD serves per batch, default the
//! datapath's; FLOOD_SHARE=P the admission share to compare with 0,
//! default the datapath's).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::netdev::Netdev;
use dp_core::packet::MAX_BURST;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use testbed::datapath::{Megaflows, five_tuple_mask, udp_frame};

/// Exact 5-tuple megaflows: port 1 → 2, anything else → 4.
fn five_tuple() -> Megaflows {
    Megaflows::new(five_tuple_mask(), |key, _| {
        vec![Action::Output(if key.in_port == 1 { 2 } else { 4 })]
    })
}

/// A 60-byte UDP frame from `src`, source port `sport`, to port 53.
fn udp(src: [u8; 4], sport: u16) -> Vec<u8> {
    udp_frame(src, sport, 53)
}

/// What one phase measured.
struct Phase {
    /// Established packets per second of `poll_once` time.
    established_pps: f64,
    upcalls: u64,
    refused: u64,
    /// Flood frames the flood port's queue could not take (the PMD was
    /// not polling it).
    unpolled: u64,
}

/// Runs `iters` iterations, with or without the flood.
fn phase(iters: u64, with_flood: bool, upcall_budget: usize, upcall_share_pct: u32) -> Phase {
    // The default flow limit: the flood is refused by the upcall budget
    // and, once 200,000 flows are in, by the limit.
    let mut pmd = Pmd::new(
        PmdConfig {
            upcall_budget,
            upcall_share_pct,
            ..PmdConfig::default()
        },
        Arc::new(five_tuple()),
        Arc::new(AtomicUsize::new(dp_pmd::pmd::DEFAULT_FLOW_LIMIT)),
    );
    let ports: Vec<Arc<DummyNetdev>> = (1..=4)
        .map(|i| Arc::new(DummyNetdev::new(&format!("p{i}"), DummyConfig::default())))
        .collect();
    for (i, port) in ports.iter().enumerate() {
        let no = i as u32 + 1;
        pmd.add_rxq(PolledRxq::new(
            no,
            port.name(),
            0,
            port.open_rxq(0).unwrap(),
        ));
        pmd.add_txq(no, port.open_txq(0).unwrap());
    }
    let established = udp([10, 0, 0, 1], 1000);
    let mut spent = Duration::ZERO;
    let mut n_new = 0u32;
    let mut unpolled = 0;
    let mut now_ns = 1_000_000;
    for _ in 0..iters {
        for _ in 0..MAX_BURST {
            ports[0].receive(0, &established).unwrap();
            if with_flood {
                n_new = n_new.wrapping_add(1);
                let b = n_new.to_be_bytes();
                // Refused when the PMD skips the queue and its ring is
                // full: a NIC drops those frames without PMD cycles.
                if ports[2]
                    .receive(0, &udp([172, b[1], b[2], b[3]], 9))
                    .is_err()
                {
                    unpolled += 1;
                }
            }
        }
        now_ns += 10_000;
        let start = Instant::now();
        pmd.poll_once(now_ns);
        spent += start.elapsed();
        // Keep the capture from growing: the sink's copies are not the
        // datapath's cost.
        if now_ns % 1_000_000 == 0 {
            let _ = ports[1].take_sent();
            let _ = ports[3].take_sent();
        }
    }
    let delivered = ports[1].stats().tx_packets;
    assert_eq!(
        delivered,
        iters * MAX_BURST as u64,
        "established packets lost"
    );
    let stats = pmd.stats();
    let refused = pmd
        .drop_counts()
        .iter()
        .find(|(name, _)| *name == "datapath_drop_upcall_limit")
        .map_or(0, |(_, n)| *n);
    Phase {
        established_pps: delivered as f64 / spent.as_secs_f64(),
        upcalls: stats.miss_upcall_ok,
        refused,
        unpolled,
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent:
    // keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iters: u64 = std::env::var("FLOOD_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 200 } else { 20_000 });
    let budget: usize = std::env::var("FLOOD_BUDGET")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(dp_pmd::pmd::DEFAULT_UPCALL_BUDGET);
    let share: u32 = std::env::var("FLOOD_SHARE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(dp_pmd::pmd::admission::DEFAULT_UPCALL_SHARE_PCT);
    let mut ratios = [Vec::new(), Vec::new()];
    for run in 1..=3 {
        for (k, share) in [0, share].into_iter().enumerate() {
            let alone = phase(iters, false, budget, share);
            let flooded = phase(iters, true, budget, share);
            let ratio = flooded.established_pps / alone.established_pps;
            println!(
                "run {run}, upcall share {share:>2}%: established alone {:.2} Mpps, under flood {:.2} Mpps, \
                 ratio {:.1}%; flood: {} upcalls served, {} refused, {} frames left unpolled",
                alone.established_pps / 1e6,
                flooded.established_pps / 1e6,
                ratio * 100.0,
                flooded.upcalls,
                flooded.refused,
                flooded.unpolled,
            );
            ratios[k].push(ratio);
        }
    }
    for r in &mut ratios {
        r.sort_by(f64::total_cmp);
    }
    println!(
        "flood: median established-flow throughput ratio {:.1}% without admission control, \
         {:.1}% with upcall share {share}% (target >= 80%), upcall budget {budget}, {iters} iterations per phase",
        ratios[0][1] * 100.0,
        ratios[1][1] * 100.0
    );
}
