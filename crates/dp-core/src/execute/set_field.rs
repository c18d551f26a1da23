//! `set` and masked `set`: rewriting header fields in place, with the
//! checksums patched incrementally.
//!
//! # How it works
//! Headers are found through the offsets flow extraction recorded
//! (`l2_5`, `l3`, `l4`); nothing is re-parsed except IPv6 extension
//! headers, walked to learn the transport protocol. Each field write
//! patches the checksums that cover it (RFC 1624 arithmetic from
//! [`super::checksum`]), as OVS's `packet_set_*` functions do:
//! - IPv4 addresses: the IP header checksum, and the TCP/UDP
//!   pseudo-header checksum;
//! - IPv6 addresses: the TCP/UDP/ICMPv6 pseudo-header checksum (not the
//!   destination while a routing header still has segments left, since
//!   the pseudo-header then carries the final destination);
//! - IPv4 TOS/TTL: the IP header checksum;
//! - ports: the TCP/UDP checksum; SCTP's CRC32c is recomputed so that a
//!   CRC that was wrong stays wrong (OVS's XOR trick);
//! - ICMP type/code: the ICMP checksum;
//! - ND target and source/target link-layer address option: the ICMPv6
//!   checksum.
//!
//! The UDP zero-checksum rule: a UDP checksum of 0 means "none" and is
//! left alone; a patched checksum that comes out 0 is written as 0xffff.
//! Transport headers of non-first fragments are never touched.
//!
//! A `set` for a header the packet does not have (`set(tcp)` on a packet
//! whose key says UDP cannot come out of a sound megaflow, but a runt
//! could) leaves the packet unchanged, as OVS does. Attributes this module
//! cannot write are refused up front by [`supported`], so the executor can
//! count them instead of silently skipping.

use crate::flow::key::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::odp::attr::{
    ArpKey, EthKey, IcmpKey, Ipv4Key, Ipv6Key, KeyAttr, NdKey, PortsKey, TunAttr, TunAttrKind,
};
use crate::packet::{OFS_NONE, Packet, PacketBatch, PacketType, TunnelMetadata};

use super::checksum::{apply_delta, crc32c, delta16, delta32, recalc16};
use super::tunnel::tnl_flags;

#[inline(always)]
pub(super) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(super) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
fn mix<const N: usize>(old: &[u8], key: &[u8; N], mask: Option<&[u8; N]>) -> [u8; N] {
    let mut out = *key;
    if let Some(mask) = mask {
        for i in 0..N {
            out[i] = (old[i] & !mask[i]) | (key[i] & mask[i]);
        }
    }
    out
}

macro_rules! mixv {
    ($old:expr, $key:expr, $mask:expr) => {
        match $mask {
            Some(m) => ($old & !m) | ($key & m),
            None => $key,
        }
    };
}

/// True when the executor can apply this `set` (`mask: None`) or masked
/// `set`.
pub fn supported(key: &KeyAttr, mask: Option<&KeyAttr>) -> bool {
    if mask.is_some_and(|m| m.kind() != key.kind()) {
        return false;
    }
    match key {
        KeyAttr::Ethernet(_)
        | KeyAttr::Ipv4(_)
        | KeyAttr::Ipv6(_)
        | KeyAttr::Tcp(_)
        | KeyAttr::Udp(_)
        | KeyAttr::Sctp(_)
        | KeyAttr::Icmp(_)
        | KeyAttr::Icmpv6(_)
        | KeyAttr::Arp(_)
        | KeyAttr::Nd(_)
        | KeyAttr::Priority(_)
        | KeyAttr::SkbMark(_)
        | KeyAttr::DpHash(_)
        | KeyAttr::RecircId(_) => true,
        KeyAttr::Mpls(lses) => {
            !lses.is_empty() && !matches!(mask, Some(KeyAttr::Mpls(m)) if m.is_empty())
        }
        KeyAttr::Tunnel(attrs) => {
            mask.is_none()
                && attrs.iter().all(|a| match a {
                    TunAttr::Erspan(_) => false,
                    TunAttr::Geneve(opts) => opts.len() <= 252 && opts.len() % 4 == 0,
                    _ => true,
                })
        }
        _ => false,
    }
}

