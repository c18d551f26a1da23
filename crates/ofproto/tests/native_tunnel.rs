//! Native tunnelling in translation with a route table and a neighbour
//! cache: a neighbour miss solicits and installs nothing, a snooped ARP
//! reply resolves it (and makes the old translation stale), the outer
//! packet is translated through the bridge from the route's device, and
//! routes decide the underlay.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::odp_actions::format_odp_actions;
use ofproto::ports::OFPP_LOCAL;
use ofproto::route::{Route, RouteOrigin, parse_prefix};
use ofproto::tunnel::TunnelState;
use ofproto::{Ofproto, PortConfig, TunnelConfig, TunnelKey};

const VM: u32 = 11;
const UPLINK: u32 = 12;
const LOCAL_ODP: u32 = 100;
const VX: u32 = 4789;
const LOCAL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

/// A bridge br0 with vm (1), uplink (2) and LOCAL, the tunnel port
/// `name` (odp port `odp`, ofport 3) configured as `tunnel`, the rules
/// `flows`, and a tunnel state whose route table holds only `subnet` on
/// br0 with the VTEP `src` as its source (br0's MAC is LOCAL_MAC).
fn wired_bridge(
    name: &str,
    odp: u32,
    tunnel: TunnelConfig,
    flows: &str,
    subnet: &str,
    src: std::net::IpAddr,
) -> (Ofproto, Arc<TunnelState>) {
    let o = Ofproto::new("br0");
    o.add_port(PortConfig::new("vm", VM).with_ofport(1))
        .unwrap();
    o.add_port(PortConfig::new("uplink", UPLINK).with_ofport(2))
        .unwrap();
    o.add_port(PortConfig::new("br0", LOCAL_ODP).with_ofport(OFPP_LOCAL))
        .unwrap();
    o.add_port(
        PortConfig::new(name, odp)
            .with_ofport(3)
            .with_tunnel(tunnel),
    )
    .unwrap();
    o.add_flows(flows, 0).unwrap();
    let tnl = Arc::new(TunnelState::new());
    let (prefix, plen) = parse_prefix(subnet).unwrap();
    tnl.update_routes(|t| {
        t.replace_system(vec![Route {
            prefix,
            plen,
            dev: "br0".into(),
            gateway: None,
            src: Some(src),
            origin: RouteOrigin::Cached,
        }])
    });
    tnl.set_dev_mac("br0", LOCAL_MAC);
    (o, tnl)
}

/// The VXLAN hosts' rules: vm <-> vx0, uplink <-> LOCAL.
const VXLAN_HOST_FLOWS: &str = "priority=10,in_port=vm,actions=output:vx0\n\
     priority=10,in_port=vx0,actions=output:vm\n\
     priority=5,in_port=uplink,actions=LOCAL\n\
     priority=5,in_port=LOCAL,actions=output:uplink\n";

/// One host: vm (1), uplink (2), LOCAL with the VTEP 172.31.0.1/24, and
/// vx0 (VNI 5000 to 172.31.0.2), wired as the daemon test wires it.
fn host() -> (Ofproto, Arc<TunnelState>) {
    let mut vx = TunnelConfig::vxlan([0; 4], [172, 31, 0, 2], 0);
    vx.key = TunnelKey::Fixed(5000);
    let (o, tnl) = wired_bridge(
        "vx0",
        VX,
        vx,
        VXLAN_HOST_FLOWS,
        "172.31.0.0/24",
        Ipv4Addr::new(172, 31, 0, 1).into(),
    );
    assert!(o.set_tunnel_state(tnl.clone()));
    (o, tnl)
}

fn vm_packet() -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = VM;
    k.dl_src = [0, 0, 0, 0, 0, 1];
    k.dl_dst = [0, 0, 0, 0, 0, 2];
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_src = [10, 200, 0, 1];
    k.nw_dst = [10, 200, 0, 2];
    k.nw_proto = IPPROTO_ICMP;
    k.nw_ttl = 64;
    k
}

