//! Typed datapath key attributes: the vocabulary shared by flow keys, masks
//! and `set` actions.
//!
//! # What it is
//! OVS describes a datapath flow as an ordered list of `OVS_KEY_ATTR_*`
//! netlink attributes, and a megaflow mask as a second list with the same
//! shape (a missing mask attribute means "fully wildcarded"). [`KeyAttr`]
//! is that list element with typed fields instead of bytes; a mask is
//! another `Vec<KeyAttr>` whose fields hold mask bits. Keeping the list
//! (rather than a flat struct) preserves what OVS preserves: attribute
//! order, presence versus absence, and nested `encap()`/`tunnel()` lists,
//! so text round-trips byte for byte.
//!
//! There is no text here: `odp::key` parses and formats these lists,
//! `odp::flow` converts them to and from [`crate::flow::FlowKey`], and
//! [`crate::action::Action::Set`] carries one attribute to write.
//!
//! # Conventions
//! All multi-byte integers are host order; addresses are wire bytes.
//! `frag` is OVS's enumeration (0 = no, 1 = first, 2 = later), not the
//! FlowKey bit set.

/// IPv4 address bytes.
pub type Ip4 = [u8; 4];
/// IPv6 address bytes.
pub type Ip6 = [u8; 16];
/// Ethernet address bytes.
pub type Mac = [u8; 6];

/// ODP fragment type: not a fragment.
pub const FRAG_NO: u8 = 0;
/// ODP fragment type: first fragment.
pub const FRAG_FIRST: u8 = 1;
/// ODP fragment type: later fragment.
pub const FRAG_LATER: u8 = 2;

/// `OVS_KEY_ATTR_ETHERNET`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EthKey {
    pub src: Mac,
    pub dst: Mac,
}

/// `OVS_KEY_ATTR_IPV4`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv4Key {
    pub src: Ip4,
    pub dst: Ip4,
    pub proto: u8,
    pub tos: u8,
    pub ttl: u8,
    pub frag: u8,
}

/// `OVS_KEY_ATTR_IPV6`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv6Key {
    pub src: Ip6,
    pub dst: Ip6,
    /// Flow label; only the low 20 bits are meaningful.
    pub label: u32,
    pub proto: u8,
    pub tclass: u8,
    pub hlimit: u8,
    pub frag: u8,
}

/// `OVS_KEY_ATTR_TCP`, `_UDP` and `_SCTP` share this shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortsKey {
    pub src: u16,
    pub dst: u16,
}

/// `OVS_KEY_ATTR_ICMP` and `_ICMPV6`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IcmpKey {
    pub icmp_type: u8,
    pub code: u8,
}

/// `OVS_KEY_ATTR_ARP`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArpKey {
    pub sip: Ip4,
    pub tip: Ip4,
    pub op: u16,
    pub sha: Mac,
    pub tha: Mac,
}

/// `OVS_KEY_ATTR_ND`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NdKey {
    pub target: Ip6,
    pub sll: Mac,
    pub tll: Mac,
}

/// `OVS_KEY_ATTR_ND_EXTENSIONS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NdExtKey {
    pub reserved: u32,
    pub options_type: u8,
}

/// `OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtTuple4 {
    pub src: Ip4,
    pub dst: Ip4,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

/// `OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtTuple6 {
    pub src: Ip6,
    pub dst: Ip6,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

/// ERSPAN tunnel metadata (`OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ErspanOpts {
    pub version: u8,
    /// Version 1 session index.
    pub index: u32,
    /// Version 2 direction.
    pub dir: u8,
    /// Version 2 hardware id (6 bits).
    pub hwid: u8,
}

/// One `OVS_TUNNEL_KEY_ATTR_*` inside `tunnel(...)`. The three flag
/// attributes carry no value: in a key their presence sets the flag, in a
/// mask their presence means the flag is matched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TunAttr {
    Id(u64),
    Ipv4Src(Ip4),
    Ipv4Dst(Ip4),
    Ipv6Src(Ip6),
    Ipv6Dst(Ip6),
    Tos(u8),
    Ttl(u8),
    DontFragment,
    Csum,
    TpSrc(u16),
    TpDst(u16),
    Oam,
    /// VXLAN group policy: `(flags << 16) | id`.
    VxlanGbp(u32),
    /// Raw Geneve option TLVs, as on the wire (class, type, length, data).
    Geneve(Vec<u8>),
    Erspan(ErspanOpts),
}

