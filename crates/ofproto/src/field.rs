//! The OpenFlow view of a packet ([`OfFlow`]) and the fields rules can
//! match and actions can write ([`Field`]).
//!
//! # What it is
//! [`OfFlow`] is the datapath [`FlowKey`] plus the pipeline-only state
//! OpenFlow adds: `metadata` and the registers `reg0`..`reg7`. During
//! translation `key.in_port` holds the *OpenFlow* port number (the port
//! table maps it from and back to the datapath number); everything else
//! keeps the FlowKey conventions (VLAN TCI with the CFI bit, ARP reusing
//! `nw_*`, ICMP type/code in `tp_src`/`tp_dst`).
//!
//! A mask is another `OfFlow`, so masking, or-ing wildcards and hashing
//! work on [`OfFlow::words`] without knowing fields.
//!
//! [`Field`] names one matchable or writable field by its storage: `get`
//! and `set` read and write its bits (as a `u128`) in any `OfFlow`,
//! whether it holds values or mask bits. Aliases that share storage
//! (`nw_src`/`arp_spa`, `tp_src`/`icmp_type`) are separate fields with
//! separate prerequisites, as in OVS's `meta-flow`.

use dp_core::flow::FlowKey;
use dp_core::flow::key::*;

/// Number of OpenFlow registers (`reg0`..`reg7`).
pub const N_REGS: usize = 8;
/// Number of Geneve option fields (`tun_metadata0`..`tun_metadata7`),
/// each up to 8 bytes of option data (see `crate::tlv_map`).
pub const N_TUN_METADATA: usize = 8;
/// Words in an [`OfFlow`]: the FlowKey, metadata, two registers a word,
/// the `tun_metadata` values and their presence bitmap.
pub const OF_U64S: usize = FLOW_U64S + 1 + N_REGS / 2 + N_TUN_METADATA + 1;

/// A packet as the OpenFlow pipeline sees it (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OfFlow {
    pub key: FlowKey,
    pub metadata: u64,
    pub regs: [u32; N_REGS],
    /// Geneve option data mapped by the bridge's TLV map, right-aligned
    /// (`tun_metadata0=0x1234` of a 4-byte option is `0x1234`).
    pub tun_metadata: [u64; N_TUN_METADATA],
    /// Bit `i`: `tun_metadata<i>` is present (in a mask: must be).
    pub tun_metadata_present: u64,
}

impl OfFlow {
    /// All zero: the empty flow and the match-everything mask.
    pub const ZERO: OfFlow = OfFlow {
        key: FlowKey::ZERO,
        metadata: 0,
        regs: [0; N_REGS],
        tun_metadata: [0; N_TUN_METADATA],
        tun_metadata_present: 0,
    };

    /// A flow with the given key and zero metadata and registers.
    pub fn from_key(key: FlowKey) -> OfFlow {
        OfFlow {
            key,
            ..OfFlow::ZERO
        }
    }

    /// The flow as words, for hashing and masking.
    pub fn words(&self) -> [u64; OF_U64S] {
        let mut w = [0u64; OF_U64S];
        w[..FLOW_U64S].copy_from_slice(self.key.words());
        w[FLOW_U64S] = self.metadata;
        for i in 0..N_REGS / 2 {
            w[FLOW_U64S + 1 + i] =
                u64::from(self.regs[2 * i]) | (u64::from(self.regs[2 * i + 1]) << 32);
        }
        let tm = FLOW_U64S + 1 + N_REGS / 2;
        w[tm..tm + N_TUN_METADATA].copy_from_slice(&self.tun_metadata);
        w[tm + N_TUN_METADATA] = self.tun_metadata_present;
        w
    }

    /// The inverse of [`OfFlow::words`].
    pub fn from_words(w: &[u64; OF_U64S]) -> OfFlow {
        let mut kw = [0u64; FLOW_U64S];
        kw.copy_from_slice(&w[..FLOW_U64S]);
        let mut regs = [0u32; N_REGS];
        for i in 0..N_REGS / 2 {
            let x = w[FLOW_U64S + 1 + i];
            regs[2 * i] = x as u32;
            regs[2 * i + 1] = (x >> 32) as u32;
        }
        let tm = FLOW_U64S + 1 + N_REGS / 2;
        let mut tun_metadata = [0u64; N_TUN_METADATA];
        tun_metadata.copy_from_slice(&w[tm..tm + N_TUN_METADATA]);
        OfFlow {
            key: FlowKey::from_words(kw),
            metadata: w[FLOW_U64S],
            regs,
            tun_metadata,
            tun_metadata_present: w[tm + N_TUN_METADATA],
        }
    }

    /// Word `i` of [`OfFlow::words`], read in place (no copy of the
    /// other words). `i` must be below [`OF_U64S`].
    #[inline]
    pub fn word(&self, i: usize) -> u64 {
        if i < FLOW_U64S {
            return self.key.words()[i];
        }
        let j = i - FLOW_U64S;
        if j == 0 {
            self.metadata
        } else if j <= N_REGS / 2 {
            let r = 2 * (j - 1);
            u64::from(self.regs[r]) | (u64::from(self.regs[r + 1]) << 32)
        } else if j <= N_REGS / 2 + N_TUN_METADATA {
            self.tun_metadata[j - 1 - N_REGS / 2]
        } else {
            self.tun_metadata_present
        }
    }

