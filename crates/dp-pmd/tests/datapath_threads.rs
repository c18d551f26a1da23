//! The datapath with real PMD threads on this machine's two cores: rx
//! queues spread per policy, per-PMD flow tables, dumps that aggregate all
//! PMDs, port removal and shutdown under traffic with every buffer back.
//! Each test bounds its run time and stops its threads.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dp_core::action::Action;
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

fn two_cores() -> Vec<usize> {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .expect("core ids")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(
        cores.len() >= 2,
        "this test needs two cores, found {cores:?}"
    );
    cores[..2].to_vec()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config(cores: Vec<usize>) -> DatapathConfig {
    DatapathConfig {
        pmd_cores: cores,
        rxq_assign: RxqAssign::RoundRobin,
        // Idle PMDs back off so two PMDs do not starve the test on two cores.
        pmd_sleep_max_us: 200,
        ..DatapathConfig::default()
    }
}

#[test]
fn two_pmds_share_the_queues_and_dumps_aggregate() {
    let cores = two_cores();
    let handler = Arc::new(port_swap());
    let mut dp = Datapath::new(config(cores.clone()), handler.clone()).unwrap();
    let p1 = Arc::new(DummyNetdev::new(
        "p1",
        DummyConfig {
            n_rxq: 2,
            n_txq: 2,
            ..DummyConfig::default()
        },
    ));
    let p2 = Arc::new(DummyNetdev::new(
        "p2",
        DummyConfig {
            n_rxq: 2,
            n_txq: 2,
            ..DummyConfig::default()
        },
    ));
    assert_eq!(dp.add_port(p1.clone(), PortOptions::default()).unwrap(), 1);
    assert_eq!(dp.add_port(p2.clone(), PortOptions::default()).unwrap(), 2);

    let rxqs = dp.rxq_status().unwrap();
    for (who, queues) in &rxqs {
        if let PmdIdentity::Pmd { .. } = who {
            assert_eq!(
                queues.len(),
                2,
                "roundrobin gives each PMD two of the four queues: {rxqs:?}"
            );
        }
    }
    let show = dp.pmd_rxq_show().unwrap();
    assert!(
        show.contains(&format!("core_id {}:", cores[0]))
            && show.contains(&format!("core_id {}:", cores[1])),
        "{show}"
    );

    // The same flow arrives on both queues, hence on both PMDs.
    for qid in 0..2 {
        for _ in 0..10 {
            p1.receive(qid, &udp(7)).unwrap();
        }
    }
    let mut sent = 0;
    wait_for("20 packets out of p2", || {
        sent += p2.take_sent().len();
        sent >= 20
    });
    let flows = dp.dump_flows().unwrap();
    let holders: Vec<PmdIdentity> = flows.iter().map(|f| f.pmd).collect();
    assert_eq!(flows.len(), 2, "one copy per PMD: {holders:?}");
    assert_eq!(flows[0].ufid, flows[1].ufid, "same megaflow, same UFID");
    assert_eq!(flows.iter().map(|f| f.stats.packets).sum::<u64>(), 20);
    let stats = dp.pmd_stats().unwrap();
    assert_eq!(
        stats.iter().map(|r| r.stats.packets_received).sum::<u64>(),
        20
    );
    let text = dp.pmd_stats_show().unwrap();
    assert!(text.starts_with("main thread:\n"), "{text}");
    assert_eq!(text.matches("packets received:").count(), 3);
    // Auto by default; 20 packets decide nothing: not in use.
    assert_eq!(
        text.matches("  emc: inactive (emc-enable=auto)\n  smc: inactive (smc-enable=auto)\n")
            .count(),
        3,
        "{text}"
    );

    dp.shutdown();
    drop(dp);
    assert_eq!(p1.pool().in_use(), 0);
}

#[test]
fn port_removal_and_shutdown_under_traffic_return_every_buffer() {
    let cores = two_cores();
    let handler = Arc::new(port_swap());
    let mut dp = Datapath::new(config(cores), handler).unwrap();
    let p1 = Arc::new(DummyNetdev::new(
        "p1",
        DummyConfig {
            n_rxq: 2,
            ..DummyConfig::default()
        },
    ));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    dp.add_port(p1.clone(), PortOptions::default()).unwrap();
    dp.add_port(p2.clone(), PortOptions::default()).unwrap();
    assert!(
        dp.add_port(p2.clone(), PortOptions::default()).is_err(),
        "duplicate port name"
    );

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (p1, p2, stop) = (p1.clone(), p2.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u16;
            while !stop.load(Ordering::Relaxed) {
                let _ = p1.receive(usize::from(n % 2), &udp(n % 50));
                let _ = p2.receive(0, &udp(n % 50));
                n = n.wrapping_add(1);
                if n.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    dp.del_port("p2").unwrap();
    assert!(dp.port_no("p2").is_none());
    assert!(
        dp.dump_flows().unwrap().iter().all(|f| f.key.in_port != 2),
        "p2's flows are gone"
    );
    std::thread::sleep(Duration::from_millis(100));
    drop(dp);
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    // Packets still queued in the dummy rx rings belong to the ports; once
    // the ports go, every buffer is back.
    let (pool1, pool2) = (p1.pool().clone(), p2.pool().clone());
    drop((p1, p2));
    assert_eq!(pool1.in_use() + pool2.in_use(), 0);
}
