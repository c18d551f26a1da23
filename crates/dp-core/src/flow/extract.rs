//! Flow-key extraction: one pass over a frame fills a [`FlowKey`] and the
//! packet's header offsets, with the semantics of OVS's `miniflow_extract`.
//!
//! # How it works
//! Parsing walks a shrinking window of the frame: each header is checked
//! for length before any of its bytes are read, then the window moves past
//! it. Once the IP header is parsed the window ends at the IP total length
//! (IPv4) or payload length (IPv6), so Ethernet padding can never be read
//! as a transport header (CVE-2020-35498 class); the padding is recorded in
//! [`HeaderOffsets::l2_pad`].
//!
//! The most common frame, untagged Ethernet + IPv4 without options or
//! fragmentation + UDP or TCP, first takes a fixed-offset fast path: all
//! its checks are made before anything is written, and any frame it
//! declines is walked by the general parser from the start, so both give
//! the same key, offsets and word map (property-tested against each
//! other).
//!
//! A header that is truncated or fails its sanity check ends parsing: the
//! key keeps what was parsed before it and every later field stays zero,
//! exactly as OVS does, so such packets still get a flow (and can be
//! dropped by it) rather than crashing anything.
//!
//! # Word map
//! [`extract_mapped`] and [`extract_frame_mapped`] also return the key's
//! *word map*: bit `i` set for every word `i` that extraction may have
//! made non-zero. Each header parser ORs in the (constant) words of the
//! fields it writes, and the metadata words are tested one by one, so the
//! map costs a few instructions. It is a superset of the non-zero words,
//! not their exact set (a field written with the value 0 keeps its bit),
//! and the key itself stays complete: every word outside the map is zero
//! in memory, so hashes, masks, the ODP text and the upcall see a whole
//! key and never need the map. Two keys with equal maps are equal when
//! the words of the map are equal; the EMC uses this to compare ~7 words
//! of a plain UDP packet instead of all [`FLOW_U64S`]. Equal keys can
//! have different maps (a different parse path wrote a zero), which
//! costs such a consumer a miss, never a wrong answer.
//!
//! # Reused key slots
//! [`extract_reusing`] extracts into a key slot kept from packet to
//! packet (a PMD's batch keys) given the slot's last word map: it zeroes
//! only the words of that map the new key does not write, and its
//! fixed-offset path writes whole words and computes the 5-tuple hash on
//! the way. The result is word for word what a fresh extraction gives
//! (property-tested over mixed frame sequences).
//!
//! # Invariants
//! - Never panics and never reads outside `frame`, whatever its contents
//!   (fuzzed in `fuzz/fuzz_targets/extract.rs`).
//! - Fields the packet does not carry are zero.
//! - Offsets written are inside the frame.
//! - The word map has a bit for every non-zero word of the key (checked
//!   on every frame of the unit tests and by the fuzz target).

use super::key::*;
use crate::packet::{HeaderOffsets, OFS_NONE, Packet, PacketMetadata, PacketType};

const ETH_HEADER_LEN: usize = 14;
const VLAN_HEADER_LEN: usize = 4;
const LLC_SNAP_HEADER_LEN: usize = 8;
const MPLS_HEADER_LEN: usize = 4;
const MPLS_BOS_BIT: u32 = 1 << 8;
const IPV4_HEADER_LEN: usize = 20;
const IPV4_MF_AND_OFFSET: u16 = 0x3fff;
const IPV4_OFFSET_MASK: u16 = 0x1fff;
const IPV6_HEADER_LEN: usize = 40;
const IPV6_FRAG_HEADER_LEN: usize = 8;
const IPV6_FRAG_OFFSET_MASK: u16 = 0xfff8;
const IPV6_LABEL_MASK: u32 = 0x000f_ffff;
const ARP_ETH_IPV4_LEN: usize = 28;
const TCP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const SCTP_HEADER_LEN: usize = 12;
const ICMP_HEADER_LEN: usize = 8;
const IGMP_HEADER_LEN: usize = 8;
const ICMPV6_HEADER_LEN: usize = 8;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
const ND_OPT_UNIT: usize = 8;
const SNAP_PREFIX: [u8; 6] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00];

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// Where a plain IPv4 frame's IP header starts (untagged Ethernet).
pub(super) const PLAIN_L3: usize = ETH_HEADER_LEN;
/// Where its transport header starts (an IPv4 header without options).
pub(super) const PLAIN_L4: usize = PLAIN_L3 + IPV4_HEADER_LEN;

/// An untagged Ethernet + IPv4 frame without IP options that is not a
/// fragment, whose IP total length is sane: the shape both fixed-offset
/// fast paths take (extraction's and the simple-match parse's).
pub(super) struct PlainIpv4<'a> {
    /// The transport bytes, as far as the IP total length says.
    pub l4: &'a [u8],
    pub proto: u8,
    /// Ethernet padding after the IP packet.
    pub l2_pad: u16,
}

/// `frame` as a [`PlainIpv4`], or `None` for any other frame (the general
/// walks take those). Reads only inside `frame`.
#[inline(always)]
pub(super) fn plain_ipv4(frame: &[u8]) -> Option<PlainIpv4<'_>> {
    const L3: usize = PLAIN_L3;
    if frame.len() < PLAIN_L4 || be16(frame, 12) != ETH_TYPE_IPV4 || frame[L3] & 0x0f != 5 {
        return None;
    }
    let total_len = usize::from(be16(frame, L3 + 2));
    let l3_room = frame.len() - L3;
    if total_len < IPV4_HEADER_LEN || total_len > l3_room {
        return None;
    }
    let l2_pad = u16::try_from(l3_room - total_len).ok()?;
    if be16(frame, L3 + 6) & IPV4_MF_AND_OFFSET != 0 {
        return None;
    }
    Some(PlainIpv4 {
        l4: &frame[PLAIN_L4..L3 + total_len],
        proto: frame[L3 + 9],
        l2_pad,
    })
}

/// The flags of the TCP header at the start of `l4`, when the header is
/// whole and its data offset is sane (at least 20 bytes, inside `l4`);
/// `None` otherwise, and then the key has no TCP fields (as OVS).
#[inline(always)]
pub(super) fn tcp_flags(l4: &[u8]) -> Option<u16> {
    if l4.len() < TCP_HEADER_LEN {
        return None;
    }
    let ctl = be16(l4, 12);
    let header_len = usize::from(ctl >> 12) * 4;
    (header_len >= TCP_HEADER_LEN && header_len <= l4.len()).then_some(ctl & 0x0fff)
}

/// Extracts `packet`'s flow key into `key` and records its header offsets
/// in the packet metadata.
#[inline]
pub fn extract(packet: &mut Packet, key: &mut FlowKey) {
    extract_mapped(packet, key);
}

/// [`extract`], also returning the key's word map (see the module docs).
#[inline]
pub fn extract_mapped(packet: &mut Packet, key: &mut FlowKey) -> u64 {
    let (offsets, map) = extract_frame_mapped(packet.data(), packet.meta(), key);
    packet.parse_meta_mut().offsets = offsets;
    map
}

/// Extracts the flow key of `frame` received with metadata `meta` into
/// `key`, and returns where its headers start.
pub fn extract_frame(frame: &[u8], meta: &PacketMetadata, key: &mut FlowKey) -> HeaderOffsets {
    extract_frame_mapped(frame, meta, key).0
}

/// [`extract_frame`], also returning the key's word map (see the module
/// docs).
pub fn extract_frame_mapped(
    frame: &[u8],
    meta: &PacketMetadata,
    key: &mut FlowKey,
) -> (HeaderOffsets, u64) {
    zero_key_except_metadata(key);
    extract_into_cleared(frame, meta, key)
}

/// True for a packet on its first pass: no metadata but `in_port` (no
/// tunnel, recirculation, mark, hash, conntrack state; Ethernet), one test
/// of the fields' OR.
#[inline(always)]
pub(super) fn is_first_pass(meta: &PacketMetadata) -> bool {
    let others = meta.recirc_id
        | meta.dp_hash
        | meta.skb_priority
        | meta.pkt_mark
        | meta.ct_mark
        | meta.packet_type.0
        | u32::from(meta.ct_zone)
        | u32::from(meta.ct_state);
    others == 0 && u128::from_ne_bytes(meta.ct_label) == 0 && !meta.tunnel.is_valid()
}

/// The general extraction into a key that is zero outside its metadata
/// words (a fresh extraction's reset, or a reused slot's stale words
/// cleared): the metadata, then the parser over the frame.
#[inline]
fn extract_into_cleared(
    frame: &[u8],
    meta: &PacketMetadata,
    key: &mut FlowKey,
) -> (HeaderOffsets, u64) {
    let meta_map = extract_metadata(meta, key);
    let mut offsets = HeaderOffsets::NONE;
    let mut parser = Parser {
        frame,
        pos: 0,
        end: frame.len(),
        map: meta_map,
    };
    parser.parse(meta.packet_type, key, &mut offsets);
    (offsets, parser.map)
}

