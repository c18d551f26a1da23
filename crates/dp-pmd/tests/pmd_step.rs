//! Deterministic single-PMD tests: a `Pmd` stepped iteration by iteration
//! over dummy ports, with a scripted upcall handler and an injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dp_core::action::Action;
use dp_core::cascade::CascadeConfig;
use dp_core::flow::FlowKey;
use dp_core::packet::Packet;
use dp_pmd::netdev::dummy::DummyNetdev;
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg};
use dp_pmd::revalidator::{DeleteReason, FlowAction, RevalidatorConfig, plan_round};
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::{FlowActions, Translation, UpcallError, UpcallHandler};
use testbed::datapath::udp4_frame;

/// Forwards port 1 → port 2 and port 2 → port 1, matching in_port,
/// dl_type and the IPv4 destination (so different destinations are
/// different megaflows). Packets to 10.0.0.66 fail translation.
#[derive(Debug, Default)]
struct Scripted {
    calls: AtomicU64,
    version: AtomicU64,
    /// When set, outputs go to this port instead (a rule change).
    redirect: AtomicU64,
}

impl Scripted {
    fn mask() -> FlowKey {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.dl_type = u16::MAX;
        mask.nw_dst = [255; 4];
        mask
    }
}

impl UpcallHandler for Scripted {
    fn translate(
        &self,
        key: &FlowKey,
        _packet: Option<&Packet>,
        _now_ms: u64,
    ) -> Result<Translation, UpcallError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if key.nw_dst == [10, 0, 0, 66] {
            return Err(UpcallError("no rule for 10.0.0.66".into()));
        }
        let out = match self.redirect.load(Ordering::Relaxed) {
            0 => {
                if key.in_port == 1 {
                    2
                } else {
                    1
                }
            }
            port => port as u32,
        };
        let actions: FlowActions = Arc::from(vec![Action::Output(out)]);
        Ok(Translation::Megaflow {
            mask: Scripted::mask(),
            actions,
        })
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

/// UDP 10.0.0.1:`sport` → 10.0.0.`dst_last`:53.
fn udp_frame(dst_last: u8, sport: u16) -> Vec<u8> {
    udp4_frame([10, 0, 0, 1], [10, 0, 0, dst_last], sport, 53)
}

struct Rig {
    pmd: Pmd,
    p1: Arc<DummyNetdev>,
    p2: Arc<DummyNetdev>,
    handler: Arc<Scripted>,
    flow_limit: Arc<AtomicUsize>,
}

fn rig(emc_insert_inv_prob: u32, upcall_budget: usize) -> Rig {
    let handler = Arc::new(Scripted::default());
    let flow_limit = Arc::new(AtomicUsize::new(1000));
    let config = PmdConfig {
        identity: PmdIdentity::Pmd {
            numa_id: 0,
            core_id: 0,
        },
        cascade: CascadeConfig {
            emc_insert_inv_prob,
            emc: dp_core::cascade::EmcMode::On,
            ..CascadeConfig::default()
        },
        upcall_budget,
        ..PmdConfig::default()
    };
    let mut pmd = Pmd::new(config, handler.clone(), flow_limit.clone());
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    Rig {
        pmd,
        p1,
        p2,
        handler,
        flow_limit,
    }
}

const MS: u64 = 1_000_000;

fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    rx.recv().unwrap()
}

#[test]
fn twenty_identical_packets_make_one_upcall_and_nineteen_emc_hits() {
    let mut r = rig(1, 64);
    for i in 0..20 {
        r.p1.receive(0, &udp_frame(2, 1000)).unwrap();
        assert_eq!(r.pmd.poll_once(i * MS), 1);
    }
    let s = r.pmd.stats();
    assert_eq!(r.handler.calls.load(Ordering::Relaxed), 1);
    assert_eq!(
        (
            s.packets_received,
            s.miss_upcall_ok,
            s.lookup.emc_hits,
            s.lookup.megaflow_hits
        ),
        (20, 1, 19, 0)
    );
    assert_eq!(r.p2.take_sent().len(), 20);
    assert!(r.p1.take_sent().is_empty());
    let flows = dump(&mut r.pmd);
    assert_eq!(flows.len(), 1);
    assert_eq!(
        (flows[0].stats.packets, flows[0].stats.bytes),
        (20, 20 * 60)
    );
    assert_eq!(flows[0].stats.used_ms, 19);
    assert_eq!(&*flows[0].actions, &[Action::Output(2)]);
    drop(r.pmd);
    assert_eq!(r.p1.pool().in_use(), 0);
}

