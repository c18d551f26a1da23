//! Malformed packets through the whole packet path: a real PMD stepped
//! over `dummy-pmd` ports, with the daemon's upcall handler (`Bridges`
//! over an ofproto-lite bridge) deciding. Each bug class of the issue's
//! list (the extraction side is pinned in
//! `crates/dp-core/tests/malformed.rs`) must end in one of two ways:
//! - a counted drop (`datapath_drop_action`: the rule table's default is
//!   drop), with a megaflow narrow enough that the well-formed twin of
//!   the packet, sent next, still takes its own rule and is forwarded;
//! - refusal at the port (frames over the MTU), with no buffer kept.
//!
//! In every case nothing panics, nothing leaks a buffer, and the packet
//! appears on no port.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::flow::key::*;
use dp_core::flow::{FlowKey, extract_frame};
use dp_core::netdev::Netdev;
use dp_core::packet::PacketMetadata;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use ofproto::{Ofproto, PortConfig};
use oxvs::bridge::Bridges;

const DST: [u8; 6] = [0, 0, 0, 0, 0, 2];
const SRC: [u8; 6] = [0, 0, 0, 0, 0, 1];
const MS: u64 = 1_000_000;

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = DST.to_vec();
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h
}

fn ipv6(next: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h
}

fn udp(dst: u16) -> Vec<u8> {
    let mut u = 5000u16.to_be_bytes().to_vec();
    u.extend_from_slice(&dst.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

fn tcp(dst: u16, data_offset_words: u8) -> Vec<u8> {
    let mut t = 40000u16.to_be_bytes().to_vec();
    t.extend_from_slice(&dst.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[data_offset_words << 4, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn v4_tcp80() -> Vec<u8> {
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_TCP, 20));
    f.extend(tcp(80, 5));
    pad(f)
}

fn v4_udp53() -> Vec<u8> {
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_UDP, 8));
    f.extend(udp(53));
    pad(f)
}

fn v6_udp53() -> Vec<u8> {
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_UDP, 8));
    f.extend(udp(53));
    f
}

/// One case: a malformed frame that must be dropped, and the well-formed
/// frame it imitates, which must still be forwarded afterwards.
struct Case {
    name: &'static str,
    frame: Vec<u8>,
    twin: Option<Vec<u8>>,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut case =
        |name, frame: Vec<u8>, twin: Option<Vec<u8>>| out.push(Case { name, frame, twin });

    // Truncated L4: the IP packet ends 10 bytes into its TCP header.
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_TCP, 10));
    f.extend(&tcp(80, 5)[..10]);
    case("truncated TCP header", pad(f), Some(v4_tcp80()));

    // Truncated L3: the frame ends inside the IPv4 header.
    let f = v4_tcp80()[..14 + 12].to_vec();
    case("truncated IPv4 header", f, Some(v4_tcp80()));

    // Truncated L2: shorter than an Ethernet header.
    case(
        "runt below 14 bytes",
        v4_tcp80()[..10].to_vec(),
        Some(v4_tcp80()),
    );

    // IPv4 total length below the header length.
    let mut f = eth(ETH_TYPE_IPV4);
    let mut ip = ipv4(IPPROTO_TCP, 20);
    ip[2..4].copy_from_slice(&12u16.to_be_bytes());
    f.extend(ip);
    f.extend(tcp(80, 5));
    case("IPv4 total length < IHL", f, Some(v4_tcp80()));

    // Padding beyond the IP length that looks like UDP port 53.
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_UDP, 0));
    f.extend(udp(53));
    case("padding past the IP length", pad(f), Some(v4_udp53()));

    // IP protocol 0 whose payload looks like UDP port 53.
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(0, 8));
    f.extend(udp(53));
    case("IP protocol 0", pad(f), Some(v4_udp53()));

    // TCP data offset below 5 words and past the end.
    for words in [2u8, 15] {
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4(IPPROTO_TCP, 20));
        f.extend(tcp(80, words));
        case("bad TCP data offset", pad(f), Some(v4_tcp80()));
    }

    // ND with a zero-length and an oversized option.
    for opt_len in [0u8, 200] {
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        icmp.extend([1, opt_len, 0, 0, 0, 0, 0, 7]);
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6(IPPROTO_ICMPV6, icmp.len()));
        f.extend(icmp);
        case("ND option length", f, Some(v6_udp53()));
    }

    // An MPLS label stack that never ends.
    let mut f = eth(ETH_TYPE_MPLS);
    for i in 0..100u32 {
        f.extend(((i + 16) << 12 | 64).to_be_bytes());
    }
    case("endless MPLS stack", f, Some(v4_udp53()));

    // Five nested VLAN tags around UDP port 53.
    let mut f = eth(ETH_TYPE_VLAN_8021AD);
    for vid in 1..=5u16 {
        f.extend(vid.to_be_bytes());
        let next = if vid == 5 {
            ETH_TYPE_IPV4
        } else {
            ETH_TYPE_VLAN_8021Q
        };
        f.extend(next.to_be_bytes());
    }
    f.extend(ipv4(IPPROTO_UDP, 8));
    f.extend(udp(53));
    case("VLAN tags nested beyond support", f, Some(v4_udp53()));

    // IPv6 extension headers that chain to themselves until the payload
    // ends, and a routing header that runs past the end.
    let mut chain = Vec::new();
    for _ in 0..40 {
        chain.extend([IPPROTO_HOPOPTS, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_HOPOPTS, chain.len()));
    f.extend(chain);
    case("looping IPv6 extension chain", f, Some(v6_udp53()));
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_ROUTING, 16));
    f.extend([IPPROTO_UDP, 200, 0, 0, 0, 0, 0, 0]);
    f.extend(udp(53));
    case("IPv6 extension header past the end", f, Some(v6_udp53()));

    // LLDP and an unknown Ethernet type.
    for ethertype in [0x88cc_u16, 0x88b5] {
        let mut f = eth(ethertype);
        f.extend([0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1]);
        case("LLDP / unknown ethertype", pad(f), Some(v4_udp53()));
    }
    out
}