/// Applies a [`supported`] `set` to every packet of `batch`. The
/// attribute is dispatched (and its masks prepared) once per batch; the
/// per-packet loop is specialised for it.
#[inline]
pub fn apply_batch(batch: &mut PacketBatch, key: &KeyAttr, mask: Option<&KeyAttr>) {
    match (key, mask) {
        (KeyAttr::Ipv4(k), m) => {
            let m = match m {
                Some(KeyAttr::Ipv4(m)) => Some(m),
                _ => None,
            };
            let set = Ipv4Set::new(k, m);
            for packet in batch.iter_mut() {
                set.apply(packet);
            }
        }
        (KeyAttr::Tcp(k), m) | (KeyAttr::Udp(k), m) => {
            let proto = if let KeyAttr::Tcp(_) = key {
                IPPROTO_TCP
            } else {
                IPPROTO_UDP
            };
            let m = match m {
                Some(KeyAttr::Tcp(m)) | Some(KeyAttr::Udp(m)) => Some(m),
                _ => None,
            };
            for packet in batch.iter_mut() {
                set_ports(packet, proto, k, m);
            }
        }
        _ => {
            for packet in batch.iter_mut() {
                apply(packet, key, mask);
            }
        }
    }
}

/// Applies a [`supported`] `set` to one packet.
pub fn apply(packet: &mut Packet, key: &KeyAttr, mask: Option<&KeyAttr>) {
    macro_rules! m {
        ($variant:ident) => {
            match mask {
                Some(KeyAttr::$variant(m)) => Some(m),
                _ => None,
            }
        };
    }
    match key {
        KeyAttr::Ethernet(k) => set_eth(packet, k, m!(Ethernet)),
        KeyAttr::Ipv4(k) => Ipv4Set::new(k, m!(Ipv4)).apply(packet),
        KeyAttr::Ipv6(k) => set_ipv6(packet, k, m!(Ipv6)),
        KeyAttr::Tcp(k) => set_ports(packet, IPPROTO_TCP, k, m!(Tcp)),
        KeyAttr::Udp(k) => set_ports(packet, IPPROTO_UDP, k, m!(Udp)),
        KeyAttr::Sctp(k) => set_ports(packet, IPPROTO_SCTP, k, m!(Sctp)),
        KeyAttr::Icmp(k) => set_icmp(packet, IPPROTO_ICMP, k, m!(Icmp)),
        KeyAttr::Icmpv6(k) => set_icmp(packet, IPPROTO_ICMPV6, k, m!(Icmpv6)),
        KeyAttr::Arp(k) => set_arp(packet, k, m!(Arp)),
        KeyAttr::Nd(k) => set_nd(packet, k, m!(Nd)),
        KeyAttr::Mpls(k) => {
            let mask = match mask {
                Some(KeyAttr::Mpls(m)) => m.first(),
                _ => None,
            };
            set_mpls(packet, k[0], mask.copied());
        }
        KeyAttr::Priority(k) => {
            let meta = packet.meta_mut();
            meta.skb_priority = mixv!(meta.skb_priority, *k, m!(Priority));
        }
        KeyAttr::SkbMark(k) => {
            let meta = packet.meta_mut();
            meta.pkt_mark = mixv!(meta.pkt_mark, *k, m!(SkbMark));
        }
        KeyAttr::DpHash(k) => {
            let meta = packet.meta_mut();
            meta.dp_hash = mixv!(meta.dp_hash, *k, m!(DpHash));
        }
        KeyAttr::RecircId(k) => {
            let meta = packet.meta_mut();
            meta.recirc_id = mixv!(meta.recirc_id, *k, m!(RecircId));
        }
        KeyAttr::Tunnel(attrs) => set_tunnel(&mut packet.meta_mut().tunnel, attrs),
        _ => debug_assert!(false, "apply called on an unsupported set"),
    }
}

fn set_eth(packet: &mut Packet, k: &EthKey, m: Option<&EthKey>) {
    if packet.meta().packet_type != PacketType::ETHERNET || packet.len() < 14 {
        return;
    }
    let data = packet.data_mut();
    let dst = mix(&data[0..6], &k.dst, m.map(|m| &m.dst));
    let src = mix(&data[6..12], &k.src, m.map(|m| &m.src));
    data[0..6].copy_from_slice(&dst);
    data[6..12].copy_from_slice(&src);
}

/// Where an L4 header can be patched: its offset, protocol, and whether
/// the IPv6 destination is covered by its pseudo-header.
#[derive(Clone, Copy)]
struct L4Info {
    /// Offset of the transport header, or `None` for a non-first fragment
    /// or a packet without one.
    ofs: Option<usize>,
    proto: u8,
    /// Bytes from the transport header to the end of the IP payload.
    len: usize,
    /// An IPv6 routing header with segments left is present.
    routing_pending: bool,
}

