//! Every way a PMD deletes a megaflow copy tells the upcall handler the
//! copy's final statistics (`UpcallHandler::flow_removed`), with the PMD
//! that held it and its creation time, which is the `now_ms` the PMD
//! upcalled with (the daemon's rule credits rely on both): a `FlowDel`
//! (what `dpctl/del-flow` and the revalidator send; here the real
//! revalidator too), a flush, and a port's removal.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow_table::FlowStats;
use dp_core::packet::Packet;
use dp_pmd::netdev::dummy::DummyNetdev;
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg};
use dp_pmd::revalidator::{Revalidator, RevalidatorConfig};
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler, Upcalled};
use testbed::datapath::{two_dummy_ports, udp4_frame};

/// A copy's removal as the handler heard it.
#[derive(Clone, Debug, PartialEq)]
struct Removed {
    ufid: u128,
    pmd: PmdIdentity,
    created_ms: u64,
    packets: u64,
    bytes: u64,
}

/// One megaflow per IPv4 destination → output 2; records the `now_ms` of
/// each upcall and every removal.
#[derive(Debug, Default)]
struct Recorder {
    upcalled_ms: Mutex<Vec<u64>>,
    removed: Mutex<Vec<Removed>>,
}

impl UpcallHandler for Recorder {
    fn translate(
        &self,
        _: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.dl_type = u16::MAX;
        mask.nw_dst = [255; 4];
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(vec![Action::Output(2)]),
        })
    }

    fn translate_upcall(
        &self,
        key: &FlowKey,
        packet: &Packet,
        now_ms: u64,
        _: PmdIdentity,
        mask: &mut FlowKey,
    ) -> Result<Upcalled, UpcallError> {
        self.upcalled_ms.lock().unwrap().push(now_ms);
        let Translation::Megaflow { mask: m, actions } =
            self.translate(key, Some(packet), now_ms)?
        else {
            unreachable!("this handler always installs");
        };
        *mask = m;
        Ok(Upcalled {
            actions,
            install: true,
            ufid: None,
        })
    }

    fn flow_removed(&self, ufid: u128, pmd: PmdIdentity, created_ms: u64, stats: &FlowStats) {
        self.removed.lock().unwrap().push(Removed {
            ufid,
            pmd,
            created_ms,
            packets: stats.packets,
            bytes: stats.bytes,
        });
    }

    fn version(&self) -> u64 {
        0
    }
}

const IDENTITY: PmdIdentity = PmdIdentity::Pmd {
    numa_id: 0,
    core_id: 3,
};

fn setup() -> (Arc<Recorder>, Pmd, Arc<DummyNetdev>) {
    let handler = Arc::new(Recorder::default());
    let mut pmd = Pmd::new(
        PmdConfig {
            identity: IDENTITY,
            upcall_share_pct: 0,
            ..PmdConfig::default()
        },
        handler.clone(),
        Arc::new(AtomicUsize::new(1000)),
    );
    let (p1, _p2) = two_dummy_ports(&mut pmd);
    (handler, pmd, p1)
}

/// `n` packets to 10.0.0.`dst`, polled at `now_ms`.
fn send(pmd: &mut Pmd, p1: &DummyNetdev, dst: u8, n: usize, now_ms: u64) {
    for _ in 0..n {
        p1.receive(0, &udp4_frame([10, 0, 0, 1], [10, 0, 0, dst], 1, 2))
            .unwrap();
    }
    assert_eq!(pmd.poll_once(now_ms * 1_000_000), n);
}

fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    let mut flows: Vec<FlowDump> = rx.recv().unwrap();
    flows.sort_by_key(|f| f.key.nw_dst);
    flows
}

/// What the handler must hear when `f` is deleted with its stats as now.
fn removed(f: &FlowDump) -> Removed {
    Removed {
        ufid: f.ufid,
        pmd: f.pmd,
        created_ms: f.created_ms,
        packets: f.stats.packets,
        bytes: f.stats.bytes,
    }
}

#[test]
fn flow_del_flush_and_port_removal_report_final_stats() {
    let (handler, mut pmd, p1) = setup();
    send(&mut pmd, &p1, 2, 3, 7);
    send(&mut pmd, &p1, 2, 2, 9);
    send(&mut pmd, &p1, 3, 1, 11);
    assert_eq!(*handler.upcalled_ms.lock().unwrap(), [7, 11]);
    let flows = dump(&mut pmd);
    assert_eq!(flows.len(), 2);
    // The install's creation time is the upcall's now_ms.
    assert_eq!((flows[0].created_ms, flows[1].created_ms), (7, 11));
    assert_eq!(flows[0].pmd, IDENTITY);
    assert_eq!(flows[0].stats.packets, 5);

    // FlowDel: reported once, with what the reply dumps; an unknown UFID
    // reports nothing.
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(
        PmdMsg::FlowDel {
            ufid: flows[0].ufid,
            reply: Some(tx),
        },
        0,
    );
    let last = rx.recv().unwrap().expect("the flow");
    assert_eq!(*handler.removed.lock().unwrap(), [removed(&last)]);
    pmd.handle(
        PmdMsg::FlowDel {
            ufid: flows[0].ufid,
            reply: None,
        },
        0,
    );
    assert_eq!(handler.removed.lock().unwrap().len(), 1);

    // A flush reports every copy.
    handler.removed.lock().unwrap().clear();
    send(&mut pmd, &p1, 2, 4, 20);
    let flows = dump(&mut pmd);
    pmd.handle(PmdMsg::FlowFlush, 0);
    let mut heard = handler.removed.lock().unwrap().split_off(0);
    heard.sort_by_key(|r| r.created_ms);
    assert_eq!(heard, [removed(&flows[1]), removed(&flows[0])]);
    assert!(dump(&mut pmd).is_empty());

    // Removing the input port deletes (and reports) its flows.
    send(&mut pmd, &p1, 5, 2, 30);
    let flows = dump(&mut pmd);
    pmd.remove_port(1, 0);
    assert_eq!(*handler.removed.lock().unwrap(), [removed(&flows[0])]);
    assert!(dump(&mut pmd).is_empty());
}

/// The revalidator's deletes (a purge here; idle and retranslation
/// deletes send the same `FlowDel`) reach the handler with each copy's
/// final statistics. The test steps the PMD: it handles the
/// revalidator's messages itself.
#[test]
fn revalidator_deletes_report_final_stats() {
    let (handler, mut pmd, p1) = setup();
    send(&mut pmd, &p1, 2, 6, 1);
    send(&mut pmd, &p1, 3, 2, 2);
    let flows = dump(&mut pmd);
    let (tx, rx) = crossbeam_channel::unbounded();
    let revalidator = Revalidator::spawn(
        vec![tx],
        handler.clone(),
        Arc::new(AtomicUsize::new(1000)),
        RevalidatorConfig {
            interval_ms: 20,
            ..RevalidatorConfig::default()
        },
    )
    .unwrap();
    revalidator.purge();
    let deadline = Instant::now() + Duration::from_secs(20);
    while handler.removed.lock().unwrap().len() < 2 && Instant::now() < deadline {
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(50)) {
            pmd.handle(msg, 0);
        }
    }
    // Its next dump request then fails at once instead of waiting for a
    // reply.
    drop(rx);
    revalidator.stop();
    let mut heard = handler.removed.lock().unwrap().split_off(0);
    heard.sort_by_key(|r| r.created_ms);
    assert_eq!(heard, [removed(&flows[0]), removed(&flows[1])]);
}