    /// Ors `bits` into word `i` of [`OfFlow::words`] in place (adding
    /// one word of a mask without touching the others). `i` must be below
    /// [`OF_U64S`].
    #[inline]
    pub fn or_word(&mut self, i: usize, bits: u64) {
        if i < FLOW_U64S {
            self.key.words_mut()[i] |= bits;
            return;
        }
        let j = i - FLOW_U64S;
        if j == 0 {
            self.metadata |= bits;
        } else if j <= N_REGS / 2 {
            let r = 2 * (j - 1);
            self.regs[r] |= bits as u32;
            self.regs[r + 1] |= (bits >> 32) as u32;
        } else if j <= N_REGS / 2 + N_TUN_METADATA {
            self.tun_metadata[j - 1 - N_REGS / 2] |= bits;
        } else {
            self.tun_metadata_present |= bits;
        }
    }

    /// Applies a bitwise `f` to every field of `self` and `other` in
    /// place. Translation masks and or-s flows on every lookup; going
    /// through [`OfFlow::words`] would copy both flows and rebuild the
    /// result (three whole-flow copies per operation).
    #[inline]
    fn zip_assign(&mut self, other: &OfFlow, f: impl Fn(u64, u64) -> u64) {
        for (a, b) in self.key.words_mut().iter_mut().zip(other.key.words()) {
            *a = f(*a, *b);
        }
        self.metadata = f(self.metadata, other.metadata);
        // A bitwise operation on zero-extended halves stays within 32
        // bits, so the truncation loses nothing.
        for (a, b) in self.regs.iter_mut().zip(&other.regs) {
            *a = f(u64::from(*a), u64::from(*b)) as u32;
        }
        for (a, b) in self.tun_metadata.iter_mut().zip(&other.tun_metadata) {
            *a = f(*a, *b);
        }
        self.tun_metadata_present = f(self.tun_metadata_present, other.tun_metadata_present);
    }

    /// True when `f` holds for every pair of corresponding words.
    #[inline]
    fn all_words(&self, other: &OfFlow, f: impl Fn(u64, u64) -> bool) -> bool {
        (0..OF_U64S).all(|i| f(self.word(i), other.word(i)))
    }

    /// `self & mask`.
    pub fn masked(&self, mask: &OfFlow) -> OfFlow {
        let mut out = *self;
        out.zip_assign(mask, |a, b| a & b);
        out
    }

    /// `self | other` (union of two masks).
    pub fn or(&self, other: &OfFlow) -> OfFlow {
        let mut out = *self;
        out.or_assign(other);
        out
    }

    /// Adds `other`'s bits to this mask.
    pub fn or_assign(&mut self, other: &OfFlow) {
        self.zip_assign(other, |a, b| a | b);
    }

    /// True when every set bit of `self` is also set in `other`.
    pub fn is_subset_of(&self, other: &OfFlow) -> bool {
        self.all_words(other, |a, b| a & !b == 0)
    }

    /// True when no bit is set.
    pub fn is_zero(&self) -> bool {
        (0..OF_U64S).all(|i| self.word(i) == 0)
    }

    /// True when `self` and `other` agree on every bit of `mask`.
    pub fn equal_in(&self, other: &OfFlow, mask: &OfFlow) -> bool {
        (0..OF_U64S).all(|i| (self.word(i) ^ other.word(i)) & mask.word(i) == 0)
    }
}

/// What must hold for a field to be meaningful (OVS `mf_prereqs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prereq {
    None,
    /// IPv4.
    Ip,
    /// IPv6.
    Ipv6,
    /// IPv4 or IPv6.
    IpAny,
    /// ARP or RARP.
    Arp,
    /// TCP, UDP or SCTP over IPv4 or IPv6.
    L4,
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// ICMP over IPv4.
    Icmp,
    /// ICMPv6.
    Icmp6,
    /// ICMP over IPv4 or ICMPv6 (ofctl's `icmp_type` works for both).
    IcmpAny,
    /// ICMPv6 neighbour solicitation or advertisement.
    Nd,
    /// ICMPv6 neighbour solicitation.
    NdSolicit,
    /// ICMPv6 neighbour advertisement.
    NdAdvert,
}

impl Prereq {
    /// How a user writes this prerequisite, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Prereq::None => "nothing",
            Prereq::Ip => "ip",
            Prereq::Ipv6 => "ipv6",
            Prereq::IpAny => "ip or ipv6",
            Prereq::Arp => "arp or rarp",
            Prereq::L4 => "tcp, udp or sctp (or their ipv6 forms)",
            Prereq::Tcp => "tcp or tcp6",
            Prereq::Icmp => "icmp",
            Prereq::Icmp6 => "icmp6",
            Prereq::IcmpAny => "icmp or icmp6",
            Prereq::Nd => "icmp6 with icmp_type=135 or 136",
            Prereq::NdSolicit => "icmp6 with icmp_type=135",
            Prereq::NdAdvert => "icmp6 with icmp_type=136",
        }
    }
}