fn arp_reply(from: [u8; 4], mac: [u8; 6], to: [u8; 4]) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = UPLINK;
    k.dl_src = mac;
    k.dl_dst = LOCAL_MAC;
    k.dl_type = ETH_TYPE_ARP;
    k.nw_proto = 2;
    k.nw_src = from;
    k.nw_dst = to;
    k.arp_sha = mac;
    k.arp_tha = LOCAL_MAC;
    k
}

#[test]
fn neighbour_miss_solicits_then_snooped_reply_resolves() {
    let (o, tnl) = host();
    let t = o.translate(&vm_packet(), 0);
    assert!(t.actions.is_empty(), "unresolved: drop");
    assert!(!t.install, "a neighbour miss installs no megaflow");
    let reqs = tnl.neigh().take_due_requests(0);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].target, Ipv4Addr::new(172, 31, 0, 2));
    assert_eq!((reqs[0].dev.as_str(), reqs[0].src_mac), ("br0", LOCAL_MAC));
    assert_eq!(reqs[0].src, Ipv4Addr::new(172, 31, 0, 1));

    // A reply to somebody else teaches nothing; one to our VTEP does, and
    // it still goes where the rules send it.
    let t = o.translate(&arp_reply([172, 31, 0, 2], PEER_MAC, [172, 31, 0, 9]), 0);
    assert_eq!(t.actions[..], [Action::Output(LOCAL_ODP)]);
    assert!(tnl.neigh().is_empty());
    let before = o.tunnel_seq();
    let t = o.translate(&arp_reply([172, 31, 0, 2], PEER_MAC, [172, 31, 0, 1]), 0);
    assert_eq!(t.actions[..], [Action::Output(LOCAL_ODP)]);
    assert!(!t.install, "every reply must reach the slow path");
    assert_eq!(
        (t.mask.nw_src, t.mask.nw_dst, t.mask.arp_sha),
        ([255; 4], [255; 4], [255; 6]),
        "each distinct reply is seen by the slow path"
    );
    assert_ne!(o.tunnel_seq(), before);
    assert_eq!(
        tnl.neigh().lookup(Ipv4Addr::new(172, 31, 0, 2).into(), 1),
        Some(PEER_MAC)
    );

    let t = o.translate(&vm_packet(), 1);
    assert!(t.install);
    assert_eq!(
        format_odp_actions(&t.actions),
        "clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=02:00:00:00:00:0b,src=02:00:00:00:00:0a,dl_type=0x0800),ipv4(src=172.31.0.1,dst=172.31.0.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x1388)),out_port(100)),12)"
    );
    // The outer packet's own fields do not leak into the inner megaflow.
    assert_eq!(t.mask.tp_dst, 0);
    // A later neighbour change makes it stale.
    assert!(!o.is_stale(&t));
    tnl.neigh().snoop(
        Ipv4Addr::new(172, 31, 0, 2).into(),
        [2, 0, 0, 0, 0, 0xc],
        "br0",
        5,
    );
    assert!(o.is_stale(&t));
}

