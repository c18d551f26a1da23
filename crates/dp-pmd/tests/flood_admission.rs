//! Upcall admission control (`dp_pmd::pmd::admission`) stepped through
//! one `Pmd` over `dummy-pmd` ports: a flood of new 5-tuples on port 3
//! beside an established flow on port 1 (port 2 and 4 are their sinks).
//!
//! - Without established traffic, or with established traffic the PMD
//!   keeps up with (partial bursts), every miss gets its upcall:
//!   admission control never slows flow setup on an uncontended PMD.
//! - With it, the flood is held to its share: misses are refused and
//!   counted (as failed upcalls and under `datapath_drop_upcall_limit`),
//!   the flooding queue is polled less often (frames pile up in its
//!   ring), and every established packet is forwarded.
//! - With the share set to 0 nothing is refused: the switch is off.
//!
//! The iterations are stepped with a synthetic clock; only the cycle
//! counter is real, and the assertions hold for any cost of an upcall
//! above that of the established path.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::netdev::Netdev;
use dp_core::packet::MAX_BURST;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev, RX_QUEUE_DEPTH};
use dp_pmd::pmd::admission::{CONTENTION_WINDOW_NS, MAX_SKIP};
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

/// Synthetic time per iteration.
const STEP_NS: u64 = 10_000;

struct Rig {
    pmd: Pmd,
    ports: Vec<Arc<DummyNetdev>>,
    now_ns: u64,
    next_new: u32,
}

impl Rig {
    fn new(upcall_share_pct: u32) -> Rig {
        let mut pmd = Pmd::new(
            PmdConfig {
                upcall_share_pct,
                ..PmdConfig::default()
            },
            Arc::new(five_tuple()),
            Arc::new(AtomicUsize::new(1_000_000)),
        );
        let ports: Vec<Arc<DummyNetdev>> = (1..=4)
            .map(|i| Arc::new(DummyNetdev::new(&format!("fa{i}"), DummyConfig::default())))
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
        Rig {
            pmd,
            ports,
            now_ns: 1_000_000,
            next_new: 0,
        }
    }

    /// One iteration: a burst of the established flow (if `established`)
    /// and a burst of new 5-tuples (if `flood`) offered, then one poll.
    /// Returns the flood frames the port could not queue.
    fn step(&mut self, established: bool, flood: bool) -> u64 {
        self.step_with(if established { MAX_BURST } else { 0 }, flood)
    }

    /// [`Rig::step`] with `established` packets of the established flow.
    fn step_with(&mut self, established: usize, flood: bool) -> u64 {
        let mut unqueued = 0;
        for k in 0..MAX_BURST {
            if k < established {
                self.ports[0].receive(0, &udp([10, 0, 0, 1], 1000)).unwrap();
            }
            if flood {
                self.next_new += 1;
                let b = self.next_new.to_be_bytes();
                let frame = udp([172, b[1], b[2], b[3]], 9);
                unqueued += u64::from(self.ports[2].receive(0, &frame).is_err());
            }
        }
        self.now_ns += STEP_NS;
        self.pmd.poll_once(self.now_ns);
        let _ = self.ports[1].take_sent();
        let _ = self.ports[3].take_sent();
        unqueued
    }

    fn refused(&self) -> u64 {
        self.pmd
            .drop_counts()
            .iter()
            .find(|(name, _)| *name == "datapath_drop_upcall_limit")
            .map_or(0, |(_, n)| *n)
    }
}

#[test]
fn uncontended_flood_gets_every_upcall() {
    let mut rig = Rig::new(10);
    for _ in 0..200 {
        assert_eq!(rig.step(false, true), 0);
    }
    let stats = rig.pmd.stats();
    assert_eq!(stats.miss_upcall_ok, 200 * MAX_BURST as u64);
    assert_eq!(stats.miss_upcall_failed, 0);
    assert_eq!(rig.refused(), 0);
    assert_eq!(rig.ports[3].stats().tx_packets, 200 * MAX_BURST as u64);
}

#[test]
fn contended_flood_is_refused_and_backed_off_and_the_established_flow_is_not_starved() {
    const ITERS: u64 = 2000;
    let mut rig = Rig::new(10);
    let mut unqueued = 0;
    for _ in 0..ITERS {
        unqueued += rig.step(true, true);
    }
    let stats = rig.pmd.stats();
    let refused = rig.refused();
    eprintln!(
        "contended: {} upcalls served, {refused} refused, {unqueued} flood frames left to the device",
        stats.miss_upcall_ok
    );
    // Every established packet forwarded, in every iteration.
    assert_eq!(rig.ports[1].stats().tx_packets, ITERS * MAX_BURST as u64);
    // The flood was refused upcalls, and the refusals are counted.
    assert!(refused > 0, "no upcall refused under contention");
    assert!(stats.miss_upcall_failed >= refused);
    // Served upcalls fell well short of the flood's misses.
    let offered = ITERS * MAX_BURST as u64;
    assert!(
        stats.miss_upcall_ok < offered / 2,
        "{} of {offered} flood frames got an upcall",
        stats.miss_upcall_ok
    );
    // The flooding queue was skipped: its ring filled and the device
    // refused frames, which cost the PMD nothing.
    assert!(unqueued > 0, "the flooding queue was polled every time");
    // Every frame is accounted: forwarded, refused, or still queued.
    let flood_port = &rig.ports[2];
    let queued = flood_port.pool().in_use() as u64;
    assert!(queued <= RX_QUEUE_DEPTH as u64);
    assert_eq!(
        rig.ports[3].stats().tx_packets + refused + queued + unqueued,
        offered
    );

    // The established traffic stops: contention ends within the window
    // and the flood's upcalls are served again.
    let ok_before = rig.pmd.stats().miss_upcall_ok;
    for _ in 0..CONTENTION_WINDOW_NS / STEP_NS + 2 * MAX_SKIP as u64 {
        rig.step(false, true);
    }
    let refused_after = rig.refused();
    for _ in 0..100 {
        rig.step(false, true);
    }
    assert_eq!(rig.refused(), refused_after, "refusals without contention");
    assert!(rig.pmd.stats().miss_upcall_ok > ok_before + 100 * MAX_BURST as u64 / 2);
}

#[test]
fn a_flood_beside_established_traffic_the_pmd_keeps_up_with_is_not_limited() {
    // 8 established packets per poll: the PMD drains that queue every
    // time, so nothing established is queueing and the flood keeps its
    // full setup rate.
    let mut rig = Rig::new(10);
    for _ in 0..300 {
        assert_eq!(rig.step_with(8, true), 0);
    }
    assert_eq!(rig.refused(), 0);
    assert_eq!(rig.pmd.stats().miss_upcall_ok, 300 * MAX_BURST as u64 + 1);
    assert_eq!(rig.ports[1].stats().tx_packets, 300 * 8);
}

#[test]
fn share_zero_turns_admission_control_off() {
    let mut rig = Rig::new(0);
    for _ in 0..300 {
        assert_eq!(rig.step(true, true), 0);
    }
    assert_eq!(rig.refused(), 0);
    assert_eq!(rig.pmd.stats().miss_upcall_failed, 0);
    assert_eq!(rig.ports[3].stats().tx_packets, 300 * MAX_BURST as u64);
}