#[test]
fn without_emc_hits_are_megaflow_hits_and_a_batch_shares_one_upcall() {
    let mut r = rig(0, 64);
    for _ in 0..10 {
        r.p1.receive(0, &udp_frame(2, 1000)).unwrap();
    }
    assert_eq!(r.pmd.poll_once(0), 10);
    for _ in 0..5 {
        r.p1.receive(0, &udp_frame(2, 1000)).unwrap();
    }
    r.pmd.poll_once(MS);
    let s = r.pmd.stats();
    // One upcall for the first batch; its other nine packets found the
    // flow it installed; the second batch hits the classifier.
    assert_eq!(r.handler.calls.load(Ordering::Relaxed), 1);
    assert_eq!(
        (
            s.miss_upcall_ok,
            s.lookup.megaflow_hits,
            s.lookup.emc_hits,
            s.lookup.misses
        ),
        (1, 14, 0, 1)
    );
    assert_eq!(r.p2.take_sent().len(), 15);
}

#[test]
fn failed_upcall_drops_and_counts() {
    let mut r = rig(1, 64);
    r.p1.receive(0, &udp_frame(66, 1)).unwrap();
    r.pmd.poll_once(0);
    let s = r.pmd.stats();
    assert_eq!((s.miss_upcall_failed, s.miss_upcall_ok), (1, 0));
    assert!(r.p2.take_sent().is_empty());
    assert_eq!(r.p1.pool().in_use(), 0);
}

#[test]
fn upcall_budget_bounds_upcalls_per_iteration() {
    let mut r = rig(1, 2);
    for dst in 1..=5 {
        r.p1.receive(0, &udp_frame(dst + 10, 1)).unwrap();
    }
    r.pmd.poll_once(0);
    let s = r.pmd.stats();
    assert_eq!(r.handler.calls.load(Ordering::Relaxed), 2);
    assert_eq!(
        (
            s.miss_upcall_ok,
            s.miss_upcall_failed,
            s.upcall_budget_exceeded
        ),
        (2, 3, 3)
    );
    assert_eq!(r.p2.take_sent().len(), 2);
    // Established flows keep forwarding while new ones queue for budget.
    for dst in 1..=5 {
        r.p1.receive(0, &udp_frame(dst + 10, 1)).unwrap();
    }
    r.pmd.poll_once(MS);
    assert_eq!(r.p2.take_sent().len(), 4);
    assert_eq!(r.p1.pool().in_use(), 0);
}

#[test]
fn flow_limit_reached_still_forwards_without_installing() {
    let mut r = rig(1, 64);
    r.flow_limit.store(1, Ordering::Relaxed);
    r.p1.receive(0, &udp_frame(2, 1)).unwrap();
    r.p1.receive(0, &udp_frame(3, 1)).unwrap();
    r.pmd.poll_once(0);
    let s = r.pmd.stats();
    assert_eq!((s.miss_upcall_ok, s.upcall_flow_limit_hit), (2, 1));
    assert_eq!(r.pmd.flows().len(), 1);
    assert_eq!(
        r.p2.take_sent().len(),
        2,
        "the over-limit packet is still forwarded"
    );
}

#[test]
fn flows_follow_ports_and_removal_returns_every_buffer() {
    let mut r = rig(1, 64);
    r.p1.receive(0, &udp_frame(2, 1)).unwrap();
    r.p2.receive(0, &udp_frame(3, 1)).unwrap();
    r.pmd.poll_once(0);
    assert_eq!(r.pmd.flows().len(), 2);
    let (tx, rx) = crossbeam_channel::bounded(1);
    r.pmd.handle(
        PmdMsg::RemovePort {
            port_no: 1,
            reply: tx,
        },
        MS,
    );
    assert_eq!(rx.recv().unwrap().len(), 1, "port 1's rx queue comes back");
    assert_eq!(r.pmd.flows().len(), 1, "flows received on port 1 are gone");
    // Output to the removed port is now a counted drop, not a leak.
    r.p2.receive(0, &udp_frame(3, 1)).unwrap();
    r.pmd.poll_once(2 * MS);
    assert!(r.p1.take_sent().len() <= 1);
    drop(r.pmd);
    assert_eq!(r.p1.pool().in_use() + r.p2.pool().in_use(), 0);
}

fn dump_of(ufid: u128, used_ms: u64, created_ms: u64, mask: FlowKey, out: u32) -> FlowDump {
    let mut key = FlowKey::ZERO;
    key.in_port = 1;
    key.dl_type = 0x0800;
    key.nw_dst = [10, 0, 0, 2];
    FlowDump {
        ufid,
        key,
        mask,
        actions: Arc::from(vec![Action::Output(out)]),
        stats: dp_core::flow_table::FlowStats {
            packets: 1,
            bytes: 60,
            used_ms,
            tcp_flags: 0,
        },
        created_ms,
        pmd: PmdIdentity::Main,
    }
}