#[test]
fn routes_pick_the_device_gateway_and_source() {
    let (o, tnl) = host();
    // No route: drop, installed (a route change revalidates it).
    tnl.update_routes(|t| t.replace_system(vec![]));
    let t = o.translate(&vm_packet(), 0);
    assert!(t.actions.is_empty() && t.install);
    assert!(tnl.neigh().take_due_requests(0).is_empty());

    // A user route through a gateway: the gateway is resolved, and the
    // source comes from the route.
    let (prefix, plen) = parse_prefix("172.31.0.0/16").unwrap();
    tnl.update_routes(|t| {
        t.insert(Route {
            prefix,
            plen,
            dev: "br0".into(),
            gateway: Some(Ipv4Addr::new(172, 30, 0, 254).into()),
            src: Some(Ipv4Addr::new(172, 30, 0, 1).into()),
            origin: RouteOrigin::User,
        })
    });
    assert!(o.translate(&vm_packet(), 0).actions.is_empty());
    let reqs = tnl.neigh().take_due_requests(0);
    assert_eq!(reqs[0].target, Ipv4Addr::new(172, 30, 0, 254));
    tnl.neigh()
        .set_static(Ipv4Addr::new(172, 30, 0, 254).into(), PEER_MAC, "br0");
    let s = format_odp_actions(&o.translate(&vm_packet(), 0).actions);
    assert!(s.contains("ipv4(src=172.30.0.1,dst=172.31.0.2"), "{s}");
    assert!(s.contains("eth(dst=02:00:00:00:00:0b"), "{s}");

    // A route out of a device that is not on the bridge drops.
    tnl.update_routes(|t| {
        t.insert(Route {
            prefix,
            plen,
            dev: "eth9".into(),
            gateway: None,
            src: None,
            origin: RouteOrigin::User,
        })
    });
    let trace = o
        .trace("in_port=vm,icmp,nw_src=10.200.0.1,nw_dst=10.200.0.2", 0)
        .unwrap();
    assert!(
        trace.contains("eth9, which is not a port of any bridge"),
        "{trace}"
    );
}

#[test]
fn decapsulated_packets_and_first_fragments_pop() {
    let (o, _) = host();
    let mut k = FlowKey::ZERO;
    k.in_port = UPLINK;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_src = [172, 31, 0, 2];
    k.nw_dst = [172, 31, 0, 1];
    k.nw_proto = IPPROTO_UDP;
    k.tp_dst = 4789;
    assert_eq!(o.translate(&k, 0).actions[..], [Action::TnlPop(VX)]);
    // A first fragment is popped too, so the datapath drops it by name.
    k.nw_frag = FLOW_NW_FRAG_ANY;
    assert_eq!(o.translate(&k, 0).actions[..], [Action::TnlPop(VX)]);
    // A later fragment has no ports: it is the kernel's business.
    k.nw_frag = FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER;
    k.tp_dst = 0;
    assert_eq!(o.translate(&k, 0).actions[..], [Action::Output(LOCAL_ODP)]);
}

/// OVS's usual layout: the VMs and the tunnel port on br-int, the uplink
/// and the VTEP address on br-phy. The outer packet continues on br-phy;
/// a tunnel packet terminated on br-phy pops to br-int's tunnel port.
#[test]
fn tunnel_port_and_vtep_on_different_bridges() {
    let br_int = Arc::new(Ofproto::new("br-int"));
    br_int
        .add_port(PortConfig::new("vm", VM).with_ofport(1))
        .unwrap();
    let mut vx = TunnelConfig::vxlan([0; 4], [172, 31, 0, 2], 0);
    vx.key = TunnelKey::Fixed(5000);
    br_int
        .add_port(PortConfig::new("vx0", VX).with_ofport(2).with_tunnel(vx))
        .unwrap();
    br_int
        .add_flows(
            "in_port=vm,actions=output:vx0\nin_port=vx0,actions=output:vm\n",
            0,
        )
        .unwrap();
    let br_phy = Arc::new(Ofproto::new_standalone("br-phy"));
    br_phy
        .add_port(PortConfig::new("uplink", UPLINK).with_ofport(1))
        .unwrap();
    br_phy
        .add_port(PortConfig::new("br-phy", LOCAL_ODP).with_ofport(OFPP_LOCAL))
        .unwrap();
    let tnl = Arc::new(TunnelState::new());
    let (prefix, plen) = parse_prefix("172.31.0.0/24").unwrap();
    tnl.update_routes(|t| {
        t.replace_system(vec![Route {
            prefix,
            plen,
            dev: "br-phy".into(),
            gateway: None,
            src: Some(Ipv4Addr::new(172, 31, 0, 1).into()),
            origin: RouteOrigin::Cached,
        }])
    });
    tnl.set_dev_mac("br-phy", LOCAL_MAC);
    tnl.neigh()
        .set_static(Ipv4Addr::new(172, 31, 0, 2).into(), PEER_MAC, "br-phy");
    for b in [&br_int, &br_phy] {
        assert!(b.set_tunnel_state(tnl.clone()));
        tnl.register_bridge(b);
    }
    let t = br_int.translate(&vm_packet(), 0);
    let s = format_odp_actions(&t.actions);
    // br-phy's NORMAL floods the outer packet from LOCAL to the uplink.
    assert!(
        s.starts_with("clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=02:00:00:00:00:0b,src=02:00:00:00:00:0a")
            && s.ends_with("out_port(100)),12)"),
        "{s}"
    );
    let trace = br_int
        .trace("in_port=vm,icmp,nw_src=10.200.0.1,nw_dst=10.200.0.2", 0)
        .unwrap();
    assert!(
        trace.contains("from port br-phy of bridge br-phy"),
        "{trace}"
    );

    // The return traffic: VXLAN to our VTEP arrives on br-phy's uplink,
    // NORMAL sends it to LOCAL (its destination MAC), which terminates it
    // on br-int's tunnel port.
    let mut k = FlowKey::ZERO;
    k.in_port = UPLINK;
    k.dl_src = PEER_MAC;
    k.dl_dst = LOCAL_MAC;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_src = [172, 31, 0, 2];
    k.nw_dst = [172, 31, 0, 1];
    k.nw_proto = IPPROTO_UDP;
    k.tp_dst = 4789;
    // NORMAL learns LOCAL's MAC from the outer packet sent above.
    assert_eq!(br_phy.translate(&k, 0).actions[..], [Action::TnlPop(VX)]);
}

