//! The PMD's receive batch (kept between iterations, `rx_batch` in
//! `pmd/mod.rs`): idle polls between bursts leave nothing behind, and
//! packets a queue hands over together with an error (a device going
//! away mid-burst) are forwarded in that iteration rather than dropped
//! uncounted or carried into the next queue's poll.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::netdev::{Netdev, NetdevError, RxQueue};
use dp_core::packet::PacketBatch;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{Pmd, PmdConfig, PolledRxq};
use testbed::datapath::{PortSwap, udp_frame};

/// A dummy port's queue that reports the device gone after every burst
/// it delivers, as a driver may when the port is unplugged mid-burst.
#[derive(Debug)]
struct FailingAfterBurst(Box<dyn RxQueue>);

impl RxQueue for FailingAfterBurst {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        match self.0.recv(batch)? {
            0 => Ok(0),
            _ => Err(NetdevError::Disconnected { port: "p1".into() }),
        }
    }
}

#[test]
fn received_packets_are_forwarded_from_their_own_queue_only() {
    let mut pmd = Pmd::new(
        PmdConfig::default(),
        Arc::new(PortSwap),
        Arc::new(AtomicUsize::new(1000)),
    );
    let ports: Vec<Arc<DummyNetdev>> = (1..=2)
        .map(|i| Arc::new(DummyNetdev::new(&format!("p{i}"), DummyConfig::default())))
        .collect();
    let failing = FailingAfterBurst(ports[0].open_rxq(0).unwrap());
    pmd.add_rxq(PolledRxq::new(1, "p1", 0, Box::new(failing)));
    pmd.add_rxq(PolledRxq::new(2, "p2", 0, ports[1].open_rxq(0).unwrap()));
    pmd.add_txq(1, ports[0].open_txq(0).unwrap());
    pmd.add_txq(2, ports[1].open_txq(0).unwrap());

    // Idle polls first: nothing received, nothing sent.
    for t in 1..=3 {
        assert_eq!(pmd.poll_once(t * 1_000_000), 0);
    }
    for i in 0..5 {
        ports[0]
            .receive(0, &udp_frame([10, 0, 0, 1], 1000 + i, 53))
            .unwrap();
    }
    ports[1]
        .receive(0, &udp_frame([10, 0, 0, 2], 2000, 53))
        .unwrap();
    // p1's queue delivers 5 packets with an error, p2's one: all six are
    // forwarded by port swap, each to the other port.
    assert_eq!(pmd.poll_once(4_000_000), 6);
    assert_eq!(ports[1].take_sent().len(), 5, "p1's packets out of p2");
    assert_eq!(ports[0].take_sent().len(), 1, "p2's packet out of p1");
    assert_eq!(pmd.poll_once(5_000_000), 0);
    assert_eq!(pmd.stats().packets_received, 6);
    drop(pmd);
    for p in &ports {
        assert_eq!(p.pool().in_use(), 0, "every buffer back");
    }
}