/// How a field's value is written in ofctl syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// Decimal or `0x` hex integer.
    Int,
    /// `aa:bb:cc:dd:ee:ff`.
    Mac,
    /// Dotted quad, with `/plen` or `/mask`.
    Ipv4,
    /// IPv6 text, with `/plen` or `/mask`.
    Ipv6,
    /// `no`, `yes`, `first`, `later`, `not_later`.
    Frag,
    /// Integer or `+syn-ack` flag syntax.
    TcpFlags,
    /// OpenFlow port number or name.
    Port,
}

/// One field (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    InPort,
    EthSrc,
    EthDst,
    EthType,
    VlanTci,
    VlanVid,
    VlanPcp,
    IpSrc,
    IpDst,
    IpProto,
    /// The whole TOS byte's DSCP bits in place (`nw_tos`, multiple of 4).
    NwTos,
    /// DSCP shifted down (`ip_dscp`, 0..63).
    IpDscp,
    IpEcn,
    NwTtl,
    IpFrag,
    TpSrc,
    TpDst,
    TcpFlags,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    IcmpType,
    IcmpCode,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    NdSll,
    NdTll,
    Metadata,
    Reg(u8),
    TunId,
    TunSrc,
    TunDst,
    /// `tun_ipv6_src`/`tun_ipv6_dst`: the outer IPv6 addresses of a
    /// tunnel packet (received) or to send with (`remote_ip=flow`).
    TunIpv6Src,
    TunIpv6Dst,
    PktMark,
    /// `tun_metadata<i>`: a Geneve option the TLV map names. Its presence
    /// bit is kept by [`crate::Match::set`] and translation, not here.
    TunMetadata(u8),
}

/// Every field, for parsers and property tests.
pub const ALL_FIELDS: &[Field] = &[
    Field::InPort,
    Field::EthSrc,
    Field::EthDst,
    Field::EthType,
    Field::VlanTci,
    Field::VlanVid,
    Field::VlanPcp,
    Field::IpSrc,
    Field::IpDst,
    Field::IpProto,
    Field::NwTos,
    Field::IpDscp,
    Field::IpEcn,
    Field::NwTtl,
    Field::IpFrag,
    Field::TpSrc,
    Field::TpDst,
    Field::TcpFlags,
    Field::ArpOp,
    Field::ArpSpa,
    Field::ArpTpa,
    Field::ArpSha,
    Field::ArpTha,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::Ipv6Label,
    Field::IcmpType,
    Field::IcmpCode,
    Field::Icmpv6Type,
    Field::Icmpv6Code,
    Field::NdTarget,
    Field::NdSll,
    Field::NdTll,
    Field::Metadata,
    Field::Reg(0),
    Field::Reg(1),
    Field::Reg(2),
    Field::Reg(3),
    Field::Reg(4),
    Field::Reg(5),
    Field::Reg(6),
    Field::Reg(7),
    Field::TunId,
    Field::TunSrc,
    Field::TunDst,
    Field::TunIpv6Src,
    Field::TunIpv6Dst,
    Field::PktMark,
    Field::TunMetadata(0),
    Field::TunMetadata(1),
    Field::TunMetadata(2),
    Field::TunMetadata(3),
    Field::TunMetadata(4),
    Field::TunMetadata(5),
    Field::TunMetadata(6),
    Field::TunMetadata(7),
];

fn mac_u(m: &[u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, b| (a << 8) | u128::from(*b))
}
fn u_mac(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[10..16]);
    m
}
fn ip4_u(a: &[u8; 4]) -> u128 {
    u128::from(u32::from_be_bytes(*a))
}
fn u_ip4(v: u128) -> [u8; 4] {
    (v as u32).to_be_bytes()
}

/// Replaces the bits of `old` under `mask` with `new << shift`.
fn put_bits<T>(old: T, new: u128, shift: u32, width: u32) -> T
where
    T: Into<u128> + TryFrom<u128>,
    <T as TryFrom<u128>>::Error: std::fmt::Debug,
{
    let mask = ((1u128 << width) - 1) << shift;
    let v = (old.into() & !mask) | ((new << shift) & mask);
    // The value fits: it is built from `old`'s width and masked bits.
    T::try_from(v).unwrap_or_else(|_| unreachable!("bit field fits its storage"))
}