/// `remote_ip=flow` + `key=flow`: the rule picks the remote and the VNI.
#[test]
fn remote_and_key_from_the_flow() {
    let (o, tnl) = host();
    let mut cfg = TunnelConfig::vxlan([0; 4], [0; 4], 0);
    cfg.remote_from_flow = true;
    o.add_port(PortConfig::new("vxf", 4790).with_ofport(4).with_tunnel(cfg))
        .unwrap();
    o.add_flow(
        "priority=20,in_port=vm,actions=set_field:172.31.0.2->tun_dst,set_tunnel:77,output:vxf",
        0,
    )
    .unwrap();
    tnl.neigh()
        .set_static(Ipv4Addr::new(172, 31, 0, 2).into(), PEER_MAC, "br0");
    let s = format_odp_actions(&o.translate(&vm_packet(), 0).actions);
    assert!(
        s.contains("ipv4(src=172.31.0.1,dst=172.31.0.2") && s.contains("vni=0x4d)"),
        "{s}"
    );
    // Without a tun_dst there is nowhere to send it.
    o.add_flow("priority=30,in_port=vm,actions=output:vxf", 0)
        .unwrap();
    assert!(o.translate(&vm_packet(), 0).actions.is_empty());
}

/// Geneve options through the TLV map: a rule on `tun_metadata0` decides
/// delivery of decapsulated packets (the megaflow matches the option's
/// header and value, the ODP text prints it as OVS does), and
/// `set_field:...->tun_metadata0` puts the option in the Geneve header
/// on the way out.
#[test]
fn geneve_tun_metadata_matches_and_sets_options() {
    use ofproto::tlv_map::parse_mappings;
    const GNV: u32 = 6081;
    let mut gnv = TunnelConfig::geneve([0; 4], [172, 31, 0, 2], 0);
    gnv.key = TunnelKey::Fixed(7);
    let (o, tnl) = wired_bridge(
        "gnv0",
        GNV,
        gnv,
        "priority=20,in_port=gnv0,tun_metadata0=0x1234,actions=output:vm\n\
         priority=10,in_port=gnv0,actions=drop\n\
         priority=10,in_port=vm,actions=set_field:0xabcd->tun_metadata0,output:gnv0\n\
         priority=5,in_port=LOCAL,actions=output:uplink\n",
        "172.31.0.0/24",
        Ipv4Addr::new(172, 31, 0, 1).into(),
    );
    tnl.neigh()
        .set_static(Ipv4Addr::new(172, 31, 0, 2).into(), PEER_MAC, "br0");
    assert!(o.set_tunnel_state(tnl.clone()));

    let rx = |opts: &[u8]| {
        let mut k = vm_packet();
        k.in_port = GNV;
        k.tun_id = 7;
        k.tun_ipv4_src = [172, 31, 0, 2];
        k.tun_ipv4_dst = [172, 31, 0, 1];
        k.tun_ttl = 64;
        k.tun_flags = dp_core::odp::flow::TNL_F_KEY;
        k.tun_geneve_len = opts.len() as u8;
        k.tun_geneve[..opts.len()].copy_from_slice(opts);
        k
    };
    let right = [0xff, 0xff, 0x80, 1, 0, 0, 0x12, 0x34];
    let wrong = [0xff, 0xff, 0x80, 1, 0, 0, 0x12, 0x35];

    // Unmapped: the rule's option is never present.
    let t = o.translate(&rx(&right), 0);
    assert!(t.actions.is_empty(), "{:?}", t.actions);
    assert_eq!(t.mask.tun_geneve_len, 0, "nothing looked at the options");
    assert!(
        t.uses_tunnel_state,
        "a packet with options follows the map: adding one revalidates"
    );

    let before = o.tunnel_seq();
    tnl.update_tlv_map("br0", |m| {
        m.add(&parse_mappings(
            "{class=0xffff,type=0x80,len=4}->tun_metadata0",
        )?)
    })
    .unwrap();
    assert_ne!(o.tunnel_seq(), before, "a map change revalidates");

    let t = o.translate(&rx(&right), 0);
    assert_eq!(t.actions[..], [Action::Output(VM)]);
    assert!(t.uses_tunnel_state);
    let (k, m) = dp_core::odp::flow::flow_to_masked_key(&rx(&right).masked(&t.mask), &t.mask);
    let text = dp_core::odp::key::format_masked(&k, Some(&m), None, false);
    assert!(
        text.contains("geneve({class=0xffff,type=0x80,len=4,0x1234})"),
        "{text}"
    );
    let t = o.translate(&rx(&wrong), 0);
    assert!(
        t.actions.is_empty(),
        "wrong value: dropped, {:?}",
        t.actions
    );
    // ofproto/trace (ODP flow text) explains what the options decoded to.
    let trace = o
        .trace(
            "tunnel(tun_id=0x7,src=172.31.0.2,dst=172.31.0.1,ttl=64,\
             geneve({class=0xffff,type=0x80,len=4,0x1234}),flags(key)),in_port(6081),\
             eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x0800),\
             ipv4(src=10.200.0.1,dst=10.200.0.2,proto=1,tos=0,ttl=64,frag=no)",
            0,
        )
        .unwrap();
    assert!(
        trace.contains("Geneve options (8 bytes): tun_metadata0=0x1234"),
        "{trace}"
    );
    // The option after an unmapped one is found too.
    let t = o.translate(&rx(&[&[1, 2, 3, 1, 9, 9, 9, 9][..], &right].concat()), 0);
    assert_eq!(t.actions[..], [Action::Output(VM)]);

    // set_field: the option goes into the pushed Geneve header.
    let t = o.translate(&vm_packet(), 0);
    let text = format_odp_actions(&t.actions);
    assert!(
        text.contains("geneve(crit,vni=0x7,options({class=0xffff,type=0x80,len=4,0xabcd}))"),
        "{text}"
    );
    // The lookup saw that the VM's packet carries no option (the length
    // may be matched), but the written value depends on no option byte.
    assert_eq!(t.mask.tun_geneve, [0; GENEVE_KEY_OPTS], "{:?}", t.mask);
}

