//! The install step of an upcall (`pmd/install.rs`), stepped on one PMD
//! over dummy ports: a refused install must never hand the packet another
//! flow's actions.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow_table::ufid_from_match;
use dp_core::packet::Packet;
use dp_pmd::pmd::msg::PutMode;
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use testbed::datapath::udp4_frame;

/// in_port + dl_type + IPv4 destination → output 2.
#[derive(Debug)]
struct ToPort2;

fn mask() -> FlowKey {
    let mut mask = FlowKey::ZERO;
    mask.in_port = u32::MAX;
    mask.dl_type = u16::MAX;
    mask.nw_dst = [255; 4];
    mask
}

fn key_to(dst_last: u8) -> FlowKey {
    let mut key = FlowKey::ZERO;
    key.in_port = 1;
    key.dl_type = 0x0800;
    key.nw_dst = [10, 0, 0, dst_last];
    key
}

impl UpcallHandler for ToPort2 {
    fn translate(
        &self,
        _: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        Ok(Translation::Megaflow {
            mask: mask(),
            actions: Arc::from(vec![Action::Output(2)]),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// UDP 10.0.0.1:0 → 10.0.0.`dst_last`:0.
fn udp_frame(dst_last: u8) -> Vec<u8> {
    udp4_frame([10, 0, 0, 1], [10, 0, 0, dst_last], 0, 0)
}

fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    rx.recv().unwrap()
}

#[test]
fn a_ufid_taken_by_another_match_gets_the_translation_not_that_flow() {
    let mut pmd = Pmd::new(
        PmdConfig::default(),
        Arc::new(ToPort2),
        Arc::new(AtomicUsize::new(1000)),
    );
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    // A control-plane flow for 10.0.0.9 that carries the UFID the PMD
    // will generate for 10.0.0.2's megaflow: what a hash collision
    // between two matches looks like to the install step.
    let colliding = ufid_from_match(&key_to(2), &mask());
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(
        PmdMsg::FlowPut {
            key: key_to(9),
            mask: mask(),
            ufid: Some(colliding),
            actions: Arc::from(vec![Action::Output(1)]),
            mode: PutMode::Create,
            reply: tx,
        },
        0,
    );
    assert_eq!(rx.recv().unwrap(), Ok(colliding));

    for _ in 0..3 {
        p1.receive(0, &udp_frame(2)).unwrap();
        pmd.poll_once(1_000_000);
    }
    // Each packet got its own translation (output 2), none the other
    // flow's output 1; nothing was installed over the existing UFID.
    assert_eq!(p2.take_sent().len(), 3);
    assert!(
        p1.take_sent().is_empty(),
        "the colliding flow's actions ran"
    );
    let flows = dump(&mut pmd);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].stats.packets, 0);
    assert_eq!(pmd.stats().miss_upcall_ok, 3);

    // The flow that holds the UFID still serves its own packets.
    p1.receive(0, &udp_frame(9)).unwrap();
    pmd.poll_once(2_000_000);
    assert_eq!(p1.take_sent().len(), 1);
    drop(pmd);
    assert_eq!(p1.pool().in_use(), 0);
}