impl Field {
    /// The canonical ofctl name.
    pub fn name(self) -> &'static str {
        match self {
            Field::InPort => "in_port",
            Field::EthSrc => "dl_src",
            Field::EthDst => "dl_dst",
            Field::EthType => "dl_type",
            Field::VlanTci => "vlan_tci",
            Field::VlanVid => "dl_vlan",
            Field::VlanPcp => "dl_vlan_pcp",
            Field::IpSrc => "nw_src",
            Field::IpDst => "nw_dst",
            Field::IpProto => "nw_proto",
            Field::NwTos => "nw_tos",
            Field::IpDscp => "ip_dscp",
            Field::IpEcn => "nw_ecn",
            Field::NwTtl => "nw_ttl",
            Field::IpFrag => "nw_frag",
            Field::TpSrc => "tp_src",
            Field::TpDst => "tp_dst",
            Field::TcpFlags => "tcp_flags",
            Field::ArpOp => "arp_op",
            Field::ArpSpa => "arp_spa",
            Field::ArpTpa => "arp_tpa",
            Field::ArpSha => "arp_sha",
            Field::ArpTha => "arp_tha",
            Field::Ipv6Src => "ipv6_src",
            Field::Ipv6Dst => "ipv6_dst",
            Field::Ipv6Label => "ipv6_label",
            Field::IcmpType => "icmp_type",
            Field::IcmpCode => "icmp_code",
            Field::Icmpv6Type => "icmpv6_type",
            Field::Icmpv6Code => "icmpv6_code",
            Field::NdTarget => "nd_target",
            Field::NdSll => "nd_sll",
            Field::NdTll => "nd_tll",
            Field::Metadata => "metadata",
            Field::Reg(0) => "reg0",
            Field::Reg(1) => "reg1",
            Field::Reg(2) => "reg2",
            Field::Reg(3) => "reg3",
            Field::Reg(4) => "reg4",
            Field::Reg(5) => "reg5",
            Field::Reg(6) => "reg6",
            Field::Reg(_) => "reg7",
            Field::TunId => "tun_id",
            Field::TunSrc => "tun_src",
            Field::TunDst => "tun_dst",
            Field::TunIpv6Src => "tun_ipv6_src",
            Field::TunIpv6Dst => "tun_ipv6_dst",
            Field::PktMark => "pkt_mark",
            Field::TunMetadata(0) => "tun_metadata0",
            Field::TunMetadata(1) => "tun_metadata1",
            Field::TunMetadata(2) => "tun_metadata2",
            Field::TunMetadata(3) => "tun_metadata3",
            Field::TunMetadata(4) => "tun_metadata4",
            Field::TunMetadata(5) => "tun_metadata5",
            Field::TunMetadata(6) => "tun_metadata6",
            Field::TunMetadata(_) => "tun_metadata7",
        }
    }

    /// The NXM/OXM name used by `load` and `move` output.
    pub fn nxm_name(self) -> Option<&'static str> {
        Some(match self {
            Field::InPort => "NXM_OF_IN_PORT",
            Field::EthSrc => "NXM_OF_ETH_SRC",
            Field::EthDst => "NXM_OF_ETH_DST",
            Field::EthType => "NXM_OF_ETH_TYPE",
            Field::VlanTci => "NXM_OF_VLAN_TCI",
            Field::IpSrc => "NXM_OF_IP_SRC",
            Field::IpDst => "NXM_OF_IP_DST",
            Field::IpProto => "NXM_OF_IP_PROTO",
            Field::NwTos => "NXM_OF_IP_TOS",
            Field::IpEcn => "NXM_NX_IP_ECN",
            Field::NwTtl => "NXM_NX_IP_TTL",
            Field::TpSrc => "NXM_OF_TCP_SRC",
            Field::TpDst => "NXM_OF_TCP_DST",
            Field::TcpFlags => "NXM_NX_TCP_FLAGS",
            Field::ArpOp => "NXM_OF_ARP_OP",
            Field::ArpSpa => "NXM_OF_ARP_SPA",
            Field::ArpTpa => "NXM_OF_ARP_TPA",
            Field::ArpSha => "NXM_NX_ARP_SHA",
            Field::ArpTha => "NXM_NX_ARP_THA",
            Field::Ipv6Src => "NXM_NX_IPV6_SRC",
            Field::Ipv6Dst => "NXM_NX_IPV6_DST",
            Field::Ipv6Label => "NXM_NX_IPV6_LABEL",
            Field::IcmpType => "NXM_OF_ICMP_TYPE",
            Field::IcmpCode => "NXM_OF_ICMP_CODE",
            Field::Icmpv6Type => "NXM_NX_ICMPV6_TYPE",
            Field::Icmpv6Code => "NXM_NX_ICMPV6_CODE",
            Field::NdTarget => "NXM_NX_ND_TARGET",
            Field::NdSll => "NXM_NX_ND_SLL",
            Field::NdTll => "NXM_NX_ND_TLL",
            Field::Metadata => "OXM_OF_METADATA",
            Field::Reg(0) => "NXM_NX_REG0",
            Field::Reg(1) => "NXM_NX_REG1",
            Field::Reg(2) => "NXM_NX_REG2",
            Field::Reg(3) => "NXM_NX_REG3",
            Field::Reg(4) => "NXM_NX_REG4",
            Field::Reg(5) => "NXM_NX_REG5",
            Field::Reg(6) => "NXM_NX_REG6",
            Field::Reg(_) => "NXM_NX_REG7",
            Field::TunId => "NXM_NX_TUN_ID",
            Field::TunSrc => "NXM_NX_TUN_IPV4_SRC",
            Field::TunDst => "NXM_NX_TUN_IPV4_DST",
            Field::TunIpv6Src => "NXM_NX_TUN_IPV6_SRC",
            Field::TunIpv6Dst => "NXM_NX_TUN_IPV6_DST",
            Field::PktMark => "NXM_NX_PKT_MARK",
            Field::TunMetadata(_) => return None,
            Field::VlanVid | Field::VlanPcp | Field::IpDscp | Field::IpFrag => return None,
        })
    }

    /// Looks a field up by any of its ofctl or NXM names.
    pub fn from_name(name: &str) -> Option<Field> {
        let f = match name {
            "in_port" => Field::InPort,
            "dl_src" | "eth_src" => Field::EthSrc,
            "dl_dst" | "eth_dst" => Field::EthDst,
            "dl_type" | "eth_type" => Field::EthType,
            "vlan_tci" => Field::VlanTci,
            "dl_vlan" | "vlan_vid" => Field::VlanVid,
            "dl_vlan_pcp" | "vlan_pcp" => Field::VlanPcp,
            "nw_src" | "ip_src" => Field::IpSrc,
            "nw_dst" | "ip_dst" => Field::IpDst,
            "nw_proto" | "ip_proto" => Field::IpProto,
            "nw_tos" => Field::NwTos,
            "ip_dscp" => Field::IpDscp,
            "nw_ecn" | "ip_ecn" => Field::IpEcn,
            "nw_ttl" => Field::NwTtl,
            "nw_frag" | "ip_frag" => Field::IpFrag,
            "tp_src" | "tcp_src" | "udp_src" | "sctp_src" => Field::TpSrc,
            "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" => Field::TpDst,
            "tcp_flags" => Field::TcpFlags,
            "arp_op" => Field::ArpOp,
            "arp_spa" => Field::ArpSpa,
            "arp_tpa" => Field::ArpTpa,
            "arp_sha" => Field::ArpSha,
            "arp_tha" => Field::ArpTha,
            "ipv6_src" => Field::Ipv6Src,
            "ipv6_dst" => Field::Ipv6Dst,
            "ipv6_label" => Field::Ipv6Label,
            "icmp_type" => Field::IcmpType,
            "icmp_code" => Field::IcmpCode,
            "icmpv6_type" => Field::Icmpv6Type,
            "icmpv6_code" => Field::Icmpv6Code,
            "nd_target" => Field::NdTarget,
            "nd_sll" => Field::NdSll,
            "nd_tll" => Field::NdTll,
            "metadata" => Field::Metadata,
            "tun_id" | "tunnel_id" => Field::TunId,
            "tun_src" => Field::TunSrc,
            "tun_dst" => Field::TunDst,
            "tun_ipv6_src" => Field::TunIpv6Src,
            "tun_ipv6_dst" => Field::TunIpv6Dst,
            "pkt_mark" => Field::PktMark,
            _ => {
                if let Some(n) = name.strip_prefix("reg") {
                    return reg_index(n).map(Field::Reg);
                }
                if let Some(n) = name.strip_prefix("NXM_NX_REG") {
                    return reg_index(n).map(Field::Reg);
                }
                if let Some(n) = name.strip_prefix("tun_metadata") {
                    return match n.parse::<u8>() {
                        Ok(i) if usize::from(i) < N_TUN_METADATA && !n.starts_with('+') => {
                            Some(Field::TunMetadata(i))
                        }
                        _ => None,
                    };
                }
                return ALL_FIELDS
                    .iter()
                    .copied()
                    .find(|f| f.nxm_name() == Some(name))
                    .or(match name {
                        "NXM_OF_UDP_SRC" | "NXM_OF_SCTP_SRC" => Some(Field::TpSrc),
                        "NXM_OF_UDP_DST" | "NXM_OF_SCTP_DST" => Some(Field::TpDst),
                        _ => None,
                    });
            }
        };
        Some(f)
    }

    /// Width in bits.
    pub fn bits(self) -> u32 {
        match self {
            Field::InPort => 16,
            Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => 48,
            Field::NdSll | Field::NdTll => 48,
            Field::EthType | Field::VlanTci | Field::TpSrc | Field::TpDst => 16,
            Field::VlanVid => 12,
            Field::VlanPcp => 3,
            Field::IpSrc | Field::IpDst | Field::ArpSpa | Field::ArpTpa => 32,
            Field::TunSrc | Field::TunDst | Field::PktMark | Field::Reg(_) => 32,
            Field::IpProto | Field::NwTos | Field::NwTtl | Field::ArpOp => 8,
            Field::IcmpType | Field::IcmpCode | Field::Icmpv6Type | Field::Icmpv6Code => 8,
            Field::IpDscp => 6,
            Field::IpEcn | Field::IpFrag => 2,
            Field::TcpFlags => 12,
            Field::Ipv6Src | Field::Ipv6Dst | Field::NdTarget => 128,
            Field::TunIpv6Src | Field::TunIpv6Dst => 128,
            Field::Ipv6Label => 20,
            Field::Metadata | Field::TunId | Field::TunMetadata(_) => 64,
        }
    }

    /// All-ones value of this field's width.
    pub fn full(self) -> u128 {
        let b = self.bits();
        if b == 128 {
            u128::MAX
        } else {
            (1u128 << b) - 1
        }
    }

    pub fn syntax(self) -> Syntax {
        match self {
            Field::InPort => Syntax::Port,
            Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => Syntax::Mac,
            Field::NdSll | Field::NdTll => Syntax::Mac,
            Field::IpSrc | Field::IpDst | Field::ArpSpa | Field::ArpTpa => Syntax::Ipv4,
            Field::TunSrc | Field::TunDst => Syntax::Ipv4,
            Field::Ipv6Src | Field::Ipv6Dst | Field::NdTarget => Syntax::Ipv6,
            Field::TunIpv6Src | Field::TunIpv6Dst => Syntax::Ipv6,
            Field::IpFrag => Syntax::Frag,
            Field::TcpFlags => Syntax::TcpFlags,
            _ => Syntax::Int,
        }
    }

    pub fn prereq(self) -> Prereq {
        match self {
            Field::IpSrc | Field::IpDst => Prereq::Ip,
            Field::IpProto | Field::NwTos | Field::IpDscp | Field::IpEcn => Prereq::IpAny,
            Field::NwTtl | Field::IpFrag => Prereq::IpAny,
            Field::TpSrc | Field::TpDst => Prereq::L4,
            Field::TcpFlags => Prereq::Tcp,
            Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha => {
                Prereq::Arp
            }
            Field::Ipv6Src | Field::Ipv6Dst | Field::Ipv6Label => Prereq::Ipv6,
            Field::IcmpType | Field::IcmpCode => Prereq::IcmpAny,
            Field::Icmpv6Type | Field::Icmpv6Code => Prereq::Icmp6,
            Field::NdTarget => Prereq::Nd,
            Field::NdSll => Prereq::NdSolicit,
            Field::NdTll => Prereq::NdAdvert,
            _ => Prereq::None,
        }
    }

    /// True when `set_field`, `load` and `move` may write this field.
    pub fn writable(self) -> bool {
        !matches!(
            self,
            Field::InPort
                | Field::EthType
                | Field::IpProto
                | Field::IpFrag
                | Field::TcpFlags
                | Field::ArpOp
                | Field::ArpSpa
                | Field::ArpTpa
                | Field::ArpSha
                | Field::ArpTha
                | Field::IcmpType
                | Field::IcmpCode
                | Field::Icmpv6Type
                | Field::Icmpv6Code
                | Field::NdTarget
                | Field::NdSll
                | Field::NdTll
        )
    }

    /// True for fields that exist only in the pipeline (never in a
    /// datapath key): writing them needs no datapath action.
    pub fn is_pipeline_only(self) -> bool {
        matches!(
            self,
            Field::Metadata | Field::Reg(_) | Field::TunMetadata(_)
        )
    }

    /// Reads the field's bits from `f`.
    pub fn get(self, f: &OfFlow) -> u128 {
        let k = &f.key;
        match self {
            Field::InPort => u128::from(k.in_port & 0xffff),
            Field::EthSrc => mac_u(&k.dl_src),
            Field::EthDst => mac_u(&k.dl_dst),
            Field::EthType => u128::from(k.dl_type),
            Field::VlanTci => u128::from(k.vlans[0].tci),
            Field::VlanVid => u128::from(k.vlans[0].tci & 0x0fff),
            Field::VlanPcp => u128::from(k.vlans[0].tci >> 13),
            Field::IpSrc | Field::ArpSpa => ip4_u(&k.nw_src),
            Field::IpDst | Field::ArpTpa => ip4_u(&k.nw_dst),
            Field::IpProto | Field::ArpOp => u128::from(k.nw_proto),
            Field::NwTos => u128::from(k.nw_tos & 0xfc),
            Field::IpDscp => u128::from(k.nw_tos >> 2),
            Field::IpEcn => u128::from(k.nw_tos & 0x03),
            Field::NwTtl => u128::from(k.nw_ttl),
            Field::IpFrag => u128::from(k.nw_frag & 0x03),
            Field::TpSrc => u128::from(k.tp_src),
            Field::TpDst => u128::from(k.tp_dst),
            Field::IcmpType | Field::Icmpv6Type => u128::from(k.tp_src & 0xff),
            Field::IcmpCode | Field::Icmpv6Code => u128::from(k.tp_dst & 0xff),
            Field::TcpFlags => u128::from(k.tcp_flags & 0x0fff),
            Field::ArpSha | Field::NdSll => mac_u(&k.arp_sha),
            Field::ArpTha | Field::NdTll => mac_u(&k.arp_tha),
            Field::Ipv6Src => u128::from_be_bytes(k.ipv6_src),
            Field::Ipv6Dst => u128::from_be_bytes(k.ipv6_dst),
            Field::NdTarget => u128::from_be_bytes(k.nd_target),
            Field::Ipv6Label => u128::from(k.ipv6_label & 0xf_ffff),
            Field::Metadata => u128::from(f.metadata),
            Field::Reg(i) => u128::from(f.regs[usize::from(i) % N_REGS]),
            Field::TunId => u128::from(k.tun_id),
            Field::TunSrc => ip4_u(&k.tun_ipv4_src),
            Field::TunDst => ip4_u(&k.tun_ipv4_dst),
            Field::TunIpv6Src => u128::from_be_bytes(k.tun_ipv6_src),
            Field::TunIpv6Dst => u128::from_be_bytes(k.tun_ipv6_dst),
            Field::PktMark => u128::from(k.pkt_mark),
            Field::TunMetadata(i) => u128::from(f.tun_metadata[usize::from(i) % N_TUN_METADATA]),
        }
    }

    /// Writes `v` (truncated to the field's width) into `f`.
    pub fn set(self, f: &mut OfFlow, v: u128) {
        let v = v & self.full();
        let k = &mut f.key;
        match self {
            Field::InPort => k.in_port = v as u32,
            Field::EthSrc => k.dl_src = u_mac(v),
            Field::EthDst => k.dl_dst = u_mac(v),
            Field::EthType => k.dl_type = v as u16,
            Field::VlanTci => k.vlans[0].tci = v as u16,
            Field::VlanVid => k.vlans[0].tci = put_bits(k.vlans[0].tci, v, 0, 12),
            Field::VlanPcp => k.vlans[0].tci = put_bits(k.vlans[0].tci, v, 13, 3),
            Field::IpSrc | Field::ArpSpa => k.nw_src = u_ip4(v),
            Field::IpDst | Field::ArpTpa => k.nw_dst = u_ip4(v),
            Field::IpProto | Field::ArpOp => k.nw_proto = v as u8,
            Field::NwTos => k.nw_tos = put_bits(k.nw_tos, v >> 2, 2, 6),
            Field::IpDscp => k.nw_tos = put_bits(k.nw_tos, v, 2, 6),
            Field::IpEcn => k.nw_tos = put_bits(k.nw_tos, v, 0, 2),
            Field::NwTtl => k.nw_ttl = v as u8,
            Field::IpFrag => k.nw_frag = put_bits(k.nw_frag, v, 0, 2),
            Field::TpSrc => k.tp_src = v as u16,
            Field::TpDst => k.tp_dst = v as u16,
            Field::IcmpType | Field::Icmpv6Type => k.tp_src = put_bits(k.tp_src, v, 0, 8),
            Field::IcmpCode | Field::Icmpv6Code => k.tp_dst = put_bits(k.tp_dst, v, 0, 8),
            Field::TcpFlags => k.tcp_flags = put_bits(k.tcp_flags, v, 0, 12),
            Field::ArpSha | Field::NdSll => k.arp_sha = u_mac(v),
            Field::ArpTha | Field::NdTll => k.arp_tha = u_mac(v),
            Field::Ipv6Src => k.ipv6_src = v.to_be_bytes(),
            Field::Ipv6Dst => k.ipv6_dst = v.to_be_bytes(),
            Field::NdTarget => k.nd_target = v.to_be_bytes(),
            Field::Ipv6Label => k.ipv6_label = put_bits(k.ipv6_label, v, 0, 20),
            Field::Metadata => f.metadata = v as u64,
            Field::Reg(i) => f.regs[usize::from(i) % N_REGS] = v as u32,
            Field::TunId => k.tun_id = v as u64,
            Field::TunSrc => k.tun_ipv4_src = u_ip4(v),
            Field::TunDst => k.tun_ipv4_dst = u_ip4(v),
            Field::TunIpv6Src => k.tun_ipv6_src = v.to_be_bytes(),
            Field::TunIpv6Dst => k.tun_ipv6_dst = v.to_be_bytes(),
            Field::PktMark => k.pkt_mark = v as u32,
            Field::TunMetadata(i) => f.tun_metadata[usize::from(i) % N_TUN_METADATA] = v as u64,
        }
    }

    /// Writes the bits of `v` selected by `mask`, leaving the others.
    pub fn set_masked(self, f: &mut OfFlow, v: u128, mask: u128) {
        let old = self.get(f);
        self.set(f, (old & !mask) | (v & mask));
    }

    /// The field's bits as a mask in an otherwise zero flow.
    pub fn mask_flow(self, bits: u128) -> OfFlow {
        let mut m = OfFlow::ZERO;
        self.set(&mut m, bits);
        m
    }
}

