//! Link-layer pushes and pops: VLAN tags (802.1Q and 802.1ad), MPLS label
//! stack entries, and the Ethernet header itself (for L3 packets).
//!
//! Every push takes its bytes from the packet headroom and slides only the
//! bytes in front of the insertion point (12 MAC bytes for a tag), never
//! the payload; every pop slides them back. Header offsets move with the
//! data, so `set` actions after a push still find their headers. Each
//! function returns `false` when the packet cannot take the operation
//! (too short, no headroom, wrong packet type); the executor drops it as
//! an invalid packet. Popping a header that is not there is a no-op, as in
//! OVS.

use crate::flow::key::{
    ETH_TYPE_MPLS, ETH_TYPE_MPLS_MCAST, ETH_TYPE_VLAN_8021AD, ETH_TYPE_VLAN_8021Q, VLAN_CFI,
};
use crate::packet::{OFS_NONE, Packet, PacketType};

use super::set_field::{be16, be32, put16};

const ETH_HEADER_LEN: usize = 14;
const VLAN_HEADER_LEN: usize = 4;
const MPLS_HEADER_LEN: usize = 4;
const MPLS_BOS: u32 = 1 << 8;

#[inline(always)]
fn is_vlan_tpid(tpid: u16) -> bool {
    tpid == ETH_TYPE_VLAN_8021Q || tpid == ETH_TYPE_VLAN_8021AD
}

/// `push_vlan`: inserts a tag after the MAC addresses. The CFI bit of
/// `tci` (OVS's "tag present" marker) is not written to the wire.
#[inline]
pub fn push_vlan(packet: &mut Packet, tpid: u16, tci: u16) -> bool {
    if packet.meta().packet_type != PacketType::ETHERNET || packet.len() < ETH_HEADER_LEN {
        return false;
    }
    let Some(front) = packet.push_front(VLAN_HEADER_LEN) else {
        return false;
    };
    let _ = front;
    // A fixed-size copy stays in registers (copy_within is a memmove call).
    let data = packet.data_mut();
    let macs: [u8; 12] = data[VLAN_HEADER_LEN..VLAN_HEADER_LEN + 12]
        .try_into()
        .expect("12 bytes");
    data[..12].copy_from_slice(&macs);
    put16(data, 12, tpid);
    put16(data, 14, tci & !VLAN_CFI);
    true
}

/// `pop_vlan`: removes the outermost tag, if there is one.
#[inline]
pub fn pop_vlan(packet: &mut Packet) -> bool {
    if packet.meta().packet_type != PacketType::ETHERNET {
        return true;
    }
    let data = packet.data_mut();
    if data.len() < ETH_HEADER_LEN + VLAN_HEADER_LEN || !is_vlan_tpid(be16(data, 12)) {
        return true;
    }
    let macs: [u8; 12] = data[..12].try_into().expect("12 bytes");
    data[VLAN_HEADER_LEN..VLAN_HEADER_LEN + 12].copy_from_slice(&macs);
    packet.pull_front(VLAN_HEADER_LEN)
}

/// End of the Ethernet header and its VLAN tags: where the Ethernet type
/// that names the payload sits just before.
fn l2_end(packet: &Packet) -> Option<usize> {
    let data = packet.data();
    let mut pos = 12;
    while data.len() >= pos + 2 + VLAN_HEADER_LEN && is_vlan_tpid(be16(data, pos)) {
        pos += VLAN_HEADER_LEN;
    }
    (data.len() >= pos + 2).then_some(pos + 2)
}

/// `push_mpls`: inserts a label stack entry between the L2 header and the
/// payload (or the existing label stack) and sets the Ethernet type.
pub fn push_mpls(packet: &mut Packet, lse: u32, ethertype: u16) -> bool {
    if ethertype != ETH_TYPE_MPLS && ethertype != ETH_TYPE_MPLS_MCAST {
        return false;
    }
    if packet.meta().packet_type != PacketType::ETHERNET {
        return false;
    }
    let ofs = packet.meta().offsets;
    let at = if ofs.l2_5 != OFS_NONE {
        ofs.l2_5 as usize
    } else {
        match l2_end(packet) {
            Some(end) => end,
            None => return false,
        }
    };
    if at > packet.len() || packet.push_front(MPLS_HEADER_LEN).is_none() {
        return false;
    }
    let data = packet.data_mut();
    data.copy_within(MPLS_HEADER_LEN..MPLS_HEADER_LEN + at, 0);
    put16(data, at - 2, ethertype);
    data[at..at + MPLS_HEADER_LEN].copy_from_slice(&lse.to_be_bytes());
    packet.meta_mut().offsets.l2_5 = at as u16;
    true
}

/// `pop_mpls`: removes the outermost label stack entry; `ethertype` names
/// what follows it.
pub fn pop_mpls(packet: &mut Packet, ethertype: u16) -> bool {
    let l2_5 = packet.meta().offsets.l2_5;
    if l2_5 == OFS_NONE {
        return true;
    }
    let at = l2_5 as usize;
    if at < ETH_HEADER_LEN || packet.len() < at + MPLS_HEADER_LEN {
        return false;
    }
    let data = packet.data_mut();
    let bos = be32(data, at) & MPLS_BOS != 0;
    put16(data, at - 2, ethertype);
    data.copy_within(0..at, MPLS_HEADER_LEN);
    if !packet.pull_front(MPLS_HEADER_LEN) {
        return false;
    }
    packet.meta_mut().offsets.l2_5 = if bos { OFS_NONE } else { at as u16 };
    true
}

/// `push_eth`: gives an L3 packet an Ethernet header; its Ethernet type is
/// the packet type's.
pub fn push_eth(packet: &mut Packet, src: &[u8; 6], dst: &[u8; 6]) -> bool {
    let pt = packet.meta().packet_type;
    if pt.namespace() != PacketType::NS_ETHERTYPE {
        return false;
    }
    let Some(hdr) = packet.push_front(ETH_HEADER_LEN) else {
        return false;
    };
    hdr[0..6].copy_from_slice(dst);
    hdr[6..12].copy_from_slice(src);
    put16(hdr, 12, pt.ns_type());
    packet.meta_mut().packet_type = PacketType::ETHERNET;
    true
}

/// `pop_eth`: strips the Ethernet header and tags; the packet type becomes
/// the payload's Ethernet type.
pub fn pop_eth(packet: &mut Packet) -> bool {
    if packet.meta().packet_type != PacketType::ETHERNET {
        return true;
    }
    let l2_5 = packet.meta().offsets.l2_5;
    let Some(end) = (if l2_5 != OFS_NONE {
        Some(l2_5 as usize)
    } else {
        l2_end(packet)
    }) else {
        return false;
    };
    let ethertype = be16(packet.data(), end - 2);
    if !packet.pull_front(end) {
        return false;
    }
    packet.meta_mut().packet_type = PacketType::new(PacketType::NS_ETHERTYPE, ethertype);
    true
}