/// Discriminant of [`TunAttr`], for looking a mask attribute up by type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunAttrKind {
    Id,
    Ipv4Src,
    Ipv4Dst,
    Ipv6Src,
    Ipv6Dst,
    Tos,
    Ttl,
    DontFragment,
    Csum,
    TpSrc,
    TpDst,
    Oam,
    VxlanGbp,
    Geneve,
    Erspan,
}

impl TunAttr {
    /// The attribute type.
    pub fn kind(&self) -> TunAttrKind {
        match self {
            TunAttr::Id(_) => TunAttrKind::Id,
            TunAttr::Ipv4Src(_) => TunAttrKind::Ipv4Src,
            TunAttr::Ipv4Dst(_) => TunAttrKind::Ipv4Dst,
            TunAttr::Ipv6Src(_) => TunAttrKind::Ipv6Src,
            TunAttr::Ipv6Dst(_) => TunAttrKind::Ipv6Dst,
            TunAttr::Tos(_) => TunAttrKind::Tos,
            TunAttr::Ttl(_) => TunAttrKind::Ttl,
            TunAttr::DontFragment => TunAttrKind::DontFragment,
            TunAttr::Csum => TunAttrKind::Csum,
            TunAttr::TpSrc(_) => TunAttrKind::TpSrc,
            TunAttr::TpDst(_) => TunAttrKind::TpDst,
            TunAttr::Oam => TunAttrKind::Oam,
            TunAttr::VxlanGbp(_) => TunAttrKind::VxlanGbp,
            TunAttr::Geneve(_) => TunAttrKind::Geneve,
            TunAttr::Erspan(_) => TunAttrKind::Erspan,
        }
    }

    /// The same attribute with every value bit clear (an all-wildcard
    /// mask for it).
    pub fn zeroed(&self) -> TunAttr {
        match self {
            TunAttr::Id(_) => TunAttr::Id(0),
            TunAttr::Ipv4Src(_) => TunAttr::Ipv4Src([0; 4]),
            TunAttr::Ipv4Dst(_) => TunAttr::Ipv4Dst([0; 4]),
            TunAttr::Ipv6Src(_) => TunAttr::Ipv6Src([0; 16]),
            TunAttr::Ipv6Dst(_) => TunAttr::Ipv6Dst([0; 16]),
            TunAttr::Tos(_) => TunAttr::Tos(0),
            TunAttr::Ttl(_) => TunAttr::Ttl(0),
            TunAttr::DontFragment => TunAttr::DontFragment,
            TunAttr::Csum => TunAttr::Csum,
            TunAttr::TpSrc(_) => TunAttr::TpSrc(0),
            TunAttr::TpDst(_) => TunAttr::TpDst(0),
            TunAttr::Oam => TunAttr::Oam,
            TunAttr::VxlanGbp(_) => TunAttr::VxlanGbp(0),
            TunAttr::Geneve(v) => TunAttr::Geneve(vec![0; v.len()]),
            TunAttr::Erspan(_) => TunAttr::Erspan(ErspanOpts::default()),
        }
    }
}

/// One `OVS_KEY_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyAttr {
    /// Attributes inside a VLAN tag (`encap(...)`).
    Encap(Vec<KeyAttr>),
    Priority(u32),
    InPort(u32),
    Ethernet(EthKey),
    /// The TCI, with the CFI bit (0x1000) set for a present tag.
    Vlan(u16),
    EthType(u16),
    Ipv4(Ipv4Key),
    Ipv6(Ipv6Key),
    Tcp(PortsKey),
    Udp(PortsKey),
    Icmp(IcmpKey),
    Icmpv6(IcmpKey),
    Arp(ArpKey),
    Nd(NdKey),
    SkbMark(u32),
    Tunnel(Vec<TunAttr>),
    Sctp(PortsKey),
    /// The low 12 bits of the TCP flags word.
    TcpFlags(u16),
    DpHash(u32),
    RecircId(u32),
    /// MPLS label stack entries, outermost first (1..=3 of them).
    Mpls(Vec<u32>),
    /// ODP conntrack state bits (`OVS_CS_F_*`).
    CtState(u32),
    CtZone(u16),
    CtMark(u32),
    CtLabels(u128),
    CtTuple4(CtTuple4),
    CtTuple6(CtTuple6),
    NdExt(NdExtKey),
    /// `(namespace << 16) | type`.
    PacketType(u32),
}