/// The IPv4 header offset when the packet has a well-formed one.
#[inline]
fn ipv4_l3(packet: &Packet) -> Option<usize> {
    let l3 = packet.meta().offsets.l3;
    if l3 == OFS_NONE {
        return None;
    }
    let l3 = l3 as usize;
    let data = packet.data();
    if data.len() < l3 + 20 || data[l3] >> 4 != 4 || (data[l3] & 0xf) < 5 {
        return None;
    }
    if data.len() < l3 + usize::from(data[l3] & 0xf) * 4 {
        return None;
    }
    Some(l3)
}

fn ipv6_l3(packet: &Packet) -> Option<usize> {
    let l3 = packet.meta().offsets.l3;
    if l3 == OFS_NONE {
        return None;
    }
    let l3 = l3 as usize;
    let data = packet.data();
    (data.len() >= l3 + 40 && data[l3] >> 4 == 6).then_some(l3)
}

/// End of the IP payload: the frame without its Ethernet padding.
fn l3_end(packet: &Packet) -> usize {
    packet
        .len()
        .saturating_sub(packet.meta().offsets.l2_pad as usize)
}

#[inline]
fn l4_v4(packet: &Packet, l3: usize) -> L4Info {
    let data = packet.data();
    let proto = data[l3 + 9];
    let later_frag = be16(data, l3 + 6) & 0x1fff != 0;
    let l4 = packet.meta().offsets.l4;
    let end = l3_end(packet);
    let ofs = (!later_frag && l4 != OFS_NONE && (l4 as usize) <= end).then_some(l4 as usize);
    L4Info {
        ofs,
        proto,
        len: ofs.map_or(0, |o| end - o),
        routing_pending: false,
    }
}

/// Walks the IPv6 extension headers to the transport header.
fn l4_v6(packet: &Packet, l3: usize) -> L4Info {
    let data = packet.data();
    let end = l3_end(packet).min(data.len());
    let mut proto = data[l3 + 6];
    let mut pos = l3 + 40;
    let mut routing_pending = false;
    let mut later_frag = false;
    let mut ok = true;
    for _ in 0..16 {
        match proto {
            0 | 43 | 60 | 51 => {
                if pos + 8 > end {
                    ok = false;
                    break;
                }
                if proto == 43 && data[pos + 3] != 0 {
                    routing_pending = true;
                }
                let len = if proto == 51 {
                    (usize::from(data[pos + 1]) + 2) * 4
                } else {
                    (usize::from(data[pos + 1]) + 1) * 8
                };
                proto = data[pos];
                pos += len;
            }
            44 => {
                if pos + 8 > end {
                    ok = false;
                    break;
                }
                later_frag = be16(data, pos + 2) & 0xfff8 != 0;
                proto = data[pos];
                pos += 8;
            }
            _ => break,
        }
    }
    let ofs = (ok && !later_frag && pos <= end).then_some(pos);
    L4Info {
        ofs,
        proto,
        len: ofs.map_or(0, |o| end - o),
        routing_pending,
    }
}

/// Patches the transport checksum by `delta` (a pseudo-header change:
/// addresses). ICMPv6 has a pseudo-header, ICMPv4 does not.
#[inline]
fn patch_l4(data: &mut [u8], l4: L4Info, delta: u32, icmpv6: bool) {
    let Some(ofs) = l4.ofs else { return };
    match l4.proto {
        IPPROTO_TCP if l4.len >= 20 => {
            let c = apply_delta(be16(data, ofs + 16), delta);
            put16(data, ofs + 16, c);
        }
        IPPROTO_UDP if l4.len >= 8 => {
            let c = be16(data, ofs + 6);
            if c != 0 {
                let c = apply_delta(c, delta);
                put16(data, ofs + 6, if c == 0 { 0xffff } else { c });
            }
        }
        IPPROTO_ICMPV6 if icmpv6 && l4.len >= 4 => {
            let c = apply_delta(be16(data, ofs + 2), delta);
            put16(data, ofs + 2, c);
        }
        _ => {}
    }
}

