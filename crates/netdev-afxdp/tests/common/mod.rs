//! What the AF_XDP, tap and system port tests share beyond the common
//! harness (`testbed`: prerequisites, the namespace [`Topology`] guard,
//! traffic checks, one-PMD datapaths): generators and sinks that drive a
//! port of ours from inside a namespace.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use testbed::*;

/// `testbed::prerequisites` with the tools these tests use.
pub fn prerequisites(test: &str) -> bool {
    testbed::prerequisites(test, &[])
}

/// A datapath with one PMD on the last core and the port-swap handler.
pub fn datapath(busy_poll: bool) -> dp_pmd::datapath::Datapath {
    one_pmd_datapath(busy_poll, Arc::new(PortSwap))
}

/// A datapath with one PMD on the last core and `handler`.
pub fn datapath_with(
    busy_poll: bool,
    handler: Arc<dyn dp_pmd::upcall::UpcallHandler>,
) -> dp_pmd::datapath::Datapath {
    one_pmd_datapath(busy_poll, handler)
}

/// Sends `size`-byte broadcast UDP frames as fast as it can from a port of
/// `port_type` on `iface` in `ns`, until `stop`; returns how many went.
pub fn port_generator(
    ns: &str,
    iface: &str,
    port_type: &'static str,
    size: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
    let iface = iface.to_string();
    in_netns(ns, move || {
        let netdev = netdev_afxdp::open_netdev(port_type, &iface, &[]).expect("generator port");
        let mut txq = netdev.open_txq(0).expect("generator txq");
        let mut frame = vec![0u8; size.max(42)];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&netdev.info().mac);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&((size - 14) as u16).to_be_bytes());
        frame[22] = 64;
        frame[23] = 17;
        let pool = PacketPool::new("gen", PoolConfig::heap(128));
        let mut batch = PacketBatch::new();
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut round = 0u32;
        // The clock is read every 64 rounds: it would cost more than the
        // loop itself.
        while !stop.load(Ordering::Relaxed) && (round & 63 != 0 || Instant::now() < deadline) {
            round = round.wrapping_add(1);
            while !batch.is_full() {
                let Some(p) = pool.alloc_from(&frame) else {
                    break;
                };
                let _ = batch.push(p);
            }
            sent += txq.send(&mut batch).sent as u64;
        }
        sent
    })
}

/// Counts what a port of `port_type` on `iface` in `ns` receives, until
/// `stop`.
pub fn port_sink(
    ns: &str,
    iface: &str,
    port_type: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use dp_core::packet::PacketBatch;
    let iface = iface.to_string();
    in_netns(ns, move || {
        let netdev = netdev_afxdp::open_netdev(port_type, &iface, &[]).expect("sink port");
        let mut rxq = netdev.open_rxq(0).expect("sink rxq");
        let mut batch = PacketBatch::new();
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut round = 0u32;
        while !stop.load(Ordering::Relaxed) && (round & 63 != 0 || Instant::now() < deadline) {
            round = round.wrapping_add(1);
            got += rxq.recv(&mut batch).unwrap_or(0) as u64;
            batch.clear();
        }
        got
    })
}
