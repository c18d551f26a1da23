//! Simple-match parsing: the few fields a simple-match flow keys on, read
//! without extracting the whole flow key.
//!
//! # What and why
//! A port whose flows are all simple (see [`crate::flow_table`]) is served
//! from an exact table keyed by `in_port`, `recirc_id`, `packet_type`,
//! `dl_type`, the first VLAN TCI and the fragment bits. OVS 3.x reads just
//! those for such a port (`parse_tcp_flags` in its `dfc_processing`) and
//! skips `miniflow_extract`, the hash and the EMC. [`parse_simple`] does
//! the same here: the Ethernet and VLAN headers, the IPv4/IPv6 header's
//! length checks and fragment bits, and the TCP flags (credited to the
//! flow's statistics), about a fifth of a full extraction.
//!
//! # How
//! It walks the frame exactly as [`super::extract`] does for the packets
//! it accepts, and declines (`None`) every packet whose parse would take
//! a path it does not mirror: a non-Ethernet packet type, a frame shorter
//! than an Ethernet header, 802.2 LLC/SNAP, MPLS, an IPv4 or IPv6 header
//! that fails its length checks, IPv6 extension headers. The caller then
//! extracts the whole key as usual, so declining costs time, never a
//! different answer.
//!
//! # Invariants
//! - When it returns `Some(fields)`, the full extraction of the same frame
//!   and metadata gives `dl_type`, `vlans[0].tci`, `nw_frag` and
//!   `tcp_flags` equal to `fields`, and the same header offsets (tested
//!   against [`super::extract_frame`] on mutated and truncated frames of
//!   every parse path).
//! - Never panics and never reads outside the frame.

use super::extract::{self, PLAIN_L3, PLAIN_L4, PlainIpv4, plain_ipv4};
use super::key::*;
use crate::packet::{HeaderOffsets, OFS_NONE, Packet, PacketMetadata, PacketType};

const ETH_HEADER_LEN: usize = 14;
const VLAN_HEADER_LEN: usize = 4;
const IPV4_HEADER_LEN: usize = 20;
const IPV4_MF_AND_OFFSET: u16 = 0x3fff;
const IPV4_OFFSET_MASK: u16 = 0x1fff;
const IPV6_HEADER_LEN: usize = 40;