/// The delta of a run of 16-bit words changing (an IPv6 address).
#[inline]
fn delta_bytes(old: &[u8], new: &[u8]) -> u32 {
    old.chunks_exact(2)
        .zip(new.chunks_exact(2))
        .map(|(o, n)| {
            delta16(
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([n[0], n[1]]),
            )
        })
        .sum()
}

/// A `set(ipv4(...))` with its masks resolved (all ones for a plain
/// `set`), ready to apply to many packets.
struct Ipv4Set {
    src: u32,
    src_mask: u32,
    dst: u32,
    dst_mask: u32,
    tos: u8,
    tos_mask: u8,
    ttl: u8,
    ttl_mask: u8,
}

impl Ipv4Set {
    fn new(k: &Ipv4Key, m: Option<&Ipv4Key>) -> Ipv4Set {
        let (src_mask, dst_mask, tos_mask, ttl_mask) = match m {
            Some(m) => (
                u32::from_be_bytes(m.src),
                u32::from_be_bytes(m.dst),
                m.tos,
                m.ttl,
            ),
            None => (u32::MAX, u32::MAX, u8::MAX, u8::MAX),
        };
        Ipv4Set {
            src: u32::from_be_bytes(k.src) & src_mask,
            src_mask,
            dst: u32::from_be_bytes(k.dst) & dst_mask,
            dst_mask,
            tos: k.tos & tos_mask,
            tos_mask,
            ttl: k.ttl & ttl_mask,
            ttl_mask,
        }
    }

    #[inline]
    fn apply(&self, packet: &mut Packet) {
        let Some(l3) = ipv4_l3(packet) else { return };
        let l4 = l4_v4(packet, l3);
        let data = packet.data_mut();
        // One delta for the addresses (IP header and pseudo-header), one
        // more for TOS/TTL (IP header only); each checksum is patched once.
        let mut addr_delta = 0u32;
        let mut addr_changed = false;
        for (at, value, mask) in [
            (l3 + 12, self.src, self.src_mask),
            (l3 + 16, self.dst, self.dst_mask),
        ] {
            if mask == 0 {
                continue;
            }
            let old = be32(data, at);
            let new = (old & !mask) | value;
            if new != old {
                addr_delta += delta32(old, new);
                addr_changed = true;
                data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            }
        }
        let mut ip_delta = addr_delta;
        let mut ip_changed = addr_changed;
        if self.tos_mask != 0 {
            let old = data[l3 + 1];
            let new = (old & !self.tos_mask) | self.tos;
            if new != old {
                ip_delta += delta16(
                    u16::from_be_bytes([data[l3], old]),
                    u16::from_be_bytes([data[l3], new]),
                );
                ip_changed = true;
                data[l3 + 1] = new;
            }
        }
        if self.ttl_mask != 0 {
            let old = data[l3 + 8];
            let new = (old & !self.ttl_mask) | self.ttl;
            if new != old {
                ip_delta += delta16(
                    u16::from_be_bytes([old, data[l3 + 9]]),
                    u16::from_be_bytes([new, data[l3 + 9]]),
                );
                ip_changed = true;
                data[l3 + 8] = new;
            }
        }
        if ip_changed {
            put16(data, l3 + 10, apply_delta(be16(data, l3 + 10), ip_delta));
        }
        if addr_changed {
            patch_l4(data, l4, addr_delta, false);
        }
    }
}

fn set_ipv6(packet: &mut Packet, k: &Ipv6Key, m: Option<&Ipv6Key>) {
    let Some(l3) = ipv6_l3(packet) else { return };
    let l4 = l4_v6(packet, l3);
    let data = packet.data_mut();
    for (at, key, mask, covered) in [
        (l3 + 8, &k.src, m.map(|m| &m.src), true),
        (l3 + 24, &k.dst, m.map(|m| &m.dst), !l4.routing_pending),
    ] {
        let old: [u8; 16] = data[at..at + 16].try_into().expect("16 bytes");
        let new = mix(&old, key, mask);
        if new != old {
            if covered {
                patch_l4(data, l4, delta_bytes(&old, &new), true);
            }
            data[at..at + 16].copy_from_slice(&new);
        }
    }
    let vtcfl = be32(data, l3);
    let tclass = ((vtcfl >> 20) & 0xff) as u8;
    let label = vtcfl & 0xf_ffff;
    let tclass = mixv!(tclass, k.tclass, m.map(|m| m.tclass));
    let label = mixv!(label, k.label & 0xf_ffff, m.map(|m| m.label & 0xf_ffff));
    let vtcfl = (vtcfl & 0xf000_0000) | (u32::from(tclass) << 20) | label;
    data[l3..l3 + 4].copy_from_slice(&vtcfl.to_be_bytes());
    data[l3 + 7] = mixv!(data[l3 + 7], k.hlimit, m.map(|m| m.hlimit));
}

