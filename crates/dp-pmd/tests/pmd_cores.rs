//! The PMD core list changed under traffic (`pmd-cpu-mask` at run time),
//! and an rx-queue rebalance under traffic, on this machine's first two
//! cores with real PMD threads over `dummy-pmd` ports.
//!
//! A feeder thread injects UDP into both ports while the datapath goes
//! from one PMD to two and back to one, and is rebalanced. After each
//! step the queues sit where the scheduler says and traffic still flows;
//! a new PMD learns the megaflows of the queues it took over and a stopped
//! PMD's flows are gone. At the end, with the feeder stopped, every frame
//! a port accepted has left by the other port (not one lost) and every
//! pool is back to zero buffers in use before and after shutdown.
//!
//! Idle PMDs sleep (`pmd_sleep_max_us`) so two PMDs and the feeder share
//! two cores; every wait is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::netdev::Netdev;
use dp_pmd::datapath::{Datapath, DatapathConfig, PortOptions};
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::sched::RxqAssign;
use dp_pmd::stats::PmdIdentity;
use testbed::datapath::{Megaflows, udp_frame, udp_source_mask};

/// in_port 1 → 2, anything else → 1; megaflows match in_port and the UDP
/// source port. Counts translations.
fn port_swap() -> Megaflows {
    Megaflows::new(udp_source_mask(), |key, _| {
        vec![Action::Output(if key.in_port == 1 { 2 } else { 1 })]
    })
}

/// A 60-byte UDP/IPv4 frame with source port `sport`.
fn udp(sport: u16) -> Vec<u8> {
    udp_frame([10, 0, 0, 1], sport, 9)
}

