//! The datapath flow key: every field a megaflow can match, in one flat,
//! fixed layout.
//!
//! # How it works
//! [`FlowKey`] is OVS's `struct flow` reduced to what the datapath matches
//! on (no OpenFlow registers or metadata). It is `#[repr(C)]`, 8-byte
//! aligned and has no implicit padding, so the same memory is also a slice
//! of [`FLOW_U64S`] 64-bit words ([`FlowKey::words`]). The classifier and
//! the caches never look at fields: they hash and compare words, and a mask
//! is simply another `FlowKey` whose set bits say which key bits matter.
//! Field order groups the words the way a megaflow tends to use them
//! (tunnel, metadata, L2, L3, L4), so a typical mask touches few words.
//!
//! # Representation
//! Addresses are kept as the bytes on the wire (`[u8; 4]`, `[u8; 6]`,
//! `[u8; 16]`); all other multi-byte fields are host-order integers. A key
//! and its mask always use the same representation, so masking works
//! bit-for-bit whatever the order.
//!
//! Conventions inherited from OVS so the ODP flow text maps one to one:
//! - `dl_type` is [`ETH_TYPE_NONE`] (0x05ff) for an 802.2 frame without a
//!   SNAP Ethernet header.
//! - `vlans[i].tci` has the CFI/DEI bit (0x1000) set when that tag is
//!   present, so a present tag with TCI 0 differs from no tag.
//! - ARP reuses `nw_src`/`nw_dst` (SPA/TPA), `nw_proto` (opcode, when it
//!   fits in 8 bits), `arp_sha`/`arp_tha`.
//! - ICMP, ICMPv6 and IGMP put type and code in `tp_src` and `tp_dst`.
//! - Neighbour Discovery uses `nd_target`, `arp_sha` (SLL), `arp_tha`
//!   (TLL), `nd_options_type` and `nd_reserved`.
//!
//! Geneve options are kept raw, as received (OVS's "UDPIF" form): up to
//! [`GENEVE_KEY_OPTS`] bytes of TLVs in `tun_geneve`, their length in
//! `tun_geneve_len`. That is four words, zero for every packet that is
//! not Geneve with options, and they cost neither the EMC (it compares
//! only the words of the keys' word maps, see `extract`) nor the megaflow
//! classifier (a subtable hashes only the words its mask uses, and a
//! megaflow's mask covers options only when a rule looked at
//! `tun_metadataN`). Longer option lists are not put in the key
//! (see `execute::tunnel` for what happens to them). NSH and ERSPAN are
//! not part of the key yet.
//!
//! # Invariants
//! - `size_of::<FlowKey>() == FLOW_U64S * 8`, checked at compile time.
//! - A key built by extraction has zero in every field the packet does not
//!   carry, so equal packets give equal keys word for word.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Number of 64-bit words in a [`FlowKey`].
pub const FLOW_U64S: usize = 41;

/// Bytes of Geneve options the key holds (`tun_geneve`).
pub const GENEVE_KEY_OPTS: usize = 32;

/// OVS's "no Ethernet type": an 802.2 frame without a SNAP Ethernet header.
pub const ETH_TYPE_NONE: u16 = 0x05ff;
/// The smallest value of the Ethernet type/length field that is a type.
pub const ETH_TYPE_MIN: u16 = 0x0600;
pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_RARP: u16 = 0x8035;
pub const ETH_TYPE_VLAN_8021Q: u16 = 0x8100;
pub const ETH_TYPE_VLAN_8021AD: u16 = 0x88a8;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_MPLS: u16 = 0x8847;
pub const ETH_TYPE_MPLS_MCAST: u16 = 0x8848;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IGMP: u8 = 2;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;
pub const IPPROTO_SCTP: u8 = 132;

/// `nw_frag` bit: the packet is a fragment (first or later).
pub const FLOW_NW_FRAG_ANY: u8 = 1;
/// `nw_frag` bit: the packet is a fragment other than the first.
pub const FLOW_NW_FRAG_LATER: u8 = 2;
/// `vlans[i].tci` bit marking a present tag (OVS's VLAN_CFI).
pub const VLAN_CFI: u16 = 0x1000;
/// Most MPLS label stack entries kept in the key (OVS FLOW_MAX_MPLS_LABELS).
pub const FLOW_MAX_MPLS_LABELS: usize = 3;
/// Most VLAN headers kept in the key (802.1ad outer + 802.1Q inner).
pub const FLOW_MAX_VLAN_HEADERS: usize = 2;

/// One VLAN header as matched: the TPID and the TCI (with [`VLAN_CFI`] set
/// when present).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VlanHeader {
    pub tpid: u16,
    pub tci: u16,
}

