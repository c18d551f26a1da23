//! Differential check of [`extract`](super::extract) against etherparse, an
//! independent parser, on the fields both understand. Used by the fuzz
//! target and the conformance tests (feature `etherparse-oracle`).
//!
//! The comparison only runs where the two parsers mean the same thing:
//! etherparse does not follow 802.2/SNAP, checks the IP version and treats
//! some malformed headers differently, so a disagreement on whether a
//! header exists is not an error, but a disagreement on a value that both
//! extracted is.

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};

use super::key::*;

/// Returns a description of the first field where `key` (extracted from
/// `frame` as an Ethernet packet) disagrees with etherparse.
pub fn compare_with_etherparse(frame: &[u8], key: &FlowKey) -> Result<(), String> {
    if frame.len() >= 14 && (key.dl_dst[..] != frame[..6] || key.dl_src[..] != frame[6..12]) {
        return Err("Ethernet addresses differ".into());
    }
    let Ok(sliced) = SlicedPacket::from_ethernet(frame) else {
        return Ok(());
    };
    if !matches!(sliced.link, Some(LinkSlice::Ethernet2(_))) {
        return Ok(());
    }
    match &sliced.net {
        Some(NetSlice::Ipv4(ip)) if key.dl_type == ETH_TYPE_IPV4 && key.nw_ttl != 0 => {
            let h = ip.header();
            if key.nw_src != h.source_addr().octets() || key.nw_dst != h.destination_addr().octets()
            {
                return Err(format!("IPv4 addresses differ: {key:?}"));
            }
            if key.nw_proto != h.protocol().0
                || key.nw_ttl != h.ttl()
                || key.nw_tos != h.dcp().value() << 2 | h.ecn().value()
            {
                return Err(format!("IPv4 proto/ttl/tos differ: {key:?}"));
            }
            if h.is_fragmenting_payload() != (key.nw_frag != 0) {
                return Err(format!("IPv4 fragment state differs: {key:?}"));
            }
        }
        Some(NetSlice::Ipv6(ip)) if key.dl_type == ETH_TYPE_IPV6 && key.nw_ttl != 0 => {
            let h = ip.header();
            if key.ipv6_src != h.source() || key.ipv6_dst != h.destination() {
                return Err(format!("IPv6 addresses differ: {key:?}"));
            }
            if key.ipv6_label != h.flow_label().value() || key.nw_ttl != h.hop_limit() {
                return Err(format!("IPv6 label/hop limit differ: {key:?}"));
            }
            // etherparse reads payload length 0 as "the rest of the frame"
            // (jumbogram); OVS, and so oxvs, as an empty payload.
            if h.payload_length() == 0 {
                return Ok(());
            }
        }
        _ => return Ok(()),
    }
    if key.nw_frag != 0 {
        return Ok(());
    }
    let (src, dst) = match &sliced.transport {
        Some(TransportSlice::Udp(udp)) if key.nw_proto == IPPROTO_UDP => {
            (udp.source_port(), udp.destination_port())
        }
        Some(TransportSlice::Tcp(tcp)) if key.nw_proto == IPPROTO_TCP && key.tcp_flags != 0 => {
            (tcp.source_port(), tcp.destination_port())
        }
        Some(TransportSlice::Icmpv4(icmp)) if key.nw_proto == IPPROTO_ICMP => {
            (u16::from(icmp.type_u8()), u16::from(icmp.code_u8()))
        }
        Some(TransportSlice::Icmpv6(icmp)) if key.nw_proto == IPPROTO_ICMPV6 => {
            (u16::from(icmp.type_u8()), u16::from(icmp.code_u8()))
        }
        _ => return Ok(()),
    };
    if (key.tp_src, key.tp_dst) != (src, dst) {
        return Err(format!(
            "transport ports/type differ: ours {}/{}, etherparse {src}/{dst}",
            key.tp_src, key.tp_dst
        ));
    }
    Ok(())
}
