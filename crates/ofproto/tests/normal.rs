//! NORMAL: learning, flooding, VLAN separation, aging with an injected
//! clock, flush on port removal, and revalidation signals.

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::odp_actions::format_odp_actions;
use ofproto::{Ofproto, PortConfig, VlanMode};

const A: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xa];
const B: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xb];
const BCAST: [u8; 6] = [0xff; 6];

/// p1 (odp 11) trunk, p2 (odp 12) access VLAN 10, p3 (odp 13) access
/// VLAN 20, p4 (odp 14) trunk of VLAN 10 only.
fn switch() -> Ofproto {
    let o = Ofproto::new_standalone("br0");
    o.add_port(PortConfig::new("p1", 11).with_ofport(1))
        .unwrap();
    o.add_port(
        PortConfig::new("p2", 12)
            .with_ofport(2)
            .with_vlan(VlanMode::Access(10)),
    )
    .unwrap();
    o.add_port(
        PortConfig::new("p3", 13)
            .with_ofport(3)
            .with_vlan(VlanMode::Access(20)),
    )
    .unwrap();
    o.add_port(
        PortConfig::new("p4", 14)
            .with_ofport(4)
            .with_vlan(VlanMode::Trunk(vec![10])),
    )
    .unwrap();
    o
}

fn eth(in_odp: u32, src: [u8; 6], dst: [u8; 6], vid: Option<u16>) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_odp;
    k.dl_src = src;
    k.dl_dst = dst;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_proto = IPPROTO_UDP;
    k.tp_dst = 53;
    if let Some(v) = vid {
        k.vlans[0] = VlanHeader {
            tpid: ETH_TYPE_VLAN_8021Q,
            tci: VLAN_CFI | v,
        };
    }
    k
}

fn acts(o: &Ofproto, k: &FlowKey, now: u64) -> String {
    format_odp_actions(&o.translate(k, now).actions)
}

#[test]
fn floods_unknown_then_forwards_learned() {
    let o = switch();
    // Untagged on the trunk p1 is VLAN 0: only other VLAN-0 carriers.
    assert_eq!(acts(&o, &eth(11, A, B, None), 0), "drop");
    // Access p2 (VLAN 10) floods to the trunk p4 (tagged) and p1 does not
    // carry... p1 is a trunk of every VLAN, so it gets a tag too.
    assert_eq!(
        acts(&o, &eth(12, A, BCAST, None), 0),
        "push_vlan(vid=10,pcp=0),11,14"
    );
    // B answers from p4 tagged 10: A was learned on p2.
    let t = o.translate(&eth(14, B, A, Some(10)), 1);
    assert_eq!(format_odp_actions(&t.actions), "pop_vlan,12");
    assert!(t.uses_mac_learning);
    assert_eq!(t.mask.dl_src, [0xff; 6]);
    assert_eq!(t.mask.dl_dst, [0xff; 6]);
    assert_eq!(t.mask.vlans[0].tci & 0x1fff, 0x1fff);
    assert_eq!(t.mask.tp_dst, 0, "NORMAL looks at L2 only");
    // Now A -> B is unicast to p4, tagged.
    assert_eq!(
        acts(&o, &eth(12, A, B, None), 2),
        "push_vlan(vid=10,pcp=0),14"
    );
    let fdb = o.fdb_show(3000);
    assert!(fdb.contains("    2    10  50:54:00:00:00:0a    2"), "{fdb}");
    assert!(fdb.contains("    4    10  50:54:00:00:00:0b    2"), "{fdb}");
}

#[test]
fn vlans_are_separate() {
    let o = switch();
    // A learned in VLAN 10 on p2.
    o.translate(&eth(12, A, BCAST, None), 0);
    // A frame to A in VLAN 20 (from p3) does not use the VLAN 10 entry:
    // it floods within VLAN 20 (p1 trunk only).
    assert_eq!(
        acts(&o, &eth(13, B, A, None), 0),
        "push_vlan(vid=20,pcp=0),11"
    );
    // A tagged frame on an access port is dropped.
    let t = o.translate(&eth(12, B, A, Some(10)), 0);
    assert!(t.actions.is_empty());
    // VLAN 30 is not carried by p4.
    assert_eq!(acts(&o, &eth(14, B, A, Some(30)), 0), "drop");
}