/// The fields of a packet that a simple-match lookup and the flow's
/// statistics need, as the full extraction would set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimpleFields {
    pub dl_type: u16,
    /// The first VLAN tag's TCI with the CFI bit set, or 0 untagged
    /// (`FlowKey::vlans[0].tci`).
    pub tci: u16,
    pub nw_frag: u8,
    pub tcp_flags: u16,
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The simple fields of `packet` (received with its metadata reset, the
/// in-port set), writing its header offsets as extraction would; `None`
/// (offsets unspecified) when the packet needs the full extraction.
#[inline]
pub fn parse_simple_packet(packet: &mut Packet) -> Option<SimpleFields> {
    let (fields, offsets) = parse_simple(packet.data(), packet.meta())?;
    packet.parse_meta_mut().offsets = offsets;
    Some(fields)
}

/// [`parse_simple_packet`] on a frame: the fields and the header offsets.
#[inline]
pub fn parse_simple(frame: &[u8], meta: &PacketMetadata) -> Option<(SimpleFields, HeaderOffsets)> {
    if meta.packet_type != PacketType::ETHERNET {
        return None;
    }
    if let Some(parsed) = parse_eth_ipv4_fast(frame) {
        return Some(parsed);
    }
    parse_simple_general(frame)
}

/// The common frame, untagged Ethernet + IPv4 without options or
/// fragmentation, at fixed offsets (as extraction's fast path); `None`
/// for any other frame, which [`parse_simple_general`] then takes. Same
/// answer as the general walk (property-tested against it). Callgrind,
/// DPDK bench `100k-inport`: the light parse ~76 -> ~35 instructions a
/// packet.
#[inline(always)]
fn parse_eth_ipv4_fast(frame: &[u8]) -> Option<(SimpleFields, HeaderOffsets)> {
    let PlainIpv4 { l4, proto, l2_pad } = plain_ipv4(frame)?;
    let tcp_flags = if proto == IPPROTO_TCP {
        extract::tcp_flags(l4).unwrap_or(0)
    } else {
        0
    };
    let fields = SimpleFields {
        dl_type: ETH_TYPE_IPV4,
        tci: 0,
        nw_frag: 0,
        tcp_flags,
    };
    let offsets = HeaderOffsets {
        l2_5: OFS_NONE,
        l3: PLAIN_L3 as u16,
        l4: PLAIN_L4 as u16,
        l2_pad,
    };
    Some((fields, offsets))
}

/// Every Ethernet frame the fast path declines: VLAN tags, IPv4 with
/// options or fragmented, IPv6, other types.
fn parse_simple_general(frame: &[u8]) -> Option<(SimpleFields, HeaderOffsets)> {
    if frame.len() < ETH_HEADER_LEN {
        return None;
    }
    let mut f = SimpleFields::default();
    let mut pos = 12;
    // VLAN tags, as `Parser::parse_l2`: each needs its own 4 bytes plus
    // the next type field; a short one ends the loop, its TPID read as the
    // Ethernet type.
    let mut n = 0;
    while n < FLOW_MAX_VLAN_HEADERS {
        let tpid = be16(frame, pos);
        if tpid != ETH_TYPE_VLAN_8021Q && tpid != ETH_TYPE_VLAN_8021AD {
            break;
        }
        if frame.len() - pos < VLAN_HEADER_LEN + 2 {
            break;
        }
        if n == 0 {
            f.tci = be16(frame, pos + 2) | VLAN_CFI;
        }
        pos += VLAN_HEADER_LEN;
        n += 1;
    }
    let dl_type = be16(frame, pos);
    pos += 2;
    if dl_type < ETH_TYPE_MIN || dl_type == ETH_TYPE_MPLS || dl_type == ETH_TYPE_MPLS_MCAST {
        return None;
    }
    f.dl_type = dl_type;
    let mut offsets = HeaderOffsets::NONE;
    offsets.l3 = u16::try_from(pos).unwrap_or(OFS_NONE);
    let (l4, end, nw_proto) = match dl_type {
        ETH_TYPE_IPV4 => {
            let b = &frame[pos..];
            if b.len() < IPV4_HEADER_LEN {
                return None;
            }
            let ihl = usize::from(b[0] & 0x0f) * 4;
            let total_len = usize::from(be16(b, 2));
            if ihl < IPV4_HEADER_LEN || ihl > b.len() || total_len > b.len() || ihl > total_len {
                return None;
            }
            offsets.l2_pad = u16::try_from(b.len() - total_len).ok()?;
            let frag_off = be16(b, 6);
            if frag_off & IPV4_MF_AND_OFFSET != 0 {
                f.nw_frag = FLOW_NW_FRAG_ANY;
                if frag_off & IPV4_OFFSET_MASK != 0 {
                    f.nw_frag |= FLOW_NW_FRAG_LATER;
                }
            }
            (pos + ihl, pos + total_len, b[9])
        }
        ETH_TYPE_IPV6 => {
            let b = &frame[pos..];
            if b.len() < IPV6_HEADER_LEN {
                return None;
            }
            let payload_len = usize::from(be16(b, 4));
            if IPV6_HEADER_LEN + payload_len > b.len() {
                return None;
            }
            let nw_proto = b[6];
            if matches!(
                nw_proto,
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
            ) {
                return None;
            }
            offsets.l2_pad = u16::try_from(b.len() - IPV6_HEADER_LEN - payload_len).ok()?;
            let l4 = pos + IPV6_HEADER_LEN;
            (l4, l4 + payload_len, nw_proto)
        }
        _ => return Some((f, offsets)),
    };
    offsets.l4 = u16::try_from(l4).unwrap_or(OFS_NONE);
    if nw_proto == IPPROTO_TCP && f.nw_frag & FLOW_NW_FRAG_LATER == 0 {
        f.tcp_flags = extract::tcp_flags(&frame[l4..end]).unwrap_or(0);
    }
    Some((f, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowKey, extract_frame};
    use proptest::prelude::*;

    fn eth(dl_type: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&dl_type.to_be_bytes());
        f
    }

    fn ipv4(proto: u8, payload: usize, frag: u16) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        h[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h
    }

    fn ipv6(next: u8, payload: usize) -> Vec<u8> {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[23] = 1;
        h[39] = 2;
        h
    }

    fn tcp(flags: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&80u16.to_be_bytes());
        t[2..4].copy_from_slice(&8080u16.to_be_bytes());
        t[12..14].copy_from_slice(&((5 << 12) | flags).to_be_bytes());
        t
    }

    /// Frames of every parse path, to be mutated and cut.
    fn templates() -> Vec<Vec<u8>> {
        let udp4 = [
            eth(ETH_TYPE_IPV4),
            ipv4(IPPROTO_UDP, 8, 0),
            vec![0, 1, 0, 2, 0, 8, 0, 0],
        ]
        .concat();
        let tcp4 = [eth(ETH_TYPE_IPV4), ipv4(IPPROTO_TCP, 20, 0), tcp(0x12)].concat();
        let frag4 = [eth(ETH_TYPE_IPV4), ipv4(IPPROTO_TCP, 20, 0x2000), tcp(0x02)].concat();
        let later4 = [eth(ETH_TYPE_IPV4), ipv4(IPPROTO_TCP, 20, 0x0010), tcp(0x02)].concat();
        let tcp6 = [eth(ETH_TYPE_IPV6), ipv6(IPPROTO_TCP, 20), tcp(0x11)].concat();
        let frag6 = [
            eth(ETH_TYPE_IPV6),
            ipv6(IPPROTO_FRAGMENT, 28),
            vec![IPPROTO_TCP, 0, 0, 1, 0, 0, 0, 1],
            tcp(0x02),
        ]
        .concat();
        let mut vlan = eth(ETH_TYPE_VLAN_8021AD);
        vlan.truncate(12);
        vlan.extend_from_slice(&[0x88, 0xa8, 0x20, 5, 0x81, 0, 0, 7, 0x08, 0x00]);
        vlan.extend(ipv4(IPPROTO_TCP, 20, 0));
        vlan.extend(tcp(0x10));
        let mut arp = eth(ETH_TYPE_ARP);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[1, 2, 3, 4, 5, 6, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let mut mpls = eth(ETH_TYPE_MPLS);
        mpls.extend_from_slice(&[0, 1, 0x41, 64]);
        let mut snap = eth(0x0030);
        snap.extend_from_slice(&[0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00]);
        snap.extend(ipv4(IPPROTO_UDP, 8, 0));
        snap.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let mut padded = udp4.clone();
        padded.extend_from_slice(&[0; 18]);
        vec![
            udp4, tcp4, frag4, later4, tcp6, frag6, vlan, arp, mpls, snap, padded,
        ]
    }

    /// `parse_simple` agrees with the full extraction whenever it answers.
    fn check(frame: &[u8], meta: &PacketMetadata) -> Result<bool, TestCaseError> {
        let Some((fields, offsets)) = parse_simple(frame, meta) else {
            return Ok(false);
        };
        let mut key = FlowKey::ZERO;
        let full = extract_frame(frame, meta, &mut key);
        prop_assert_eq!(fields.dl_type, key.dl_type, "dl_type of {:02x?}", frame);
        prop_assert_eq!(fields.tci, key.vlans[0].tci, "tci of {:02x?}", frame);
        prop_assert_eq!(fields.nw_frag, key.nw_frag, "nw_frag of {:02x?}", frame);
        prop_assert_eq!(
            fields.tcp_flags,
            key.tcp_flags,
            "tcp_flags of {:02x?}",
            frame
        );
        prop_assert_eq!(offsets, full, "offsets of {:02x?}", frame);
        Ok(true)
    }

    /// The fast path runs on the plain shapes (so the agreement test
    /// compares two parsers) and declines the others.
    #[test]
    fn fast_path_takes_plain_ipv4_only() {
        let t = templates();
        let taken: Vec<bool> = t.iter().map(|f| parse_eth_ipv4_fast(f).is_some()).collect();
        // udp4, tcp4, padded: yes; fragments, IPv6, VLAN, ARP, MPLS, SNAP: no.
        assert_eq!(
            taken,
            [
                true, true, false, false, false, false, false, false, false, false, true
            ]
        );
        let (f, o) = parse_eth_ipv4_fast(&t[1]).expect("tcp4");
        assert_eq!((f.tcp_flags, o.l3, o.l4, o.l2_pad), (0x12, 14, 34, 0));
        let (_, o) = parse_eth_ipv4_fast(&t[10]).expect("padded");
        assert_eq!(o.l2_pad, 18);
    }

    #[test]
    fn templates_take_the_paths_they_should() {
        let meta = PacketMetadata::new(3);
        let answered: Vec<bool> = templates()
            .iter()
            .map(|f| check(f, &meta).expect("agrees with extraction"))
            .collect();
        // MPLS, LLC/SNAP and the IPv6 fragment header need the full parse.
        assert_eq!(
            answered,
            [
                true, true, true, true, true, false, true, true, false, false, true
            ]
        );
        let (f, _) = parse_simple(&templates()[6], &meta).expect("vlan");
        assert_eq!(
            (f.tci, f.dl_type, f.tcp_flags),
            (0x3005, ETH_TYPE_IPV4, 0x10)
        );
        let (f, _) = parse_simple(&templates()[3], &meta).expect("later fragment");
        assert_eq!(
            (f.nw_frag, f.tcp_flags),
            (FLOW_NW_FRAG_ANY | FLOW_NW_FRAG_LATER, 0)
        );
        let mut l3 = meta.clone();
        l3.packet_type = PacketType::new(PacketType::NS_ETHERTYPE, ETH_TYPE_IPV4);
        assert_eq!(parse_simple(&templates()[0], &l3), None);
    }

    proptest! {
        /// The fixed-offset fast path answers as the general walk on
        /// mutated, cut and padded frames of its shapes, any IP total
        /// length included.
        #[test]
        fn fast_path_agrees_with_the_general_walk(
            which in prop::sample::select(vec![0usize, 1, 2, 3, 10]),
            flips in prop::collection::vec((0usize..64, any::<u8>()), 0..4),
            cut in prop::option::of(any::<usize>()),
            total in prop::option::of(0usize..64),
        ) {
            let mut frame = templates().swap_remove(which);
            if let Some(total) = total {
                frame[16..18].copy_from_slice(&(total as u16).to_be_bytes());
            }
            for (at, byte) in flips {
                let at = at % frame.len();
                frame[at] = byte;
            }
            if let Some(cut) = cut {
                frame.truncate(cut % (frame.len() + 1));
            }
            if let Some(fast) = parse_eth_ipv4_fast(&frame) {
                prop_assert_eq!(Some(fast), parse_simple_general(&frame), "{:02x?}", frame);
            }
            check(&frame, &PacketMetadata::new(7))?;
        }

        #[test]
        fn agrees_with_extraction(
            which in 0usize..11,
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let mut frame = templates().swap_remove(which);
            for (at, byte) in flips {
                let at = at % frame.len();
                frame[at] = byte;
            }
            frame.truncate(cut % (frame.len() + 1));
            check(&frame, &PacketMetadata::new(7))?;
        }
    }
}