const VTEP6: &str = "2001:db8:31::1";
const PEER6: &str = "2001:db8:31::2";

fn v6(text: &str) -> std::net::IpAddr {
    text.parse().unwrap()
}

/// [`host`] with an IPv6 underlay: the VTEP 2001:db8:31::1/64 on LOCAL,
/// vx0 to 2001:db8:31::2.
fn host6() -> (Ofproto, Arc<TunnelState>) {
    let mut vx = TunnelConfig::vxlan(std::net::Ipv6Addr::UNSPECIFIED, v6(PEER6), 0);
    vx.key = TunnelKey::Fixed(5000);
    let (o, tnl) = wired_bridge(
        "vx0",
        VX,
        vx,
        VXLAN_HOST_FLOWS,
        "2001:db8:31::/64",
        v6(VTEP6),
    );
    assert!(o.set_tunnel_state(tnl.clone()));
    (o, tnl)
}

/// A Neighbor Advertisement from `from` (target `from`, target
/// link-layer address `mac`) to `to`, as the datapath extracts it.
fn neighbor_advert(from: &str, mac: [u8; 6], to: &str) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = UPLINK;
    k.dl_src = mac;
    k.dl_dst = LOCAL_MAC;
    k.dl_type = ETH_TYPE_IPV6;
    k.ipv6_src = from.parse::<std::net::Ipv6Addr>().unwrap().octets();
    k.ipv6_dst = to.parse::<std::net::Ipv6Addr>().unwrap().octets();
    k.nw_proto = IPPROTO_ICMPV6;
    k.nw_ttl = 255;
    k.tp_src = 136;
    k.nd_target = k.ipv6_src;
    k.arp_tha = mac;
    k.nd_options_type = 2;
    k
}