/// [`extract_mapped`] into a key slot that is reused packet after packet
/// (a PMD's per-batch keys), given the word map `old_map` of what the slot
/// holds now; returns the new key's word map, to be passed back as
/// `old_map` on the slot's next use.
///
/// # Why
/// A fresh extraction zeroes the whole 41-word key before writing the ~7
/// words a plain packet has. A slot that last held a key of the same shape
/// already has zeros everywhere else, so this zeroes only the words the
/// old key may have set and the new one does not write (`old_map` minus
/// what is written): nothing, for uniform traffic.
///
/// On the fixed-offset fast path, with no metadata but `in_port` (a
/// packet's first pass), the key's words are written whole, each composed
/// from the frame, and the 5-tuple hash is computed from the same fields
/// while they are in registers: when the packet has no hash yet (no NIC
/// RSS hash) it is stored in the metadata as [`packet_rss_hash`] would
/// store it, so that function then returns it without rereading the key.
/// Same values as [`hash_5tuple`] (tested on mixed frames).
///
/// # Contract
/// `key` must be zero outside `old_map` (a slot never written: the zero
/// key and map 0; unknown contents: [`FlowKey::ALL_WORDS`]). Afterwards
/// `key` is exactly what [`extract_mapped`] gives into a zeroed key, every
/// word, and the returned map is the one it returns: every consumer sees a
/// full, valid key (property-tested over mixed frame sequences against a
/// fresh extraction).
///
/// [`packet_rss_hash`]: super::hash::packet_rss_hash
/// [`hash_5tuple`]: super::hash::hash_5tuple
#[inline]
pub fn extract_reusing(packet: &mut Packet, key: &mut FlowKey, old_map: u64) -> u64 {
    extract_reusing_fast(packet, key, old_map).0
}

/// [`extract_reusing`], also saying whether it took the fixed-offset fast
/// path (for `same`, which repeats that path's result).
#[inline(always)]
pub(super) fn extract_reusing_fast(
    packet: &mut Packet,
    key: &mut FlowKey,
    old_map: u64,
) -> (u64, bool) {
    debug_assert_eq!(
        key.nonzero_word_map() & !old_map,
        0,
        "a reused key slot holds words outside its map"
    );
    let (frame, meta, fresh) = packet.data_and_meta_fresh();
    if let Some(done) = fast_reusing(frame, meta, fresh, key, old_map) {
        return (done, true);
    }
    // Everything else: the words the old key may have set are zeroed (the
    // metadata words are rewritten whole), then the usual extraction runs
    // on a key that is zero outside them.
    let stale = old_map & !META_MAP;
    if stale != 0 {
        // The general parser rewrites about as many words as it zeroes
        // here, one at a time; beyond three words the two runs of wide
        // stores of a full reset are cheaper than a loop over the map
        // (`benches/extract.rs` `prepare_reusing/mixed_batch32`).
        let beyond_two = stale & stale.wrapping_sub(1);
        let beyond_three = beyond_two & beyond_two.wrapping_sub(1);
        if beyond_three & beyond_three.wrapping_sub(1) == 0 {
            zero_words(key, stale);
        } else {
            zero_key_except_metadata(key);
        }
    }
    let (offsets, map) = extract_into_cleared(frame, meta, key);
    meta.offsets = offsets;
    (map, false)
}

/// The words of [`META_WORDS`].
const META_MAP: u64 = words_of_bytes(
    META_WORDS.start * 8,
    (META_WORDS.end - META_WORDS.start) * 8,
);

/// Zeroes the words of `key` named in `map`.
#[inline]
pub(super) fn zero_words(key: &mut FlowKey, mut map: u64) {
    let words = key.words_mut();
    while map != 0 {
        let i = map.trailing_zeros() as usize;
        if let Some(w) = words.get_mut(i) {
            *w = 0;
        }
        map &= map - 1;
    }
}

/// Word indices the fast path writes whole, and the layout they assume
/// (checked at compile time, so a reordered key fails to build rather
/// than writing the wrong bytes).
const W_IN_PORT: usize = 13;
const W_DL: usize = 24;
const W_DL_SRC_TYPE: usize = 25;
const W_NW_ADDRS: usize = 29;
const W_NW_PROTO: usize = 34;
const W_TCP_FLAGS: usize = 38;
const W_TP: usize = 39;
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(FlowKey, dp_hash) == W_IN_PORT * 8);
    assert!(offset_of!(FlowKey, in_port) == W_IN_PORT * 8 + 4);
    assert!(offset_of!(FlowKey, dl_dst) == W_DL * 8);
    assert!(offset_of!(FlowKey, dl_src) == W_DL * 8 + 6);
    assert!(offset_of!(FlowKey, dl_type) == W_DL_SRC_TYPE * 8 + 4);
    assert!(offset_of!(FlowKey, pad_dl) == W_DL_SRC_TYPE * 8 + 6);
    assert!(offset_of!(FlowKey, nw_src) == W_NW_ADDRS * 8);
    assert!(offset_of!(FlowKey, nw_dst) == W_NW_ADDRS * 8 + 4);
    assert!(offset_of!(FlowKey, ipv6_label) == W_NW_PROTO * 8);
    assert!(offset_of!(FlowKey, nw_frag) == W_NW_PROTO * 8 + 4);
    assert!(offset_of!(FlowKey, nw_tos) == W_NW_PROTO * 8 + 5);
    assert!(offset_of!(FlowKey, nw_ttl) == W_NW_PROTO * 8 + 6);
    assert!(offset_of!(FlowKey, nw_proto) == W_NW_PROTO * 8 + 7);
    assert!(offset_of!(FlowKey, arp_tha) + 6 == W_TCP_FLAGS * 8 + 4);
    assert!(offset_of!(FlowKey, tcp_flags) == W_TCP_FLAGS * 8 + 4);
    assert!(offset_of!(FlowKey, nd_options_type) == W_TCP_FLAGS * 8 + 6);
    assert!(offset_of!(FlowKey, pad_l4) == W_TCP_FLAGS * 8 + 7);
    assert!(offset_of!(FlowKey, tp_src) == W_TP * 8);
    assert!(offset_of!(FlowKey, tp_dst) == W_TP * 8 + 2);
    assert!(offset_of!(FlowKey, igmp_group_ip4) == W_TP * 8 + 4);
    assert!(offset_of!(FlowKey, nd_reserved) == (W_TP + 1) * 8);
};
/// The words a key from the fixed-offset path may set (a plain UDP or TCP
/// over IPv4 packet on its first pass; its word map is a subset), in
/// order: a consumer comparing two keys whose maps are both inside
/// [`PLAIN_WORDS_MAP`] need compare only these (see `emc`).
pub const PLAIN_WORDS: [usize; 7] = [
    W_IN_PORT,
    W_DL,
    W_DL_SRC_TYPE,
    W_NW_ADDRS,
    W_NW_PROTO,
    W_TCP_FLAGS,
    W_TP,
];
/// [`PLAIN_WORDS`] as a word map.
pub const PLAIN_WORDS_MAP: u64 = 1 << W_IN_PORT
    | 1 << W_DL
    | 1 << W_DL_SRC_TYPE
    | 1 << W_NW_ADDRS
    | 1 << W_NW_PROTO
    | 1 << W_TCP_FLAGS
    | 1 << W_TP;
const _: () = {
    let mut map = 0u64;
    let mut i = 0;
    while i < PLAIN_WORDS.len() {
        map |= 1 << PLAIN_WORDS[i];
        i += 1;
    }
    assert!(map == PLAIN_WORDS_MAP && PLAIN_WORDS_MAP.count_ones() as usize == PLAIN_WORDS.len());
};
const _: () = assert!(
    (1 << W_IN_PORT) == field_words!(in_port)
        && (1 << W_DL | 1 << W_DL_SRC_TYPE) == field_words!(dl_dst, dl_src, dl_type)
        && (1 << W_NW_ADDRS | 1 << W_NW_PROTO)
            == field_words!(nw_src, nw_dst, nw_tos, nw_ttl, nw_proto, nw_frag)
        && (1 << W_TP) == field_words!(tp_src, tp_dst)
        && (1 << W_TCP_FLAGS | 1 << W_TP) == field_words!(tcp_flags, tp_src, tp_dst)
);

