//! Megaflow soundness with native tunnelling on (a route table, a
//! neighbour cache, IPv4 and IPv6 VTEPs): any packet that agrees with a
//! translated one on the bits of its mask translates to the same actions
//! (and, when the first is installed, is installable too: no megaflow
//! swallows a reply the neighbour cache must see),
//! through ARP and Neighbor Advertisement snooping, tunnel termination for
//! either family's VTEP, and output to IPv4 and IPv6 tunnels
//! (`tests/megaflow.rs` checks the same without a tunnel state).
//!
//! Packets are drawn from small value sets, so the interesting coincidences
//! (an advertisement to the local address, UDP to the VTEP's port) are
//! frequent; a blend of a packet with others under its mask may be a key no
//! extraction produces, which translation must still treat the same way.

use std::sync::Arc;

mod common;

use common::blend;
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::odp_actions::format_odp_actions;
use ofproto::ports::OFPP_LOCAL;
use ofproto::route::{Route, RouteOrigin, parse_prefix};
use ofproto::tunnel::TunnelState;
use ofproto::{Ofproto, PortConfig, TunnelConfig, TunnelKey};
use proptest::prelude::*;

const VM: u32 = 11;
const UPLINK: u32 = 12;
const LOCAL_ODP: u32 = 100;
const VX4: u32 = 4789;
const VX6: u32 = 4790;
const LOCAL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn v6(text: &str) -> [u8; 16] {
    text.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn host() -> Ofproto {
    let o = Ofproto::new("br0");
    o.add_port(PortConfig::new("vm", VM).with_ofport(1))
        .unwrap();
    o.add_port(PortConfig::new("uplink", UPLINK).with_ofport(2))
        .unwrap();
    o.add_port(PortConfig::new("br0", LOCAL_ODP).with_ofport(OFPP_LOCAL))
        .unwrap();
    let mut vx4 = TunnelConfig::vxlan([0; 4], [172, 31, 0, 2], 0);
    vx4.key = TunnelKey::Fixed(5000);
    o.add_port(PortConfig::new("vx4", VX4).with_ofport(3).with_tunnel(vx4))
        .unwrap();
    let mut vx6 = TunnelConfig::geneve(std::net::Ipv6Addr::UNSPECIFIED, v6("2001:db8::2"), 0);
    vx6.key = TunnelKey::Fixed(6000);
    vx6.dst_port = 4789;
    o.add_port(PortConfig::new("vx6", VX6).with_ofport(4).with_tunnel(vx6))
        .unwrap();
    o.add_flows(
        "priority=10,in_port=vm,udp,actions=output:vx4\n\
         priority=10,in_port=vm,icmp,actions=output:vx6\n\
         priority=10,in_port=vm,ipv6,actions=output:vx4,output:vx6\n\
         priority=10,in_port=vx4,actions=output:vm\n\
         priority=10,in_port=vx6,actions=output:vm\n\
         priority=5,in_port=uplink,actions=LOCAL\n\
         priority=5,in_port=LOCAL,actions=output:uplink\n",
        0,
    )
    .unwrap();
    let tnl = Arc::new(TunnelState::new());
    let route = |p: &str, src: &str| {
        let (prefix, plen) = parse_prefix(p).unwrap();
        Route {
            prefix,
            plen,
            dev: "br0".into(),
            gateway: None,
            src: Some(src.parse().unwrap()),
            origin: RouteOrigin::Cached,
        }
    };
    tnl.update_routes(|t| {
        t.replace_system(vec![
            route("172.31.0.0/24", "172.31.0.1"),
            route("2001:db8::/64", "2001:db8::1"),
        ])
    });
    tnl.set_dev_mac("br0", LOCAL_MAC);
    tnl.neigh()
        .set_static("172.31.0.2".parse().unwrap(), PEER_MAC, "br0");
    tnl.neigh()
        .set_static("2001:db8::2".parse().unwrap(), PEER_MAC, "br0");
    assert!(o.set_tunnel_state(tnl));
    o
}

prop_compose! {
    fn packet()(
        in_port in prop::sample::select(vec![VM, UPLINK, LOCAL_ODP, VX4, VX6]),
        dl_type in prop::sample::select(vec![ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_ARP]),
        nw_proto in prop::sample::select(vec![IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_GRE, 1u8, 2]),
        nw4 in prop::sample::select(vec![[172, 31, 0, 1], [172, 31, 0, 2], [10, 0, 0, 1]]),
        nw4_src in prop::sample::select(vec![[172, 31, 0, 2], [172, 31, 0, 9]]),
        nw6 in prop::sample::select(vec!["2001:db8::1", "2001:db8::2", "2001:db8::9"]),
        target in prop::sample::select(vec!["2001:db8::2", "2001:db8::9"]),
        tp_src in prop::sample::select(vec![135u16, 136, 1, 50000]),
        tp_dst in prop::sample::select(vec![0u16, 4789, 6081]),
        frag in prop::sample::select(vec![0u8, FLOW_NW_FRAG_ANY, FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER]),
        tha in prop::sample::select(vec![[0u8; 6], PEER_MAC]),
        sha in prop::sample::select(vec![[0u8; 6], PEER_MAC]),
        tun_v6 in any::<bool>(),
        tun_id in prop::sample::select(vec![0u64, 5000, 6000]),
    ) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = in_port;
        k.dl_src = [0, 0, 0, 0, 0, 1];
        k.dl_dst = LOCAL_MAC;
        k.dl_type = dl_type;
        match dl_type {
            ETH_TYPE_ARP => {
                k.nw_proto = nw_proto % 3;
                k.nw_src = nw4_src;
                k.nw_dst = nw4;
                k.arp_sha = sha;
                k.arp_tha = tha;
            }
            ETH_TYPE_IPV4 => {
                k.nw_proto = nw_proto;
                k.nw_src = nw4_src;
                k.nw_dst = nw4;
                k.nw_ttl = 64;
                k.nw_frag = frag;
                if frag & FLOW_NW_FRAG_LATER == 0 {
                    k.tp_src = tp_src;
                    k.tp_dst = tp_dst;
                }
            }
            _ => {
                k.nw_proto = nw_proto;
                k.ipv6_src = v6("2001:db8::2");
                k.ipv6_dst = v6(nw6);
                k.nw_ttl = 255;
                k.nw_frag = frag;
                if frag & FLOW_NW_FRAG_LATER == 0 {
                    k.tp_src = tp_src;
                    k.tp_dst = tp_dst;
                    if nw_proto == IPPROTO_ICMPV6 {
                        k.nd_target = v6(target);
                        k.arp_tha = tha;
                        k.arp_sha = sha;
                    }
                }
            }
        }
        if in_port == VX4 || in_port == VX6 {
            k.tun_id = tun_id;
            k.tun_flags = dp_core::odp::flow::TNL_F_KEY;
            if tun_v6 {
                k.tun_ipv6_src = v6("2001:db8::2");
                k.tun_ipv6_dst = v6("2001:db8::1");
            } else {
                k.tun_ipv4_src = [172, 31, 0, 2];
                k.tun_ipv4_dst = [172, 31, 0, 1];
            }
        }
        k
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn native_tunnel_megaflows_are_sound(
        pkts in prop::collection::vec(packet(), 1..8),
        others in prop::collection::vec(packet(), 8),
    ) {
        let o = host();
        for p in &pkts {
            let t = o.translate_readonly(p, 1);
            let want = format_odp_actions(&t.actions);
            for other in &others {
                let q = blend(p, &t.mask, other);
                let tq = o.translate_readonly(&q, 1);
                // An installed megaflow must not swallow a packet the slow
                // path has to see (an ARP reply or advertisement to learn
                // from, a neighbour miss to solicit for).
                prop_assert!(
                    !t.install || tq.install,
                    "\np: {:?}\nq: {:?}\nmask: {:?}", p, q, t.mask
                );
                prop_assert_eq!(
                    format_odp_actions(&tq.actions), want.clone(),
                    "\np: {:?}\nq: {:?}\nmask: {:?}", p, q, t.mask
                );
            }
        }
    }
}
