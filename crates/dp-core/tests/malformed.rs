//! Malformed-packet regression set for flow-key extraction: the bug
//! classes of packet parsers that the in-module fixtures
//! (`src/flow/extract.rs`) do not already pin, each with the key the
//! extractor must produce. Common to all: no panic, offsets inside the
//! frame, and a header that is cut short or insane ends parsing with every
//! later field zero (so the packet still gets a narrow megaflow).
//!
//! The same frames go through a running PMD with ofproto-lite in the root
//! package's `tests/malformed_datapath.rs`, where the resulting drop or
//! megaflow is checked.

use dp_core::flow::key::*;
use dp_core::flow::{FlowKey, extract_frame};
use dp_core::packet::{HeaderOffsets, OFS_NONE, PacketMetadata};

const DST: [u8; 6] = [0, 0, 0, 0, 0, 2];
const SRC: [u8; 6] = [0, 0, 0, 0, 0, 1];

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
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

fn udp(src: u16, dst: u16) -> Vec<u8> {
    let mut u = src.to_be_bytes().to_vec();
    u.extend_from_slice(&dst.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    u
}

fn tcp(dst: u16) -> Vec<u8> {
    let mut t = 40000u16.to_be_bytes().to_vec();
    t.extend_from_slice(&dst.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// Extracts `frame` and checks the properties every frame must have.
fn extract(frame: &[u8]) -> (FlowKey, HeaderOffsets) {
    let mut key = FlowKey::ZERO;
    let offsets = extract_frame(frame, &PacketMetadata::new(1), &mut key);
    for ofs in [offsets.l2_5, offsets.l3, offsets.l4] {
        assert!(
            ofs == OFS_NONE || usize::from(ofs) <= frame.len(),
            "offset {ofs} past the {}-byte frame",
            frame.len()
        );
    }
    assert!(usize::from(offsets.l2_pad) <= frame.len());
    assert_eq!(key.in_port, 1);
    (key, offsets)
}

/// Every prefix of `frame` extracts without panicking, and a prefix never
/// yields transport ports the whole frame does not have.
fn every_prefix(frame: &[u8]) {
    let (whole, _) = extract(frame);
    for cut in 0..frame.len() {
        let (key, _) = extract(&frame[..cut]);
        if key.tp_src != 0 || key.tp_dst != 0 {
            assert_eq!((key.tp_src, key.tp_dst), (whole.tp_src, whole.tp_dst));
        }
    }
}

#[test]
fn truncated_l2_l3_l4_headers_at_every_length() {
    let mut v4_tcp = eth(ETH_TYPE_IPV4);
    v4_tcp.extend(ipv4(IPPROTO_TCP, 20));
    v4_tcp.extend(tcp(80));
    let mut v6_udp = eth(ETH_TYPE_IPV6);
    v6_udp.extend(ipv6(IPPROTO_UDP, 8));
    v6_udp.extend(udp(1, 2));
    let mut vlan_v4 = eth(ETH_TYPE_VLAN_8021Q);
    vlan_v4.extend([0, 5, 0x08, 0x00]);
    vlan_v4.extend(ipv4(IPPROTO_UDP, 8));
    vlan_v4.extend(udp(3, 4));
    let mut arp = eth(ETH_TYPE_ARP);
    arp.extend([0, 1, 8, 0, 6, 4, 0, 1, 0, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
    arp.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    for frame in [&v4_tcp, &v6_udp, &vlan_v4, &arp] {
        every_prefix(frame);
    }
    // An IP packet that ends inside its TCP header: L3 kept, no ports.
    let mut cut_tcp = eth(ETH_TYPE_IPV4);
    cut_tcp.extend(ipv4(IPPROTO_TCP, 10));
    cut_tcp.extend(&tcp(80)[..10]);
    let (key, offsets) = extract(&cut_tcp);
    assert_eq!((key.nw_proto, key.nw_dst), (IPPROTO_TCP, [10, 0, 0, 2]));
    assert_eq!((key.tp_src, key.tp_dst, key.tcp_flags), (0, 0, 0));
    assert_eq!(offsets.l4, 34);
    // A frame cut short of its IP total length: the IP header is not
    // trusted, so no L3 fields at all.
    let (key, _) = extract(&v4_tcp[..14 + 20 + 10]);
    assert_eq!(
        (key.dl_type, key.nw_proto, key.nw_dst),
        (ETH_TYPE_IPV4, 0, [0; 4])
    );
    // Shorter than an Ethernet header: nothing but metadata.
    let (key, offsets) = extract(&v4_tcp[..13]);
    assert_eq!(key.dl_type, 0);
    assert_eq!(offsets.l3, OFS_NONE);
}

#[test]
fn ipv4_total_length_shorter_than_ihl_or_longer_than_the_frame() {
    for total in [0u16, 19, 23] {
        let mut f = eth(ETH_TYPE_IPV4);
        let mut ip = ipv4(IPPROTO_UDP, 8);
        ip[0] = 0x46; // IHL 24 bytes
        ip.extend([0; 4]);
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend(ip);
        f.extend(udp(1, 2));
        let (key, offsets) = extract(&f);
        assert_eq!(key.dl_type, ETH_TYPE_IPV4);
        assert_eq!((key.nw_proto, key.nw_src, key.tp_dst), (0, [0; 4], 0));
        assert_eq!(offsets.l4, OFS_NONE, "total length {total}");
    }
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_UDP, 400));
    f.extend(udp(1, 2));
    let (key, _) = extract(&f);
    assert_eq!(
        (key.nw_proto, key.tp_dst),
        (0, 0),
        "total length past the frame"
    );
}

#[test]
fn padding_beyond_ip_length_is_not_transport() {
    // The IP packet ends after its header; 30 bytes of padding that look
    // like UDP follow.
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_UDP, 0));
    f.extend(udp(4789, 4789));
    f.extend([0xaa; 22]);
    let (key, offsets) = extract(&f);
    assert_eq!((key.nw_proto, key.tp_src, key.tp_dst), (IPPROTO_UDP, 0, 0));
    assert_eq!(usize::from(offsets.l2_pad), 30);
    // Padding on a jumbo frame still fits the offset type.
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_UDP, 8));
    f.extend(udp(7, 9));
    f.resize(9018, 0);
    let (key, offsets) = extract(&f);
    assert_eq!(key.tp_dst, 9);
    assert_eq!(usize::from(offsets.l2_pad), 9018 - 42);
}