/// The fast path of [`extract_reusing`]: a packet on its first pass (no
/// metadata but `in_port`), Ethernet, taking [`Parser::parse_eth_ipv4_fast`]'s
/// shape. Writes the same key, offsets and map as that path, as whole
/// words, zeroes what the old key had beyond them, and stores the 5-tuple
/// hash when the packet has none. `None` (nothing written) for any other
/// packet.
#[inline(always)]
fn fast_reusing(
    frame: &[u8],
    meta: &mut PacketMetadata,
    fresh: bool,
    key: &mut FlowKey,
    old_map: u64,
) -> Option<u64> {
    use super::hash::{hash_add, hash_finish};
    // A fresh packet (`Packet::is_fresh`) is on its first pass without
    // the test of each field.
    if !fresh && !is_first_pass(meta) {
        return None;
    }
    let PlainIpv4 { l4, proto, l2_pad } = plain_ipv4(frame)?;
    // (tcp flags, ports) when the transport header is whole; the map bits.
    let (flags, ports, l4_map) = match proto {
        IPPROTO_UDP if l4.len() >= UDP_HEADER_LEN => {
            (None, Some((be16(l4, 0), be16(l4, 2))), 1u64 << W_TP)
        }
        IPPROTO_UDP => (None, None, 0),
        IPPROTO_TCP => match tcp_flags(l4) {
            Some(f) => (
                Some(f),
                Some((be16(l4, 0), be16(l4, 2))),
                1 << W_TCP_FLAGS | 1 << W_TP,
            ),
            None => (None, None, 0),
        },
        _ => return None,
    };
    const L3: usize = PLAIN_L3;
    let w = key.words_mut();
    let in_port = meta.in_port.to_ne_bytes();
    w[W_IN_PORT] = u64::from_ne_bytes([0, 0, 0, 0, in_port[0], in_port[1], in_port[2], in_port[3]]);
    w[W_DL] = u64::from_ne_bytes(array(frame, 0));
    let [s2, s3, s4, s5]: [u8; 4] = array(frame, 8);
    let [t0, t1] = ETH_TYPE_IPV4.to_ne_bytes();
    w[W_DL_SRC_TYPE] = u64::from_ne_bytes([s2, s3, s4, s5, t0, t1, 0, 0]);
    let addrs: [u8; 8] = array(frame, L3 + 12);
    w[W_NW_ADDRS] = u64::from_ne_bytes(addrs);
    w[W_NW_PROTO] = u64::from_ne_bytes([0, 0, 0, 0, 0, frame[L3 + 1], frame[L3 + 8], proto]);
    let (tp_src, tp_dst) = ports.unwrap_or((0, 0));
    if let Some(flags) = flags {
        let [f0, f1] = flags.to_ne_bytes();
        w[W_TCP_FLAGS] = u64::from_ne_bytes([0, 0, 0, 0, f0, f1, 0, 0]);
    }
    if ports.is_some() {
        let ([a0, a1], [b0, b1]) = (tp_src.to_ne_bytes(), tp_dst.to_ne_bytes());
        w[W_TP] = u64::from_ne_bytes([a0, a1, b0, b1, 0, 0, 0, 0]);
    }
    let map = 1 << W_IN_PORT
        | 1 << W_DL
        | 1 << W_DL_SRC_TYPE
        | 1 << W_NW_ADDRS
        | 1 << W_NW_PROTO
        | l4_map;
    let stale = old_map & !map;
    if stale != 0 {
        zero_words(key, stale);
    }
    if !meta.rss_hash_valid {
        // `hash_5tuple` of this key: addresses, protocol, then the ports
        // (zero when the header is cut) for UDP and TCP.
        let [a0, a1, a2, a3, b0, b1, b2, b3] = addrs;
        let mut hash = hash_add(0, u32::from_ne_bytes([a0, a1, a2, a3]));
        hash = hash_add(hash, u32::from_ne_bytes([b0, b1, b2, b3]));
        hash = hash_add(hash, u32::from(proto));
        hash = hash_add(hash, (u32::from(tp_src) << 16) | u32::from(tp_dst));
        meta.rss_hash = hash_finish(hash, 42);
        meta.rss_hash_valid = true;
    }
    meta.offsets = HeaderOffsets {
        l3: L3 as u16,
        l4: PLAIN_L4 as u16,
        l2_pad,
        ..HeaderOffsets::NONE
    };
    Some(map)
}

/// First and end word of the packet-metadata words that
/// [`extract_metadata`] writes in full (`skb_priority` .. `ct_label`).
const META_WORDS: std::ops::Range<usize> = 12..18;
const _: () = {
    assert!(std::mem::offset_of!(FlowKey, skb_priority) == META_WORDS.start * 8);
    assert!(std::mem::offset_of!(FlowKey, ct_label) + 16 == META_WORDS.end * 8);
};

/// Zeroes every word of `key` except [`META_WORDS`], which
/// [`extract_metadata`] overwrites. Two runs of stores short enough for
/// the compiler to inline: one 328-byte `*key = FlowKey::ZERO` becomes a
/// `memset` call (~35 instructions with its dispatch) on every packet.
#[inline(always)]
fn zero_key_except_metadata(key: &mut FlowKey) {
    let words = key.words_mut();
    words[..META_WORDS.start].fill(0);
    words[META_WORDS.end..].fill(0);
}

/// The tunnel words before the Geneve options.
const TUN_WORDS: u64 = words_of_bytes(0, std::mem::offset_of!(FlowKey, tun_geneve));

/// Writes every field of [`META_WORDS`] (and the tunnel fields when the
/// packet has tunnel metadata); returns the word map of what it wrote:
/// exact for [`META_WORDS`] (they are mostly zero), the tunnel words when
/// there is a tunnel.
#[inline(always)]
fn extract_metadata(meta: &PacketMetadata, key: &mut FlowKey) -> u64 {
    // A packet on its first pass (no tunnel, recirculation, mark, hash,
    // conntrack state; Ethernet) has nothing but `in_port` in these words:
    // one test of their OR, then three stores of zero and `in_port`,
    // instead of copying each field and testing each word (callgrind,
    // DPDK bench `1flow`: extraction 197 -> 194 instructions a packet).
    if is_first_pass(meta) {
        key.words_mut()[META_WORDS].fill(0);
        key.in_port = meta.in_port;
        return field_words!(in_port);
    }
    extract_full_metadata(meta, key)
}

/// [`extract_metadata`] for a packet with more than `in_port` set.
#[inline(never)]
fn extract_full_metadata(meta: &PacketMetadata, key: &mut FlowKey) -> u64 {
    let mut map = 0;
    let tun = &meta.tunnel;
    if tun.is_valid() {
        map |= TUN_WORDS;
        key.tun_id = tun.tun_id;
        key.tun_ipv4_src = tun.ipv4_src;
        key.tun_ipv4_dst = tun.ipv4_dst;
        key.tun_ipv6_src = tun.ipv6_src;
        key.tun_ipv6_dst = tun.ipv6_dst;
        key.tun_flags = tun.flags;
        key.tun_tos = tun.tos;
        key.tun_ttl = tun.ttl;
        key.tun_tp_src = tun.tp_src;
        key.tun_tp_dst = tun.tp_dst;
        key.tun_gbp_id = tun.gbp_id;
        key.tun_gbp_flags = tun.gbp_flags;
        // Longer option lists stay out of the key (see GENEVE_KEY_OPTS).
        let n = usize::from(tun.geneve_len);
        if n != 0 && n <= GENEVE_KEY_OPTS {
            key.tun_geneve_len = tun.geneve_len;
            key.tun_geneve[..n].copy_from_slice(&tun.geneve_opts[..n]);
            map |= words_of_bytes(std::mem::offset_of!(FlowKey, tun_geneve), n);
        }
    }
    key.skb_priority = meta.skb_priority;
    key.pkt_mark = meta.pkt_mark;
    key.dp_hash = meta.dp_hash;
    key.in_port = meta.in_port;
    key.recirc_id = meta.recirc_id;
    key.ct_state = meta.ct_state;
    key.ct_nw_proto = 0;
    key.ct_zone = meta.ct_zone;
    key.ct_mark = meta.ct_mark;
    key.ct_label = meta.ct_label;
    key.packet_type = meta.packet_type.0;
    // `in_port`'s word always (a superset is fine); the others are zero
    // on a packet's first pass, so one test of their OR skips the loop.
    let words = key.words();
    map |= field_words!(in_port);
    let others = words[12] | words[14] | words[15] | words[16] | words[17];
    if others != 0 {
        for i in META_WORDS {
            map |= u64::from(words[i] != 0) << i;
        }
    }
    map
}
const _: () = assert!(field_words!(in_port) == 1 << 13 && META_WORDS.start == 12);

/// The unparsed window `frame[pos..end]`, and the word map of the key
/// fields written so far.
struct Parser<'a> {
    frame: &'a [u8],
    pos: usize,
    end: usize,
    map: u64,
}