/// The transport header of `packet` when it is `proto` and at least
/// `min_len` bytes long.
fn l4_of(packet: &Packet, proto: u8, min_len: usize) -> Option<L4Info> {
    let l4 = if let Some(l3) = ipv4_l3(packet) {
        l4_v4(packet, l3)
    } else if let Some(l3) = ipv6_l3(packet) {
        l4_v6(packet, l3)
    } else {
        return None;
    };
    (l4.ofs.is_some() && l4.proto == proto && l4.len >= min_len).then_some(l4)
}

#[inline]
fn set_ports(packet: &mut Packet, proto: u8, k: &PortsKey, m: Option<&PortsKey>) {
    let min_len = match proto {
        IPPROTO_TCP => 20,
        IPPROTO_UDP => 8,
        _ => 12,
    };
    let Some(l4) = l4_of(packet, proto, min_len) else {
        return;
    };
    let ofs = l4.ofs.expect("checked by l4_of");
    let data = packet.data_mut();
    let old_src = be16(data, ofs);
    let old_dst = be16(data, ofs + 2);
    let src = mixv!(old_src, k.src, m.map(|m| m.src));
    let dst = mixv!(old_dst, k.dst, m.map(|m| m.dst));
    if (src, dst) == (old_src, old_dst) {
        return;
    }
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let delta = delta16(old_src, src) + delta16(old_dst, dst);
            patch_l4(data, l4, delta, false);
        }
        _ => {
            let sctp = &mut data[ofs..ofs + l4.len];
            let stored = u32::from_le_bytes(sctp[8..12].try_into().expect("4 bytes"));
            sctp[8..12].fill(0);
            let old_correct = crc32c(sctp);
            put16(sctp, 0, src);
            put16(sctp, 2, dst);
            let new_correct = crc32c(sctp);
            sctp[8..12].copy_from_slice(&(stored ^ old_correct ^ new_correct).to_le_bytes());
            return;
        }
    }
    put16(data, ofs, src);
    put16(data, ofs + 2, dst);
}

fn set_icmp(packet: &mut Packet, proto: u8, k: &IcmpKey, m: Option<&IcmpKey>) {
    let Some(l4) = l4_of(packet, proto, 4) else {
        return;
    };
    let ofs = l4.ofs.expect("checked by l4_of");
    let data = packet.data_mut();
    let old = be16(data, ofs);
    let icmp_type = mixv!(data[ofs], k.icmp_type, m.map(|m| m.icmp_type));
    let code = mixv!(data[ofs + 1], k.code, m.map(|m| m.code));
    let new = u16::from_be_bytes([icmp_type, code]);
    if new != old {
        let c = recalc16(be16(data, ofs + 2), old, new);
        put16(data, ofs, new);
        put16(data, ofs + 2, c);
    }
}

/// `set(nd(...))`: the target address of a neighbour solicitation or
/// advertisement and its source/target link-layer address option (the
/// first one present, as OVS), with the ICMPv6 checksum patched.
fn set_nd(packet: &mut Packet, k: &NdKey, m: Option<&NdKey>) {
    const ND_HEADER_LEN: usize = 24;
    let Some(l4) = l4_of(packet, IPPROTO_ICMPV6, ND_HEADER_LEN) else {
        return;
    };
    let ofs = l4.ofs.expect("checked by l4_of");
    let end = ofs + l4.len;
    let data = packet.data_mut();
    if !matches!(data[ofs], 135 | 136) || data[ofs + 1] != 0 {
        return;
    }
    let mut delta = 0u32;
    let target_at = ofs + 8;
    let old: [u8; 16] = data[target_at..target_at + 16]
        .try_into()
        .expect("16 bytes");
    let new = mix(&old, &k.target, m.map(|m| &m.target));
    if new != old {
        delta += delta_bytes(&old, &new);
        data[target_at..target_at + 16].copy_from_slice(&new);
    }
    let mut opt = ofs + ND_HEADER_LEN;
    while opt + 8 <= end && data[opt + 1] != 0 {
        let units = usize::from(data[opt + 1]);
        let lla = match (data[opt], units) {
            (1, 1) => Some((&k.sll, m.map(|m| &m.sll))),
            (2, 1) => Some((&k.tll, m.map(|m| &m.tll))),
            _ => None,
        };
        if let Some((key, mask)) = lla {
            let old: [u8; 6] = data[opt + 2..opt + 8].try_into().expect("6 bytes");
            let new = mix(&old, key, mask);
            if new != old {
                delta += delta_bytes(&old, &new);
                data[opt + 2..opt + 8].copy_from_slice(&new);
            }
            break;
        }
        opt += units * 8;
    }
    if delta != 0 {
        put16(data, ofs + 2, apply_delta(be16(data, ofs + 2), delta));
    }
}