#[test]
fn ipv6_underlay_solicits_learns_from_nd_and_pushes_ipv6() {
    let (o, tnl) = host6();
    let t = o.translate(&vm_packet(), 0);
    assert!(
        t.actions.is_empty() && !t.install,
        "unresolved: drop, no megaflow"
    );
    let reqs = tnl.neigh().take_due_requests(0);
    assert_eq!(reqs.len(), 1);
    assert_eq!((reqs[0].target, reqs[0].src), (v6(PEER6), v6(VTEP6)));
    assert_eq!((reqs[0].dev.as_str(), reqs[0].src_mac), ("br0", LOCAL_MAC));

    // An advertisement to another address teaches nothing; one without
    // the target link-layer option neither.
    let t = o.translate(&neighbor_advert(PEER6, PEER_MAC, "2001:db8:31::9"), 0);
    assert_eq!(t.actions[..], [Action::Output(LOCAL_ODP)]);
    assert_eq!(
        (t.mask.ipv6_dst, t.mask.tp_src),
        ([255; 16], 0xff),
        "ICMPv6 type"
    );
    let mut no_tll = neighbor_advert(PEER6, PEER_MAC, VTEP6);
    no_tll.arp_tha = [0; 6];
    o.translate(&no_tll, 0);
    assert!(tnl.neigh().is_empty());
    // A solicitation (type 135) is not an answer.
    let mut ns = neighbor_advert(PEER6, PEER_MAC, VTEP6);
    ns.tp_src = 135;
    o.translate(&ns, 0);
    assert!(tnl.neigh().is_empty());

    let before = o.tunnel_seq();
    let t = o.translate(&neighbor_advert(PEER6, PEER_MAC, VTEP6), 0);
    assert_eq!(t.actions[..], [Action::Output(LOCAL_ODP)]);
    assert!(!t.install, "every advertisement must reach the slow path");
    assert_ne!(o.tunnel_seq(), before);
    assert_eq!(tnl.neigh().lookup(v6(PEER6), 1), Some(PEER_MAC));
    let shown = tnl.neigh().show(1);
    assert!(
        shown.contains("2001:db8:31::2                          02:00:00:00:00:0b   br0\n"),
        "{shown}"
    );

    let t = o.translate(&vm_packet(), 1);
    assert!(t.install);
    assert_eq!(
        format_odp_actions(&t.actions),
        "clone(tnl_push(tnl_port(4789),header(size=70,type=4,eth(dst=02:00:00:00:00:0b,src=02:00:00:00:00:0a,dl_type=0x86dd),ipv6(src=2001:db8:31::1,dst=2001:db8:31::2,label=0,proto=17,tclass=0x0,hlimit=64),udp(src=0,dst=4789,csum=0xffff),vxlan(flags=0x8000000,vni=0x1388)),out_port(100)),12)"
    );
    assert!(!o.is_stale(&t));
    tnl.neigh().snoop(v6(PEER6), [2, 0, 0, 0, 0, 0xc], "br0", 5);
    assert!(o.is_stale(&t), "a new MAC for the next hop revalidates");
}

