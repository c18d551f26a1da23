//! The observation hooks on a stepped PMD (no threads): a capture whose
//! ring nobody drains still forwards every packet and counts every copy
//! it could not make; tx captures see what leaves; traced packets report
//! the cache level of the real packet path; the perf history moves.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use crossbeam_channel::bounded;
use dp_core::action::Action;
use dp_core::cascade::CascadeConfig;
use dp_core::flow::FlowKey;
use dp_pmd::capture::{CaptureRing, CaptureSpec, Direction, MAX_SNAPLEN};
use dp_pmd::netdev::dummy::DummyNetdev;
use dp_pmd::pmd::observe::{ObserveMsg, ObserveSnapshot, TraceReport};
use dp_pmd::pmd::{Pmd, PmdConfig, PmdMsg};
use dp_pmd::stats::PmdIdentity;
use testbed::datapath::Megaflows;

/// Port 1 → port 2, one megaflow per IPv4 destination; 10.0.0.66 is
/// dropped by an empty action list.
fn to_port_2() -> Megaflows {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask.dl_type = u16::MAX;
    mask.nw_dst = [255; 4];
    Megaflows::new(mask, |key, _| {
        if key.nw_dst == [10, 0, 0, 66] {
            vec![]
        } else {
            vec![Action::Output(2)]
        }
    })
}

/// A UDP frame 10.0.0.1:`seq` → 10.0.0.`dst_last`:53, built by the ODP
/// text builder `netdev-dummy/receive` uses.
fn frame(dst_last: u8, seq: u16) -> Vec<u8> {
    let key = format!(
        "in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),\
         ipv4(src=10.0.0.1,dst=10.0.0.{dst_last},proto=17,tos=0,ttl=64,frag=no),\
         udp(src={seq},dst=53)"
    );
    dp_core::odp::packet::build_frame(&key, None, None).expect("a valid ODP key")
}

fn rig() -> (Pmd, Arc<DummyNetdev>, Arc<DummyNetdev>) {
    rig_with_flush_interval(0)
}

fn rig_with_flush_interval(tx_flush_interval_us: u64) -> (Pmd, Arc<DummyNetdev>, Arc<DummyNetdev>) {
    let config = PmdConfig {
        tx_flush_interval_us,
        identity: PmdIdentity::Pmd {
            numa_id: 0,
            core_id: 0,
        },
        cascade: CascadeConfig {
            emc_insert_inv_prob: 1,
            emc: dp_core::cascade::EmcMode::On,
            ..CascadeConfig::default()
        },
        ..PmdConfig::default()
    };
    let mut pmd = Pmd::new(
        config,
        Arc::new(to_port_2()),
        Arc::new(AtomicUsize::new(1000)),
    );
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    (pmd, p1, p2)
}

fn spec(port_no: u32, direction: Direction, ring_slots: usize) -> Box<CaptureSpec> {
    Box::new(CaptureSpec {
        id: 7,
        port_no,
        direction,
        filter: None,
        snaplen: MAX_SNAPLEN,
        ring_slots,
    })
}

fn snapshot(pmd: &mut Pmd) -> ObserveSnapshot {
    let (tx, rx) = bounded(1);
    pmd.handle(PmdMsg::Observe(ObserveMsg::Snapshot { reply: tx }), 0);
    rx.recv().unwrap()
}

fn trace(pmd: &mut Pmd, frame: Vec<u8>) -> TraceReport {
    let (tx, rx) = bounded(1);
    pmd.handle(
        PmdMsg::Observe(ObserveMsg::Trace {
            in_port: 1,
            frame,
            reply: tx,
        }),
        0,
    );
    rx.recv().unwrap().unwrap()
}

