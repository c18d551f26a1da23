//! Building a frame from an ODP key, like OVS's `netdev-dummy/receive`.
//!
//! # How it works
//! The key text becomes a [`FlowKey`] (omitted fields are zero), and
//! [`compose`] writes the packet that flow extraction would turn back into
//! that key, following OVS's `flow_compose`: Ethernet, VLAN tags, IPv4 or
//! IPv6 or ARP or an MPLS stack, then TCP/UDP/SCTP/ICMP/ICMPv6 (with ND
//! target and link-layer options), checksums filled in. Without `--len`
//! the payload is 64 bytes counting 0, 1, 2, ... where the protocol
//! carries one (so the default ICMP echo request is 106 bytes); with
//! `--len N` the headers alone are padded with zeros to `N` bytes and the
//! lengths and checksums fixed up (OVS's `packet_expand`, including its
//! habit of counting the padding twice in the UDP length).

use super::PortNames;
use super::flow::key_to_flow;
use super::key;
use super::scan::{OdpError, Result};
use crate::flow::FlowKey;
use crate::flow::key::*;
use crate::packet::{Packet, PacketPool};

/// Largest frame `--len` may ask for (IP lengths are 16 bits).
pub const MAX_FRAME_LEN: usize = 65535;

/// Payload length OVS uses when no `--len` is given.
pub const DEFAULT_L7_LEN: usize = 64;

/// Builds the frame for an ODP key string; `len` pads to that many bytes
/// (an error if the headers alone are longer).
pub fn build_frame(
    key_text: &str,
    len: Option<usize>,
    names: Option<&PortNames>,
) -> Result<Vec<u8>> {
    let attrs = key::parse(key_text, names)?;
    let (flow, _fit) = key_to_flow(&attrs)?;
    match len {
        None => Ok(compose(&flow, DEFAULT_L7_LEN)),
        Some(n) if n > MAX_FRAME_LEN => Err(OdpError::Invalid(format!(
            "--len: {n} is more than the largest frame, {MAX_FRAME_LEN} bytes"
        ))),
        Some(n) => {
            let mut frame = compose(&flow, 0);
            if frame.len() < n {
                expand(&mut frame, &flow, n);
            } else if frame.len() > n {
                return Err(OdpError::Invalid(format!(
                    "--len: {n} is shorter than the {} bytes of headers",
                    frame.len()
                )));
            }
            Ok(frame)
        }
    }
}

/// Parses `KEY [--len N]` (the arguments of `netdev-dummy/receive` after
/// the port) and builds the frame.
pub fn build_frame_args(args: &str, names: Option<&PortNames>) -> Result<Vec<u8>> {
    let (key_text, len) = match args.find("--len") {
        Some(i) => {
            let n = args[i + 5..].trim();
            let n: usize = n
                .parse()
                .map_err(|_| OdpError::Syntax(format!("--len: '{n}' is not a length")))?;
            (&args[..i], Some(n))
        }
        None => (args, None),
    };
    let key_text = key_text.trim().trim_matches('\'');
    build_frame(key_text, len, names)
}

