//! A handler that gives the megaflow's UFID with its translation
//! (`UpcallHandler::translate_upcall`, as the daemon's bridges do) gets its
//! flow installed under exactly the UFID the table computes itself when
//! none is given, and the flow serves the next packets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow_table::ufid_from_match;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler, Upcalled};
use testbed::datapath::udp4_frame;

/// dl_type + IPv4 destination → output 2. The mask leaves `in_port`
/// wildcarded (the table makes it exact), so the given UFID is only right
/// if it is computed the way the bridges do (in_port exact).
#[derive(Debug, Default)]
struct Handler {
    give_ufid: bool,
    upcalls: AtomicU64,
}

fn mask() -> FlowKey {
    let mut mask = FlowKey::ZERO;
    mask.dl_type = u16::MAX;
    mask.nw_dst = [255; 4];
    mask
}

impl UpcallHandler for Handler {
    fn translate(
        &self,
        _: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        self.upcalls.fetch_add(1, Ordering::Relaxed);
        Ok(Translation::Megaflow {
            mask: mask(),
            actions: Arc::from(vec![Action::Output(2)]),
        })
    }

    fn translate_upcall(
        &self,
        key: &FlowKey,
        packet: &Packet,
        now_ms: u64,
        _: PmdIdentity,
        mask_out: &mut FlowKey,
    ) -> Result<Upcalled, UpcallError> {
        let Translation::Megaflow { mask: m, actions } =
            self.translate(key, Some(packet), now_ms)?
        else {
            unreachable!("this handler always installs");
        };
        *mask_out = m;
        // As src/bridge.rs.
        let mut m = mask();
        m.in_port = u32::MAX;
        Ok(Upcalled {
            actions,
            install: true,
            ufid: self.give_ufid.then(|| ufid_from_match(&key.masked(&m), &m)),
        })
    }

    fn version(&self) -> u64 {
        0
    }
}

/// UDP 10.0.0.1:`sport` → 10.0.0.`dst_last`:0.
fn udp_frame(dst_last: u8, sport: u8) -> Vec<u8> {
    udp4_frame([10, 0, 0, 1], [10, 0, 0, dst_last], u16::from(sport), 0)
}

/// Sends two packets to .2 and one to .3 in one batch, then one more to
/// .2; returns the UFIDs installed (sorted) and the upcall count.
fn run(give_ufid: bool) -> (Vec<u128>, u64) {
    let handler = Arc::new(Handler {
        give_ufid,
        ..Handler::default()
    });
    let mut pmd = Pmd::new(
        PmdConfig {
            upcall_share_pct: 0,
            ..PmdConfig::default()
        },
        handler.clone(),
        Arc::new(AtomicUsize::new(1000)),
    );
    let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    pmd.add_rxq(PolledRxq::new(1, "p1", 0, p1.open_rxq(0).unwrap()));
    pmd.add_txq(2, p2.open_txq(0).unwrap());
    for (dst, sport) in [(2, 1), (3, 1), (2, 2)] {
        p1.receive(0, &udp_frame(dst, sport)).unwrap();
    }
    assert_eq!(pmd.poll_once(0), 3);
    p1.receive(0, &udp_frame(2, 9)).unwrap();
    assert_eq!(pmd.poll_once(1_000_000), 1);
    assert_eq!(p2.take_sent().len(), 4);
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    let flows: Vec<FlowDump> = rx.recv().unwrap();
    let mut ufids: Vec<u128> = flows.iter().map(|f| f.ufid).collect();
    ufids.sort_unstable();
    (ufids, handler.upcalls.load(Ordering::Relaxed))
}

#[test]
fn a_given_ufid_is_the_one_the_table_computes() {
    let (computed, upcalls) = run(false);
    assert_eq!((computed.len(), upcalls), (2, 2));
    let (given, upcalls) = run(true);
    assert_eq!(upcalls, 2);
    assert_eq!(given, computed);
}
