//! Action lists written as OVS prints them (`ovs-appctl dpctl/dump-flows`),
//! parsed by `odp::actions` and executed: the executor and the ODP text
//! agree on what each action means, in particular on the `tnl_push`
//! header bytes the parser builds.

mod execute_support;

use dp_core::action::Action;
use dp_core::execute::{DropReason, Executor, TunnelKind, tnl_flags};
use dp_core::odp::actions::parse;
use etherparse::{Ipv4Header, UdpHeader};
use execute_support::*;

fn actions(text: &str) -> Vec<Action> {
    let parsed = parse(text, None).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    assert_eq!(Executor::check(&parsed), Ok(()), "{text}");
    parsed
}

const VXLAN: &str = "tnl_push(tnl_port(4789),header(size=50,type=4,\
    eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x0800),\
    ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),\
    udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b)),out_port(100)),2";

const GENEVE: &str = "tnl_push(tnl_port(6081),header(size=58,type=5,\
    eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),\
    ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),\
    udp(src=0,dst=6081,csum=0xffff),geneve(vni=0x1c7,options({class=0xffff,type=0x80,len=4,0xa}))),\
    out_port(1)),2";

/// The same Geneve header with the option's critical bit (type bit 7)
/// clear: one a receiver that maps no option may ignore.
const GENEVE_NON_CRITICAL: &str = "tnl_push(tnl_port(6081),header(size=58,type=5,\
    eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),\
    ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),\
    udp(src=0,dst=6081,csum=0xffff),geneve(vni=0x1c7,options({class=0xffff,type=0x1,len=4,0xa}))),\
    out_port(1)),2";

#[test]
fn parsed_vxlan_push_builds_a_valid_outer_header_and_pops_back() {
    let mut h = Harness::new();
    let inner = tcp4(b"over odp");
    h.run(&actions(VXLAN), &[&inner]);
    let out = h.sink.sent(2).pop().expect("sent on port 2");
    assert_eq!(out.len(), inner.len() + 50);
    let (ip, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    assert_eq!(usize::from(ip.total_len), out.len() - 14);
    assert!(ip.dont_fragment);
    let (udp, _) = UdpHeader::from_slice(&out[34..]).unwrap();
    assert_eq!(usize::from(udp.length), out.len() - 34);
    assert_eq!((udp.destination_port, udp.checksum), (4789, 0));
    h.assert_no_leak();

    h.exec.set_tunnel_port(4789, TunnelKind::Vxlan);
    h.run(&actions("tnl_pop(4789)"), &[&out]);
    let popped = &h.sink.recirculated[0];
    assert_eq!(popped.data(), &inner[..]);
    let tun = &popped.meta().tunnel;
    assert_eq!(tun.tun_id, 0x7b);
    assert_eq!((tun.ipv4_src, tun.ipv4_dst), ([1, 1, 2, 88], [1, 1, 2, 92]));
    // The outer IPv4 header has DF (frag=0x4000), which OVS's tnl_pop does
    // not carry into the metadata.
    assert_eq!(tun.flags, tnl_flags::KEY);
}

/// Pushes `text` (a Geneve tnl_push) onto a UDP/IPv6 frame, checks the
/// outer UDP checksum, then pops it on a Geneve port.
fn geneve_push_then_pop(text: &str) -> (Harness, Vec<u8>) {
    let mut h = Harness::new();
    let inner = udp6(b"geneve over odp");
    h.run(&actions(text), &[&inner]);
    let out = h.sink.sent(2).pop().expect("sent on port 2");
    let (ip, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
    let (udp, payload) = UdpHeader::from_slice(&out[34..]).unwrap();
    assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, payload).unwrap());
    h.assert_no_leak();

    h.exec.set_tunnel_port(6081, TunnelKind::Geneve);
    h.run(&actions("tnl_pop(6081)"), &[&out]);
    (h, inner)
}

#[test]
fn parsed_geneve_push_with_options_and_checksum_round_trips() {
    let (h, inner) = geneve_push_then_pop(GENEVE_NON_CRITICAL);
    let popped = &h.sink.recirculated[0];
    assert_eq!(popped.data(), &inner[..]);
    let tun = &popped.meta().tunnel;
    assert_eq!(tun.tun_id, 0x1c7);
    assert_eq!(tun.flags, tnl_flags::KEY | tnl_flags::CSUM);
    assert_eq!(tun.geneve_options(), &[0xff, 0xff, 0x01, 1, 0, 0, 0, 0x0a]);
}

#[test]
fn parsed_geneve_push_with_a_critical_option_is_dropped_by_the_receiver() {
    // OVS's own vector: class 0xffff, type 0x80 (critical). This datapath
    // maps no Geneve option, so RFC 8926 makes the receiver drop it.
    let (h, _) = geneve_push_then_pop(GENEVE);
    assert!(h.sink.recirculated.is_empty());
    assert_eq!(h.dropped(DropReason::TunnelGeneveCritical), 1);
}

#[test]
fn parsed_rewrites_match_hand_built_frames() {
    let mut h = Harness::new();
    let frame = tcp4(b"rewrite");
    h.run(
        &actions(
            "set(eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02)),\
             set(ipv4(src=192.168.0.1,dst=192.168.0.2,ttl=63)),\
             set(tcp(dst=8080)),push_vlan(vid=100,pcp=3),3",
        ),
        &[&frame],
    );
    let mut expected = expect_edited(&frame, |v| {
        v[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        v[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        v[22] = 63;
        v[26..30].copy_from_slice(&[192, 168, 0, 1]);
        v[30..34].copy_from_slice(&[192, 168, 0, 2]);
        v[36..38].copy_from_slice(&8080u16.to_be_bytes());
    });
    let tci: u16 = (3 << 13) | 100;
    let tag = [0x81, 0x00, (tci >> 8) as u8, tci as u8];
    expected.splice(12..12, tag);
    assert_eq!(h.sink.sent(3), vec![expected]);
}

#[test]
fn parsed_nested_lists_and_drops() {
    let mut h = Harness::new();
    let small = udp4(b"s");
    let big = udp4(&[0; 200]);
    h.run(
        &actions("check_pkt_len(size=100,gt(4),le(clone(trunc(20),5),6))"),
        &[&small, &big],
    );
    assert_eq!(h.sink.sent(4), vec![big]);
    assert_eq!(h.sink.sent(5), vec![small[..20].to_vec()]);
    assert_eq!(h.sink.sent(6), vec![small.clone()]);
    h.run(&actions("drop"), &[&small]);
    assert_eq!(h.dropped(DropReason::Explicit), 1);
}
