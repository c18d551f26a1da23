//! Translation: datapath actions, megaflow minimality on known cases, the
//! trace format, and OVS's limits.

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::odp_actions::format_odp_actions;
use ofproto::{Ofproto, PortConfig, TunnelConfig, TunnelKey, VlanMode};

/// A bridge with ports p1..p4 on datapath ports 11..14 (OpenFlow 1..4).
fn bridge() -> Ofproto {
    let o = Ofproto::new("br0");
    for i in 1..=4u32 {
        o.add_port(PortConfig::new(format!("p{i}"), 10 + i).with_ofport(i))
            .unwrap();
    }
    o
}

fn tcp(in_odp: u32, dst: [u8; 4], dport: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_odp;
    k.dl_src = [0, 0, 0, 0, 0, 1];
    k.dl_dst = [0, 0, 0, 0, 0, 2];
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_src = [192, 168, 0, 1];
    k.nw_dst = dst;
    k.nw_proto = IPPROTO_TCP;
    k.nw_ttl = 64;
    k.tp_src = 40000;
    k.tp_dst = dport;
    k
}

#[test]
fn nw_dst_prefix_rule_gives_prefix_megaflow_without_ports() {
    let o = bridge();
    o.add_flows(
        "priority=100,ip,nw_dst=10.0.0.0/24,actions=output:2\n\
         priority=0,actions=drop\n",
        0,
    )
    .unwrap();
    let t = o.translate(&tcp(11, [10, 0, 0, 7], 80), 0);
    assert_eq!(t.actions[..], [Action::Output(12)]);
    assert_eq!(t.mask.nw_dst, [255, 255, 255, 0]);
    assert_eq!((t.mask.tp_src, t.mask.tp_dst), (0, 0));
    assert_eq!(t.mask.nw_src, [0; 4]);
    assert_eq!(t.mask.nw_proto, 0);
    assert_eq!((t.mask.in_port, t.mask.dl_type), (u32::MAX, u16::MAX));
    assert_eq!(t.mask.dl_src, [0; 6]);
    // A miss of the /24 also only needs the /24.
    let t = o.translate(&tcp(11, [10, 0, 1, 7], 80), 0);
    assert!(t.actions.is_empty());
    assert_eq!(t.mask.nw_dst, [255, 255, 255, 0]);
    assert_eq!(t.mask.tp_dst, 0);
}

#[test]
fn host_route_beside_prefix_does_not_force_slash_32() {
    let o = bridge();
    o.add_flows(
        "priority=200,ip,nw_dst=10.0.0.1,actions=output:3\n\
         priority=100,ip,nw_dst=10.0.0.0/24,actions=output:2\n",
        0,
    )
    .unwrap();
    let t = o.translate(&tcp(11, [10, 0, 0, 200], 80), 0);
    assert_eq!(t.actions[..], [Action::Output(12)]);
    // 10.0.0.200 leaves 10.0.0.1 at the first bit of the last octet.
    assert_eq!(t.mask.nw_dst, [255, 255, 255, 128]);
    let t = o.translate(&tcp(11, [10, 0, 0, 1], 80), 0);
    assert_eq!(t.actions[..], [Action::Output(13)]);
    assert_eq!(t.mask.nw_dst, [255; 4]);
}

#[test]
fn l2_miss_does_not_pin_transport_ports() {
    let o = bridge();
    o.add_flow("priority=10,tcp,tp_dst=22,actions=output:4", 0)
        .unwrap();
    let mut arp = FlowKey::ZERO;
    arp.in_port = 11;
    arp.dl_type = ETH_TYPE_ARP;
    let t = o.translate(&arp, 0);
    assert!(t.actions.is_empty());
    assert_eq!((t.mask.nw_proto, t.mask.tp_dst), (0, 0));
}