fn set_arp(packet: &mut Packet, k: &ArpKey, m: Option<&ArpKey>) {
    let l3 = packet.meta().offsets.l3;
    if l3 == OFS_NONE {
        return;
    }
    let l3 = l3 as usize;
    let data = packet.data_mut();
    // Ethernet/IPv4 ARP only, as extraction.
    if data.len() < l3 + 28 || be16(data, l3) != 1 || be16(data, l3 + 2) != 0x0800 {
        return;
    }
    let op = mixv!(be16(data, l3 + 6), k.op, m.map(|m| m.op));
    put16(data, l3 + 6, op);
    let sha = mix(&data[l3 + 8..l3 + 14], &k.sha, m.map(|m| &m.sha));
    let sip = mix(&data[l3 + 14..l3 + 18], &k.sip, m.map(|m| &m.sip));
    let tha = mix(&data[l3 + 18..l3 + 24], &k.tha, m.map(|m| &m.tha));
    let tip = mix(&data[l3 + 24..l3 + 28], &k.tip, m.map(|m| &m.tip));
    data[l3 + 8..l3 + 14].copy_from_slice(&sha);
    data[l3 + 14..l3 + 18].copy_from_slice(&sip);
    data[l3 + 18..l3 + 24].copy_from_slice(&tha);
    data[l3 + 24..l3 + 28].copy_from_slice(&tip);
}

fn set_mpls(packet: &mut Packet, lse: u32, mask: Option<u32>) {
    let l2_5 = packet.meta().offsets.l2_5;
    if l2_5 == OFS_NONE || packet.len() < l2_5 as usize + 4 {
        return;
    }
    let at = l2_5 as usize;
    let data = packet.data_mut();
    let new = mixv!(be32(data, at), lse, mask);
    data[at..at + 4].copy_from_slice(&new.to_be_bytes());
}

/// `set(tunnel(...))`: the metadata a later tunnel output would use.
fn set_tunnel(tun: &mut TunnelMetadata, attrs: &[TunAttr]) {
    tun.clear();
    for attr in attrs {
        match attr {
            TunAttr::Id(id) => {
                tun.tun_id = *id;
                tun.flags |= tnl_flags::KEY;
            }
            TunAttr::Ipv4Src(a) => tun.ipv4_src = *a,
            TunAttr::Ipv4Dst(a) => tun.ipv4_dst = *a,
            TunAttr::Ipv6Src(a) => tun.ipv6_src = *a,
            TunAttr::Ipv6Dst(a) => tun.ipv6_dst = *a,
            TunAttr::Tos(v) => tun.tos = *v,
            TunAttr::Ttl(v) => tun.ttl = *v,
            TunAttr::DontFragment => tun.flags |= tnl_flags::DONT_FRAGMENT,
            TunAttr::Csum => tun.flags |= tnl_flags::CSUM,
            TunAttr::Oam => tun.flags |= tnl_flags::OAM,
            TunAttr::TpSrc(p) => tun.tp_src = *p,
            TunAttr::TpDst(p) => tun.tp_dst = *p,
            TunAttr::VxlanGbp(v) => {
                tun.gbp_id = *v as u16;
                tun.gbp_flags = (*v >> 16) as u8;
            }
            TunAttr::Geneve(opts) => {
                let len = opts.len().min(tun.geneve_opts.len());
                tun.geneve_opts[..len].copy_from_slice(&opts[..len]);
                tun.geneve_len = len as u8;
            }
            TunAttr::Erspan(_) => debug_assert!(false, "refused by supported()"),
        }
    }
    debug_assert!(
        attrs.iter().all(|a| a.kind() != TunAttrKind::Erspan),
        "refused by supported()"
    );
}