fn two_cores() -> [usize; 2] {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .expect("core ids")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(
        cores.len() >= 2,
        "this test needs two cores, found {cores:?}"
    );
    [cores[0], cores[1]]
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn port(name: &str, n_rxq: usize) -> Arc<DummyNetdev> {
    Arc::new(DummyNetdev::new(
        name,
        DummyConfig {
            n_rxq,
            n_txq: 2,
            ..DummyConfig::default()
        },
    ))
}

/// The feeder: frames each port accepted come back from `handle`.
struct Feeder {
    stop: Arc<AtomicBool>,
    /// Phase `p` sends source ports `1000 + 8p ..= 1007 + 8p`.
    phase: Arc<AtomicU64>,
    handle: JoinHandle<(u64, u64)>,
}

fn sports(phase: u64) -> std::ops::Range<u16> {
    let first = 1000 + 8 * phase as u16;
    first..first + 8
}

/// Injects the phase's 8 source ports into `p1` (even ones on queue 0,
/// odd ones on queue 1) and into `p2`, paced (64 frames, then 200 µs) so
/// the PMDs keep up on a loaded machine.
fn feed(p1: Arc<DummyNetdev>, p2: Arc<DummyNetdev>) -> Feeder {
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU64::new(0));
    let (flag, now_phase) = (stop.clone(), phase.clone());
    let handle = std::thread::spawn(move || {
        let (mut into1, mut into2) = (0u64, 0u64);
        let mut n = 0u16;
        while !flag.load(Ordering::Relaxed) {
            let frame = udp(sports(now_phase.load(Ordering::Relaxed)).start + n % 8);
            into1 += u64::from(p1.receive(usize::from(n % 2), &frame).is_ok());
            into2 += u64::from(p2.receive(0, &frame).is_ok());
            n = n.wrapping_add(1);
            if n.is_multiple_of(64) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        (into1, into2)
    });
    Feeder {
        stop,
        phase,
        handle,
    }
}

/// Waits until both directions moved at least 500 more frames.
fn assert_flowing(p1: &DummyNetdev, p2: &DummyNetdev, after: &str) {
    let (a, b) = (p1.stats().tx_packets, p2.stats().tx_packets);
    wait_for(&format!("traffic to keep flowing after {after}"), || {
        p1.stats().tx_packets > a + 500 && p2.stats().tx_packets > b + 500
    });
}

/// The cores that poll some queue, and the queues per PMD core.
fn placement(dp: &Datapath) -> Vec<(usize, Vec<(u32, usize)>)> {
    dp.rxq_status()
        .unwrap()
        .into_iter()
        .filter_map(|(who, queues)| match who {
            PmdIdentity::Pmd { core_id, .. } => {
                let mut polled: Vec<(u32, usize)> =
                    queues.iter().map(|q| (q.port_no, q.qid)).collect();
                polled.sort_unstable();
                Some((core_id, polled))
            }
            PmdIdentity::Main => {
                assert!(queues.is_empty(), "non-PMD thread polls {queues:?}");
                None
            }
        })
        .collect()
}

/// Source ports of the port-1 flows the PMD on `core` holds, of `phase`.
fn p1_flows_on(dp: &Datapath, core: usize, phase: u64) -> Vec<u16> {
    let mut out: Vec<u16> = dp
        .dump_flows()
        .unwrap()
        .iter()
        .filter(|f| matches!(f.pmd, PmdIdentity::Pmd { core_id, .. } if core_id == core))
        .filter(|f| f.key.in_port == 1 && sports(phase).contains(&f.key.tp_src))
        .map(|f| f.key.tp_src)
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn pmd_cores_change_and_rebalance_under_traffic_lose_no_buffer() {
    let [c0, c1] = two_cores();
    let handler = Arc::new(port_swap());
    let mut dp = Datapath::new(
        DatapathConfig {
            pmd_cores: vec![c0],
            rxq_assign: RxqAssign::RoundRobin,
            pmd_sleep_max_us: 200,
            // Exact accounting below: no miss may be refused by upcall
            // admission control if a preempted PMD falls behind.
            upcall_share_pct: 0,
            ..DatapathConfig::default()
        },
        handler.clone(),
    )
    .unwrap();
    let (p1, p2) = (port("rc-p1", 2), port("rc-p2", 1));
    dp.add_port(p1.clone(), PortOptions::default()).unwrap();
    dp.add_port(p2.clone(), PortOptions::default()).unwrap();
    assert_eq!(placement(&dp), vec![(c0, vec![(1, 0), (1, 1), (2, 0)])]);

    let feeder = feed(p1.clone(), p2.clone());
    assert_flowing(&p1, &p2, "start");
    wait_for("c0 to learn p1's flows", || {
        p1_flows_on(&dp, c0, 0).len() == 8
    });

    // 1 → 2 PMDs: roundrobin deals p1 q0, p1 q1, p2 q0 over c0, c1. The
    // feeder moves to new source ports, so each PMD learns its queue's.
    let change = dp.set_pmd_cores(&[c0, c1]).unwrap();
    assert_eq!((change.added, change.removed), (vec![c1], vec![]));
    assert_eq!(dp.pmd_cores(), vec![c0, c1]);
    assert_eq!(
        placement(&dp),
        vec![(c0, vec![(1, 0), (2, 0)]), (c1, vec![(1, 1)])]
    );
    assert_eq!(dp.pmd_stats().unwrap().len(), 3, "two PMDs and non-PMD");
    feeder.phase.store(1, Ordering::Relaxed);
    assert_flowing(&p1, &p2, "adding a PMD");
    let odd: Vec<u16> = sports(1).filter(|p| p % 2 == 1).collect();
    let even: Vec<u16> = sports(1).filter(|p| p % 2 == 0).collect();
    wait_for("the new PMD to learn the flows of its queue", || {
        p1_flows_on(&dp, c1, 1) == odd && p1_flows_on(&dp, c0, 1) == even
    });

    // A rebalance under traffic (`pmd-rxq-rebalance`) keeps it flowing
    // (roundrobin: the same placement).
    dp.rebalance().unwrap();
    assert_eq!(
        placement(&dp),
        vec![(c0, vec![(1, 0), (2, 0)]), (c1, vec![(1, 1)])]
    );
    assert_flowing(&p1, &p2, "a rebalance");
    assert_eq!(p1_flows_on(&dp, c0, 1), even, "c0 never saw queue 1's");

    // 2 → 1: c1 stops with its flows; c0 polls everything and re-learns
    // the flows of queue 1 through upcalls.
    let calls = handler.calls();
    let change = dp.set_pmd_cores(&[c0]).unwrap();
    assert_eq!((change.added, change.removed), (vec![], vec![c1]));
    assert_eq!(dp.pmd_cores(), vec![c0]);
    assert_eq!(placement(&dp), vec![(c0, vec![(1, 0), (1, 1), (2, 0)])]);
    assert_eq!(dp.pmd_stats().unwrap().len(), 2);
    assert_flowing(&p1, &p2, "removing a PMD");
    wait_for("c0 to re-learn queue 1's flows", || {
        p1_flows_on(&dp, c0, 1) == sports(1).collect::<Vec<_>>()
    });
    assert!(handler.calls() >= calls + 4);

    // The same list again changes nothing; an empty list leaves the
    // non-PMD thread polling everything, and back.
    assert!(dp.set_pmd_cores(&[c0, c0]).unwrap().is_empty());
    let change = dp.set_pmd_cores(&[]).unwrap();
    assert_eq!(change.removed, vec![c0]);
    let on_main: usize = dp.rxq_status().unwrap().iter().map(|(_, q)| q.len()).sum();
    assert_eq!(on_main, 3);
    assert_flowing(&p1, &p2, "removing every PMD");
    dp.set_pmd_cores(&[c0]).unwrap();
    assert_flowing(&p1, &p2, "a PMD coming back");

    // Stop feeding, let the queues drain: every accepted frame left by
    // the other port and no buffer is held.
    feeder.stop.store(true, Ordering::Relaxed);
    let (into1, into2) = feeder.handle.join().unwrap();
    wait_for("every accepted frame to be forwarded", || {
        p2.stats().tx_packets == into1 && p1.stats().tx_packets == into2
    });
    assert!(into1 > 2000 && into2 > 2000, "fed {into1} and {into2}");
    assert_eq!(p1.pool().in_use() + p2.pool().in_use(), 0);
    let drops: u64 = dp
        .pmd_stats()
        .unwrap()
        .iter()
        .flat_map(|r| r.drops.iter().map(|(_, n)| *n))
        .sum();
    assert_eq!(drops, 0, "nothing dropped");

    dp.shutdown();
    drop(dp);
    assert_eq!(p1.pool().in_use() + p2.pool().in_use(), 0);
}