impl VlanHeader {
    /// True when this slot holds a tag.
    pub fn is_present(&self) -> bool {
        self.tci & VLAN_CFI != 0
    }
    /// The 12-bit VLAN id.
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
    /// The 3-bit priority code point.
    pub fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }
}

/// The datapath flow key (see the module documentation for the layout
/// rules). Field offsets are part of the layout contract: reorder fields
/// only together with [`FLOW_U64S`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(8))]
pub struct FlowKey {
    // ---- tunnel metadata (bytes 0..64)
    pub tun_id: u64,
    pub tun_ipv4_src: [u8; 4],
    pub tun_ipv4_dst: [u8; 4],
    pub tun_ipv6_src: [u8; 16],
    pub tun_ipv6_dst: [u8; 16],
    /// OVS `FLOW_TNL_F_*` bits: don't-fragment, checksum, OAM, key.
    pub tun_flags: u16,
    pub tun_tos: u8,
    pub tun_ttl: u8,
    pub tun_tp_src: u16,
    pub tun_tp_dst: u16,
    pub tun_gbp_id: u16,
    pub tun_gbp_flags: u8,
    /// Bytes of Geneve options in `tun_geneve` (0..=[`GENEVE_KEY_OPTS`]);
    /// a mask has 0xff here when it matches on options.
    pub tun_geneve_len: u8,
    pub pad_tun: [u8; 4],
    /// Raw Geneve option TLVs (class, type, length, data), zero-padded.
    pub tun_geneve: [u8; GENEVE_KEY_OPTS],

    // ---- packet metadata (bytes 96..192)
    pub skb_priority: u32,
    pub pkt_mark: u32,
    pub dp_hash: u32,
    pub in_port: u32,
    pub recirc_id: u32,
    pub ct_mark: u32,
    pub ct_state: u8,
    pub ct_nw_proto: u8,
    pub ct_zone: u16,
    /// `(namespace << 16) | type`; 0 is Ethernet.
    pub packet_type: u32,
    pub ct_label: [u8; 16],
    pub ct_nw_src: [u8; 4],
    pub ct_nw_dst: [u8; 4],
    pub ct_ipv6_src: [u8; 16],
    pub ct_ipv6_dst: [u8; 16],
    pub ct_tp_src: u16,
    pub ct_tp_dst: u16,
    pub pad_ct: [u8; 4],

    // ---- L2 and L2.5 (bytes 192..232)
    pub dl_dst: [u8; 6],
    pub dl_src: [u8; 6],
    pub dl_type: u16,
    pub pad_dl: [u8; 2],
    pub vlans: [VlanHeader; FLOW_MAX_VLAN_HEADERS],
    pub mpls_lse: [u32; FLOW_MAX_MPLS_LABELS],
    pub pad_mpls: [u8; 4],

    // ---- L3, ARP and ND (bytes 232..308)
    pub nw_src: [u8; 4],
    pub nw_dst: [u8; 4],
    pub ipv6_src: [u8; 16],
    pub ipv6_dst: [u8; 16],
    /// The 20-bit IPv6 flow label.
    pub ipv6_label: u32,
    pub nw_frag: u8,
    /// The whole TOS / traffic class byte (DSCP and ECN).
    pub nw_tos: u8,
    pub nw_ttl: u8,
    pub nw_proto: u8,
    pub nd_target: [u8; 16],
    pub arp_sha: [u8; 6],
    pub arp_tha: [u8; 6],

    // ---- L4 (bytes 308..328)
    /// The low 12 bits of the TCP header's flags field.
    pub tcp_flags: u16,
    /// Type of the first ND link-layer address option seen (1 or 2), or 0.
    pub nd_options_type: u8,
    pub pad_l4: u8,
    pub tp_src: u16,
    pub tp_dst: u16,
    pub igmp_group_ip4: [u8; 4],
    /// The 32-bit ND "reserved" word (router/solicited/override flags).
    pub nd_reserved: u32,
    pub pad_end: [u8; 4],
}

const _: () = assert!(size_of::<FlowKey>() == FLOW_U64S * 8);
const _: () = assert!(align_of::<FlowKey>() == 8);
const _: () = assert!(FLOW_U64S <= 64, "word maps are u64 bitmaps");

impl Default for FlowKey {
    fn default() -> Self {
        Self::ZERO
    }
}

impl FlowKey {
    /// The all-zero key (and the all-wildcard mask).
    pub const ZERO: FlowKey = zeroed();

    /// The key as 64-bit words, for hashing and masked comparison.
    #[inline]
    pub fn words(&self) -> &[u64; FLOW_U64S] {
        zerocopy::transmute_ref!(self)
    }