impl<'a> Parser<'a> {
    #[inline(always)]
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// The rest of the window.
    #[inline(always)]
    fn rest(&self) -> &'a [u8] {
        &self.frame[self.pos..self.end]
    }

    /// Moves past `n` bytes; `false` (and no move) when fewer remain.
    #[inline(always)]
    fn skip(&mut self, n: usize) -> bool {
        if n > self.remaining() {
            return false;
        }
        self.pos += n;
        true
    }

    #[inline(always)]
    fn offset(&self) -> u16 {
        u16::try_from(self.pos).unwrap_or(OFS_NONE)
    }

    fn parse(&mut self, packet_type: PacketType, key: &mut FlowKey, offsets: &mut HeaderOffsets) {
        if packet_type == PacketType::ETHERNET && self.parse_eth_ipv4_fast(key, offsets) {
            return;
        }
        self.parse_general(packet_type, key, offsets);
    }

    /// The common frame, untagged Ethernet + IPv4 without options or
    /// fragmentation + UDP or TCP, parsed at fixed offsets after one set
    /// of checks made before anything is written; `false` (nothing
    /// written) for any other frame, which the general parser then takes
    /// from the start. Same key, offsets and word map as the general
    /// parser (tested on mutated frames of every path, and fuzzed):
    /// callgrind, DPDK bench `1flow`: extraction 194 -> ~150 instructions
    /// a packet.
    #[inline(always)]
    fn parse_eth_ipv4_fast(&mut self, key: &mut FlowKey, offsets: &mut HeaderOffsets) -> bool {
        const L3: usize = PLAIN_L3;
        let f = self.frame;
        debug_assert!(self.pos == 0 && self.end == f.len());
        let Some(PlainIpv4 { l4, proto, l2_pad }) = plain_ipv4(f) else {
            return false;
        };
        let l4_map = match proto {
            IPPROTO_UDP if l4.len() >= UDP_HEADER_LEN => field_words!(tp_src, tp_dst),
            IPPROTO_UDP => 0,
            IPPROTO_TCP => match tcp_flags(l4) {
                Some(flags) => {
                    key.tcp_flags = flags;
                    field_words!(tcp_flags, tp_src, tp_dst)
                }
                None => 0,
            },
            _ => return false,
        };
        key.dl_dst = array(f, 0);
        key.dl_src = array(f, 6);
        key.dl_type = ETH_TYPE_IPV4;
        key.nw_src = array(f, L3 + 12);
        key.nw_dst = array(f, L3 + 16);
        key.nw_tos = f[L3 + 1];
        key.nw_ttl = f[L3 + 8];
        key.nw_proto = proto;
        if l4_map != 0 {
            key.tp_src = be16(l4, 0);
            key.tp_dst = be16(l4, 2);
        }
        self.map |= field_words!(dl_dst, dl_src, dl_type)
            | field_words!(nw_src, nw_dst, nw_tos, nw_ttl, nw_proto, nw_frag)
            | l4_map;
        offsets.l3 = L3 as u16;
        offsets.l4 = PLAIN_L4 as u16;
        offsets.l2_pad = l2_pad;
        true
    }

    /// Every frame the fast path declines: the header-by-header walk.
    fn parse_general(
        &mut self,
        packet_type: PacketType,
        key: &mut FlowKey,
        offsets: &mut HeaderOffsets,
    ) {
        let dl_type = if packet_type == PacketType::ETHERNET {
            match self.parse_l2(key) {
                Some(dl_type) => dl_type,
                None => return,
            }
        } else if packet_type.namespace() == PacketType::NS_ETHERTYPE {
            let dl_type = packet_type.ns_type();
            key.dl_type = dl_type;
            self.map |= field_words!(dl_type);
            dl_type
        } else {
            return;
        };

        if dl_type == ETH_TYPE_MPLS || dl_type == ETH_TYPE_MPLS_MCAST {
            offsets.l2_5 = self.offset();
            self.parse_mpls(key);
            offsets.l3 = self.offset();
            return;
        }

        offsets.l3 = self.offset();
        let l3_ok = match dl_type {
            ETH_TYPE_IPV4 => self.parse_ipv4(key, offsets),
            ETH_TYPE_IPV6 => self.parse_ipv6(key, offsets),
            ETH_TYPE_ARP | ETH_TYPE_RARP => {
                self.parse_arp(key);
                false
            }
            _ => false,
        };
        if !l3_ok {
            return;
        }
        offsets.l4 = self.offset();
        if key.nw_frag & FLOW_NW_FRAG_LATER == 0 {
            self.parse_l4(key);
        }
    }

    /// Ethernet, VLAN tags and the Ethernet type (with 802.2/SNAP). `None`
    /// for a frame shorter than an Ethernet header.
    fn parse_l2(&mut self, key: &mut FlowKey) -> Option<u16> {
        let b = self.rest();
        if b.len() < ETH_HEADER_LEN {
            return None;
        }
        key.dl_dst = array(b, 0);
        key.dl_src = array(b, 6);
        self.map |= field_words!(dl_dst, dl_src, dl_type);
        self.pos += 12;

        // VLAN tags: each needs its own 4 bytes plus the next type field.
        let mut n = 0;
        while n < FLOW_MAX_VLAN_HEADERS {
            let b = self.rest();
            let tpid = be16(b, 0);
            if tpid != ETH_TYPE_VLAN_8021Q && tpid != ETH_TYPE_VLAN_8021AD {
                break;
            }
            if b.len() < VLAN_HEADER_LEN + 2 {
                break;
            }
            key.vlans[n] = VlanHeader {
                tpid,
                tci: be16(b, 2) | VLAN_CFI,
            };
            self.map |= field_words!(vlans);
            self.pos += VLAN_HEADER_LEN;
            n += 1;
        }

        let dl_type = self.parse_ethertype();
        key.dl_type = dl_type;
        Some(dl_type)
    }

    /// Reads the type/length field (at least 2 bytes remain, checked by
    /// the caller), following an 802.2 LLC/SNAP header when present.
    fn parse_ethertype(&mut self) -> u16 {
        let proto = be16(self.rest(), 0);
        self.pos += 2;
        if proto >= ETH_TYPE_MIN {
            return proto;
        }
        let b = self.rest();
        if b.len() < LLC_SNAP_HEADER_LEN || b[..6] != SNAP_PREFIX {
            return ETH_TYPE_NONE;
        }
        let snap_type = be16(b, 6);
        self.pos += LLC_SNAP_HEADER_LEN;
        if snap_type >= ETH_TYPE_MIN {
            snap_type
        } else {
            ETH_TYPE_NONE
        }
    }

    /// The MPLS label stack: up to [`FLOW_MAX_MPLS_LABELS`] entries are
    /// kept; parsing stops at the bottom of stack.
    fn parse_mpls(&mut self, key: &mut FlowKey) {
        let mut count = 0;
        while self.remaining() >= MPLS_HEADER_LEN {
            let lse = be32(self.rest(), 0);
            self.pos += MPLS_HEADER_LEN;
            if count < FLOW_MAX_MPLS_LABELS {
                key.mpls_lse[count] = lse;
                self.map |= field_words!(mpls_lse);
            }
            count += 1;
            if lse & MPLS_BOS_BIT != 0 {
                break;
            }
        }
    }

    fn parse_ipv4(&mut self, key: &mut FlowKey, offsets: &mut HeaderOffsets) -> bool {
        let b = self.rest();
        if b.len() < IPV4_HEADER_LEN {
            return false;
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        let total_len = usize::from(be16(b, 2));
        if ihl < IPV4_HEADER_LEN || ihl > b.len() || total_len > b.len() || ihl > total_len {
            return false;
        }
        let Ok(l2_pad) = u16::try_from(b.len() - total_len) else {
            return false;
        };
        offsets.l2_pad = l2_pad;
        self.end = self.pos + total_len;

        key.nw_src = array(b, 12);
        key.nw_dst = array(b, 16);
        self.map |= field_words!(nw_src, nw_dst, nw_tos, nw_ttl, nw_proto, nw_frag);
        key.nw_tos = b[1];
        key.nw_ttl = b[8];
        key.nw_proto = b[9];
        let frag_off = be16(b, 6);
        if frag_off & IPV4_MF_AND_OFFSET != 0 {
            key.nw_frag = FLOW_NW_FRAG_ANY;
            if frag_off & IPV4_OFFSET_MASK != 0 {
                key.nw_frag |= FLOW_NW_FRAG_LATER;
            }
        }
        self.pos += ihl;
        true
    }

    fn parse_ipv6(&mut self, key: &mut FlowKey, offsets: &mut HeaderOffsets) -> bool {
        let b = self.rest();
        if b.len() < IPV6_HEADER_LEN {
            return false;
        }
        let payload_len = usize::from(be16(b, 4));
        if IPV6_HEADER_LEN + payload_len > b.len() {
            return false;
        }
        let Ok(l2_pad) = u16::try_from(b.len() - IPV6_HEADER_LEN - payload_len) else {
            return false;
        };
        offsets.l2_pad = l2_pad;
        self.pos += IPV6_HEADER_LEN;
        self.end = self.pos + payload_len;

        key.ipv6_src = array(b, 8);
        key.ipv6_dst = array(b, 24);
        self.map |= field_words!(ipv6_src, ipv6_dst);
        let tc_flow = be32(b, 0);
        let mut nw_proto = b[6];
        let mut nw_frag = 0;
        if !self.parse_ipv6_ext_headers(&mut nw_proto, &mut nw_frag) {
            return false;
        }
        self.map |= field_words!(ipv6_label, nw_tos, nw_ttl, nw_proto, nw_frag);
        key.ipv6_label = tc_flow & IPV6_LABEL_MASK;
        key.nw_tos = (tc_flow >> 20) as u8;
        key.nw_ttl = b[7];
        key.nw_proto = nw_proto;
        key.nw_frag = nw_frag;
        true
    }

    /// Skips hop-by-hop, routing, destination options, AH and fragment
    /// headers. `false` when one of them is truncated.
    fn parse_ipv6_ext_headers(&mut self, nw_proto: &mut u8, nw_frag: &mut u8) -> bool {
        loop {
            let proto = *nw_proto;
            if !matches!(
                proto,
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
            ) {
                return true;
            }
            // Every extension header is at least 8 bytes; only those are read.
            let b = self.rest();
            if b.len() < 8 {
                return false;
            }
            *nw_proto = b[0];
            match proto {
                IPPROTO_AH => {
                    if !self.skip((usize::from(b[1]) + 2) * 4) {
                        return false;
                    }
                }
                IPPROTO_FRAGMENT => {
                    self.pos += IPV6_FRAG_HEADER_LEN;
                    let offset_and_flags = be16(b, 2);
                    if offset_and_flags != 0 {
                        *nw_frag = FLOW_NW_FRAG_ANY;
                        if offset_and_flags & IPV6_FRAG_OFFSET_MASK != 0 {
                            *nw_frag |= FLOW_NW_FRAG_LATER;
                            *nw_proto = IPPROTO_FRAGMENT;
                            return true;
                        }
                    }
                }
                _ => {
                    if !self.skip((usize::from(b[1]) + 1) * 8) {
                        return false;
                    }
                }
            }
        }
    }

    /// ARP and RARP for Ethernet/IPv4 only, as OVS.
    fn parse_arp(&mut self, key: &mut FlowKey) {
        let b = self.rest();
        if b.len() < ARP_ETH_IPV4_LEN
            || be16(b, 0) != 1
            || be16(b, 2) != ETH_TYPE_IPV4
            || b[4] != 6
            || b[5] != 4
        {
            return;
        }
        self.map |= field_words!(nw_proto, arp_sha, nw_src, arp_tha, nw_dst);
        let op = be16(b, 6);
        if op <= 0xff {
            key.nw_proto = op as u8;
        }
        key.arp_sha = array(b, 8);
        key.nw_src = array(b, 14);
        key.arp_tha = array(b, 18);
        key.nw_dst = array(b, 24);
        self.pos += ARP_ETH_IPV4_LEN;
    }

    fn parse_l4(&mut self, key: &mut FlowKey) {
        let b = self.rest();
        match key.nw_proto {
            IPPROTO_TCP => {
                if let Some(flags) = tcp_flags(b) {
                    self.map |= field_words!(tcp_flags, tp_src, tp_dst);
                    key.tcp_flags = flags;
                    key.tp_src = be16(b, 0);
                    key.tp_dst = be16(b, 2);
                }
            }
            IPPROTO_UDP if b.len() >= UDP_HEADER_LEN => {
                self.map |= field_words!(tp_src, tp_dst);
                key.tp_src = be16(b, 0);
                key.tp_dst = be16(b, 2);
            }
            IPPROTO_SCTP if b.len() >= SCTP_HEADER_LEN => {
                self.map |= field_words!(tp_src, tp_dst);
                key.tp_src = be16(b, 0);
                key.tp_dst = be16(b, 2);
            }
            IPPROTO_ICMP if b.len() >= ICMP_HEADER_LEN => {
                self.map |= field_words!(tp_src, tp_dst);
                key.tp_src = u16::from(b[0]);
                key.tp_dst = u16::from(b[1]);
            }
            IPPROTO_IGMP if b.len() >= IGMP_HEADER_LEN => {
                self.map |= field_words!(tp_src, tp_dst, igmp_group_ip4);
                key.tp_src = u16::from(b[0]);
                key.tp_dst = u16::from(b[1]);
                key.igmp_group_ip4 = array(b, 4);
            }
            IPPROTO_ICMPV6 if b.len() >= ICMPV6_HEADER_LEN => {
                self.map |= field_words!(tp_src, tp_dst);
                key.tp_src = u16::from(b[0]);
                key.tp_dst = u16::from(b[1]);
                self.pos += ICMPV6_HEADER_LEN;
                self.parse_nd(b[0], b[1], be32(b, 4), key);
            }
            _ => {}
        }
    }

    /// Neighbour solicitation/advertisement: target address and the first
    /// source/target link-layer address options. A repeated option makes
    /// the whole ND part invalid (target and addresses cleared), as OVS.
    fn parse_nd(&mut self, icmp_type: u8, icmp_code: u8, reserved: u32, key: &mut FlowKey) {
        if icmp_code != 0 || (icmp_type != ND_NEIGHBOR_SOLICIT && icmp_type != ND_NEIGHBOR_ADVERT) {
            return;
        }
        self.map |= field_words!(nd_reserved, nd_options_type, nd_target, arp_sha, arp_tha);
        key.nd_reserved = reserved;
        let b = self.rest();
        if b.len() < 16 {
            return;
        }
        let target: [u8; 16] = array(b, 0);
        self.pos += 16;
        let mut sll = [0u8; 6];
        let mut tll = [0u8; 6];
        let mut options_type = 0u8;
        while self.remaining() >= ND_OPT_UNIT {
            let opt = self.rest();
            let opt_len = usize::from(opt[1]) * ND_OPT_UNIT;
            if opt_len == 0 || opt_len > opt.len() {
                break;
            }
            let slot = match opt[0] {
                ND_OPT_SOURCE_LINKADDR if opt_len == ND_OPT_UNIT => Some(&mut sll),
                ND_OPT_TARGET_LINKADDR if opt_len == ND_OPT_UNIT => Some(&mut tll),
                _ => None,
            };
            if let Some(slot) = slot {
                if *slot != [0; 6] {
                    // Same option twice: the packet is invalid ND.
                    key.nd_options_type = options_type;
                    return;
                }
                *slot = array(opt, 2);
                if options_type == 0 {
                    options_type = opt[0];
                }
            }
            self.pos += opt_len;
        }
        key.nd_target = target;
        key.arp_sha = sll;
        key.arp_tha = tll;
        key.nd_options_type = options_type;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    const SRC: [u8; 6] = [0x00, 0x66, 0x77, 0x88, 0x99, 0xaa];

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// A 20-byte IPv4 header (checksum left zero; extraction ignores it).
    fn ipv4_header(proto: u8, payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0x00];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        h
    }

    fn ipv6_header(next: u8, payload_len: usize) -> Vec<u8> {
        let mut h = vec![0x60, 0x0a, 0xbc, 0xde];
        h.extend_from_slice(&(payload_len as u16).to_be_bytes());
        h.extend_from_slice(&[next, 255]);
        h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h
    }

    fn udp(src: u16, dst: u16) -> Vec<u8> {
        let mut u = src.to_be_bytes().to_vec();
        u.extend_from_slice(&dst.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    fn tcp(src: u16, dst: u16, data_offset_words: u8, flags: u8) -> Vec<u8> {
        let mut t = src.to_be_bytes().to_vec();
        t.extend_from_slice(&dst.to_be_bytes());
        t.extend_from_slice(&[0; 8]);
        t.extend_from_slice(&[data_offset_words << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    /// Extracts into a zeroed key and into one full of ones: extraction
    /// must write every word (it skips zeroing the metadata words it
    /// overwrites), so both must come out the same.
    fn run(frame: &[u8]) -> (FlowKey, HeaderOffsets) {
        let mut key = FlowKey::ZERO;
        let (offsets, map) = extract_frame_mapped(frame, &PacketMetadata::new(3), &mut key);
        let nonzero = key.nonzero_word_map();
        assert_eq!(
            nonzero & !map,
            0,
            "word map {map:#x} misses non-zero words of {key:?}"
        );
        let mut dirty = FlowKey::from_words([u64::MAX; FLOW_U64S]);
        assert_eq!(
            extract_frame(frame, &PacketMetadata::new(3), &mut dirty),
            offsets
        );
        assert_eq!(dirty, key, "a word left over from the previous key");
        (key, offsets)
    }

    fn ipv4_udp_frame() -> Vec<u8> {
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_UDP, 8));
        f.extend(udp(1000, 53));
        f
    }

    #[test]
    fn test_parse_ipv4_udp() {
        let (key, ofs) = run(&ipv4_udp_frame());
        assert_eq!(key.in_port, 3);
        assert_eq!(
            (key.dl_dst, key.dl_src, key.dl_type),
            (DST, SRC, ETH_TYPE_IPV4)
        );
        assert_eq!((key.nw_src, key.nw_dst), ([10, 0, 0, 1], [10, 0, 0, 2]));
        assert_eq!(
            (key.nw_proto, key.nw_ttl, key.nw_frag),
            (IPPROTO_UDP, 64, 0)
        );
        assert_eq!((key.tp_src, key.tp_dst), (1000, 53));
        assert_eq!((ofs.l3, ofs.l4, ofs.l2_pad), (14, 34, 0));
    }

    #[test]
    fn test_parse_truncated_every_prefix_keeps_only_complete_headers() {
        let frame = ipv4_udp_frame();
        for len in 0..frame.len() {
            let (key, ofs) = run(&frame[..len]);
            if len < 14 {
                assert_eq!(key.dl_type, 0, "len {len}");
                assert_eq!(ofs, HeaderOffsets::NONE);
            }
            // A cut IPv4 header (or total length past the end) yields no L3.
            if len < 42 {
                assert_eq!(key.nw_src, [0; 4], "len {len}");
                assert_eq!(key.tp_src, 0, "len {len}");
            }
        }
    }

    #[test]
    fn test_parse_ipv4_total_length_below_header_length_cve_2016_10377() {
        let mut f = eth(ETH_TYPE_IPV4);
        let mut ip = ipv4_header(IPPROTO_UDP, 8);
        ip[2..4].copy_from_slice(&10u16.to_be_bytes());
        f.extend(ip);
        f.extend(udp(1, 2));
        let (key, ofs) = run(&f);
        assert_eq!(key.dl_type, ETH_TYPE_IPV4);
        assert_eq!((key.nw_src, key.nw_proto, key.tp_src), ([0; 4], 0, 0));
        assert_eq!(ofs.l4, OFS_NONE);
        // IHL below 5 is rejected the same way.
        let mut f = eth(ETH_TYPE_IPV4);
        let mut ip = ipv4_header(IPPROTO_UDP, 8);
        ip[0] = 0x44;
        f.extend(ip);
        f.extend(udp(1, 2));
        assert_eq!(run(&f).0.nw_src, [0; 4]);
    }

    #[test]
    fn test_parse_ethernet_padding_never_becomes_l4_cve_2020_35498() {
        // IPv4 says 20 bytes (no payload) but the frame is padded with
        // bytes that look like a UDP header.
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_UDP, 0));
        f.extend(udp(4789, 4789));
        f.extend([0u8; 18]);
        let (key, ofs) = run(&f);
        assert_eq!(key.nw_proto, IPPROTO_UDP);
        assert_eq!((key.tp_src, key.tp_dst), (0, 0));
        assert_eq!(ofs.l2_pad, 26);
        assert_eq!(ofs.l4, 34);
        // The same for IPv6, whose payload length stops at the header.
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6_header(IPPROTO_TCP, 0));
        f.extend(tcp(80, 81, 5, 0x02));
        let (key, ofs) = run(&f);
        assert_eq!(
            (key.nw_proto, key.tp_src, key.tcp_flags),
            (IPPROTO_TCP, 0, 0)
        );
        assert_eq!(ofs.l2_pad, 20);
    }

    #[test]
    fn test_parse_ip_protocol_zero_cve_2023_1668() {
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(0, 8));
        f.extend(udp(1, 2));
        let (key, ofs) = run(&f);
        assert_eq!((key.nw_proto, key.nw_ttl), (0, 64));
        assert_eq!((key.tp_src, key.tp_dst, key.tcp_flags), (0, 0, 0));
        assert_eq!(ofs.l4, 34);
        // IPv6 next header 0 is hop-by-hop: a truncated one ends parsing
        // with no protocol; a complete one is skipped.
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6_header(IPPROTO_HOPOPTS, 4));
        f.extend([IPPROTO_UDP, 0, 0, 0]);
        let (key, ofs) = run(&f);
        assert_eq!((key.ipv6_src[0], key.nw_proto, key.nw_ttl), (0xfe, 0, 0));
        assert_eq!(ofs.l4, OFS_NONE);
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6_header(IPPROTO_HOPOPTS, 16));
        f.extend([IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
        f.extend(udp(7, 8));
        let (key, ofs) = run(&f);
        assert_eq!((key.nw_proto, key.tp_src, key.tp_dst), (IPPROTO_UDP, 7, 8));
        assert_eq!(key.ipv6_label, 0xabcde);
        assert_eq!(ofs.l4, 14 + 40 + 8);
    }

    #[test]
    fn test_parse_tcp_data_offset_below_five_or_past_end() {
        for data_offset in [0u8, 4, 6, 15] {
            let mut f = eth(ETH_TYPE_IPV4);
            f.extend(ipv4_header(IPPROTO_TCP, 20));
            f.extend(tcp(80, 8080, data_offset, 0x12));
            let (key, _) = run(&f);
            assert_eq!(
                (key.tp_src, key.tcp_flags),
                (0, 0),
                "data offset {data_offset}"
            );
        }
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_TCP, 20));
        f.extend(tcp(80, 8080, 5, 0x12));
        let (key, _) = run(&f);
        assert_eq!((key.tp_src, key.tp_dst, key.tcp_flags), (80, 8080, 0x12));
    }

    fn nd_frame(icmp_type: u8, options: &[u8]) -> Vec<u8> {
        let mut icmp = vec![icmp_type, 0, 0, 0, 0x60, 0, 0, 0];
        icmp.extend_from_slice(&[0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        icmp.extend_from_slice(options);
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6_header(IPPROTO_ICMPV6, icmp.len()));
        f.extend(icmp);
        f
    }

    #[test]
    fn test_parse_nd_with_link_layer_options() {
        let opts = [1, 1, 1, 2, 3, 4, 5, 6, 2, 1, 7, 8, 9, 10, 11, 12];
        let (key, _) = run(&nd_frame(ND_NEIGHBOR_ADVERT, &opts));
        assert_eq!((key.tp_src, key.tp_dst), (136, 0));
        assert_eq!(key.nd_target[15], 9);
        assert_eq!(key.arp_sha, [1, 2, 3, 4, 5, 6]);
        assert_eq!(key.arp_tha, [7, 8, 9, 10, 11, 12]);
        assert_eq!(key.nd_options_type, 1);
        assert_eq!(key.nd_reserved, 0x6000_0000);
    }

    #[test]
    fn test_parse_nd_option_length_zero_or_past_end() {
        // Length 0 would loop forever in a naive parser: it stops instead,
        // keeping the target and what came before.
        let (key, _) = run(&nd_frame(
            ND_NEIGHBOR_SOLICIT,
            &[1, 1, 1, 2, 3, 4, 5, 6, 2, 0, 0, 0, 0, 0, 0, 0],
        ));
        assert_eq!(key.nd_target[15], 9);
        assert_eq!(key.arp_sha, [1, 2, 3, 4, 5, 6]);
        assert_eq!(key.arp_tha, [0; 6]);
        // An option claiming 16 bytes with 8 left.
        let (key, _) = run(&nd_frame(ND_NEIGHBOR_SOLICIT, &[1, 2, 1, 2, 3, 4, 5, 6]));
        assert_eq!(key.nd_target[15], 9);
        assert_eq!(key.arp_sha, [0; 6]);
        // A repeated SLL makes the ND part invalid.
        let (key, _) = run(&nd_frame(
            ND_NEIGHBOR_SOLICIT,
            &[1, 1, 1, 2, 3, 4, 5, 6, 1, 1, 9, 9, 9, 9, 9, 9],
        ));
        assert_eq!((key.nd_target, key.arp_sha), ([0; 16], [0; 6]));
        assert_eq!(key.tp_src, 135);
        // Not ND: plain ICMPv6 echo keeps type/code only.
        let (key, _) = run(&nd_frame(128, &[]));
        assert_eq!(
            (key.tp_src, key.nd_target, key.nd_reserved),
            (128, [0; 16], 0)
        );
    }

    #[test]
    fn test_parse_too_many_mpls_labels() {
        let mut f = eth(ETH_TYPE_MPLS);
        for i in 0..5u32 {
            let bos = if i == 4 { 1 << 8 } else { 0 };
            f.extend(((i + 16) << 12 | bos | 64).to_be_bytes());
        }
        f.extend(ipv4_header(IPPROTO_UDP, 8));
        let (key, ofs) = run(&f);
        assert_eq!(key.dl_type, ETH_TYPE_MPLS);
        assert_eq!(key.mpls_lse.map(|l| l >> 12), [16, 17, 18]);
        assert_eq!(key.nw_src, [0; 4], "no L3 parsing under MPLS");
        assert_eq!((ofs.l2_5, ofs.l3), (14, 34));
        // A stack that never reaches bottom-of-stack stops at the frame end.
        let mut f = eth(ETH_TYPE_MPLS);
        f.extend([0, 0x10, 0, 64, 0, 0x20]);
        let (key, ofs) = run(&f);
        assert_eq!(key.mpls_lse, [0x0010_0040, 0, 0]);
        assert_eq!(ofs.l3, 18);
    }

    #[test]
    fn test_parse_double_vlan_8021ad() {
        let mut f = DST.to_vec();
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x88, 0xa8, 0x20, 0x0a, 0x81, 0x00, 0x00, 0x14]);
        f.extend_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
        f.extend(ipv4_header(IPPROTO_UDP, 8));
        f.extend(udp(5, 6));
        let (key, ofs) = run(&f);
        assert_eq!(
            key.vlans[0],
            VlanHeader {
                tpid: ETH_TYPE_VLAN_8021AD,
                tci: 0x200a | VLAN_CFI
            }
        );
        assert_eq!((key.vlans[0].vid(), key.vlans[0].pcp()), (10, 1));
        assert_eq!(
            key.vlans[1],
            VlanHeader {
                tpid: ETH_TYPE_VLAN_8021Q,
                tci: 0x0014 | VLAN_CFI
            }
        );
        assert_eq!((key.dl_type, key.tp_dst), (ETH_TYPE_IPV4, 6));
        assert_eq!(ofs.l3, 22);
        // A tag with no room for the next type field is not a tag.
        let mut f = eth(ETH_TYPE_VLAN_8021Q);
        f.extend_from_slice(&[0x00, 0x05, 0x08]);
        let (key, _) = run(&f);
        assert_eq!((key.vlans[0].tci, key.dl_type), (0, ETH_TYPE_VLAN_8021Q));
    }

    #[test]
    fn test_parse_llc_without_snap_is_no_ethernet_type() {
        let mut f = eth(0x0003);
        f.extend_from_slice(&[0x42, 0x42, 0x03]);
        assert_eq!(run(&f).0.dl_type, ETH_TYPE_NONE);
        let mut f = eth(0x0010);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06]);
        assert_eq!(run(&f).0.dl_type, ETH_TYPE_ARP);
        // SNAP with a non-Ethernet OUI.
        let mut f = eth(0x0010);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0xf8, 0x08, 0x00]);
        assert_eq!(run(&f).0.dl_type, ETH_TYPE_NONE);
    }

    #[test]
    fn test_parse_arp_request() {
        let mut f = eth(ETH_TYPE_ARP);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[192, 168, 0, 1]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[192, 168, 0, 2]);
        let (key, ofs) = run(&f);
        assert_eq!(
            (key.nw_proto, key.nw_src, key.nw_dst),
            (1, [192, 168, 0, 1], [192, 168, 0, 2])
        );
        assert_eq!((key.arp_sha, key.arp_tha), (SRC, [0; 6]));
        assert_eq!((ofs.l3, ofs.l4), (14, OFS_NONE));
        // Opcode above 255 is not matched.
        f[20] = 1;
        assert_eq!(run(&f).0.nw_proto, 0);
    }

    #[test]
    fn test_parse_fragments() {
        for (frag_off, want) in [(0x2000u16, FLOW_NW_FRAG_ANY), (0x0010, 3), (0x4000, 0)] {
            let mut f = eth(ETH_TYPE_IPV4);
            let mut ip = ipv4_header(IPPROTO_UDP, 8);
            ip[6..8].copy_from_slice(&frag_off.to_be_bytes());
            f.extend(ip);
            f.extend(udp(1, 2));
            let (key, _) = run(&f);
            assert_eq!(key.nw_frag, want, "frag_off {frag_off:#x}");
            let ports_parsed = want & FLOW_NW_FRAG_LATER == 0;
            assert_eq!(key.tp_src == 1, ports_parsed);
        }
        // IPv6: a later fragment reports protocol "fragment".
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6_header(IPPROTO_FRAGMENT, 16));
        f.extend_from_slice(&[IPPROTO_UDP, 0, 0x00, 0x10, 0, 0, 0, 1]);
        f.extend(udp(1, 2));
        let (key, _) = run(&f);
        assert_eq!(
            (key.nw_frag, key.nw_proto, key.tp_src),
            (3, IPPROTO_FRAGMENT, 0)
        );
        let mut f = eth(ETH_TYPE_IPV6);
        f.extend(ipv6_header(IPPROTO_FRAGMENT, 16));
        f.extend_from_slice(&[IPPROTO_UDP, 0, 0x00, 0x01, 0, 0, 0, 1]);
        f.extend(udp(1, 2));
        let (key, _) = run(&f);
        assert_eq!((key.nw_frag, key.nw_proto, key.tp_src), (1, IPPROTO_UDP, 1));
    }

    #[test]
    fn test_parse_igmp_sctp_icmp() {
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_IGMP, 8));
        f.extend_from_slice(&[0x16, 0, 0, 0, 239, 1, 2, 3]);
        let (key, _) = run(&f);
        assert_eq!((key.tp_src, key.igmp_group_ip4), (0x16, [239, 1, 2, 3]));
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_SCTP, 12));
        f.extend_from_slice(&[0, 9, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(run(&f).0.tp_dst, 10);
        let mut f = eth(ETH_TYPE_IPV4);
        f.extend(ipv4_header(IPPROTO_ICMP, 8));
        f.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!((run(&f).0.tp_src, run(&f).0.tp_dst), (8, 0));
    }

    #[test]
    fn test_parse_l3_packet_type_and_metadata() {
        let mut meta = PacketMetadata::new(4);
        meta.packet_type = PacketType::new(PacketType::NS_ETHERTYPE, ETH_TYPE_IPV4);
        meta.recirc_id = 7;
        meta.tunnel.ipv4_dst = [1, 1, 1, 1];
        meta.tunnel.tun_id = 42;
        let mut frame = ipv4_header(IPPROTO_UDP, 8);
        frame.extend(udp(9, 10));
        let mut key = FlowKey::from_words([u64::MAX; FLOW_U64S]);
        let (ofs, map) = extract_frame_mapped(&frame, &meta, &mut key);
        assert_eq!(
            key.nonzero_word_map() & !map,
            0,
            "tunnel and metadata words mapped"
        );
        assert_eq!(key.ct_nw_proto, 0, "every metadata word is rewritten");
        assert_eq!(
            (key.dl_type, key.dl_src, key.tp_dst),
            (ETH_TYPE_IPV4, [0; 6], 10)
        );
        assert_eq!(
            (key.recirc_id, key.tun_id, key.tun_ipv4_dst),
            (7, 42, [1, 1, 1, 1])
        );
        assert_eq!(key.packet_type, meta.packet_type.0);
        assert_eq!(ofs.l3, 0);
    }

    mod word_map {
        use super::*;
        use proptest::prelude::*;

        /// Valid frames of every parse path, to be mutated and cut.
        fn templates() -> Vec<Vec<u8>> {
            let mut arp = eth(ETH_TYPE_ARP);
            arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            arp.extend_from_slice(&[1, 2, 3, 4, 5, 6, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
            let mut vlan_mpls = DST.to_vec();
            vlan_mpls.extend_from_slice(&SRC);
            vlan_mpls.extend_from_slice(&[0x88, 0xa8, 0, 5, 0x81, 0, 0, 7, 0x88, 0x47]);
            vlan_mpls.extend_from_slice(&[0, 1, 0x40, 64, 0, 2, 0x41, 64]);
            let mut tcp6 = eth(ETH_TYPE_IPV6);
            tcp6.extend(ipv6_header(IPPROTO_TCP, 20));
            tcp6.extend(tcp(80, 8080, 5, 0x12));
            let mut igmp = eth(ETH_TYPE_IPV4);
            igmp.extend(ipv4_header(IPPROTO_IGMP, 8));
            igmp.extend_from_slice(&[0x16, 0, 0, 0, 224, 0, 0, 9]);
            vec![
                ipv4_udp_frame(),
                nd_frame(
                    ND_NEIGHBOR_ADVERT,
                    &[1, 1, 1, 2, 3, 4, 5, 6, 2, 1, 7, 8, 9, 10, 11, 12],
                ),
                arp,
                vlan_mpls,
                tcp6,
                igmp,
            ]
        }

        proptest! {
            /// The word map names every non-zero word of the key, on
            /// any path: mutated and cut frames, L3 packet types,
            /// tunnel metadata with Geneve options, conntrack metadata.
            #[test]
            fn word_map_covers_every_nonzero_word(
                which in 0usize..6,
                flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                cut in any::<usize>(),
                l3_type in any::<bool>(),
                tunnel in any::<bool>(),
                geneve_len in 0u8..40,
                ct in any::<bool>(),
            ) {
                let mut frame = templates().swap_remove(which);
                for (at, byte) in flips {
                    let at = at % frame.len();
                    frame[at] = byte;
                }
                frame.truncate(cut % (frame.len() + 1));
                let mut meta = PacketMetadata::new(7);
                if l3_type {
                    meta.packet_type = PacketType::new(PacketType::NS_ETHERTYPE, ETH_TYPE_IPV4);
                    frame.drain(..frame.len().min(14));
                }
                if tunnel {
                    meta.tunnel.ipv4_dst = [1, 1, 1, 1];
                    meta.tunnel.tun_id = 5;
                    meta.tunnel.geneve_len = geneve_len;
                    meta.tunnel.geneve_opts[..40].fill(0xab);
                }
                if ct {
                    meta.ct_state = 0x21;
                    meta.ct_label = [3; 16];
                    meta.recirc_id = 9;
                }
                let mut key = FlowKey::from_words([u64::MAX; FLOW_U64S]);
                let (_, map) = extract_frame_mapped(&frame, &meta, &mut key);
                prop_assert_eq!(key.nonzero_word_map() & !map, 0, "map {:#x} key {:?}", map, key);
                prop_assert_eq!(map & !FlowKey::ALL_WORDS, 0);
            }

            /// The Ethernet/IPv4/UDP-or-TCP fast path gives what the
            /// general parser gives, key, offsets and word map, on
            /// mutated, cut and padded frames of its own shapes (and
            /// declines the rest).
            #[test]
            fn fast_path_agrees_with_the_general_parser(
                which in 0usize..4,
                flips in prop::collection::vec((0usize..64, any::<u8>()), 0..4),
                cut in prop::option::of(any::<usize>()),
                pad in 0usize..24,
                total in prop::option::of(0usize..64),
            ) {
                let mut frame = fast_templates().swap_remove(which);
                frame.extend(std::iter::repeat_n(0xee, pad));
                if let Some(total) = total {
                    // Any IP total length, short L4 headers included.
                    let total = (total as u16).to_be_bytes();
                    frame[16..18].copy_from_slice(&total);
                }
                for (at, byte) in flips {
                    let at = at % frame.len();
                    frame[at] = byte;
                }
                if let Some(cut) = cut {
                    frame.truncate(cut % (frame.len() + 1));
                }
                let meta = PacketMetadata::new(3);
                let mut key = FlowKey::from_words([u64::MAX; FLOW_U64S]);
                let (offsets, map) = extract_frame_mapped(&frame, &meta, &mut key);
                let (g_key, g_offsets, g_map) = general_only(&frame, &meta);
                prop_assert_eq!(key, g_key);
                prop_assert_eq!(offsets, g_offsets);
                prop_assert_eq!(map, g_map);
            }
        }

        /// A frame of any template (fast-path shapes and the others),
        /// mutated and cut, with metadata of every kind.
        fn any_packet() -> impl Strategy<Value = (Vec<u8>, PacketMetadata)> {
            (
                0usize..10,
                prop::collection::vec((0usize..64, any::<u8>()), 0..3),
                prop::option::of(any::<usize>()),
                0usize..8,
                any::<u32>(),
                prop::option::of(any::<u32>()),
            )
                .prop_map(|(which, flips, cut, extra, port, nic_hash)| {
                    let mut all = fast_templates();
                    all.extend(templates());
                    let mut frame = all.swap_remove(which);
                    for (at, byte) in flips {
                        let at = at % frame.len();
                        frame[at] = byte;
                    }
                    if let Some(cut) = cut {
                        frame.truncate(cut % (frame.len() + 1));
                    }
                    let mut meta = PacketMetadata::new(port);
                    match extra {
                        1 => {
                            meta.tunnel.ipv4_dst = [1, 1, 1, 1];
                            meta.tunnel.tun_id = 5;
                            meta.tunnel.geneve_len = 8;
                            meta.tunnel.geneve_opts[..8].fill(0xab);
                        }
                        2 => {
                            meta.ct_state = 0x21;
                            meta.ct_label = [3; 16];
                            meta.recirc_id = 9;
                        }
                        3 => {
                            meta.packet_type =
                                PacketType::new(PacketType::NS_ETHERTYPE, ETH_TYPE_IPV4);
                            frame.drain(..frame.len().min(14));
                        }
                        4 => meta.pkt_mark = 0x77,
                        _ => {}
                    }
                    if let Some(hash) = nic_hash {
                        meta.rss_hash = hash;
                        meta.rss_hash_valid = true;
                    }
                    (frame, meta)
                })
        }

        proptest! {
            /// One key slot reused by a sequence of frames of mixed shapes
            /// and metadata (`extract_reusing`, each time given the map it
            /// returned last) holds, after each, exactly the key a fresh
            /// extraction into a zeroed key gives: no word of an earlier
            /// frame survives through any accessor. Same word map, header
            /// offsets and packet hash (the fast path's own 5-tuple hash
            /// is `hash_5tuple`'s; a NIC hash is kept).
            #[test]
            fn a_reused_slot_equals_a_fresh_extraction(
                seq in prop::collection::vec(any_packet(), 1..12),
            ) {
                use crate::flow::hash::packet_rss_hash;
                use crate::packet::{PacketPool, PoolConfig};
                let pool = PacketPool::new("extract-reuse", PoolConfig::heap(4));
                let mut slot = FlowKey::ZERO;
                let mut slot_map = 0;
                for (frame, meta) in seq {
                    let mut reused = pool.alloc_from(&frame).expect("pool room");
                    *reused.meta_mut() = meta.clone();
                    let mut fresh = pool.alloc_from(&frame).expect("pool room");
                    *fresh.meta_mut() = meta;
                    slot_map = extract_reusing(&mut reused, &mut slot, slot_map);
                    let mut key = FlowKey::ZERO;
                    let map = extract_mapped(&mut fresh, &mut key);
                    prop_assert_eq!(slot.words(), key.words());
                    prop_assert_eq!(slot, key);
                    prop_assert_eq!(slot_map, map);
                    prop_assert_eq!(reused.meta().offsets, fresh.meta().offsets);
                    prop_assert_eq!(
                        packet_rss_hash(&mut reused, &slot),
                        packet_rss_hash(&mut fresh, &key)
                    );
                    prop_assert_eq!(reused.meta(), fresh.meta());
                }
            }
        }

        /// The fast path of `extract_reusing` runs for the plain frames
        /// the agreement test gives it (UDP, TCP, a cut UDP header), so
        /// that test compares its whole-word writes and its hash, and the
        /// stale words of a different earlier key are cleared.
        #[test]
        fn reusing_fast_path_clears_what_the_last_key_had() {
            use crate::flow::hash::hash_5tuple;
            use crate::packet::{PacketPool, PoolConfig};
            let pool = PacketPool::new("extract-reuse", PoolConfig::heap(4));
            let [udp, tcp, ..] = <[Vec<u8>; 4]>::try_from(fast_templates()).unwrap();
            // A tagged, TCP-over-IPv6 and ND key first: many words set.
            let mut slot = FlowKey::ZERO;
            let mut slot_map = 0;
            for frame in templates().iter().chain([&tcp, &udp]) {
                let mut p = pool.alloc_from(frame).expect("pool room");
                let meta = PacketMetadata::new(3);
                *p.meta_mut() = meta.clone();
                let fast =
                    fast_reusing(frame, &mut meta.clone(), false, &mut slot.clone(), slot_map);
                slot_map = extract_reusing(&mut p, &mut slot, slot_map);
                assert_eq!(fast.is_some(), frame == &tcp || frame == &udp);
                // The general path leaves the hash to `packet_rss_hash`.
                assert_eq!(p.meta().rss_hash_valid, fast.is_some());
                if fast.is_some() {
                    assert_eq!(p.meta().rss_hash, hash_5tuple(&slot, 0));
                }
            }
            assert_eq!(slot_map, slot.nonzero_word_map(), "plain UDP: exact map");
            assert_eq!((slot.tcp_flags, slot.tp_src, slot.tp_dst), (0, 1000, 53));
            let mut cut = udp.clone();
            cut[16..18].copy_from_slice(&24u16.to_be_bytes());
            let mut p = pool.alloc_from(&cut).expect("pool room");
            slot_map = extract_reusing(&mut p, &mut slot, slot_map);
            assert_eq!((slot.tp_src, slot.tp_dst), (0, 0));
            assert_eq!(slot_map & field_words!(tp_src), 0);
            assert_eq!(p.meta().rss_hash, hash_5tuple(&slot, 0));
        }

        fn fast_templates() -> Vec<Vec<u8>> {
            let mut tcp4 = eth(ETH_TYPE_IPV4);
            tcp4.extend(ipv4_header(IPPROTO_TCP, 20));
            tcp4.extend(tcp(80, 8080, 5, 0x12));
            let mut tcp4_opts = eth(ETH_TYPE_IPV4);
            tcp4_opts.extend(ipv4_header(IPPROTO_TCP, 24));
            tcp4_opts.extend(tcp(443, 9, 6, 0x18));
            tcp4_opts.extend_from_slice(&[1, 1, 1, 0]);
            let mut icmp4 = eth(ETH_TYPE_IPV4);
            icmp4.extend(ipv4_header(IPPROTO_ICMP, 8));
            icmp4.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
            vec![ipv4_udp_frame(), tcp4, tcp4_opts, icmp4]
        }

        /// What the general parser alone makes of an Ethernet frame.
        fn general_only(frame: &[u8], meta: &PacketMetadata) -> (FlowKey, HeaderOffsets, u64) {
            let mut key = FlowKey::ZERO;
            let map = extract_metadata(meta, &mut key);
            let mut offsets = HeaderOffsets::NONE;
            let mut parser = Parser {
                frame,
                pos: 0,
                end: frame.len(),
                map,
            };
            parser.parse_general(meta.packet_type, &mut key, &mut offsets);
            (key, offsets, parser.map)
        }

        /// The agreement test compares two parsers only if the fast path
        /// runs: it takes UDP and TCP frames, padded too, and declines
        /// others.
        #[test]
        fn fast_path_takes_udp_and_tcp_and_declines_the_rest() {
            let run = |frame: &[u8]| {
                let mut key = FlowKey::ZERO;
                let mut offsets = HeaderOffsets::NONE;
                let mut parser = Parser {
                    frame,
                    pos: 0,
                    end: frame.len(),
                    map: 0,
                };
                parser.parse_eth_ipv4_fast(&mut key, &mut offsets)
            };
            let [udp, tcp, tcp_opts, icmp] = <[Vec<u8>; 4]>::try_from(fast_templates()).unwrap();
            assert!(run(&udp) && run(&tcp) && run(&tcp_opts));
            let mut padded = udp.clone();
            padded.extend_from_slice(&[0; 18]);
            assert!(run(&padded));
            assert!(!run(&icmp));
            let mut fragment = udp.clone();
            fragment[14 + 6] = 0x20; // more fragments
            assert!(!run(&fragment));
            let mut options = udp;
            options[14] = 0x46;
            assert!(!run(&options));
        }
    }
}