/// Discriminant of [`KeyAttr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAttrKind {
    Encap,
    Priority,
    InPort,
    Ethernet,
    Vlan,
    EthType,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Arp,
    Nd,
    SkbMark,
    Tunnel,
    Sctp,
    TcpFlags,
    DpHash,
    RecircId,
    Mpls,
    CtState,
    CtZone,
    CtMark,
    CtLabels,
    CtTuple4,
    CtTuple6,
    NdExt,
    PacketType,
}

impl KeyAttrKind {
    /// The attribute's name in ODP text.
    pub fn name(self) -> &'static str {
        match self {
            KeyAttrKind::Encap => "encap",
            KeyAttrKind::Priority => "skb_priority",
            KeyAttrKind::InPort => "in_port",
            KeyAttrKind::Ethernet => "eth",
            KeyAttrKind::Vlan => "vlan",
            KeyAttrKind::EthType => "eth_type",
            KeyAttrKind::Ipv4 => "ipv4",
            KeyAttrKind::Ipv6 => "ipv6",
            KeyAttrKind::Tcp => "tcp",
            KeyAttrKind::Udp => "udp",
            KeyAttrKind::Icmp => "icmp",
            KeyAttrKind::Icmpv6 => "icmpv6",
            KeyAttrKind::Arp => "arp",
            KeyAttrKind::Nd => "nd",
            KeyAttrKind::SkbMark => "skb_mark",
            KeyAttrKind::Tunnel => "tunnel",
            KeyAttrKind::Sctp => "sctp",
            KeyAttrKind::TcpFlags => "tcp_flags",
            KeyAttrKind::DpHash => "dp_hash",
            KeyAttrKind::RecircId => "recirc_id",
            KeyAttrKind::Mpls => "mpls",
            KeyAttrKind::CtState => "ct_state",
            KeyAttrKind::CtZone => "ct_zone",
            KeyAttrKind::CtMark => "ct_mark",
            KeyAttrKind::CtLabels => "ct_label",
            KeyAttrKind::CtTuple4 => "ct_tuple4",
            KeyAttrKind::CtTuple6 => "ct_tuple6",
            KeyAttrKind::NdExt => "nd_ext",
            KeyAttrKind::PacketType => "packet_type",
        }
    }
}

impl KeyAttr {
    /// The attribute type.
    pub fn kind(&self) -> KeyAttrKind {
        match self {
            KeyAttr::Encap(_) => KeyAttrKind::Encap,
            KeyAttr::Priority(_) => KeyAttrKind::Priority,
            KeyAttr::InPort(_) => KeyAttrKind::InPort,
            KeyAttr::Ethernet(_) => KeyAttrKind::Ethernet,
            KeyAttr::Vlan(_) => KeyAttrKind::Vlan,
            KeyAttr::EthType(_) => KeyAttrKind::EthType,
            KeyAttr::Ipv4(_) => KeyAttrKind::Ipv4,
            KeyAttr::Ipv6(_) => KeyAttrKind::Ipv6,
            KeyAttr::Tcp(_) => KeyAttrKind::Tcp,
            KeyAttr::Udp(_) => KeyAttrKind::Udp,
            KeyAttr::Icmp(_) => KeyAttrKind::Icmp,
            KeyAttr::Icmpv6(_) => KeyAttrKind::Icmpv6,
            KeyAttr::Arp(_) => KeyAttrKind::Arp,
            KeyAttr::Nd(_) => KeyAttrKind::Nd,
            KeyAttr::SkbMark(_) => KeyAttrKind::SkbMark,
            KeyAttr::Tunnel(_) => KeyAttrKind::Tunnel,
            KeyAttr::Sctp(_) => KeyAttrKind::Sctp,
            KeyAttr::TcpFlags(_) => KeyAttrKind::TcpFlags,
            KeyAttr::DpHash(_) => KeyAttrKind::DpHash,
            KeyAttr::RecircId(_) => KeyAttrKind::RecircId,
            KeyAttr::Mpls(_) => KeyAttrKind::Mpls,
            KeyAttr::CtState(_) => KeyAttrKind::CtState,
            KeyAttr::CtZone(_) => KeyAttrKind::CtZone,
            KeyAttr::CtMark(_) => KeyAttrKind::CtMark,
            KeyAttr::CtLabels(_) => KeyAttrKind::CtLabels,
            KeyAttr::CtTuple4(_) => KeyAttrKind::CtTuple4,
            KeyAttr::CtTuple6(_) => KeyAttrKind::CtTuple6,
            KeyAttr::NdExt(_) => KeyAttrKind::NdExt,
            KeyAttr::PacketType(_) => KeyAttrKind::PacketType,
        }
    }