    /// The key as mutable 64-bit words.
    #[inline]
    pub fn words_mut(&mut self) -> &mut [u64; FLOW_U64S] {
        zerocopy::transmute_mut!(self)
    }

    /// Builds a key from raw words (the inverse of [`FlowKey::words`]).
    #[inline]
    pub fn from_words(words: [u64; FLOW_U64S]) -> FlowKey {
        zerocopy::transmute!(words)
    }

    /// Bitmap of the words that are not zero (bit `i` = word `i`).
    #[inline]
    pub fn nonzero_word_map(&self) -> u64 {
        let mut map = 0u64;
        for (i, w) in self.words().iter().enumerate() {
            map |= u64::from(*w != 0) << i;
        }
        map
    }

    /// Bitmap of every word (bits `0..FLOW_U64S`).
    pub const ALL_WORDS: u64 = u64::MAX >> (64 - FLOW_U64S);

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = [0u64; FLOW_U64S];
        for ((o, k), m) in out.iter_mut().zip(self.words()).zip(mask.words()) {
            *o = k & m;
        }
        FlowKey::from_words(out)
    }

    /// True when `self & mask == masked_key` (where `masked_key` is already
    /// masked).
    #[inline]
    pub fn matches_masked(&self, mask: &FlowKey, masked_key: &FlowKey) -> bool {
        self.words()
            .iter()
            .zip(mask.words())
            .zip(masked_key.words())
            .all(|((k, m), mk)| k & m == *mk)
    }

    /// The key with every field set to all ones (an exact-match mask).
    pub fn exact_mask() -> FlowKey {
        let mut mask = FlowKey::from_words([u64::MAX; FLOW_U64S]);
        mask.clear_padding();
        mask
    }

    /// Zeroes the explicit padding fields, which never carry meaning.
    pub fn clear_padding(&mut self) {
        self.pad_tun = [0; 4];
        self.pad_ct = [0; 4];
        self.pad_dl = [0; 2];
        self.pad_mpls = [0; 4];
        self.pad_l4 = 0;
        self.pad_end = [0; 4];
    }

    /// True when the packet described by this key is Ethernet
    /// (`packet_type` namespace 0, type 0).
    pub fn is_ethernet(&self) -> bool {
        self.packet_type == 0
    }

    /// True when `dl_type` is IPv4 or IPv6.
    pub fn is_ip_any(&self) -> bool {
        self.dl_type == ETH_TYPE_IPV4 || self.dl_type == ETH_TYPE_IPV6
    }
}

/// Bitmap of the key words that bytes `offset..offset + len` of a
/// [`FlowKey`] lie in (bit `i` = word `i`); `len` must not be 0.
pub const fn words_of_bytes(offset: usize, len: usize) -> u64 {
    let first = offset / 8;
    let last = (offset + len - 1) / 8;
    ((u64::MAX >> (63 - last)) >> first) << first
}

/// Bitmap of the key words a [`FlowKey`] field lies in, a constant:
/// `field_words!(nw_src, nw_dst)` is the words of both fields.
macro_rules! field_words {
    ($($field:ident),+ $(,)?) => {
        0u64 $(| $crate::flow::key::words_of_bytes(
            ::core::mem::offset_of!($crate::flow::FlowKey, $field),
            ::core::mem::size_of_val(&$crate::flow::FlowKey::ZERO.$field),
        ))+
    };
}
pub(crate) use field_words;

const fn zeroed() -> FlowKey {
    FlowKey {
        tun_id: 0,
        tun_ipv4_src: [0; 4],
        tun_ipv4_dst: [0; 4],
        tun_ipv6_src: [0; 16],
        tun_ipv6_dst: [0; 16],
        tun_flags: 0,
        tun_tos: 0,
        tun_ttl: 0,
        tun_tp_src: 0,
        tun_tp_dst: 0,
        tun_gbp_id: 0,
        tun_gbp_flags: 0,
        tun_geneve_len: 0,
        pad_tun: [0; 4],
        tun_geneve: [0; GENEVE_KEY_OPTS],
        skb_priority: 0,
        pkt_mark: 0,
        dp_hash: 0,
        in_port: 0,
        recirc_id: 0,
        ct_mark: 0,
        ct_state: 0,
        ct_nw_proto: 0,
        ct_zone: 0,
        packet_type: 0,
        ct_label: [0; 16],
        ct_nw_src: [0; 4],
        ct_nw_dst: [0; 4],
        ct_ipv6_src: [0; 16],
        ct_ipv6_dst: [0; 16],
        ct_tp_src: 0,
        ct_tp_dst: 0,
        pad_ct: [0; 4],
        dl_dst: [0; 6],
        dl_src: [0; 6],
        dl_type: 0,
        pad_dl: [0; 2],
        vlans: [VlanHeader { tpid: 0, tci: 0 }; FLOW_MAX_VLAN_HEADERS],
        mpls_lse: [0; FLOW_MAX_MPLS_LABELS],
        pad_mpls: [0; 4],
        nw_src: [0; 4],
        nw_dst: [0; 4],
        ipv6_src: [0; 16],
        ipv6_dst: [0; 16],
        ipv6_label: 0,
        nw_frag: 0,
        nw_tos: 0,
        nw_ttl: 0,
        nw_proto: 0,
        nd_target: [0; 16],
        arp_sha: [0; 6],
        arp_tha: [0; 6],
        tcp_flags: 0,
        nd_options_type: 0,
        pad_l4: 0,
        tp_src: 0,
        tp_dst: 0,
        igmp_group_ip4: [0; 4],
        nd_reserved: 0,
        pad_end: [0; 4],
    }
}

