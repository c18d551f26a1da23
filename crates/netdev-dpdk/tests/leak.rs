//! Leak accounting: after traffic through every datapath path — EMC and
//! megaflow hits, upcalls (installed, failed), drops (no actions, no such
//! port), multi-output clones, recirculation, a tx ring that fills
//! (partial bursts), port deletion under traffic and shutdown — DPDK's own
//! `rte_mempool_in_use_count` is back to its baseline.
//!
//! The PMD is stepped on the test thread (`Pmd::poll_once`), so every
//! path runs deterministically; traffic comes from `net_pcap` replaying a
//! capture forever from mbufs of the same pool.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::{Packet, PacketBatch};
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use netdev_dpdk::{DpdkConfig, DpdkNetdev};

const SRC: u32 = 1;
const SINK: u32 = 2;
const RING: u32 = 3;

/// Chooses a path by UDP source port: forward, drop, clone to two ports,
/// recirculate, output to a missing port, fail the upcall.
#[derive(Debug)]
struct EveryPath;

impl UpcallHandler for EveryPath {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.recirc_id = u32::MAX;
        mask.dl_type = u16::MAX;
        mask.nw_proto = u8::MAX;
        mask.tp_src = u16::MAX;
        let actions = if key.recirc_id == 1 {
            vec![Action::Output(SINK)]
        } else {
            match key.tp_src % 6 {
                0 => vec![Action::Output(SINK)],
                1 => vec![],
                2 => vec![Action::Output(SINK), Action::Output(RING)],
                3 => vec![Action::Recirc(1)],
                4 => vec![Action::Output(99)],
                _ => return Err(UpcallError("refused".into())),
            }
        };
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(actions),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

fn config(devargs: String) -> DpdkConfig {
    DpdkConfig {
        devargs,
        mtu: 1490,
        n_rxq_desc: 256,
        n_txq_desc: 256,
        n_mbufs: Some(4096),
        ..DpdkConfig::default()
    }
}

#[test]
fn every_path_returns_every_mbuf() {
    common::eal();
    let capture = common::pcap("leak", 48);
    let src = DpdkNetdev::open(
        "src",
        &config(format!(
            "net_pcap_leak0,rx_pcap={},infinite_rx=1",
            capture.0.display()
        )),
    )
    .unwrap();
    let pool = src.mempool().clone();
    // net_pcap holds the whole capture in mbufs of the pool while open.
    let baseline = 0;
    assert_eq!(pool.in_use(), 48);
    let sink = DpdkNetdev::open("sink", &config("net_null_leak0,no-rx=1".into())).unwrap();
    let ring = DpdkNetdev::open("ring", &config("net_ring_leak0".into())).unwrap();

    let mut pmd = Pmd::new(
        PmdConfig {
            // EMC hits are one of the paths (auto would leave the EMC
            // unused with this one-subtable classifier).
            cascade: dp_core::cascade::CascadeConfig {
                emc: dp_core::cascade::EmcMode::On,
                ..Default::default()
            },
            ..PmdConfig::default()
        },
        Arc::new(EveryPath),
        Arc::new(AtomicUsize::new(100_000)),
    );
    pmd.add_rxq(PolledRxq::new(SRC, "src", 0, src.open_rxq(0).unwrap()));
    pmd.add_txq(SINK, sink.open_txq(0).unwrap());
    pmd.add_txq(RING, ring.open_txq(0).unwrap());

    let mut now = 1_000_000;
    for _ in 0..3000 {
        pmd.poll_once(now);
        now += 10_000;
    }
    let stats = pmd.stats();
    assert!(stats.packets_received >= 3000 * 32, "{stats:?}");
    assert!(
        stats.lookup.emc_hits > 0
            && stats.lookup.megaflow_hits + stats.lookup.emc_hits > stats.lookup.misses
    );
    assert!(stats.recirculations > 0);
    // The ring was never drained: it filled, and later bursts were partial.
    let ring_drops = ring.stats().tx_dropped;
    assert!(ring_drops > 0, "ring never filled");
    assert!(sink.stats().tx_packets > 0);
    // Path 2's copies for the sink (every output of a multi-output action
    // but the last) were made by the sink's queue in mbufs of its pool
    // (`clone_packet`) and sent as they were: their mbufs are among those
    // counted back below.
    let sink_copies = sink
        .xstats()
        .into_iter()
        .find(|(n, _)| n == "ovs_tx_copied")
        .map_or(0, |(_, v)| v);
    assert!(sink_copies > 0, "no multi-output copy made");
    assert!(
        src.packets_in_use() == 0,
        "the PMD holds no packet between iterations"
    );

    // Port deletion under traffic: the source goes away between
    // iterations, queues first, then the port (which unplugs the vdev and
    // frees the capture's mbufs).
    for q in pmd.remove_rxqs(SRC) {
        drop(q);
    }
    pmd.remove_port(SRC, now);
    drop(src);
    for _ in 0..10 {
        pmd.poll_once(now);
    }

    // Shutdown: the PMD goes (its tx queues with it), then the ports. The
    // ring's peer drains what the ring still holds, as a guest would.
    drop(pmd);
    let mut rxq = ring.open_rxq(0).unwrap();
    let mut drained = 0;
    let mut batch = PacketBatch::new();
    while let Ok(n @ 1..) = rxq.recv(&mut batch) {
        drained += n;
        batch.clear();
    }
    assert!(drained > 0);
    drop(rxq);
    drop(ring);
    drop(sink);
    assert_eq!(pool.in_use(), baseline, "mbufs leaked: {:?}", pool.info());
}