#[test]
fn revalidator_expires_idle_flows_with_an_injected_clock() {
    let config = RevalidatorConfig {
        max_idle_ms: 10_000,
        max_flow_limit: 100,
        interval_ms: 500,
    };
    let flows = [
        dump_of(1, 1_000, 0, Scripted::mask(), 2),
        dump_of(2, 9_000, 0, Scripted::mask(), 2),
        dump_of(3, 0, 5_000, Scripted::mask(), 2),
    ];
    let plan = plan_round(&flows, 12_000, 100, &config, None);
    assert_eq!(
        plan,
        vec![FlowAction::Delete {
            ufid: 1,
            reason: DeleteReason::Idle
        }]
    );
    let plan = plan_round(&flows, 15_000, 100, &config, None);
    assert_eq!(plan.len(), 2, "flow 3 was never used: idle since creation");
    // Over the limit, idle time drops to 100 ms.
    let plan = plan_round(&flows, 9_150, 2, &config, None);
    assert_eq!(plan.len(), 3);
    // Over twice the limit, everything goes.
    let plan = plan_round(&flows, 9_001, 1, &config, None);
    assert!(plan.iter().all(|a| matches!(
        a,
        FlowAction::Delete {
            reason: DeleteReason::FlowLimit,
            ..
        }
    )));
}

#[test]
fn revalidator_retranslates_after_a_version_bump() {
    let handler = Scripted::default();
    let config = RevalidatorConfig::default();
    let flows = [dump_of(7, 100, 0, Scripted::mask(), 2)];
    // Same translation: nothing to do.
    assert!(plan_round(&flows, 200, 1000, &config, Some(&handler)).is_empty());
    // Rule change: new actions, same mask → modify in place.
    handler.redirect.store(9, Ordering::Relaxed);
    handler.version.store(1, Ordering::Relaxed);
    let plan = plan_round(&flows, 200, 1000, &config, Some(&handler));
    assert_eq!(
        plan,
        vec![FlowAction::Modify {
            ufid: 7,
            actions: Arc::from(vec![Action::Output(9)])
        }]
    );
    // A flow installed with a different mask must go.
    let mut narrow = Scripted::mask();
    narrow.tp_dst = u16::MAX;
    let flows = [dump_of(8, 100, 0, narrow, 2)];
    assert_eq!(
        plan_round(&flows, 200, 1000, &config, Some(&handler)),
        vec![FlowAction::Delete {
            ufid: 8,
            reason: DeleteReason::Retranslation
        }]
    );
}

#[test]
fn control_messages_put_modify_and_delete_flows() {
    let mut r = rig(1, 64);
    let mut key = FlowKey::ZERO;
    key.in_port = 1;
    key.dl_type = 0x0800;
    key.nw_dst = [10, 0, 0, 9];
    let (tx, rx) = crossbeam_channel::bounded(1);
    r.pmd.handle(
        PmdMsg::FlowPut {
            key,
            mask: Scripted::mask(),
            ufid: Some(0x1234),
            actions: Arc::from(vec![Action::Output(1)]),
            mode: dp_pmd::pmd::msg::PutMode::Create,
            reply: tx,
        },
        0,
    );
    assert_eq!(rx.recv().unwrap(), Ok(0x1234));
    r.p1.receive(0, &udp_frame(9, 1)).unwrap();
    r.pmd.poll_once(MS);
    assert_eq!(
        r.handler.calls.load(Ordering::Relaxed),
        0,
        "the installed flow served it"
    );
    assert_eq!(r.p1.take_sent().len(), 1);
    r.pmd.handle(
        PmdMsg::FlowModifyActions {
            ufid: 0x1234,
            actions: Arc::from(vec![Action::Output(2)]),
        },
        MS,
    );
    r.p1.receive(0, &udp_frame(9, 1)).unwrap();
    r.pmd.poll_once(2 * MS);
    assert_eq!(r.p2.take_sent().len(), 1);
    assert_eq!(dump(&mut r.pmd)[0].stats.packets, 2, "modify keeps stats");
    let (tx, rx) = crossbeam_channel::bounded(1);
    r.pmd.handle(
        PmdMsg::FlowDel {
            ufid: 0x1234,
            reply: Some(tx),
        },
        3 * MS,
    );
    assert_eq!(rx.recv().unwrap().map(|d| d.ufid), Some(0x1234));
    assert!(dump(&mut r.pmd).is_empty());
}