struct Rig {
    pmd: Pmd,
    p1: Arc<DummyNetdev>,
    p2: Arc<DummyNetdev>,
    now_ns: u64,
}

impl Rig {
    fn new() -> Rig {
        let bridge = Arc::new(Ofproto::new("br0"));
        for (name, no) in [("p1", 1u32), ("p2", 2)] {
            bridge
                .add_port(PortConfig::new(name, no).with_ofport(no))
                .unwrap();
        }
        // Forward only what a rule names; everything else drops.
        bridge
            .add_flows(
                "priority=20,tcp,tp_dst=80,actions=output:2\n\
                 priority=20,udp,tp_dst=53,actions=output:2\n\
                 priority=20,udp6,tp_dst=53,actions=output:2\n\
                 priority=0,actions=drop\n",
                0,
            )
            .unwrap();
        let bridges = Arc::new(Bridges::new());
        bridges.add_bridge(bridge.clone());
        bridges.attach_port(1, bridge.clone());
        bridges.attach_port(2, bridge);
        let mut pmd = Pmd::new(
            PmdConfig::default(),
            bridges,
            Arc::new(AtomicUsize::new(1000)),
        );
        let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
        Rig {
            pmd,
            p1,
            p2,
            now_ns: MS,
        }
    }

    fn dump(&mut self) -> Vec<FlowDump> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.pmd
            .handle(PmdMsg::DumpFlows { reply: tx }, self.now_ns);
        rx.recv().unwrap()
    }

    fn drops(&self, reason: &str) -> u64 {
        self.pmd
            .drop_counts()
            .iter()
            .find(|(name, _)| *name == reason)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// Sends `frame` in on p1 and returns the frames p2 transmitted.
    fn send(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        self.p1.receive(0, frame).unwrap();
        self.now_ns += MS;
        assert_eq!(self.pmd.poll_once(self.now_ns), 1);
        assert!(self.p1.take_sent().is_empty(), "hairpin to p1");
        assert_eq!(self.p1.pool().in_use(), 0, "buffer kept after the packet");
        self.p2.take_sent()
    }
}

fn key_of(frame: &[u8]) -> FlowKey {
    let mut key = FlowKey::ZERO;
    extract_frame(frame, &PacketMetadata::new(1), &mut key);
    key
}

#[test]
fn every_malformed_class_is_a_counted_drop_with_a_narrow_megaflow() {
    let mut rig = Rig::new();
    for case in cases() {
        let name = case.name;
        let drops_before = rig.drops("datapath_drop_action");
        let out = rig.send(&case.frame);
        assert!(out.is_empty(), "{name}: malformed packet was forwarded");
        assert_eq!(
            rig.drops("datapath_drop_action"),
            drops_before + 1,
            "{name}: drop not counted"
        );
        // The drop is a megaflow that matches the malformed packet.
        let key = key_of(&case.frame);
        let flows = rig.dump();
        let flow = flows
            .iter()
            .find(|f| key.matches_masked(&f.mask, &f.key))
            .unwrap_or_else(|| panic!("{name}: no megaflow covers the packet"));
        assert!(flow.actions.is_empty(), "{name}: megaflow does not drop");

        // Sent again, it hits that megaflow (no second upcall).
        let upcalls = rig.pmd.stats().miss_upcall_ok;
        assert!(rig.send(&case.frame).is_empty());
        assert_eq!(
            rig.pmd.stats().miss_upcall_ok,
            upcalls,
            "{name}: upcalled again"
        );

        // The drop megaflow must not swallow the well-formed packet.
        if let Some(twin) = case.twin {
            let out = rig.send(&twin);
            assert_eq!(
                out,
                vec![twin.clone()],
                "{name}: the well-formed twin was not forwarded"
            );
        }
    }
    let stats = rig.pmd.stats();
    assert_eq!(stats.miss_upcall_failed, 0);
    drop(rig.pmd);
    assert_eq!(rig.p1.pool().in_use(), 0);
    assert_eq!(rig.p2.pool().in_use(), 0);
}

#[test]
fn frames_over_the_mtu_are_refused_at_the_port_without_keeping_a_buffer() {
    let mut rig = Rig::new();
    let mut jumbo = eth(ETH_TYPE_IPV4);
    jumbo.extend(ipv4(IPPROTO_UDP, 8));
    jumbo.extend(udp(53));
    jumbo.resize(9018, 0);
    let err = rig.p1.receive(0, &jumbo).unwrap_err();
    assert!(err.to_string().contains("MTU"), "{err}");
    assert_eq!(rig.pmd.poll_once(MS), 0);
    assert_eq!(rig.p1.pool().in_use(), 0);

    // A jumbo port takes it, and the padding past the IP length is not
    // mistaken for payload: it is forwarded whole by the UDP rule.
    let big = Arc::new(DummyNetdev::new(
        "big",
        DummyConfig {
            mtu: 9000,
            pool_capacity: 64,
            ..DummyConfig::default()
        },
    ));
    rig.pmd
        .add_rxq(PolledRxq::new(1, "big", 0, big.open_rxq(0).unwrap()));
    big.receive(0, &jumbo).unwrap();
    assert_eq!(rig.pmd.poll_once(2 * MS), 1);
    assert_eq!(rig.p2.take_sent(), vec![jumbo]);
    assert_eq!(big.pool().in_use(), 0);
}