#[test]
fn ipv6_packets_for_the_local_vtep_pop() {
    let (o, _) = host6();
    let mut k = FlowKey::ZERO;
    k.in_port = UPLINK;
    k.dl_type = ETH_TYPE_IPV6;
    k.ipv6_src = v6_octets(PEER6);
    k.ipv6_dst = v6_octets(VTEP6);
    k.nw_proto = IPPROTO_UDP;
    k.tp_dst = 4789;
    let t = o.translate(&k, 0);
    assert_eq!(t.actions[..], [Action::TnlPop(VX)]);
    assert_eq!(t.mask.ipv6_dst, [255; 16]);
    // Another address of the segment, or another UDP port: not ours.
    k.ipv6_dst = v6_octets("2001:db8:31::7");
    assert_eq!(o.translate(&k, 0).actions[..], [Action::Output(LOCAL_ODP)]);
    k.ipv6_dst = v6_octets(VTEP6);
    k.tp_dst = 4790;
    assert_eq!(o.translate(&k, 0).actions[..], [Action::Output(LOCAL_ODP)]);
    // The IPv4-mapped form of an IPv4 VTEP is not an IPv6 VTEP.
    let (o4, _) = host();
    k.tp_dst = 4789;
    k.ipv6_dst = "::ffff:172.31.0.1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    assert_eq!(o4.translate(&k, 0).actions[..], [Action::Output(LOCAL_ODP)]);
}

fn v6_octets(text: &str) -> [u8; 16] {
    text.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn ipv6_remote_from_the_flow_and_tun_ipv6_matches() {
    let (o, tnl) = host6();
    let cfg = TunnelConfig {
        remote_from_flow: true,
        ..TunnelConfig::vxlan([0; 4], [0; 4], 0)
    };
    o.add_port(PortConfig::new("vxf", 4790).with_ofport(4).with_tunnel(cfg))
        .unwrap();
    o.add_flows(
        "priority=20,in_port=vm,actions=set_field:2001:db8:31::2->tun_ipv6_dst,set_tunnel:77,output:vxf\n\
         priority=20,in_port=vxf,tun_ipv6_src=2001:db8:31::2,actions=output:vm\n",
        0,
    )
    .unwrap();
    tnl.neigh().set_static(v6(PEER6), PEER_MAC, "br0");
    let t = o.translate(&vm_packet(), 0);
    let s = format_odp_actions(&t.actions);
    assert!(
        s.contains("ipv6(src=2001:db8:31::1,dst=2001:db8:31::2,") && s.contains("vni=0x4d)"),
        "{s}"
    );
    // A decapsulated packet from the peer is delivered by its outer
    // IPv6 source; from another source it is not.
    let mut k = vm_packet();
    k.in_port = 4790;
    k.tun_id = 77;
    k.tun_ipv6_src = v6_octets(PEER6);
    k.tun_ipv6_dst = v6_octets(VTEP6);
    let t = o.translate(&k, 0);
    assert_eq!(t.actions[..], [Action::Output(VM)]);
    assert_eq!(
        t.mask.tun_ipv6_src, [255; 16],
        "the megaflow matches the outer source"
    );
    k.tun_ipv6_src = v6_octets("2001:db8:31::9");
    assert!(o.translate(&k, 0).actions.is_empty());
    // The rule prints back as OVS writes it.
    let flows = o.dump_flows(0);
    assert!(flows.contains("tun_ipv6_src=2001:db8:31::2"), "{flows}");
}
