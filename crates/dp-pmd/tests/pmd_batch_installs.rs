//! One rx batch of interleaved new flows under two masks, failed
//! translations in between: later misses find the megaflows the batch's
//! earlier upcalls installed (no second upcall), each distinct flow gets
//! exactly one, and the output keeps the datapath's order (flow groups in
//! the order of their first packet, packets in order within a group).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::cascade::CascadeConfig;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use testbed::datapath::udp4_frame;

/// Destinations below 10.0.0.100 match in_port + IPv4 destination;
/// from .100 up also the UDP source port (a second mask). 10.0.0.66
/// fails translation. The mask leaves `in_port` wildcarded (the table
/// makes it exact), as a translation may. Records each upcall's
/// (destination, source port).
#[derive(Debug, Default)]
struct TwoMasks {
    calls: Mutex<Vec<(u8, u16)>>,
}

impl UpcallHandler for TwoMasks {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        self.calls.lock().unwrap().push((key.nw_dst[3], key.tp_src));
        if key.nw_dst[3] == 66 {
            return Err(UpcallError("no rule for 10.0.0.66".into()));
        }
        let mut mask = FlowKey::ZERO;
        mask.dl_type = u16::MAX;
        mask.nw_dst = [255; 4];
        if key.nw_dst[3] >= 100 {
            mask.tp_src = u16::MAX;
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

/// UDP 10.0.0.1:`sport` → 10.0.0.`dst_last`:53.
fn udp_frame(dst_last: u8, sport: u16) -> Vec<u8> {
    udp4_frame([10, 0, 0, 1], [10, 0, 0, dst_last], sport, 53)
}

/// (destination, source port) of a sent frame.
fn flow_of(frame: &[u8]) -> (u8, u16) {
    (frame[33], u16::from_be_bytes([frame[34], frame[35]]))
}

#[test]
fn a_batch_of_new_flows_upcalls_each_once_and_keeps_group_order() {
    let handler = Arc::new(TwoMasks::default());
    let config = PmdConfig {
        // No EMC: every later hit is the classifier's, so the counters
        // below are exact.
        cascade: CascadeConfig {
            emc_insert_inv_prob: 0,
            ..CascadeConfig::default()
        },
        upcall_share_pct: 0,
        ..PmdConfig::default()
    };
    let mut pmd = Pmd::new(config, handler.clone(), Arc::new(AtomicUsize::new(1000)));
    let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    pmd.add_rxq(PolledRxq::new(1, "p1", 0, p1.open_rxq(0).unwrap()));
    pmd.add_txq(2, p2.open_txq(0).unwrap());

    let batch: [(u8, u16); 10] = [
        (2, 1),   // 0: upcall, flow A (dst .2)
        (3, 1),   // 1: upcall, flow B (dst .3)
        (2, 2),   // 2: A (installed by 0)
        (100, 1), // 3: upcall, flow C (dst .100, sport 1)
        (66, 1),  // 4: upcall fails, dropped
        (100, 1), // 5: C
        (100, 2), // 6: upcall, flow D (dst .100, sport 2): C's mask, not C
        (3, 9),   // 7: B
        (66, 2),  // 8: upcall fails again (nothing installed), dropped
        (2, 1),   // 9: A
    ];
    for (dst, sport) in batch {
        p1.receive(0, &udp_frame(dst, sport)).unwrap();
    }
    assert_eq!(pmd.poll_once(0), batch.len());

    assert_eq!(
        *handler.calls.lock().unwrap(),
        vec![(2, 1), (3, 1), (100, 1), (66, 1), (100, 2), (66, 2)]
    );
    let s = pmd.stats();
    assert_eq!(
        (
            s.miss_upcall_ok,
            s.miss_upcall_failed,
            s.lookup.megaflow_hits
        ),
        (4, 2, 4)
    );
    let sent: Vec<(u8, u16)> = p2.take_sent().iter().map(|f| flow_of(f)).collect();
    assert_eq!(
        sent,
        vec![
            (2, 1),
            (2, 2),
            (2, 1),
            (3, 1),
            (3, 9),
            (100, 1),
            (100, 1),
            (100, 2)
        ]
    );
    let no_flow = pmd
        .drop_counts()
        .into_iter()
        .find(|(name, _)| *name == "datapath_drop_no_flow")
        .map(|(_, n)| n);
    assert_eq!(no_flow, Some(2));

    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    let flows: Vec<FlowDump> = rx.recv().unwrap();
    let mut packets: Vec<u64> = flows.iter().map(|f| f.stats.packets).collect();
    packets.sort_unstable();
    assert_eq!(packets, vec![1, 2, 2, 3]);

    // The next batch hits all four flows with no further upcall.
    for (dst, sport) in [(100, 2), (3, 5), (2, 7), (100, 1)] {
        p1.receive(0, &udp_frame(dst, sport)).unwrap();
    }
    assert_eq!(pmd.poll_once(1_000_000), 4);
    assert_eq!(handler.calls.lock().unwrap().len(), 6);
    assert_eq!(p2.take_sent().len(), 4);
    drop(pmd);
    assert_eq!(p1.pool().in_use(), 0);
}