#[test]
fn ip_protocol_zero_and_unknown_protocols_have_no_ports() {
    for proto in [0u8, 99, 255] {
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4(proto, 8));
        f.extend(udp(1, 2));
        let (key, offsets) = extract(&f);
        assert_eq!(key.nw_proto, proto);
        assert_eq!((key.tp_src, key.tp_dst), (0, 0), "proto {proto}");
        assert_eq!(offsets.l4, 34);
    }
}

#[test]
fn tcp_data_offset_out_of_range_keeps_no_ports() {
    for data_offset in [0u8, 4, 15] {
        let mut t = tcp(80);
        t[12] = data_offset << 4;
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4(IPPROTO_TCP, t.len()));
        f.extend(t);
        let (key, _) = extract(&f);
        assert_eq!(key.nw_proto, IPPROTO_TCP);
        assert_eq!(
            (key.tp_dst, key.tcp_flags),
            (0, 0),
            "data offset {data_offset} words"
        );
    }
}

fn nd_solicit(options: &[u8]) -> Vec<u8> {
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    icmp.extend_from_slice(options);
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_ICMPV6, icmp.len()));
    f.extend(icmp);
    f
}

#[test]
fn nd_options_with_zero_or_oversized_length() {
    // Length 0 would loop for ever in a naive parser; 3 and 200 run past
    // the end. Option parsing stops there, as OVS's does: the target is
    // kept, the link-layer address is not.
    for opt_len in [0u8, 3, 200] {
        let f = nd_solicit(&[1, opt_len, 0, 0, 0, 0, 0, 7]);
        let (key, _) = extract(&f);
        assert_eq!(key.nw_proto, IPPROTO_ICMPV6);
        assert_eq!(key.tp_src, 135);
        assert_eq!(key.nd_target[15], 9, "option length {opt_len}");
        assert_eq!(key.arp_sha, [0; 6], "option length {opt_len}");
        every_prefix(&f);
    }
    let f = nd_solicit(&[1, 1, 0, 0, 0, 0, 0, 7]);
    let (key, _) = extract(&f);
    assert_eq!(key.arp_sha, [0, 0, 0, 0, 0, 7]);
}

#[test]
fn mpls_label_stack_that_never_ends() {
    // 400 labels, none with bottom-of-stack: three kept, no L3, no panic.
    let mut f = eth(ETH_TYPE_MPLS);
    for i in 0..400u32 {
        f.extend(((i + 16) << 12 | 64).to_be_bytes());
    }
    let (key, offsets) = extract(&f);
    assert_eq!(key.mpls_lse[0] >> 12, 16);
    assert_eq!(key.mpls_lse[2] >> 12, 18);
    assert_eq!((key.nw_proto, key.nw_src), (0, [0; 4]));
    assert_eq!(offsets.l2_5, 14);
    assert_eq!(offsets.l4, OFS_NONE);
    // A stack cut in the middle of a label entry.
    let (key, _) = extract(&f[..14 + 4 * 2 + 3]);
    assert_eq!(key.mpls_lse[2], 0);
    every_prefix(&f[..64]);
}