/// [`build_frame`] into a buffer from `pool`.
pub fn build_packet(pool: &PacketPool, key_text: &str, len: Option<usize>) -> Result<Packet> {
    let frame = build_frame(key_text, len, None)?;
    pool.alloc_from(&frame).ok_or_else(|| {
        OdpError::Invalid(format!(
            "packet pool '{}': no buffer for {} bytes",
            pool.name(),
            frame.len()
        ))
    })
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn sum16(mut sum: u32, bytes: &[u8]) -> u32 {
    for ch in bytes.chunks(2) {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([
            ch[0],
            *ch.get(1).unwrap_or(&0),
        ])));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

fn csum(bytes: &[u8]) -> u16 {
    !fold(sum16(0, bytes))
}

/// Where the composed headers start.
struct Layout {
    l3: usize,
    l4: usize,
}

fn put16(p: &mut [u8], at: usize, v: u16) {
    p[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// OVS `flow_compose`: a frame that extracts back to `flow`, with an
/// `l7_len`-byte counting payload where the protocol carries one.
pub fn compose(flow: &FlowKey, l7_len: usize) -> Vec<u8> {
    compose_layout(flow, l7_len).0
}

fn compose_layout(flow: &FlowKey, l7_len: usize) -> (Vec<u8>, Option<Layout>) {
    let mut p = Vec::with_capacity(128 + l7_len);
    p.extend_from_slice(&flow.dl_dst);
    p.extend_from_slice(&flow.dl_src);
    p.extend_from_slice(&flow.dl_type.to_be_bytes());
    if flow.dl_type == ETH_TYPE_NONE {
        let n = p.len() as u16;
        put16(&mut p, 12, n);
        return (p, None);
    }
    for v in flow.vlans.iter().rev() {
        if v.tci & VLAN_CFI != 0 {
            let mut tag = [0u8; 4];
            tag[..2].copy_from_slice(&v.tpid.to_be_bytes());
            tag[2..].copy_from_slice(&(v.tci & !VLAN_CFI).to_be_bytes());
            p.splice(12..12, tag);
        }
    }
    let l3 = p.len();
    let mut layout = None;
    match flow.dl_type {
        ETH_TYPE_IPV4 => {
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[1] = flow.nw_tos;
            if flow.nw_frag & FLOW_NW_FRAG_ANY != 0 {
                let mut off = 0x2000u16;
                if flow.nw_frag & FLOW_NW_FRAG_LATER != 0 {
                    off |= 100;
                }
                put16(&mut ip, 6, off);
            }
            ip[8] = flow.nw_ttl;
            ip[9] = flow.nw_proto;
            ip[12..16].copy_from_slice(&flow.nw_src);
            ip[16..20].copy_from_slice(&flow.nw_dst);
            p.extend_from_slice(&ip);
            let l4 = p.len();
            let l4_len = compose_l4(&mut p, flow, l7_len);
            put16(&mut p, l3 + 2, (20 + l4_len) as u16);
            let c = csum(&p[l3..l3 + 20]);
            put16(&mut p, l3 + 10, c);
            l4_csum(&mut p, flow, l3, l4);
            layout = Some(Layout { l3, l4 });
        }
        ETH_TYPE_IPV6 => {
            let mut ip = [0u8; 40];
            let vtc = (6u32 << 28) | (u32::from(flow.nw_tos) << 20) | (flow.ipv6_label & 0xfffff);
            ip[..4].copy_from_slice(&vtc.to_be_bytes());
            ip[6] = flow.nw_proto;
            ip[7] = flow.nw_ttl;
            ip[8..24].copy_from_slice(&flow.ipv6_src);
            ip[24..40].copy_from_slice(&flow.ipv6_dst);
            p.extend_from_slice(&ip);
            let l4 = p.len();
            let l4_len = compose_l4(&mut p, flow, l7_len);
            put16(&mut p, l3 + 4, l4_len as u16);
            l4_csum(&mut p, flow, l3, l4);
            layout = Some(Layout { l3, l4 });
        }
        ETH_TYPE_ARP | ETH_TYPE_RARP => {
            let mut arp = [0u8; 28];
            put16(&mut arp, 0, 1);
            put16(&mut arp, 2, ETH_TYPE_IPV4);
            arp[4] = 6;
            arp[5] = 4;
            put16(&mut arp, 6, flow.nw_proto.into());
            if flow.nw_proto == 1 || flow.nw_proto == 2 {
                arp[8..14].copy_from_slice(&flow.arp_sha);
                arp[14..18].copy_from_slice(&flow.nw_src);
                arp[18..24].copy_from_slice(&flow.arp_tha);
                arp[24..28].copy_from_slice(&flow.nw_dst);
            }
            p.extend_from_slice(&arp);
        }
        ETH_TYPE_MPLS | ETH_TYPE_MPLS_MCAST => {
            let mut n = 1;
            while n < FLOW_MAX_MPLS_LABELS && flow.mpls_lse[n - 1] & 0x100 == 0 {
                n += 1;
            }
            for lse in flow.mpls_lse[..n].iter() {
                p.extend_from_slice(&lse.to_be_bytes());
            }
        }
        _ => {}
    }
    (p, layout)
}

fn l7(p: &mut Vec<u8>, n: usize) {
    p.extend((0..n).map(|i| i as u8));
}

fn compose_l4(p: &mut Vec<u8>, flow: &FlowKey, l7_len: usize) -> usize {
    let start = p.len();
    if flow.nw_frag & FLOW_NW_FRAG_LATER != 0 {
        return 0;
    }
    match flow.nw_proto {
        IPPROTO_TCP => {
            let mut h = [0u8; 20];
            put16(&mut h, 0, flow.tp_src);
            put16(&mut h, 2, flow.tp_dst);
            put16(&mut h, 12, (5 << 12) | (flow.tcp_flags & 0x0fff));
            p.extend_from_slice(&h);
            if flow.tcp_flags & 0x7 == 0 {
                l7(p, l7_len);
            }
        }
        IPPROTO_UDP => {
            let mut h = [0u8; 8];
            put16(&mut h, 0, flow.tp_src);
            put16(&mut h, 2, flow.tp_dst);
            put16(&mut h, 4, (8 + l7_len) as u16);
            p.extend_from_slice(&h);
            l7(p, l7_len);
        }
        IPPROTO_SCTP => {
            let mut h = [0u8; 12];
            put16(&mut h, 0, flow.tp_src);
            put16(&mut h, 2, flow.tp_dst);
            p.extend_from_slice(&h);
        }
        IPPROTO_ICMP => {
            let (t, c) = (flow.tp_src as u8, flow.tp_dst as u8);
            p.extend_from_slice(&[t, c, 0, 0, 0, 0, 0, 0]);
            if (t == 8 || t == 0) && c == 0 {
                l7(p, l7_len);
            }
        }
        IPPROTO_IGMP => {
            p.extend_from_slice(&[flow.tp_src as u8, flow.tp_dst as u8, 0, 0]);
            p.extend_from_slice(&flow.igmp_group_ip4);
        }
        IPPROTO_ICMPV6 => {
            let (t, c) = (flow.tp_src as u8, flow.tp_dst as u8);
            p.extend_from_slice(&[t, c, 0, 0, 0, 0, 0, 0]);
            if c == 0 && (t == 135 || t == 136) {
                p.extend_from_slice(&flow.nd_target);
                if flow.arp_sha != [0; 6] {
                    p.extend_from_slice(&[1, 1]);
                    p.extend_from_slice(&flow.arp_sha);
                }
                if flow.arp_tha != [0; 6] {
                    p.extend_from_slice(&[2, 1]);
                    p.extend_from_slice(&flow.arp_tha);
                }
            } else if c == 0 && (t == 128 || t == 129) {
                l7(p, l7_len);
            }
        }
        _ => {}
    }
    p.len() - start
}

/// Pseudo-header sum for the L4 checksum.
fn pseudo(p: &[u8], flow: &FlowKey, l3: usize, l4_len: usize) -> u32 {
    if flow.dl_type == ETH_TYPE_IPV4 {
        let mut s = sum16(0, &p[l3 + 12..l3 + 20]);
        s = sum16(s, &[0, flow.nw_proto]);
        sum16(s, &(l4_len as u16).to_be_bytes())
    } else {
        let mut s = sum16(0, &p[l3 + 8..l3 + 40]);
        s = sum16(s, &(l4_len as u32).to_be_bytes());
        sum16(s, &[0, 0, 0, flow.nw_proto])
    }
}

fn l4_csum(p: &mut [u8], flow: &FlowKey, l3: usize, l4: usize) {
    if flow.nw_frag & FLOW_NW_FRAG_LATER != 0 {
        return;
    }
    let l4_len = p.len() - l4;
    let at = match flow.nw_proto {
        IPPROTO_TCP if l4_len >= 20 => 16,
        IPPROTO_UDP if l4_len >= 8 => 6,
        IPPROTO_ICMP | IPPROTO_IGMP | IPPROTO_ICMPV6 if l4_len >= 4 => 2,
        _ => return,
    };
    put16(p, l4 + at, 0);
    let c = match flow.nw_proto {
        IPPROTO_ICMP | IPPROTO_IGMP => csum(&p[l4..]),
        _ => !fold(sum16(pseudo(p, flow, l3, l4_len), &p[l4..])),
    };
    put16(p, l4 + at, c);
}

/// OVS `packet_expand`: pads `p` (built by [`compose`] with no payload)
/// to `size` bytes and fixes lengths and checksums.
fn expand(p: &mut Vec<u8>, flow: &FlowKey, size: usize) {
    let extra = size - p.len();
    p.resize(size, 0);
    if flow.dl_type == ETH_TYPE_NONE {
        put16(p, 12, size as u16);
        return;
    }
    // Recompute where the headers are (compose is deterministic).
    let Some(Layout { l3, l4 }) = compose_layout(flow, 0).1 else {
        return;
    };
    let l4_len = p.len() - l4;
    if flow.dl_type == ETH_TYPE_IPV4 {
        put16(p, l3 + 2, (l4 - l3 + l4_len) as u16);
        put16(p, l3 + 10, 0);
        let c = csum(&p[l3..l3 + 20]);
        put16(p, l3 + 10, c);
    } else {
        put16(p, l3 + 4, l4_len as u16);
    }
    if flow.nw_frag & FLOW_NW_FRAG_LATER == 0 && flow.nw_proto == IPPROTO_UDP && l4_len >= 8 {
        // OVS counts the padding twice here; keep its bytes.
        put16(p, l4 + 4, (l4_len + extra) as u16);
    }
    l4_csum(p, flow, l3, l4);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::extract_frame;
    use crate::packet::PacketMetadata;

    const ICMP: &str = "in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)";

    #[test]
    fn test_emit_default_icmp_echo_is_106_bytes() {
        let f = build_frame(ICMP, None, None).unwrap();
        assert_eq!(f.len(), 106);
        // IPv4 header checksum verifies.
        assert_eq!(csum(&f[14..34]), 0);
        // ICMP checksum verifies.
        assert_eq!(csum(&f[34..]), 0);
        assert_eq!(f[106 - 1], 63);
    }

    #[test]
    fn test_emit_len_pads_and_fixes_lengths() {
        let f = build_frame_args(&format!("{ICMP} --len 128"), None).unwrap();
        assert_eq!(f.len(), 128);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 128 - 14);
        assert_eq!(csum(&f[14..34]), 0);
        assert!(build_frame(ICMP, Some(20), None).is_err());
        assert!(build_frame(ICMP, Some(1 << 40), None).is_err());
    }

    #[test]
    fn test_composed_frames_extract_back() {
        for k in [
            ICMP,
            "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x8100),vlan(vid=99,pcp=7),encap(eth_type(0x0800),ipv4(src=35.8.2.41,dst=172.16.0.20,proto=6,tos=0,ttl=128,frag=no),tcp(src=80,dst=8080))",
            "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x86dd),ipv6(src=::1,dst=::2,label=0,proto=17,tclass=0,hlimit=128,frag=no),udp(src=6630,dst=22)",
            "in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0806),arp(sip=1.2.3.4,tip=5.6.7.8,op=1,sha=00:0f:10:11:12:13,tha=00:14:15:16:17:18)",
        ] {
            let attrs = key::parse(k, None).unwrap();
            let (want, _) = key_to_flow(&attrs).unwrap();
            let frame = build_frame(k, None, None).unwrap();
            let meta = PacketMetadata::new(1);
            let mut got = FlowKey::ZERO;
            extract_frame(&frame, &meta, &mut got);
            for (name, a, b) in [
                ("dl_type", u64::from(want.dl_type), u64::from(got.dl_type)),
                ("nw_proto", want.nw_proto.into(), got.nw_proto.into()),
                ("tp_src", want.tp_src.into(), got.tp_src.into()),
                ("tp_dst", want.tp_dst.into(), got.tp_dst.into()),
                ("vlan0", want.vlans[0].tci.into(), got.vlans[0].tci.into()),
            ] {
                assert_eq!(a, b, "{name} for {k}");
            }
            assert_eq!(want.nw_src, got.nw_src, "{k}");
            assert_eq!(want.dl_src, got.dl_src, "{k}");
        }
    }
}