#[test]
fn a_full_ring_drops_copies_never_forwarded_packets() {
    let (mut pmd, p1, p2) = rig();
    let rx_ring = CaptureRing::new(4, MAX_SNAPLEN);
    pmd.handle(
        PmdMsg::Observe(ObserveMsg::CaptureStart {
            spec: spec(1, Direction::Rx, 4),
            ring: rx_ring.clone(),
        }),
        0,
    );
    for i in 0..100u16 {
        p1.receive(0, &frame(2, i)).unwrap();
    }
    while pmd.poll_once(0) > 0 {}
    assert_eq!(p2.take_sent().len(), 100, "every packet forwarded");
    assert_eq!(rx_ring.filled().len(), 4);
    assert_eq!(rx_ring.ring_full_drops(), 96);
    let first = rx_ring.filled().try_recv().unwrap();
    assert_eq!(first.data, frame(2, 0));
    assert!(snapshot(&mut pmd).capturing);

    // Stopping releases the tap; traffic flows as before.
    pmd.handle(PmdMsg::Observe(ObserveMsg::CaptureStop { id: 7 }), 0);
    assert!(!snapshot(&mut pmd).capturing);
    p1.receive(0, &frame(2, 500)).unwrap();
    pmd.poll_once(0);
    assert_eq!(rx_ring.ring_full_drops(), 96);
    assert_eq!(p2.take_sent().len(), 1);
}

#[test]
fn a_tx_capture_sees_what_leaves_the_port() {
    let (mut pmd, p1, p2) = rig();
    let ring = CaptureRing::new(64, MAX_SNAPLEN);
    pmd.handle(
        PmdMsg::Observe(ObserveMsg::CaptureStart {
            spec: spec(2, Direction::Tx, 64),
            ring: ring.clone(),
        }),
        0,
    );
    let sent: Vec<Vec<u8>> = (0..10).map(|i| frame(2, i)).collect();
    for f in &sent {
        p1.receive(0, f).unwrap();
    }
    p1.receive(0, &frame(66, 1)).unwrap(); // dropped: never leaves
    while pmd.poll_once(0) > 0 {}
    let copies: Vec<Vec<u8>> = ring.filled().try_iter().map(|r| r.data.clone()).collect();
    assert_eq!(copies, sent);
    assert_eq!(p2.take_sent(), sent);
}

#[test]
fn traced_packets_report_the_cache_level_and_the_perf_history_moves() {
    let (mut pmd, _p1, p2) = rig();
    let idle = snapshot(&mut pmd);
    assert_eq!(idle.perf.iterations, 0);

    let first = trace(&mut pmd, frame(2, 1));
    assert_eq!(first.lookups, vec![("miss", 1)]);
    assert_eq!(first.upcalls, vec![("upcall ok", 1)]);
    assert_eq!((first.passes, first.tx_packets), (1, 1));
    let flow = first.flow.expect("the installed megaflow");
    assert_eq!(flow.actions.as_ref(), &[Action::Output(2)]);
    // Another 5-tuple: the megaflow serves it (the EMC is exact-match)...
    let second = trace(&mut pmd, frame(2, 2));
    assert_eq!(second.lookups, vec![("megaflow", 1)]);
    assert!(second.upcalls.is_empty());
    // ...and inserts it in the EMC, where the same packet hits next.
    let third = trace(&mut pmd, frame(2, 2));
    assert_eq!(third.lookups, vec![("emc", 1)]);
    let dropped = trace(&mut pmd, frame(66, 3));
    assert_eq!(dropped.tx_packets, 0);
    assert_eq!(dropped.drops.len(), 1, "{:?}", dropped.drops);
    assert_eq!(p2.take_sent().len(), 3, "traced packets really left");

    for _ in 0..5 {
        pmd.poll_once(0);
    }
    let s = snapshot(&mut pmd);
    assert_eq!(s.perf.iterations, 5);
    assert_eq!(s.flows, 2);
    assert_eq!(
        s.perf.packets_per_iteration.buckets[0], 5,
        "idle iterations"
    );
}

#[test]
fn a_traced_packet_is_sent_and_counted_under_a_tx_flush_interval() {
    // Output batching holds packets up to a second: the trace still sends
    // its packet before reporting, and does so every time (its small pool
    // is never left holding buffers in a transmit queue).
    let (mut pmd, _p1, p2) = rig_with_flush_interval(1_000_000);
    for seq in 0..10 {
        let report = trace(&mut pmd, frame(2, seq));
        assert_eq!(report.tx_packets, 1, "trace {seq}: {report:?}");
        assert_eq!(p2.take_sent().len(), 1, "trace {seq} left the port");
    }
}
