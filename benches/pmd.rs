//! One PMD, pinned, forwarding 64-byte UDP from a `pcap` port replaying an
//! in-memory capture forever to a `pcap` port that discards: Mpps and TSC
//! cycles per packet for 1 flow (EMC), 10k and 100k flows (EMC thrash →
//! megaflow classifier), and the new-flow setup rate through a trivial
//! upcall handler.
//!
//! Run: `cargo bench --bench pmd` (`PMD_BENCH_SECONDS=N` per case, default
//! 3). The PMD runs on the bench's own thread, stepped with `poll_once`, so
//! the figures are the datapath's, without control-thread noise.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use dp_core::action::Action;
use dp_core::cascade::CascadeConfig;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::cycles;
use dp_pmd::netdev::pcap::{PcapConfig, PcapNetdev};
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use testbed::datapath::translation_base_mask;

mod common;

/// What ofproto-lite (and OVS) installs for an `in_port=1,actions=output:2`
/// rule: one megaflow matching what every translation matches (in_port,
/// recirc_id, packet_type, the Ethernet type, the IP fragment bits, tag
/// presence). Many 5-tuples then share it: the EMC thrashes
/// and the classifier serves them, as in the OVS reference runs.
#[derive(Debug)]
struct ToPort2 {
    /// Also match the 5-tuple (one megaflow per generated flow), for the
    /// flow-setup case.
    per_flow: bool,
}