    /// The attribute with every value bit clear: the all-wildcard mask for
    /// it (nested lists keep their shape).
    pub fn zeroed(&self) -> KeyAttr {
        match self {
            KeyAttr::Encap(v) => KeyAttr::Encap(v.iter().map(KeyAttr::zeroed).collect()),
            KeyAttr::Priority(_) => KeyAttr::Priority(0),
            KeyAttr::InPort(_) => KeyAttr::InPort(0),
            KeyAttr::Ethernet(_) => KeyAttr::Ethernet(EthKey::default()),
            KeyAttr::Vlan(_) => KeyAttr::Vlan(0),
            KeyAttr::EthType(_) => KeyAttr::EthType(0),
            KeyAttr::Ipv4(_) => KeyAttr::Ipv4(Ipv4Key::default()),
            KeyAttr::Ipv6(_) => KeyAttr::Ipv6(Ipv6Key::default()),
            KeyAttr::Tcp(_) => KeyAttr::Tcp(PortsKey::default()),
            KeyAttr::Udp(_) => KeyAttr::Udp(PortsKey::default()),
            KeyAttr::Icmp(_) => KeyAttr::Icmp(IcmpKey::default()),
            KeyAttr::Icmpv6(_) => KeyAttr::Icmpv6(IcmpKey::default()),
            KeyAttr::Arp(_) => KeyAttr::Arp(ArpKey::default()),
            KeyAttr::Nd(_) => KeyAttr::Nd(NdKey::default()),
            KeyAttr::SkbMark(_) => KeyAttr::SkbMark(0),
            KeyAttr::Tunnel(v) => KeyAttr::Tunnel(v.iter().map(TunAttr::zeroed).collect()),
            KeyAttr::Sctp(_) => KeyAttr::Sctp(PortsKey::default()),
            KeyAttr::TcpFlags(_) => KeyAttr::TcpFlags(0),
            KeyAttr::DpHash(_) => KeyAttr::DpHash(0),
            KeyAttr::RecircId(_) => KeyAttr::RecircId(0),
            KeyAttr::Mpls(v) => KeyAttr::Mpls(vec![0; v.len()]),
            KeyAttr::CtState(_) => KeyAttr::CtState(0),
            KeyAttr::CtZone(_) => KeyAttr::CtZone(0),
            KeyAttr::CtMark(_) => KeyAttr::CtMark(0),
            KeyAttr::CtLabels(_) => KeyAttr::CtLabels(0),
            KeyAttr::CtTuple4(_) => KeyAttr::CtTuple4(CtTuple4::default()),
            KeyAttr::CtTuple6(_) => KeyAttr::CtTuple6(CtTuple6::default()),
            KeyAttr::NdExt(_) => KeyAttr::NdExt(NdExtKey::default()),
            KeyAttr::PacketType(_) => KeyAttr::PacketType(0),
        }
    }

    /// Treating `self` as a mask: true when it wildcards everything (OVS's
    /// `odp_mask_attr_is_wildcard`). Nested attributes never are.
    pub fn mask_is_wildcard(&self) -> bool {
        self.mask_is_constant(false)
    }

    /// Treating `self` as a mask: true when it matches every bit.
    pub fn mask_is_exact(&self) -> bool {
        self.mask_is_constant(true)
    }