#[test]
fn vlan_tags_nested_beyond_support() {
    // Five 802.1Q tags: two are kept, the third tag's TPID becomes the
    // Ethernet type, and nothing behind it is parsed.
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
    f.extend(udp(1, 2));
    let (key, offsets) = extract(&f);
    assert_eq!(key.vlans[0].vid(), 1);
    assert_eq!(key.vlans[1].vid(), 2);
    assert_eq!(key.dl_type, ETH_TYPE_VLAN_8021Q);
    assert_eq!((key.nw_src, key.tp_dst), ([0; 4], 0));
    assert_eq!(offsets.l4, OFS_NONE);
    every_prefix(&f);
}

#[test]
fn ipv6_extension_header_chain_that_loops_or_runs_past_the_end() {
    // 100 hop-by-hop headers each naming hop-by-hop as the next: the chain
    // "loops" but every header consumes 8 bytes, so parsing ends with
    // the payload. The final next-header is hop-by-hop with no bytes
    // left: truncated, so no L4.
    let mut chain = Vec::new();
    for _ in 0..100 {
        chain.extend([IPPROTO_HOPOPTS, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_HOPOPTS, chain.len()));
    f.extend(&chain);
    let (key, offsets) = extract(&f);
    assert_eq!(key.ipv6_dst[15], 2, "the fixed header was parsed");
    assert_eq!(key.nw_proto, 0);
    assert_eq!(offsets.l4, OFS_NONE);

    // A routing header whose length runs past the payload.
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_ROUTING, 16));
    f.extend([IPPROTO_UDP, 200, 0, 0, 0, 0, 0, 0]);
    f.extend(udp(1, 2));
    let (key, offsets) = extract(&f);
    assert_eq!((key.nw_proto, key.tp_dst), (0, 0));
    assert_eq!(offsets.l4, OFS_NONE);

    // A sane chain (dest options, then UDP) still parses to L4.
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_DSTOPTS, 16));
    f.extend([IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
    f.extend(udp(1, 2));
    let (key, _) = extract(&f);
    assert_eq!((key.nw_proto, key.tp_dst), (IPPROTO_UDP, 2));
    every_prefix(&f);

    // An AH header whose length field points past the end.
    let mut f = eth(ETH_TYPE_IPV6);
    f.extend(ipv6(IPPROTO_AH, 16));
    f.extend([IPPROTO_UDP, 255, 0, 0, 0, 0, 0, 0]);
    f.extend(udp(1, 2));
    let (key, _) = extract(&f);
    assert_eq!((key.nw_proto, key.tp_dst), (0, 0));
}

#[test]
fn lldp_and_unknown_ethertypes_keep_only_l2() {
    for ethertype in [0x88cc_u16, 0x88b5, 0xffff, 0x0600] {
        let mut f = eth(ethertype);
        f.extend([
            0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1, 0x04, 0x03, 0x05, 0x65, 0x31, 0, 0,
        ]);
        f.resize(60, 0);
        let (key, offsets) = extract(&f);
        assert_eq!(key.dl_type, ethertype);
        assert_eq!((key.dl_src, key.dl_dst), (SRC, DST));
        assert_eq!((key.nw_proto, key.nw_src), (0, [0; 4]));
        assert_eq!(offsets.l3, 14);
        assert_eq!(offsets.l4, OFS_NONE);
    }
    // An 802.3 length field without SNAP: no Ethernet type at all.
    let mut f = eth(0x0040);
    f.extend([0x42, 0x42, 0x03, 0, 0, 0]);
    f.resize(60, 0);
    let (key, _) = extract(&f);
    assert_eq!(key.dl_type, ETH_TYPE_NONE);
}

#[test]
fn frames_larger_than_the_offset_type() {
    // Bigger than any MTU and than u16 offsets: extraction must still stay
    // in bounds (a driver bug or a GSO buffer could deliver one).
    let mut f = eth(ETH_TYPE_IPV4);
    f.extend(ipv4(IPPROTO_UDP, 8));
    f.extend(udp(1, 2));
    f.resize(70_000, 0);
    let (key, _) = extract(&f);
    // The padding no longer fits the u16 pad offset: treated as insane.
    assert_eq!(key.tp_dst, 0);
    let mut f = eth(ETH_TYPE_MPLS);
    for _ in 0..17_000 {
        f.extend((16u32 << 12).to_be_bytes());
    }
    let (_, offsets) = extract(&f);
    assert_eq!(
        offsets.l3, OFS_NONE,
        "L3 offset past u16 is 'none', not wrapped"
    );
}