impl UpcallHandler for ToPort2 {
    fn translate(
        &self,
        _: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = translation_base_mask();
        if self.per_flow {
            mask.nw_src = [255; 4];
            mask.nw_dst = [255; 4];
            mask.nw_proto = u8::MAX;
            mask.tp_src = u16::MAX;
            mask.tp_dst = u16::MAX;
        }
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(vec![Action::Output(2)]),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

fn udp_frame(flow: u32) -> Vec<u8> {
    common::udp4_frame(
        [0x02, 0, 0, 0, 0, 2],
        [0x02, 0, 0, 0, 0, 1],
        [10, 0, (flow >> 16) as u8, 1],
        [10, 1, 0, 1],
        flow as u16,
        4789,
    )
}

fn write_pcap(path: &std::path::Path, flows: u32) {
    let mut bytes = Vec::new();
    dp_core::pcap::write_header(&mut bytes);
    for i in 0..flows {
        dp_core::pcap::write_record(&mut bytes, 0, &udp_frame(i));
    }
    std::fs::write(path, bytes).expect("write bench pcap");
}

struct CaseResult {
    mpps: f64,
    cycles_per_packet: f64,
    flows_installed: usize,
}

fn run_case(flows: u32, seconds: f64, emc_insert_inv_prob: u32) -> CaseResult {
    let dir = std::env::temp_dir().join(format!("oxvs-bench-pmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("flows-{flows}.pcap"));
    write_pcap(&path, flows);
    let rx = PcapNetdev::new(
        "rx",
        &PcapConfig {
            rx_file: Some(path),
            infinite: true,
            pool_capacity: 256,
            ..PcapConfig::default()
        },
    )
    .expect("rx port");
    let tx = PcapNetdev::new("tx", &PcapConfig::default()).expect("tx port");
    let config = PmdConfig {
        identity: PmdIdentity::Pmd {
            numa_id: 0,
            core_id: 1,
        },
        cascade: CascadeConfig {
            emc_insert_inv_prob,
            emc: dp_core::cascade::EmcMode::On,
            ..CascadeConfig::default()
        },
        upcall_budget: 64,
        ..PmdConfig::default()
    };
    let mut pmd = Pmd::new(
        config,
        Arc::new(ToPort2 { per_flow: false }),
        Arc::new(AtomicUsize::new(1_000_000)),
    );
    pmd.add_rxq(PolledRxq::new(1, "rx", 0, rx.open_rxq(0).expect("rxq")));
    pmd.add_txq(2, tx.open_txq(0).expect("txq"));

    // Warm-up: install the flow, fill the caches, replay the file once.
    for _ in 0..(flows as usize / 32 + 1000) {
        pmd.poll_once(cycles::monotonic_ns());
    }
    let before = pmd.stats();
    let (t0, c0) = (Instant::now(), cycles::now());
    // PMD_BENCH_ITERATIONS=N: a fixed amount of work instead of a time
    // (for instruction counting under callgrind).
    match std::env::var("PMD_BENCH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(n) => {
            for _ in 0..n {
                pmd.poll_once(0);
            }
        }
        None => {
            while t0.elapsed().as_secs_f64() < seconds {
                for _ in 0..256 {
                    pmd.poll_once(0);
                }
            }
        }
    }
    let (elapsed, spent) = (t0.elapsed().as_secs_f64(), cycles::now() - c0);
    let after = pmd.stats();
    let packets = (after.packets_received - before.packets_received) as f64;
    let installed = pmd.flows().len();
    drop(pmd);
    let _ = std::fs::remove_dir_all(&dir);
    CaseResult {
        mpps: packets / elapsed / 1e6,
        cycles_per_packet: spent as f64 / packets,
        flows_installed: installed,
    }
}

/// New flows per second: every packet is a new flow; measures upcall +
/// install (+ execute) throughput.
fn flow_setup_rate(flows: u32) -> f64 {
    let dir = std::env::temp_dir().join(format!("oxvs-bench-setup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("setup.pcap");
    write_pcap(&path, flows);
    let rx = PcapNetdev::new(
        "rx",
        &PcapConfig {
            rx_file: Some(path),
            pool_capacity: 256,
            ..PcapConfig::default()
        },
    )
    .expect("rx port");
    let tx = PcapNetdev::new("tx", &PcapConfig::default()).expect("tx port");
    let config = PmdConfig {
        upcall_budget: usize::MAX,
        ..PmdConfig::default()
    };
    let mut pmd = Pmd::new(
        config,
        Arc::new(ToPort2 { per_flow: true }),
        Arc::new(AtomicUsize::new(1_000_000)),
    );
    pmd.add_rxq(PolledRxq::new(1, "rx", 0, rx.open_rxq(0).expect("rxq")));
    pmd.add_txq(2, tx.open_txq(0).expect("txq"));
    let t0 = Instant::now();
    while pmd.poll_once(0) > 0 {}
    let elapsed = t0.elapsed().as_secs_f64();
    let installed = pmd.flows().len();
    drop(pmd);
    let _ = std::fs::remove_dir_all(&dir);
    installed as f64 / elapsed
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let seconds: f64 = std::env::var("PMD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    if let Some(core) = core_affinity::get_core_ids().and_then(|c| c.last().copied()) {
        core_affinity::set_for_current(core);
    }
    println!("oxvs PMD forwarding, one PMD, 64-byte UDP, pcap (in memory, forever) -> discard");
    println!("TSC: {:.2} GHz", cycles::hz() as f64 / 1e9);
    // PMD_BENCH_FLOWS=N runs only the case with N flows (for profiling).
    let only: Option<u32> = std::env::var("PMD_BENCH_FLOWS")
        .ok()
        .and_then(|s| s.parse().ok());
    for (label, flows, emc) in [
        ("1 flow (EMC)", 1, 100),
        ("10k flows", 10_000, 100),
        ("100k flows", 100_000, 100),
    ] {
        if only.is_some_and(|n| n != flows) {
            continue;
        }
        let r = run_case(flows, seconds, emc);
        println!(
            "{label:<14} {:>7.2} Mpps  {:>7.1} cycles/packet  ({} megaflows)",
            r.mpps, r.cycles_per_packet, r.flows_installed
        );
    }
    if only.is_some() {
        return;
    }
    println!(
        "flow setup     {:>7.0} new flows/s (60k distinct flows, one megaflow each, trivial upcall handler)",
        flow_setup_rate(60_000)
    );
}