    fn mask_is_constant(&self, ones: bool) -> bool {
        fn all<const N: usize>(b: &[u8; N], ones: bool) -> bool {
            b.iter().all(|&x| x == if ones { 0xff } else { 0 })
        }
        let u8c = if ones { u8::MAX } else { 0 };
        let u16c = if ones { u16::MAX } else { 0 };
        let u32c = if ones { u32::MAX } else { 0 };
        match self {
            KeyAttr::Encap(_) | KeyAttr::Tunnel(_) => false,
            KeyAttr::Priority(v)
            | KeyAttr::InPort(v)
            | KeyAttr::SkbMark(v)
            | KeyAttr::DpHash(v)
            | KeyAttr::RecircId(v)
            | KeyAttr::CtState(v)
            | KeyAttr::CtMark(v)
            | KeyAttr::PacketType(v) => *v == u32c,
            KeyAttr::Vlan(v) | KeyAttr::EthType(v) | KeyAttr::CtZone(v) => *v == u16c,
            KeyAttr::Ethernet(e) => all(&e.src, ones) && all(&e.dst, ones),
            KeyAttr::Ipv4(k) => {
                all(&k.src, ones)
                    && all(&k.dst, ones)
                    && [k.proto, k.tos, k.ttl, k.frag].iter().all(|&x| x == u8c)
            }
            KeyAttr::Ipv6(k) => {
                (k.label & 0xfffff) == (u32c & 0xfffff)
                    && [k.proto, k.tclass, k.hlimit, k.frag]
                        .iter()
                        .all(|&x| x == u8c)
                    && all(&k.src, ones)
                    && all(&k.dst, ones)
            }
            KeyAttr::Tcp(p) | KeyAttr::Udp(p) | KeyAttr::Sctp(p) => p.src == u16c && p.dst == u16c,
            KeyAttr::Icmp(k) | KeyAttr::Icmpv6(k) => k.icmp_type == u8c && k.code == u8c,
            KeyAttr::Arp(k) => {
                all(&k.sip, ones)
                    && all(&k.tip, ones)
                    && k.op == u16c
                    && all(&k.sha, ones)
                    && all(&k.tha, ones)
            }
            KeyAttr::Nd(k) => all(&k.target, ones) && all(&k.sll, ones) && all(&k.tll, ones),
            KeyAttr::NdExt(k) => k.reserved == u32c && k.options_type == u8c,
            KeyAttr::TcpFlags(v) => (v & 0x0fff) == (u16c & 0x0fff),
            KeyAttr::Mpls(v) => v.iter().all(|&x| x == u32c),
            KeyAttr::CtLabels(v) => *v == if ones { u128::MAX } else { 0 },
            KeyAttr::CtTuple4(k) => {
                all(&k.src, ones)
                    && all(&k.dst, ones)
                    && k.src_port == u16c
                    && k.dst_port == u16c
                    && k.proto == u8c
            }
            KeyAttr::CtTuple6(k) => {
                all(&k.src, ones)
                    && all(&k.dst, ones)
                    && k.src_port == u16c
                    && k.dst_port == u16c
                    && k.proto == u8c
            }
        }
    }

    /// Treating `self` as a `set` mask: true when every byte OVS would
    /// send is all ones, which makes the action a plain `set` rather than
    /// a masked one. Stricter than [`KeyAttr::mask_is_exact`] the way OVS
    /// is: the IPv6 label's 12 unused bits and the struct padding of ARP
    /// and conntrack tuples are never set, so those are always masked.
    pub fn mask_is_all_ones(&self) -> bool {
        match self {
            KeyAttr::Ipv6(k) => k.label == u32::MAX && self.mask_is_exact(),
            KeyAttr::TcpFlags(v) => *v == u16::MAX,
            KeyAttr::Arp(_) | KeyAttr::CtTuple4(_) | KeyAttr::CtTuple6(_) | KeyAttr::NdExt(_) => {
                false
            }
            _ => self.mask_is_exact(),
        }
    }
}

/// Finds the first attribute of `kind` in `attrs` (OVS `nl_attr_find`).
pub fn find(attrs: &[KeyAttr], kind: KeyAttrKind) -> Option<&KeyAttr> {
    attrs.iter().find(|a| a.kind() == kind)
}

/// Finds the first tunnel attribute of `kind` in `attrs`.
pub fn find_tun(attrs: &[TunAttr], kind: TunAttrKind) -> Option<&TunAttr> {
    attrs.iter().find(|a| a.kind() == kind)
}
