//! Recirculation keeps a batch's order: packets that a flow sends through
//! `recirc` come out of the second pass in the order they arrived (TCP
//! through a decapsulating tunnel, or any `recirc`, must not see every
//! burst reversed).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::MAX_BURST;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use testbed::datapath::{Megaflows, udp_frame};

/// recirc_id 0: `recirc(1)`; recirc_id 1: output to port 2. Megaflows
/// match in_port and recirc_id only, so one flow per pass serves a whole
/// burst.
fn two_passes() -> Megaflows {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask.recirc_id = u32::MAX;
    Megaflows::new(mask, |key, _| {
        vec![if key.recirc_id == 0 {
            Action::Recirc(1)
        } else {
            Action::Output(2)
        }]
    })
}

fn sport(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

#[test]
fn recirculated_bursts_leave_in_arrival_order() {
    let mut pmd = Pmd::new(
        PmdConfig::default(),
        Arc::new(two_passes()),
        Arc::new(AtomicUsize::new(1000)),
    );
    let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    pmd.add_rxq(PolledRxq::new(1, "p1", 0, p1.open_rxq(0).unwrap()));
    pmd.add_txq(2, p2.open_txq(0).unwrap());

    // First burst installs both passes' flows; the next ones hit them
    // (caches included).
    let mut want = Vec::new();
    for burst in 0..3u16 {
        for i in 0..MAX_BURST as u16 {
            let port = burst * 100 + i;
            p1.receive(0, &udp_frame([10, 0, 0, 1], port, 9)).unwrap();
            want.push(port);
        }
        assert_eq!(pmd.poll_once(u64::from(burst + 1) * 1_000_000), MAX_BURST);
    }
    let sent: Vec<u16> = p2.take_sent().iter().map(|f| sport(f)).collect();
    assert_eq!(sent, want, "recirculation reordered the bursts");
    assert_eq!(pmd.stats().miss_upcall_ok, 2);
    drop(pmd);
    assert_eq!(p1.pool().in_use(), 0);
}