#[test]
fn trace_shows_the_flow_the_pipeline_changed() {
    let o = bridge();
    o.add_flow(
        "priority=100,ip,nw_dst=10.0.0.7,actions=mod_nw_dst:10.0.0.9,output:2",
        0,
    )
    .unwrap();
    let out = o
        .trace(
            "in_port=1,tcp,nw_src=192.168.0.1,nw_dst=10.0.0.7,tp_dst=80",
            0,
        )
        .unwrap();
    // An untraced translation keeps no copy of the final flow; a traced
    // one must, or every trace would claim "unchanged".
    assert!(
        out.contains("Final flow: tcp,in_port=1,") && out.contains("nw_dst=10.0.0.9"),
        "{out}"
    );
    assert!(!out.contains("Final flow: unchanged"), "{out}");
    let mut key = FlowKey::ZERO;
    key.in_port = 11;
    key.dl_type = 0x0800;
    key.nw_dst = [10, 0, 0, 7];
    assert!(o.translate(&key, 0).final_flow.is_none());
}

#[test]
fn trace_reads_like_ovs() {
    let o = bridge();
    o.add_flow("priority=100,ip,nw_dst=10.0.0.0/24,actions=output:2", 0)
        .unwrap();
    let out = o
        .trace(
            "in_port=1,tcp,nw_src=192.168.0.1,nw_dst=10.0.0.7,tp_dst=80",
            0,
        )
        .unwrap();
    let want = "\
Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=192.168.0.1,nw_dst=10.0.0.7,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0

bridge(\"br0\")
-------------
 0. ip,nw_dst=10.0.0.0/24, priority 100
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_dst=10.0.0.0/24,nw_frag=no
Datapath actions: 12
";
    assert_eq!(out, want);
    // The same flow in ODP syntax, ports by datapath name.
    let odp = o
        .trace(
            "in_port(p1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),\
             ipv4(src=192.168.0.1,dst=10.0.0.7,proto=6,tos=0,ttl=64,frag=no),tcp(src=1,dst=80)",
            0,
        )
        .unwrap();
    assert!(odp.ends_with("Megaflow: recirc_id=0,eth,ip,in_port=1,nw_dst=10.0.0.0/24,nw_frag=no\nDatapath actions: 12\n"), "{odp}");
    assert_eq!(
        o.trace("tcp,nw_dst=1.2.3.4", 0).unwrap_err().to_string(),
        "in_port: the flow needs an in_port"
    );
    assert!(
        o.trace("in_port=9", 0)
            .unwrap_err()
            .to_string()
            .starts_with("in_port: ")
    );
}

#[test]
fn resubmit_goto_and_registers() {
    let o = bridge();
    o.add_flows(
        "table=0,priority=10,in_port=1,actions=load:0x2->NXM_NX_REG0[],resubmit(,1)\n\
         table=1,priority=10,reg0=2,tcp,actions=set_field:10.9.9.9->nw_dst,goto_table:2\n\
         table=2,priority=10,actions=move:NXM_OF_TCP_SRC[]->NXM_OF_TCP_DST[],output:3\n",
        0,
    )
    .unwrap();
    let t = o.translate(&tcp(11, [10, 0, 0, 7], 80), 0);
    assert_eq!(
        format_odp_actions(&t.actions),
        "set(ipv4(dst=10.9.9.9)),set(tcp(dst=40000)),13"
    );
    assert_eq!(t.rules.len(), 3);
    // Registers are pipeline state: never in the mask. The written and
    // moved fields are.
    assert_eq!(t.mask.nw_dst, [255; 4]);
    assert_eq!((t.mask.tp_src, t.mask.tp_dst), (u16::MAX, u16::MAX));
    assert_eq!(t.mask.nw_proto, u8::MAX);
}

#[test]
fn resubmit_loops_hit_the_depth_limit_and_drop() {
    let o = bridge();
    o.add_flows("priority=10,in_port=1,actions=output:2,resubmit(,0)\n", 0)
        .unwrap();
    let t = o.translate(&tcp(11, [1, 1, 1, 1], 1), 0);
    assert_eq!(t.error, Some(ofproto::XlateError::TooDeep));
    assert!(t.actions.is_empty());
    let tr = o.trace("in_port=1", 0).unwrap();
    assert!(
        tr.contains("Translation failed (over max translation depth 64), packet is dropped."),
        "{tr}"
    );
}

#[test]
fn dec_ttl_and_ttl_exceeded() {
    let o = bridge();
    o.add_flow("priority=1,ip,actions=dec_ttl,output:2", 0)
        .unwrap();
    let t = o.translate(&tcp(11, [1, 1, 1, 1], 1), 0);
    assert_eq!(format_odp_actions(&t.actions), "set(ipv4(ttl=63)),12");
    assert_eq!(t.mask.nw_ttl, 0xff);
    let mut k = tcp(11, [1, 1, 1, 1], 1);
    k.nw_ttl = 1;
    let t = o.translate(&k, 0);
    assert_eq!(
        format_odp_actions(&t.actions),
        "userspace(pid=0,controller(reason=2,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))"
    );
    assert_eq!(t.n_controller, 1);
}

#[test]
fn vlan_actions_commit_as_push_and_pop() {
    let o = bridge();
    o.add_flows(
        "priority=1,in_port=1,actions=mod_vlan_vid:10,output:2,strip_vlan,output:3\n\
         priority=1,in_port=2,actions=mod_vlan_pcp:5,output:1\n",
        0,
    )
    .unwrap();
    let t = o.translate(&tcp(11, [1, 1, 1, 1], 1), 0);
    assert_eq!(
        format_odp_actions(&t.actions),
        "push_vlan(vid=10,pcp=0),12,pop_vlan,13"
    );
    let mut k = tcp(12, [1, 1, 1, 1], 1);
    k.vlans[0] = VlanHeader {
        tpid: ETH_TYPE_VLAN_8021Q,
        tci: VLAN_CFI | 7,
    };
    let t = o.translate(&k, 0);
    assert_eq!(
        format_odp_actions(&t.actions),
        "pop_vlan,push_vlan(vid=7,pcp=5),11"
    );
    // The re-pushed tag carries the packet's VID: the whole TCI is exact.
    assert_eq!(t.mask.vlans[0].tci, 0xffff);
}

#[test]
fn mod_actions_on_the_wrong_protocol_are_skipped() {
    let o = bridge();
    o.add_flow(
        "priority=1,actions=mod_nw_dst:1.2.3.4,mod_tp_dst:8,output:2",
        0,
    )
    .unwrap();
    let mut arp = FlowKey::ZERO;
    arp.in_port = 11;
    arp.dl_type = ETH_TYPE_ARP;
    assert_eq!(o.translate(&arp, 0).actions[..], [Action::Output(12)]);
    let mut udp = tcp(11, [9, 9, 9, 9], 53);
    udp.nw_proto = IPPROTO_UDP;
    assert_eq!(
        format_odp_actions(&o.translate(&udp, 0).actions),
        "set(ipv4(dst=1.2.3.4)),set(udp(dst=8)),12"
    );
}

#[test]
fn output_to_in_port_is_skipped_unless_explicit() {
    let o = bridge();
    o.add_flow("priority=1,actions=output:1,output:2,in_port", 0)
        .unwrap();
    let t = o.translate(&tcp(11, [1, 1, 1, 1], 1), 0);
    assert_eq!(t.actions[..], [Action::Output(12), Action::Output(11)]);
}

#[test]
fn flood_all_local_and_controller() {
    let o = bridge();
    o.add_port(PortConfig::new("br0", 0).with_ofport(ofproto::ports::OFPP_LOCAL))
        .unwrap();
    let mut nf = PortConfig::new("p5", 15).with_ofport(5);
    nf.flood = false;
    o.add_port(nf).unwrap();
    o.add_flow("priority=1,in_port=1,actions=FLOOD", 0).unwrap();
    o.add_flow("priority=1,in_port=2,actions=ALL", 0).unwrap();
    o.add_flow("priority=1,in_port=3,actions=LOCAL,controller:128", 0)
        .unwrap();
    let outs = |k: FlowKey| format_odp_actions(&o.translate(&k, 0).actions);
    assert_eq!(outs(tcp(11, [1; 4], 1)), "12,13,14,0");
    assert_eq!(outs(tcp(12, [1; 4], 1)), "11,13,14,15,0");
    assert_eq!(
        outs(tcp(13, [1; 4], 1)),
        "0,userspace(pid=0,controller(reason=1,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=128))"
    );
}

#[test]
fn set_tunnel_and_output_to_vxlan_port() {
    let o = bridge();
    let mut cfg = TunnelConfig::vxlan([172, 16, 0, 1], [172, 16, 0, 2], 11);
    cfg.local_mac = [2, 0, 0, 0, 0, 1];
    cfg.next_hop_mac = [2, 0, 0, 0, 0, 2];
    o.add_port(
        PortConfig::new("vx0", 4789)
            .with_ofport(10)
            .with_tunnel(cfg.clone()),
    )
    .unwrap();
    let mut fixed = cfg;
    fixed.key = TunnelKey::Fixed(7);
    fixed.remote_ip = [172, 16, 0, 3].into();
    o.add_port(
        PortConfig::new("vx1", 4790)
            .with_ofport(11)
            .with_tunnel(fixed),
    )
    .unwrap();
    o.add_flow(
        "priority=1,in_port=2,actions=set_tunnel:0x64,output:10,output:11",
        0,
    )
    .unwrap();
    o.add_flow("priority=1,in_port=10,tun_id=0x64,actions=output:2", 0)
        .unwrap();
    let t = o.translate(&tcp(12, [1; 4], 1), 0);
    let s = format_odp_actions(&t.actions);
    // Static underlay: the push and the output to the underlay port, in a
    // clone so the second tunnel gets the original packet.
    assert!(s.starts_with("clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=02:00:00:00:00:02,src=02:00:00:00:00:01,dl_type=0x0800),ipv4(src=172.16.0.1,dst=172.16.0.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x64)),out_port(11)),11),clone("), "{s}");
    assert!(
        s.contains("dst=172.16.0.3") && s.contains("vni=0x7)"),
        "{s}"
    );
    // Decapsulated traffic arrives on the tunnel's port with its metadata.
    let mut k = tcp(4789, [1; 4], 1);
    k.tun_id = 0x64;
    k.tun_ipv4_src = [172, 16, 0, 2];
    k.tun_ipv4_dst = [172, 16, 0, 1];
    let t = o.translate(&k, 0);
    assert_eq!(t.actions[..], [Action::Output(12)]);
    assert_eq!((t.mask.tun_id, t.mask.tun_ipv4_src), (u64::MAX, [255; 4]));
}

#[test]
fn unknown_in_port_drops_with_exact_in_port() {
    let o = bridge();
    o.add_flow("actions=NORMAL", 0).unwrap();
    let t = o.translate(&tcp(99, [1; 4], 1), 0);
    assert!(t.actions.is_empty());
    assert_eq!(t.mask.in_port, u32::MAX);
}

#[test]
fn icmp_megaflow_uses_8_bit_type_and_code() {
    let o = bridge();
    o.add_flow("priority=5,icmp,icmp_type=8,actions=output:2", 0)
        .unwrap();
    let mut k = tcp(11, [1; 4], 0);
    k.nw_proto = IPPROTO_ICMP;
    k.tp_src = 8;
    k.tp_dst = 0;
    let t = o.translate(&k, 0);
    assert_eq!(t.actions[..], [Action::Output(12)]);
    assert_eq!((t.mask.tp_src, t.mask.tp_dst), (0xff, 0));
}

#[test]
fn meters_and_notes() {
    let o = bridge();
    o.add_flow("priority=1,actions=note:01.02,meter:3,output:2", 0)
        .unwrap();
    let t = o.translate(&tcp(11, [1; 4], 1), 0);
    assert_eq!(t.actions[..], [Action::Meter(3), Action::Output(12)]);
    let _ = VlanMode::default();
}

#[test]
fn vxlan_to_local_ip_is_terminated_natively() {
    let o = bridge();
    o.add_port(PortConfig::new("br0", 100).with_ofport(ofproto::ports::OFPP_LOCAL))
        .unwrap();
    o.add_port(
        PortConfig::new("vx0", 4789)
            .with_ofport(10)
            .with_tunnel(TunnelConfig::vxlan([172, 16, 0, 1], [172, 16, 0, 2], 11)),
    )
    .unwrap();
    o.add_flow("priority=1,in_port=1,actions=LOCAL", 0).unwrap();
    let mut k = tcp(11, [172, 16, 0, 1], 4789);
    k.nw_proto = IPPROTO_UDP;
    let t = o.translate(&k, 0);
    assert_eq!(t.actions[..], [Action::TnlPop(4789)]);
    assert_eq!(
        (t.mask.nw_dst, t.mask.tp_dst, t.mask.nw_proto),
        ([255; 4], u16::MAX, u8::MAX)
    );
    // Other UDP to the local IP, and TCP, go to LOCAL as usual.
    k.tp_dst = 53;
    assert_eq!(o.translate(&k, 0).actions[..], [Action::Output(100)]);
    let t = o.translate(&tcp(11, [172, 16, 0, 1], 4789), 0);
    assert_eq!(t.actions[..], [Action::Output(100)]);
    assert_eq!(t.mask.tp_dst, 0, "TCP needs no port check");
}

/// Translations with equal actions share one list (no allocation per flow
/// setup), and a remembered list is only ever handed out for equal
/// actions: with more distinct lists than a thread remembers, each
/// translation still gets exactly its own actions.
#[test]
fn equal_action_lists_are_shared_and_never_confused() {
    let o = bridge();
    o.add_flows(
        "priority=100,ip,nw_dst=10.0.0.1,actions=output:2\n\
         priority=100,ip,nw_dst=10.0.0.2,actions=output:3\n\
         priority=100,ip,nw_dst=10.0.0.3,actions=output:4\n\
         priority=100,ip,nw_dst=10.0.0.4,actions=output:2,output:3\n\
         priority=100,ip,nw_dst=10.0.0.5,actions=output:3,output:4\n\
         priority=100,ip,nw_dst=10.0.0.6,actions=output:2,output:4\n\
         priority=0,actions=drop\n",
        0,
    )
    .unwrap();
    let expected = |host: u8| -> Vec<Action> {
        match host {
            1 => vec![Action::Output(12)],
            2 => vec![Action::Output(13)],
            3 => vec![Action::Output(14)],
            4 => vec![Action::Output(12), Action::Output(13)],
            5 => vec![Action::Output(13), Action::Output(14)],
            6 => vec![Action::Output(12), Action::Output(14)],
            _ => vec![],
        }
    };
    // Two flows of one rule: one shared list.
    let a = o.translate(&tcp(11, [10, 0, 0, 1], 80), 0);
    let b = o.translate(&tcp(11, [10, 0, 0, 1], 443), 0);
    assert_eq!(&a.actions[..], &expected(1)[..]);
    assert!(std::sync::Arc::ptr_eq(&a.actions, &b.actions));
    // Seven distinct lists (drop included) cycled through repeatedly:
    // more than are remembered, so lists are evicted and rebuilt.
    for round in 0..5u16 {
        for host in [1u8, 2, 3, 4, 5, 6, 7, 3, 1, 6] {
            let t = o.translate(&tcp(11, [10, 0, 0, host], 1000 + round), 0);
            assert_eq!(
                &t.actions[..],
                &expected(host)[..],
                "host {host}, round {round}"
            );
        }
    }
}
