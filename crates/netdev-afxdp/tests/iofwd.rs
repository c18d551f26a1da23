//! The io forwarder ([`netdev_afxdp::iofwd`], the benchmark's `io`
//! system) between the host ends of two veth pairs: 1,000 mixed-size UDP
//! datagrams each way arrive intact and exactly once, every packet
//! received is counted as sent out of the other port, and at the end no
//! UMEM frame is lent and every frame is back on the free list, with XDP
//! detached from both interfaces.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use netdev_afxdp::iofwd::IoForwarder;
use netdev_afxdp::testing::xdp_attachment;

#[test]
fn io_forwarder_carries_udp_both_ways_and_returns_every_frame() {
    if !prerequisites("afxdp io forwarder") {
        return;
    }
    let topo = Topology::veth("xi");
    // oxvsd's defaults: best-effort xdp-mode, shared UMEM.
    let mut fwd =
        IoForwarder::open(&topo.host_a, &topo.host_b, &[]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("xdp-mode in use {}", fwd.ports()[0].xdp_mode_in_use());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_fwd = Arc::clone(&stop);
    // Bounded even if the test thread dies before setting `stop`.
    let deadline = Instant::now() + Duration::from_secs(60);
    let worker = std::thread::spawn(move || {
        fwd.run(&stop_fwd, Some(deadline), dp_pmd::cycles::now);
        fwd.close()
    });

    wait_reachable(&topo.ns_a, IP_B);
    udp_exchange(&topo.ns_a, &topo.ns_b, IP_B, 1000);
    udp_exchange(&topo.ns_b, &topo.ns_a, IP_A, 1000);
    stop.store(true, Ordering::Relaxed);
    let closed = worker.join().expect("forwarder thread");
    let s = closed.stats;
    eprintln!("{s:?}");
    assert_eq!(
        closed.in_use, 0,
        "UMEM frames lent after the last iteration: {s:?}"
    );
    assert_eq!(
        closed.not_free, 0,
        "UMEM frames not back on the free list after close"
    );
    for dir in 0..2 {
        assert!(s.received[dir] >= 1000, "direction {dir}: {s:?}");
        assert_eq!(
            s.sent[dir] + s.tx_dropped[dir],
            s.received[dir],
            "direction {dir}: every packet received is sent or dropped: {s:?}"
        );
    }
    assert!(
        s.busy_cycles > 0 && s.processing_cycles_per_packet().is_some(),
        "{s:?}"
    );
    for host in [&topo.host_a, &topo.host_b] {
        assert_eq!(
            xdp_attachment(host).unwrap().prog_id,
            0,
            "{host}: XDP left attached"
        );
    }
}