#[test]
fn learned_on_input_port_drops_and_moves_are_followed() {
    let o = switch();
    o.translate(&eth(11, A, BCAST, Some(10)), 0);
    assert_eq!(acts(&o, &eth(11, B, A, Some(10)), 0), "drop");
    // A moves to p4.
    o.translate(&eth(14, A, BCAST, Some(10)), 1);
    assert_eq!(acts(&o, &eth(11, B, A, Some(10)), 2), "14");
}

#[test]
fn aging_uses_the_injected_clock() {
    let o = switch();
    o.translate(&eth(12, A, BCAST, None), 1_000);
    assert_eq!(acts(&o, &eth(14, B, A, Some(10)), 300_999), "pop_vlan,12");
    // B is refreshed, A is not: 300 s after A was seen it floods again.
    assert_eq!(
        acts(&o, &eth(14, B, A, Some(10)), 301_000),
        "11,pop_vlan,12"
    );
    let before = o.mac_learning().seq();
    let r = o.run(301_000);
    assert_eq!(r.expired_macs, 1);
    assert!(o.mac_learning().seq() > before);
}

#[test]
fn port_removal_flushes_its_macs_and_bumps_version() {
    let o = switch();
    o.translate(&eth(12, A, BCAST, None), 0);
    let t = o.translate(&eth(14, B, A, Some(10)), 0);
    assert_eq!(format_odp_actions(&t.actions), "pop_vlan,12");
    assert!(!o.is_stale(&t));
    o.del_port("p2").unwrap();
    assert!(o.is_stale(&t));
    assert!(o.mac_learning().entries().iter().all(|e| e.port != 2));
    // A is gone: flood VLAN 10, which only the trunk p1 carries now
    // (tagged, so no VLAN action).
    assert_eq!(acts(&o, &eth(14, B, A, Some(10)), 0), "11");
}

#[test]
fn new_mac_makes_normal_flows_stale_but_refresh_does_not() {
    let o = switch();
    let t1 = o.translate(&eth(12, A, BCAST, None), 0);
    assert!(!o.is_stale(&t1));
    let t2 = o.translate(&eth(12, A, BCAST, None), 1);
    assert!(!o.is_stale(&t2), "refreshing A changes nothing");
    o.translate(&eth(14, B, A, Some(10)), 2);
    assert!(o.is_stale(&t2), "learning B may change flooding decisions");
}

#[test]
fn reserved_multicast_is_not_forwarded_and_multicast_src_not_learned() {
    let o = switch();
    let stp = [0x01, 0x80, 0xc2, 0, 0, 0];
    assert_eq!(acts(&o, &eth(11, A, stp, None), 0), "drop");
    let mc = [0x01, 0, 0x5e, 0, 0, 1];
    o.translate(&eth(12, mc, BCAST, None), 0);
    assert!(o.mac_learning().is_empty());
}

#[test]
fn fdb_flush_and_trace_has_no_side_effects() {
    let o = switch();
    let tr = o
        .trace(
            "in_port=2,dl_src=50:54:00:00:00:0a,dl_dst=ff:ff:ff:ff:ff:ff",
            0,
        )
        .unwrap();
    assert!(
        tr.contains(
            " 0. priority 0\n    NORMAL\n     -> multicast or broadcast destination, flooding\n"
        ),
        "{tr}"
    );
    assert!(tr.contains("Megaflow: recirc_id=0,eth,in_port=2,vlan_tci=0x0000/0x1fff,dl_src=50:54:00:00:00:0a,dl_dst=ff:ff:ff:ff:ff:ff,dl_type=0x0000"), "{tr}");
    assert!(
        tr.contains("Datapath actions: push_vlan(vid=10,pcp=0),11,14"),
        "{tr}"
    );
    assert!(o.mac_learning().is_empty(), "trace must not learn");
    o.translate(&eth(12, A, BCAST, None), 0);
    assert_eq!(o.fdb_flush(), 1);
    assert!(o.mac_learning().is_empty());
    assert_eq!(
        acts(&o, &eth(11, A, B, Some(10)), 0),
        "pop_vlan,12,push_vlan(vid=10,pcp=0),14"
    );
    let _ = Action::PopVlan;
}