fn reg_index(n: &str) -> Option<u8> {
    match n.parse::<u8>() {
        Ok(i) if usize::from(i) < N_REGS && !n.starts_with('+') => Some(i),
        _ => None,
    }
}

/// Prefix length of a CIDR mask of `bits` width, or `None` when the mask
/// is not a run of leading ones.
pub fn cidr_len(mask: u128, bits: u32) -> Option<u32> {
    let shifted = mask << (128 - bits);
    let ones = shifted.leading_ones();
    if ones == 128 || shifted << ones == 0 {
        Some(ones.min(bits))
    } else {
        None
    }
}

/// The `bits`-wide mask with the top `plen` bits set.
pub fn prefix_mask(plen: u32, bits: u32) -> u128 {
    if plen == 0 {
        0
    } else {
        let top = u128::MAX << (128 - plen);
        top >> (128 - bits)
    }
}

/// True for a multicast (or broadcast) Ethernet address.
pub fn eth_is_multicast(m: &[u8; 6]) -> bool {
    m[0] & 1 != 0
}

/// True for the IEEE reserved group addresses 01:80:c2:00:00:0x (STP,
/// LACP, ...), which a NORMAL switch does not forward by default.
pub fn eth_is_reserved(m: &[u8; 6]) -> bool {
    m[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && m[5] & 0xf0 == 0
}

/// True when `dl_type` is IPv4 (used by prerequisite checks).
pub fn is_ipv4(k: &FlowKey) -> bool {
    k.dl_type == ETH_TYPE_IPV4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_with_registers() {
        let mut f = OfFlow::ZERO;
        f.regs[3] = 0xdead_beef;
        f.regs[4] = 7;
        f.metadata = 0x1234;
        f.key.tp_dst = 80;
        assert_eq!(OfFlow::from_words(&f.words()), f);
    }

    #[test]
    fn in_place_word_ops_agree_with_words() {
        // Distinct values in every word, so a misplaced index shows.
        let w: [u64; OF_U64S] =
            std::array::from_fn(|i| (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let m: [u64; OF_U64S] =
            std::array::from_fn(|i| (i as u64 + 7).wrapping_mul(0xc2b2_ae3d_27d4_eb4f));
        let (a, b) = (OfFlow::from_words(&w), OfFlow::from_words(&m));
        let (a, b) = (
            OfFlow::from_words(&a.words()),
            OfFlow::from_words(&b.words()),
        );
        let (aw, bw) = (a.words(), b.words());
        for (i, w) in aw.iter().enumerate() {
            assert_eq!(a.word(i), *w, "word {i}");
            let mut c = a;
            c.or_word(i, bw[i]);
            let want: [u64; OF_U64S] =
                std::array::from_fn(|j| if j == i { aw[j] | bw[j] } else { aw[j] });
            assert_eq!(c.words(), want, "or_word {i}");
        }
        let and: [u64; OF_U64S] = std::array::from_fn(|i| aw[i] & bw[i]);
        let or: [u64; OF_U64S] = std::array::from_fn(|i| aw[i] | bw[i]);
        assert_eq!(a.masked(&b).words(), and);
        assert_eq!(a.or(&b).words(), or);
        let mut c = a;
        c.or_assign(&b);
        assert_eq!(c.words(), or);
        assert!(a.masked(&b).is_subset_of(&b));
        assert!(!a.is_subset_of(&b));
        assert!(!a.is_zero() && OfFlow::ZERO.is_zero());
        assert!(a.equal_in(&a.masked(&b), &b));
        assert!(!a.equal_in(&b, &b));
    }

    #[test]
    fn sub_byte_fields_do_not_clobber_neighbours() {
        let mut f = OfFlow::ZERO;
        f.key.nw_tos = 0x03;
        Field::IpDscp.set(&mut f, 46);
        assert_eq!(f.key.nw_tos, (46 << 2) | 3);
        assert_eq!(Field::NwTos.get(&f), 46 << 2);
        Field::VlanTci.set(&mut f, 0x1000 | (5 << 13) | 10);
        Field::VlanVid.set(&mut f, 20);
        assert_eq!(f.key.vlans[0].tci, 0x1000 | (5 << 13) | 20);
        assert_eq!(Field::VlanPcp.get(&f), 5);
    }

    #[test]
    fn cidr_lengths() {
        assert_eq!(cidr_len(0xffff_ff00, 32), Some(24));
        assert_eq!(cidr_len(0xffff_ffff, 32), Some(32));
        assert_eq!(cidr_len(0, 32), Some(0));
        assert_eq!(cidr_len(0xff00_ff00, 32), None);
        assert_eq!(cidr_len(u128::MAX, 128), Some(128));
        assert_eq!(prefix_mask(24, 32), 0xffff_ff00);
        assert_eq!(prefix_mask(128, 128), u128::MAX);
    }

    #[test]
    fn names_resolve_both_ways() {
        for f in ALL_FIELDS {
            assert_eq!(Field::from_name(f.name()), Some(*f), "{}", f.name());
            if let Some(n) = f.nxm_name() {
                assert_eq!(Field::from_name(n), Some(*f), "{n}");
            }
        }
        assert_eq!(Field::from_name("reg8"), None);
        assert_eq!(Field::from_name("tcp_dst"), Some(Field::TpDst));
    }
}