impl std::fmt::Debug for FlowKey {
    /// Prints only the non-zero fields, which is what a human wants to see.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let zero = FlowKey::ZERO;
        let mut s = f.debug_struct("FlowKey");
        macro_rules! nz {
            ($($field:ident),* $(,)?) => {
                $(if self.$field != zero.$field { s.field(stringify!($field), &self.$field); })*
            };
        }
        nz!(
            tun_id,
            tun_ipv4_src,
            tun_ipv4_dst,
            tun_ipv6_src,
            tun_ipv6_dst,
            tun_flags,
            tun_tos,
            tun_ttl,
            tun_tp_src,
            tun_tp_dst,
            tun_gbp_id,
            tun_gbp_flags,
            tun_geneve_len,
            tun_geneve,
            skb_priority,
            pkt_mark,
            dp_hash,
            in_port,
            recirc_id,
            ct_mark,
            ct_state,
            ct_nw_proto,
            ct_zone,
            packet_type,
            ct_label,
            ct_nw_src,
            ct_nw_dst,
            ct_ipv6_src,
            ct_ipv6_dst,
            ct_tp_src,
            ct_tp_dst,
            dl_dst,
            dl_src,
            dl_type,
            vlans,
            mpls_lse,
            nw_src,
            nw_dst,
            ipv6_src,
            ipv6_dst,
            ipv6_label,
            nw_frag,
            nw_tos,
            nw_ttl,
            nw_proto,
            nd_target,
            arp_sha,
            arp_tha,
            tcp_flags,
            nd_options_type,
            tp_src,
            tp_dst,
            igmp_group_ip4,
            nd_reserved,
        );
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_alias_fields() {
        let mut key = FlowKey::ZERO;
        key.in_port = 7;
        key.tp_dst = 80;
        let words = *key.words();
        assert_eq!(FlowKey::from_words(words), key);
        assert_eq!(key.nonzero_word_map().count_ones(), 2);
        key.words_mut()[0] = 0x1234;
        assert_eq!(key.tun_id, 0x1234);
    }

    #[test]
    fn masking_keeps_only_mask_bits() {
        let mut key = FlowKey::ZERO;
        key.nw_src = [10, 1, 2, 3];
        key.tp_src = 1234;
        let mut mask = FlowKey::ZERO;
        mask.nw_src = [255, 255, 0, 0];
        let masked = key.masked(&mask);
        assert_eq!(masked.nw_src, [10, 1, 0, 0]);
        assert_eq!(masked.tp_src, 0);
        assert!(key.matches_masked(&mask, &masked));
        let mut other = key;
        other.nw_src = [10, 2, 2, 3];
        assert!(!other.matches_masked(&mask, &masked));
    }

    #[test]
    fn field_words_name_the_words_a_field_lies_in() {
        let mut key = FlowKey::ZERO;
        key.nd_target = [1; 16];
        assert_eq!(field_words!(nd_target), key.nonzero_word_map());
        assert_eq!(field_words!(nd_target).count_ones(), 2);
        key = FlowKey::ZERO;
        key.tp_src = 1;
        key.in_port = 1;
        assert_eq!(field_words!(tp_src, in_port), key.nonzero_word_map());
        assert_eq!(words_of_bytes(0, FLOW_U64S * 8), FlowKey::ALL_WORDS);
        assert_eq!(words_of_bytes(7, 2), 0b11);
    }

    #[test]
    fn exact_mask_has_no_padding_bits() {
        let mask = FlowKey::exact_mask();
        assert_eq!(mask.pad_end, [0; 4]);
        assert_eq!(mask.in_port, u32::MAX);
        assert_eq!(mask.nd_reserved, u32::MAX);
    }
}
